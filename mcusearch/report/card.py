"""The answer card: the recommended part and configuration, each constraint with its margin, the
price, the two runners-up and why they lost, and why no cheaper part was picked.

Entry points: :func:`build_card` (the facts, from the study and the spec's selection context) and
:func:`card_html`. The selection rules themselves live in :mod:`mcusearch.select`; this module only
re-reads them per part to explain the pick.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field

from mcusearch.figures import Figure, Provenance
from mcusearch.select import Fit, Recommendation, _rank_key, eligible, trial_fits
from mcusearch.study import StudySummary, TrialRecord

AMBER = 0.10  # headroom below this fraction of the limit (and not violated) shows amber
BOUNDS = {"flash_kb": ("flash_kb", "max"), "ram_kb": ("ram_kb", "max"), "deadline_ms": ("latency_ms", "max")}


@dataclass
class Selection:
    """What the recommendation was judged against: the catalog, the margin, the boards."""

    parts: list
    margin: float
    deadline_ms: float | None
    board_maps: dict

    def fits(self, r: TrialRecord) -> list[Fit]:
        """Every catalog part judged against one trial."""
        return trial_fits(r.config, r.figures, self.parts, margin=self.margin,
                          deadline_ms=self.deadline_ms, **self.board_maps)


@dataclass
class Check:
    """One constraint of the recommended (trial, part): its figure, the limit, the headroom."""

    label: str
    figure: Figure | None
    limit: float
    kind: str        # max (an upper limit) | min (a floor)
    source: str      # where the limit comes from: the spec's key, or the part

    @property
    def headroom(self) -> float | None:
        """Signed fraction of the limit left: > 0 within it, < 0 violated."""
        if self.figure is None or not self.limit:
            return None
        d = self.limit - self.figure.value if self.kind == "max" else self.figure.value - self.limit
        return d / abs(self.limit)

    @property
    def status(self) -> str:
        h = self.headroom
        return "unknown" if h is None else "red" if h < 0 else "amber" if h < AMBER else "green"


@dataclass
class Card:
    """The facts the card shows."""

    rec: Recommendation
    record: TrialRecord | None
    checks: list[Check] = field(default_factory=list)
    runners_up: list[tuple[str, str]] = field(default_factory=list)   # (part and trial, why it lost)
    why_not_cheaper: str = ""
    fits: list[Fit] = field(default_factory=list)  # every catalog part judged on the recommended trial


def _latency_figure(rec: Recommendation, r: TrialRecord, sel: Selection) -> Figure | None:
    """The latency at the part's clock, as :func:`mcusearch.select.evaluate_parts` estimated it."""
    if rec.fit.est_latency_ms is None:
        return None
    board = r.config.get("board", "?")
    cpi = sel.board_maps.get("cpi_by_board", {}).get(board, 1.0)
    how = ("the trial's cycle figure" if "cycles" in r.figures
           else f"instructions on {board} × CPI {cpi:g}")
    return Figure(rec.fit.est_latency_ms, "ms", Provenance.ESTIMATED,
                  f"{how} at {rec.part.clock_mhz:g} MHz (not measured on the part)")


def _checks(rec: Recommendation, r: TrialRecord, limits: dict[str, float], sel: Selection | None,
            bounds: dict[str, tuple[str, str]]) -> list[Check]:
    """The spec's constraints, then (with the selection context) the part's memory less the margin."""
    from mcusearch.report.plots import figure_label

    out = []
    for key, limit in limits.items():
        metric, kind = bounds.get(key) or BOUNDS.get(key) or (key.rpartition("_")[0], key.rpartition("_")[2])
        if key == "deadline_ms" and sel is not None:
            fig, label = _latency_figure(rec, r, sel), f"latency on {rec.part.short_name}"
        else:
            fig, label = r.figures.get(metric), figure_label(metric)
        out.append(Check(label, fig, limit, kind, f"spec: constraints.{key}"))
    if sel is None:
        return out  # the part's memory less the spec's margin: the margin is in the spec
    p, keep = rec.part, 1.0 - sel.margin
    for metric, size, what in (("flash_kb", p.flash_kb, "flash"), ("ram_kb", p.ram_kb, "RAM")):
        out.append(Check(f"{what} (whole firmware) in {p.short_name}", r.figures.get(metric), size * keep,
                         "max", f"part: {size:g} kB less the {1 - keep:.0%} margin"))
    return out


def _lost_because(best: tuple[Fit, TrialRecord], other: tuple[Fit, TrialRecord]) -> str:
    """Why ``other`` ranks below ``best`` (the order of :func:`mcusearch.select.recommend`)."""
    (bf, br), (of, orec) = best, other
    bp, op = bf.part, of.part
    if op.has_price and bp.has_price and op.price_usd > bp.price_usd:
        return f"costs {op.price_usd - bp.price_usd:.2f} USD more ({op.price_text()})"
    if not op.has_price and bp.has_price:
        return "no known price: it cannot be compared with a priced part"
    if op.size_key > bp.size_key and not (op.has_price or bp.has_price):
        return f"no price known for either; larger ({op.flash_kb:g} kB flash, {op.ram_kb:g} kB RAM)"
    acc_b, acc_o = br.figures.get("accuracy"), orec.figures.get("accuracy")
    if acc_b and acc_o and acc_o.value < acc_b.value:
        return f"same price; its best trial ({orec.number}) is less accurate ({acc_o.value:.3f} < {acc_b.value:.3f})"
    return "same price and accuracy; ranked after it by instructions, size or name"


def _runners_up(pairs: list[tuple[Fit, TrialRecord]], n: int = 2) -> list[tuple[str, str]]:
    """The next ``n`` distinct parts in the recommendation's ranking, each with its best trial."""
    best_per_part: dict[str, tuple[Fit, TrialRecord]] = {}
    for f, r in sorted(pairs, key=lambda fr: _rank_key(*fr)):
        best_per_part.setdefault(f.part.part, (f, r))
    ranked = list(best_per_part.values())
    return [(f"{f.part.part} with trial {r.number}", _lost_because(ranked[0], (f, r)))
            for f, r in ranked[1:1 + n]]


def _closest(q, trials: list[TrialRecord], sel: Selection) -> tuple[Fit, TrialRecord] | None:
    """The trial on which part ``q`` comes closest to fitting (compatible first, fewest failed checks)."""
    best = None
    for r in trials:
        f = next(f for f in sel.fits(r) if f.part.part == q.part)
        if best is None or (not f.compatible, len(f.reasons)) < (not best[0].compatible, len(best[0].reasons)):
            best = (f, r)
    return best


def _why_not_cheaper(rec: Recommendation, trials: list[TrialRecord], sel: Selection) -> str:
    """The cheapest part below the pick (by price, or by size when the pick has none) that the
    trials' core could use, and the checks it failed; then how many cheaper parts have another core."""
    p = rec.part
    cheaper = sorted((q for q in sel.parts if (q.has_price and (not p.has_price or q.price_usd < p.price_usd))
                      or (not p.has_price and not q.has_price and q.size_key < p.size_key)),
                     key=lambda c: (c.price_usd if c.has_price else float("inf"), c.size_key, c.part))
    if not cheaper:
        return f"No catalog part is cheaper than {p.short_name}" + ("." if p.has_price else " or smaller.")
    if not trials:
        return f"{cheaper[0].part}: no trial met the spec's constraints to judge it on."
    judged = [(q, _closest(q, trials, sel)) for q in cheaper]
    usable = [(q, fr) for q, fr in judged if fr[0].compatible]
    other = [q for q, fr in judged if not fr[0].compatible]
    out = []
    if usable:
        q, (f, r) = usable[0]
        price = f"{q.price_usd:g} USD" if q.has_price else "no price, smaller"
        out.append(f"{q.part} ({price}), the cheapest with a usable core, fails even with its closest "
                   f"trial {r.number}: {'; '.join(f.reasons)}.")
    if other and not usable:
        cores = sorted({sel.board_maps.get("core_by_board", {}).get(r.config.get("board", ""), "?") for r in trials})
        out.append(f"No cheaper catalog part can run the firmware of these trials ({', '.join(cores)}).")
    if other:
        q = other[0]
        price = f"{q.price_usd:g} USD" if q.has_price else "no price"
        out.append(f"{len(other)} cheaper part(s) cannot run these trials' firmware, the cheapest "
                   f"{q.part} ({price}): {_closest(q, trials, sel)[0].reasons[0]}.")
    return " ".join(out)


def build_card(summary: StudySummary, rec: Recommendation, sel: Selection | None,
               bounds: dict[str, tuple[str, str]] | None = None) -> Card:
    """The card's facts. Without ``sel`` (no spec at hand) only the pick and its figures are known."""
    record = next((r for r in summary.records if r.number == rec.trial), None)
    card = Card(rec, record)
    if record is None:
        return card
    card.checks = _checks(rec, record, summary.limits, sel, bounds or {})
    if sel is None:
        return card
    trials = [r for r in summary.records if eligible(r)]
    pairs = [(f, r) for r in trials for f in sel.fits(r) if f.fits]
    card.runners_up = _runners_up(pairs)
    card.fits = sel.fits(record)
    card.why_not_cheaper = _why_not_cheaper(rec, trials, sel)
    return card


# ---- HTML --------------------------------------------------------------------------------------
def _fig_html(fig: Figure | None, fmt: str = "{:.4g}") -> str:
    from mcusearch.report import PROVENANCE_MARK

    if fig is None:
        return "–"
    mark = PROVENANCE_MARK.get(fig.provenance.value, "?")
    tip = html.escape(f"{fig.provenance.value}: {fig.method}")
    return (f"{html.escape(fmt.format(fig.value))} {html.escape(fig.unit)} "
            f"<span class='prov' title='{tip}'>{mark}</span>")


def _price_html(part) -> str:
    if not part.has_price:
        return "<b>no price known</b> (the smallest fitting part was chosen; check its price before buying)"
    bits = [html.escape(part.price_kind or "kind not stated")]
    if part.price_qty not in (None, ""):
        bits.append(f"qty {html.escape(str(part.price_qty))}")
    bits.append(html.escape(str(part.price_date)) if part.price_date else "date not stated")
    src = " ".join(str(part.price_source or "source not stated").split())
    src_html = (f"<a href='{html.escape(src)}'>source</a>" if src.startswith(("http://", "https://"))
                else html.escape(src))
    return f"<b>{part.price_usd:g} USD</b> · {' · '.join(bits)} · {src_html}"


def _checks_html(checks: list[Check]) -> str:
    rows = []
    for c in checks:
        h = c.headroom
        margin = "–" if h is None else f"{h:+.1%}"
        op = "≤" if c.kind == "max" else "≥"
        rows.append(f"<tr><td>{html.escape(c.label)}</td><td>{_fig_html(c.figure)}</td>"
                    f"<td>{op} {c.limit:.4g} <small>({html.escape(c.source)})</small></td>"
                    f"<td class='margin {c.status}'><span class='dot'></span>{margin}</td></tr>")
    head = "<tr><th>constraint</th><th>figure</th><th>limit</th><th>margin</th></tr>"
    return f"<table class='checks'><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def card_html(card: Card | None, why_none: str | None) -> str:
    """The card as HTML (an ``<section id='answer'>``)."""
    from mcusearch.report import knobs_text

    if card is None:
        return (f"<section id='answer' class='card none'><h2>No recommendation</h2>"
                f"<p>{html.escape(why_none or 'no spec to judge against (spec.yaml missing in the run folder)')}."
                "</p></section>")
    rec, p = card.rec, card.rec.part
    out = [f"<section id='answer' class='card'><h2>Buy <span class='part'>{html.escape(p.part)}</span></h2>",
           f"<p class='sub'>{html.escape(p.core)}, FPU {html.escape(p.fpu)}, {p.clock_mhz:g} MHz, "
           f"{p.flash_kb:g} kB flash, {p.ram_kb:g} kB RAM · price: {_price_html(p)}</p>",
           f"<p>with <a href='#trial-{rec.trial}'>trial {rec.trial}</a>: "
           f"<b>{html.escape(knobs_text(rec.config))}</b></p>",
           _checks_html(card.checks)]
    if card.runners_up:
        items = "".join(f"<li><b>{html.escape(n)}</b>: {html.escape(w)}</li>" for n, w in card.runners_up)
        out.append(f"<h3>Runners-up</h3><ol class='runners'>{items}</ol>")
    if card.why_not_cheaper:
        out.append(f"<p class='cheaper'><b>Why not cheaper?</b> {html.escape(card.why_not_cheaper)}</p>")
    out.append(f"<details><summary>How this was chosen</summary><p>{html.escape(rec.why)}</p>"
               f"<p>Basis: {html.escape(rec.basis)}</p></details></section>")
    return "".join(out)
