"""The model stage on real data and real TensorFlow (small subsets, 1 epoch: fast on 2 cores)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import mcusearch  # noqa: F401  (tf-keras before TensorFlow)
from mcusearch.errors import SpecError
from mcusearch.model import (ArchitectureConfig, BaseModelConfig, DatasetConfig, ModelKnobs,
                             TrainConfig, base_model, build_model)
from mcusearch.model import datasets as D
from mcusearch.model.cache import ModelCache, cache_key

SMALL = DatasetConfig("watch", max_train=800, max_test=300)
SMALL_CFG = BaseModelConfig(SMALL, train=TrainConfig(epochs=1), representative_samples=100)


# ---------------------------------------------------------------------------------------------
# data sets
# ---------------------------------------------------------------------------------------------

def test_watch_frames_shape_classes_and_subject_split():
    ds = D.load_dataset(DatasetConfig("watch"))
    assert ds.input_shape == (30, 20, 1)
    assert ds.class_names == ("PEN", "ABD", "FEL", "IR") and ds.n_classes == 4
    assert ds.x_train.dtype == np.float32 and np.isfinite(ds.x_train).all()
    assert set(np.unique(ds.y_train)) == set(np.unique(ds.y_test)) == {0, 1, 2, 3}
    assert ds.frame_period_s == pytest.approx(16 / 50)
    assert "50 Hz" in ds.description
    # standardised with the training split's statistics
    assert abs(ds.x_train.mean()) < 1e-3 and abs(ds.x_train.std() - 1) < 1e-3
    # the split is by subject: 1-8 train, 9-10 test, nobody in both
    raw = D.prepare_watch()
    train_subj = set(np.unique(raw["subject"][np.isin(raw["subject"], D.WATCH_TRAIN_SUBJECTS)]))
    test_subj = set(np.unique(raw["subject"][np.isin(raw["subject"], D.WATCH_TEST_SUBJECTS)]))
    assert train_subj == set(range(1, 9)) and test_subj == {9, 10}
    assert not train_subj & test_subj
    assert len(ds.y_train) == np.isin(raw["subject"], D.WATCH_TRAIN_SUBJECTS).sum()
    assert len(ds.y_test) == np.isin(raw["subject"], D.WATCH_TEST_SUBJECTS).sum()
    assert len(ds.y_train) + len(ds.y_test) == len(raw["y"])


def test_watch_window_layout():
    # 100 samples -> 2 windows (starts 0 and 16); axis 0 a sinusoid at rfft bin 2 of 8
    n = np.arange(100)
    rec = np.zeros((100, 6))
    rec[:, 0] = np.cos(2 * np.pi * 2 * n / 8)
    rec[:, 4] = 1.0  # a constant on axis 4 -> bin 0 (plus the window's leakage)
    w = D.watch_windows(rec)
    assert w.shape == (2, 30, 20)
    assert np.argmax(w[0, 0:5, 10]) == 2          # rows 0..4 = axis 0, bins 0..4
    assert np.allclose(w[:, 5:20], 0)             # axes 1-3 silent
    assert w[0, 20, 3] == pytest.approx(np.log1p(np.hanning(8).sum()))
    assert np.argmax(w[0, 20:25, 3]) == 0 and np.all(np.diff(w[0, 20:25, 3]) <= 1e-9)
    # the second window is the first shifted by 16 samples = 4 frames
    spec = D.watch_spectrogram(rec)
    assert np.allclose(w[1, 0:5, :], spec[4:24, 0, :].T)


def test_subsampling_is_stratified_and_deterministic():
    a = D.load_dataset(SMALL)
    b = D.load_dataset(SMALL)
    assert len(a.y_train) == 800 and len(a.y_test) == 300
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_test, b.y_test)
    full = D.load_dataset(DatasetConfig("watch"))
    share_full = np.bincount(full.y_train) / len(full.y_train)
    share_small = np.bincount(a.y_train) / len(a.y_train)
    assert np.abs(share_full - share_small).max() < 0.01


def test_class_subset_and_unknown_class():
    ds = D.load_dataset(DatasetConfig("watch", classes=("IR", "PEN"), max_test=50))
    assert ds.class_names == ("IR", "PEN") and set(np.unique(ds.y_train)) == {0, 1}
    with pytest.raises(SpecError) as e:
        D.load_dataset(DatasetConfig("watch", classes=("PEN", "JUMP")))
    assert e.value.where == "dataset.classes" and "JUMP" in str(e.value)
    with pytest.raises(SpecError) as e:
        D.load_dataset(DatasetConfig("mnist3d"))
    assert e.value.where == "dataset.name"


@pytest.mark.skipif(not D.FASHION_DIR.is_dir(), reason="Debian dataset-fashion-mnist missing")
def test_fashion_mnist_loads():
    ds = D.load_dataset(DatasetConfig("fashion_mnist", max_train=500, max_test=100))
    assert ds.input_shape == (28, 28, 1) and ds.n_classes == 10
    assert ds.x_train.min() >= 0.0 and ds.x_train.max() <= 1.0 and ds.x_train.max() > 0.9
    assert np.array_equal(np.bincount(ds.y_train), [50] * 10)   # the full set is balanced
    assert len(ds.y_test) == 100 and ds.frame_period_s is None


def _npz(tmp_path: Path, name="d.npz", **arrays) -> Path:
    p = tmp_path / name
    np.savez(p, **arrays)
    return p


def test_npz_loads_nhw_and_one_hot(tmp_path):
    rng = np.random.default_rng(0)
    p = _npz(tmp_path, x_train=rng.normal(size=(40, 8, 6)), y_train=np.eye(3)[np.arange(40) % 3],
             x_test=rng.normal(size=(10, 8, 6)), y_test=np.arange(10) % 3,
             class_names=np.array(["a", "b", "c"]))
    ds = D.load_dataset(DatasetConfig("npz", path=p))
    assert ds.input_shape == (8, 6, 1) and ds.class_names == ("a", "b", "c")
    assert ds.y_train.dtype == np.int64 and list(ds.y_train[:4]) == [0, 1, 2, 0]
    ds2 = D.load_dataset(DatasetConfig("npz", path=p, classes=("c", "a")))
    assert ds2.class_names == ("c", "a") and set(np.unique(ds2.y_train)) == {0, 1}
    assert len(ds2.y_train) == 27


@pytest.mark.parametrize("case", ["missing_file", "missing_key", "length", "sample_shape",
                                  "rank", "not_npz", "pickled"])
def test_bad_npz_names_dataset_path(tmp_path, case):
    x, y = np.zeros((10, 4, 4, 1)), np.zeros(10, int)
    if case == "missing_file":
        p = tmp_path / "nope.npz"
    elif case == "missing_key":
        p = _npz(tmp_path, x_train=x, y_train=y, x_test=x)
    elif case == "length":
        p = _npz(tmp_path, x_train=x, y_train=y[:9], x_test=x, y_test=y)
    elif case == "sample_shape":
        p = _npz(tmp_path, x_train=x, y_train=y, x_test=np.zeros((10, 5, 4, 1)), y_test=y)
    elif case == "rank":
        p = _npz(tmp_path, x_train=np.zeros((10, 16)), y_train=y, x_test=x, y_test=y)
    elif case == "not_npz":
        p = tmp_path / "d.npz"
        p.write_text("hello")
    else:
        p = _npz(tmp_path, x_train=x, y_train=y, x_test=x, y_test=y,
                 class_names=np.array([{"a": 1}], dtype=object))
    with pytest.raises(SpecError) as e:
        D.load_dataset(DatasetConfig("npz", path=p))
    assert e.value.where == "dataset.path"
    assert e.value.source == str(p) and str(p) in str(e.value)


# ---------------------------------------------------------------------------------------------
# architecture, pruning, evaluation
# ---------------------------------------------------------------------------------------------

def test_study_cnn_is_the_studys_model():
    from mcusearch.model.architectures import conv_groups, study_cnn
    from mcusearch.model.evaluate import count_macs
    m = study_cnn((30, 20, 1), 4)
    assert m.count_params() == 66_264
    assert count_macs(m) == 9_131_920          # "about 9.13 M" in the study
    assert [l.name for l in m.layers] == [
        "input", "conv1", "conv2", "pool1", "conv3", "conv4", "pool2", "conv5", "conv6",
        "pool3", "flatten", "fc1", "dropout", "fc2"]
    assert conv_groups(m) == [("conv1", "conv2"), ("conv3", "conv4"), ("conv5", "conv6")]


def _random_study_cnn(seed=1):
    from mcusearch.model.architectures import study_cnn
    m = study_cnn((30, 20, 1), 4)
    rng = np.random.default_rng(seed)
    m.set_weights([rng.normal(scale=0.1, size=w.shape).astype(np.float32)
                   for w in m.get_weights()])
    return m


def test_channel_pruning_removes_lowest_l1_filters_and_propagates():
    from mcusearch.model.architectures import conv_filters, study_cnn
    from mcusearch.model.prune import (channels_to_delete, channels_to_keep, filter_l1_norms,
                                       prune_channels)
    m = _random_study_cnn()
    keep = channels_to_keep(m, (8, 16, 24))
    p = prune_channels(m, keep)
    by_hand = study_cnn((30, 20, 1), 4, filters=(8, 16, 24))
    assert p.count_params() == 27_744 == by_hand.count_params()
    assert conv_filters(p) == (8, 8, 16, 16, 24, 24)
    assert m.count_params() == 66_264                 # the original is untouched
    # the kept filters are the ones with the largest L1 norms
    deleted = channels_to_delete(m, keep)
    norms = filter_l1_norms(m.get_layer("conv3"))
    kept = [i for i in range(32) if i not in deleted["conv3"]]
    assert norms[kept].min() >= norms[deleted["conv3"]].max()
    # same outputs as a model built with the kept filters by hand: the removal went through
    # the next conv's input channels and through Flatten into fc1's rows
    ref = study_cnn((30, 20, 1), 4, filters=(8, 16, 24))
    prev = None
    for layer in m.layers:
        if not layer.get_weights():
            continue
        k, b = layer.get_weights()
        if layer.name.startswith("conv"):
            idx = [i for i in range(32) if i not in deleted[layer.name]]
            k = k[:, :, prev, :] if prev is not None else k
            k, b, prev = k[..., idx], b[idx], idx
        elif layer.name == "fc1":
            k = k[np.arange(3 * 2 * 32).reshape(3, 2, 32)[:, :, prev].reshape(-1)]
        ref.get_layer(layer.name).set_weights([k, b])
    x = np.random.default_rng(2).normal(size=(8, 30, 20, 1)).astype(np.float32)
    out = p.predict(x, verbose=0)
    assert out.shape == (8, 4) and np.allclose(out.sum(axis=1), 1, atol=1e-5)
    assert np.allclose(out, ref.predict(x, verbose=0), atol=1e-6)


def test_channel_knob_validation():
    from mcusearch.model.prune import channels_to_keep
    m = _random_study_cnn()
    for bad in [(0, 16, 24), (8, 16, 33), (8, 16)]:
        with pytest.raises(SpecError) as e:
            channels_to_keep(m, bad)
        assert e.value.where == "knobs.channels"


def test_kerassurgeon_shim_is_idempotent():
    import kerassurgeon.utils as u
    from mcusearch.model import prune
    f = u.single_element
    prune._patch_kerassurgeon()
    assert u.single_element is f and f._mcusearch_shim
    assert u.single_element([3]) == 3 and u.single_element((3,)) == 3
    assert u.single_element([1, 2]) == [1, 2] and u.single_element("ab") == "ab"


@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")
def test_builtin_architecture_params():
    """Built-ins by name, their params checked (a user's file: tests/test_load.py, test_preflight.py)."""
    from mcusearch.model.architectures import build_architecture, study_cnn
    m = build_architecture(ArchitectureConfig(params=(("filters", 4), ("dense_units", 8))), (30, 20, 1), 4)
    assert m.count_params() == study_cnn((30, 20, 1), 4, filters=4, dense_units=8).count_params()
    with pytest.raises(SpecError) as e:
        build_architecture(ArchitectureConfig(params=(("width", 3),)), (30, 20, 1), 4)
    assert e.value.where == "architecture.params"
    with pytest.raises(SpecError) as e:
        build_architecture(ArchitectureConfig(name="resnet1000"), (30, 20, 1), 4)
    assert e.value.where == "architecture.name"


# ---------------------------------------------------------------------------------------------
# cache and the stage
# ---------------------------------------------------------------------------------------------

def test_cache_keys_and_atomic_entries(tmp_path):
    k1 = cache_key("variant", SMALL_CFG, ModelKnobs())
    assert k1 == cache_key("variant", SMALL_CFG, ModelKnobs())
    assert k1 != cache_key("variant", SMALL_CFG, ModelKnobs(quantization="int8"))
    # a user file is keyed by its contents
    p = _npz(tmp_path, a=np.zeros(3))
    cfg = DatasetConfig("npz", path=p)
    before = cache_key("base", cfg)
    np.savez(p, a=np.ones(3))
    os.utime(p, ns=(time.time_ns() + 10**9,) * 2)
    assert cache_key("base", cfg) != before

    cache = ModelCache(tmp_path / "c")
    with pytest.raises(RuntimeError):
        with cache.put("base", "k" * 64) as d:
            (d / "model.h5").write_text("half")
            raise RuntimeError("killed")
    assert cache.get("base", "k" * 64) is None and not any(cache.tmp.iterdir())
    with cache.put("base", "k" * 64, {"accuracy": 0.5}) as d:
        (d / "model.h5").write_text("whole")
    assert (cache.get("base", "k" * 64) / "model.h5").read_text() == "whole"
    assert cache.meta("base", "k" * 64)["accuracy"] == 0.5
    # leftovers of a killed process are removed by the next run
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = cache.tmp / f"base-0123456789abcdef-{dead}-deadbeef"
    stale.mkdir()
    ModelCache(tmp_path / "c")
    assert not stale.exists()


def test_stage_prune_int8_and_cache_hit(tmp_path):
    cache_dir = tmp_path / "cache"
    knobs = ModelKnobs(channels=(8, 16, 24), quantization="int8", retrain_epochs=1)
    r = build_model(SMALL_CFG, knobs, cache_dir, out_dir=tmp_path / "trial")
    assert r.extra["cache"] == "miss"
    assert r.params == 27_744 and r.channels == (8, 8, 16, 16, 24, 24)
    assert r.quantization == "int8" and r.tflite_path == tmp_path / "trial" / "model_int8.tflite"
    assert r.tflite_path.stat().st_size > 10_000 and r.keras_path.is_file()
    assert r.input_shape == (30, 20, 1) and r.class_names == ("PEN", "ABD", "FEL", "IR")
    assert abs(r.accuracy - r.extra["float_accuracy"]) <= 0.05
    assert r.extra["tflite_io"]["input"]["dtype"] == "int8"
    assert r.extra["accuracy_figure"]["provenance"] == "host"
    # balanced and per-class accuracy of the same evaluation; the surgery engine is recorded
    assert len(r.per_class_accuracy) == 4 and 0.0 <= r.balanced_accuracy <= 1.0
    assert r.extra["metrics"]["accuracy"] == r.accuracy and r.extra["metrics"]["n"] == 300
    assert r.extra["pruning"]["engine"] == "kerassurgeon"
    # probes: the first 5 test samples of each class, class by class
    assert r.probe_inputs.shape == (20, 30, 20, 1) and r.probe_inputs.dtype == np.float32
    assert list(r.probe_labels) == [0] * 5 + [1] * 5 + [2] * 5 + [3] * 5
    ds = D.load_dataset(SMALL)
    first = np.flatnonzero(ds.y_test == 2)[:5]
    assert np.array_equal(r.probe_inputs[10:15], ds.x_test[first])
    assert r.extra["probe_tflite_outputs"].dtype == np.int8

    t0 = time.perf_counter()
    r2 = build_model(SMALL_CFG, knobs, cache_dir)
    assert time.perf_counter() - t0 < 1.0
    assert r2.extra["cache"] == "hit" and r2.cache_key == r.cache_key
    assert (r2.accuracy, r2.params, r2.macs, r2.channels) == (r.accuracy, r.params, r.macs,
                                                              r.channels)
    assert np.array_equal(r2.probe_inputs, r.probe_inputs)
    assert r2.tflite_path.read_bytes() == r.tflite_path.read_bytes()

    # the float32 model of the same channels reuses the pruned model; the base is cached once
    rf = build_model(SMALL_CFG, ModelKnobs((8, 16, 24), "float32", 1), cache_dir)
    assert rf.extra["pruning"]["cache"] == "hit" and rf.accuracy == r.extra["float_accuracy"]
    assert rf.tflite_path is None
    t0 = time.perf_counter()
    model, ds2, key = base_model(SMALL_CFG, cache_dir)
    assert time.perf_counter() - t0 < 5.0 and model.count_params() == 66_264
    assert len(list((cache_dir / "model" / "base").iterdir())) == 1

    with pytest.raises(SpecError) as e:
        build_model(SMALL_CFG, ModelKnobs(channels=(8, 40, 8)), cache_dir)
    assert e.value.where == "knobs.channels"
    with pytest.raises(SpecError) as e:
        build_model(SMALL_CFG, ModelKnobs(quantization="int4"), cache_dir)
    assert e.value.where == "knobs.quantization"
