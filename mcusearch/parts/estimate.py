"""Cycles per inference for each candidate part: the firmware's profile re-weighted per part.

Entry points:

* :func:`part_cycles_for_trial` — for one trial's ELF on an emulated board: which profiles the
  candidate parts need (one without cache simulation, plus one per distinct simulated cache
  geometry), collect them with the QEMU plugin, and estimate every compatible part. Returns
  ``{part name: {...}}`` ready to store with the trial and to pass to
  :func:`mcusearch.select.trial_fits` (``part_cycles=``).
* :func:`profile_plans` / :func:`estimate_parts` — the same in two steps (plan, then estimate from
  profiles already collected), for tests and other callers.

Every estimate is labelled ``estimated`` and names the part's memory configuration
(:func:`mcusearch.parts.memory.part_memory`); a part without one gets a ``reason`` instead, and
selection then falls back to the board's count at the part's clock, saying so. A part calibrated
against a board (``mcusearch calibrate``, :mod:`mcusearch.calibrate`) has its estimate multiplied
by the saved correction, and the method says "calibrated on <board>, <date>".
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Sequence

from mcusearch.boards.cyclemodel import EstimateConfig, estimate
from mcusearch.calibrate import Correction, apply_correction, load_corrections
from mcusearch.boards.plugin import MPS2_REGIONS, InsnProfile, Region
from mcusearch.catalog import Part, normalize_core
from mcusearch.parts.memory import PartMemory, part_memory

ANY = "plain"  # the profile without cache simulation (regions only)


@dataclass(frozen=True)
class PartEstimate:
    """Estimated cycles per inference on one part, with bounds, memory configuration and method."""

    part: str
    cycles: float
    cycles_low: float
    cycles_high: float
    memory: str
    method: str
    assumptions: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return {"cycles": self.cycles, "cycles_low": self.cycles_low, "cycles_high": self.cycles_high,
                "memory": self.memory, "method": self.method, "provenance": "estimated",
                "assumptions": list(self.assumptions)}


def _key(pm: PartMemory) -> str:
    """The profile a part's configuration needs: ``plain`` or its simulated cache geometry."""
    if not pm.simulated:
        return ANY
    d, i = pm.cache_key
    return f"d{d.arg() if d else '-'}_i{i.arg() if i else '-'}".replace(":", "x")


def profile_plans(parts: Iterable[Part], core: str, regions: Sequence[Region] = MPS2_REGIONS
                  ) -> tuple[dict[str, dict], dict[str, PartMemory]]:
    """(profile key -> plugin options, part name -> its memory configuration) for ``core``'s parts.

    ``regions``: the emulated board's "flash" and "ram" (:func:`mcusearch.boards.plugin.board_regions`);
    every configuration is moved to that address map (:meth:`MemoryConfig.on_board`).
    """
    core = normalize_core(core)
    regions = tuple(regions)
    plans: dict[str, dict] = {}
    memories: dict[str, PartMemory] = {}
    for p in parts:
        if p.core != core:
            continue
        pm = part_memory(p)
        if pm.config is not None:
            pm = replace(pm, config=pm.config.on_board(regions))
        memories[p.part] = pm
        if pm.config is None:
            continue
        key = _key(pm)
        plans.setdefault(key, pm.config.plugin_options() if pm.simulated else
                         {"regions": list(regions), "dcache": None, "icache": None})
    return plans, memories


def estimate_parts(profiles: dict[str, InsnProfile], memories: dict[str, PartMemory], core: str,
                   instructions_per_inference: float, board: str = "",
                   corrections: dict[str, Correction] | None = None) -> dict[str, dict]:
    """Part name -> :meth:`PartEstimate.to_dict`, or ``{"reason": ...}`` where there is no estimate.

    A profile covers a window of ``profile.insns`` instructions; the part's cycles per inference
    are ``instructions_per_inference × cycles / profile.insns`` (and so for the bounds).
    ``corrections``: part name -> a calibration (:mod:`mcusearch.calibrate`), applied to that part's
    estimate and named in its method.
    """
    corrections = corrections or {}
    out: dict[str, dict] = {}
    for name, pm in memories.items():
        if pm.config is None:
            out[name] = {"reason": pm.reason}
            continue
        prof = profiles.get(_key(pm))
        if prof is None:
            out[name] = {"reason": f"no profile collected for {pm.config.name}"}
            continue
        est = estimate(prof, EstimateConfig(normalize_core(core), pm.config))
        scale = float(instructions_per_inference) / prof.insns
        on = f" on {board}" if board else ""
        method = (f"{instructions_per_inference:,.0f} emulated instructions per inference{on} x "
                  f"{est.cycles / prof.insns:.3f} cycles per instruction re-weighted for this part's own memory "
                  f"system ({pm.config.name}), from the {est.method}")
        out[name] = apply_correction(
            PartEstimate(name, est.cycles * scale, est.cycles_low * scale, est.cycles_high * scale,
                         pm.config.name, method, tuple(est.assumptions)).to_dict(),
            corrections.get(name), normalize_core(core))
    return out


def part_cycles_for_trial(elf: Path, board, parts: Iterable[Part], instructions_per_inference: float,
                          work_dir: Path, timeout_s: float = 300, *, flash_kb: float | None = None,
                          ram_kb: float | None = None, margin: float = 0.1,
                          corrections: dict[str, Correction] | None = None) -> dict[str, dict]:
    """Profile ``elf`` on the QEMU ``board`` once per needed cache geometry and estimate every part
    with the board's core (see the module doc). With the firmware's ``flash_kb`` and ``ram_kb``,
    parts it cannot fit (:func:`mcusearch.select.memory_reasons`) are left out, and so are the QEMU
    runs only they needed. ``corrections``: per-part calibrations to apply (default: the saved ones,
    :func:`mcusearch.calibrate.load_corrections`; ``{}`` for none). Raises StageError if a QEMU run
    fails."""
    if corrections is None:
        corrections = load_corrections()
    from mcusearch.boards.plugin import board_regions, run_profile, symbol_address
    from mcusearch.select import memory_reasons

    parts = list(parts)
    if flash_kb is not None and ram_kb is not None:
        parts = [p for p in parts if not memory_reasons(p, flash_kb, ram_kb, margin)]
    try:
        regions = board_regions(board.machine)
    except KeyError as e:  # a QEMU machine without a known address map: no per-part estimate, and why
        return {p.part: {"reason": str(e.args[0])} for p in parts if p.core == normalize_core(board.core)}
    plans, memories = profile_plans(parts, board.core, regions)
    if not plans:
        return estimate_parts({}, memories, board.core, instructions_per_inference, board.name, corrections)
    start, stop = symbol_address(elf, "mcus_model_run"), symbol_address(elf, "mcus_done")
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    profiles = {key: run_profile(elf, board.machine, work_dir / f"profile-{key}.json", start=start, stop=stop,
                                 timeout_s=timeout_s, **opts)
                for key, opts in plans.items()}
    return estimate_parts(profiles, memories, board.core, instructions_per_inference, board.name, corrections)
