"""Issue 10's end-to-end case: a user's trained DS-CNN-like network (Conv2D stride 2 + BatchNorm
+ ReLU, DepthwiseConv2D, a 1x1 conv, a residual Add, AveragePooling, GlobalAveragePooling, Dense),
trained and saved by Keras 3 (.keras), and as tf-keras .h5 and SavedModel, with its own .npz data,
goes through a 4-trial search (channel pruning + int8 + two boards) with every trial measured."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml

pytestmark = pytest.mark.slow

TRAIN_KERAS3 = r"""
import sys
import keras
import numpy as np
d = np.load(sys.argv[1])
keras.utils.set_random_seed(0)
L = keras.layers
i = keras.Input(d["x_train"].shape[1:])
x = L.Conv2D(16, 3, strides=2, padding="same", use_bias=False, name="stem")(i)
x = L.BatchNormalization()(x)
x = L.ReLU()(x)
y = L.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
y = L.BatchNormalization()(y)
y = L.ReLU()(y)
y = L.Conv2D(16, 1, name="pw")(y)
x = L.Add()([x, y])
x = L.AveragePooling2D(2)(x)
x = L.GlobalAveragePooling2D()(x)
o = L.Dense(4, activation="softmax")(x)
m = keras.Model(i, o)
m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
m.fit(d["x_train"], d["y_train"], epochs=15, batch_size=32, verbose=0)
print(m.evaluate(d["x_test"], d["y_test"], verbose=0)[1])
m.save(sys.argv[2])
"""


def _data(path: Path) -> None:
    """Four classes of 16 x 12 x 1 'spectrograms': class k is a ripple of k + 1 periods down the
    rows at a random phase, plus noise (a texture, so a global average pool keeps it)."""
    rng = np.random.default_rng(0)
    rows = np.arange(16)[:, None, None]

    def make(n):
        y = rng.integers(0, 4, n)
        x = rng.normal(0, 0.5, (n, 16, 12, 1)).astype(np.float32)
        for k in range(n):
            x[k] += np.sin(2 * np.pi * (y[k] + 1) * rows / 16 + rng.uniform(0, 2 * np.pi))
        return x, y.astype(np.int64)
    (xt, yt), (xv, yv) = make(480), make(160)
    np.savez(path, x_train=xt, y_train=yt, x_test=xv, y_test=yv)


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("user")
    _data(d / "data.npz")
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    r = subprocess.run([sys.executable, "-c", TRAIN_KERAS3, str(d / "data.npz"), str(d / "kws.keras")],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert float(r.stdout.split()[-1]) > 0.5            # it learned something
    from mcusearch.model.load import load_user_model
    m = load_user_model(d / "kws.keras")                # rebuilt in tf-keras
    m.save(d / "kws.h5", save_format="h5")
    m.save(d / "kws_savedmodel", save_format="tf")
    return d


@pytest.mark.parametrize("model_file", ["kws.keras", "kws.h5", "kws_savedmodel"])
def test_user_model_four_trial_search(user_files, tmp_path, model_file):
    spec = {
        "name": f"user model {model_file}",
        "model": {"path": str(user_files / model_file), "retrain_epochs": 1},
        "dataset": {"name": "npz", "path": str(user_files / "data.npz"), "probe_per_class": 1},
        "target": {"boards": ["qemu-m7", "qemu-m4"]},
        "constraints": {"accuracy_min": 0.3},
        "knobs": {"channels": {"per": "ratio", "values": [0.5, 1.0]}, "quantization": ["int8"],
                  "opt_level": ["-O2"], "converter": ["mcusearch"]},
        "search": {"sampler": "grid", "n_trials": 4, "seed": 0, "run_dir": "run",
                   "cache_dir": str(tmp_path / "cache")},
    }
    p = tmp_path / "search.yaml"
    p.write_text(yaml.safe_dump(spec))
    r = subprocess.run([sys.executable, "-m", "mcusearch", "run", str(p)], cwd=tmp_path,
                       capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    study = optuna.load_study(study_name="mcusearch",
                              storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 4, [t.user_attrs.get("error") for t in study.trials]
    assert {t.params["board"] for t in done} == {"qemu-m7", "qemu-m4"}
    for t in done:
        figs = t.user_attrs["figures"]
        assert figs["instructions"]["provenance"] == "emulated"
        assert figs["instructions"]["value"] > figs["macs"]["value"] * 0.5
        assert 0.0 < figs["accuracy"]["value"] <= 1.0
        assert "max |firmware - host| = 0" in t.user_attrs["notes"]["output_check"]
