"""Report stage: a study -> a self-contained HTML report (Plotly) and a terminal summary.

Entry point: :func:`write_report` (HTML, and CSV/JSON exports beside it). The terminal table:
:func:`pareto_table`. The report's parts: :mod:`.card` (the answer first), :mod:`.rows` (one row
per trial), :mod:`.table` (the sortable, filterable all-trials table), :mod:`.plots` (Plotly),
:mod:`.export` (CSV and JSON), :mod:`.compare` (other runs: fronts overlaid, spec differences),
:mod:`.live` (rewrite the report every N trials while a study runs), :mod:`.cdp` (a DevTools
client the browser test drives headless Chromium with).

The page is one self-contained file: plotly.js inline once, no request leaves it; each plot is
drawn when it scrolls into view (or before printing), so a large study's report opens quickly.
"""
from __future__ import annotations

import html
import os
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


def _layers_table(records: list[TrialRecord]) -> str:
    """The per-layer split as numbers (count and share per layer), behind the stacked bars."""
    rows = [r for r in records if r.layers]
    out = []
    for r in rows:
        total = sum(c for _, c in r.layers) or 1.0
        unit = r.figures["instructions"].unit if "instructions" in r.figures else "instructions"
        cells = "".join(f"<td>{html.escape(str(name))}<br>{c:,.0f}<br><small>{c / total:.1%}</small></td>"
                        for name, c in r.layers)
        out.append(f"<tr><th>trial {r.number}<br><small>{html.escape(unit)}</small></th>{cells}</tr>")
    return f"<div class='scroll'><table class='layers'>{''.join(out)}</table></div>"


def _constant_knobs(rows, varied: list[str]) -> str | None:
    """The knobs every trial set alike, in one line (the table's columns are the others)."""
    same = {k: v for row in rows for k, v in row.knobs.items() if k not in varied}
    if not same:
        return None
    return ("<p class='note'>Same in every trial: "
            + html.escape(", ".join(f"{k} {v}" for k, v in same.items())) + ".</p>")


def _layers_note(records: list[TrialRecord]) -> str | None:
    """How the per-layer counts were obtained: the trials' instruction figure's method."""
    fig = next((r.figures["instructions"] for r in records if r.layers and "instructions" in r.figures), None)
    if fig is None:
        return None
    return (f"<p class='note'>The recommended and Pareto-optimal trials; add any other with its “profile” "
            f"button in the table. Counts between the markers around each layer call; the whole inference is "
            f"{PROVENANCE_MARK.get(fig.provenance.value, '?')} {html.escape(fig.provenance.value)}: "
            f"{html.escape(fig.method)}.</p>")


CSS = """
body{font-family:system-ui,sans-serif;margin:0 auto;padding:1em 2em;max-width:1500px;color:#222;line-height:1.4}
nav{position:sticky;top:0;background:#fff;border-bottom:1px solid #ddd;padding:6px 0;z-index:10}
nav a{margin-right:1.2em} section{margin:1.5em 0;scroll-margin-top:3em} h2{margin:.2em 0 .4em}
section.lazy{content-visibility:auto;contain-intrinsic-size:auto 900px}
table{border-collapse:collapse;font-size:13px;margin:.6em 0}
td,th{border:1px solid #ddd;padding:4px 8px;text-align:right;vertical-align:top}
th{background:#f4f4f4} .scroll{overflow-x:auto;max-width:100%}
table.trials th{cursor:pointer;white-space:nowrap;position:sticky;top:0}
table.trials th[aria-sort=ascending]:after{content:" ▲"} table.trials th[aria-sort=descending]:after{content:" ▼"}
table.trials td.knob{white-space:nowrap}
table.trials td.reason{text-align:left;max-width:28em;font-size:12px}
table.trials td.links{text-align:left;white-space:nowrap}
tr.recommended td{background:#fff7d6} tr.pareto-optimal .cat{color:#d62728;font-weight:600}
tr.failed .cat{color:#c05a00} .prov{font-size:11px;color:#666;border:1px solid #ccc;border-radius:3px;padding:0 2px}
.controls input{width:28em;padding:4px} .controls select{padding:4px} .note{color:#555;font-size:13px}
.card{border:2px solid #2a7;border-radius:8px;padding:12px 18px;background:#f8fffa}
.card.none{border-color:#c33;background:#fff8f8} .card .part{font-size:1.3em}
.card .sub{color:#444;margin-top:0} table.checks td:first-child{text-align:left}
table.checks td.margin{font-weight:600;white-space:nowrap}
.dot{display:inline-block;width:.8em;height:.8em;border-radius:50%;margin-right:.4em;background:#aaa}
td.green .dot{background:#2a7} td.amber .dot{background:#e9a100} td.red .dot{background:#d22}
td.margin.green{color:#1a6} td.margin.amber{color:#a66f00} td.margin.red{color:#c11}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:12px}
table.layers td{text-align:center}
@media print{nav,.controls{display:none} body{padding:0;max-width:none} .card{break-inside:avoid}
 section{break-inside:avoid-page} .scroll{overflow:visible} section.lazy{content-visibility:visible}}
"""


def _selection(summary: StudySummary, spec):
    """The selection context of the card, from the spec (given, or saved in the run folder)."""
    from mcusearch.errors import McusearchError
    from mcusearch.report.card import Selection
    from mcusearch.study import board_maps

    if spec is None:
        saved = summary.run_dir / "spec.yaml"
        if not saved.is_file():
            return None, {}
        from mcusearch.spec import load_spec
        try:
            spec = load_spec(saved)
        except McusearchError:
            return None, {}
    bounds = {k: (m, kind) for k, (m, kind, _) in spec.constraints.bounds().items()}
    return Selection(spec.parts(), spec.catalog.margin, summary.limits.get("deadline_ms"), board_maps()), bounds


def plotly_js() -> str:
    """plotly.js from the pinned plotly package, safe to place inside a ``<script>`` element."""
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs()
    if "</script" in js.lower():  # would end the element early; not in any bundle seen so far
        js = js.replace("</script", "<\\/script").replace("</SCRIPT", "<\\/SCRIPT")
    return js


def _section(sid: str, title: str, *body: str | None) -> str:
    parts = [b for b in body if b]
    return f"<section id='{sid}' class='lazy'><h2>{html.escape(title)}</h2>{''.join(parts)}</section>"


NAV = {"answer": "Answer", "parts": "Parts", "front": "Pareto front", "sweep": "Sweep", "trials": "All trials",
       "search": "The search", "layers": "Per layer", "compare": "Compared runs", "about": "About"}


def _nav(sections: list[str | None]) -> str:
    """Links to the sections the page holds (each starts ``<section id='...'>``)."""
    present = [sid for sid in NAV if any(s and s.startswith(f"<section id='{sid}'") for s in sections)]
    return "<nav>" + "".join(f"<a href='#{sid}'>{NAV[sid]}</a>" for sid in present) + "</nav>"


def _header(summary: StudySummary, title: str) -> str:
    recs = summary.records
    n = {s: sum(r.status == s for r in recs) for s in ("ok", "failed", "infeasible", "running")}
    n_feas = sum(r.feasible for r in recs)
    running = f", <b>{n['running']} still running</b> (a live report)" if n["running"] else ""
    objectives = ", ".join(f"{metric_label(m)} ({d})" for m, d in summary.objectives)
    return (f"<p>{len(recs)} trials: {n['ok']} measured ({n_feas} meet every constraint), {n['failed']} failed, "
            f"{n['infeasible']} rejected early as infeasible{running}. Objectives: {html.escape(objectives)}. "
            f"Constraints: {html.escape(limits_text(summary.limits))}.</p>"
            f"<p class='note'>Provenance marks: {html.escape(LEGEND)}. Hover a figure for how it was obtained.</p>")


def write_report(summary: StudySummary, out: Path | None = None, recommendation=None,
                 why_none: str | None = None, spec=None, export_csv: bool = False, export_json: bool = False,
                 compare: list[StudySummary] = ()) -> Path:
    """Write the report (default: ``<run folder>.html`` beside the run folder) atomically, and with
    ``export_csv`` / ``export_json`` the exports beside it (:func:`mcusearch.report.export.export_paths`).
    ``compare``: other runs, whose Pareto fronts are overlaid and whose specs are compared.

    ``spec`` (default: the ``spec.yaml`` saved in the run folder) gives the catalog and margin the
    answer card explains the recommendation with (runners-up, why not cheaper)."""
    from mcusearch.report import plots
    from mcusearch.report.card import build_card, card_html
    from mcusearch.report.compare import compare_html, run_name
    from mcusearch.report.export import atomic_write, write_exports
    from mcusearch.report.rows import figure_names, knob_names, trial_rows
    from mcusearch.report.table import TABLE_JS, trials_table_html

    run_dir = summary.run_dir.resolve()
    out = Path(out) if out else run_dir.with_name(run_dir.name + ".html")
    out.parent.mkdir(parents=True, exist_ok=True)
    prefix = os.path.relpath(run_dir, out.parent.resolve())
    title = summary.title or summary.study_name
    rec_n = recommendation.trial if recommendation is not None else None
    rows = trial_rows(summary, prefix, rec_n)
    knobs, varied, metrics = knob_names(rows), knob_names(rows, varied=True), figure_names(summary)
    card = None
    if recommendation is not None:
        sel, bounds = _selection(summary, spec)
        card = build_card(summary, recommendation, sel, bounds)
    pareto = sorted(summary.pareto, key=lambda r: r.number)
    layer_recs = sorted({r.number: r for r in pareto + [r for r in summary.records if r.number == rec_n]}.values(),
                        key=lambda r: r.number)
    others = [(run_name(o), trial_rows(o, os.path.relpath(o.run_dir.resolve(), out.parent.resolve())))
              for o in compare]
    front = plots.pareto_plot(summary, rows, metrics, others)
    front_3d = plots.pareto_plot(summary, rows, metrics, others, axes=("x", "y", "z"))
    sweep = plots.sweep_plot(rows, varied[0], quality_shown(summary)) if len(varied) == 1 else None
    on_parts = (plots.parts_plot(card.fits, card.rec.part.part, summary.limits.get("deadline_ms"))
                if card is not None and card.fits else None)
    sections = [
        card_html(card, why_none),
        _section("parts", "The recommended configuration on every catalog part", on_parts,
                 "<p class='note'>Parts with the trial's core and a known price; latency = the trial's count "
                 "per inference at each part's clock (an estimate, not a measurement on the part).</p>")
        if on_parts else None,
        _section("front", "Pareto-optimal configurations: the front, axes of your choice",
                 front or "<p>No completed trial to plot.</p>",
                 "<p class='note'>Red stars: Pareto-optimal (feasible, not dominated on the objectives); "
                 "blue: feasible; grey crosses: violate a constraint; orange: failed (plotted only where "
                 "figures exist). Hover a point for its knobs and figures.</p>" if front else None,
                 "<h3>In three dimensions</h3>" if front_3d else None, front_3d),
        _section("sweep", f"The sweep over {varied[0]}", sweep,
                 "<p class='note'>Only this knob varied between trials: each figure against its value "
                 "(measured trials; the median where a value was tried more than once).</p>") if sweep else None,
        _section("trials", "All trials", _constant_knobs(rows, varied),
                 trials_table_html(rows, varied, columns(summary)),
                 "<p class='note'>Click a header to sort, type to filter. ★ the recommended trial. "
                 "Links open the trial's artifacts (paths relative to this report).</p>"),
        _section("search", "How the search went", plots.progress_plot(summary),
                 "<p class='note'>Hypervolume: objectives scaled to [0, 1] over the feasible trials "
                 "(maximised ones flipped), reference point 1.1 each, exact (WFG).</p>",
                 plots.parallel_plot(summary, rows, varied),
                 "<p class='note'>Knobs (left) to objectives (right), one line per measured trial; drag "
                 "along an axis to select a range. Knobs no trial varied are left out.</p>"),
        _section("layers", "Where the time goes: per layer, per inference",
                 plots.layers_plot(summary.records, {r.number for r in layer_recs}, rec_n)
                 or "<p>No per-layer profile (the converter emitted no layer markers).</p>",
                 _layers_note(summary.records),
                 f"<details><summary>the numbers</summary>{_layers_table(layer_recs)}</details>"
                 if any(r.layers for r in layer_recs) else None),
        _section("compare", "Compared runs", compare_html([summary, *compare])) if compare else None,
        _section("about", "About this report",
                 f"<p>Run folder <code>{html.escape(str(summary.run_dir))}</code> · storage "
                 f"<code>{html.escape(summary.storage)}</code> · study "
                 f"<code>{html.escape(summary.study_name)}</code></p>"),
    ]
    page = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
            "<meta name='viewport' content='width=device-width, initial-scale=1'>",
            f"<title>mcusearch report: {html.escape(title)}</title>",
            f"<style>{CSS}</style></head><body>",
            f"<h1>mcusearch: {html.escape(title)}</h1>", _nav(sections), _header(summary, title), *sections,
            f"<script type='text/plain' id='mcus-plotly'>{plotly_js()}</script>",
            f"<script>{TABLE_JS}{plots.LAYERS_JS}{plots.RENDER_JS}</script></body></html>"]
    atomic_write(out, "\n".join(p for p in page if p))
    if export_csv or export_json:
        meta = {"study": summary.study_name, "title": title, "storage": summary.storage,
                "objectives": [list(o) for o in summary.objectives], "limits": dict(summary.limits),
                "recommendation": recommendation.to_dict() if recommendation is not None else None,
                "why_no_recommendation": why_none, "provenance_marks": PROVENANCE_MARK}
        write_exports(out, rows, knobs, metrics, csv_out=export_csv, json_out=export_json, meta=meta)
    return out
