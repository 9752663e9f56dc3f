"""End to end: a small search through TensorFlow, the cross-compiler, QEMU, Optuna and the report."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


def _small_spec(tmp_path: Path, cache_dir: Path, **search) -> Path:
    data = yaml.safe_load((ROOT / "search.yaml").read_text())
    data["model"]["train"]["epochs"] = 2
    data["model"]["retrain_epochs"] = 1
    data["dataset"].update(max_train=1200, max_test=400, probe_per_class=2)
    data["knobs"] = {"channels": {"per": "pair", "values": [4, 8]},
                     "quantization": ["float32", "int8"], "opt_level": ["-O2"], "converter": ["mcusearch"]}
    data["constraints"]["accuracy_min"] = 0.3
    data["search"] = {"sampler": "random", "n_trials": 3, "seed": 1, "run_dir": "run",
                      "cache_dir": str(cache_dir), **search}
    p = tmp_path / "search.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def _run(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mcusearch", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=900)


def test_three_trial_search_end_to_end(tmp_path, cache_dir):
    spec = _small_spec(tmp_path, cache_dir)
    r = _run("run", str(spec), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Pareto-optimal configurations" in r.stdout
    report = tmp_path / "run.html"
    assert f"report: {report}" in r.stdout

    study = optuna.load_study(study_name="mcusearch", storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    assert len(study.trials) == 3
    ok = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert ok, [t.user_attrs.get("error") for t in study.trials]
    for t in ok:
        figs = t.user_attrs["figures"]
        assert figs["instructions"]["provenance"] == "emulated"
        assert figs["latency_ms"]["provenance"] == "estimated"
        assert figs["cycles"]["provenance"] == "estimated" and "cycle model" in figs["cycles"]["method"]
        assert figs["cycles"]["value"] >= figs["instructions"]["value"] * 0.5
        assert figs["flash_kb"]["provenance"] == "static"
        assert figs["accuracy"]["provenance"] == "host"
        assert figs["instructions"]["value"] > figs["macs"]["value"] * 0.5  # a real loop ran
        assert 0 < figs["model_flash_kb"]["value"] < figs["flash_kb"]["value"]
        assert 0.0 < figs["accuracy"]["value"] <= 1.0
        assert set(t.constraints) == {"flash_kb", "ram_kb", "deadline_ms", "accuracy_min"}
        assert len(t.values) == 4
        elf = tmp_path / "run" / t.user_attrs["artifacts"]["elf"]
        assert elf.is_file()
        assert "max |firmware - host|" in t.user_attrs["notes"]["output_check"]
        assert t.user_attrs["notes"]["model_cache"] in ("hit", "miss")
        layers = t.user_attrs["layers"]  # the markers around each layer call in the firmware
        assert [n for n, _ in layers][0].startswith("conv1")
        assert sum(c for _, c in layers) == pytest.approx(figs["instructions"]["value"], rel=0.01)

    html = report.read_text()
    assert "Pareto-optimal configurations" in html and "Plotly" in html
    assert html.count("<tr id='trial-") == 3  # every trial in the all-trials table

    # Re-running the same spec resumes: the study already holds n_trials, so nothing new runs.
    r2 = _run("run", str(spec), cwd=tmp_path)
    assert r2.returncode == 0, r2.stderr[-2000:]
    assert len(optuna.load_study(study_name="mcusearch",
                                 storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}").trials) == 3

    r3 = _run("report", "run", "-o", "again.html", cwd=tmp_path)
    assert r3.returncode == 0 and (tmp_path / "again.html").is_file(), r3.stderr


def test_a_hanging_firmware_fails_its_trial_and_the_study_goes_on(tmp_path, cache_dir):
    spec = _small_spec(tmp_path, cache_dir, n_trials=2)
    data = yaml.safe_load(spec.read_text())
    data["target"]["timeout_s"] = 0.01  # no firmware finishes this fast: every run is killed
    spec.write_text(yaml.safe_dump(data))
    r = _run("run", str(spec), cwd=tmp_path)
    assert r.returncode == 1, r.stderr[-3000:]   # no trial completed: exit 1
    study = optuna.load_study(study_name="mcusearch", storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL] * 2
    for t in study.trials:
        assert t.user_attrs["status"] == "failed"
        assert t.user_attrs["stage"] == "measure"
        assert "mcus_done" in t.user_attrs["error"]
    assert "no trial met every constraint" in r.stdout


def test_changing_the_knobs_of_an_existing_study_is_refused(tmp_path, cache_dir):
    from mcusearch.errors import McusearchError
    from mcusearch.spec import load_spec
    from mcusearch.study import open_study

    spec_path = _small_spec(tmp_path, cache_dir)
    open_study(load_spec(spec_path))
    data = yaml.safe_load(spec_path.read_text())
    data["knobs"]["opt_level"] = ["-O2", "-Os"]
    spec_path.write_text(yaml.safe_dump(data))
    with pytest.raises(McusearchError, match=r"opt_level differ.*another search.run_dir"):
        open_study(load_spec(spec_path))
