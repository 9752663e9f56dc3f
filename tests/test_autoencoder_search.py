"""End to end: an anomaly-detection autoencoder (Dense 64-16-64, MLPerf Tiny style, on synthetic
data written here) through a 2-trial search (float32 and int8, qemu-m4, mcusearch-ref) with an
MSE constraint and objective: every trial measured, its quality figures named and explained."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml

pytestmark = pytest.mark.slow


def _data(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """Normal samples lie near a 4-dimensional subspace of R^64; anomalies do not."""
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(4, 64)) / 2

    def normal(n):
        return (rng.normal(size=(n, 4)) @ basis + 0.05 * rng.normal(size=(n, 64))).astype(np.float32)

    x_test = np.concatenate([normal(48), rng.normal(size=(48, 64)).astype(np.float32)])
    anomaly = np.r_[np.zeros(48), np.ones(48)].astype(np.int64)
    path = tmp_path / "ae.npz"
    np.savez(path, x_train=normal(768), x_test=x_test, anomaly_test=anomaly)
    return path, x_test, anomaly


def _model(tmp_path: Path, npz: Path) -> tuple[Path, float]:
    """Train the autoencoder (a user's model file) and return it with its float test MSE."""
    import mcusearch  # noqa: F401  (tf-keras)
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    x = np.load(npz)["x_train"]
    L = tf.keras.layers
    inp = tf.keras.Input((64,))
    out = L.Dense(64, name="dec")(L.Dense(16, activation="relu", name="enc")(inp))
    model = tf.keras.Model(inp, out)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="mse")
    model.fit(x, x, epochs=40, batch_size=64, verbose=0)
    x_test = np.load(npz)["x_test"]
    mse = float(np.mean((model.predict(x_test, verbose=0) - x_test) ** 2))
    path = tmp_path / "ae.h5"
    model.save(path, save_format="h5")
    return path, mse


def test_autoencoder_search_with_an_mse_constraint(tmp_path):
    npz, x_test, anomaly = _data(tmp_path)
    model, float_mse = _model(tmp_path, npz)
    spec = {
        "name": "autoencoder",
        "model": {"path": model.name},
        "dataset": {"name": "npz", "path": npz.name, "task": "autoencoder", "probe_per_class": 3},
        "target": {"boards": ["qemu-m4"]},
        "constraints": {"deadline_ms": None, "metrics": {"mse": {"max": round(1.25 * float_mse, 6)}}},
        "knobs": {"quantization": ["float32", "int8"], "opt_level": ["-O2"],
                  "converter": ["mcusearch-ref"]},
        "objectives": [{"metric": "mse"}, {"metric": "model_flash_kb", "direction": "minimize"}],
        "search": {"sampler": "grid", "n_trials": 2, "run_dir": "run", "cache_dir": "cache"},
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    r = subprocess.run([sys.executable, "-m", "mcusearch", "run", "s.yaml"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]

    study = optuna.load_study(study_name="mcusearch",
                              storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    done = {t.user_attrs["config"]["quantization"]: t for t in study.trials
            if t.state == optuna.trial.TrialState.COMPLETE}
    assert set(done) == {"float32", "int8"}, [t.user_attrs.get("error") for t in study.trials]
    for quant, t in done.items():
        figs = t.user_attrs["figures"]
        assert "accuracy" not in figs and figs["instructions"]["provenance"] == "emulated"
        for name in ("mse", "mae", "anomaly_auc"):
            assert figs[name]["provenance"] == "host"
        assert "reconstruction error" in figs["anomaly_auc"]["method"]
        assert ("TFLite interpreter" if quant == "int8" else "Keras") in figs["mse"]["method"]
        assert figs["anomaly_auc"]["value"] > 0.9        # anomalies reconstruct badly
        assert t.values[0] == figs["mse"]["value"]       # the objective is the MSE
        assert set(t.constraints) == {"mse_max"} and t.constraints["mse_max"] <= 0
        assert "max |firmware - host|" in t.user_attrs["notes"]["output_check"]
    assert done["float32"].user_attrs["figures"]["mse"]["value"] == pytest.approx(float_mse, rel=1e-4)
    assert done["int8"].user_attrs["figures"]["mse"]["value"] == pytest.approx(float_mse, rel=0.2)

    html = (tmp_path / "run.html").read_text()
    assert "MSE &lt;= " in html and "<th>MSE</th>" in html
    assert "MSE" in r.stdout.split("Pareto-optimal configurations")[-1]  # the terminal table
