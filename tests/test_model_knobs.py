"""The model knobs: channel pruning (criteria, granularity, surgery through BatchNorm and residual
adds), magnitude pruning, int8 / int16x8 / QAT quantisation, metrics, cache, early rejection.

Real TensorFlow on small subsets (800 training and 300 test frames of the watch data, 1 epoch):
the figures are not meant to be good, the mechanics are checked. Surgery tests use small random
models and no training.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

import mcusearch  # noqa: F401  (tf-keras before TensorFlow)
import tensorflow as tf
from mcusearch.errors import Infeasible, SpecError, StageError
from mcusearch.model import (BaseModelConfig, DatasetConfig, ModelKnobs, TrainConfig,
                             build_model, candidate_footprint, normalise_knobs)
from mcusearch.model import datasets as D
from mcusearch.model.cache import ModelCache

ROOT = Path(__file__).resolve().parents[1]
L = tf.keras.layers
SMALL = DatasetConfig("watch", max_train=800, max_test=300)
CFG = BaseModelConfig(SMALL, train=TrainConfig(epochs=1), representative_samples=100,
                      qat_epochs=1)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("knob-cache")


# ---------------------------------------------------------------------------------------------
# small models for the surgery (random weights, no training)
# ---------------------------------------------------------------------------------------------

def _randomise(model: tf.keras.Model, seed: int = 0) -> tf.keras.Model:
    rng = np.random.default_rng(seed)
    new = []
    for v in model.weights:
        shape = tuple(v.shape)
        if "moving_variance" in v.name:
            new.append(rng.uniform(0.5, 1.5, shape))
        else:
            new.append(rng.normal(scale=0.3, size=shape))
    model.set_weights([w.astype(np.float32) for w in new])
    return model


def bn_model(relu_layer: bool = False) -> tf.keras.Model:
    """Conv (no bias) -> BatchNorm -> ReLU, twice, then MaxPool, Flatten, Dense."""
    act = (lambda: L.ReLU()) if relu_layer else (lambda: L.Activation("relu"))
    i = tf.keras.Input((12, 10, 1), name="x")
    x = L.Conv2D(8, 3, padding="same", use_bias=False, name="c1")(i)
    x = act()(L.BatchNormalization(name="bn1")(x))
    x = L.Conv2D(8, 3, padding="same", name="c2")(x)
    x = act()(L.BatchNormalization(name="bn2")(x))
    x = L.Flatten()(L.MaxPooling2D()(x))
    return _randomise(tf.keras.Model(i, L.Dense(3, activation="softmax", name="out")(x)))


def res_model(relu_layer: bool = False) -> tf.keras.Model:
    """stem conv -> (conv a -> conv b) + stem (a residual add) -> ReLU -> global pool -> Dense."""
    i = tf.keras.Input((12, 10, 1), name="x")
    s = L.Conv2D(8, 3, padding="same", activation="relu", name="stem")(i)
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="ra")(s)
    x = L.Conv2D(8, 3, padding="same", name="rb")(x)
    x = L.Add(name="add")([s, x])
    x = L.ReLU()(x) if relu_layer else L.Activation("relu")(x)
    x = L.GlobalAveragePooling2D()(x)
    return _randomise(tf.keras.Model(i, L.Dense(3, name="out")(x)))


def study_model() -> tf.keras.Model:
    from mcusearch.model.architectures import study_cnn
    return _randomise(study_cnn((30, 20, 1), 4))


def _x(model, n=6, seed=1):
    return np.random.default_rng(seed).normal(size=(n, *model.input_shape[1:])).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# channel pruning: criteria, surgery, coupling
# ---------------------------------------------------------------------------------------------

def test_criteria_choose_the_lowest_scores_and_random_is_a_seeded_control():
    from mcusearch.model.prune import channels_to_delete, channels_to_keep, filter_scores
    m = study_model()
    keep = channels_to_keep(m, (8, 16, 24))
    k = m.get_layer("conv3").get_weights()[0].reshape(-1, 32)
    for crit, score in (("l1", np.abs(k).sum(0)), ("l2", np.sqrt((k ** 2).sum(0)))):
        assert np.allclose(filter_scores(m, ["conv3"], crit), score)
        gone = channels_to_delete(m, keep, crit)["conv3"]
        kept = sorted(set(range(32)) - set(gone))
        assert len(gone) == 16 and score[kept].min() >= score[gone].max()
    r1 = channels_to_delete(m, keep, "random", seed=0)
    assert r1 == channels_to_delete(m, keep, "random", seed=0)        # reproducible
    assert r1 != channels_to_delete(m, keep, "random", seed=1)
    assert r1 != channels_to_delete(m, keep, "l1")
    with pytest.raises(SpecError) as e:
        filter_scores(m, ["conv3"], "l0")
    assert e.value.where == "knobs.channels.criterion"


@pytest.mark.parametrize("make, keep", [
    (study_model, "groups"),
    (bn_model, {"c1": 5, "c2": 3}),
    (res_model, {"stem": 5, "ra": 4, "rb": 5}),
])
def test_own_surgery_gives_kerassurgeons_model(make, keep):
    """Where kerassurgeon works, both engines build the same model (same outputs): through
    Flatten into Dense, BatchNorm's parameters, a residual add and global pooling."""
    from mcusearch.model.prune import channels_to_delete, channels_to_keep, remove_channels
    m = make()
    if keep == "groups":
        keep = channels_to_keep(m, (8, 16, 24))
    delete = channels_to_delete(m, keep)
    report: dict = {}
    a = remove_channels(m, delete, "kerassurgeon", report)
    assert report["engine"] == "kerassurgeon"
    b = remove_channels(m, delete, "own")
    for name, n in keep.items():
        assert a.get_layer(name).filters == b.get_layer(name).filters == n
    assert a.count_params() == b.count_params() < m.count_params()
    x = _x(m)
    assert np.allclose(a.predict(x, verbose=0), b.predict(x, verbose=0), atol=1e-6)
    assert m.count_params() == make().count_params()    # the original is untouched


@pytest.mark.parametrize("make", [bn_model, res_model])
def test_own_surgery_where_kerassurgeon_fails(make):
    """kerassurgeon refuses ReLU layers; ``auto`` falls back to our surgery, whose model equals
    kerassurgeon's on the same network written with Activation('relu')."""
    from mcusearch.model.prune import channels_to_delete, remove_channels
    with_relu, twin = make(relu_layer=True), make()
    with_relu.set_weights(twin.get_weights())
    keep = {c.name: 4 for c in twin.layers if isinstance(c, L.Conv2D)}
    delete = channels_to_delete(twin, keep)
    with pytest.raises(StageError, match="kerassurgeon.*ReLU"):
        remove_channels(with_relu, delete, "kerassurgeon")
    report: dict = {}
    ours = remove_channels(with_relu, delete, "auto", report)
    assert report["engine"] == "own" and "ReLU" in report["kerassurgeon_skipped"]
    ref = remove_channels(twin, delete, "kerassurgeon")
    x = _x(twin)
    assert np.allclose(ours.predict(x, verbose=0), ref.predict(x, verbose=0), atol=1e-6)


def test_residual_adds_couple_convs_and_inputs_lock_them():
    from mcusearch.model.architectures import channel_layout
    from mcusearch.model.prune import channels_to_delete
    from mcusearch.model.surgery import channel_spaces, delete_channels
    m = res_model()
    layout = channel_layout(m)
    assert layout["convs"] == ["stem", "ra", "rb"] and layout["coupled"] == [["stem", "rb"]]
    # the coupled convs are scored together and lose the same channels
    d = channels_to_delete(m, {"stem": 5, "ra": 6, "rb": 5})
    assert d["stem"] == d["rb"] and len(d["stem"]) == 3 and len(d["ra"]) == 2
    with pytest.raises(SpecError, match="residual add"):
        channels_to_delete(m, {"stem": 5, "ra": 6, "rb": 4})
    # kerassurgeon would build an add of mismatched channels here; ours refuses
    with pytest.raises(StageError, match="lost different channels"):
        delete_channels(m, {"stem": [0, 1], "rb": [2, 3]})
    # the knobs: the coupled pair keeps the larger count asked
    nk, adjusted = normalise_knobs(ModelKnobs(layer_channels=(5, 4, 3)), layout)
    assert nk["keep"] == [["stem", 5], ["ra", 4], ["rb", 5]]
    assert adjusted and "stem+rb" in adjusted[0]
    # a conv added to the model input keeps its width
    i = tf.keras.Input((6, 6, 4))
    c = L.Conv2D(4, 3, padding="same", name="k")(i)
    locked = tf.keras.Model(i, L.Flatten()(L.Add()([i, c])))
    assert channel_spaces(locked) == {"coupled": [], "locked": ["k"]}
    nk, adjusted = normalise_knobs(ModelKnobs(keep_ratio=0.5), channel_layout(locked))
    assert nk["full_width"] and "k keeps all 4" in adjusted[0]


def test_knob_normalisation_per_group_layer_and_ratio():
    from mcusearch.model.architectures import channel_layout
    layout = channel_layout(study_model())
    groups, _ = normalise_knobs(ModelKnobs(channels=(8, 16, 24)), layout)
    layers, _ = normalise_knobs(ModelKnobs(layer_channels=(8, 8, 16, 16, 24, 24)), layout)
    assert groups["keep"] == layers["keep"] and groups["channels"] == [8, 8, 16, 16, 24, 24]
    ratio, _ = normalise_knobs(ModelKnobs(keep_ratio=0.25, criterion="l2"), layout)
    assert ratio["channels"] == [8] * 6 and ratio["criterion"] == "l2"
    # settings that do not apply are normalised away: equal models share cache entries
    full, _ = normalise_knobs(ModelKnobs(criterion="random", retrain_epochs=5,
                                         sparsity_epochs=7), layout)
    assert full["full_width"] and full["criterion"] is None and full["retrain_epochs"] == 0
    assert full["sparsity_epochs"] == 0 and full["format"] == "float32"
    assert normalise_knobs(ModelKnobs(quantization="int8-qat"), layout)[0]["format"] == "int8"
    for knobs, where in [
        (ModelKnobs(layer_channels=(8, 8, 16)), "knobs.channels"),
        (ModelKnobs(layer_channels=(8, 8, 16, 16, 24, 40)), "knobs.channels"),
        (ModelKnobs(channels=(8, 8, 8), keep_ratio=0.5), "knobs.channels"),
        (ModelKnobs(keep_ratio=1.5), "knobs.channels.values"),
        (ModelKnobs(criterion="l3"), "knobs.channels.criterion"),
        (ModelKnobs(sparsity=1.0), "knobs.magnitude.sparsity"),
        (ModelKnobs(sparsity=0.5, sparsity_epochs=0), "knobs.magnitude.epochs"),
        (ModelKnobs(quantization="int4"), "knobs.quantization"),
    ]:
        with pytest.raises(SpecError) as e:
            normalise_knobs(knobs, layout)
        assert e.value.where == where, knobs


# ---------------------------------------------------------------------------------------------
# magnitude pruning and quantisation, through the stage
# ---------------------------------------------------------------------------------------------

def test_polynomial_schedule_ends_on_an_update_step():
    from mcusearch.model.magnitude import polynomial_schedule
    s = polynomial_schedule(216, 50)          # 2 epochs of the full watch split, batch 64
    assert (s["begin_step"], s["end_step"], s["frequency"], s["note"]) == (0, 200, 50, "")
    s = polynomial_schedule(13, 50)           # too few steps for the study's frequency
    assert s["frequency"] == 3 and s["end_step"] == 12 and "frequency 50" in s["note"]
    s = polynomial_schedule(100, 25, begin_step=10)
    assert s["end_step"] == 85 and (s["end_step"] - 10) % 25 == 0
    assert polynomial_schedule(5, 50, begin_step=9)["begin_step"] == 0


def test_magnitude_pruning_reaches_the_target_and_survives_int8(cache_dir, tmp_path):
    from mcusearch.convert.frontend import graph_from_keras
    from mcusearch.model.stage import _load_keras
    r = build_model(CFG, ModelKnobs(sparsity=0.9, sparsity_epochs=1, quantization="int8"),
                    cache_dir, out_dir=tmp_path)
    ws = r.extra["weight_sparsity"]
    assert set(ws["layers"]) == {"conv1", "conv2", "conv3", "conv4", "conv5", "conv6", "fc1",
                                 "fc2"}
    for name, layer in ws["layers"].items():
        assert 0.895 <= layer["sparsity"] <= 0.905, (name, layer)
    sched = r.extra["magnitude"]["schedule"]
    assert (sched["end_step"] - sched["begin_step"]) % sched["frequency"] == 0
    assert sched["end_step"] <= sched["total_steps"]
    # int8 keeps every zero (symmetric weights: zero point 0); conv weights are per channel
    tw = r.extra["tflite_weights"]
    assert [l["layer"] for l in tw["layers"]] == list(ws["layers"])
    for layer in tw["layers"]:
        assert layer["zero_fraction"] >= ws["layers"][layer["layer"]]["sparsity"]
        assert layer["dtype"] == "int8"
        assert layer["per_channel"] or layer["op"] != "CONV_2D"
    assert r.params == 66_264 and r.quantization == "int8"
    # the stripped model is a plain Keras model: the generator takes it, names unchanged
    model = _load_keras(r.keras_path)
    assert [l.name for l in model.layers][:3] == ["input", "conv1", "conv2"]
    assert graph_from_keras(model).params == 66_264
    # the lower bound counted before training holds for the finished model
    fp = candidate_footprint(CFG, ModelKnobs(sparsity=0.9, quantization="int8"), cache_dir)
    real = r.extra["footprint"]
    assert fp.nonzero_params <= real["nonzero_params"] and fp.params == real["params"]
    assert fp.activation_bytes == real["activation_bytes"] == 30 * 20 * 32


def test_int8_and_int16x8_agree_with_the_float_model(cache_dir):
    from mcusearch.model.evaluate import tflite_predict
    from mcusearch.model.stage import _load_keras
    f = build_model(CFG, ModelKnobs(), cache_dir)
    ds = D.load_dataset(SMALL)
    ref = _load_keras(f.keras_path).predict(ds.x_test, verbose=0)
    diffs = {}
    for q in ("int8", "int16x8"):
        r = build_model(CFG, ModelKnobs(quantization=q), cache_dir)
        assert r.quantization == q and r.tflite_path.name == f"model_{q}.tflite"
        io = r.extra["tflite_io"]
        assert io["input"]["dtype"] == io["output"]["dtype"] == {"int8": "int8",
                                                                 "int16x8": "int16"}[q]
        out = tflite_predict(r.tflite_path, ds.x_test)
        assert np.mean(np.argmax(out, 1) == np.argmax(ref, 1)) >= 0.95
        assert abs(r.accuracy - f.accuracy) <= 0.03
        diffs[q] = np.abs(out - ref).max()
        assert len(r.per_class_accuracy) == 4 and 0 <= r.balanced_accuracy <= 1
    assert diffs["int16x8"] < diffs["int8"] < 0.1      # 16-bit activations: closer to float


def test_qat_gives_an_int8_model_the_generator_takes(cache_dir, tmp_path):
    from mcusearch.convert.frontend import graph_from_tflite
    r = build_model(CFG, ModelKnobs(channels=(8, 8, 8), retrain_epochs=1,
                                    quantization="int8-qat"), cache_dir, out_dir=tmp_path)
    assert r.quantization == "int8" and r.extra["quantization_knob"] == "int8-qat"
    assert r.tflite_path == tmp_path / "model_int8.tflite"
    assert r.extra["qat"]["scheme"] == "Default8BitQuantizeScheme"
    assert 0 <= r.extra["qat"]["keras_accuracy"] <= 1
    assert r.extra["tflite_io"]["input"]["dtype"] == "int8"
    g = graph_from_tflite(r.tflite_path)
    assert g.params == r.params and r.channels == (8,) * 6


def test_accuracy_balanced_and_per_class():
    from mcusearch.model.evaluate import classification_metrics
    m = classification_metrics([0, 0, 0, 0, 1, 1, 2, 2], [0, 0, 0, 0, 0, 1, 1, 2], 4)
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["per_class_accuracy"][:3] == [1.0, 0.5, 0.5] and np.isnan(m["per_class_accuracy"][3])
    assert m["balanced_accuracy"] == pytest.approx(2 / 3)   # class 3 is absent: not averaged
    assert m["confusion"][1] == [1, 1, 0, 0]


# ---------------------------------------------------------------------------------------------
# cache and reproducibility
# ---------------------------------------------------------------------------------------------

def test_cache_levels_hit_miss_and_clear(cache_dir):
    cache = ModelCache(cache_dir)
    # the float32 variant of the 0.9 sparsity above reuses its magnitude-pruned model
    r = build_model(CFG, ModelKnobs(sparsity=0.9, sparsity_epochs=1), cache_dir)
    assert r.extra["cache"] == "miss" and r.extra["magnitude"]["cache"] == "hit"
    t0 = time.perf_counter()
    again = build_model(CFG, ModelKnobs(sparsity=0.9, sparsity_epochs=1), cache_dir)
    assert time.perf_counter() - t0 < 1.0 and again.extra["cache"] == "hit"
    assert (again.accuracy, again.balanced_accuracy) == (r.accuracy, r.balanced_accuracy)
    # another sparsity misses; another criterion at full width is the same model (a hit)
    assert build_model(CFG, ModelKnobs(criterion="random"), cache_dir).extra["cache"] == "hit"
    info = cache.info()
    assert info["kinds"]["base"]["entries"] == 1 and info["kinds"]["sparse"]["entries"] == 1
    assert info["kinds"]["variant"]["entries"] >= 4 and info["bytes"] > 0
    # the CLI on a spec pointing at this cache
    data = yaml.safe_load((ROOT / "search.yaml").read_text())
    data["search"]["cache_dir"] = str(cache_dir)
    spec = cache_dir / "spec.yaml"
    spec.write_text(yaml.safe_dump(data))
    def run(*a):
        return subprocess.run([sys.executable, "-m", "mcusearch", "cache", *a, str(spec)],
                              capture_output=True, text=True, timeout=120)
    out = run("info")
    assert out.returncode == 0 and "sparse" in out.stdout and "variant" in out.stdout, out.stderr
    out = run("clear", "--kind", "variant")
    assert out.returncode == 0 and "variant" in out.stdout, out.stderr
    assert cache.info()["kinds"]["variant"]["entries"] == 0
    assert cache.info()["kinds"]["base"]["entries"] == 1      # only the kind asked for
    assert build_model(CFG, ModelKnobs(sparsity=0.9, sparsity_epochs=1),
                       cache_dir).accuracy == r.accuracy     # rebuilt from the sparse entry


def test_a_trial_is_reproducible_from_its_knobs(cache_dir, tmp_path):
    """The same knobs in a fresh cache (sharing only the base model) give the same weights."""
    knobs = ModelKnobs(keep_ratio=0.5, criterion="random", retrain_epochs=1)
    a = build_model(CFG, knobs, cache_dir)
    other = tmp_path / "other"
    shutil.copytree(cache_dir / "model" / "base", other / "model" / "base")
    b = build_model(CFG, knobs, other)
    assert a.cache_key == b.cache_key and b.extra["cache"] == "miss"
    assert b.extra["pruning"]["cache"] == "miss"
    from mcusearch.model.stage import _load_keras
    wa, wb = _load_keras(a.keras_path).get_weights(), _load_keras(b.keras_path).get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(wa, wb))
    assert a.accuracy == b.accuracy and a.per_class_accuracy == b.per_class_accuracy


# ---------------------------------------------------------------------------------------------
# the spec, the knobs and the trial
# ---------------------------------------------------------------------------------------------

def _spec_data(**knobs) -> dict:
    data = yaml.safe_load((ROOT / "search.yaml").read_text())
    data["knobs"].update(knobs)
    return data


def test_spec_knobs_space_and_trial_config(tmp_path):
    from mcusearch.knobs import config_from_params, knobs_from_spec, search_space
    from mcusearch.spec import parse_spec
    from mcusearch.trial import model_knobs
    spec = parse_spec(_spec_data(
        channels={"per": "layer", "values": [8, 32], "criterion": ["l1", "l2"],
                  "retrain_epochs": [0, 2]},
        magnitude={"sparsity": [0, 0.9], "epochs": [3]},
        quantization=["float32", "int8-qat"]), "s.yaml", tmp_path)
    knobs = knobs_from_spec(spec)
    space = search_space(knobs)
    assert {f"channels_conv{i}" for i in range(1, 7)} <= set(space)
    assert space["criterion"] == ["l1", "l2"] and space["retrain_epochs"] == [0, 2]
    assert space["sparsity"] == [0.0, 0.9] and "sparsity_epochs" not in space   # one value
    params = {k: v[-1] for k, v in space.items()} | {"channels_conv2": 8}
    cfg = config_from_params(knobs, params)
    assert cfg.channels == (32, 8, 32, 32, 32, 32) and cfg.channels_per == "layer"
    assert (cfg.criterion, cfg.retrain_epochs, cfg.sparsity, cfg.sparsity_epochs) == (
        "l2", 2, 0.9, 3)
    mk = model_knobs(spec, cfg)
    assert mk.layer_channels == cfg.channels and mk.channels is None and mk.format == "int8"
    full = config_from_params(knobs, {**params, "channels_conv2": 32})
    assert full.channels is None and "sparsity=0.9" in full.describe()
    # per: ratio and per: global
    spec = parse_spec(_spec_data(channels={"per": "ratio", "values": [0.25, 1]}), "s", tmp_path)
    knobs = knobs_from_spec(spec)
    assert search_space(knobs)["keep_ratio"] == [0.25, 1.0]
    extra = {k: v[0] for k, v in search_space(knobs).items() if k.startswith(("sparsity", "magnitude"))}
    assert config_from_params(knobs, {**extra, "keep_ratio": 0.25, "quantization": "int8",
                                      "opt_level": "-O3", "converter": "mcusearch",
                                      "board": "qemu-m7"}).keep_ratio == 0.25
    # the default search keeps its space (a knob with one value is not a dimension)
    spec = parse_spec(_spec_data(), "s", tmp_path)
    assert "criterion" not in search_space(knobs_from_spec(spec))


@pytest.mark.parametrize("knobs, where, words", [
    ({"channels": {"per": "ratio", "values": [0.5, 1.5]}}, "knobs.channels.values", "(0, 1]"),
    ({"channels": {"per": "pair", "values": [8.5]}}, "knobs.channels.values", "integers"),
    ({"channels": {"per": "pair", "values": [8], "criterion": ["l3"]}},
     "knobs.channels.criterion[0]", "l1"),
    ({"channels": {"per": "pair", "values": [8], "retrain_epochs": [-1]}},
     "knobs.channels.retrain_epochs", "0 (no re-training)"),
    ({"magnitude": {"sparsity": [0.5, 1.0]}}, "knobs.magnitude.sparsity", "0.99"),
    ({"magnitude": {"sparsity": [0.5], "epochs": [0]}}, "knobs.magnitude.epochs", "between 1"),
    ({"quantization": ["float32", "int16x8"]}, "knobs.quantization[1]", "int16x8"),
    ({"quantization": ["int8", "int4"]}, "knobs.quantization[1]", "int8-qat"),
])
def test_bad_model_knobs_name_the_key(knobs, where, words, tmp_path):
    from mcusearch.spec import parse_spec
    with pytest.raises(SpecError) as e:
        parse_spec(_spec_data(**knobs), "s.yaml", tmp_path)
    assert e.value.where == where, str(e.value)
    assert words in e.value.message, str(e.value)


def test_spec_reads_a_user_models_convs_without_tensorflow(tmp_path):
    from mcusearch.knobs import knobs_from_spec, search_space
    from mcusearch.spec import parse_spec
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bn_model().save(tmp_path / "bn.h5", save_format="h5")
    data = _spec_data(channels={"per": "layer", "values": [2, 4, 8]})
    data["model"] = {"path": "bn.h5"}
    spec = parse_spec(data, "s.yaml", tmp_path)
    space = search_space(knobs_from_spec(spec))
    assert space["channels_c1"] == space["channels_c2"] == [2, 4, 8]
    data["knobs"]["channels"]["values"] = [16]
    with pytest.raises(SpecError) as e:
        parse_spec(data, "s.yaml", tmp_path)
    assert e.value.where == "knobs.channels.values"


def _trial_spec(tmp_path: Path, **constraints):
    from mcusearch.spec import parse_spec
    data = _spec_data(channels={"per": "pair", "values": [8, 32]},
                      quantization=["float32", "int8"])
    data["dataset"].update(max_train=800, max_test=300)
    data["model"]["train"]["epochs"] = 1
    data["constraints"].update(constraints)
    data["search"].update(run_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"),
                          sampler="random", n_trials=3)
    return parse_spec(data, "s.yaml", tmp_path)


def test_early_rejection_before_any_training(tmp_path):
    from mcusearch.knobs import TrialConfig
    from mcusearch.trial import check_feasible, model_knobs, run_trial
    spec = _trial_spec(tmp_path, flash_kb=100, ram_kb=30)
    cfg = lambda **kw: TrialConfig(**{"channels": None, "quantization": "float32",  # noqa: E731
                                      "opt_level": "-O3", "converter": "mcusearch",
                                      "board": "qemu-m7", **kw})
    with pytest.raises(Infeasible) as e:               # 65,968 float32 kernel weights > 100 kB
        run_trial(spec, cfg(), tmp_path / "t0")
    assert e.value.constraint == "flash_kb" and "257.7 kB" in e.value.message
    c = cfg(quantization="int8")                       # 64.4 kB of int8 weights, 18.75 kB RAM
    ok = check_feasible(spec, c, model_knobs(spec, c))
    assert "conv1" in ok["lower_bounds"]
    with pytest.raises(Infeasible) as e:               # float32 conv1 output: 37.5 kB > 30 kB
        c = cfg(channels=(16, 16, 16))
        check_feasible(spec, c, model_knobs(spec, c))
    assert e.value.constraint == "ram_kb" and "conv1" in e.value.message
    with pytest.raises(Infeasible) as e:               # the generator takes no int16x8 model
        c = cfg(quantization="int16x8")
        check_feasible(spec, c, model_knobs(spec, c))
    assert e.value.constraint == "converter"
    # nothing was trained: the base model is not in the cache, only footprints
    info = ModelCache(spec.cache_dir).info()["kinds"]
    assert info["base"]["entries"] == 0 and info["footprint"]["entries"] >= 2


def test_the_study_records_infeasible_trials_as_such(tmp_path):
    import optuna
    from mcusearch.study import run_study
    spec = _trial_spec(tmp_path, flash_kb=1)           # nothing fits 1 kB
    summary = run_study(spec, progress=False)
    assert [r.status for r in summary.records] == ["infeasible"] * 3
    assert all("flash" in r.error for r in summary.records)
    study = optuna.load_study(study_name="mcusearch", storage=spec.storage_url)
    assert {t.state for t in study.trials} == {optuna.trial.TrialState.PRUNED}
    assert ModelCache(spec.cache_dir).info()["kinds"]["base"]["entries"] == 0
