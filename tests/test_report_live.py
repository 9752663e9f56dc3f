"""The live report: an Optuna callback rewrites the report every N finished trials, from the
storage (so it shows every worker's trials and the ones still running)."""
from __future__ import annotations

from pathlib import Path

import optuna
import yaml

from mcusearch.report.live import report_every
from mcusearch.spec import parse_spec

ROOT = Path(__file__).resolve().parents[1]
OBJ = [["model_flash_kb", "minimize"], ["accuracy", "maximize"]]


def _figures(flash: float, acc: float) -> dict:
    def fig(v, unit, prov):
        return {"value": v, "unit": unit, "provenance": prov, "method": "test"}
    return {"flash_kb": fig(flash + 10, "kB", "static"), "ram_kb": fig(20.0, "kB", "static"),
            "model_flash_kb": fig(flash, "kB", "static"), "instructions": fig(1e6, "instructions", "emulated"),
            "accuracy": fig(acc, "fraction", "host")}


def test_report_every_two_finished_trials(tmp_path):
    data = yaml.safe_load((ROOT / "search.yaml").read_text())
    data["search"].update(run_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"))
    spec = parse_spec(data)
    spec.run_dir.mkdir(parents=True)
    study = optuna.create_study(storage=spec.storage_url, study_name="mcusearch",
                                directions=["minimize", "maximize"])
    study.set_user_attr("objectives", OBJ)
    study.set_user_attr("limits", {"flash_kb": 512.0, "accuracy_min": 0.7})
    callback = report_every(spec, 2)
    report = tmp_path / "run.html"
    running = study.ask()  # another worker's trial, still running
    for n, (flash, acc) in enumerate([(30.0, 0.8), (20.0, 0.75), (10.0, 0.9)]):
        t = optuna.trial.create_trial(
            values=[flash, acc], user_attrs={"status": "ok", "config": {"board": "qemu-m7", "quantization": "int8"},
                                             "figures": _figures(flash, acc)},
            system_attrs={"constraints": [-1.0, 0.7 - acc]})
        study.add_trial(t)
        callback(study, study.trials[-1])
        assert report.is_file() == (n == 1), n  # after the 2nd finished trial, not the 1st nor the 3rd
        if n == 1:
            html = report.read_text()
            assert "1 still running" in html and "3 trials: 2 measured" in html
            report.unlink()
    study.tell(running, [5.0, 0.95])
    callback(study, study.trials[running.number])
    assert "4 trials: 3 measured" in report.read_text()  # the finished 'running' trial has no status: counted
