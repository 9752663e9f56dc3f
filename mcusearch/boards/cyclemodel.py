"""Cycle estimates from exact instruction-class counts: a documented model, not a measurement.

The QEMU plugin (:mod:`mcusearch.boards.plugin`) counts what the emulated core executes, exactly:
instructions per timing class, a few overlay facts (registers moved by LDM/STM, conditional
branches taken, load/store pairs that pipeline, ...) and data accesses / instruction fetches per
memory region, optionally through a simulated cache. This module weights those counts with
per-class timings taken from Arm's technical reference manuals and adds memory stalls for a named
memory configuration (flash wait states at a clock, caches/ART on or off, TCM vs SRAM).

Rules this module keeps:

* Every number has a ``source``: a document and table, or the word "assumption" and why.
* Nothing is fitted to any published measurement or benchmark table. Where a manual gives a range
  (P = 1..3 pipeline-refill cycles, DIV 2..12) the point estimate takes the middle of the range and
  the estimate also reports the ends (``cycles_low``/``cycles_high``).
* The Cortex-M7 has no public cycle table: its model is a stated single-issue model (see
  :data:`M7_ASSUMPTIONS`); ``cycles_low`` assumes ideal dual issue.
* Results are :class:`~mcusearch.figures.Figure` objects with ``Provenance.ESTIMATED`` and a
  ``method`` string naming the model and the memory configuration.
* The memory rules (fetch stalls per flash line actually fetched, their overlap with execution,
  uncached SRAM loads over the M7's AXI port, load-use, branch refills) and their documents are
  written down in ``mcusearch/boards/CYCLEMODEL.md``, each with a hand-counted kernel in
  ``tests/test_cyclemodel_review.py``.

Entry point: :func:`estimate` (``estimate(profile, "cortex-m4")``,
``estimate(profile, "cortex-m7:stm32f7-216mhz-cache")``).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from mcusearch.boards.plugin import CLASSES, EXTRAS, MPS2_REGIONS, CacheGeometry, InsnProfile, Region
from mcusearch.figures import Figure, Provenance

# ---- documents ----------------------------------------------------------------------------------

M0P_TABLE = "Arm Cortex-M0+ TRM r0p1 (DDI 0484C) §3.3 Table 3-1 Cortex-M0+ instruction summary"
M3_TABLE = "Arm Cortex-M3 TRM r2p1 (DDI 0337I) §3.3.1 Table 3-1 Cortex-M3 instruction set summary"
M3_LDST = "Arm Cortex-M3 TRM r2p1 (DDI 0337I) §3.3.2 Load/store timings"
M4_TABLE = "Arm Cortex-M4 TRM r0p1 (DDI 0439D) §3.3.1 Table 3-1 Cortex-M4 instruction set summary"
M4_DSP = "Arm Cortex-M4 TRM r0p1 (DDI 0439D) §3.3.1 Table 3-2 Cortex-M4 DSP instruction set summary"
M4_LDST = "Arm Cortex-M4 TRM r0p1 (DDI 0439D) §3.3.2 Load/store timings"
M4_FPU = "Arm Cortex-M4 TRM r0p1 (DDI 0439D) §7.2.3 Table 7-1 FPU instruction set"
M7_TRM = "Arm Cortex-M7 Processor TRM (DDI 0489)"
M33_TRM = "Arm Cortex-M33 Processor TRM (100230)"
M0P_FETCH = ("Cortex-M0+ TRM r0p1 (DDI 0484C) §1.2 (two-stage pipeline, 32-bit instruction fetch): no prefetch "
             "unit ahead of execution, so an uncached flash line it fetches stalls the core in full")
P_NOTE = "P = pipeline refill, 1 to 3 cycles by target alignment/width and early speculation; middle value 2 used"


@dataclass(frozen=True)
class Timing:
    """Cycles for one unit of a count: a point value, the documented range, and where it comes from."""

    cycles: float
    low: float
    high: float
    source: str
    note: str = ""

    @staticmethod
    def fixed(cycles: float, source: str, note: str = "") -> "Timing":
        return Timing(cycles, cycles, cycles, source, note)

    @staticmethod
    def range(low: float, high: float, source: str, note: str = "") -> "Timing":
        """A documented range; the point value is its middle (never fitted)."""
        return Timing((low + high) / 2, low, high, source, note)


def _p(base: float, source: str, note: str = P_NOTE) -> Timing:
    """base + P, P in 1..3."""
    return Timing.range(base + 1, base + 3, source, note)


# ---- core models --------------------------------------------------------------------------------

@dataclass(frozen=True)
class CycleModel:
    """Cycles per instruction class and per overlay unit for one core, each with its source.

    ``per_class[c]`` is None for a class the core does not implement (a profile with such
    instructions was not compiled for this core: :meth:`core_cycles` raises).
    ``per_extra[x]`` is added per unit of the overlay count x (e.g. +1 per register an LDM moves,
    +P per taken conditional branch, -1 per store that completes in one cycle).
    """

    core: str
    title: str
    per_class: dict[str, Timing | None]
    per_extra: dict[str, Timing]
    assumptions: tuple[str, ...]
    dual_issue_low: bool = False     # cycles_low assumes two instructions per cycle (Cortex-M7)
    # A prefetch unit that fetches ahead of execution (M3/M4/M33/M55: 3 words; M7: 4 x 64 bits):
    # uncached sequential fetch stalls may overlap execution (see memory_cycles). The Cortex-M0+
    # has none: every line it fetches is waited for.
    fetch_ahead: bool = True

    def __post_init__(self) -> None:
        missing = set(CLASSES) - set(self.per_class)
        unknown = (set(self.per_class) - set(CLASSES)) | (set(self.per_extra) - set(EXTRAS))
        if missing or unknown:
            raise ValueError(f"{self.core}: classes missing {sorted(missing)}, unknown {sorted(unknown)}")

    def core_cycles(self, profile: InsnProfile) -> tuple[float, float, float, dict[str, float]]:
        """(point, low, high, breakdown) of the core's cycles at zero wait states."""
        point = low = high = 0.0
        breakdown: dict[str, float] = {}
        bad = [f"{c}: {profile.classes[c]}" for c in CLASSES
               if self.per_class[c] is None and profile.classes.get(c, 0)]
        if bad:
            raise ValueError(f"the profile has instructions {self.core} does not implement ({', '.join(bad)}): "
                             f"it was not compiled for this core")
        for c in CLASSES:
            t, n = self.per_class[c], profile.classes.get(c, 0)
            if t is None or not n:
                continue
            breakdown[f"class:{c}"] = n * t.cycles
            point, low, high = point + n * t.cycles, low + n * t.low, high + n * t.high
        for x, t in self.per_extra.items():
            n = profile.extras.get(x, 0)
            if not n or (t.cycles == 0 and t.low == 0 and t.high == 0):
                continue
            breakdown[f"extra:{x}"] = n * t.cycles
            point, low, high = point + n * t.cycles, low + n * t.low, high + n * t.high
        if self.dual_issue_low:
            low /= 2
        return point, low, high, breakdown

    def sources(self) -> dict[str, str]:
        """Every timing's source, for reports: {"class:alu": "...", "extra:ldm_regs": "..."}."""
        out = {f"class:{c}": (t.source + (f" ({t.note})" if t.note else "")) if t else "not implemented"
               for c, t in self.per_class.items()}
        out.update({f"extra:{x}": t.source + (f" ({t.note})" if t.note else "") for x, t in self.per_extra.items()})
        return out


def _m3_m4_extras(table: str, ldst: str) -> dict[str, Timing]:
    return {
        "ldm_regs": Timing.fixed(1, table, "LDM/POP 1 + N"),
        "stm_regs": Timing.fixed(1, table, "STM/PUSH 1 + N"),
        "ldm_pc": _p(0, table, "LDM/POP including PC 1 + N + P; " + P_NOTE),
        "load_pc": _p(0, table, "LDR PC 2 + P; " + P_NOTE),
        "branch_cond_taken": _p(0, table, "B<cc>, CBZ/CBNZ: 1 not taken, 1 + P taken; " + P_NOTE),
        "store_imm": Timing.fixed(-1, ldst, "STR Rx,[Ry,#imm] is always one cycle (write buffer)"),
        "ldst_pipelined": Timing.fixed(-1, ldst, "an LDR/STR after an LDR whose result it does not use for "
                                                 "its address: one cycle removed"),
        "agu_stall": Timing.fixed(1, ldst, "an address computed by the preceding data-processing "
                                           "instruction: one stall cycle (no forwarding path)"),
        "load_literal": Timing(0, 0, 1, ldst, "LDR Rx,[PC,#imm] might add a cycle (fetch contention)"),
    }


_M3_M4_COMMON = {
    "alu": Timing.fixed(1, "{T}", "MOV/ADD/SUB/logical/shift/compare/extend/bitfield/saturate: 1"),
    "it": Timing(1, 0, 1, "{T}", "IT: 1, can fold onto a preceding 16-bit instruction (0)"),
    "mul": Timing.fixed(1, "{T}", "MUL 1"),
    "div": Timing.range(2, 12, "{T}", "SDIV/UDIV 2 to 12, early termination on operand values"),
    "load": Timing.fixed(2, "{T}", "LDR/LDRB/LDRH/LDRSB/LDRSH/LDREX 2"),
    "store": Timing.fixed(2, "{T}", "STR/STRB/STRH/STREX 2"),
    "load_pair": Timing.fixed(3, "{T}", "LDRD 1 + N, N = 2"),
    "store_pair": Timing.fixed(3, "{T}", "STRD 1 + N, N = 2"),
    "ldm": Timing.fixed(1, "{T}", "LDM 1 + N (N counted in ldm_regs)"),
    "stm": Timing.fixed(1, "{T}", "STM 1 + N (N counted in stm_regs)"),
    "branch": _p(1, "{T}", "B, BL, BX, BLX, MOV/ADD PC: 1 + P; " + P_NOTE),
    "branch_cond": Timing.fixed(1, "{T}", "B<cc>, CBZ, CBNZ: 1 (+P when taken, in branch_cond_taken)"),
    "table_branch": _p(2, "{T}", "TBB/TBH 2 + P (the load/store timings section says at least 6); " + P_NOTE),
    "nop": Timing.fixed(1, "{T}", "NOP and hints 1 (WFI/WFE wait not counted)"),
    "barrier": Timing(1, 1, 4, "{T}", "DMB/DSB/ISB 1 + B, B >= 0 (ISB: B >= P)"),
    "system": Timing.range(1, 2, "{T}", "MRS/MSR/CPS 1 or 2"),
    "other": Timing.fixed(1, "assumption", "undecoded instruction counted as 1 cycle"),
}


def _fill(template: dict[str, Timing | None], table: str) -> dict[str, Timing | None]:
    return {k: (Timing(t.cycles, t.low, t.high, t.source.replace("{T}", table), t.note) if t else None)
            for k, t in template.items()}


def _m4_fpu(source: str = M4_FPU, note_prefix: str = "") -> dict[str, Timing]:
    return {
        "vfp_alu": Timing.fixed(1, source, note_prefix + "VADD/VSUB/VMUL/VNMUL/VABS/VNEG/VCMP/VCVT/VMOV 1"),
        "vfp_mac": Timing.fixed(3, source, note_prefix + "VMLA/VMLS/VNMLA/VNMLS/VFMA/VFMS/VFNMA/VFNMS 3"),
        "vfp_div": Timing(14, 1, 14, source, note_prefix + "VDIV/VSQRT 14; 1 if no more floating-point "
                                                          "instructions follow (note to the table)"),
        "vfp_load": Timing.fixed(2, source, note_prefix + "VLDR.32 2 (VLDR.64 3: +1 in vfp_ldst64)"),
        "vfp_store": Timing.fixed(2, source, note_prefix + "VSTR.32 2 (VSTR.64 3: +1 in vfp_ldst64)"),
        "vfp_ldm": Timing.fixed(1, source, note_prefix + "VLDM/VPOP 1 + N words (in vfp_ldm_words)"),
        "vfp_stm": Timing.fixed(1, source, note_prefix + "VSTM/VPUSH 1 + N words (in vfp_stm_words)"),
        "vfp_mov": Timing.fixed(2, source, note_prefix + "VMOV one float <-> one core register, two floats / "
                                                         "one double <-> two core registers 2"),
        "vfp_misc": Timing.fixed(1, source, note_prefix + "VMRS, VMSR, VMOV half of a double <-> core register 1"),
    }


def _fpu_extras(source: str = M4_FPU) -> dict[str, Timing]:
    return {
        "vfp_ldm_words": Timing.fixed(1, source, "1 + N"),
        "vfp_stm_words": Timing.fixed(1, source, "1 + N"),
        "vfp_ldst64": Timing.fixed(1, source, "VLDR.64/VSTR.64 3 vs 2"),
    }


_NO_FPU = {k: None for k in ("vfp_alu", "vfp_mac", "vfp_div", "vfp_load", "vfp_store", "vfp_ldm",
                             "vfp_stm", "vfp_mov", "vfp_misc")}

CORTEX_M4 = CycleModel(
    core="cortex-m4",
    title="Cortex-M4(F) r0p1",
    per_class={
        **_fill(_M3_M4_COMMON, M4_TABLE),
        "mla": Timing.fixed(1, M4_TABLE, "MLA/MLS 1"),
        "mull": Timing.fixed(1, M4_TABLE, "SMULL/UMULL 1"),
        "mlal": Timing.fixed(1, M4_TABLE, "SMLAL/UMLAL 1, UMAAL 1 (Table 3-2)"),
        "dsp_mul": Timing.fixed(1, M4_DSP, "SMLAD/SMUAD/SMLA<x><y>/SMMLA/SMLALD ... 1"),
        "dsp": Timing.fixed(1, M4_DSP, "SADD16/QADD/SEL/USAD8/SXTB16/SSAT16 ... 1"),
        **_m4_fpu(),
    },
    per_extra={**_m3_m4_extras(M4_TABLE, M4_LDST), **_fpu_extras()},
    assumptions=(
        "zero-wait-state core timings from the Cortex-M4 TRM r0p1 tables; ranges (P, DIV) at their middle",
        "load/store pairing per the TRM's load/store timing rules, seen within one translation block",
        "not modelled: the extra cycle when the next instruction consumes a floating-point arithmetic result "
        "(note to Table 7-1), unaligned-access penalties, LDM/STM continuation after an interrupt",
        "no interrupts or exception entry/exit counted",
    ),
)

CORTEX_M3 = CycleModel(
    core="cortex-m3",
    title="Cortex-M3 r2p1",
    per_class={
        **_fill(_M3_M4_COMMON, M3_TABLE),
        "mla": Timing.fixed(2, M3_TABLE, "MLA/MLS 2"),
        "mull": Timing.range(3, 5, M3_TABLE, "SMULL/UMULL 3 to 5, early termination"),
        "mlal": Timing.range(4, 7, M3_TABLE, "SMLAL/UMLAL 4 to 7, early termination"),
        "dsp_mul": None,
        "dsp": None,
        **_NO_FPU,
    },
    per_extra=_m3_m4_extras(M3_TABLE, M3_LDST),
    assumptions=(
        "zero-wait-state core timings from the Cortex-M3 TRM r2p1 tables; ranges (P, DIV, long multiplies) "
        "at their middle",
        "load/store pairing per the TRM's load/store timing rules, seen within one translation block",
        "no interrupts or exception entry/exit counted",
    ),
)

CORTEX_M33 = CycleModel(
    core="cortex-m33",
    title="Cortex-M33 (assumed Cortex-M4 timings)",
    per_class={
        **{k: (Timing(t.cycles, t.low, t.high, t.source, "assumed equal to the Cortex-M4; " + t.note) if t else None)
           for k, t in CORTEX_M4.per_class.items()},
    },
    per_extra={
        **{k: t for k, t in CORTEX_M4.per_extra.items()
           if k not in ("store_imm", "ldst_pipelined", "agu_stall", "load_literal")},
    },
    assumptions=(
        f"{M33_TRM} publishes no per-instruction cycle table: the Cortex-M4 r0p1 table values are used "
        "(both are 3-stage Armv7E-M/Armv8-M Mainline pipelines with single-cycle MAC and the same FPU class)",
        "the Cortex-M3/M4 load/store pairing rules are not applied (not documented for the M33)",
        "no interrupts or exception entry/exit counted",
    ),
)

_V6M_NONE = {k: None for k in ("it", "mla", "mull", "mlal", "dsp_mul", "dsp", "div", "load_pair", "store_pair",
                               "table_branch")}

CORTEX_M0PLUS = CycleModel(
    core="cortex-m0plus",
    title="Cortex-M0+ r0p1",
    per_class={
        "alu": Timing.fixed(1, M0P_TABLE, "MOVS/ADDS/SUBS/logical/shift/compare/extend 1"),
        "mul": Timing(1, 1, 32, M0P_TABLE, "MULS 1 with the fast multiplier, 32 with the small one "
                                           "(an implementation option; 1 assumed)"),
        "load": Timing(2, 1, 2, M0P_TABLE, "LDR 2 (1 to the single-cycle I/O port)"),
        "store": Timing(2, 1, 2, M0P_TABLE, "STR 2 (1 to the single-cycle I/O port)"),
        "ldm": Timing.fixed(1, M0P_TABLE, "LDM/POP 1 + N"),
        "stm": Timing.fixed(1, M0P_TABLE, "STM/PUSH 1 + N"),
        "branch": Timing(2, 2, 3, M0P_TABLE, "B/BX/BLX/MOV PC/ADD PC 2, BL 3 (counted as 2)"),
        "branch_cond": Timing.fixed(1, M0P_TABLE, "B<cc> 1 not taken, 2 taken (+1 in branch_cond_taken)"),
        "nop": Timing.fixed(1, M0P_TABLE, "NOP/YIELD/SEV 1"),
        "barrier": Timing.fixed(3, M0P_TABLE, "DMB/DSB/ISB 3"),
        "system": Timing(3, 1, 3, M0P_TABLE, "MRS/MSR 3, CPS 1"),
        "other": Timing.fixed(1, "assumption", "undecoded instruction counted as 1 cycle"),
        **_V6M_NONE,
        **_NO_FPU,
    },
    per_extra={
        "ldm_regs": Timing.fixed(1, M0P_TABLE, "1 + N"),
        "stm_regs": Timing.fixed(1, M0P_TABLE, "1 + N"),
        "ldm_pc": Timing.fixed(2, M0P_TABLE, "POP {..., PC} 3 + N"),
        "branch_cond_taken": Timing.fixed(1, M0P_TABLE, "B<cc> taken 2"),
    },
    assumptions=(
        "zero-wait-state core timings from the Cortex-M0+ TRM r0p1 table; fast (1-cycle) multiplier",
        "no interrupts or exception entry/exit counted",
        M0P_FETCH,
    ),
    fetch_ahead=False,
)

M7_SINGLE = "assumption (no public Cortex-M7 cycle table): single issue, one instruction per cycle"
M7_ASSUMPTIONS = (
    f"{M7_TRM} describes a 6-stage, dual-issue pipeline with branch prediction but publishes no "
    "instruction timing table; this model is an assumption, not a table",
    "point estimate: single issue (one instruction per cycle), loads/stores hit zero-wait memory (TCM or a "
    "cache hit) at one per cycle, LDM/STM one register per cycle, FPU result latencies not modelled; "
    "cycles_high: every single load pays one load-use interlock cycle",
    "branches (conditional, returns, table branches) assumed predicted: no refill penalty; mispredictions "
    "are not bounded (no public figure)",
    "SDIV/UDIV and VDIV/VSQRT: the Cortex-M4 TRM values (2 to 12, 14) assumed",
    "cycles_low: ideal dual issue (half the core cycles) and LDM/STM two registers per cycle over the 64-bit "
    "data paths; cycles_high: FPU multiply-accumulates at the Cortex-M4's 3 cycles",
    "no interrupts or exception entry/exit counted",
)

CORTEX_M7 = CycleModel(
    core="cortex-m7",
    title="Cortex-M7 (stated single-issue model)",
    per_class={
        "alu": Timing.fixed(1, M7_SINGLE),
        "it": Timing(1, 0, 1, M7_SINGLE, "IT may fold (0)"),
        "mul": Timing.fixed(1, M7_SINGLE),
        "mla": Timing.fixed(1, M7_SINGLE),
        "mull": Timing.fixed(1, M7_SINGLE),
        "mlal": Timing.fixed(1, M7_SINGLE),
        "dsp_mul": Timing.fixed(1, M7_SINGLE),
        "dsp": Timing.fixed(1, M7_SINGLE),
        "div": Timing.range(2, 12, M4_TABLE, "assumption for the M7: the Cortex-M4's SDIV/UDIV 2 to 12"),
        "load": Timing(1, 1, 2, M7_SINGLE, "TCM/cache hit; high: +1 if the next instruction uses the result "
                                           "(a load-use interlock; the TRM gives no figure)"),
        "store": Timing.fixed(1, M7_SINGLE, "write buffer"),
        "load_pair": Timing(1, 1, 2, M7_SINGLE, "LDRD over the 64-bit path"),
        "store_pair": Timing(1, 1, 2, M7_SINGLE, "STRD over the 64-bit path"),
        "ldm": Timing.fixed(1, M7_SINGLE, "1 + N"),
        "stm": Timing.fixed(1, M7_SINGLE, "1 + N"),
        "branch": Timing.fixed(1, M7_SINGLE, "predicted"),
        "branch_cond": Timing.fixed(1, M7_SINGLE, "predicted"),
        "table_branch": Timing.fixed(2, M7_SINGLE, "a load and a predicted branch"),
        "vfp_alu": Timing.fixed(1, M7_SINGLE, "pipelined FPU"),
        "vfp_mac": Timing(1, 1, 3, M7_SINGLE, "pipelined FPU; high = the Cortex-M4's 3"),
        "vfp_div": Timing.fixed(14, M4_FPU, "assumption for the M7: the Cortex-M4's VDIV/VSQRT 14"),
        "vfp_load": Timing.fixed(1, M7_SINGLE),
        "vfp_store": Timing.fixed(1, M7_SINGLE),
        "vfp_ldm": Timing.fixed(1, M7_SINGLE, "1 + N words"),
        "vfp_stm": Timing.fixed(1, M7_SINGLE, "1 + N words"),
        "vfp_mov": Timing(1, 1, 2, M7_SINGLE, "high = the Cortex-M4's 2"),
        "vfp_misc": Timing.fixed(1, M7_SINGLE),
        "nop": Timing.fixed(1, M7_SINGLE),
        "barrier": Timing(1, 1, 4, M7_SINGLE, "barrier waits not modelled"),
        "system": Timing.range(1, 2, M7_SINGLE),
        "other": Timing.fixed(1, M7_SINGLE),
    },
    per_extra={
        "ldm_regs": Timing(1, 0.5, 1, M7_SINGLE, "one register per cycle; low: two over the 64-bit path"),
        "stm_regs": Timing(1, 0.5, 1, M7_SINGLE, "one register per cycle; low: two over the 64-bit path"),
        "vfp_ldm_words": Timing(1, 0.5, 1, M7_SINGLE, "one word per cycle; low: two over the 64-bit path"),
        "vfp_stm_words": Timing(1, 0.5, 1, M7_SINGLE, "one word per cycle; low: two over the 64-bit path"),
    },
    assumptions=M7_ASSUMPTIONS,
    dual_issue_low=True,
)

M55_TRM = "Arm Cortex-M55 Processor TRM (101051)"
M55_LOOP = ("assumption for the Cortex-M55: the Armv8.1-M low-overhead-loop instructions (DLS, WLS, LE), which the "
            "plugin counts as 'other' (with any other undecoded instruction), take 0 (LE served by the loop cache) "
            "to 3 cycles (a refill); middle 1.5")

CORTEX_M55 = CycleModel(
    core="cortex-m55",
    title="Cortex-M55 scalar (assumed Cortex-M4 timings)",
    per_class={
        **{k: (Timing(t.cycles, t.low, t.high, t.source, "assumed equal to the Cortex-M4; " + t.note) if t else None)
           for k, t in CORTEX_M4.per_class.items()},
        "other": Timing.range(0, 3, M55_LOOP),
    },
    per_extra={k: t for k, t in CORTEX_M33.per_extra.items()},
    assumptions=(
        f"no Cortex-M55 per-instruction cycle table was read here (neither in the {M55_TRM} nor elsewhere): the "
        "Cortex-M4 r0p1 table values are assumed for the scalar and FPU instructions, as for the Cortex-M33",
        "firmware built without Helium (MVE): the plugin does not decode vector instructions",
        M55_LOOP,
        "the Cortex-M3/M4 load/store pairing rules are not applied",
        "no interrupts or exception entry/exit counted",
    ),
)

MODELS: dict[str, CycleModel] = {m.core: m for m in (CORTEX_M0PLUS, CORTEX_M3, CORTEX_M4, CORTEX_M7, CORTEX_M33,
                                                     CORTEX_M55)}


# ---- memory systems -----------------------------------------------------------------------------

@dataclass(frozen=True)
class MemoryTiming:
    """How accesses to one plugin region (an emulated address range) cost on the modelled device.

    Uncached: every data read stalls ``read_stall`` cycles; instruction fetch stalls ``fetch_stall``
    cycles per ``width``-byte line fetched (the plugin's ``fetch_lines``/``jump_lines``, see
    :func:`memory_cycles`). Cached (``cached`` and the profile simulated the cache): every line
    miss stalls ``line_fill`` cycles. Writes are assumed absorbed by the write buffer (no stall).
    """

    region: Region
    kind: str                          # "flash", "sram", "tcm": for the report
    width: int = 4                     # bytes per memory read
    read_stall: Timing = Timing.fixed(0, "zero wait states")
    fetch_stall: Timing = Timing.fixed(0, "zero wait states")
    cached: bool = False
    line_fill: Timing = Timing.fixed(0, "zero wait states")


@dataclass(frozen=True)
class MemoryConfig:
    name: str
    description: str
    clock_hz: int | None
    regions: tuple[MemoryTiming, ...]
    dcache: CacheGeometry | None = None
    icache: CacheGeometry | None = None
    assumptions: tuple[str, ...] = ()
    cores: tuple[str, ...] = ()        # cores it describes; empty = any

    def plugin_regions(self) -> list[Region]:
        return [m.region for m in self.regions]

    def on_board(self, regions: tuple[Region, ...] | list[Region]) -> "MemoryConfig":
        """This configuration with its regions moved to an emulated board's address map (same names:
        "flash", "ram"; see :func:`mcusearch.boards.plugin.board_regions`), cacheability kept."""
        by_name = {r.name: r for r in regions}
        moved = []
        for m in self.regions:
            r = by_name.get(m.region.name)
            if r is None:
                raise ValueError(f"memory configuration {self.name!r} needs a {m.region.name!r} region; the board "
                                 f"has {sorted(by_name)}")
            moved.append(replace(m, region=Region(r.name, r.start, r.end, m.region.cacheable)))
        return replace(self, regions=tuple(moved))

    def plugin_options(self) -> dict:
        """Keyword arguments for :func:`mcusearch.boards.plugin.qemu_plugin_args` / ``run_profile``."""
        return {"regions": self.plugin_regions(), "dcache": self.dcache, "icache": self.icache}


_FLASH, _RAM = MPS2_REGIONS  # the emulated boards' "flash" at 0x0 and RAM at 0x20000000

ZERO_WAIT = MemoryConfig(
    name="zero-wait",
    description="every memory at zero wait states (the TRM tables' own assumption; e.g. code and data in TCM)",
    clock_hz=None,
    regions=(),
    assumptions=("memory: zero wait states everywhere (no flash wait states, no cache misses)",),
)

RM0090 = "ST RM0090 (STM32F405/407/415/417/427/429/437/439 reference manual)"
RM0090_WS = RM0090 + " Table 'Number of wait states according to CPU clock (HCLK) frequency': 5 WS at 150-168 MHz, 2.7-3.6 V"
RM0090_ART = RM0090 + " §'Adaptive real-time memory accelerator (ART Accelerator)': instruction cache 64 lines x 128 bits, data cache 8 lines x 128 bits"

STM32F4_168_ART = MemoryConfig(
    name="stm32f4-168mhz-art",
    description="STM32F4 at 168 MHz: flash 5 wait states behind the ART accelerator (I and D caches on), SRAM zero wait",
    clock_hz=168_000_000,
    regions=(
        MemoryTiming(Region(_FLASH.name, _FLASH.start, _FLASH.end, cacheable=True), "flash", width=16,
                     read_stall=Timing.fixed(5, RM0090_WS), fetch_stall=Timing.fixed(5, RM0090_WS),
                     cached=True, line_fill=Timing.fixed(5, RM0090_WS, "one 128-bit flash read per missed line")),
        MemoryTiming(_RAM, "sram"),
    ),
    dcache=CacheGeometry(8 * 16, 16, 8),
    icache=CacheGeometry(64 * 16, 16, 64),
    assumptions=(
        "memory: STM32F4 flash at 168 MHz, 5 wait states (" + RM0090_WS + ")",
        "ART accelerator on: " + RM0090_ART + "; simulated as fully associative LRU caches (assumption: the "
        "manual does not state the replacement policy); the instruction prefetch buffer is not modelled "
        "(sequential misses would partly hide behind it: the fetch stalls are an upper bound)",
        "SRAM at zero wait states; writes absorbed by the write buffer",
    ),
    cores=("cortex-m4",),
)

STM32F4_168_NOART = MemoryConfig(
    name="stm32f4-168mhz-noart",
    description="STM32F4 at 168 MHz: flash 5 wait states, ART accelerator and prefetch off, SRAM zero wait",
    clock_hz=168_000_000,
    regions=(
        MemoryTiming(_FLASH, "flash", width=16, read_stall=Timing.fixed(5, RM0090_WS),
                     fetch_stall=Timing.fixed(5, RM0090_WS, "per 128-bit flash line fetched")),
        MemoryTiming(_RAM, "sram"),
    ),
    assumptions=(
        "memory: STM32F4 flash at 168 MHz, 5 wait states (" + RM0090_WS + "); ART and prefetch off",
        "each flash data read stalls 5 cycles; instruction fetch stalls 5 cycles per 16-byte flash line fetched "
        "(the flash's 128-bit read width; low: only lines entered by a jump, high: every line of every "
        "straight-line run; see CYCLEMODEL.md)",
        "SRAM at zero wait states; writes absorbed by the write buffer",
    ),
    cores=("cortex-m4",),
)

RM0431 = "ST RM0431 (STM32F72xxx/F73xxx reference manual)"
RM0431_WS = RM0431 + " Table 'Number of wait states according to CPU clock (HCLK) frequency': 7 WS at 210-216 MHz, 2.7-3.6 V"
F722_CACHES = ("ST STM32F722xx/F723xx datasheet: 8 Kbytes of instruction cache and 8 Kbytes of data cache; "
               f"{M7_TRM}: instruction cache 2-way, data cache 4-way set associative, 32-byte lines")
F7_FLASH_WIDTH = "assumption: flash read width 128 bits (check the device reference manual)"
F7_LINE_FILL = Timing.fixed(16, F7_FLASH_WIDTH + "; " + RM0431_WS,
                            "a 32-byte line = 2 flash reads x (7 + 1) cycles; critical-word-first and "
                            "overlap with execution not modelled")
M7_AXI_READ = Timing.range(0, 4, "assumption (no latency figure in the Cortex-M7 TRM or RM0431)",
                           "an uncached load from SRAM goes over the 64-bit AXIM port and the AXI-to-AHB bus matrix, "
                           "not through the zero-wait TCM interface: low 0 (issued ahead, latency hidden), high 4 "
                           "(AXI address and data phases, the bus matrix and the SRAM access one cycle each, nothing "
                           "overlapped); point: the middle")
SRAM_LINE_FILL = Timing.fixed(4, "assumption", "a 32-byte line over the 64-bit AXI at one beat per cycle; "
                                               "bus latency not modelled")
_F7_COMMON = (
    "memory: STM32F7 flash at 216 MHz, 7 wait states (" + RM0431_WS + ")",
    F7_FLASH_WIDTH,
    "weights and code in flash, read over AXI (not through the ITCM/ART path)",
    "writes absorbed by the write buffer (no stall); write-back traffic of dirty lines not modelled",
)

STM32F7_216_CACHE = MemoryConfig(
    name="stm32f7-216mhz-cache",
    description="STM32F72x at 216 MHz: flash 7 wait states over AXI with L1 I/D caches on, RAM in SRAM1 (cached)",
    clock_hz=216_000_000,
    regions=(
        MemoryTiming(Region(_FLASH.name, _FLASH.start, _FLASH.end, cacheable=True), "flash", width=16,
                     read_stall=Timing.fixed(7, RM0431_WS), fetch_stall=Timing.fixed(7, RM0431_WS),
                     cached=True, line_fill=F7_LINE_FILL),
        MemoryTiming(Region(_RAM.name, _RAM.start, _RAM.end, cacheable=True), "sram", width=8,
                     cached=True, line_fill=SRAM_LINE_FILL),
    ),
    dcache=CacheGeometry(8192, 32, 4),
    icache=CacheGeometry(8192, 32, 2),
    assumptions=(*_F7_COMMON,
                 "L1 caches on: " + F722_CACHES + "; simulated LRU, write-allocate (the Armv7-M default "
                 "attributes make SRAM write-back write-allocate)",
                 "a flash line miss stalls 16 cycles, an SRAM line miss 4 (assumptions, see sources)"),
    cores=("cortex-m7",),
)

STM32F7_216_CACHE_DTCM = MemoryConfig(
    name="stm32f7-216mhz-cache-dtcm",
    description="STM32F72x at 216 MHz: flash 7 wait states over AXI with L1 I/D caches on, RAM in DTCM",
    clock_hz=216_000_000,
    regions=(
        MemoryTiming(Region(_FLASH.name, _FLASH.start, _FLASH.end, cacheable=True), "flash", width=16,
                     read_stall=Timing.fixed(7, RM0431_WS), fetch_stall=Timing.fixed(7, RM0431_WS),
                     cached=True, line_fill=F7_LINE_FILL),
        MemoryTiming(_RAM, "tcm", width=8),
    ),
    dcache=CacheGeometry(8192, 32, 4),
    icache=CacheGeometry(8192, 32, 2),
    assumptions=(*_F7_COMMON,
                 "L1 caches on for flash: " + F722_CACHES + "; simulated LRU",
                 "RAM (activations, stack) in DTCM: zero wait states, not cached (" + M7_TRM + ": TCM)",
                 "a flash line miss stalls 16 cycles (assumption, see sources)"),
    cores=("cortex-m7",),
)

STM32F7_216_NOCACHE = MemoryConfig(
    name="stm32f7-216mhz-nocache",
    description="STM32F72x at 216 MHz: flash 7 wait states over AXI, L1 caches and ART off, SRAM zero wait",
    clock_hz=216_000_000,
    regions=(
        MemoryTiming(_FLASH, "flash", width=16, read_stall=Timing.fixed(7, RM0431_WS),
                     fetch_stall=Timing.fixed(7, RM0431_WS, "per 128-bit flash line fetched")),
        MemoryTiming(_RAM, "sram", width=8, read_stall=M7_AXI_READ),
    ),
    assumptions=(*_F7_COMMON,
                 "L1 caches and ART off: each flash data read stalls 7 cycles, instruction fetch stalls 7 "
                 "cycles per 16-byte flash line fetched (low: only lines entered by a jump; high: every line "
                 "of every straight-line run; see CYCLEMODEL.md)",
                 "SRAM loads over AXI, not the TCM interface: " + M7_AXI_READ.note),
    cores=("cortex-m7",),
)

MEMORY_CONFIGS: dict[str, MemoryConfig] = {m.name: m for m in (
    ZERO_WAIT, STM32F4_168_ART, STM32F4_168_NOART, STM32F7_216_CACHE, STM32F7_216_CACHE_DTCM, STM32F7_216_NOCACHE)}


def memory_cycles(profile: InsnProfile, mem: MemoryConfig,
                  fetch_ahead: bool = True) -> tuple[float, float, float, dict[str, float]]:
    """(point, low, high, breakdown) of stall cycles the memory configuration adds.

    Uncached instruction fetch (mcusearch/boards/CYCLEMODEL.md, "Fetch stalls"): the stall is
    charged per ``width``-byte line actually fetched, from the plugin's per-run line counts. With a
    core that fetches ahead (``fetch_ahead``) the low bound charges only the lines entered by a
    jump (sequential lines hidden behind execution), the high bound every line of every straight-line
    run (nothing hidden) and the point is the middle; without one (Cortex-M0+) every line stalls.
    """
    point = low = high = 0.0
    breakdown: dict[str, float] = {}
    if mem.regions:
        _check_profile_matches(profile, mem)

    def add(key: str, n: float, t: Timing) -> None:
        nonlocal point, low, high
        if n and (t.cycles or t.low or t.high):
            breakdown[key] = breakdown.get(key, 0.0) + n * t.cycles
            point, low, high = point + n * t.cycles, low + n * t.low, high + n * t.high

    for m in mem.regions:
        rc = profile.regions.get(m.region.name)
        if rc is None:
            continue
        name = m.region.name
        if m.cached:
            add(f"mem:{name}:data_line_fills", rc.read_misses + rc.write_misses, m.line_fill)
            add(f"mem:{name}:fetch_line_fills", rc.iline_misses, m.line_fill)
        else:
            add(f"mem:{name}:data_read_stalls", rc.reads, m.read_stall)
            lines, jumps = rc.fetch_lines(m.width), rc.jump_lines(m.width)
            t = m.fetch_stall
            lo, hi = (jumps if fetch_ahead else lines) * t.low, lines * t.high
            mid = (lo + hi) / 2 if fetch_ahead else lines * t.cycles
            if hi:
                breakdown[f"mem:{name}:fetch_stalls"] = breakdown.get(f"mem:{name}:fetch_stalls", 0.0) + mid
                point, low, high = point + mid, low + lo, high + hi
    return point, low, high, breakdown


def _check_profile_matches(profile: InsnProfile, mem: MemoryConfig) -> None:
    names = {r.name: r for r in profile.region_defs}
    for m in mem.regions:
        r = names.get(m.region.name)
        if r is None or (r.start, r.end) != (m.region.start, m.region.end):
            raise ValueError(f"memory configuration {mem.name!r} needs plugin region {m.region.arg()}; the "
                             f"profile has {[x.arg() for x in profile.region_defs]}")
        if m.cached and not r.cacheable:
            raise ValueError(f"memory configuration {mem.name!r} caches region {m.region.name!r} but the profile "
                             f"did not simulate it: collect it with MemoryConfig.plugin_options()")
    if any(m.cached for m in mem.regions):
        if profile.dcache != mem.dcache or profile.icache != mem.icache:
            raise ValueError(f"memory configuration {mem.name!r} assumes dcache={mem.dcache}, icache={mem.icache}; "
                             f"the profile simulated dcache={profile.dcache}, icache={profile.icache}")


# ---- estimates ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class EstimateConfig:
    core: str
    memory: MemoryConfig = ZERO_WAIT

    @property
    def name(self) -> str:
        return f"{self.core}:{self.memory.name}"

    @classmethod
    def parse(cls, text: str) -> "EstimateConfig":
        """"cortex-m4" or "cortex-m7:stm32f7-216mhz-cache"."""
        core, _, mem = text.partition(":")
        if core not in MODELS:
            raise ValueError(f"unknown core {core!r}; known: {', '.join(MODELS)}")
        if mem and mem not in MEMORY_CONFIGS:
            raise ValueError(f"unknown memory configuration {mem!r}; known: {', '.join(MEMORY_CONFIGS)}")
        memory = MEMORY_CONFIGS[mem] if mem else ZERO_WAIT
        if memory.cores and core not in memory.cores:
            raise ValueError(f"memory configuration {memory.name!r} describes {', '.join(memory.cores)}, not {core}")
        return cls(core, memory)


@dataclass(frozen=True)
class Estimate:
    cycles: float
    breakdown: dict[str, float]
    assumptions: list[str]
    method: str
    cycles_low: float = 0.0
    cycles_high: float = 0.0
    clock_hz: int | None = None
    insns: int = 0
    sources: dict[str, str] = field(default_factory=dict)

    def figure(self) -> Figure:
        return Figure(self.cycles, "cycles", Provenance.ESTIMATED, self.method)

    def time_figure(self, clock_hz: int | None = None) -> Figure:
        """Estimated time in ms at ``clock_hz`` (default: the memory configuration's clock)."""
        hz = clock_hz or self.clock_hz
        if not hz:
            raise ValueError("no clock: give clock_hz (the zero-wait configuration assumes none)")
        return Figure(self.cycles / hz * 1e3, "ms", Provenance.ESTIMATED, f"{self.method}; at {hz / 1e6:g} MHz")

    @property
    def cpi(self) -> float:
        return self.cycles / self.insns if self.insns else float("nan")


def estimate(profile: InsnProfile, config: EstimateConfig | str) -> Estimate:
    """Cycles for the counted instructions on ``config.core`` with ``config.memory``.

    Raises ValueError if the profile has instructions the core does not implement, or was collected
    without the regions/caches the memory configuration needs.
    """
    if isinstance(config, str):
        config = EstimateConfig.parse(config)
    model = MODELS[config.core]
    mem = config.memory
    c_point, c_low, c_high, breakdown = model.core_cycles(profile)
    m_point, m_low, m_high, m_breakdown = memory_cycles(profile, mem, model.fetch_ahead)
    breakdown = {**breakdown, **m_breakdown}
    cycles = c_point + m_point
    method = (f"cycle model {config.name}: QEMU plugin instruction-class counts ({profile.insns} instructions, "
              f"{profile.scope}) x {model.title} timings ({'; '.join(_model_docs(model))}) + memory stalls "
              f"({mem.description}); not fitted to measurements")
    return Estimate(
        cycles=cycles,
        breakdown=breakdown,
        assumptions=[*model.assumptions, *mem.assumptions],
        method=method,
        cycles_low=c_low + m_low,
        cycles_high=c_high + m_high,
        clock_hz=mem.clock_hz,
        insns=profile.insns,
        sources={**model.sources(), **{f"mem:{m.region.name}": f"{m.kind}: read {m.read_stall.source}; "
                                       f"fetch {m.fetch_stall.source}; line fill {m.line_fill.source}"
                                       for m in mem.regions}},
    )


def _model_docs(model: CycleModel) -> list[str]:
    docs: list[str] = []
    for t in [*model.per_class.values(), *model.per_extra.values()]:
        if t is None:
            continue
        doc = t.source.split(" §")[0]
        if doc.startswith("assumption"):
            doc = "stated assumptions"
        if doc not in docs:
            docs.append(doc)
    return docs
