"""Cycle estimates for emulated boards: the measure stage's instruction counts, weighted by a
documented per-core cycle model (mcusearch.boards.cyclemodel) over the instruction-class mix the
QEMU plugin counts (mcusearch.boards.plugin). Never fitted to published measurements.

Entry point: :func:`estimate_cycles`. Result: :class:`CycleEstimate`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mcusearch.errors import StageError
from mcusearch.figures import Figure, Provenance


# The cycle model of each emulated board: a core, and the memory system of the part it stands for.
CYCLE_MODELS = {
    "qemu-m7": "cortex-m7:stm32f7-216mhz-cache",  # the study's STM32F722 at 216 MHz, ART and L1 caches on
    "qemu-m4": "cortex-m4",                       # zero wait states (code and data in fast memory)
    "qemu-m3": "cortex-m3",
    "qemu-m33": "cortex-m33",
}


@dataclass
class CycleEstimate:
    cycles: Figure          # per inference
    latency_ms: Figure      # per inference, at the clock the configuration assumes
    cpi: float              # cycles per instruction of the model's instruction mix
    config: str             # "core:memory-configuration"
    assumptions: list[str]


def estimate_cycles(elf: Path, board, instructions_per_inference: float, work_dir: Path,
                    timeout_s: float = 300) -> CycleEstimate:
    """Profile ``elf`` on ``board`` (a QEMU board with ``machine`` and ``cycle_model``) and estimate.

    The profile counts from the entry of ``mcus_model_run`` to ``mcus_done`` (every inference, and
    the harness's few instructions between them), so the class mix is the model's.
    """
    from mcusearch.boards.cyclemodel import EstimateConfig, estimate
    from mcusearch.boards.plugin import run_profile, symbol_address

    spec = getattr(board, "cycle_model", None) or CYCLE_MODELS.get(board.name)
    if not spec:
        raise StageError("measure", f"board {board.name} has no cycle model")
    cfg = EstimateConfig.parse(spec)
    try:
        start, stop = symbol_address(elf, "mcus_model_run"), symbol_address(elf, "mcus_done")
    except Exception as e:  # pragma: no cover - the harness always has both
        raise StageError("measure", f"cannot find the profile markers in {elf}: {e}") from e
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    profile = run_profile(elf, board.machine, work_dir / "profile.json", start=start, stop=stop,
                          timeout_s=timeout_s, **cfg.memory.plugin_options())
    est = estimate(profile, cfg)
    cpi = est.cpi
    clock = cfg.memory.clock_hz or board.clock_hz
    cycles = instructions_per_inference * cpi
    method = (f"{instructions_per_inference:,.0f} emulated instructions per inference x {cpi:.3f} cycles per "
              f"instruction from the {est.method}")
    return CycleEstimate(
        cycles=Figure(cycles, "cycles", Provenance.ESTIMATED, method),
        latency_ms=Figure(cycles / clock * 1e3, "ms", Provenance.ESTIMATED, f"{method}; at {clock / 1e6:g} MHz"),
        cpi=cpi, config=cfg.name, assumptions=list(est.assumptions))
