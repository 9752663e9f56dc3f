"""Energy per inference: run current at the part's clock × supply voltage × latency, per part."""
from __future__ import annotations

import pytest

from mcusearch.catalog import find_part, load_catalog
from mcusearch.figures import Provenance
from mcusearch.select import (ENERGY_NONE, energy_figure, evaluate_parts, part_energy_uj, part_figures,
                              parts_table)

CAT = """
- {part: MA-M4, core: cortex-m4, fpu: single, clock_mhz: 100, flash_kb: 512, ram_kb: 128,
   run_current_ma: 20, run_current_mhz: 100, run_current_source: "test sheet T1", run_current_flag: primary,
   supply_v: 3.3, supply_v_source: "test sheet T1"}
- {part: UA-M4, core: cortex-m4, fpu: single, clock_mhz: 80, flash_kb: 512, ram_kb: 128,
   run_current_ua_per_mhz: 50, run_current_source: "test sheet T2", run_current_flag: selector,
   supply_v: 1.8, supply_v_source: "test sheet T2"}
- {part: NOV-M4, core: cortex-m4, fpu: single, clock_mhz: 120, flash_kb: 512, ram_kb: 128,
   run_current_ua_per_mhz: 100, run_current_source: "test sheet T3"}
- {part: NOI-M4, core: cortex-m4, fpu: single, clock_mhz: 168, flash_kb: 512, ram_kb: 128}
"""


@pytest.fixture
def parts(tmp_path):
    p = tmp_path / "cat.yaml"
    p.write_text(CAT)
    return load_catalog(path=p)


def fits(parts, count=1e6, energy=None, deadline=None):
    return {f.part.part: f for f in evaluate_parts(parts, core="cortex-m4", needs_fpu=False, flash_kb=100,
                                                   ram_kb=20, count_per_inference=count, deadline_ms=deadline,
                                                   energy_uj=energy)}


def test_energy_arithmetic(parts):
    f = fits(parts)
    # 1e6 cycles at 100 MHz = 10 ms; 20 mA x 3.3 V = 66 mW; 66 mW x 10 ms = 660 uJ
    assert f["MA-M4"].est_latency_ms == pytest.approx(10.0)
    assert f["MA-M4"].energy_uj == pytest.approx(660.0)
    assert "20 mA x 3.3 V x 10 ms = 660 uJ" in f["MA-M4"].energy_note and "estimated" in f["MA-M4"].energy_note
    # 50 uA/MHz x 80 MHz = 4 mA; 1e6 cycles at 80 MHz = 12.5 ms; 4 mA x 1.8 V x 12.5 ms = 90 uJ
    assert f["UA-M4"].energy_uj == pytest.approx(90.0)
    assert "uA/MHz" in f["UA-M4"].energy_note and "selector" in f["UA-M4"].energy_note


def test_no_figure_without_a_sourced_current_or_voltage(parts):
    f = fits(parts)
    assert f["NOV-M4"].energy_uj is None and "no supply voltage" in f["NOV-M4"].energy_note
    assert f["NOI-M4"].energy_uj is None and "no run current" in f["NOI-M4"].energy_note
    assert part_energy_uj(parts[0], None) == (None, "no latency estimate for this part")


def test_energy_limit_is_judged_per_part(parts):
    f = fits(parts, energy=100.0)
    assert f["UA-M4"].fits and not f["MA-M4"].fits
    assert "energy 660 uJ" in f["MA-M4"].reasons[0] and "> limit 100 uJ" in f["MA-M4"].reasons[0]
    assert not f["NOI-M4"].fits and "energy limit 100 uJ set" in f["NOI-M4"].reasons[0]


def test_energy_objective_is_the_lowest_over_fitting_parts(parts):
    fig = energy_figure(list(fits(parts).values()))
    assert fig.value == pytest.approx(90.0) and fig.unit == "uJ" and fig.provenance is Provenance.ESTIMATED
    assert fig.method.startswith("UA-M4")
    none = energy_figure(list(fits(parts, deadline=0.001).values()))  # nothing fits
    assert none.value == ENERGY_NONE and "not an energy" in none.method
    figs = part_figures(list(fits(parts).values()))
    assert set(figs) == {"mcu_cost", "energy_uj"}
    rows = parts_table(list(fits(parts).values()))
    assert {r["part"] for r in rows} == {p.part for p in parts} and all("energy_note" in r for r in rows)


def test_builtin_catalog_energy_for_the_thesis_part():
    f722 = find_part(load_catalog(), "STM32F722ZE")  # DS11853 Table 26: 90 mA at 216 MHz, 3.3 V
    uj, how = part_energy_uj(f722, 10.0)
    assert uj == pytest.approx(90 * 3.3 * 10) and "DS11853" in how
