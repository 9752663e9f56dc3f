"""Score stage: a trial's figures -> objective values and constraint violations.

Entry point: :func:`score`. Result: :class:`Score`. A constraint value follows Optuna's
convention (feasible when <= 0) and is relative to its limit, so violations of different units
compare: ``(value - limit) / limit`` for upper limits, ``(floor - value) / floor`` for floors.
The constraints are the spec's :meth:`~mcusearch.spec.ConstraintsSpec.bounds`: flash, RAM, the
deadline, and floors or ceilings on any quality metric (:mod:`mcusearch.model.metrics`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from mcusearch.errors import SpecError, StageError
from mcusearch.figures import Figure
from mcusearch.spec import Spec


@dataclass
class Score:
    objectives: list[float]
    constraints: dict[str, float]   # constraint key -> violation (<= 0 is met)
    limits: dict[str, float]        # the resolved limits (deadline "auto" made a number)

    @property
    def feasible(self) -> bool:
        return all(v <= 0 for v in self.constraints.values())

    def violated(self) -> list[str]:
        return [k for k, v in self.constraints.items() if v > 0]


def resolve_limits(spec: Spec, frame_period_s: float | None) -> dict[str, float]:
    """The constraints as numbers; ``deadline_ms: auto`` becomes the data set's frame period."""
    limits: dict[str, float] = {}
    for key, (_, _, v) in spec.constraints.bounds().items():
        if v == "auto":
            if frame_period_s is None:
                continue  # a data set without a stream rate has no implied deadline
            v = frame_period_s * 1000.0
        limits[key] = float(v)
    return limits


def quality_metrics_used(spec: Spec) -> dict[str, str]:
    """The quality metrics the spec's objectives and constraints use: name -> key path."""
    from mcusearch.model.metrics import REGISTRY

    used = {o.metric: f"objectives[{i}]" for i, o in enumerate(spec.objectives)
            if o.metric in REGISTRY}
    for key, (metric, _, _) in spec.constraints.bounds().items():
        if metric in REGISTRY:
            used.setdefault(metric, f"constraints.{key if key == 'accuracy_min' else 'metrics.' + metric}")
    return used


def check_metrics_apply(spec: Spec, task: str, n_outputs: int, has_anomaly_labels: bool) -> None:
    """Raise a :class:`SpecError` naming the key when an objective or a constraint uses a
    quality metric the data set's task cannot give (e.g. ``mse`` of a classifier, ``auc`` of a
    ten-class model, ``anomaly_auc`` without anomaly labels)."""
    from mcusearch.model.metrics import REGISTRY, metrics_for

    ok = {m.name for m in metrics_for(task, n_outputs if task == "classification" else None,
                                      has_anomaly_labels)}
    for metric, where in quality_metrics_used(spec).items():
        if metric not in ok:
            m = REGISTRY[metric]
            if m.needs_anomaly_labels and m.applies(task, True):
                why = "needs the test set's anomaly labels (anomaly_test in the .npz)"
            else:
                why = (f"applies to {', '.join(sorted(m.tasks))} data sets"
                       + (" with two classes" if metric == "auc" else ""))
            raise SpecError(where, f"{metric} ({m.label}) {why}; this data set's task is {task}"
                            f" with {n_outputs} output(s); it gives {', '.join(sorted(ok))}")


def score(spec: Spec, figures: dict[str, Figure], frame_period_s: float | None = None) -> Score:
    """Objective values and relative constraint violations of a trial's figures."""
    limits = resolve_limits(spec, frame_period_s)
    bounds = spec.constraints.bounds()
    constraints: dict[str, float] = {}
    for key, limit in limits.items():
        metric, kind, _ = bounds[key]
        value = _value(figures, metric, f"constraints ({key})")
        constraints[key] = (value - limit) / limit if kind == "max" else (limit - value) / limit
        if math.isnan(constraints[key]):
            constraints[key] = math.inf  # a metric that could not be computed meets no bound
    objectives = [_value(figures, o.metric, "objectives") for o in spec.objectives]
    return Score(objectives, constraints, limits)


def _value(figures: dict[str, Figure], metric: str, where: str) -> float:
    if metric not in figures:
        raise StageError("score", f"{where} use {metric}, which this trial has no figure for "
                         f"(it has {', '.join(sorted(figures))})")
    return float(figures[metric].value)
