"""Exports beside the HTML report: the Pareto set and all trials as CSV and JSON.

Entry point: :func:`write_exports`. Every figure is exported with its unit, provenance and
method (CSV: four columns per figure, ``<name>``, ``<name>_unit``, ``<name>_provenance``,
``<name>_method``; JSON: an object per figure), so a number read elsewhere still says how it was
obtained. Files are written atomically.
"""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

from mcusearch.report.rows import Row


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder (readers never see
    half a file), with the permissions a plain ``open`` would give it."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    with os.fdopen(fd, "w", newline="") as f:
        f.write(text)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def row_dict(row: Row) -> dict:
    """A trial as the JSON export holds it."""
    return {"trial": row.number, "class": row.category, "status": row.status, "recommended": row.recommended,
            "knobs": dict(row.knobs), "figures": {m: f.to_dict() for m, f in row.figures.items()},
            "violates": list(row.violated), "failed_at": row.stage, "reason": row.reason,
            "artifacts": dict(row.links)}


def csv_text(rows: list[Row], knobs: list[str], metrics: list[str]) -> str:
    """The rows as CSV: trial, class, status, knobs, four columns per figure, then the outcome."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["trial", "class", "status", "recommended"] + knobs
               + [f"{m}{s}" for m in metrics for s in ("", "_unit", "_provenance", "_method")]
               + ["violates", "failed_at", "reason", "artifacts"])
    for r in rows:
        figs = []
        for m in metrics:
            f = r.figures.get(m)
            figs += [repr(f.value), f.unit, f.provenance.value, f.method] if f else ["", "", "", ""]
        w.writerow([r.number, r.category, r.status, int(r.recommended)] + [r.knobs.get(k, "") for k in knobs]
                   + figs + [" ".join(r.violated), r.stage, r.reason,
                             " ".join(f"{n}={p}" for n, p in r.links.items())])
    return buf.getvalue()


def export_paths(html_path: Path, csv_out: bool, json_out: bool) -> list[Path]:
    """Where the exports of the report ``html_path`` go: ``<report>.trials.csv``,
    ``<report>.pareto.csv`` (with ``csv_out``) and ``<report>.json`` (with ``json_out``)."""
    base = html_path.with_suffix("")
    return ([base.with_name(f"{base.name}.{n}.csv") for n in ("trials", "pareto")] if csv_out else []) \
        + ([base.with_name(f"{base.name}.json")] if json_out else [])


def write_exports(html_path: Path, rows: list[Row], knobs: list[str], metrics: list[str], *, csv_out: bool,
                  json_out: bool, meta: dict) -> list[Path]:
    """Write the files :func:`export_paths` names; ``meta`` heads the JSON (study, objectives, limits)."""
    pareto = [r for r in rows if r.category == "Pareto-optimal"]
    paths = export_paths(html_path, csv_out, json_out)
    for path in paths:
        if path.suffix == ".csv":
            subset = pareto if path.name.endswith(".pareto.csv") else rows
            atomic_write(path, csv_text(subset, knobs, metrics))
        else:
            doc = dict(meta, pareto=[r.number for r in pareto], trials=[row_dict(r) for r in rows])
            atomic_write(path, json.dumps(doc, indent=1, default=str) + "\n")
    return paths
