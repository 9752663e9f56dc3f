"""A user's model file in: Keras 3 .keras, tf-keras .h5 and SavedModel, .tflite; unsafe and
broken files refused (mcusearch.model.load)."""
from __future__ import annotations

import numpy as np
import pytest

import mcusearch  # noqa: F401  (tf-keras for tf.keras)
import tensorflow as tf

from mcusearch.errors import SpecError
from mcusearch.model.load import (MATCH_TOL, TfliteBase, describe_tflite, load_base,
                                  load_user_model)

keras3 = pytest.importorskip("keras")


def _k3_functional():
    """Conv2D stride 2 + BatchNorm + ReLU, DepthwiseConv2D, a 1x1 conv, a residual Add,
    MaxPool, GlobalAveragePooling, Dropout, Dense softmax (Keras 3)."""
    L = keras3.layers
    inp = keras3.Input((12, 12, 2), name="image")
    x = L.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="stem")(inp)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(name="stem_relu")(x)
    y = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    y = L.Conv2D(8, 1, activation="relu", name="pw")(y)
    x = L.Add(name="residual")([x, y])
    x = L.MaxPooling2D(name="pool")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dropout(0.3, name="drop")(x)
    out = L.Dense(5, activation="softmax", name="head")(x)
    m = keras3.Model(inp, out, name="dscnn_like")
    rng = np.random.default_rng(1)
    bn = m.get_layer("stem_bn")  # non-trivial statistics, so BatchNorm really is checked
    bn.set_weights([rng.uniform(0.5, 1.5, 8), rng.normal(size=8), rng.normal(size=8),
                    rng.uniform(0.5, 2, 8)])
    return m


def _k3_sequential():
    """Conv1D, MaxPooling1D, Flatten, Dense, Dropout, Dense head (Keras 3 Sequential)."""
    L = keras3.layers
    return keras3.Sequential([keras3.Input((40, 3)), L.Conv1D(6, 5, activation="relu"),
                              L.MaxPooling1D(), L.Flatten(), L.Dense(16, activation="relu"),
                              L.Dropout(0.2), L.Dense(4)], name="seq1d")


def _k3_branches():
    """Squeeze-and-excite (Multiply), Concatenate, SeparableConv2D, ZeroPadding2D, relu6,
    Rescaling, AveragePooling2D, Reshape, LayerNormalization (Keras 3)."""
    L = keras3.layers
    inp = keras3.Input((16, 16, 8))
    x = L.SeparableConv2D(8, 3)(L.ZeroPadding2D(1)(inp))
    s = L.GlobalAveragePooling2D(keepdims=True)(x)
    s = L.Dense(8, activation="sigmoid")(L.Dense(2, activation="relu")(s))
    x = L.Concatenate()([L.Multiply()([x, s]), L.Conv2D(4, 1)(inp)])
    x = L.Rescaling(0.5)(L.Activation("relu6")(x))
    x = L.LayerNormalization()(L.Reshape((-1,))(L.AveragePooling2D(2)(x)))
    return keras3.Model(inp, L.Dense(3)(x))


def _same_outputs(saved, loaded, seed=0):
    x = np.random.default_rng(seed).normal(size=(6, *saved.input_shape[1:])).astype(np.float32)
    ref = np.asarray(saved(x, training=False))
    got = loaded.predict(x, verbose=0)
    return float(np.max(np.abs(got - ref)))


def _k3_wrappers():
    """Wrapper layers and attention (Keras 3): Bidirectional GRU (concatenated), TimeDistributed
    Dense, a self-attention MultiHeadAttention."""
    L = keras3.layers
    keras3.utils.set_random_seed(4)
    inp = keras3.Input((10, 6))
    x = L.TimeDistributed(L.Dense(8))(inp)
    x = L.Add()([x, L.MultiHeadAttention(num_heads=2, key_dim=4)(x, x)])
    x = L.Bidirectional(L.GRU(5))(x)
    return keras3.Model(inp, L.Dense(3)(x))


@pytest.mark.parametrize("build", [_k3_functional, _k3_sequential, _k3_branches, _k3_wrappers])
def test_keras3_file_rebuilt_in_tf_keras(build, tmp_path):
    assert keras3.__version__.startswith("3.")  # the pinned Keras 3, next to tf-keras
    m = build()
    p = tmp_path / "m.keras"
    m.save(p)
    loaded = load_user_model(p)
    assert isinstance(loaded, tf.keras.Model) and not isinstance(loaded, keras3.Model)
    assert _same_outputs(m, loaded) < 1e-5
    assert loaded.count_params() == m.count_params()
    names3 = [l.name for l in m.layers if not isinstance(l, keras3.layers.InputLayer)]
    assert names3 == [l.name for l in loaded.layers
                      if not isinstance(l, tf.keras.layers.InputLayer)]
    # the rebuilt model saves and reloads as the stage caches it (tf-keras .h5)
    from mcusearch.model.stage import save_keras
    save_keras(loaded, tmp_path / "again.h5")
    assert _same_outputs(m, tf.keras.models.load_model(tmp_path / "again.h5")) < MATCH_TOL


def test_keras3_h5_file(tmp_path):
    m = _k3_functional()
    p = tmp_path / "k3.h5"
    m.save(p)  # Keras 3's legacy HDF5 format: a Keras 3 config tf-keras cannot read itself
    assert _same_outputs(m, load_user_model(p)) < 1e-5


def _tf_model():
    L = tf.keras.layers
    inp = tf.keras.Input((10, 10, 1))
    x = L.Conv2D(4, 3, padding="same", use_bias=False)(inp)
    x = L.BatchNormalization()(x)
    x = L.ReLU()(x)
    y = L.DepthwiseConv2D(3, padding="same")(x)
    x = L.Add()([x, y])
    x = L.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inp, L.Dense(3, activation="softmax")(x))


@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")
@pytest.mark.parametrize("fmt", ["h5", "tf", "keras"])
def test_tf_keras_files(fmt, tmp_path):
    m = _tf_model()
    p = tmp_path / {"h5": "m.h5", "tf": "saved", "keras": "m.keras"}[fmt]
    m.save(p, save_format=fmt)
    loaded = load_user_model(p)
    assert _same_outputs(m, loaded) == 0.0


def _marker_lambda(marker):
    # The code a hostile file would carry: it writes a file when the layer is called.
    return eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).touch(), x)[1]")


@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")
@pytest.mark.parametrize("saver", ["tf_keras_h5", "tf_keras_savedmodel", "keras3"])
def test_lambda_refused_without_trust_code_and_never_run(saver, tmp_path):
    marker = tmp_path / "ran"
    if saver == "keras3":
        inp = keras3.Input((4,))
        out = keras3.layers.Dense(2)(keras3.layers.Lambda(_marker_lambda(marker))(inp))
        p = tmp_path / "lam.keras"
        keras3.Model(inp, out).save(p)
    else:
        inp = tf.keras.Input((4,))
        out = tf.keras.layers.Dense(2)(tf.keras.layers.Lambda(_marker_lambda(marker))(inp))
        p = tmp_path / ("lam.h5" if saver == "tf_keras_h5" else "lam_savedmodel")
        tf.keras.Model(inp, out).save(p, save_format="h5" if saver == "tf_keras_h5" else "tf")
    marker.unlink()  # building the model ran it; loading must not
    with pytest.raises(SpecError) as e:
        load_user_model(p)
    assert e.value.where == "model.path" and e.value.source == str(p)
    assert "Lambda" in e.value.message and "model.trust_code: true" in e.value.message
    assert not marker.exists()
    # trusted: Keras' own loaders with safe mode off
    loaded = load_user_model(p, trust_code=True)
    assert loaded.output_shape == (None, 2)


def test_custom_layer_class_named(tmp_path):
    @keras3.saving.register_keras_serializable(package="mine")
    class Twice(keras3.layers.Layer):
        def call(self, x):
            return 2 * x

    inp = keras3.Input((3,))
    p = tmp_path / "custom.keras"
    keras3.Model(inp, keras3.layers.Dense(2)(Twice(name="twice")(inp))).save(p)
    for trust in (False, True):
        with pytest.raises(SpecError) as e:
            load_user_model(p, trust_code=trust)
        assert e.value.where == "model.path"
        assert "'twice'" in e.value.message and "'Twice'" in e.value.message
    # a Python function named in the file (its code is not there): refused, naming it
    def swishy(x):
        return x * keras3.ops.sigmoid(x)

    p = tmp_path / "act.keras"
    keras3.Model(inp, keras3.layers.Dense(2, activation=swishy, name="d")(inp)).save(p)
    with pytest.raises(SpecError, match="layer 'd' uses 'swishy', which is not part of Keras"):
        load_user_model(p, trust_code=True)


@pytest.mark.parametrize("name, content", [
    ("text.keras", b"not a model\n"), ("text.h5", b"not a model either\n"),
    ("empty.h5", b""), ("model.onnx", b"\x08\x01"), ("bad.tflite", b"garbage" * 10)])
def test_broken_files_one_error_naming_the_file(name, content, tmp_path):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(SpecError) as e:
        load_base(p)
    assert e.value.where == "model.path" and e.value.source == str(p)
    assert "\n" not in str(e.value)


def test_truncated_files(tmp_path):
    m = _k3_sequential()
    whole = tmp_path / "whole.keras"
    m.save(whole)
    for suffix, src in ((".keras", whole),):
        cut = tmp_path / f"cut{suffix}"
        data = src.read_bytes()
        cut.write_bytes(data[: len(data) // 2])
        with pytest.raises(SpecError) as e:
            load_user_model(cut)
        assert e.value.where == "model.path" and e.value.source == str(cut)
    h5 = tmp_path / "whole.h5"
    _tf_model().save(h5, save_format="h5")
    cut = tmp_path / "cut.h5"
    cut.write_bytes(h5.read_bytes()[:3000])
    with pytest.raises(SpecError) as e:
        load_user_model(cut)
    assert e.value.where == "model.path"
    missing = tmp_path / "folder"
    missing.mkdir()
    with pytest.raises(SpecError, match="SavedModel"):
        load_user_model(missing)


def test_tflite_described_not_loaded(tmp_path):
    from mcusearch.model.quantize import to_int8_tflite

    m = _tf_model()
    flt = tmp_path / "f.tflite"
    flt.write_bytes(tf.lite.TFLiteConverter.from_keras_model(m).convert())
    q = tmp_path / "q.tflite"
    to_int8_tflite(m, np.random.default_rng(0).normal(size=(16, 10, 10, 1)).astype(np.float32), q)
    for p, quant, dtype in ((flt, "float32", "float32"), (q, "int8", "int8")):
        b = load_base(p)
        assert isinstance(b, TfliteBase) and describe_tflite(p) == b
        assert (b.path, b.quantization, b.input_shape, b.output_shape, b.input_dtype,
                b.output_dtype) == (p, quant, (10, 10, 1), (3,), dtype, dtype)
        # conv 3x3 1->4 on 10x10 (3,600), depthwise 3x3 x 4 on 10x10 (3,600), dense 4->3 (12)
        assert b.macs == 3600 + 3600 + 12
        assert b.largest_activation_bytes == 10 * 10 * 4 * (4 if quant == "float32" else 1)
        with pytest.raises(SpecError):
            load_user_model(p)


# ---------------------------------------------------------------------------------------------
# the stage: a model file is the base as given
# ---------------------------------------------------------------------------------------------

def test_model_file_is_the_base_as_given(tmp_path):
    from mcusearch.model import (ArchitectureConfig, BaseModelConfig, DatasetConfig,
                                 TrainConfig, base_model)
    from mcusearch.model.cache import ModelCache
    from mcusearch.model.evaluate import keras_accuracy

    rng = np.random.default_rng(0)
    data = tmp_path / "d.npz"
    x_train, x_test = (rng.normal(size=(n, 12, 12, 2)).astype(np.float32) for n in (40, 30))
    np.savez(data, x_train=x_train, y_train=np.arange(40) % 5, x_test=x_test,
             y_test=np.arange(30) % 5)
    m = _k3_functional()
    p = tmp_path / "mine.keras"
    m.save(p)
    ref = [np.asarray(w) for w in m.get_weights()]
    acc = float(np.mean(np.argmax(np.asarray(m(x_test, training=False)), 1)
                        == np.arange(30) % 5))

    def cfg(epochs):
        return BaseModelConfig(dataset=DatasetConfig("npz", path=data),
                               architecture=ArchitectureConfig(name=None, path=p),
                               train=TrainConfig(epochs=epochs, batch_size=16))

    model, ds, key = base_model(cfg(0), tmp_path / "cache")
    meta = ModelCache(tmp_path / "cache").meta("base", key)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), ref))
    assert meta["accuracy"] == pytest.approx(acc) == keras_accuracy(model, ds.x_test, ds.y_test)
    assert meta["trained_epochs"] == 0 and meta["history"] == {}
    assert "as given" in meta["accuracy_figure"]["method"]
    assert meta["accuracy_figure"]["provenance"] == "host"
    # fine-tuning is explicit: train.epochs given for a model file
    tuned, _, key1 = base_model(cfg(1), tmp_path / "cache")
    assert key1 != key
    assert not all(np.array_equal(a, b) for a, b in zip(tuned.get_weights(), ref))
    assert "fine-tuned 1 epochs" in ModelCache(tmp_path / "cache").meta(
        "base", key1)["accuracy_figure"]["method"]


def test_tflite_base_used_as_it_is(tmp_path):
    from mcusearch.model import (ArchitectureConfig, BaseModelConfig, DatasetConfig, ModelKnobs,
                                 build_model, candidate_footprint)
    from mcusearch.model.quantize import to_int8_tflite

    rng = np.random.default_rng(0)
    data = tmp_path / "d.npz"
    x_train, x_test = (rng.normal(size=(n, 10, 10, 1)).astype(np.float32) for n in (40, 30))
    y_test = np.arange(30) % 3
    np.savez(data, x_train=x_train, y_train=np.arange(40) % 3, x_test=x_test, y_test=y_test)
    q = tmp_path / "given.tflite"
    to_int8_tflite(_tf_model(), x_train, q)
    cfg = BaseModelConfig(dataset=DatasetConfig("npz", path=data),
                          architecture=ArchitectureConfig(name=None, path=q))
    # the model knobs do not apply: the file is the model
    r = build_model(cfg, ModelKnobs(channels=(2,), quantization="float32", sparsity=0.5),
                    tmp_path / "cache", out_dir=tmp_path / "trial")
    assert r.keras_path is None and r.tflite_path == tmp_path / "trial" / "given.tflite"
    assert r.tflite_path.read_bytes() == q.read_bytes() and r.quantization == "int8"
    it = tf.lite.Interpreter(model_path=str(q))
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    scale, zp = i["quantization"]
    pred = []
    for x in x_test:
        it.set_tensor(i["index"], np.clip(np.round(x[None] / scale) + zp, -128, 127)
                      .astype(np.int8))
        it.invoke()
        pred.append(int(np.argmax(it.get_tensor(o["index"]))))
    assert r.accuracy == pytest.approx(float(np.mean(np.array(pred) == y_test)))
    assert "as given" in r.extra["accuracy_figure"]["method"]
    assert r.macs == 3600 + 3600 + 12 and len(r.probe_inputs) == len(r.probe_labels) == 15
    assert r.extra["probe_tflite_outputs"].dtype == np.int8
    fp = candidate_footprint(cfg, ModelKnobs(), tmp_path / "cache")
    assert fp.format == "int8" and fp.activation_bytes == 400
