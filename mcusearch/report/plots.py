"""The report's plots (Plotly; plotly.js is embedded once by :func:`mcusearch.report.write_report`).

* :func:`pareto_plot` - any two figures against each other, axes chosen from dropdowns; every
  trial marked by class (Pareto-optimal, feasible, violates a constraint, failed); hover: knobs
  and figures with their provenance marks.
* :func:`parallel_plot` - parallel coordinates, knobs -> objectives, one line per measured trial.
* :func:`progress_plot` - hypervolume of the feasible front and the share of feasible trials,
  over trial number.
* :func:`layers_plot` - per-layer profile (count per inference) as stacked bars.

Each returns an HTML fragment (a ``<div>`` and its script) or ``None`` when there is nothing to draw.
"""
from __future__ import annotations

import json
import math
import re

from mcusearch.report.rows import Row
from mcusearch.study import StudySummary

STYLE = {  # class -> (colour, marker symbol, size)
    "Pareto-optimal": ("#d62728", "star", 13),
    "feasible": ("#1f77b4", "circle", 9),
    "violates a constraint": ("#999999", "x", 9),
    "failed": ("#ff7f0e", "triangle-down", 9),
}
HEIGHT = 470
CONFIG = {"displaylogo": False, "responsive": True}


def _html(fig, div_id: str, height: int = HEIGHT) -> str:
    """The figure as an empty ``<div class='plot'>`` and its JSON: :data:`RENDER_JS` draws it when
    it scrolls into view (or before printing), so a large study's report opens at once.
    plotly.js itself is inline as text (``#mcus-plotly``) and run when the first plot is drawn."""
    fig.update_layout(template="plotly_white", height=height, font=dict(size=13))
    data = fig.to_json().replace("</", "<\\/")
    return (f"<div id='{div_id}' class='plot' style='height:{height}px'></div>"
            f"<script type='application/json' id='{div_id}-data'>{data}</script>")


RENDER_JS = """
var MCUS_CONFIG = %s;
function mcusPlotly(){  // plotly.js is inline as text and run on first need: the page reads at once
  if(!window.Plotly){var s=document.createElement('script');
    s.text=document.getElementById('mcus-plotly').textContent; document.head.appendChild(s);}
  return window.Plotly;
}
function mcusRender(div){
  if(!div._mcusDrawn){var f=JSON.parse(document.getElementById(div.id+'-data').textContent);
    div._mcusDrawn=mcusPlotly().newPlot(div, f.data, f.layout, MCUS_CONFIG);}
  return div._mcusDrawn;
}
function mcusRenderAll(){
  return Promise.all(Array.prototype.map.call(document.querySelectorAll('div.plot'), mcusRender));
}
(function(){  // after the first paint, draw each plot as it comes into view; all before printing
  window.addEventListener('beforeprint', mcusRenderAll);
  var plots=document.querySelectorAll('div.plot');
  function observe(){
    if(!('IntersectionObserver' in window)){ mcusRenderAll(); return; }
    var first=true;
    var io=new IntersectionObserver(function(entries){
      var drawn=entries.filter(function(e){return e.isIntersecting;}).map(function(e){
        io.unobserve(e.target); return mcusRender(e.target);});
      if(first){ first=false; Promise.all(drawn).then(function(){ window.mcusFirstView=performance.now(); }); }
    }, {rootMargin:'300px'});
    Array.prototype.forEach.call(plots, function(d){ io.observe(d); });
  }
  if(document.readyState==='complete') observe();
  else window.addEventListener('load', function(){ requestAnimationFrame(function(){ setTimeout(observe, 0); }); });
})();
""" % json.dumps(CONFIG)


def _value(row: Row, metric: str) -> float | None:
    f = row.figures.get(metric)
    return f.value if f is not None and math.isfinite(f.value) else None


FIGURE_LABELS = {"flash_kb": "flash, whole firmware", "ram_kb": "RAM, whole firmware",
                 "model_flash_kb": "model flash", "model_ram_kb": "model RAM",
                 "instructions": "instructions per inference", "cycles": "cycles per inference",
                 "latency_ms": "latency", "mcu_cost": "MCU cost", "macs": "MACs", "params": "parameters"}


def figure_label(metric: str) -> str:
    """A figure's name in words (a quality metric by its label)."""
    from mcusearch.report import metric_label

    return FIGURE_LABELS.get(metric) or metric_label(metric)


def _axis_title(metric: str, rows: list[Row]) -> str:
    unit = next((r.figures[metric].unit for r in rows if metric in r.figures), "")
    return f"{figure_label(metric)} ({unit})" if unit else figure_label(metric)


def hover_text(row: Row, metrics: list[str]) -> str:
    """Trial number, knobs and figures (with provenance marks), for a plot's hover box."""
    from mcusearch.report import PROVENANCE_MARK

    knobs = "<br>".join(f"{k}: {v}" for k, v in row.knobs.items())
    figs = "<br>".join(f"{figure_label(m)}: {row.figures[m].value:.4g} {row.figures[m].unit} "
                       f"{PROVENANCE_MARK.get(row.figures[m].provenance.value, '?')}"
                       for m in metrics if m in row.figures)
    extra = f"<br>violates: {', '.join(row.violated)}" if row.violated else ""
    extra += f"<br>failed at {row.stage}" if row.category == "failed" else ""
    return f"<b>trial {row.number}</b> · {row.category}{extra}<br>{knobs}<br>{figs}"


OTHER_RUNS = (("#2ca02c", "diamond-open"), ("#9467bd", "square-open"), ("#8c564b", "circle-open"),
              ("#17becf", "triangle-up-open"))  # the fronts of compared runs


SYMBOL_3D = {"star": "diamond", "triangle-down": "cross", "x": "circle-open",  # 3-D has fewer symbols
             "triangle-up-open": "square-open"}


def pareto_plot(summary: StudySummary, rows: list[Row], metrics: list[str],
                others: list[tuple[str, list[Row]]] = (), axes: tuple[str, ...] = ("x", "y")) -> str | None:
    """Two (or, with ``axes=("x", "y", "z")``, three) figures against each other; the dropdowns
    pick the axes (objectives first by default). ``others``: (run name, its rows) of compared runs,
    whose Pareto-optimal trials are overlaid."""
    import plotly.graph_objects as go

    plotted = [r for r in rows if r.category in STYLE and any(m in r.figures for m in metrics)]
    if len(metrics) < len(axes) or not plotted:
        return None
    objs = [m for m, _ in summary.objectives if m in metrics]
    start = (objs + [m for m in metrics if m not in objs])[:len(axes)]
    groups = [(f"{c} ({sum(r.category == c for r in plotted)})", [r for r in plotted if r.category == c], STYLE[c])
              for c in STYLE]
    for i, (name, other) in enumerate(others):
        front = [r for r in other if r.category == "Pareto-optimal"]
        colour, symbol = OTHER_RUNS[i % len(OTHER_RUNS)]
        groups.append((f"{name}: Pareto-optimal ({len(front)})", front, (colour, symbol, 12)))
    groups = [g for g in groups if g[1]]
    unplaced = sum(r.category in ("failed", "rejected") and not any(m in r.figures for m in metrics) for r in rows)
    if unplaced:  # a legend entry only: they have no figures to place
        groups.append((f"failed or rejected without figures ({unplaced}): see All trials", [], STYLE["failed"]))
    three = len(axes) == 3
    fig = go.Figure()
    for label, rs, (colour, symbol, size) in groups:
        missing = sum(any(_value(r, m) is None for m in start) for r in rs)
        trace = go.Scatter3d if three else go.Scatter
        fig.add_trace(trace(
            **{a: [_value(r, m) for r in rs] or [None] for a, m in zip(axes, start)}, mode="markers",
            name=label + (" - some lack figures" if label.startswith("failed") and missing else ""),
            marker=dict(color=colour, symbol=SYMBOL_3D.get(symbol, symbol) if three else symbol,
                        size=size * 0.6 if three else size, line=dict(width=1, color="#333")),
            text=[hover_text(r, metrics) for r in rs], hovertemplate="%{text}<extra></extra>"))
    title_key = "scene.{}axis.title.text" if three else "{}axis.title.text"

    def menu(axis: str, active: int, x: float, y: float) -> dict:
        buttons = [dict(label=_axis_title(m, plotted), method="update",
                        args=[{axis: [[_value(r, m) for r in rs] or [None] for _, rs, _ in groups]},
                              {title_key.format(axis): _axis_title(m, plotted)}]) for m in metrics]
        return dict(buttons=buttons, active=active, x=x, y=y, xanchor="left", yanchor="top",
                    direction="down", showactive=True, pad=dict(r=4, t=0))
    # The menus stacked above the plot, a row each (side by side, long labels overlap at A4 width).
    height, top, bottom = (680, 150, 60) if three else (HEIGHT + 40, 40 + 34 * len(axes), 110)
    row = 34 / (height - top - bottom)  # 34 px in paper units
    place = [(0.04, 1.0 + (len(axes) - i) * row) for i in range(len(axes))]
    fig.update_layout(
        updatemenus=[menu(a, metrics.index(m), place[i][0], place[i][1])
                     for i, (a, m) in enumerate(zip(axes, start))],
        annotations=[dict(text=f"{a}:", x=0, y=place[i][1] - row * 0.45, xref="paper", yref="paper",
                          xanchor="left", yanchor="middle", showarrow=False) for i, a in enumerate(axes)],
        legend=dict(orientation="h", y=-0.18), hovermode="closest", margin=dict(l=70, r=30, t=top, b=bottom))
    for a, m in zip(axes, start):
        fig.update_layout({title_key.format(a): _axis_title(m, plotted)})
    if three:
        fig.update_layout(margin=dict(l=10, r=10, t=top, b=bottom), legend=dict(y=-0.05))
        return _html(fig, "plot-pareto-3d", height=height)
    return _html(fig, "plot-pareto", height=height)


def parallel_plot(summary: StudySummary, rows: list[Row], knobs: list[str]) -> str | None:
    """Parallel coordinates: ``knobs`` (categorical axes) then the objectives, coloured by class."""
    import plotly.graph_objects as go

    done = [r for r in rows if r.category in ("Pareto-optimal", "feasible", "violates a constraint")]
    objs = [m for m, _ in summary.objectives if all(m in r.figures for r in done)]
    if not done or not objs:
        return None
    dims = []
    for k in knobs:
        values = sorted({r.knobs.get(k, "") for r in done}, key=_natural)
        index = {v: i for i, v in enumerate(values)}
        dims.append(dict(label=k, values=[index[r.knobs.get(k, "")] for r in done],
                         tickvals=list(range(len(values))), ticktext=values))
    for m in objs:
        dims.append(dict(label=figure_label(m), values=[r.figures[m].value for r in done]))
    code = {"violates a constraint": 0, "feasible": 1, "Pareto-optimal": 2}
    fig = go.Figure(go.Parcoords(
        dimensions=dims, line=dict(color=[code[r.category] for r in done], cmin=0, cmax=2,
                                   colorscale=[[0, STYLE["violates a constraint"][0]], [0.5, STYLE["feasible"][0]],
                                               [1, STYLE["Pareto-optimal"][0]]]),
        labelangle=-25, labelside="top", labelfont=dict(size=12), tickfont=dict(size=11)))
    fig.update_layout(title=dict(text="grey: violates a constraint · blue: feasible · red: Pareto-optimal",
                                 font=dict(size=12), y=0.02, yanchor="bottom"))
    fig.update_layout(margin=dict(l=90, r=90, t=120, b=60))
    return _html(fig, "plot-parallel")


def _natural(v: str) -> list:
    """Sort key: numbers inside the text compare as numbers ("4/8/8" < "12/4/4", "-O2" < "-O3")."""
    return [(0, float(p), "") if k % 2 else (1, 0.0, p)
            for k, p in enumerate(re.split(r"(\d+(?:\.\d+)?)", v))]


def hypervolume_series(summary: StudySummary) -> tuple[list[int], list[float], list[float]]:
    """Per trial number (in order): hypervolume of the feasible trials so far, and the share of
    finished trials that are feasible.

    Hypervolume: each objective scaled to [0, 1] over the study's feasible trials (maximised ones
    flipped), reference point 1.1 in each; exact (Optuna's WFG). 0 until a trial is feasible.
    """
    import numpy as np
    from optuna._hypervolume import compute_hypervolume  # optuna is pinned

    recs = sorted((r for r in summary.records if r.status != "running"), key=lambda r: r.number)
    feas = [r for r in recs if r.feasible and r.values is not None]
    sign = np.array([1.0 if d == "minimize" else -1.0 for _, d in summary.objectives])
    pts = np.array([r.values for r in feas], dtype=float) * sign if feas else np.zeros((0, len(sign)))
    lo, hi = (pts.min(axis=0), pts.max(axis=0)) if len(pts) else (0, 1)
    span = np.where(np.asarray(hi - lo) > 0, hi - lo, 1.0)
    numbers, hv, share, seen, n_feas = [], [], [], [], 0
    for r in recs:
        if r.feasible and r.values is not None:
            seen.append((np.array(r.values, dtype=float) * sign - lo) / span)
            n_feas += 1
        numbers.append(r.number)
        hv.append(float(compute_hypervolume(np.array(seen), np.full(len(sign), 1.1))) if seen else 0.0)
        share.append(n_feas / len(numbers))
    return numbers, hv, share


def progress_plot(summary: StudySummary) -> str | None:
    """Hypervolume and the share of feasible trials over trial number."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if not summary.objectives:
        return None
    numbers, hv, share = hypervolume_series(summary)
    if not numbers:
        return None
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=numbers, y=hv, mode="lines+markers", name="hypervolume (normalised)",
                             line=dict(color="#d62728")), secondary_y=False)
    fig.add_trace(go.Scatter(x=numbers, y=[100 * s for s in share], mode="lines+markers",
                             name="feasible trials so far (%)", line=dict(color="#1f77b4", dash="dot")),
                  secondary_y=True)
    fig.update_xaxes(title_text="trial number", dtick=max(1, len(numbers) // 12))
    fig.update_yaxes(title_text="hypervolume of the feasible front", rangemode="tozero", secondary_y=False)
    fig.update_yaxes(title_text="feasible share (%)", range=[0, 105], dtick=20, secondary_y=True)
    fig.update_layout(legend=dict(orientation="h", y=-0.2), margin=dict(l=70, r=80, t=40, b=110))
    return _html(fig, "plot-progress")


def _layer_label(number: int, recommended: int | None) -> str:
    return f"trial {number}{' ★ recommended' if number == recommended else ''}"


def layers_plot(records: list, shown_numbers: set[int], recommended: int | None) -> str | None:
    """Stacked bars: count per inference of each layer, for the trials ``shown_numbers`` (the
    recommended one first); any other trial with a profile is added from the table
    (:data:`LAYERS_JS`, its data embedded here). None when no trial has a per-layer profile."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative

    palette = qualitative.Dark24  # more colours than layers in most models
    profiled = [r for r in records if r.layers]
    if not profiled:
        return None
    shown = sorted((r for r in profiled if r.number in shown_numbers),
                   key=lambda r: (r.number != recommended, r.number))
    names: dict[str, None] = {}
    for r in shown:
        names.update(dict.fromkeys(str(n) for n, _ in r.layers))
    count = next((r.figures["instructions"] for r in profiled if "instructions" in r.figures), None)
    unit = count.unit if count else "instructions"
    labels = [_layer_label(r.number, recommended) for r in shown]
    fig = go.Figure()
    for i, name in enumerate(names):
        counts = [next((c for n, c in r.layers if str(n) == name), 0.0) for r in shown]
        totals = [sum(c for _, c in r.layers) or 1.0 for r in shown]
        fig.add_trace(go.Bar(
            y=labels, x=counts, name=name, orientation="h", marker_color=palette[i % len(palette)],
            customdata=[[c / t * 100] for c, t in zip(counts, totals)],
            hovertemplate=f"{name}: %{{x:,.0f}} {unit} (%{{customdata[0]:.1f}} %)<extra>%{{y}}</extra>"))
    fig.update_layout(barmode="stack", xaxis_title=f"{unit} per inference, between layer markers",
                      yaxis=dict(autorange="reversed"), legend=dict(orientation="h", y=-0.25, traceorder="normal"),
                      margin=dict(l=190, r=30, t=40, b=150), meta=dict(unit=unit, palette=list(palette)))
    if not shown:
        fig.update_layout(title=dict(text="Pick a trial in the table (its “profile” button) to see its layers",
                                     font=dict(size=13)))
    data = {r.number: {"label": _layer_label(r.number, recommended),
                       "layers": [[str(n), float(c)] for n, c in r.layers]} for r in profiled}
    script = "<script>var MCUS_LAYERS = " + json.dumps(data).replace("</", "<\\/") + ";</script>"
    return script + _html(fig, "plot-layers", height=max(HEIGHT, 220 + 40 * len(shown)))




LAYERS_JS = """
function mcusShowProfile(n){
  var gd=document.getElementById('plot-layers'), p=(window.MCUS_LAYERS||{})[n]; if(!gd||!p) return;
  return mcusRender(gd).then(function(){ mcusAddProfile(gd, p); });
}
function mcusAddProfile(gd, p){
  var known=gd.data.some(function(t){return (t.y||[]).indexOf(p.label)>=0;});
  if(!known){
    var total=p.layers.reduce(function(a,l){return a+l[1];},0)||1, idx=[], xs=[], ys=[], cd=[];
    var meta=gd.layout.meta||{}, unit=meta.unit||'instructions', pal=meta.palette||['#888'];
    p.layers.forEach(function(l){
      var i=gd.data.findIndex(function(t){return t.name===l[0];});
      if(i<0){Plotly.addTraces(gd,{type:'bar',orientation:'h',name:l[0],x:[],y:[],customdata:[],
        marker:{color:pal[gd.data.length%pal.length]},
        hovertemplate:l[0]+': %{x:,.0f} '+unit+' (%{customdata[0]:.1f} %)<extra>%{y}</extra>'});
        i=gd.data.length-1;}
      idx.push(i); xs.push([l[1]]); ys.push([p.label]); cd.push([[100*l[1]/total]]);});
    Plotly.extendTraces(gd,{x:xs,y:ys,customdata:cd},idx);
    var rows=new Set(); gd.data.forEach(function(t){(t.y||[]).forEach(function(y){rows.add(y);});});
    Plotly.relayout(gd,{height:Math.max(%(height)d,220+40*rows.size),'title.text':''});
  }
  document.getElementById('layers').scrollIntoView();
}
""".replace("%(height)d", str(HEIGHT))


def parts_plot(fits: list, chosen: str, deadline_ms: float | None) -> str | None:
    """Price against estimated latency of every catalog part that could run the recommended
    configuration (its core): fitting parts filled, the others open with why they fail; the pick
    ringed. Parts without a known price are not plotted (there is no price to place them at)."""
    import plotly.graph_objects as go

    usable = [f for f in fits if f.compatible and f.est_latency_ms is not None and f.part.has_price]
    if not usable:
        return None
    fig = go.Figure()
    for label, group, symbol in (("fits", [f for f in usable if f.fits], "circle"),
                                 ("does not fit", [f for f in usable if not f.fits], "circle-open")):
        if group:
            fig.add_trace(go.Scatter(
                x=[f.est_latency_ms for f in group], y=[f.part.price_usd for f in group], mode="markers+text",
                name=f"{label} ({len(group)})", text=[f.part.short_name for f in group], textposition="top center",
                marker=dict(size=11, symbol=symbol, color="#1f77b4" if label == "fits" else "#999"),
                customdata=[[f.part.price_text(), "; ".join(f.reasons) or "fits"] for f in group],
                hovertemplate="<b>%{text}</b><br>%{x:.3g} ms (estimated at its clock)<br>%{customdata[0]}"
                              "<br>%{customdata[1]}<extra></extra>"))
    pick = next((f for f in usable if f.part.part == chosen), None)
    if pick is not None:
        fig.add_trace(go.Scatter(x=[pick.est_latency_ms], y=[pick.part.price_usd], mode="markers",
                                 name=f"recommended: {pick.part.short_name}", hoverinfo="skip",
                                 marker=dict(size=22, symbol="circle-open", color="#d62728", line=dict(width=3))))
    if deadline_ms is not None:
        fig.add_vline(x=deadline_ms, line_dash="dash", line_color="#d62728",
                      annotation_text=f"deadline {deadline_ms:g} ms", annotation_position="top left")
    fig.update_layout(xaxis_title="latency per inference, ms (estimated at the part's clock)", xaxis_type="log",
                      yaxis_title="price, USD (catalog; kind and date in the hover)",
                      legend=dict(orientation="h", y=-0.2), margin=dict(l=70, r=30, t=40, b=110))
    return _html(fig, "plot-parts")


SWEEP = ("flash_kb", "ram_kb", "latency_ms")  # beside the quality metrics shown


def sweep_plot(rows: list[Row], knob: str, quality: list[str]) -> str | None:
    """The study's sweep curves when one knob alone varied: each quality metric shown, flash, RAM
    and latency against the knob's value (measured trials; the median where a value repeats)."""
    import statistics

    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    done = [r for r in rows if r.status == "ok"]
    values = sorted({r.knobs.get(knob, "") for r in done}, key=_natural)
    metrics = [m for m in [*quality, *SWEEP] if any(m in r.figures for r in done)][:4]
    if len(values) < 2 or not metrics:
        return None
    fig = make_subplots(rows=2, cols=2, subplot_titles=[_axis_title(m, done) for m in metrics],
                        horizontal_spacing=0.1, vertical_spacing=0.18)
    for i, m in enumerate(metrics):
        ys = []
        for v in values:
            got = [r.figures[m].value for r in done if r.knobs.get(knob, "") == v and m in r.figures]
            ys.append(statistics.median(got) if got else None)
        fig.add_trace(go.Scatter(x=values, y=ys, mode="lines+markers", name=figure_label(m), showlegend=False,
                                 hovertemplate=f"{knob} %{{x}}: %{{y:.4g}}<extra>{figure_label(m)}</extra>"),
                      row=i // 2 + 1, col=i % 2 + 1)
    fig.update_xaxes(type="category", title_text=knob)
    fig.update_layout(margin=dict(l=70, r=30, t=50, b=60))
    return _html(fig, "plot-sweep", height=620)
