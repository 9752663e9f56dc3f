"""The cycle model's memory rules (mcusearch/boards/CYCLEMODEL.md), each on a hand-counted kernel.

Two small kernels (below, ARMv6-M code so that one source runs on every core) are built for each
core, run in QEMU with the instruction-class plugin, and their estimates compared with cycles
counted by hand from the assembly and the rules' documents:

* ``lines3``: a loop whose body is exactly three 16-byte lines (22 ``adds``, ``subs``, ``bne``).
  Uncached, every iteration fetches its three lines (high) or only the line a jump enters (low).
* ``ramloads``: a loop of five instructions inside one 16-byte line, loading a word from RAM and
  using it at once (load-use); a literal load from flash before it.

Every expected number below comes from the assembly and the cited table, never from the model.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from mcusearch.boards import cyclemodel as cm
from mcusearch.boards import plugin as pl
from mcusearch.boards.cyclemodel import MemoryConfig, MemoryTiming, Timing
from mcusearch.catalog import find_part, load_catalog
from mcusearch.parts.memory import part_memory

QEMU = "qemu-system-arm"
CROSS = "arm-none-eabi-gcc"
FIXTURES = Path(__file__).parent / "fixtures" / "plugin"
N = 100   # loop iterations of each kernel

needs_tools = pytest.mark.skipif(
    not (shutil.which(QEMU) and shutil.which(CROSS) and shutil.which("gcc")),
    reason="needs qemu-system-arm, arm-none-eabi-gcc and a host gcc",
)

KERNELS = f"""
    .syntax unified
    .thumb
    .text
    .thumb_func
    .global main
main:
    push {{r4, lr}}
    bl lines3
    bl ramloads
    movs r0, #0
    pop {{r4, pc}}

    .balign 64
    .thumb_func
    .global lines3
lines3:                         @ A (64-byte aligned)
    movs r0, #{N}
    b 1f                        @ run 0: [A, A + 4), one 16-byte line
    .balign 16
1:  .rept 22                    @ the loop: [A + 16, A + 64), three 16-byte lines
    adds r1, r1, #1
    .endr
    subs r0, r0, #1
    bne 1b
    .global lines3_exit
lines3_exit:
    bx lr

    .balign 64
    .thumb_func
    .global ramloads
ramloads:                       @ B (64-byte aligned)
    ldr r1, =buf                @ a literal: one data read from flash
    movs r0, #{N}
    movs r3, #0
    b 2f                        @ run 0: [B, B + 8)
    .balign 16
2:  ldr r2, [r1]                @ the loop: [B + 16, B + 26), one 16-byte line
    adds r1, r1, #4
    adds r3, r3, r2             @ uses the loaded value at once
    subs r0, r0, #1
    bne 2b
    .global ramloads_exit
ramloads_exit:
    bx lr
    .ltorg

    .bss
    .balign 64
buf:
    .space {4 * N}
"""

LINK = """
MEMORY {{ FLASH (rx) : ORIGIN = {flash:#x}, LENGTH = 1M
          RAM (rwx) : ORIGIN = {ram:#x}, LENGTH = 1M }}
ENTRY(Reset_Handler)
SECTIONS {{
    .text : {{ KEEP(*(.vectors)) *(.text .text.*) *(.rodata .rodata.*) . = ALIGN(4); }} > FLASH
    .bss (NOLOAD) : {{ . = ALIGN(8); *(.bss .bss.*) . = ALIGN(8); }} > RAM
    __stack_top = ORIGIN(RAM) + LENGTH(RAM);
}}
"""

CPUS = {"mps2-an385": "cortex-m0plus", "mps2-an386": "cortex-m4", "mps2-an500": "cortex-m7",
        "mps2-an505": "cortex-m33"}


@pytest.fixture(scope="module")
def elves(tmp_path_factory) -> dict[str, Path]:
    if not shutil.which(CROSS):
        pytest.skip("no arm-none-eabi-gcc")
    out = tmp_path_factory.mktemp("kernels")
    (out / "kernels.S").write_text(KERNELS)
    result = {}
    for machine, cpu in CPUS.items():
        flash, ram = pl.board_regions(machine)
        ld = out / f"{machine}.ld"
        ld.write_text(LINK.format(flash=flash.start, ram=ram.start))
        elf = out / f"{machine}.elf"
        subprocess.run([CROSS, f"-mcpu={cpu}", "-mthumb", "-nostdlib", "-nostartfiles", "-T", str(ld),
                        "-o", str(elf), str(FIXTURES / "start.S"), str(out / "kernels.S")], check=True)
        result[machine] = elf
    return result


def run(so, elf, machine, tmp_path, kernel, **opts) -> pl.InsnProfile:
    return pl.run_profile(elf, machine, tmp_path / f"{kernel}.json", so=so, timeout_s=60,
                          start=pl.symbol_address(elf, kernel), stop=pl.symbol_address(elf, f"{kernel}_exit"),
                          **opts)


def assert_bounds(est: cm.Estimate, low: float, point: float, high: float) -> None:
    assert (est.cycles_low, est.cycles, est.cycles_high) == pytest.approx((low, point, high))
    assert est.cycles_low <= est.cycles <= est.cycles_high


# ---- the plugin's fetch-line counts --------------------------------------------------------------

@needs_tools
@pytest.mark.parametrize("machine", sorted(CPUS))
def test_fetch_lines_per_run_are_the_hand_count(so, elves, tmp_path, machine):
    flash = run(so, elves[machine], machine, tmp_path, "lines3", regions=pl.board_regions(machine)).region("flash")
    assert flash.fetch_insns == 2 + 24 * N
    # 16-byte lines: run 0 one line; every iteration its three lines, entered by a jump into a new line
    assert (flash.fetch_lines(16), flash.jump_lines(16)) == (1 + 3 * N, 1 + N)
    # 32-byte lines: the loop spans lines A/32 (shared with run 0) and A/32 + 1; the first
    # iteration jumps from run 0 into the line run 0 ended in
    assert (flash.fetch_lines(32), flash.jump_lines(32)) == (1 + 2 * N, N)
    assert (flash.fetch_lines(4), flash.jump_lines(4)) == (1 + 12 * N, 1 + N)

    loads = run(so, elves[machine], machine, tmp_path, "ramloads", regions=pl.board_regions(machine))
    f, r = loads.region("flash"), loads.region("ram")
    # the loop stays in one 16-byte line: each iteration fetches it (high) but only the first jump
    # enters a new line
    assert (f.fetch_lines(16), f.jump_lines(16)) == (1 + N, 2)
    assert (f.reads, r.reads) == (1, N)


# ---- fetch stalls: per line fetched, bounds from jumps to all lines --------------------------------

def m4_lines3_core(p: float) -> float:
    """Cortex-M4 TRM r0p1 Table 3-1: movs 1, b 1 + P, N x (22 adds + subs + bne) + P per taken bne."""
    return 1 + (1 + p) + 24 * N + (N - 1) * p


@needs_tools
def test_m4_uncached_flash_fetch_stalls_per_line(so, elves, tmp_path):
    mem = cm.STM32F4_168_NOART   # RM0090: 5 WS at 168 MHz; 128-bit flash lines; ART and prefetch off
    est = cm.estimate(run(so, elves["mps2-an386"], "mps2-an386", tmp_path, "lines3", **mem.plugin_options()),
                      cm.EstimateConfig("cortex-m4", mem))
    low_stall, high_stall = 5 * (1 + N), 5 * (1 + 3 * N)     # jump lines / every line, 5 WS each
    assert_bounds(est, m4_lines3_core(1) + low_stall, m4_lines3_core(2) + (low_stall + high_stall) / 2,
                  m4_lines3_core(3) + high_stall)
    # the old rule (per 16 executed bytes: 1 + 3N lines' worth) is the high bound here, not the point
    assert est.breakdown["mem:flash:fetch_stalls"] == 5 * (2 + 4 * N) / 2


@needs_tools
def test_m4_art_holds_the_loop_lines_once(so, elves, tmp_path):
    mem = cm.STM32F4_168_ART     # RM0090: ART instruction cache 64 x 128-bit lines, simulated
    est = cm.estimate(run(so, elves["mps2-an386"], "mps2-an386", tmp_path, "lines3", **mem.plugin_options()),
                      cm.EstimateConfig("cortex-m4", mem))
    # cold lines: run 0's and the loop's three, each filled once (5 stall cycles); then every hit
    assert est.breakdown["mem:flash:fetch_line_fills"] == 5 * 4
    assert_bounds(est, m4_lines3_core(1) + 20, m4_lines3_core(2) + 20, m4_lines3_core(3) + 20)


@needs_tools
def test_m7_uncached_fetch_and_axi_sram_loads(so, elves, tmp_path):
    mem = cm.STM32F7_216_NOCACHE   # RM0431: 7 WS at 216 MHz; caches and ART off; SRAM over AXI
    p = run(so, elves["mps2-an500"], "mps2-an500", tmp_path, "lines3", **mem.plugin_options())
    est = cm.estimate(p, cm.EstimateConfig("cortex-m7", mem))
    insns = 2 + 24 * N                                     # single issue: 1 each; low: dual issue
    assert_bounds(est, insns / 2 + 7 * (1 + N), insns + 7 * (2 + 4 * N) / 2, insns + 7 * (1 + 3 * N))

    p = run(so, elves["mps2-an500"], "mps2-an500", tmp_path, "ramloads", **mem.plugin_options())
    est = cm.estimate(p, cm.EstimateConfig("cortex-m7", mem))
    insns, loads = 4 + 5 * N, 1 + N
    # core: 1 per instruction (low: half); high: +1 load-use per load (the TRM gives no figure)
    # flash: the literal read 7; fetch: 16-byte lines, low 2 jump lines, high 1 + N lines, 7 each
    # SRAM: N uncached loads over AXI, 0 to 4 each (assumption, middle 2)
    assert_bounds(est, insns / 2 + 7 + 7 * 2,
                  insns + 7 + 7 * (2 + 1 + N) / 2 + 2 * N,
                  insns + loads + 7 + 7 * (1 + N) + 4 * N)
    assert est.breakdown["mem:ram:data_read_stalls"] == 2 * N


@needs_tools
def test_m4_sram_loads_and_load_use(so, elves, tmp_path):
    mem = cm.STM32F4_168_NOART   # SRAM at zero wait states (RM0090); flash 5 WS
    est = cm.estimate(run(so, elves["mps2-an386"], "mps2-an386", tmp_path, "ramloads", **mem.plugin_options()),
                      cm.EstimateConfig("cortex-m4", mem))

    def core(p: float, literal: float) -> float:
        # Cortex-M4 TRM r0p1 Table 3-1 and §3.3.2: LDR literal 2 (+0..1 fetch contention), movs 1, movs 1,
        # b 1 + P; per iteration LDR 2 (its result used at once: no further stall in the TRM), adds 1,
        # adds 1, subs 1, bne 1 (+ P taken)
        return 2 + literal + 1 + 1 + (1 + p) + 6 * N + (N - 1) * p

    # flash: the literal read 5; fetch: 16-byte lines, low 2 jump lines, high 1 + N, 5 each; SRAM: 0
    assert_bounds(est, core(1, 0) + 5 + 5 * 2, core(2, 0) + 5 + 5 * (2 + 1 + N) / 2, core(3, 1) + 5 + 5 * (1 + N))
    assert "mem:ram:data_read_stalls" not in est.breakdown


# ---- the Cortex-M0+: no prefetch ahead, every line fetched stalls -----------------------------------

def m0p_lines3_core(b: float) -> float:
    """Cortex-M0+ TRM r0p1 Table 3-1: movs 1, b 2 (high 3), N x 24 + 1 per taken bne."""
    return 1 + b + 24 * N + (N - 1)


@needs_tools
def test_m0plus_waits_for_every_line(so, elves, tmp_path):
    elf, machine = elves["mps2-an385"], "mps2-an385"
    flash, ram = pl.board_regions(machine)
    one_ws = MemoryConfig(
        name="test-1ws-32bit", description="1 WS, 32-bit flash reads, no cache", clock_hz=48_000_000,
        regions=(MemoryTiming(flash, "flash", width=4, read_stall=Timing.fixed(1, "test"),
                              fetch_stall=Timing.fixed(1, "test")), MemoryTiming(ram, "sram")))
    p = run(so, elf, machine, tmp_path, "lines3", **one_ws.plugin_options())
    est = cm.estimate(p, cm.EstimateConfig("cortex-m0plus", one_ws))
    lines = 1 + 12 * N                                     # 4-byte lines: every one waited for
    assert_bounds(est, m0p_lines3_core(2) + lines, m0p_lines3_core(2) + lines, m0p_lines3_core(3) + lines)

    # a catalog part: STM32C031C6, 1 WS at 48 MHz, prefetch/cache not verified -> 0 to 1 per line
    pm = part_memory(find_part(load_catalog(), "STM32C031C6"))
    est = cm.estimate(p, cm.EstimateConfig("cortex-m0plus", pm.config.on_board(pl.board_regions(machine))))
    assert_bounds(est, m0p_lines3_core(2), m0p_lines3_core(2) + lines / 2, m0p_lines3_core(3) + lines)


# ---- the Cortex-M33 on its own address map ---------------------------------------------------------

@needs_tools
def test_m33_part_estimate_on_the_an505_map(so, elves, tmp_path):
    machine = "mps2-an505"
    pm = part_memory(find_part(load_catalog(), "STM32U575ZI-Q"))   # 4 WS, 8 KB ICACHE geometry unsourced
    cfg = pm.config.on_board(pl.board_regions(machine))
    assert cfg.regions[0].region.start == 0x10000000
    p = run(so, elves[machine], machine, tmp_path, "lines3", **cfg.plugin_options())
    est = cm.estimate(p, cm.EstimateConfig("cortex-m33", cfg))
    # Cortex-M4 table values assumed for the M33; flash: 0 (always hits) to 4 per 16-byte line
    assert_bounds(est, m4_lines3_core(1), m4_lines3_core(2) + 4 * (1 + 3 * N) / 2, m4_lines3_core(3) + 4 * (1 + 3 * N))
    # on the MPS2 map (0x0) nothing of this firmware would be seen as flash: the bug this fixes
    with pytest.raises(ValueError, match="needs plugin region"):
        cm.estimate(p, cm.EstimateConfig("cortex-m33", pm.config))


def test_every_configuration_moves_to_every_board_map():
    for machine in pl.BOARD_REGIONS:
        regions = pl.board_regions(machine)
        for mem in cm.MEMORY_CONFIGS.values():
            moved = mem.on_board(regions)
            assert [m.region.name for m in moved.regions] == [m.region.name for m in mem.regions]
            assert all(m.region.start in {r.start for r in regions} for m in moved.regions)
    with pytest.raises(KeyError, match="no address map"):
        pl.board_regions("mps2-an999")
