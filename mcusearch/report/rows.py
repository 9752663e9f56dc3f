"""One flat row per trial: the all-trials table, the plots' hover text and the exports read these.

Entry point: :func:`trial_rows`. A row keeps each figure as a :class:`~mcusearch.figures.Figure`
(value, unit, provenance, method) so every consumer can say how a number was obtained.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from mcusearch.figures import Figure
from mcusearch.study import StudySummary, TrialRecord

TRIAL_LOG = "trial.log"  # as mcusearch.study writes it into a failed trial's folder


@dataclass
class Row:
    """A trial as the report lists it."""

    number: int
    category: str                 # Pareto-optimal | feasible | violates a constraint | failed | rejected | running
    status: str                   # as stored: ok | failed | infeasible | running
    knobs: dict[str, str]         # knob -> its value as text
    figures: dict[str, Figure]
    violated: list[str]           # constraint keys with a positive violation
    stage: str                    # failure stage ("" when it did not fail)
    reason: str                   # failure or rejection reason
    links: dict[str, str] = field(default_factory=dict)   # artifact -> path relative to the report
    recommended: bool = False
    profiled: bool = False        # the trial has a per-layer profile


def knob_value(v) -> str:
    """A knob's value as the report shows it (lists joined with '/', None as 'full')."""
    if isinstance(v, (list, tuple)):
        return "/".join(map(str, v))
    return "full" if v is None else str(v)


def category(r: TrialRecord, pareto: set[int]) -> str:
    """The trial's class in the plots and the table."""
    if r.status == "ok":
        if r.number in pareto:
            return "Pareto-optimal"
        return "feasible" if r.feasible else "violates a constraint"
    return {"failed": "failed", "infeasible": "rejected", "running": "running"}.get(r.status, r.status)


def _links(r: TrialRecord, run_dir: Path, prefix: str) -> dict[str, str]:
    """The trial's artifacts (and its log, when it wrote one), relative to the report's folder."""
    out = {}
    for name, path in r.artifacts.items():
        if path:
            out[name] = path if os.path.isabs(path) else f"{prefix}/{path}"
    trial_dirs = {Path(p).parts[1] for p in r.artifacts.values() if p and not os.path.isabs(p)
                  and len(Path(p).parts) > 1 and Path(p).parts[0] == "trials"}
    trial_dirs |= {d.name for d in (run_dir / "trials").glob(f"{r.number:04d}-*")} \
        if (run_dir / "trials").is_dir() else set()
    for d in sorted(trial_dirs):
        if (run_dir / "trials" / d / TRIAL_LOG).is_file():
            out["log"] = f"{prefix}/trials/{d}/{TRIAL_LOG}"
    return out


def trial_rows(summary: StudySummary, prefix: str, recommended: int | None = None) -> list[Row]:
    """Every trial, by number; ``prefix`` is the run folder relative to the report."""
    pareto = {r.number for r in summary.pareto}
    rows = []
    for r in sorted(summary.records, key=lambda r: r.number):
        failed = r.status not in ("ok", "running")
        rows.append(Row(
            number=r.number, category=category(r, pareto), status=r.status,
            knobs={k: knob_value(v) for k, v in r.config.items()}, figures=dict(r.figures),
            violated=[k for k, v in r.constraints.items() if v > 0] if r.status == "ok" else [],
            stage=(r.stage or ("reject" if r.status == "infeasible" else "")) if failed else "",
            reason=r.error if failed else "", links=_links(r, summary.run_dir, prefix),
            recommended=r.number == recommended, profiled=bool(r.layers)))
    return rows


def knob_names(rows: list[Row], varied: bool = False) -> list[str]:
    """The knobs any trial set, in first-seen order; with ``varied``, only those whose value differs
    between trials."""
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row.knobs))
    if varied:
        return [k for k in names if len({row.knobs.get(k) for row in rows}) > 1]
    return list(names)


def figure_names(summary: StudySummary) -> list[str]:
    """The figures the report shows: objectives, the table's columns, then any other figure."""
    from mcusearch.report import columns

    names = dict.fromkeys([m for m, _ in summary.objectives] + [m for m, _, _ in columns(summary)])
    for r in summary.records:
        names.update(dict.fromkeys(r.figures))
    return [m for m in names if any(m in r.figures for r in summary.records)]
