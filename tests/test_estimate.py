"""Cycle estimates of a real firmware run: the plugin's class mix × the cycle model, per board."""
from __future__ import annotations

from pathlib import Path

import pytest

from mcusearch.boards import get_board
from mcusearch.build import build
from mcusearch.estimate import CYCLE_MODELS, estimate_cycles
from mcusearch.figures import Provenance
from mcusearch.measure import measure
from mcusearch.select import trial_fits
from mcusearch.catalog import load_catalog
from tests.test_firmware import loop_conv


@pytest.mark.parametrize("name", sorted(CYCLE_MODELS))
def test_estimate_of_a_loop_model(name, tmp_path):
    board = get_board(name)
    conv = loop_conv(tmp_path / "c", [2000, 3000])
    fw = build(conv, board, "-O2", tmp_path / "build")
    meas = measure(fw, conv, board, timeout_s=60)
    per_inf = meas.per_inference.value
    est = estimate_cycles(fw.elf, board, per_inf, tmp_path / "est")
    # The loop body is a multiply-add recurrence plus a compare and a branch: more than one cycle
    # per instruction on every core modelled (a taken branch refills the pipeline).
    assert 1.0 <= est.cpi < 3.0, est.cpi
    assert est.cycles.provenance is Provenance.ESTIMATED
    assert est.cycles.value == pytest.approx(per_inf * est.cpi)
    assert "not fitted to measurements" in est.cycles.method
    clock = (216e6 if name == "qemu-m7" else board.clock_hz)
    assert est.latency_ms.value == pytest.approx(est.cycles.value / clock * 1e3)


def test_selection_prefers_a_trials_own_cycle_figure():
    from mcusearch.figures import Figure

    parts = load_catalog()
    figs = {"flash_kb": Figure(60, "kB", Provenance.STATIC), "ram_kb": Figure(20, "kB", Provenance.STATIC),
            "instructions": Figure(10e6, "instructions", Provenance.EMULATED)}
    maps = dict(cpi_by_board={"qemu-m7": 1.0}, core_by_board={"qemu-m7": "cortex-m7"})
    cfg = {"board": "qemu-m7", "quantization": "int8"}
    by_instr = {f.part.part: f for f in trial_fits(cfg, figs, parts, margin=0.1, deadline_ms=None, **maps)}
    figs["cycles"] = Figure(30e6, "cycles", Provenance.ESTIMATED)
    by_cycles = {f.part.part: f for f in trial_fits(cfg, figs, parts, margin=0.1, deadline_ms=None, **maps)}
    p = next(k for k, f in by_instr.items() if f.fits)
    assert by_cycles[p].est_latency_ms == pytest.approx(3 * by_instr[p].est_latency_ms)


@pytest.mark.parametrize("name", ["qemu-m4", "qemu-m33", "qemu-m0plus"])
def test_non_m7_trials_estimate_each_part_on_its_own_memory_system(name, tmp_path):
    """A trial on a non-M7 board re-weights its profile per part, as qemu-m7 trials do: every part of
    the board's core with a memory configuration gets its own cycles (flash wait states charged on the
    board's own address map: qemu-m33 keeps code at 0x10000000), the others say why not."""
    from mcusearch.parts.estimate import part_cycles_for_trial

    board = get_board(name)
    conv = loop_conv(tmp_path / "c", [2000, 3000])
    fw = build(conv, board, "-O2", tmp_path / "build")
    per_inf = measure(fw, conv, board, timeout_s=60).per_inference.value
    zero_wait = estimate_cycles(fw.elf, board, per_inf, tmp_path / "est").cycles.value
    parts = [p for p in load_catalog() if p.core == board.core]
    est = part_cycles_for_trial(fw.elf, board, parts, per_inf, tmp_path / "parts")
    assert set(est) == {p.part for p in parts}
    estimated = {k: v for k, v in est.items() if "cycles" in v}
    assert estimated, f"no {board.core} part has a memory configuration"
    for part, e in estimated.items():
        assert e["provenance"] == "estimated" and e["memory"].startswith(part.split(" ")[0])
        assert f"on {name}" in e["method"] and "re-weighted for this part's own memory system" in e["method"]
        assert e["cycles_low"] <= e["cycles"] <= e["cycles_high"]
        # every part here has flash wait states: its high bound is above the zero-wait count
        assert e["cycles_high"] > zero_wait, part
    for part, e in est.items():
        if "cycles" not in e:
            assert e["reason"]
    # every profile saw the firmware's code in the "flash" region of the board's own map
    from mcusearch.boards.plugin import read_counts
    for f in (tmp_path / "parts").glob("profile-*.json"):
        prof = read_counts(f)
        assert prof.region("flash").fetch_insns == prof.insns and prof.region("other").fetch_insns == 0, f.name


def test_a_board_without_an_address_map_gives_reasons_not_a_crash(tmp_path):
    from types import SimpleNamespace

    from mcusearch.parts.estimate import part_cycles_for_trial

    board = SimpleNamespace(name="qemu-x", machine="mps2-an999", core="cortex-m4")
    parts = [p for p in load_catalog() if p.core == "cortex-m4"]
    est = part_cycles_for_trial(tmp_path / "none.elf", board, parts, 1e6, tmp_path, corrections={})
    assert set(est) == {p.part for p in parts}
    assert all("no address map for QEMU machine 'mps2-an999'" in e["reason"] for e in est.values())
