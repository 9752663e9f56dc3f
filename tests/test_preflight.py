"""Checked before anything runs: `mcusearch validate` / `run` load the data set and the model
once and stop a bad combination with one line naming the key or file, exit 2, nothing written."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import mcusearch  # noqa: F401  (tf-keras for tf.keras)
import tensorflow as tf

from mcusearch.cli import main

keras3 = pytest.importorskip("keras")
ROOT = Path(__file__).resolve().parents[1]
SHAPE = (8, 8, 1)
CLASSES = 3


def _npz(path: Path, *, nan=False, test_classes=CLASSES, bad_label=False) -> Path:
    rng = np.random.default_rng(0)
    x_train = rng.normal(size=(60, *SHAPE)).astype(np.float32)
    x_test = rng.normal(size=(30, *SHAPE)).astype(np.float32)
    y_train = np.arange(60) % CLASSES
    y_test = np.arange(30) % test_classes
    if nan:
        x_train[3, 0, 0, 0] = np.nan
    if bad_label:
        y_test[0] = CLASSES
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
             class_names=np.array(["a", "b", "c"]))
    return path


def _k3(shape=SHAPE, outputs=CLASSES, autoencoder=False):
    L = keras3.layers
    inp = keras3.Input(shape)
    x = L.Conv2D(4, 3, padding="same", activation="relu")(inp)
    if autoencoder:
        return keras3.Model(inp, L.Conv2D(shape[-1], 1)(x))
    x = L.GlobalAveragePooling2D()(x)
    return keras3.Model(inp, L.Dense(outputs, activation="softmax")(x))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("preflight")
    out = {"good": d / "good.keras", "wrong_input": d / "wrong_input.keras",
           "wrong_output": d / "wrong_output.keras", "autoencoder": d / "ae.keras",
           "text": d / "text.keras", "lambda": d / "lambda.h5", "marker": d / "lambda_ran",
           "dir": d}
    _k3().save(out["good"])
    _k3(shape=(10, 10, 1)).save(out["wrong_input"])
    _k3(outputs=5).save(out["wrong_output"])
    _k3(autoencoder=True).save(out["autoencoder"])
    out["text"].write_text("this is not a model\n")
    code = f"lambda x: (__import__('pathlib').Path({str(out['marker'])!r}).touch(), x)[1]"
    inp = tf.keras.Input(SHAPE)
    x = tf.keras.layers.Lambda(eval(code))(inp)
    x = tf.keras.layers.Flatten()(x)
    m = tf.keras.Model(inp, tf.keras.layers.Dense(CLASSES)(x))
    m.save(out["lambda"], save_format="h5")
    out["marker"].unlink()
    out["float_tflite"], out["int8_tflite"] = _tflite_files(d)
    return out


def _tflite_files(d: Path) -> tuple[Path, Path]:
    """The same small model as a float32 and an int8 .tflite."""
    from mcusearch.model.quantize import to_int8_tflite

    L = tf.keras.layers
    inp = tf.keras.Input(SHAPE)
    m = tf.keras.Model(inp, L.Dense(CLASSES)(L.Flatten()(inp)))
    (d / "float.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(m).convert())
    x = np.random.default_rng(0).normal(size=(32, *SHAPE)).astype(np.float32)
    to_int8_tflite(m, x, d / "int8.tflite")
    return d / "float.tflite", d / "int8.tflite"


def _spec(tmp: Path, model: dict | None, data: Path, **knobs) -> Path:
    spec = {"name": "t", "dataset": {"name": "npz", "path": str(data)},
            "constraints": {"deadline_ms": None},
            "knobs": {"quantization": ["float32"], "converter": ["mcusearch"], **knobs},
            "search": {"run_dir": str(tmp / "run"), "cache_dir": str(tmp / "cache")}}
    if model is not None:
        spec["model"] = model
    p = tmp / "spec.yaml"
    p.write_text(yaml.safe_dump(spec))
    return p


def _nothing_written(tmp: Path) -> None:
    assert not (tmp / "run").exists() and not (tmp / "cache").exists()


CASES = [  # (model file, data options, key, words)
    ("wrong_input", {}, "model.path", "inputs of shape (10, 10, 1)"),
    ("wrong_output", {}, "model.path", "3 classes"),
    ("text", {}, "model.path", "not a readable .keras file"),
    ("lambda", {}, "model.path", "model.trust_code: true"),
    ("good", {"nan": True}, "dataset.path", "NaN"),
    ("good", {"test_classes": 1}, "dataset.path", "at least two classes"),
    ("good", {"bad_label": True}, "dataset.path", "label"),
]


@pytest.mark.parametrize("model, data, key, words", CASES)
def test_bad_combination_one_line_exit_2_nothing_written(model, data, key, words, files,
                                                         tmp_path, capsys):
    spec = _spec(tmp_path, {"path": str(files[model])}, _npz(tmp_path / "d.npz", **data))
    for command in ("validate", "run"):
        assert main([command, str(spec)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("mcusearch: error: "), err
        assert f"{key}: " in err[0] and words in err[0], err[0]
        _nothing_written(tmp_path)
    assert not files["marker"].exists()  # the Lambda's code never ran


def test_good_model_and_autoencoder_pass(files, tmp_path, capsys):
    data = _npz(tmp_path / "d.npz")
    for model in ("good", "autoencoder"):
        assert main(["validate", str(_spec(tmp_path, {"path": str(files[model])}, data))]) == 0
        out = capsys.readouterr().out
        assert "written by Keras 3, rebuilt in tf-keras" in out and "used as trained" in out
    spec = _spec(tmp_path, {"path": str(files["good"]), "train": {"epochs": 2}}, data)
    assert main(["validate", str(spec)]) == 0
    assert "fine-tuned 2 epochs first" in capsys.readouterr().out
    _nothing_written(tmp_path)


def test_tflite_base_reports_dropped_knobs(files, tmp_path, capsys):
    data = _npz(tmp_path / "d.npz")
    spec = _spec(tmp_path, {"path": str(files["int8_tflite"])}, data,
                 quantization=["float32", "int8"])
    assert main(["validate", str(spec)]) == 0
    cap = capsys.readouterr()
    assert "int8 .tflite model, used as it is" in cap.out
    assert "mcusearch: warning: knobs.quantization is dropped" in cap.err
    # the generators read a float32 .tflite; aidge takes float32 models as Keras files only:
    # stopped before anything runs
    spec = _spec(tmp_path, {"path": str(files["float_tflite"])}, data)
    assert main(["validate", str(spec)]) == 0
    capsys.readouterr()
    spec = _spec(tmp_path, {"path": str(files["float_tflite"])}, data, converter=["aidge"])
    assert main(["run", str(spec)]) == 2
    assert "model.path: a float32 .tflite model cannot be converted" in capsys.readouterr().err
    _nothing_written(tmp_path)


def test_built_in_architecture_needs_an_epoch(tmp_path, capsys):
    spec = _spec(tmp_path, {"architecture": "study_cnn", "train": {"epochs": 0}},
                 _npz(tmp_path / "d.npz"))
    assert main(["validate", str(spec)]) == 2
    assert "model: train.epochs" in capsys.readouterr().err


@pytest.mark.parametrize("model, key, words", [("wrong_output", "model.path", "3 classes"),
                                               ("lambda", "model.path", "trust_code")])
def test_validate_subprocess(model, key, words, files, tmp_path):
    spec = _spec(tmp_path, {"path": str(files[model])}, _npz(tmp_path / "d.npz"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "mcusearch", "validate", str(spec)], cwd=tmp_path,
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.startswith("mcusearch")]
    assert len(lines) == 1 and key in lines[0] and words in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    _nothing_written(tmp_path)
    assert not files["marker"].exists()


def test_bad_saved_calibration_stops_at_the_door(files, tmp_path, capsys, monkeypatch):
    """A correction file `mcusearch calibrate --save` would read is checked before any trial."""
    cal = tmp_path / "calibration"
    cal.mkdir()
    (cal / "STM32F722ZE.yaml").write_text("factor: [not, a, number\n")
    monkeypatch.setenv("MCUSEARCH_CALIBRATION_DIR", str(cal))
    spec = _spec(tmp_path, {"path": str(files["good"])}, _npz(tmp_path / "d.npz"))
    for command in ("validate", "run"):
        assert main([command, str(spec)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "STM32F722ZE.yaml" in err[0], err
        _nothing_written(tmp_path)
