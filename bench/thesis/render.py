"""The reproduction's report, ``thesis.html``: the 2020 study's tables and figures, redrawn from
our studies (bench/thesis/run.py), beside the study's published figures (published.py).

Table and figure numbers follow the study's; their row and column layout is reconstructed from
what the project's reference restates of the study (thesis-facts.md): A.1-A.4 the channel sweep
(float32 / int8, without / with re-training), 5.3 magnitude pruning, 5.4 converters and compiler
flags; figures 5.4 accuracy and 5.5 time against channels removed, 5.6 magnitude pruning.

Every number of ours carries its provenance mark (mcusearch.report.PROVENANCE_MARK: E emulated,
~ estimated, S static, H host); the study's columns are marked "study". The page reuses the tool
report's style, its plotly.js inlining and its lazy plot rendering (mcusearch.report).
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path

import published as pub
from mcusearch.figures import Figure
from mcusearch.report import CSS, LEGEND, PROVENANCE_MARK, plotly_js
from mcusearch.report import plots
from mcusearch.report.export import atomic_write

H = html.escape


# ---- our trials as rows ---------------------------------------------------------------------------

@dataclass
class Point:
    """One completed trial in the study's terms."""

    number: int
    removed: int          # channels removed from every conv (0: unpruned)
    dtype: str
    retrain: bool
    sparsity: float
    converter: str
    opt: str
    board: str
    figures: dict[str, Figure]
    layers: list
    uncached: dict | None  # {"cycles": fig dict, "latency_ms": fig dict, "config": ...}

    def fig(self, name: str) -> Figure | None:
        if name in self.figures:
            return self.figures[name]
        if self.uncached and name in ("cycles_nocache", "latency_ms_nocache"):
            return Figure.from_dict(self.uncached[name.removesuffix("_nocache")])
        return None

    def value(self, name: str) -> float | None:
        f = self.fig(name)
        return f.value if f is not None else None


def points(summary, uncached: dict[int, dict]) -> list[Point]:
    """The summary's completed trials as :class:`Point`s."""
    out = []
    for r in summary.records if summary is not None else ():
        if r.status != "ok":
            continue
        c = r.config
        ch = c.get("channels")
        out.append(Point(
            number=r.number, removed=0 if not ch else pub.FILTERS - int(ch[0]),
            dtype=c.get("quantization", ""), retrain=bool(ch) and bool(c.get("retrain_epochs")),
            sparsity=float(c.get("sparsity") or 0.0), converter=c.get("converter", ""),
            opt=c.get("opt_level", ""), board=c.get("board", ""), figures=r.figures,
            layers=r.layers, uncached=uncached.get(r.number)))
    return out


def pick(pts: list[Point], **want) -> Point | None:
    """The first point whose attributes equal ``want``."""
    for p in pts:
        if all(getattr(p, k) == v for k, v in want.items()):
            return p
    return None


# ---- cells -------------------------------------------------------------------------------------------

def cell(fig: Figure | None, fmt: str) -> str:
    """Our figure with its provenance mark and, on hover, how it was obtained."""
    if fig is None or fig.value is None or (isinstance(fig.value, float) and math.isnan(fig.value)):
        return "<td>–</td>"
    mark = PROVENANCE_MARK.get(fig.provenance.value, "?")
    return (f"<td data-v='{fig.value:.6g}' title='{H(fig.provenance.value)}: {H(fig.method)}'>"
            f"{fmt.format(fig.value)} <span class='prov'>{mark}</span></td>")


def study_cell(v: float | None, fmt: str) -> str:
    return "<td class='study'>–</td>" if v is None else f"<td class='study'>{fmt.format(v)}</td>"


def table(headers: list[str], rows: list[str], cls: str = "") -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    return (f"<div class='scroll'><table class='{cls}'><tr>{head}</tr>"
            + "".join(f"<tr>{r}</tr>" for r in rows) + "</table></div>")


def within(p: Point) -> str:
    """Whether the estimated time meets the study's deadline, caches on / off."""
    said = []
    for key in ("latency_ms", "latency_ms_nocache"):
        v = p.value(key)
        said.append("–" if v is None else f"<span class='{'green' if v <= pub.DEADLINE_MS else 'red'}'>"
                    f"{'yes' if v <= pub.DEADLINE_MS else 'no'}</span>")
    return f"<td>{' / '.join(said)}</td>"


PERF_HEADERS = ["instructions <span class='prov'>E</span>", "cycles, caches on ~",
                "cycles, caches off ~", "ms at 216 MHz, caches on ~", "ms, caches off ~",
                f"within {pub.DEADLINE_MS} ms (caches on / off)"]


def perf_cells(p: Point) -> str:
    return (cell(p.fig("instructions"), "{:,.0f}") + cell(p.fig("cycles"), "{:,.0f}")
            + cell(p.fig("cycles_nocache"), "{:,.0f}") + cell(p.fig("latency_ms"), "{:.2f}")
            + cell(p.fig("latency_ms_nocache"), "{:.2f}") + within(p))


# ---- tables A.1-A.4: the channel sweep ---------------------------------------------------------------

CHANNEL_TABLES = (("A.1", "float32", False), ("A.2", "float32", True), ("A.3", "int8", False), ("A.4", "int8", True))


def channel_table(pts: list[Point], dtype: str, retrain: bool) -> str:
    """One of tables A.1-A.4: every channel count of one dtype, without or with re-training."""
    acc = pub.ACCURACY_CHANNELS[(dtype, retrain)]
    rows = []
    for p in sorted((p for p in pts if p.dtype == dtype and (p.retrain == retrain or p.removed == 0)),
                    key=lambda p: p.removed):
        if p.removed == 0 and any(q.removed == 0 and q.dtype == dtype and q.number < p.number for q in pts):
            continue  # the unpruned model once (re-training does not apply to it)
        mem = pub.XCUBE_MEMORY.get((dtype, p.removed), (None, None))
        rows.append(f"<td>{p.removed}</td>" + cell(p.fig("params"), "{:,.0f}")
                    + study_cell(acc.get(p.removed), "{:.4f}") + cell(p.fig("accuracy"), "{:.4f}")
                    + study_cell(mem[0], "{:.2f}") + cell(p.fig("model_flash_kb"), "{:.2f}")
                    + study_cell(mem[1], "{:.2f}") + cell(p.fig("model_ram_kb"), "{:.2f}")
                    + perf_cells(p))
    if not rows:
        return "<p>No completed trial yet.</p>"
    return table(["channels removed (of 32)", "params <span class='prov'>H</span>", "accuracy, study",
                  "accuracy, ours", "flash kB, study (X-CUBE-AI)", "model flash KiB, ours",
                  "RAM kB, study (X-CUBE-AI)", "model RAM KiB, ours", *PERF_HEADERS], rows)


# ---- table 5.3: magnitude pruning ---------------------------------------------------------------------

def magnitude_table(pts: list[Point]) -> str:
    """Table 5.3: each final sparsity and dtype, dense and sparse kernels side by side."""
    rows = []
    keys = sorted({(p.dtype, p.sparsity) for p in pts}, key=lambda k: (k[0] != "float32", k[1]))
    for dtype, s in keys:
        dense = pick(pts, dtype=dtype, sparsity=s, converter="mcusearch-dense")
        sparse = pick(pts, dtype=dtype, sparsity=s, converter="mcusearch")
        any_p = sparse or dense
        speed = ""
        if dense and sparse and sparse.value("instructions"):
            speed = f"{dense.value('instructions') / sparse.value('instructions'):.2f}×"
        k2c = pub.KERAS2C["90 % magnitude-pruned, sparse conv"] if (dtype, s) == ("float32", 0.9) else (None, None, None)
        row = (f"<td>{s:.0%}</td><td>{dtype}</td>" + study_cell(pub.ACCURACY_MAGNITUDE.get((dtype, s)), "{:.4f}")
               + cell(any_p.fig("accuracy"), "{:.4f}") + cell(any_p.fig("weight_sparsity"), "{:.3f}")
               + study_cell(k2c[0], "{:.2f}") + study_cell(k2c[1], "{:.2f}"))
        for p in (dense, sparse):
            row += (cell(p.fig("model_flash_kb"), "{:.2f}") + cell(p.fig("model_ram_kb"), "{:.2f}")
                    + cell(p.fig("instructions"), "{:,.0f}") + cell(p.fig("latency_ms"), "{:.2f}")
                    + cell(p.fig("latency_ms_nocache"), "{:.2f}")) if p else "<td>–</td>" * 5
        rows.append(row + f"<td>{speed or '–'}</td>")
    if not rows:
        return "<p>No completed trial yet.</p>"
    per = ["model flash KiB S", "model RAM KiB S", "instructions E", "ms caches on ~", "ms caches off ~"]
    return table(["final sparsity", "dtype", "accuracy, study", "accuracy, ours", "zeros in kernels H",
                  "flash kB, study (Keras2C sparse)", "RAM kB, study (Keras2C sparse)",
                  *[f"dense: {h}" for h in per], *[f"sparse: {h}" for h in per],
                  "sparse speed-up (instructions)"], rows)


# ---- table 5.4: converters x compiler flags ----------------------------------------------------------

def toolchain_table(pts: list[Point]) -> str:
    """Table 5.4: converter x dtype rows, one column group per optimisation level."""
    opts = sorted({p.opt for p in pts}, key=lambda o: ("-O0", "-O1", "-O2", "-Os", "-O3", "-Ofast").index(o))
    rows = []
    for conv in ("mcusearch", "mcusearch-ref", "aidge"):
        for dtype in ("float32", "int8"):
            group = [pick(pts, converter=conv, dtype=dtype, opt=o) for o in opts]
            if not any(group):
                continue
            first = next(p for p in group if p)
            study = _study_memory(conv, dtype)
            row = (f"<td class='knob'>{H(conv)}</td><td>{dtype}</td><td class='knob note'>"
                   f"{H(pub.STAND_IN.get(conv, ''))}</td>" + study_cell(study[0], "{:.2f}")
                   + study_cell(study[1], "{:.2f}") + cell(first.fig("model_flash_kb"), "{:.2f}")
                   + cell(first.fig("model_ram_kb"), "{:.2f}"))
            for p in group:
                row += (cell(p.fig("instructions"), "{:,.0f}") + cell(p.fig("latency_ms"), "{:.2f}")
                        + cell(p.fig("latency_ms_nocache"), "{:.2f}")) if p else "<td>–</td>" * 3
            rows.append(row)
    if not rows:
        return "<p>No completed trial yet.</p>"
    per = [f"{o}: {h}" for o in opts for h in ("instructions E", "ms caches on ~", "ms caches off ~")]
    return table(["converter", "dtype", "in place of", "flash kB, study", "RAM kB, study",
                  f"model flash KiB S ({opts[0]})", f"model RAM KiB S ({opts[0]})", *per], rows)


def _study_memory(conv: str, dtype: str) -> tuple[float | None, float | None]:
    if conv == "mcusearch":
        return pub.XCUBE_MEMORY.get((dtype, 0), (None, None))
    if conv == "mcusearch-ref" and dtype == "float32":
        return pub.KERAS2C["unpruned"][:2]
    return None, None


# ---- figures 5.4-5.6 --------------------------------------------------------------------------------

PROV_NOTE = {
    "5.4": "Ours: accuracy on the held-out test set, computed on the host (H: Keras for float32, the "
           "TFLite interpreter for int8). Study: its published accuracies on its radar test set (hollow markers).",
    "5.5": "Ours: estimated (~) = emulated instruction count (E, QEMU -icount) × cycles per instruction "
           "from the cycle model of the STM32F722 at 216 MHz, caches on (cortex-m7:stm32f7-216mhz-cache) "
           "and off (cortex-m7:stm32f7-216mhz-nocache); not a board measurement. The study published "
           "no per-point times in our reference, only ratios (see the speed section).",
    "5.6": "Ours: accuracy (H, host) and emulated instructions per inference (E, QEMU -icount) of the same "
           "pruned model with dense and with sparse kernels. Study: its published accuracies (hollow markers).",
}


def _go():
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
    return go, make_subplots


def fig_accuracy_channels(pts: list[Point]) -> str | None:
    """Figure 5.4: accuracy against channels removed, four of our curves and the study's points."""
    go, _ = _go()
    fig = go.Figure()
    colours = {("float32", False): "#1f77b4", ("float32", True): "#2ca02c",
               ("int8", False): "#ff7f0e", ("int8", True): "#d62728"}
    for (dtype, retrain), colour in colours.items():
        sel = sorted((p for p in pts if p.dtype == dtype and (p.retrain == retrain or p.removed == 0)),
                     key=lambda p: p.removed)
        label = f"{dtype}, {'re-trained' if retrain else 'no re-training'}"
        if sel:
            fig.add_trace(go.Scatter(x=[p.removed for p in sel], y=[p.value("accuracy") for p in sel],
                                     mode="lines+markers", name=f"ours: {label} (H)", line=dict(color=colour)))
        study = pub.ACCURACY_CHANNELS[(dtype, retrain)]
        fig.add_trace(go.Scatter(x=list(study), y=list(study.values()), mode="markers",
                                 name=f"study: {label}", marker=dict(symbol="circle-open", size=12, color=colour)))
    fig.update_layout(xaxis_title="channels removed from every conv (of 32)", yaxis_title="test accuracy")
    return plots._html(fig, "fig-5-4") if pts else None


def fig_time_channels(pts: list[Point]) -> str | None:
    """Figure 5.5: estimated time per inference against channels removed, caches on and off."""
    go, _ = _go()
    fig = go.Figure()
    for dtype, colour in (("float32", "#1f77b4"), ("int8", "#d62728")):
        sel = sorted((p for p in pts if p.dtype == dtype and (p.retrain or p.removed == 0)), key=lambda p: p.removed)
        for key, dash, what in (("latency_ms", "solid", "caches on"), ("latency_ms_nocache", "dot", "caches off")):
            xs = [p.removed for p in sel if p.value(key) is not None]
            if xs:
                fig.add_trace(go.Scatter(x=xs, y=[p.value(key) for p in sel if p.value(key) is not None],
                                         mode="lines+markers", name=f"{dtype}, {what} (~)",
                                         line=dict(color=colour, dash=dash)))
    fig.add_hline(y=pub.DEADLINE_MS, line_dash="dash", line_color="#555",
                  annotation_text=f"deadline {pub.DEADLINE_MS} ms")
    fig.update_layout(xaxis_title="channels removed from every conv (of 32)",
                      yaxis_title="ms per inference at 216 MHz (estimated)", yaxis_type="log")
    return plots._html(fig, "fig-5-5") if pts else None


def fig_magnitude(pts: list[Point]) -> str | None:
    """Figure 5.6: accuracy and instructions against final sparsity, dense and sparse kernels."""
    go, make_subplots = _go()
    if not pts:
        return None
    fig = make_subplots(rows=1, cols=2, subplot_titles=["test accuracy", "instructions per inference (E)"])
    for dtype, colour in (("float32", "#1f77b4"), ("int8", "#d62728")):
        sel = sorted((p for p in pts if p.dtype == dtype and p.converter == "mcusearch"), key=lambda p: p.sparsity)
        if sel:
            fig.add_trace(go.Scatter(x=[p.sparsity * 100 for p in sel], y=[p.value("accuracy") for p in sel],
                                     mode="lines+markers", name=f"ours: {dtype} (H)", line=dict(color=colour)),
                          row=1, col=1)
        study = {s: a for (d, s), a in pub.ACCURACY_MAGNITUDE.items() if d == dtype}
        fig.add_trace(go.Scatter(x=[s * 100 for s in study], y=list(study.values()), mode="markers",
                                 name=f"study: {dtype}", marker=dict(symbol="circle-open", size=12, color=colour)),
                      row=1, col=1)
        for conv, dash in (("mcusearch-dense", "dot"), ("mcusearch", "solid")):
            sel = sorted((p for p in pts if p.dtype == dtype and p.converter == conv), key=lambda p: p.sparsity)
            if sel:
                kind = "dense" if conv == "mcusearch-dense" else "sparse where it pays"
                fig.add_trace(go.Scatter(x=[p.sparsity * 100 for p in sel], y=[p.value("instructions") for p in sel],
                                         mode="lines+markers", name=f"{dtype}, {kind} kernels (E)",
                                         line=dict(color=colour, dash=dash)), row=1, col=2)
    fig.update_xaxes(title_text="final sparsity, %")
    return plots._html(fig, "fig-5-6")


# ---- the study's speed claims, ours beside them -------------------------------------------------------

def _ratio(a: Point | None, b: Point | None, key: str = "latency_ms") -> float | None:
    if a is None or b is None or not a.value(key) or not b.value(key):
        return None
    return a.value(key) / b.value(key)


def speed_rows(ch: list[Point], mag: list[Point], tool: list[Point]) -> list[tuple[str, float, float | None, str]]:
    """(the study's claim, its factor, ours, how ours was computed)."""
    unpruned = tool + [p for p in ch if p.removed == 0]  # the channel study's are mcusearch -O3 too
    f_opt = pick(unpruned, converter="mcusearch", dtype="float32", opt="-O3")
    f_ref = pick(tool, converter="mcusearch-ref", dtype="float32", opt="-O3")
    i_opt = pick(unpruned, converter="mcusearch", dtype="int8", opt="-O3")
    full = [p for p in ch if p.removed == 0 and p.dtype == "float32"]
    pruned = [p for p in ch if p.dtype == "float32" and p.retrain]
    most = max(pruned, key=lambda p: p.removed) if pruned else None
    dense = pick(mag, converter="mcusearch-dense", dtype="float32", sparsity=0.9)
    sparse = pick(mag, converter="mcusearch", dtype="float32", sparsity=0.9)
    c = pub.SPEED_CLAIMS
    return [
        (c["converter"][0], c["converter"][1], _ratio(f_ref, f_opt),
         "mcusearch-ref / mcusearch, float32, -O3, estimated ms (caches on)"),
        (c["int8"][0], c["int8"][1], _ratio(f_opt, i_opt), "mcusearch float32 / int8, -O3, estimated ms (caches on)"),
        (c["channels"][0], c["channels"][1], _ratio(full[0] if full else None, most),
         f"unpruned / {most.removed if most else '?'} channels removed, float32, estimated ms (caches on)"),
        (c["sparse"][0], c["sparse"][1], _ratio(dense, sparse),
         "mcusearch-dense / mcusearch at 90 % sparsity, float32, estimated ms (caches on)"),
    ]


def conv_share(p: Point | None) -> float | None:
    """The share of the per-layer instruction counts spent in conv layers (the markers' profile)."""
    if p is None or not p.layers:
        return None
    total = sum(float(c) for _, c in p.layers)
    conv = sum(float(c) for n, c in p.layers if "conv" in str(n).lower())
    return conv / total if total else None


def speed_section(ch, mag, tool) -> str:
    rows = [f"<td class='knob'>{H(what)}</td><td class='study'>{f:g}×</td>"
            f"<td>{'–' if ours is None else f'{ours:.2f}× <span class=prov>~</span>'}</td>"
            f"<td class='knob note'>{H(how)}</td>" for what, f, ours, how in speed_rows(ch, mag, tool)]
    unpruned = tool + [p for p in ch if p.removed == 0]
    share = conv_share(pick(unpruned, converter="mcusearch", dtype="float32", opt="-O3"))
    rows.append(f"<td class='knob'>time in the convolutions</td><td class='study'>&gt; {pub.CONV_SHARE:.0%}</td>"
                f"<td>{'–' if share is None else f'{share:.1%} <span class=prov>E</span>'}</td>"
                "<td class='knob note'>conv layers' share of the per-layer instruction counts (markers), "
                "mcusearch float32 -O3, unpruned</td>")
    return table(["the study's finding", "study", "ours", "how ours was computed"], rows)


# ---- the free search ---------------------------------------------------------------------------------

def free_section(exp, rec, why_none: str | None, f722_price: float | None, report_link: str | None) -> str:
    """Deliverable 3: does a cheaper part than the F722 suffice, with what configuration."""
    if exp is None or exp.summary is None:
        return "<p>The free search has not run yet.</p>"
    lim = exp.summary.limits
    done = [r for r in exp.summary.records if r.status == "ok"]
    feas = [r for r in done if r.feasible]
    parts = [f"<p>Constraints, translated: deadline {lim.get('deadline_ms')} ms judged per part at its own "
             f"clock (216 MHz on the STM32F722), firmware within {lim.get('flash_kb'):g} KB flash and "
             f"{lim.get('ram_kb'):g} KB RAM (the STM32F722ZE), accuracy ≥ {lim.get('accuracy_min', float('nan')):.4f} "
             f"(the unpruned float32 model's minus {1.5:g} points). {len(done)} trials measured, "
             f"{len(feas)} met every constraint on the emulated board.</p>"]
    if rec is None:
        parts.append(f"<div class='card none'><b>No part meets the constraints</b>: {H(why_none or '')}</div>")
    else:
        price = f"{rec.price_usd:g} USD" if rec.price_usd is not None else "no price known"
        answer = cheaper_answer(rec, f722_price)
        f = rec.fit.to_dict()
        r = next(x for x in exp.summary.records if x.number == rec.trial)
        parts.append(
            f"<div class='card'><p class='part'>Does a cheaper part than the STM32F722ZE suffice? {answer} "
            f"Recommended: <b>{H(rec.part.part)}</b> ({H(price)}, {H(rec.basis)})</p>"
            f"<p>with trial {rec.trial}: {H(_config(rec.config))}</p>"
            + table(["figure", "value", "how"], [
                f"<td>latency on {H(rec.part.part)}</td><td>{_num(f['est_latency_ms'], '{:.2f}')} ms "
                f"<span class=prov>~</span></td><td class='knob note'>{H(f['latency_method'])}</td>",
                *[f"<td>{H(k)}</td>" + cell(r.figures.get(k), fmt) + f"<td class='knob note'>"
                  f"{H(r.figures[k].method) if k in r.figures else ''}</td>"
                  for k, fmt in (("accuracy", "{:.4f}"), ("instructions", "{:,.0f}"), ("flash_kb", "{:.1f}"),
                                 ("ram_kb", "{:.1f}"), ("model_flash_kb", "{:.2f}"), ("model_ram_kb", "{:.2f}"))]])
            + f"<p class='note'>{H(rec.why)}</p></div>")
    if report_link:
        parts.append(f"<p>The free search's own report (the answer card, runners-up, why not cheaper, every "
                     f"trial): <a href='{H(report_link)}'>{H(report_link)}</a></p>")
    return "".join(parts)


def cheaper_answer(rec, f722_price: float | None) -> str:
    """The answer to "is a cheaper part than the F722 enough", from the recommendation and the
    catalog's F722 price (None when the catalog has none)."""
    if rec.part.part.startswith("STM32F722"):
        return "<b>No</b>: the cheapest part meeting every constraint is the F722 itself."
    if f722_price is None:
        return ("<b>Not by price</b>: the catalog has no sourced price for the STM32F722ZE, so the tool cannot "
                "rank it; the cheapest part with a known price that meets every constraint is below.")
    if rec.price_usd is not None and rec.price_usd < f722_price:
        return f"<b>Yes</b>: the STM32F722ZE costs {f722_price:g} USD in the catalog."
    return f"<b>No</b>: the STM32F722ZE costs {f722_price:g} USD in the catalog."


def _num(v, fmt: str) -> str:
    return "–" if v is None else fmt.format(v)


def _config(config: dict) -> str:
    from mcusearch.select import config_text  # the recommendation's own wording of a configuration
    return config_text(config)


# ---- the page ---------------------------------------------------------------------------------------

def section(sid: str, title: str, *body: str | None) -> tuple[str, str, str]:
    """(id, short title for the navigation, the section's HTML)."""
    return (sid, title.split(":")[0], f"<section id='{sid}'><h2>{H(title)}</h2>"
            + "".join(b for b in body if b) + "</section>")


def write_thesis_report(out: Path, exps: dict, uncached: dict, rec, why_none, timing: dict,
                        f722_price: float | None = None, free_report: str | None = None) -> Path:
    """Write ``out`` (one self-contained HTML file) from the experiments and return its path."""
    from comparison import comparison_html

    pts = {k: points(e.summary, uncached.get(k, {})) for k, e in exps.items()}
    ch, mag, tool = pts.get("channels", []), pts.get("magnitude", []), pts.get("toolchain", [])
    ch = [p for p in ch if p.sparsity == 0]
    tables = [section(f"table-{t.replace('.', '-')}",
                      f"Table {t}: channel pruning, {dtype}, {'with' if retrain else 'without'} re-training",
                      channel_table(ch, dtype, retrain)) for t, dtype, retrain in CHANNEL_TABLES]
    sections = [
        section("about", "What this is", _about(exps, timing)),
        *tables,
        section("table-5-3", "Table 5.3: magnitude pruning, dense and sparse kernels", magnitude_table(mag)),
        section("table-5-4", "Table 5.4: converters and compiler flags (unpruned model)", toolchain_table(tool)),
        section("fig-5-4-s", "Figure 5.4: accuracy against channels removed",
                fig_accuracy_channels(ch) or "<p>No data yet.</p>", f"<p class='note'>{PROV_NOTE['5.4']}</p>"),
        section("fig-5-5-s", "Figure 5.5: time per inference against channels removed",
                fig_time_channels(ch) or "<p>No data yet.</p>", f"<p class='note'>{PROV_NOTE['5.5']}</p>"),
        section("fig-5-6-s", "Figure 5.6: magnitude pruning, accuracy and instructions",
                fig_magnitude(mag) or "<p>No data yet.</p>", f"<p class='note'>{PROV_NOTE['5.6']}</p>"),
        section("speed", "The study's speed findings, ours beside them", speed_section(ch, mag, tool)),
        section("free", "A free search under the study's constraints: is a cheaper part enough?",
                free_section(exps.get("free"), rec, why_none, f722_price, free_report)),
        section("differences", "Where our numbers differ from the study's, and why",
                comparison_html(ch, mag, tool)),
    ]
    nav = " ".join(f"<a href='#{sid}'>{H(short)}</a>" for sid, short, _ in sections)
    page = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
            "<meta name='viewport' content='width=device-width, initial-scale=1'>",
            "<title>mcusearch: the 2020 study reproduced</title>",
            f"<style>{CSS} td.study{{background:#f3f6ff}} td.green{{color:#1a6}} .red{{color:#c11}}</style>"
            f"<script type='text/plain' id='mcus-plotly'>{plotly_js()}</script></head><body>",
            "<h1>The 2020 study (Myllenberg &amp; Johansson, LU-CS-EX 2020-46), reproduced with mcusearch</h1>",
            f"<nav>{nav}</nav>", f"<p class='note'>{H(LEGEND)}. Blue cells: the study's published figures "
            "(its board, its radar data, its converters). Hover a figure of ours for how it was obtained.</p>",
            *(body for _, _, body in sections), f"<script>{plots.RENDER_JS}</script></body></html>"]
    atomic_write(out, "\n".join(page))
    return out


def planned(spec) -> int:
    """The trials a study ends with: ``n_trials``, or the grid's size when that is smaller."""
    from mcusearch.knobs import knobs_from_spec, search_space

    if spec.search.sampler != "grid":
        return spec.search.n_trials
    return min(spec.search.n_trials, math.prod(len(v) for v in search_space(knobs_from_spec(spec)).values()))


def _about(exps: dict, timing: dict) -> str:
    rows = []
    for k, e in exps.items():
        s = e.summary
        n = len([r for r in s.records if r.status == "ok"]) if s else 0
        failed = len([r for r in s.records if r.status == "failed"]) if s else 0
        rows.append(f"<td class='knob'>{H(k)}</td><td class='knob'>{H(e.spec.name)}</td><td>{n}</td><td>{failed}</td>"
                    f"<td>{planned(e.spec)}</td><td>{e.seconds:.0f}</td>")
    mode = "quick subset (--quick): small data, few epochs, few grid points; not the study's numbers" \
        if timing.get("quick") else "full"
    return (f"<p>Mode: {H(mode)}. The study's model (6 × Conv2D 3×3, 66,264 parameters) on our default data "
            "(smartwatch IMU frames shaped as the study's 30 × 20 radar frames, 4 classes), every "
            "experiment a grid search on the emulated Cortex-M7 (QEMU mps2-an500). Specs: bench/thesis/*.yaml; "
            f"this invocation took {timing.get('wall_s', 0):.0f} s.</p>"
            + table(["experiment", "spec name", "trials ok", "failed", "planned", "seconds (this run)"], rows))
