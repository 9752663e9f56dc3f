"""The report's answer card, all-trials table and exports, on hand-written trial records and parts
(the browser test opens the report of a real study)."""
from __future__ import annotations

import csv
import io
import json

from mcusearch.catalog import Part
from mcusearch.figures import Figure, Provenance
from mcusearch.report import write_report
from mcusearch.report.card import Check, Selection, build_card, card_html
from mcusearch.report.export import csv_text, export_paths
from mcusearch.report.rows import knob_names, trial_rows
from mcusearch.select import recommend
from mcusearch.study import StudySummary, TrialRecord

OBJ = [("model_flash_kb", "minimize"), ("accuracy", "maximize")]
MAPS = {"core_by_board": {"qemu-m7": "cortex-m7"}, "cpi_by_board": {"qemu-m7": 1.0},
        "fpu_by_board": {"qemu-m7": True}}
LIMITS = {"flash_kb": 512.0, "ram_kb": 256.0, "deadline_ms": 50.0, "accuracy_min": 0.8}


def _part(name: str, core: str = "cortex-m7", flash: float = 512, ram: float = 256, price: float | None = None,
          mhz: float = 216) -> Part:
    return Part(part=name, core=core, fpu="double" if core == "cortex-m7" else "none", clock_mhz=mhz,
                flash_kb=flash, ram_kb=ram, price_usd=price, price_kind="distributor_list" if price else None,
                price_date="2025-07" if price else None, price_qty=1 if price else None,
                price_source="https://example.org/price" if price else None)


PARTS = [_part("M0-CHEAP", core="cortex-m0plus", flash=64, ram=8, price=0.5),
         _part("M7-TINY", flash=64, ram=32, price=1.0),
         _part("M7-SMALL", flash=128, ram=64, price=2.0, mhz=100),
         _part("M7-BIG", flash=2048, ram=512, price=4.0),
         _part("M7-NOPRICE", flash=1024, ram=512)]


def _figs(flash: float, acc: float, instr: float = 2e6) -> dict:
    return {"flash_kb": Figure(flash, "kB", Provenance.STATIC, "elf"),
            "ram_kb": Figure(20.0, "kB", Provenance.STATIC, "elf"),
            "model_flash_kb": Figure(flash - 10, "kB", Provenance.STATIC, "elf"),
            "instructions": Figure(instr, "instructions", Provenance.EMULATED, "icount"),
            "accuracy": Figure(acc, "fraction", Provenance.HOST, "keras")}


def _rec(n: int, flash: float, acc: float, status: str = "ok") -> TrialRecord:
    ok = status == "ok"
    return TrialRecord(number=n, state="COMPLETE" if ok else "FAIL", status=status,
                       config={"channels": [8, 8 + n], "quantization": "int8", "board": "qemu-m7"},
                       figures=_figs(flash, acc) if ok else {},
                       constraints={"flash_kb": -0.5, "accuracy_min": (0.8 - acc) / 0.8} if ok else {},
                       feasible=ok and acc >= 0.8, values=[flash - 10, acc] if ok else None,
                       error="" if ok else "build: undefined reference to `x'", stage="" if ok else "build",
                       artifacts={"elf": f"trials/{n:04d}-abc/build/fw.elf"} if ok else {})


def _summary(tmp_path) -> StudySummary:
    recs = [_rec(0, 100.0, 0.9), _rec(1, 300.0, 0.95), _rec(2, 90.0, 0.7), _rec(3, 0, 0, status="failed")]
    return StudySummary(tmp_path / "run", "sqlite:///x.db", "demo", OBJ, LIMITS, recs)


def test_card_explains_the_pick(tmp_path):
    summary = _summary(tmp_path)
    rec = recommend(summary.records, PARTS, 0.1, LIMITS["deadline_ms"], **MAPS)
    assert (rec.part.part, rec.trial) == ("M7-SMALL", 0)  # 100 kB fits 128 kB less 10 %; trial 1 does not
    card = build_card(summary, rec, Selection(PARTS, 0.1, LIMITS["deadline_ms"], MAPS))
    by_label = {c.label: c for c in card.checks}
    assert by_label["accuracy"].status == "green" and by_label["accuracy"].headroom == (0.9 - 0.8) / 0.8
    lat = by_label["latency on M7-SMALL"]  # 2e6 instructions at 100 MHz: 20 ms of a 50 ms deadline
    assert lat.figure.value == 20.0 and lat.figure.provenance is Provenance.ESTIMATED and lat.status == "green"
    flash = by_label["flash (whole firmware) in M7-SMALL"]
    assert flash.limit == 128 * 0.9 and flash.status == "green" and abs(flash.headroom - (115.2 - 100) / 115.2) < 1e-12
    assert [n for n, _ in card.runners_up] == ["M7-BIG with trial 1", "M7-NOPRICE with trial 1"]  # more accurate
    assert card.runners_up[0][1].startswith("costs 2.00 USD more")
    assert "no known price" in card.runners_up[1][1]
    assert card.why_not_cheaper.startswith("M7-TINY (1 USD), the cheapest with a usable core, fails even with "
                                           "its closest trial 0: flash 100.0 kB > 64 kB")
    assert "1 cheaper part(s) cannot run" in card.why_not_cheaper
    assert "M0-CHEAP (0.5 USD): core cortex-m0plus" in card.why_not_cheaper
    page = card_html(card, None)
    assert "M7-SMALL" in page and "distributor_list" in page and "2025-07" in page
    assert "<details>" in page and "Why not cheaper?" in page and page.count("class='prov'") == len(card.checks)


def test_margin_colours():
    f = Figure(95.0, "kB", Provenance.STATIC, "elf")
    assert Check("x", f, 100.0, "max", "spec").status == "amber"  # 5 % left
    assert Check("x", f, 90.0, "max", "spec").status == "red"
    assert Check("x", f, 50.0, "min", "spec").status == "green"
    assert Check("x", None, 50.0, "min", "spec").status == "unknown"


def test_rows_table_and_exports(tmp_path):
    summary = _summary(tmp_path)
    rec = recommend(summary.records, PARTS, 0.1, LIMITS["deadline_ms"], **MAPS)
    rows = trial_rows(summary, "run", rec.trial)
    assert [r.category for r in rows] == ["Pareto-optimal", "Pareto-optimal", "violates a constraint", "failed"]
    assert rows[0].recommended and rows[0].links == {"elf": "run/trials/0000-abc/build/fw.elf"}
    assert rows[2].violated == ["accuracy_min"] and (rows[3].stage, rows[3].reason[:5]) == ("build", "build")
    table = list(csv.DictReader(io.StringIO(csv_text(rows, knob_names(rows), ["flash_kb", "accuracy"]))))
    assert table[0]["flash_kb"] == "100.0" and table[0]["flash_kb_unit"] == "kB"
    assert table[0]["flash_kb_provenance"] == "static" and table[0]["accuracy_method"] == "keras"
    assert table[3]["flash_kb"] == "" and table[3]["failed_at"] == "build"

    out = write_report(summary, recommendation=rec, export_csv=True, export_json=True)
    paths = export_paths(out, True, True)
    assert [p.name for p in paths] == ["run.trials.csv", "run.pareto.csv", "run.json"]
    assert all(p.is_file() for p in paths)
    pareto = list(csv.DictReader(paths[1].open()))
    assert [r["trial"] for r in pareto] == ["0", "1"]
    doc = json.loads(paths[2].read_text())
    assert doc["pareto"] == [0, 1] and doc["recommendation"]["part"] == "M7-SMALL"
    assert doc["trials"][0]["figures"]["flash_kb"] == {"value": 100.0, "unit": "kB", "provenance": "static",
                                                       "method": "elf"}
    html = out.read_text()
    assert html.count("<script src") == 0  # plotly.js inline, once (the browser test sees no request)
    assert html.count("plotly.js v") == 1
    assert "id='trials-table'" in html and "id='trial-3'" in html and "undefined reference" in html
    assert "The sweep over channels" in html and "plot-sweep" in html  # channels alone varied
    # no spec in the run folder: the card shows the pick and its figures, no runners-up
    assert "Buy <span class='part'>M7-SMALL" in html and "Runners-up" not in html


def test_no_recommendation_says_why(tmp_path):
    summary = StudySummary(tmp_path / "run", "sqlite:///x.db", "demo", OBJ, LIMITS,
                           [_rec(0, 0, 0, status="failed")])
    html = write_report(summary, why_none="no trial completed").read_text()
    assert "No recommendation" in html and "no trial completed" in html


def test_compared_runs(tmp_path):
    import yaml

    from mcusearch.report.compare import spec_differences

    a, b = _summary(tmp_path / "a"), _summary(tmp_path / "b")
    b.records = b.records[1:]  # run b lacks trial 0: its front is trial 1 only
    for s, epochs in ((a, 2), (b, 5)):
        s.run_dir.mkdir(parents=True)
        (s.run_dir / "spec.yaml").write_text(yaml.safe_dump({"model": {"train": {"epochs": epochs}},
                                                             "knobs": {"quantization": ["int8"]}}))
    diffs, unsaved = spec_differences([a.run_dir, b.run_dir, tmp_path])
    assert diffs == [("model.train.epochs", ["2", "5"])] and unsaved == [tmp_path]
    html = write_report(a, compare=[b]).read_text()
    assert "id='compare'" in html and "<code>model.train.epochs</code>" in html
    assert "run: Pareto-optimal (1)" in html  # b's front overlaid on the plot, named by its folder


def test_report_command_refuses_a_path_that_is_no_run(tmp_path):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "mcusearch", "report", str(tmp_path / "nothing"), "--csv"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "nothing" in r.stderr, r.stderr
    assert list(tmp_path.iterdir()) == []
