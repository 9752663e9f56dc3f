"""The merged catalog facts (prices, run currents, wait states, caches) and ``mcusearch catalog``."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from mcusearch.catalog import FIGURE_FLAGS, find_part, load_catalog
from mcusearch.catalog_cli import add_catalog_parser, catalog_text, part_details
from mcusearch.errors import SpecError

FACTS = Path("/work/shared/reference/catalog-facts.yaml")


@pytest.fixture(scope="module")
def parts():
    return load_catalog()


def test_every_merged_figure_has_its_source_and_flag(parts):
    for p in parts:
        if p.run_current_ma is not None or p.run_current_ua_per_mhz is not None:
            assert p.run_current_source and p.run_current_flag in FIGURE_FLAGS, p.part
        if p.flash_ws is not None:
            assert p.flash_ws_source and p.flash_ws_flag in FIGURE_FLAGS, p.part
        if p.supply_v is not None:
            assert p.supply_v_source, p.part
        for b in p.price_breaks:
            assert b["source"] and b.get("flag") in FIGURE_FLAGS, p.part


def test_merged_values_are_the_facts_values(parts):
    if not FACTS.is_file():
        pytest.skip("shared reference not on this machine")
    facts = yaml.safe_load(FACTS.read_text())
    for f in facts["parts"] + facts["proposed_new_parts"]:
        p = find_part(parts, f["part"])
        assert p is not None, f["part"]
        assert p.run_current_ma == f["run_current_ma"] and p.run_current_ua_per_mhz == f["run_current_ua_per_mhz"]
        ws = f["flash_wait_states_at_max_clock"]
        assert p.flash_ws == (ws if isinstance(ws, int) else None), p.part
        usd = {b["usd"] for b in p.price_breaks if b.get("flag") != "sibling"}
        assert usd >= {v for v in (f["price_usd_qty1"], f["price_usd_qty1k"]) if v is not None}, p.part


def test_flags_name_sibling_and_second_hand_figures(parts):
    assert find_part(parts, "STM32L475VG").run_current_flag == "sibling"      # the L476 front page
    assert find_part(parts, "STM32H743ZI").caches_flag == "sibling"           # H745/H747 board text
    assert find_part(parts, "STM32F746ZG").run_current_flag == "selector"     # CubeMX Run=472
    assert find_part(parts, "STM32F722ZE").run_current_flag == "primary"      # DS11853 Table 26
    assert find_part(parts, "STM32G030F6").run_current_flag == "second-hand"
    h7a3 = find_part(parts, "STM32H7A3ZI-Q")  # a sibling's price is kept, flagged, and never used
    assert h7a3.price_usd is None and [b["flag"] for b in h7a3.price_breaks] == ["sibling"]


def test_run_current_at_the_parts_clock(parts):
    f722 = find_part(parts, "STM32F722ZE")
    assert f722.run_current_at_clock()[0] == 90.0                       # mA given at 216 MHz
    ma, how = find_part(parts, "STM32F746ZG").run_current_at_clock()
    assert ma == pytest.approx(472 * 216 / 1000) and "uA/MHz" in how     # uA/MHz x clock
    ma, why = find_part(parts, "MIMXRT1062").run_current_at_clock()
    assert ma is None and "no run current" in why


def test_an_mA_figure_at_another_clock_is_not_scaled(tmp_path):
    cat = tmp_path / "c.yaml"
    cat.write_text("- {part: X, core: cortex-m4, fpu: single, clock_mhz: 100, flash_kb: 64, ram_kb: 16, "
                   "run_current_ma: 10, run_current_mhz: 50, run_current_source: test}\n")
    ma, why = load_catalog(path=cat)[0].run_current_at_clock()
    assert ma is None and "50 MHz" in why


@pytest.mark.parametrize("entry, key", [
    ({"part": "STM32F722ZE", "run_current_ma": 80, "run_current_mhz": 216}, "run_current_source"),
    ({"part": "STM32F722ZE", "supply_v": 1.8}, "supply_v_source"),
    ({"part": "STM32F722ZE", "flash_ws": 3}, "flash_ws_source"),
    ({"part": "STM32F722ZE", "flash_ws": 2.5, "flash_ws_source": "x"}, "flash_ws"),
    ({"part": "STM32F722ZE", "run_current_flag": "rumour"}, "run_current_flag"),
    ({"part": "STM32F722ZE", "run_current_ma": 80, "run_current_source": "bench"}, "run_current_mhz"),
])
def test_a_figure_without_its_source_is_refused(entry, key):
    with pytest.raises(SpecError) as e:
        load_catalog([entry])
    assert e.value.where.endswith(key)


def test_a_spec_run_current_replaces_the_group_and_is_flagged_user():
    p = find_part(load_catalog([{"part": "STM32F746ZG", "run_current_ma": 95.0, "run_current_mhz": 216,
                                 "run_current_source": "my bench, 2026-12"}]), "STM32F746ZG")
    assert p.run_current_flag == "user" and p.run_current_ua_per_mhz is None
    assert p.run_current_at_clock()[0] == 95.0


def test_catalog_command_prints_known_and_missing(parts, capsys):
    p = argparse.ArgumentParser()
    add_catalog_parser(p.add_subparsers())
    args = p.parse_args(["catalog", "--core", "m7"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.startswith("STM32")}
    assert set(lines) == {q.short_name for q in parts if q.core == "cortex-m7" and q.short_name.startswith("STM32")}
    assert "price" in lines["STM32F722ZE"].split("  ")[-1]          # missing: price
    assert "6.168 @1" in lines["STM32H743ZI"] and "130ᶜ" in lines["STM32H743ZI"]
    assert "second-hand" in out and "sibling" in out                 # the legend


def test_catalog_part_details_and_bad_names(parts):
    text = part_details(find_part(parts, "STM32F405RG"))
    assert "DS8626" in text and "40 mA" in text and "missing:" in text
    with pytest.raises(SpecError) as e:
        catalog_text(parts, part="STM32X999")
    assert e.value.where == "--part"
    with pytest.raises(SpecError):
        catalog_text(parts, core="cortex-m85")
