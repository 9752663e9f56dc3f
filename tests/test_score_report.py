"""Scoring, the Pareto front and the report, on hand-written trial records."""
from __future__ import annotations

from pathlib import Path

import yaml

from mcusearch.figures import Figure, Provenance
from mcusearch.report import pareto_table, write_report
from mcusearch.score import resolve_limits, score
from mcusearch.spec import parse_spec
from mcusearch.study import StudySummary, TrialRecord, pareto_front

ROOT = Path(__file__).resolve().parents[1]
OBJ = [("model_flash_kb", "minimize"), ("accuracy", "maximize")]


def _spec(**constraints):
    data = yaml.safe_load((ROOT / "search.yaml").read_text())
    data["constraints"] = constraints
    return parse_spec(data)


def _figs(flash, acc, latency=10.0):
    return {
        "flash_kb": Figure(flash + 10, "kB", Provenance.STATIC, "elf"),
        "ram_kb": Figure(20.0, "kB", Provenance.STATIC, "elf"),
        "model_flash_kb": Figure(flash, "kB", Provenance.STATIC, "elf"),
        "model_ram_kb": Figure(5.0, "kB", Provenance.STATIC, "elf"),
        "instructions": Figure(1e6, "instructions", Provenance.EMULATED, "icount"),
        "latency_ms": Figure(latency, "ms", Provenance.ESTIMATED, "cpi 1"),
        "accuracy": Figure(acc, "fraction", Provenance.HOST, "keras"),
        "params": Figure(1000, "parameters", Provenance.HOST, ""),
        "macs": Figure(1000, "MACs", Provenance.HOST, ""),
    }


def test_constraints_are_relative_and_signed():
    spec = _spec(flash_kb=100, accuracy_min=0.8, deadline_ms="auto")
    assert resolve_limits(spec, 0.32) == {"flash_kb": 100.0, "deadline_ms": 320.0, "accuracy_min": 0.8}
    assert resolve_limits(spec, None) == {"flash_kb": 100.0, "accuracy_min": 0.8}
    sc = score(spec, _figs(50, 0.9, latency=400), 0.32)
    assert sc.constraints["flash_kb"] == (60 - 100) / 100
    assert abs(sc.constraints["accuracy_min"] - (0.8 - 0.9) / 0.8) < 1e-12
    assert sc.constraints["deadline_ms"] == (400 - 320) / 320
    assert not sc.feasible and sc.violated() == ["deadline_ms"]
    assert sc.objectives == [50, 5.0, 1e6, 0.9]  # the default objectives, in the spec's order


def _rec(n, flash, acc, feasible=True, status="ok", channels=None):
    return TrialRecord(number=n, state="COMPLETE" if status == "ok" else "FAIL", status=status,
                       config={"channels": channels or [8, 8, 8 + n], "quantization": "int8", "converter": "mcusearch",
                               "opt_level": "-O3", "board": "qemu-m7"},
                       figures=_figs(flash, acc) if status == "ok" else {},
                       constraints={"flash_kb": -0.5 if feasible else 0.5},
                       feasible=feasible and status == "ok",
                       values=[flash, acc] if status == "ok" else None,
                       error="" if status == "ok" else "build: undefined reference to `x'",
                       artifacts={"elf": f"trials/{n:04d}/build/fw.elf"})


def test_pareto_front_keeps_only_nondominated_feasible_trials():
    recs = [_rec(0, 10, 0.9), _rec(1, 20, 0.95), _rec(2, 20, 0.85), _rec(3, 5, 0.99, feasible=False),
            _rec(4, 0, 0, status="failed")]
    assert [r.number for r in pareto_front(recs, OBJ)] == [0, 1]


def test_report_and_table(tmp_path):
    recs = [_rec(0, 10, 0.9), _rec(1, 20, 0.95), _rec(2, 20, 0.85), _rec(3, 5, 0.99, feasible=False),
            _rec(4, 0, 0, status="failed")]
    summary = StudySummary(tmp_path / "run", "sqlite:///x.db", "demo", OBJ, {"flash_kb": 100}, recs)
    table = pareto_table(summary)
    lines = table.splitlines()
    assert lines[0].split()[0] == "trial" and len(lines) == 2 + 2 + 1  # header, rule, 2 rows, legend
    assert "0.9000 H" in table and "ch 8/8/8 · int8" in table and "ch 8/8/9 · int8" in table
    out = write_report(summary)
    assert out == tmp_path / "run.html"
    html = out.read_text()
    assert "Plotly" in html and "undefined reference" in html
    assert 'href="run/trials/0000/build/fw.elf"' in html
    assert "violates a constraint" in html  # trial 3 is plotted as infeasible
    assert not list(tmp_path.glob(".report-*"))  # written atomically


def test_empty_front_says_so(tmp_path):
    summary = StudySummary(tmp_path, "sqlite:///x.db", "demo", OBJ, {}, [_rec(0, 0, 0, status="failed")])
    assert "no trial met every constraint" in pareto_table(summary)
    assert "No completed trial" in write_report(summary).read_text()


def test_a_repeated_configuration_is_listed_once():
    recs = [_rec(0, 10, 0.9), _rec(1, 10, 0.9, channels=[8, 8, 8]), _rec(2, 20, 0.95)]
    assert [r.number for r in pareto_front(recs, OBJ)] == [0, 2]


def test_report_shows_the_per_layer_split(tmp_path):
    r = _rec(0, 10, 0.9)
    r.layers = [["conv1 (conv2d)", 750.0], ["fc1 (dense)", 250.0]]
    summary = StudySummary(tmp_path / "run", "sqlite:///x.db", "demo", OBJ, {}, [r])
    html = write_report(summary).read_text()
    assert "conv1 (conv2d)" in html and "75.0%" in html and "25.0%" in html
