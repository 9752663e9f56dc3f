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
