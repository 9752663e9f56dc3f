"""Report stage: a study -> a self-contained HTML report (Plotly) and a terminal summary.

Entry point: :func:`write_report`. The terminal table: :func:`pareto_table`.
"""
from __future__ import annotations

import html
import itertools
import os
import tempfile
from pathlib import Path

from mcusearch.figures import Figure
from mcusearch.study import StudySummary, TrialRecord

COLUMNS = [  # metric, header, format: the firmware's figures; quality metrics follow (columns())
    ("flash_kb", "flash kB", "{:.1f}"),
    ("ram_kb", "RAM kB", "{:.1f}"),
    ("model_flash_kb", "model flash kB", "{:.2f}"),
    ("model_ram_kb", "model RAM kB", "{:.2f}"),
    ("instructions", "instr./inference", "{:,.0f}"),
    ("latency_ms", "latency ms", "{:.2f}"),
]
PROVENANCE_MARK = {"measured": "M", "emulated": "E", "estimated": "~", "static": "S", "host": "H"}
LEGEND = ("M measured on a board · E emulated, exact instruction count (QEMU -icount) · "
          "~ estimated (a model; see the method) · S static, from the linked ELF · H computed on the host")


def knobs_text(config: dict) -> str:
    """The knob values of a stored trial config, as TrialConfig.describe() words them."""
    from dataclasses import fields

    from mcusearch.knobs import TrialConfig

    known = {f.name for f in fields(TrialConfig)}
    try:
        cfg = TrialConfig(**{k: (tuple(v) if isinstance(v, list) else v)
                             for k, v in config.items() if k in known})
    except TypeError:  # a config from an older version of the knobs: show it raw
        return " · ".join(f"{k} {v}" for k, v in config.items())
    return " · ".join(cfg.describe().split(" ")).replace("ch=", "ch ")


def quality_shown(summary: StudySummary) -> list[str]:
    """The quality metrics the report shows: those the objectives or constraints use, else the
    first registered one the trials have (accuracy for a classifier, MSE for a regression)."""
    from mcusearch.model.metrics import REGISTRY

    bounded = {k.rsplit("_", 1)[0] for k in summary.limits if k.endswith(("_min", "_max"))}
    used = {m for m, _ in summary.objectives} | bounded
    have = {m for r in summary.records for m in r.figures}
    shown = [m for m in REGISTRY if m in used and m in have]
    return shown or [m for m in REGISTRY if m in have][:1]


def metric_label(metric: str) -> str:
    """How the report names a metric: a quality metric by its label, the rest by their key."""
    from mcusearch.model.metrics import REGISTRY

    return REGISTRY[metric].label if metric in REGISTRY else metric


def columns(summary: StudySummary) -> list[tuple[str, str, str]]:
    """The table's columns: the firmware's figures, then the quality metrics shown (by label)."""
    return COLUMNS + [(m, metric_label(m), "{:.4f}") for m in quality_shown(summary)]


def limits_text(limits: dict[str, float]) -> str:
    """The constraints in words, a quality metric by its label (``MSE <= 0.01``)."""
    from mcusearch.model.metrics import REGISTRY

    out = []
    for key, v in limits.items():
        metric, _, kind = key.rpartition("_")
        if metric in REGISTRY and kind in ("min", "max") and key != "accuracy_min":
            out.append(f"{REGISTRY[metric].label} {'>=' if kind == 'min' else '<='} {v:g}")
        else:
            out.append(f"{key} {v:g}")
    return ", ".join(out) or "none"


def _fmt(fig: Figure | None, fmt: str, mark: bool) -> str:
    if fig is None:
        return "–"
    s = fmt.format(fig.value)
    return f"{s} {PROVENANCE_MARK.get(fig.provenance.value, '?')}" if mark else s


def pareto_table(summary: StudySummary) -> str:
    """A plain-text table of the Pareto-optimal configurations, for the terminal."""
    cols = columns(summary)
    rows = [["trial"] + [h for _, h, _ in cols] + ["knobs"]]
    for r in sorted(summary.pareto, key=lambda r: r.number):
        rows.append([str(r.number)] + [_fmt(r.figures.get(m), f, True) for m, _, f in cols]
                    + [knobs_text(r.config)])
    if len(rows) == 1:
        return ("no trial met every constraint yet: no Pareto front (the report lists every trial "
                "with its figures, the constraints it violates or why it failed)")
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) if i < len(row) - 1 else c for i, (c, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n" + LEGEND


def _category(r: TrialRecord, pareto: set[int]) -> str:
    if r.number in pareto:
        return "Pareto-optimal"
    return "feasible" if r.feasible else "violates a constraint"


def _figures_html(summary: StudySummary) -> list[str]:
    import plotly.graph_objects as go

    done = [r for r in summary.records if r.status == "ok" and r.values is not None]
    if not done:
        return ["<p>No completed trial to plot.</p>"]
    pareto = {r.number for r in summary.pareto}
    metrics = [m for m, _ in summary.objectives]
    colors = {"Pareto-optimal": "#d62728", "feasible": "#1f77b4", "violates a constraint": "#bbbbbb"}
    symbols = {"Pareto-optimal": "star", "feasible": "circle", "violates a constraint": "x"}
    pairs = list(itertools.combinations(range(len(metrics)), 2)) or [(0, 0)]
    out = []
    for i, j in pairs:
        fig = go.Figure()
        for cat in colors:
            rs = [r for r in done if _category(r, pareto) == cat]
            if not rs:
                continue
            fig.add_trace(go.Scatter(
                x=[r.values[i] for r in rs], y=[r.values[j] for r in rs], mode="markers", name=cat,
                marker=dict(color=colors[cat], symbol=symbols[cat], size=11 if cat == "Pareto-optimal" else 8),
                text=[f"trial {r.number}<br>{knobs_text(r.config)}" for r in rs],
                hovertemplate="%{text}<br>%{x:.4g}, %{y:.4g}<extra></extra>"))
        fig.update_layout(
            title=f"{metric_label(metrics[j])} vs {metric_label(metrics[i])}", height=420,
            margin=dict(l=60, r=20, t=50, b=50),
            xaxis_title=f"{metric_label(metrics[i])} ({summary.objectives[i][1]})",
            yaxis_title=f"{metric_label(metrics[j])} ({summary.objectives[j][1]})",
            template="plotly_white")
        out.append(fig.to_html(full_html=False, include_plotlyjs=False))
    return out


def _table(records: list[TrialRecord], link_prefix: str, cols: list[tuple[str, str, str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in
                   ["trial", "status"] + [h for _, h, _ in cols] + ["knobs", "artifacts / reason"])
    body = []
    for r in records:
        cells = [str(r.number), html.escape(r.status if r.feasible or r.status != "ok" else "infeasible")]
        for m, _, f in cols:
            fig = r.figures.get(m)
            title = html.escape(f"{fig.provenance.value}: {fig.method}") if fig else ""
            cells.append(f'<span title="{title}">{html.escape(_fmt(fig, f, True))}</span>')
        cells.append(html.escape(knobs_text(r.config)) if r.config else "")
        if r.status == "ok":
            links = []
            for name, path in r.artifacts.items():
                if path:
                    href = path if os.path.isabs(path) else f"{link_prefix}/{path}"
                    links.append(f'<a href="{html.escape(href)}">{html.escape(name)}</a>')
            extra = " · ".join(links)
            if r.notes.get("output_check"):
                extra += f"<br><small>{html.escape(r.notes['output_check'])}</small>"
            bad = [k for k, v in r.constraints.items() if v > 0]
            if bad:
                extra += f"<br><small>violates: {html.escape(', '.join(bad))}</small>"
            cells.append(extra)
        else:
            cells.append(f"<small>{html.escape(r.error)}</small>")
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _layers_html(records: list[TrialRecord]) -> str:
    """The per-layer split of the Pareto trials (markers around each layer call in the firmware)."""
    rows = [r for r in records if r.layers]
    if not rows:
        return "<p>No per-layer profile (the converter emitted no layer markers).</p>"
    out = []
    for r in rows:
        total = sum(c for _, c in r.layers) or 1.0
        unit = r.figures["instructions"].unit if "instructions" in r.figures else "instructions"
        cells = "".join(f"<td>{html.escape(str(name))}<br>{c:,.0f}<br><small>{c / total:.1%}</small></td>"
                        for name, c in r.layers)
        out.append(f"<tr><th>trial {r.number}<br><small>{html.escape(unit)}</small></th>{cells}</tr>")
    return f"<table class='layers'>{''.join(out)}</table>"


CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}
table{border-collapse:collapse;font-size:13px;margin:1em 0}
td,th{border:1px solid #ddd;padding:4px 8px;text-align:right;vertical-align:top}
td:nth-last-child(-n+2),th:nth-last-child(-n+2){text-align:left}
th{background:#f4f4f4} .grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:8px}
.note{color:#555;font-size:13px} table.layers td{text-align:center}
"""


def _recommendation_html(rec, why_none: str | None) -> str:
    if rec is None:
        return f"<p>No recommendation: {html.escape(why_none or 'no spec to judge against')}.</p>"
    price = f"{rec.price_usd:g} USD" if rec.price_usd is not None else "no price known"
    return (f"<p><b>{html.escape(rec.part.part)}</b> ({html.escape(price)}; {html.escape(rec.basis)}) "
            f"with trial {rec.trial}: {html.escape(knobs_text(rec.config))}.</p>"
            f"<p class='note'>{html.escape(rec.why)}</p>")


def write_report(summary: StudySummary, out: Path | None = None, recommendation=None,
                 why_none: str | None = None) -> Path:
    """Write the report (default: ``<run folder>.html`` beside the run folder) atomically."""
    from plotly.offline import get_plotlyjs

    run_dir = summary.run_dir.resolve()
    out = Path(out) if out else run_dir.with_name(run_dir.name + ".html")
    out.parent.mkdir(parents=True, exist_ok=True)
    prefix = os.path.relpath(run_dir, out.parent.resolve())
    recs = summary.records
    n_ok = sum(r.status == "ok" for r in recs)
    n_feas = sum(r.feasible for r in recs)
    n_fail = sum(r.status == "failed" for r in recs)
    n_inf = sum(r.status == "infeasible" for r in recs)
    pareto = sorted(summary.pareto, key=lambda r: r.number)
    limits = limits_text(summary.limits)
    objectives = ", ".join(f"{metric_label(m)} ({d})" for m, d in summary.objectives)
    cols = columns(summary)
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>mcusearch report: {html.escape(summary.title or summary.study_name)}</title>",
        f"<style>{CSS}</style><script type='text/javascript'>{get_plotlyjs()}</script></head><body>",
        f"<h1>mcusearch: {html.escape(summary.title or summary.study_name)}</h1>",
        f"<p>Run folder <code>{html.escape(str(summary.run_dir))}</code> · storage "
        f"<code>{html.escape(summary.storage)}</code></p>",
        f"<p>{len(recs)} trials: {n_ok} measured ({n_feas} meet every constraint), {n_fail} failed, "
        f"{n_inf} rejected early as infeasible. Objectives: {html.escape(objectives)}. "
        f"Constraints: {html.escape(limits)}.</p>",
        f"<p class='note'>Provenance of every figure: {html.escape(LEGEND)}. Hover a figure for how "
        "it was obtained.</p>",
        "<h2>Cheapest viable MCU</h2>", _recommendation_html(recommendation, why_none),
        "<h2>Pareto-optimal configurations</h2>",
        _table(pareto, prefix, cols) if pareto else "<p>No trial met every constraint.</p>",
        "<h2>Pareto front</h2><div class='grid'>", *_figures_html(summary), "</div>",
        "<h2>Where the time goes: per layer, per inference</h2>", _layers_html(pareto),
        "<h2>All trials</h2>", _table(sorted(recs, key=lambda r: r.number), prefix, cols),
        "</body></html>",
    ]
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".html", dir=out.parent)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(parts))
    os.replace(tmp, out)
    return out
