"""Score stage: a trial's figures -> objective values and constraint violations.

Entry point: :func:`score`. Result: :class:`Score`. A constraint value follows Optuna's
convention (feasible when <= 0) and is relative to its limit, so violations of different units
compare: ``(value - limit) / limit`` for upper limits, ``(floor - value) / floor`` for floors.
"""
from __future__ import annotations

from dataclasses import dataclass

from mcusearch.figures import Figure
from mcusearch.spec import Spec

# constraint key in the spec -> (metric it limits, "max" = upper limit | "min" = floor)
CONSTRAINTS = {
    "flash_kb": ("flash_kb", "max"),
    "ram_kb": ("ram_kb", "max"),
    "deadline_ms": ("latency_ms", "max"),
    "accuracy_min": ("accuracy", "min"),
}


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
    c = spec.constraints
    limits: dict[str, float] = {}
    for key in CONSTRAINTS:
        v = getattr(c, key)
        if v == "auto":
            if frame_period_s is None:
                continue  # a data set without a stream rate has no implied deadline
            v = frame_period_s * 1000.0
        if v is not None:
            limits[key] = float(v)
    return limits


def score(spec: Spec, figures: dict[str, Figure], frame_period_s: float | None = None) -> Score:
    limits = resolve_limits(spec, frame_period_s)
    constraints: dict[str, float] = {}
    for key, limit in limits.items():
        metric, kind = CONSTRAINTS[key]
        if key == "accuracy_min":
            metric = spec.constraints.accuracy_metric  # the floor applies to the metric the spec names
        value = figures[metric].value
        constraints[key] = (value - limit) / limit if kind == "max" else (limit - value) / limit
    objectives = [figures[o.metric].value for o in spec.objectives]
    return Score(objectives, constraints, limits)
