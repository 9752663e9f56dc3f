"""The MCU catalog and the cheapest-viable-part selection, on a small hand-written catalog."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from mcusearch.catalog import (compatible, est_latency_ms, find_part, load_catalog, needs_fpu,
                               normalize_core)
from mcusearch.errors import SpecError
from mcusearch.figures import Figure, Provenance
from mcusearch.select import (MCU_COST_NONE, MCU_COST_UNPRICED, cheapest, evaluate_parts, mcu_cost,
                              mcu_cost_figure, recommend, trial_fits, why_no_recommendation)

SMALL = """
- {part: CHEAP-M4, core: cortex-m4, fpu: single, clock_mhz: 64, flash_kb: 512, ram_kb: 128,
   price_usd: 2.0, price_kind: distributor_list, price_source: "test list"}
- {part: BIG-M4, core: cortex-m4, fpu: single, clock_mhz: 180, flash_kb: 2048, ram_kb: 640,
   price_usd: 6.0, price_kind: distributor_list, price_source: "test list"}
- {part: TINY-M4 (alias), core: cortex-m4, fpu: single, clock_mhz: 48, flash_kb: 256, ram_kb: 32,
   price_source: "not found"}
- {part: NOFPU-M4, core: cortex-m4, fpu: none, clock_mhz: 100, flash_kb: 256, ram_kb: 64}
- {part: FAST-M7, core: cortex-m7, fpu: double, clock_mhz: 480, flash_kb: 2048, ram_kb: 1024,
   price_usd: 8.0, price_kind: distributor_list, price_source: "test list"}
- {part: MID-M7, core: cortex-m7, fpu: single, clock_mhz: 216, flash_kb: 512, ram_kb: 256}
- {part: XIP-M7, core: cortex-m7, fpu: double, clock_mhz: 600, flash_kb: 0, ram_kb: 1024}
"""


@pytest.fixture
def parts(tmp_path):
    p = tmp_path / "small.yaml"
    p.write_text(SMALL)
    return load_catalog(path=p)


def fits_for(parts, *, core="cortex-m4", fpu=True, flash=100.0, ram=20.0, count=1e6, cpi=1.0,
             deadline=None, margin=0.1):
    return evaluate_parts(parts, core=core, needs_fpu=fpu, flash_kb=flash, ram_kb=ram,
                          count_per_inference=count, cpi=cpi, deadline_ms=deadline, margin=margin)


def by_name(fits):
    return {f.part.short_name: f for f in fits}


# ---- the built-in catalog -------------------------------------------------------------------
def test_builtin_catalog_loads_with_sources_and_honest_prices():
    parts = load_catalog()
    assert len(parts) == 35  # 25 + the 10 parts catalog-facts.yaml proposed
    assert all(p.sources for p in parts)
    for p in parts:
        if p.price_usd is not None:  # never a price without its source and kind
            assert p.price_source and p.price_kind, p.part
    assert sorted(p.short_name for p in parts if p.has_price) == [
        "RP2040", "RP2350A", "STM32F405RG", "STM32G030F6", "STM32H723ZG", "STM32H743ZI", "STM32H750VB", "nRF52840"]
    h7 = find_part(parts, "stm32h743zi")  # the primary price is the smallest quantity a source gave
    assert (h7.price_usd, h7.price_qty) == (pytest.approx(6.168), 1) and "LCSC" in h7.price_text()
    assert [b["qty"] for b in h7.price_breaks] == [1, 30]
    assert find_part(parts, "nRF52840").core == "cortex-m4"
    assert {p.core for p in parts} <= {"cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33",
                                       "cortex-m55"}


def test_builtin_file_keeps_every_part_of_the_shared_reference():
    """The merge added facts; the reference catalog's parts and their base figures are unchanged."""
    from pathlib import Path

    import yaml

    ref = Path("/work/shared/reference/mcu-catalog.yaml")
    if not ref.is_file():
        pytest.skip("shared reference not on this machine")
    parts = load_catalog()
    for raw in yaml.safe_load(ref.read_text()):
        p = find_part(parts, raw["part"])
        assert p is not None, raw["part"]
        for key in ("core", "clock_mhz", "flash_kb", "ram_kb", "fpu", "dsp"):
            assert getattr(p, key) == (normalize_core(raw[key]) if key == "core" else raw[key]), (p.part, key)
        assert list(p.sources) == [" ".join(s.split()) for s in raw["sources"]]


# ---- rules ----------------------------------------------------------------------------------
def test_core_and_fpu_rules(parts):
    nofpu = find_part(parts, "NOFPU-M4")
    assert normalize_core("Cortex-M0+") == "cortex-m0plus" and normalize_core("M4") == "cortex-m4"
    assert needs_fpu("float32", True) and not needs_fpu("int8", True) and not needs_fpu("float32", False)
    assert compatible(nofpu, "cortex-m4", needs_fpu=False)
    assert not compatible(nofpu, "cortex-m4", needs_fpu=True)
    assert not compatible(find_part(parts, "CHEAP-M4"), "cortex-m7", needs_fpu=False)

    f = by_name(fits_for(parts, fpu=True))
    assert not f["NOFPU-M4"].compatible and "no FPU" in f["NOFPU-M4"].reasons[0]
    assert not f["FAST-M7"].fits and "core cortex-m7 ≠ cortex-m4" in f["FAST-M7"].reasons[0]
    assert f["CHEAP-M4"].fits
    assert by_name(fits_for(parts, fpu=False))["NOFPU-M4"].fits  # an int8 model runs without an FPU


def test_latency_is_estimated_at_the_parts_clock(parts):
    cheap = find_part(parts, "CHEAP-M4")
    assert est_latency_ms(cheap, 1e6, 1.5) == pytest.approx(1e6 * 1.5 / 64e3)  # 23.4375 ms
    f = by_name(fits_for(parts, count=1e6, cpi=1.5, deadline=20.0))
    assert not f["CHEAP-M4"].fits
    assert f["CHEAP-M4"].reasons == ["latency 23.4 ms (estimated: 1,000,000 x CPI 1.5 (the trial's board) at 64 MHz; "
                                     "the part's own memory system not modelled) > deadline 20 ms"]
    assert f["BIG-M4"].fits and f["BIG-M4"].est_latency_ms == pytest.approx(1.5e6 / 180e3)
    assert not f["TINY-M4"].fits  # 48 MHz: 31 ms


def test_margin_and_memory_reasons(parts):
    f = by_name(fits_for(parts, flash=470.0, ram=40.0, margin=0.1))
    assert not f["CHEAP-M4"].fits
    assert f["CHEAP-M4"].reasons == ["flash 470.0 kB > 512 kB × (1 − margin 0.1) = 460.8 kB"]
    assert f["TINY-M4"].reasons[0].startswith("flash 470.0 kB > 256 kB")
    assert f["TINY-M4"].reasons[1] == "RAM 40.0 kB > 32 kB × (1 − margin 0.1) = 28.8 kB"
    assert by_name(fits_for(parts, flash=470.0, ram=40.0, margin=0.05))["CHEAP-M4"].fits
    assert by_name(fits_for(parts, flash=500.0, margin=0.0))["CHEAP-M4"].fits
    with pytest.raises(SpecError) as e:
        fits_for(parts, margin=1.0)
    assert e.value.where == "catalog.margin"


def test_part_without_onchip_flash_never_fits(parts):
    f = by_name(fits_for(parts, core="cortex-m7", flash=10.0, ram=10.0))
    assert not f["XIP-M7"].fits and "no on-chip flash" in f["XIP-M7"].reasons[0]


# ---- ranking --------------------------------------------------------------------------------
def test_priced_parts_rank_by_price_before_unpriced(parts):
    best = cheapest(fits_for(parts, flash=100, ram=20))   # CHEAP 2 $, BIG 6 $, TINY no price: all fit
    assert best.part.part == "CHEAP-M4"
    assert best.basis.startswith("price: 2 USD (distributor_list; source: test list)")
    assert "1 other fitting part(s) have no known price" in best.basis


def test_without_prices_the_smallest_part_wins_and_says_so(parts):
    best = cheapest(fits_for(parts, core="cortex-m7", flash=100, ram=20, fpu=False, count=None,
                             deadline=None))
    assert best.part.part == "FAST-M7"       # the only priced M7 that fits
    m7 = [p for p in parts if p.part != "FAST-M7"]
    best = cheapest(fits_for(m7, core="cortex-m7", flash=100, ram=20))
    assert best.part.part == "MID-M7"
    assert best.basis.startswith("no price known for any of the 1 fitting part(s): smallest memory and clock")
    assert cheapest(fits_for(parts, flash=5000)) is None


def test_mcu_cost_objective(parts):
    assert mcu_cost(fits_for(parts)) == 2.0
    assert mcu_cost(fits_for(parts, flash=5000)) == MCU_COST_NONE
    m7 = [p for p in parts if p.part != "FAST-M7"]
    # MID-M7 is the 5th smallest of the 6 parts by (flash, ram, clock): XIP, TINY, NOFPU, CHEAP, MID, BIG
    assert mcu_cost(fits_for(m7, core="cortex-m7")) == MCU_COST_UNPRICED + 5
    fig = mcu_cost_figure(fits_for(m7, core="cortex-m7"))
    assert fig.provenance is Provenance.ESTIMATED and "not dollars" in fig.method


# ---- spec overrides -------------------------------------------------------------------------
def test_spec_overrides_a_price_and_adds_a_part():
    parts = load_catalog([
        {"part": "stm32f446re", "price_usd": 2.5, "price_source": "quote from my distributor, 2026-01"},
        {"part": "nrf52840", "price_usd": 3.1, "price_source": "my BOM", "price_qty": 1000},
        {"part": "MY-M4", "core": "Cortex-M4", "fpu": "single", "clock_mhz": 100, "flash_kb": 256,
         "ram_kb": 64},
    ])
    assert len(parts) == 36
    f446 = find_part(parts, "STM32F446RE")
    assert (f446.price_usd, f446.price_kind, f446.price_source) == (2.5, "user", "quote from my distributor, 2026-01")
    assert "spec set" in f446.origin and f446.flash_kb == 512  # other fields kept
    nrf = find_part(parts, "nRF52840")
    assert (nrf.price_usd, nrf.price_qty, nrf.price_date) == (3.1, 1000, None)  # the old date went with the old price
    mine = find_part(parts, "MY-M4")
    assert mine.core == "cortex-m4" and mine.origin == "spec" and mine.price_usd is None


@pytest.mark.parametrize("entry, where, words", [
    ({"part": "STM32F446RE", "price_usd": 2.5}, "catalog.parts[1].price_source", "needs a price_source"),
    ({"part": "STM32F446RE", "fpu": "yes"}, "catalog.parts[1].fpu", "none, single, double"),
    ({"part": "STM32F446RE", "clock_mhz": -5}, "catalog.parts[1].clock_mhz", "must be > 0"),
    ({"part": "STM32F446RE", "price_usd": "cheap", "price_source": "x"}, "catalog.parts[1].price_usd",
     "expected a number"),
    ({"part": "STM32F446RE", "colour": "blue"}, "catalog.parts[1].colour", "unknown key"),
    ({"part": "NEW-PART", "fpu": "none", "clock_mhz": 48, "flash_kb": 64, "ram_kb": 8},
     "catalog.parts[1].core", "required for a part not in the catalog"),
    ({"part": "NEW-PART", "core": "cortex-a53", "fpu": "none", "clock_mhz": 48, "flash_kb": 64, "ram_kb": 8},
     "catalog.parts[1].core", "unknown core"),
    ({"part": "RP2040", "price_kind": "rumour"}, "catalog.parts[1].price_kind", "expected one of"),
    ({"part": "rp2040"}, "catalog.parts[1].part", "listed twice"),
    ({"price_usd": 1}, "catalog.parts[1].part", "required"),
])
def test_bad_override_names_the_field(entry, where, words):
    with pytest.raises(SpecError) as e:
        load_catalog([{"part": "RP2040"}, entry], source="search.yaml")
    assert e.value.where == where and words in e.value.message
    assert str(e.value).startswith("search.yaml: " + where)


# ---- recommendation over trial records --------------------------------------------------------
@dataclass
class Rec:  # the attributes of mcusearch.study.TrialRecord that selection reads
    number: int
    config: dict
    figures: dict
    constraints: dict = field(default_factory=dict)
    status: str = "ok"

    @property
    def feasible(self) -> bool:
        return self.status == "ok" and all(v <= 0 for v in self.constraints.values())


def rec(n, board, quant, flash, ram, instr, acc, status="ok", **constraints):
    figs = {"flash_kb": Figure(flash, "kB", Provenance.STATIC), "ram_kb": Figure(ram, "kB", Provenance.STATIC),
            "instructions": Figure(instr, "instructions", Provenance.EMULATED),
            "accuracy": Figure(acc, "fraction", Provenance.HOST)}
    cfg = {"channels": [8, 8, 8], "quantization": quant, "opt_level": "-O3", "converter": "mcusearch",
           "board": board}
    return Rec(n, cfg, figs, constraints, status)


BOARDS = {"core_by_board": {"qemu-m4": "cortex-m4", "qemu-m7": "cortex-m7"},
          "cpi_by_board": {"qemu-m4": 1.0, "qemu-m7": 1.0}}


def test_int8_on_a_cheap_m4_beats_float_on_an_m7(parts):
    records = [
        rec(0, "qemu-m7", "float32", 300, 150, 2e6, 0.93),              # fits FAST-M7 (8 $), MID-M7
        rec(1, "qemu-m4", "int8", 120, 40, 1e6, 0.91),                  # fits CHEAP-M4 (2 $) at 15.6 ms
        rec(2, "qemu-m4", "int8", 60, 20, 5e5, 0.95, flash_kb=0.2),     # violates the spec: excluded
        rec(3, "qemu-m4", "float32", 50, 10, 1e5, 0.99, status="failed"),
    ]
    r = recommend(records, parts, 0.1, 20.0, **BOARDS)
    assert (r.trial, r.part.part, r.price_usd) == (1, "CHEAP-M4", 2.0)
    assert r.config["quantization"] == "int8" and r.accuracy == 0.91
    assert r.fit.est_latency_ms == pytest.approx(1e6 / 64e3)
    assert "120.0 kB flash" in r.why and "64 MHz" in r.why and "estimate" in r.why and "20 ms deadline" in r.why
    assert r.alternatives == ["NOFPU-M4 (trial 1)"]  # smaller, fits (int8 needs no FPU), no price: named, not hidden
    assert "Recommended: CHEAP-M4 (2 USD) with trial 1" in str(r)
    assert r.to_dict()["part"] == "CHEAP-M4"

    # A tighter deadline: 1e6 instructions at 64 MHz no longer fit, so the faster, pricier parts win.
    r = recommend(records, parts, 0.1, 10.0, **BOARDS)
    assert (r.trial, r.part.part) == (1, "BIG-M4")


def test_deadline_is_judged_per_part_and_ties_go_to_accuracy(parts):
    records = [rec(0, "qemu-m4", "int8", 100, 20, 1e6, 0.80, deadline_ms=0.5),  # too slow on the board
               rec(1, "qemu-m4", "int8", 100, 20, 1e6, 0.90, deadline_ms=0.5),
               rec(2, "qemu-m4", "int8", 100, 20, 9e5, 0.90, deadline_ms=0.5)]
    r = recommend(records, parts, 0.1, 30.0, **BOARDS)
    assert (r.trial, r.part.part) == (2, "CHEAP-M4")  # same part and accuracy: fewer instructions


def test_no_recommendation_says_why(parts):
    records = [rec(0, "qemu-m4", "int8", 5000, 20, 1e6, 0.9)]
    assert recommend(records, parts, 0.1, None, **BOARDS) is None
    msg = why_no_recommendation(records, parts, 0.1, None, **BOARDS)
    assert "closest: trial 0" in msg and "flash 5000.0 kB" in msg
    assert "met the spec's constraints" in why_no_recommendation(
        [rec(0, "qemu-m4", "int8", 10, 2, 1, 0.9, accuracy_min=0.1)], parts, 0.1, None, **BOARDS)
    fits = trial_fits(records[0].config, records[0].figures, parts, margin=0.1, deadline_ms=None,
                      core_by_board={}, cpi_by_board={})
    assert not any(f.compatible for f in fits)  # an unknown board informs no part


def test_a_date_yaml_reads_as_a_date_is_kept_as_text(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("- {part: X, core: cortex-m0plus, fpu: none, clock_mhz: 48, flash_kb: 64, ram_kb: 8,\n"
                 "   price_usd: 0.5, price_date: 2024-01-15, price_source: a quote}\n")
    (x,) = load_catalog(path=p)
    assert x.price_date == "2024-01-15" and x.origin == "catalog file c.yaml"


def test_recommendationconfig_text_leaves_out_knobs_at_their_default():
    from mcusearch.select import config_text
    base = {"channels": [24, 8, 32], "quantization": "int8", "opt_level": "-Ofast",
            "converter": "mcusearch", "board": "qemu-m4", "channels_per": "group", "keep_ratio": None,
            "criterion": "l1", "retrain_epochs": None, "sparsity": 0.0, "sparsity_epochs": None}
    assert config_text(base) == ("channels 24/8/32, quantization int8, opt_level -Ofast, "
                                  "converter mcusearch, board qemu-m4")
    assert "retrain_epochs 2" in config_text({**base, "retrain_epochs": 2})
    # settings of a knob that is off are left out too
    assert config_text({**base, "sparsity_epochs": 2}) == config_text(base)
    text = config_text({**base, "channels": None, "sparsity": 0.9, "sparsity_epochs": 2,
                         "criterion": "l2", "retrain_epochs": 2})
    assert text.startswith("channels full, ") and "sparsity 0.9" in text
    assert "sparsity_epochs 2" in text and "criterion" not in text and "retrain" not in text


def test_recommendation_uses_the_trials_per_part_cycles_and_names_energy(parts):
    """A record's ``part_cycles`` (its profile re-weighted per part) decide the deadline per part."""
    r0 = rec(0, "qemu-m4", "int8", 100, 20, 1e6, 0.9)
    # CHEAP-M4 (64 MHz) on its own memory system: 2e6 cycles = 31.25 ms > 30; BIG-M4 1.2e6 cycles at 180 MHz
    r0.part_cycles = {"CHEAP-M4": {"cycles": 2e6, "cycles_low": 1.5e6, "cycles_high": 2.5e6, "memory": "cheap:5ws"},
                      "BIG-M4": {"cycles": 1.2e6, "cycles_low": 1.2e6, "cycles_high": 1.2e6, "memory": "big:0ws"},
                      "TINY-M4 (alias)": {"reason": "no flash wait states at the part's clock in a source"}}
    r = recommend([r0], parts, 0.1, 30.0, **BOARDS)
    assert r.part.part == "BIG-M4" and r.fit.est_latency_ms == pytest.approx(1.2e6 / 180e3)
    assert "big:0ws" in r.why and "Energy per inference: not estimated (no energy figure: no run current" in r.why
    assert r.to_dict()["energy_uj"] is None and r.to_dict()["latency_method"]
    msg = why_no_recommendation([r0], parts, 0.1, 1.0, **BOARDS)
    assert "no catalog part fits" in msg
