"""The instruction-class plugin and the cycle model, on small hand-counted kernels.

The fixtures under tests/fixtures/plugin/ are bare-metal assembly for QEMU mps2-an386 (Cortex-M4)
and mps2-an500 (Cortex-M7) with their own startup and linker script, ending with semihosting
SYS_EXIT. Every expected number below is counted by hand from the assembly; the expected cycles
are computed by hand from the Cortex-M4 TRM r0p1 tables, never from the model under test.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from mcusearch.boards import cyclemodel as cm
from mcusearch.boards import plugin as pl
from mcusearch.figures import Provenance

FIXTURES = Path(__file__).parent / "fixtures" / "plugin"
QEMU = "qemu-system-arm"
CROSS = "arm-none-eabi-gcc"

needs_tools = pytest.mark.skipif(
    not (shutil.which(QEMU) and shutil.which(CROSS) and shutil.which("gcc")),
    reason="needs qemu-system-arm, arm-none-eabi-gcc and a host gcc",
)


# ---- helpers -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def elves(tmp_path_factory) -> dict[str, Path]:
    if not shutil.which(CROSS):
        pytest.skip("no arm-none-eabi-gcc")
    out = tmp_path_factory.mktemp("elf")
    result = {}
    for name in ("loop", "stream", "classes"):
        elf = out / f"{name}.elf"
        # Armv7E-M with the Cortex-M7's FPv5 (VMOV to/from half a double needs it); the loop and
        # stream fixtures use no FPU instruction and also run on the Cortex-M4 board.
        subprocess.run([CROSS, "-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard",
                        "-nostdlib", "-nostartfiles", "-T", str(FIXTURES / "link.ld"), "-o", str(elf),
                        str(FIXTURES / "start.S"), str(FIXTURES / f"{name}.S")], check=True)
        result[name] = elf
    return result


def profile(so, elf, machine, tmp_path, start=None, stop=None, **kw) -> pl.InsnProfile:
    a = pl.symbol_address(elf, start) if start else None
    b = pl.symbol_address(elf, stop) if stop else None
    return pl.run_profile(elf, machine, tmp_path / "counts.json", so=so, start=a, stop=b, timeout_s=30, **kw)


# ---- the loop kernel: counts --------------------------------------------------------------------

N = 1000      # loop iterations per call (loop.S)
CALLS = 2     # main calls the kernel twice

# Per call, window [kernel, kernel_exit): movw, movs, movs, then N x the 9-instruction loop.
LOOP_WINDOW_CLASSES = {
    "alu": CALLS * (3 + 3 * N),         # movw movs movs; adds add.w subs
    "load": CALLS * 2 * N,              # ldr r1 (RAM), ldr r6 (flash)
    "mla": CALLS * N,
    "mul": CALLS * N,
    "store": CALLS * N,
    "branch_cond": CALLS * N,
}
LOOP_WINDOW_EXTRAS = {
    "branch_cond_taken": CALLS * (N - 1),
    "store_imm": CALLS * N,             # str r2, [r4, #4]
    "ldst_pipelined": CALLS * N,        # ldr r6, [r5] right after ldr r1, [r7]
    "agu_stall": CALLS * N,             # ldr r1, [r7] right after add.w r7, ...
    "insn32": CALLS * (1 + 2 * N),      # movw; add.w, mla
    "insn16": CALLS * (2 + 7 * N),
}


@needs_tools
@pytest.mark.parametrize("machine", ["mps2-an386", "mps2-an500"])
def test_loop_counts_equal_the_hand_count(so, elves, tmp_path, machine):
    p = profile(so, elves["loop"], machine, tmp_path, start="kernel", stop="kernel_exit")
    assert p.scope == "window" and p.intervals == CALLS
    assert p.insns == CALLS * (3 + 9 * N)
    assert {c: n for c, n in p.classes.items() if n} == LOOP_WINDOW_CLASSES
    assert {x: n for x, n in p.extras.items() if n} == LOOP_WINDOW_EXTRAS
    flash, ram, other = p.region("flash"), p.region("ram"), p.region("other")
    assert (flash.reads, flash.writes, flash.read_bytes) == (CALLS * N, 0, 4 * CALLS * N)
    assert (ram.reads, ram.writes, ram.write_bytes) == (CALLS * N, CALLS * N, 4 * CALLS * N)
    assert flash.fetch_insns == p.insns and ram.fetch_insns == 0
    assert other.reads == other.writes == other.fetch_insns == 0
    fig = p.figure()
    assert fig.provenance == Provenance.EMULATED and fig.value == p.insns


@needs_tools
def test_markers_limit_counting_to_the_window(so, elves, tmp_path):
    elf = elves["loop"]
    whole = profile(so, elf, "mps2-an386", tmp_path)
    assert whole.scope == "total" and whole.intervals is None
    # Reset_Handler: bl, movs, ldr, bkpt; main: push, ldr, ldr, bl, bl, movs, pop;
    # each call of kernel: 3 + 9 N + bx lr.
    assert whole.insns == 4 + 7 + CALLS * (3 + 9 * N + 1)
    assert whole.classes["stm"] == 1 and whole.classes["ldm"] == 1
    assert whole.extras["stm_regs"] == 5 and whole.extras["ldm_regs"] == 5 and whole.extras["ldm_pc"] == 1
    assert whole.extras["load_literal"] == 3
    assert whole.classes["branch"] == 1 + 2 + CALLS        # bl main, 2 x bl kernel, 2 x bx lr
    assert whole.classes["system"] == 1                     # bkpt (semihosting)

    windowed = profile(so, elf, "mps2-an386", tmp_path, start="kernel", stop="kernel_exit")
    assert windowed.insns == CALLS * (3 + 9 * N)
    # the same run read as a whole still has every instruction
    total = pl.read_counts(tmp_path / "counts.json", scope="total")
    assert total.insns == whole.insns and total.classes == whole.classes
    # the window's classes are the whole run's minus what ran outside it
    outside = Counter(total.classes)
    outside.subtract(windowed.classes)
    assert +outside == Counter({"alu": 2, "load": 3, "branch": 5, "stm": 1, "ldm": 1, "system": 1})


@needs_tools
def test_window_that_never_opens_is_an_error(so, elves, tmp_path):
    from mcusearch.errors import StageError

    elf = elves["loop"]
    never = pl.symbol_address(elves["loop"], "Fault_Handler")
    with pytest.raises(StageError, match="never executed"):
        pl.run_profile(elf, "mps2-an386", tmp_path / "c.json", so=so, start=never,
                       stop=pl.symbol_address(elf, "kernel"), timeout_s=30)


# ---- the loop kernel: cycles --------------------------------------------------------------------

def m4_loop_cycles(p_refill: float) -> float:
    """Cortex-M4 TRM r0p1 Table 3-1 and §3.3.2, by hand, for the window of loop.S."""
    per_iteration = (
        1            # adds                          ADD 1
        + 1          # add.w r7, r4, #8              ADD 1
        + 2 + 1      # ldr r1, [r7]                  LDR 2, +1: address from the preceding ALU result
        + 2 - 1      # ldr r6, [r5]                  LDR 2, -1: pipelined after the previous LDR
        + 1          # mla                           MLA 1 (Cortex-M4)
        + 1          # muls                          MUL 1
        + 1          # str r2, [r4, #4]              "STR Rx,[Ry,#imm] is always one cycle"
        + 1          # subs                          SUB 1
        + 1          # bne                           B<cc> 1 not taken ...
    )
    per_call = 3 + N * per_iteration + (N - 1) * p_refill     # ... 1 + P taken (N - 1 times)
    return CALLS * per_call


@needs_tools
def test_m4_estimate_equals_the_hand_computed_trm_cycles(so, elves, tmp_path):
    p = profile(so, elves["loop"], "mps2-an386", tmp_path, start="kernel", stop="kernel_exit")
    est = cm.estimate(p, "cortex-m4")
    assert est.cycles == m4_loop_cycles(2)       # P in 1..3: the model's point value is 2
    assert est.cycles_low == m4_loop_cycles(1)
    assert est.cycles_high == m4_loop_cycles(3)
    assert sum(est.breakdown.values()) == est.cycles
    fig = est.figure()
    assert fig.provenance == Provenance.ESTIMATED and fig.unit == "cycles"
    assert "Cortex-M4 TRM r0p1" in fig.method and "not fitted" in fig.method
    assert est.assumptions


@needs_tools
def test_other_cores_on_the_loop(so, elves, tmp_path):
    p = profile(so, elves["loop"], "mps2-an500", tmp_path, start="kernel", stop="kernel_exit")
    # Cortex-M3: MLA costs 2 (Cortex-M3 TRM r2p1 Table 3-1), the rest as on the M4.
    assert cm.estimate(p, "cortex-m3").cycles == m4_loop_cycles(2) + CALLS * N
    # Cortex-M7, stated single-issue model: every instruction of the loop is one cycle.
    m7 = cm.estimate(p, "cortex-m7")
    assert m7.cycles == p.insns and m7.cycles_low == p.insns / 2
    assert any("no instruction timing table" in a or "publishes no" in a for a in m7.assumptions)
    # Cortex-M0+ cannot run MLA / the 32-bit encodings: the profile is rejected.
    with pytest.raises(ValueError, match="does not implement"):
        cm.estimate(p, "cortex-m0plus")


# ---- memory regions and caches ------------------------------------------------------------------

STREAM_READS = 1 + 1024       # literal + table words


@needs_tools
def test_stream_region_counts_and_cache_misses(so, elves, tmp_path):
    elf = elves["stream"]
    p = profile(so, elf, "mps2-an500", tmp_path, start="stream", stop="stream_exit",
                dcache=pl.CacheGeometry(8192, 32, 4),
                regions=[pl.Region("flash", 0, 0x400000, cacheable=True), pl.Region("ram", 0x20000000, 0x20400000)])
    assert p.insns == 3 + 4 * 1024
    flash = p.region("flash")
    assert (flash.reads, flash.read_bytes) == (STREAM_READS, 4 * STREAM_READS)
    assert flash.read_misses == 1 + 4096 // 32
    assert p.region("ram").reads == 0

    p16 = profile(so, elf, "mps2-an386", tmp_path, start="stream", stop="stream_exit",
                  **cm.STM32F4_168_ART.plugin_options())
    assert p16.region("flash").read_misses == 1 + 4096 // 16
    # Instruction cache, per executed block (stream.S addresses: stream 0x62..0x73, loop 0x6a..0x73):
    # the first block touches lines 0x60 and 0x70 (both cold: main's block ends at 0x5e), then the
    # loop's block runs 1023 more times over the same two 16-byte lines.
    assert pl.symbol_address(elf, "stream") == 0x62 and pl.symbol_address(elf, "stream_exit") == 0x74
    assert (p16.region("flash").iline_refs, p16.region("flash").iline_misses) == (2 + 2 * 1023, 2)


@needs_tools
def test_memory_configurations_add_documented_stalls(so, elves, tmp_path):
    elf = elves["stream"]
    cfg = cm.EstimateConfig.parse("cortex-m7:stm32f7-216mhz-nocache")
    p = profile(so, elf, "mps2-an500", tmp_path, start="stream", stop="stream_exit", **cfg.memory.plugin_options())
    est = cm.estimate(p, cfg)
    core = cm.estimate(p, "cortex-m7").cycles
    flash = p.region("flash")
    # RM0431: 7 wait states at 216 MHz; every uncached flash data read stalls 7, every 16-byte line
    # fetched 7 (CYCLEMODEL.md). stream.S: the first run [0x62, 0x74) and each of the 1023 further
    # iterations [0x6a, 0x74) span lines 0x60 and 0x70; each run is entered by a jump into line 0x60.
    lines, jumps = 2 + 2 * 1023, 1 + 1023
    assert (flash.fetch_lines(16), flash.jump_lines(16)) == (lines, jumps)
    assert est.breakdown["mem:flash:data_read_stalls"] == 7 * STREAM_READS
    assert est.breakdown["mem:flash:fetch_stalls"] == 7 * (lines + jumps) / 2   # low: jumps, high: lines
    assert est.cycles == core + 7 * STREAM_READS + 7 * (lines + jumps) / 2
    assert any("RM0431" in a for a in est.assumptions)
    assert est.time_figure().value == pytest.approx(est.cycles / 216e6 * 1e3)

    cached = cm.EstimateConfig.parse("cortex-m7:stm32f7-216mhz-cache")
    pc = profile(so, elf, "mps2-an500", tmp_path, start="stream", stop="stream_exit", **cached.memory.plugin_options())
    ec = cm.estimate(pc, cached)
    # a 32-byte line = 2 x 128-bit flash reads x (7 + 1) cycles = 16 stall cycles per miss
    assert ec.breakdown["mem:flash:data_line_fills"] == 16 * (1 + 4096 // 32)
    assert ec.cycles < est.cycles
    # a profile collected without the cache simulation cannot be used for a cached configuration
    with pytest.raises(ValueError, match="did not simulate|needs plugin region|assumes dcache"):
        cm.estimate(p, cached)


# ---- the decoder, instruction by instruction ----------------------------------------------------

def tagged_classes() -> list[str]:
    """The "@ class" tags of classes.S, in source order."""
    tags = []
    for line in (FIXTURES / "classes.S").read_text().splitlines():
        m = re.match(r"\s*(?:\d+:)?\s*([a-z][^@]*?)\s*@\s*([a-z_0-9]+)\s*$", line)
        if m and not m.group(1).startswith("."):
            tags.append(m.group(2))
    return tags


@needs_tools
def test_each_instruction_kind_gets_its_class(so, elves, tmp_path):
    elf = elves["classes"]
    start, stop = pl.symbol_address(elf, "classes_start"), pl.symbol_address(elf, "classes_end")
    dump = tmp_path / "dump.txt"
    out = tmp_path / "c.json"
    cmd = [QEMU, "-M", "mps2-an500", "-nographic", "-kernel", str(elf), "-semihosting-config",
           "enable=on,target=native", "-icount", "shift=7",
           *pl.qemu_plugin_args(so, out, pl.MPS2_REGIONS, start, stop, dump=dump)]
    subprocess.run(cmd, check=True, timeout=30, capture_output=True)
    seen = {}
    for line in dump.read_text().splitlines():
        addr, _size, cls = line.split()
        if start <= int(addr, 16) < stop:
            seen[int(addr, 16)] = cls
    tags = tagged_classes()
    assert [seen[a] for a in sorted(seen)] == tags
    p = pl.read_counts(out)
    assert p.insns == len(tags)
    assert {c: n for c, n in p.classes.items() if n} == dict(Counter(tags))
    # overlays of the same run, by hand from classes.S
    assert p.extras["branch_cond_taken"] == 3      # bne (in IT, condition false) falls through
    assert p.extras["ldm_regs"] == 2 + 2 + 3 + 1 and p.extras["stm_regs"] == 3 + 2 + 3 + 1
    assert p.extras["vfp_ldm_words"] == 4 + 4 and p.extras["vfp_stm_words"] == 4 + 4
    assert p.extras["vfp_ldst64"] == 1 and p.extras["load_pc"] == 1 and p.extras["ldm_pc"] == 1
    assert p.extras["store_imm"] == 2              # str r1,[r4]; strh.w r1,[r4,#6]


# ---- pure Python: tables and arguments ----------------------------------------------------------

def test_python_and_c_agree_on_names():
    src = (pl.PLUGIN_DIR / "insn_classes.c").read_text()

    def c_array(name):
        body = re.search(name + r"\[[A-Z_]+\] = \{(.*?)\};", src, re.S).group(1)
        return tuple(re.findall(r'"([a-z0-9_]+)"', body))

    assert c_array("class_names") == pl.CLASSES
    assert c_array("extra_names") == pl.EXTRAS
    assert c_array("rfield_names") == pl.REGION_FIELDS


def test_every_timing_has_a_source_and_a_consistent_range():
    for model in cm.MODELS.values():
        for key, t in [*model.per_class.items(), *model.per_extra.items()]:
            if t is None:
                continue
            assert t.source, (model.core, key)
            assert t.low <= t.cycles <= t.high, (model.core, key)
        assert model.assumptions
    for mem in cm.MEMORY_CONFIGS.values():
        assert mem.assumptions and mem.description
        for m in mem.regions:
            assert m.read_stall.source and m.fetch_stall.source and m.line_fill.source


def test_m0plus_estimate_from_a_hand_made_profile():
    classes = dict.fromkeys(pl.CLASSES, 0)
    classes.update(alu=10, mul=2, load=3, store=1, ldm=1, branch=2, branch_cond=4)
    extras = dict.fromkeys(pl.EXTRAS, 0)
    extras.update(ldm_regs=3, ldm_pc=1, branch_cond_taken=3, agu_stall=5, store_imm=1)
    p = pl.InsnProfile(insns=sum(classes.values()), classes=classes, extras=extras, regions={}, scope="total")
    est = cm.estimate(p, "cortex-m0plus")
    # Cortex-M0+ TRM r0p1 Table 3-1: ALU 1, MULS 1, LDR 2, STR 2, POP {.., PC} 3 + N, B/BX 2,
    # B<cc> 1 / 2 taken; the M3/M4 load/store pairing rules do not apply.
    assert est.cycles == 10 + 2 + 3 * 2 + 2 + (3 + 3) + 2 * 2 + 4 + 3
    assert est.cycles_high > est.cycles        # MULS 32 with the small multiplier, BL 3


def test_plugin_args_format(tmp_path):
    args = pl.qemu_plugin_args(tmp_path / "a,b.so", tmp_path / "out.json",
                               [pl.Region("flash", 0, 0x400000, cacheable=True)], start=0x101, stop=0x200,
                               dcache=pl.CacheGeometry(8192, 32, 4))
    assert args[0] == "-plugin" and args[2:] == ["-d", "plugin"]
    assert args[1] == (f"{tmp_path}/a,,b.so,out={tmp_path}/out.json,region=flash:0x0:0x400000:c,"
                       "start=0x100,stop=0x200,dcache=8192:32:4")
    with pytest.raises(ValueError):
        pl.qemu_plugin_args("x.so", "o.json", start=0x100)


def test_estimate_config_parsing():
    assert cm.EstimateConfig.parse("cortex-m4").memory is cm.ZERO_WAIT
    assert cm.EstimateConfig.parse("cortex-m7:stm32f7-216mhz-cache").memory.clock_hz == 216_000_000
    with pytest.raises(ValueError):
        cm.EstimateConfig.parse("cortex-m4:stm32f7-216mhz-cache")
    with pytest.raises(ValueError):
        cm.EstimateConfig.parse("cortex-a53")
