"""Per-part estimates: a profile of real firmware re-weighted for each part's own memory system.

The kernel is tests/fixtures/plugin/stream.S (a loop reading a 4 KiB table from flash, 1024
words), run on QEMU mps2-an500 under the counting plugin. Expected stalls are computed by hand
from the rules in mcusearch/parts/memory.py, never from the code under test.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from mcusearch.boards import cyclemodel as cm
from mcusearch.boards import plugin as pl
from mcusearch.catalog import load_catalog
from mcusearch.parts.estimate import estimate_parts, profile_plans
from mcusearch.parts.memory import load_families, part_memory
from mcusearch.select import evaluate_parts

FIXTURES = Path(__file__).parent / "fixtures" / "plugin"
needs_tools = pytest.mark.skipif(
    not (shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc") and shutil.which("gcc")),
    reason="needs qemu-system-arm, arm-none-eabi-gcc and a host gcc")

TWO = """
- {part: FEW-WS, core: cortex-m7, fpu: single, clock_mhz: 200, flash_kb: 512, ram_kb: 256,
   flash_ws: 2, flash_ws_source: "test table A", icache_kb: 8, dcache_kb: 8, memory: stm32f7-l1}
- {part: MANY-WS, core: cortex-m7, fpu: single, clock_mhz: 200, flash_kb: 512, ram_kb: 256,
   flash_ws: 7, flash_ws_source: "test table B", icache_kb: 8, dcache_kb: 8, memory: stm32f7-l1}
- {part: UNSIZED, core: cortex-m7, fpu: single, clock_mhz: 200, flash_kb: 512, ram_kb: 256,
   flash_ws: 7, flash_ws_source: "test table C", memory: stm32f7-l1}
- {part: NO-WS, core: cortex-m7, fpu: single, clock_mhz: 200, flash_kb: 512, ram_kb: 256, memory: stm32f7-l1}
"""
STREAM_READS = 1 + 1024                 # the literal + the table's words (see test_cyclemodel.py)
LINE_MISSES = 1 + 4096 // 32            # 32-byte lines, the table is cold


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    if not (shutil.which("arm-none-eabi-gcc") and shutil.which("gcc")):
        pytest.skip("no cross or host compiler")
    out = tmp_path_factory.mktemp("stream")
    elf = out / "stream.elf"
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard",
                    "-nostdlib", "-nostartfiles", "-T", str(FIXTURES / "link.ld"), "-o", str(elf),
                    str(FIXTURES / "start.S"), str(FIXTURES / "stream.S")], check=True)
    return elf, pl.build_plugin(out / "cache")


@pytest.fixture
def two(tmp_path):
    f = tmp_path / "two.yaml"
    f.write_text(TWO)
    return load_catalog(path=f)


def profiles_for(stream, parts, tmp_path):
    elf, so = stream
    plans, memories = profile_plans(parts, "cortex-m7")
    a, b = pl.symbol_address(elf, "stream"), pl.symbol_address(elf, "stream_exit")
    profs = {k: pl.run_profile(elf, "mps2-an500", tmp_path / f"{k}.json", so=so, start=a, stop=b, timeout_s=30, **o)
             for k, o in plans.items()}
    return plans, memories, profs


@needs_tools
def test_the_part_with_more_wait_states_loses_on_latency(stream, two, tmp_path):
    plans, memories, profs = profiles_for(stream, two, tmp_path)
    assert set(plans) == {"plain", "d8192x32x4_i8192x32x2"}   # two parts share one simulated geometry
    insns = next(iter(profs.values())).insns
    est = estimate_parts(profs, memories, "cortex-m7", insns)
    few, many = est["FEW-WS"], est["MANY-WS"]
    assert many["cycles"] > few["cycles"] and many["cycles_low"] > few["cycles_low"]
    assert "MANY-WS:stm32f7-l1:7ws" in many["memory"] and many["provenance"] == "estimated"
    # hand count: data line fills only (the code sits in 2 lines, also missed once each).
    # FEW-WS: one read stalls (2+1)-1 = 2; a 32-byte line = 2 reads of 16 B: low 2, high 2*3-1 = 5.
    # MANY-WS: one read stalls 7; low 7, high 2*8-1 = 15.
    core = cm.estimate(profs["plain"], "cortex-m7")
    cached = profs["d8192x32x4_i8192x32x2"]
    fills = cached.region("flash").read_misses + cached.region("flash").iline_misses
    assert cached.region("flash").read_misses == LINE_MISSES
    assert few["cycles_low"] == pytest.approx(core.cycles_low + 2 * fills)
    assert few["cycles_high"] == pytest.approx(core.cycles_high + 5 * fills)
    assert many["cycles_high"] == pytest.approx(core.cycles_high + 15 * fills)
    assert many["cycles"] == pytest.approx(core.cycles + 11 * fills)
    # selection: a deadline between the two latencies keeps only the part with fewer wait states
    deadline = (few["cycles"] + many["cycles"]) / 2 / 200e3
    fits = {f.part.part: f for f in evaluate_parts(two, core="cortex-m7", needs_fpu=False, flash_kb=10, ram_kb=10,
                                                   count_per_inference=insns, deadline_ms=deadline,
                                                   part_cycles=est)}
    assert fits["FEW-WS"].fits and not fits["MANY-WS"].fits
    assert "MANY-WS:stm32f7-l1:7ws" in fits["MANY-WS"].reasons[0]


@needs_tools
def test_a_cache_without_sourced_geometry_gives_a_range(stream, two, tmp_path):
    _, memories, profs = profiles_for(stream, two, tmp_path)
    plain = profs["plain"]
    est = estimate_parts(profs, memories, "cortex-m7", plain.insns)["UNSIZED"]
    core = cm.estimate(plain, "cortex-m7")
    flash = plain.region("flash")
    waits = 7 * (flash.reads + flash.fetch_lines(16))    # never hits: 7 per read and per 16-byte line fetched
    assert est["cycles_low"] == pytest.approx(core.cycles_low)   # always hits
    assert est["cycles_high"] == pytest.approx(core.cycles_high + waits)
    assert est["cycles_low"] <= est["cycles"] <= est["cycles_high"]


def test_a_part_without_wait_states_has_no_estimate_and_selection_says_why(two):
    _, memories = profile_plans(two, "cortex-m7")
    assert memories["NO-WS"].config is None and "wait states" in memories["NO-WS"].reason
    est = estimate_parts({}, {"NO-WS": memories["NO-WS"]}, "cortex-m7", 1000)
    fit = evaluate_parts([p for p in two if p.part == "NO-WS"], core="cortex-m7", needs_fpu=False, flash_kb=10,
                         ram_kb=10, count_per_inference=1e6, part_cycles=est)[0]
    assert fit.est_latency_ms == pytest.approx(1e6 / 200e3)
    assert "not modelled: no flash wait states" in fit.latency_method


def test_families_are_data_with_sources_and_every_catalog_family_exists():
    fams = load_families()
    for f in fams.values():
        assert f.flash_width_source and f.cache_source and f.ram_source
    for p in load_catalog():
        if p.memory is not None:
            assert p.memory in fams, p.part
            pm = part_memory(p)
            if pm.config is None:
                continue
            for m in pm.config.regions:  # a point outside its own bounds is impossible
                for t in (m.read_stall, m.fetch_stall, m.line_fill):
                    assert t.low <= t.cycles <= t.high, (p.part, t)


def test_h7_flash_on_the_axi_clock_doubles_a_flash_cycle():
    h7 = part_memory(next(p for p in load_catalog() if p.short_name == "STM32H743ZI")).config
    flash = h7.regions[0]
    assert flash.read_stall.cycles == (4 + 1) * 2 - 1   # 4 WS at 240 MHz, core at 480 MHz
    assert any("240 MHz" in a for a in h7.assumptions)


@needs_tools
def test_parts_the_firmware_cannot_fit_are_not_profiled(stream, two, tmp_path):
    from mcusearch.boards import get_board
    from mcusearch.parts.estimate import part_cycles_for_trial

    elf, _ = stream
    small = [p for p in two if p.part != "FEW-WS"]
    # the stream kernel has no harness markers: only the planning is exercised here, with no part left
    out = part_cycles_for_trial(elf, get_board("qemu-m7"), small, 1000, tmp_path, flash_kb=10_000, ram_kb=1)
    assert out == {} and not list(tmp_path.glob("profile-*.json"))
