"""Comparing runs: what differs in their specs, and a short line per run for the report.

Entry points: :func:`spec_differences` (the specs saved in the run folders, flattened to key
paths) and :func:`compare_html` (the report's "Compared runs" section).
"""
from __future__ import annotations

import html
from pathlib import Path

import yaml

from mcusearch.study import StudySummary

MISSING = "(not set)"


def flatten(data, prefix: str = "") -> dict[str, str]:
    """A nested mapping as ``{"a.b.c": "value"}`` (lists as YAML flow text)."""
    if isinstance(data, dict):
        out: dict[str, str] = {}
        for k, v in data.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: yaml.safe_dump(data, default_flow_style=True, width=1 << 16).strip().removesuffix("...").strip()}


def _spec_of(run_dir: Path) -> dict[str, str] | None:
    saved = run_dir / "spec.yaml"
    if not saved.is_file():
        return None
    return flatten(yaml.safe_load(saved.read_text()) or {})


def spec_differences(run_dirs: list[Path]) -> tuple[list[tuple[str, list[str]]], list[Path]]:
    """The spec keys whose values differ between runs (a value per run), and the runs without a
    saved spec (``spec.yaml`` in the run folder), which cannot be compared."""
    specs = {d: _spec_of(d) for d in run_dirs}
    have = [d for d in run_dirs if specs[d] is not None]
    keys = sorted({k for d in have for k in specs[d]})
    diffs = []
    for k in keys:
        values = [specs[d].get(k, MISSING) for d in have]
        if len(set(values)) > 1:
            diffs.append((k, values))
    return diffs, [d for d in run_dirs if specs[d] is None]


def run_name(summary: StudySummary) -> str:
    """How the report names a run: its folder's name (and the spec's name when it differs)."""
    name = summary.run_dir.name
    return f"{name} ({summary.title})" if summary.title and summary.title != name else name


def compare_html(summaries: list[StudySummary]) -> str:
    """The runs side by side: trials, feasible, Pareto size, then the spec keys that differ."""
    head = "".join(f"<th>{html.escape(run_name(s))}</th>" for s in summaries)
    stats = [("trials", lambda s: len(s.records)),
             ("meet every constraint", lambda s: sum(r.feasible for r in s.records)),
             ("Pareto-optimal", lambda s: len(s.pareto)),
             ("failed", lambda s: sum(r.status == "failed" for r in s.records))]
    rows = "".join(f"<tr><td>{html.escape(label)}</td>" + "".join(f"<td>{f(s)}</td>" for s in summaries) + "</tr>"
                   for label, f in stats)
    diffs, unsaved = spec_differences([s.run_dir for s in summaries])
    diff_rows = "".join(f"<tr><td><code>{html.escape(k)}</code></td>"
                        + "".join(f"<td>{html.escape(v)}</td>" for v in values) + "</tr>" for k, values in diffs)
    have = [s for s in summaries if s.run_dir not in unsaved]
    diff_head = "".join(f"<th>{html.escape(run_name(s))}</th>" for s in have)
    out = [f"<div class='scroll'><table class='compare'><thead><tr><th></th>{head}</tr></thead>"
           f"<tbody>{rows}</tbody></table></div>",
           "<h3>What differs in their specs</h3>"]
    if len(have) >= 2:
        out.append(f"<div class='scroll'><table class='compare'><thead><tr><th>key</th>{diff_head}</tr></thead>"
                   f"<tbody>{diff_rows}</tbody></table></div>" if diffs else "<p>Their specs are the same.</p>")
    if unsaved:
        out.append("<p class='note'>No spec.yaml in " + html.escape(", ".join(str(d) for d in unsaved))
                   + ": not compared.</p>")
    out.append("<p class='note'>The Pareto front plot overlays each compared run's Pareto-optimal trials.</p>")
    return "".join(out)
