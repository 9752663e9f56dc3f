"""Selection: which catalog parts a trial's firmware fits, the cheapest one, and the recommendation.

Entry points: :func:`evaluate_parts` (one trial's numbers -> a :class:`Fit` per part),
:func:`cheapest`, :func:`mcu_cost` / :func:`mcu_cost_figure` (the "MCU cost" objective) and
:func:`recommend` (all trials -> the recommended (part, configuration) and why).

A part **fits** a trial when (see :mod:`mcusearch.catalog` for the compatibility rules)

* it is compatible: same core as the board the trial ran on, and an FPU if the firmware needs one;
* the whole firmware (harness + model, not the model alone) fits with the spec's margin:
  ``flash_kb ≤ part.flash_kb × (1 − margin)`` and ``ram_kb ≤ part.ram_kb × (1 − margin)``.
  A part with no on-chip flash (``flash_kb: 0``) never fits: its external flash has no size in
  the catalog (a spec can give one by overriding ``flash_kb`` for that part). ``ram_kb`` of a part
  is all its on-chip SRAM, which is not always one contiguous region (TCM, CCM): the margin is
  also what covers that, and the stack/heap the linker script does not reserve;
* the latency estimated at the part's clock (``count × cpi / (MHz × 1e3)``) is within the
  deadline, when there is one. The margin applies to memory only, not to the latency.

**Per-part latency.** When the trial carries its own cycle estimate for a part
(``part_cycles``: the profile of this very firmware re-weighted for the part's memory system, see
:mod:`mcusearch.parts.estimate`), the latency is ``cycles / clock`` with its low/high bounds and
the memory configuration named. Otherwise it is the board's count × CPI at the part's clock, and
the method says the part's own memory system was not modelled.

**Energy per inference** (:func:`part_energy_uj`), estimated: run current at the part's clock (mA)
× supply voltage (V) × latency (ms) = µJ, only where the catalog has a sourced run current at that
clock and a sourced voltage; otherwise no figure, and the reason. ``energy_uj`` given as a limit is
judged per part like the deadline (a part without an energy figure then does not fit); as an
objective (:func:`energy_figure`) it is the lowest energy over the trial's fitting parts that have
one, else the sentinel ``ENERGY_NONE``.

**Ranking** (:func:`cheapest`). Parts with a known price come first, cheapest first: a priced
fitting part is preferred to unpriced ones, because only a known price can be compared — the
``basis`` then says how many fitting parts have no known price. When no fitting part has a price,
the smallest part wins: by ``(flash_kb, ram_kb, clock_mhz)`` ascending, and ``basis`` says so.
Catalog prices are of mixed kind (vendor announcement, distributor list, second-hand note, BOM)
and quantity: the basis names the kind and source so a reader can judge them.

**MCU cost as an objective** (:func:`mcu_cost`, minimised). The price in USD of the trial's
cheapest fitting part when it has one; ``MCU_COST_UNPRICED + rank`` (1001, 1002, ...) when the
fitting parts have no price, ``rank`` being the place of the smallest fitting part in the whole
catalog ordered by size (so any priced fit beats any unpriced fit, and a smaller part beats a
larger one); ``MCU_COST_NONE`` (1e6) when no part fits. Finite sentinels, not ``inf``, so that
NSGA-II's crowding distance and the plots keep working. Values ≥ 1000 are not dollars.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Iterable

from mcusearch.catalog import Part, est_latency_ms, incompatibility, needs_fpu as _needs_fpu
from mcusearch.errors import SpecError
from mcusearch.figures import Figure, Provenance, number

MCU_COST_UNPRICED = 1000.0   # + size rank (1-based) when no fitting part has a price
MCU_COST_NONE = 1.0e6        # no catalog part fits
ENERGY_NONE = 1.0e9          # µJ: no fitting part has an energy figure (not an energy)
DEADLINE_KEY = "deadline_ms"  # the trial constraint that is re-judged per part, at the part's clock
ENERGY_KEY = "energy_uj"      # also re-judged per part
PER_PART_KEYS = (DEADLINE_KEY, ENERGY_KEY)


@dataclass
class Fit:
    """One part judged against one trial. ``reasons``: each failed check, with its numbers."""

    part: Part
    fits: bool
    reasons: list[str]
    est_latency_ms: float | None   # at the part's clock (an estimate); None if incompatible/unknown
    compatible: bool = True
    basis: str = ""                # set by :func:`cheapest` on the part it picks
    latency_low_ms: float | None = None
    latency_high_ms: float | None = None
    latency_method: str = ""       # how est_latency_ms was obtained (memory configuration named)
    energy_uj: float | None = None  # estimated energy per inference; None: see energy_note
    energy_note: str = ""          # how energy_uj was obtained, or why there is none

    def to_dict(self) -> dict:
        return {"part": self.part.part, "fits": self.fits, "reasons": list(self.reasons),
                "est_latency_ms": self.est_latency_ms, "latency_low_ms": self.latency_low_ms,
                "latency_high_ms": self.latency_high_ms, "latency_method": self.latency_method,
                "energy_uj": self.energy_uj, "energy_note": self.energy_note, "compatible": self.compatible,
                "price_usd": self.part.price_usd, "basis": self.basis}


@dataclass(frozen=True)
class PartLatency:
    """Estimated time per inference on one part, with its bounds and how it was obtained."""

    ms: float
    low_ms: float
    high_ms: float
    method: str


def part_energy_uj(part: Part, latency_ms: float | None) -> tuple[float | None, str]:
    """(µJ per inference, how) or (None, why not): run current × supply voltage × latency.

    mA × V = mW and mW × ms = µJ. Only a sourced run current at the part's own clock and a sourced
    supply voltage are used (:meth:`~mcusearch.catalog.Part.run_current_at_clock`).
    """
    if latency_ms is None:
        return None, "no latency estimate for this part"
    ma, how = part.run_current_at_clock()
    if ma is None:
        return None, f"no energy figure: {how}"
    if part.supply_v is None:
        note = f" ({part.supply_v_note})" if part.supply_v_note else ""
        return None, (f"no energy figure: no supply voltage in a source for the run current{note}; "
                      "give supply_v and supply_v_source in catalog.parts")
    uj = ma * part.supply_v * latency_ms
    return uj, (f"estimated: {ma:.4g} mA x {part.supply_v:g} V x {latency_ms:.4g} ms = {uj:.4g} uJ; "
                f"current {how}; voltage: {part.supply_v_source}")


def part_latency(part: Part, count_per_inference: float | None, cpi: float,
                 part_cycles: dict | None) -> PartLatency | None:
    """The latency on ``part``: its own cycle estimate when the trial has one, else count × CPI."""
    mhz_k = float(part.clock_mhz) * 1e3
    if part_cycles is not None and "cycles" in part_cycles:
        c = part_cycles
        return PartLatency(c["cycles"] / mhz_k, c.get("cycles_low", c["cycles"]) / mhz_k,
                           c.get("cycles_high", c["cycles"]) / mhz_k,
                           f"estimated: {c['cycles']:,.0f} cycles per inference for this part's memory system "
                           f"({c.get('memory', '?')}) at {part.clock_mhz:g} MHz"
                           + (f", {c['calibration']}" if c.get("calibration_factor") else ""))
    if count_per_inference is None or not math.isfinite(count_per_inference):
        return None
    ms = est_latency_ms(part, count_per_inference, cpi)
    why = f": {part_cycles['reason']}" if part_cycles and part_cycles.get("reason") else ""
    return PartLatency(ms, ms, ms, f"estimated: {count_per_inference:,.0f} x CPI {cpi:g} (the trial's board) at "
                                   f"{part.clock_mhz:g} MHz; the part's own memory system not modelled{why}")


def _check_margin(margin: float) -> float:
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin < 1:
        raise SpecError("catalog.margin", f"expected a fraction 0 <= margin < 1, got {margin!r}")
    return float(margin)


def evaluate_parts(parts: Iterable[Part], *, core: str, needs_fpu: bool, flash_kb: float | None,
                   ram_kb: float | None, count_per_inference: float | None, cpi: float = 1.0,
                   deadline_ms: float | None = None, margin: float = 0.1, energy_uj: float | None = None,
                   part_cycles: dict[str, dict] | None = None) -> list[Fit]:
    """Judge every part against one trial's whole-firmware flash/RAM, latency and energy.

    ``part_cycles``: part name -> the trial's own cycle estimate for that part (``cycles``,
    ``cycles_low``, ``cycles_high``, ``memory``); parts without one use ``count × cpi``.
    ``energy_uj``: a limit on the energy per inference, judged per part.
    """
    margin = _check_margin(margin)
    out = []
    for p in parts:
        why = incompatibility(p, core, needs_fpu) if core else "the trial's board has no known core"
        if why:
            out.append(Fit(p, False, [why], None, compatible=False))
            continue
        reasons = memory_reasons(p, flash_kb, ram_kb, margin)
        lat = part_latency(p, count_per_inference, cpi, (part_cycles or {}).get(p.part))
        est = lat.ms if lat else None
        energy, note = part_energy_uj(p, est)
        if deadline_ms is not None:
            if lat is None:
                reasons.append("latency unknown (no count per inference) and a deadline is set")
            elif est > deadline_ms:
                reasons.append(f"latency {est:.3g} ms ({lat.method}) > deadline {deadline_ms:g} ms")
        if energy_uj is not None:
            if energy is None:
                reasons.append(f"energy limit {energy_uj:g} uJ set, and {note}")
            elif energy > energy_uj:
                reasons.append(f"energy {energy:.3g} uJ ({note}) > limit {energy_uj:g} uJ")
        out.append(Fit(p, not reasons, reasons, est, latency_low_ms=lat.low_ms if lat else None,
                       latency_high_ms=lat.high_ms if lat else None, latency_method=lat.method if lat else "",
                       energy_uj=energy, energy_note=note))
    return out


def memory_reasons(p: Part, flash_kb: float | None, ram_kb: float | None, margin: float) -> list[str]:
    """Why the whole firmware does not fit ``p``'s flash and RAM less the margin (empty: it fits)."""
    reasons: list[str] = []
    keep = 1.0 - margin
    if flash_kb is None:
        reasons.append("flash unknown (no flash_kb figure)")
    elif p.flash_kb <= 0:
        reasons.append("no on-chip flash (needs external flash of a size the catalog does not "
                       "give; set flash_kb for this part in catalog.parts to consider it)")
    elif flash_kb > p.flash_kb * keep:
        reasons.append(f"flash {flash_kb:.1f} kB > {p.flash_kb:g} kB × (1 − margin {margin:g}) "
                       f"= {p.flash_kb * keep:.1f} kB")
    if ram_kb is None:
        reasons.append("RAM unknown (no ram_kb figure)")
    elif ram_kb > p.ram_kb * keep:
        reasons.append(f"RAM {ram_kb:.1f} kB > {p.ram_kb:g} kB × (1 − margin {margin:g}) "
                       f"= {p.ram_kb * keep:.1f} kB")
    return reasons


def _price_key(f: Fit) -> tuple:
    return (f.part.price_usd, f.part.size_key, f.part.part)


def _size_key(f: Fit) -> tuple:
    return (f.part.size_key, f.part.part)


def _basis(best: Fit, fitting: list[Fit]) -> str:
    """Why ``best`` among the fitting parts: its price (and how many could not be priced) or its size."""
    names = {f.part.part: f.part for f in fitting}
    priced = [q for q in names.values() if q.has_price]
    p = best.part
    if p.has_price:
        basis = f"price: {p.price_text()}"
        unpriced = len(names) - len(priced)
        if unpriced:
            basis += (f"; the cheapest of the {len(priced)} fitting part(s) with a known price "
                      f"({unpriced} other fitting part(s) have no known price)")
        return basis
    return (f"no price known for any of the {len(names)} fitting part(s): smallest memory and clock "
            f"(flash {p.flash_kb:g} kB, RAM {p.ram_kb:g} kB, {p.clock_mhz:g} MHz)")


def cheapest(fits: Iterable[Fit]) -> Fit | None:
    """The fitting part to buy: the cheapest priced one, else the smallest; ``basis`` says which."""
    fitting = [f for f in fits if f.fits]
    if not fitting:
        return None
    priced = [f for f in fitting if f.part.has_price]
    best = min(priced, key=_price_key) if priced else min(fitting, key=_size_key)
    return dataclasses.replace(best, reasons=list(best.reasons), basis=_basis(best, fitting))


def size_rank(part: Part, parts: Iterable[Part]) -> int:
    """1-based place of ``part`` among ``parts`` ordered by (flash_kb, ram_kb, clock_mhz, name)."""
    order = sorted(parts, key=lambda q: (q.size_key, q.part))
    return next(i for i, q in enumerate(order, 1) if q.part == part.part)


def mcu_cost(fits: list[Fit]) -> float:
    """The "MCU cost" objective of one trial (see the module doc): USD, or a documented sentinel."""
    best = cheapest(fits)
    if best is None:
        return MCU_COST_NONE
    if best.part.has_price:
        return float(best.part.price_usd)
    return MCU_COST_UNPRICED + size_rank(best.part, [f.part for f in fits])


def mcu_cost_figure(fits: list[Fit]) -> Figure:
    """:func:`mcu_cost` as a :class:`Figure` whose method names the part and the basis."""
    value = mcu_cost(fits)
    best = cheapest(fits)
    if best is None:
        method = f"no catalog part fits ({len(fits)} judged): sentinel {MCU_COST_NONE:g}"
    elif best.part.has_price:
        method = f"cheapest fitting catalog part {best.part.part}: {best.basis}"
    else:
        method = (f"{best.part.part}: no fitting part has a known price; {MCU_COST_UNPRICED:g} + its size "
                  f"rank {value - MCU_COST_UNPRICED:g} of {len(fits)} catalog parts (not dollars)")
    return Figure(value, "USD", Provenance.ESTIMATED, method)


def energy_figure(fits: list[Fit]) -> Figure:
    """The ``energy_uj`` objective of one trial: the lowest estimated energy per inference over its
    fitting parts that have one (the method names the part), else :data:`ENERGY_NONE`."""
    known = [f for f in fits if f.fits and f.energy_uj is not None]
    if not known:
        n_fit = sum(f.fits for f in fits)
        return Figure(ENERGY_NONE, "uJ", Provenance.ESTIMATED,
                      f"no energy figure: none of the {n_fit} fitting part(s) has a sourced run current at its "
                      f"clock and supply voltage (sentinel {ENERGY_NONE:g}, not an energy)")
    best = min(known, key=lambda f: (f.energy_uj, f.part.part))
    return Figure(best.energy_uj, "uJ", Provenance.ESTIMATED,
                  f"{best.part.part}, the fitting part with the lowest energy per inference: {best.energy_note}; "
                  f"latency {best.latency_method}")


def part_figures(fits: list[Fit]) -> dict[str, Figure]:
    """The per-trial figures selection adds: ``mcu_cost`` and ``energy_uj``."""
    return {"mcu_cost": mcu_cost_figure(fits), ENERGY_KEY: energy_figure(fits)}


def parts_table(fits: list[Fit]) -> list[dict]:
    """Every compatible part judged for one trial (for the report): latency with its bounds and
    method, energy or why none, fits and why not."""
    return [f.to_dict() for f in fits if f.compatible]


# ---- from trial records -----------------------------------------------------------------------
def _fig(figures: dict, name: str) -> float | None:
    f = figures.get(name)
    if f is None:
        return None
    v = f.value if isinstance(f, Figure) else (f.get("value") if isinstance(f, dict) else f)
    return None if v is None else float(v)


def trial_fits(config: dict, figures: dict, parts: Iterable[Part], *, margin: float,
               deadline_ms: float | None, cpi_by_board: dict[str, float], core_by_board: dict[str, str],
               fpu_by_board: dict[str, bool] | None = None, energy_uj: float | None = None,
               part_cycles: dict[str, dict] | None = None) -> list[Fit]:
    """:func:`evaluate_parts` for one trial, from its config (board, quantization) and figures.

    A part in ``part_cycles`` (the trial's own per-part cycle estimates) uses its own; for the
    others, a ``cycles`` figure (the trial's cycle estimate or measurement per inference) is used
    as it is; without one, ``instructions`` × ``cpi_by_board`` (1 for a board it lacks). A board
    missing from ``core_by_board`` informs no part. ``fpu_by_board`` (board has an FPU and builds
    hard-float) defaults to True. ``energy_uj``: the spec's energy limit, judged per part.
    """
    board = config.get("board", "")
    cycles = _fig(figures, "cycles")  # a trial's own cycle estimate (or measurement) beats a board CPI
    count, cpi = ((cycles, 1.0) if cycles is not None
                  else (_fig(figures, "instructions"), float(cpi_by_board.get(board, 1.0))))
    return evaluate_parts(
        parts, core=core_by_board.get(board, ""),
        needs_fpu=_needs_fpu(config.get("quantization", "float32"), (fpu_by_board or {}).get(board, True)),
        flash_kb=_fig(figures, "flash_kb"), ram_kb=_fig(figures, "ram_kb"),
        count_per_inference=count, cpi=cpi, deadline_ms=deadline_ms, margin=margin, energy_uj=energy_uj,
        part_cycles=part_cycles)


def _record_fits(r, parts, margin, deadline_ms, energy_uj, maps) -> list[Fit]:
    """:func:`trial_fits` for a stored trial record (its ``part_cycles``, when it has them)."""
    return trial_fits(r.config, r.figures, parts, margin=margin, deadline_ms=deadline_ms, energy_uj=energy_uj,
                      part_cycles=getattr(r, "part_cycles", None) or None, **maps)


def eligible(record) -> bool:
    """A completed trial that met the spec's constraints, the deadline and energy limit aside.

    The deadline and the energy limit are judged again for every part, at the part's clock, so a
    trial too slow at the emulated board's nominal clock can still be recommended on a faster part
    (and vice versa).
    """
    return record.status == "ok" and all(v <= 0 for k, v in record.constraints.items() if k not in PER_PART_KEYS)


@dataclass
class Recommendation:
    """The recommended (part, configuration): the cheapest fitting part over all eligible trials."""

    trial: int
    part: Part
    price_usd: float | None
    basis: str
    config: dict
    why: str
    fit: Fit
    accuracy: float | None = None
    alternatives: list[str] = field(default_factory=list)  # "PART (trial N)": smaller, fitting, no price

    def to_dict(self) -> dict:
        return {"trial": self.trial, "part": self.part.part, "price_usd": self.price_usd, "basis": self.basis,
                "config": dict(self.config), "why": self.why, "accuracy": self.accuracy,
                "est_latency_ms": self.fit.est_latency_ms, "latency_low_ms": self.fit.latency_low_ms,
                "latency_high_ms": self.fit.latency_high_ms, "latency_method": self.fit.latency_method,
                "energy_uj": self.fit.energy_uj, "energy_note": self.fit.energy_note,
                "part_details": self.part.to_dict(),
                "alternatives": list(self.alternatives)}

    def __str__(self) -> str:
        price = f"{self.price_usd:g} USD" if self.price_usd is not None else "no price known"
        return (f"Recommended: {self.part.part} ({price}) with trial {self.trial}: "
                f"{config_text(self.config)}\n{self.why}")


def config_text(config: dict) -> str:
    """The trial's knob values; optional knobs at their default (off, the spec's) and settings of
    a knob that is off (re-training without channel pruning, epochs without sparsity) are left out."""
    from mcusearch.knobs import TrialConfig

    defaults = {f.name: f.default for f in dataclasses.fields(TrialConfig)
                if f.default is not dataclasses.MISSING}
    idle = set()
    if config.get("channels") is None and config.get("keep_ratio") is None:
        idle |= {"channels_per", "criterion", "retrain_epochs"}
    if not config.get("sparsity"):
        idle.add("sparsity_epochs")

    def val(v):
        return "/".join(map(str, v)) if isinstance(v, (list, tuple)) else ("full" if v is None else str(v))
    return ", ".join(f"{k} {val(v)}" for k, v in config.items()
                     if k not in idle and (k not in defaults or v != defaults[k]))


def _rank_key(f: Fit, r) -> tuple:
    acc = _fig(r.figures, "accuracy")
    instr = _fig(r.figures, "instructions")
    tail = (-(acc if acc is not None else -math.inf), instr if instr is not None else math.inf,
            f.part.size_key, r.number, f.part.part)
    if f.part.has_price:
        return (0, f.part.price_usd, (0.0, 0.0, 0.0)) + tail
    return (1, 0.0, f.part.size_key) + tail


def recommend(records, parts: list[Part], margin: float, deadline_ms: float | None,
              cpi_by_board: dict[str, float], core_by_board: dict[str, str],
              fpu_by_board: dict[str, bool] | None = None, energy_uj: float | None = None) -> Recommendation | None:
    """Among all eligible trials (:func:`eligible`) and all compatible parts, the cheapest part.

    Ranking as in :func:`cheapest` over every fitting (trial, part) pair; ties go to the higher
    accuracy, then fewer instructions, then the smaller part and the earlier trial. None when
    nothing fits (:func:`why_no_recommendation` says why).
    """
    pairs = []
    trials = [r for r in records if eligible(r)]
    maps = {"cpi_by_board": cpi_by_board, "core_by_board": core_by_board, "fpu_by_board": fpu_by_board}
    for r in trials:
        for f in _record_fits(r, parts, margin, deadline_ms, energy_uj, maps):
            if f.fits:
                pairs.append((f, r))
    if not pairs:
        return None
    f, r = min(pairs, key=lambda fr: _rank_key(*fr))
    f = dataclasses.replace(f, basis=_basis(f, [fr[0] for fr in pairs]))  # counts parts fitting any trial
    p = f.part
    board = r.config.get("board", "?")
    cpi = float(cpi_by_board.get(board, 1.0))
    acc = _fig(r.figures, "accuracy")
    count = _fig(r.figures, "instructions")
    flash, ram = _fig(r.figures, "flash_kb"), _fig(r.figures, "ram_kb")
    unit = r.figures["instructions"].unit if isinstance(r.figures.get("instructions"), Figure) else "instructions"

    smaller: dict[str, tuple] = {}  # unpriced part smaller than the pick -> its best (fit, trial)
    for q, x in sorted(pairs, key=lambda fr: _rank_key(*fr)):
        if p.has_price and not q.part.has_price and q.part.size_key < p.size_key:
            smaller.setdefault(q.part.part, (q, x))
    alt_names = [f"{q.part.part} (trial {x.number})"
                 for q, x in sorted(smaller.values(), key=lambda fr: (fr[0].part.size_key, fr[0].part.part))]

    s = [f"Trial {r.number} ({config_text(r.config)}) fits {p.describe()}: the whole firmware takes "
         f"{flash:.1f} kB flash and {ram:.1f} kB RAM, within the part's memory less a {margin:.0%} margin."]
    if f.est_latency_ms is not None:
        dl = f"within the {deadline_ms:g} ms deadline" if deadline_ms is not None else "no deadline was set"
        s.append(f"At {p.clock_mhz:g} MHz one inference takes an estimated {f.est_latency_ms:.3g} ms "
                 f"{_bounds(f)}({_latency_how(f, r, board, cpi, count, unit)}; an estimate, not a measurement "
                 f"on the part): {dl}.")
    s.append(f"Energy per inference: {number(f.energy_uj)} uJ ({f.energy_note})." if f.energy_uj is not None
             else f"Energy per inference: not estimated ({f.energy_note}).")
    if acc is not None:
        s.append(f"Its accuracy is {acc:.3f}.")
    n_trials = len({id(x) for _, x in pairs})
    if p.has_price:
        s.append(f"It is the cheapest of the fitting parts with a known price: {p.price_text()}.")
        if alt_names:
            s.append(f"{len(alt_names)} smaller fitting part(s) have no known price and could not be compared: "
                     f"{', '.join(alt_names[:4])}{', ...' if len(alt_names) > 4 else ''}.")
        s.append("Catalog prices are of mixed kind and quantity: treat them as rough.")
    else:
        s.append("No fitting part has a known price, so the smallest part (flash, then RAM, then clock) "
                 "was chosen; check its price before buying.")
    s.append(f"Chosen among {len(pairs)} fitting (trial, part) pairs from {n_trials} of {len(trials)} trials that "
             f"met the spec's constraints; ties go to higher accuracy, then fewer instructions.")
    return Recommendation(trial=r.number, part=p, price_usd=p.price_usd, basis=f.basis, config=dict(r.config),
                          why=" ".join(s), fit=f, accuracy=acc, alternatives=alt_names)


def _bounds(f: Fit) -> str:
    if f.latency_low_ms is None or f.latency_low_ms == f.latency_high_ms:
        return ""
    return f"(bounds {f.latency_low_ms:.3g} to {f.latency_high_ms:.3g} ms) "


def _latency_how(f: Fit, r, board: str, cpi: float, count: float | None, unit: str) -> str:
    """How the recommended pair's latency was obtained, in words."""
    if f.latency_method and "memory system (" in f.latency_method:
        return f.latency_method
    cycles = _fig(r.figures, "cycles")
    if cycles is not None:
        prov = r.figures["cycles"].provenance.value if isinstance(r.figures.get("cycles"), Figure) else "cycles"
        return (f"{cycles:,.0f} cycles per inference from the trial's cycle figure ({prov}), for the board's "
                f"memory configuration, not this part's")
    return f"{count:,.0f} {unit} on {board} × {cpi:g} cycles per instruction"


def why_no_recommendation(records, parts: list[Part], margin: float, deadline_ms: float | None,
                          cpi_by_board: dict[str, float], core_by_board: dict[str, str],
                          fpu_by_board: dict[str, bool] | None = None, energy_uj: float | None = None) -> str:
    """One or two sentences on why :func:`recommend` returned None."""
    ok = [r for r in records if r.status == "ok"]
    if not ok:
        return "no trial completed, so no part can be recommended"
    trials = [r for r in ok if eligible(r)]
    if not trials:
        return f"none of the {len(ok)} completed trials met the spec's constraints (the deadline and energy aside)"
    closest = None
    maps = {"cpi_by_board": cpi_by_board, "core_by_board": core_by_board, "fpu_by_board": fpu_by_board}
    for r in trials:
        for f in _record_fits(r, parts, margin, deadline_ms, energy_uj, maps):
            if f.compatible and (closest is None or len(f.reasons) < len(closest[0].reasons)):
                closest = (f, r)
    if closest is None:
        boards = sorted({r.config.get("board", "?") for r in trials})
        cores = sorted({core_by_board.get(b, "unknown") for b in boards})
        return (f"no catalog part is compatible with the boards {', '.join(boards)} (core {', '.join(cores)}, "
                f"and an FPU for float32 models): add parts with catalog.parts")
    f, r = closest
    return (f"no catalog part fits any of the {len(trials)} trials that met the constraints; closest: "
            f"trial {r.number} on {f.part.part}: {'; '.join(f.reasons)}")
