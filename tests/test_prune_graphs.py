"""Channel pruning on real graph shapes: DS-CNN, ResNet-8 with projection shortcuts, MobileNetV1
and V2 (keras.applications, weights=None, 96x96), a concatenation, squeeze-and-excite, Conv1D.

Every surgery is checked against an oracle that does not use the channel analysis: the original
model with the removed filters set to zero, and every BatchNorm / depthwise channel whose input
became exactly zero (and was not zero before) shifted so that it outputs zero. Pruning must give
the same outputs. Random weights, no training (seconds per model).
"""
from __future__ import annotations

import numpy as np
import pytest

import mcusearch  # noqa: F401  (tf-keras before TensorFlow)
import tensorflow as tf
from mcusearch.errors import SpecError
from mcusearch.model import ModelKnobs, normalise_knobs

L = tf.keras.layers


# ---------------------------------------------------------------------------------------------
# small versions of the zoo's models (random weights)
# ---------------------------------------------------------------------------------------------

def _randomise(model: tf.keras.Model, seed: int = 0) -> tf.keras.Model:
    rng = np.random.default_rng(seed)
    new = []
    for v in model.weights:
        shape = tuple(v.shape)
        if "moving_variance" in v.name:
            new.append(rng.uniform(0.5, 1.5, shape))
        elif "gamma" in v.name:
            new.append(rng.uniform(0.5, 1.5, shape))
        elif "beta" in v.name:
            new.append(rng.normal(scale=0.1, size=shape))
        else:
            new.append(rng.normal(scale=0.3, size=shape))
    model.set_weights([w.astype(np.float32) for w in new])
    return _calibrate(model)


def _calibrate(model: tf.keras.Model) -> tf.keras.Model:
    """Set every BatchNorm's moving statistics to those of its input on random data (one
    training-mode pass with momentum 0), as training would: random statistics leave many
    channels constant after BatchNorm (dead after ReLU), which no trained model has."""
    bns = [l for l in model.layers if isinstance(l, L.BatchNormalization)]
    for bn in bns:
        bn.momentum = 0.0
    model(_x(model, 32, seed=7), training=True)
    for bn in bns:
        bn.momentum = 0.99
    return model


def _cbr(x, filters, kernel, name, strides=1, relu=True):
    x = L.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=name)(x)
    x = L.BatchNormalization(name=f"{name}_bn")(x)
    return L.ReLU(name=f"{name}_relu")(x) if relu else x


def ds_cnn() -> tf.keras.Model:
    """MLPerf Tiny's DS-CNN shape, small: conv 10x4 stride 2, two depthwise-separable blocks,
    average pooling, Flatten, Dense."""
    i = tf.keras.Input((49, 10, 1), name="x")
    x = L.Dropout(0.2)(_cbr(i, 12, (10, 4), "conv1", strides=2))
    for k in (1, 2):
        x = L.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"dw{k}")(x)
        x = L.ReLU()(L.BatchNormalization(name=f"dw{k}_bn")(x))
        x = _cbr(x, 12, 1, f"pw{k}")
    x = L.Flatten()(L.AveragePooling2D((5, 5))(x))
    return _randomise(tf.keras.Model(i, L.Dense(4, name="out")(x)))


def resnet8() -> tf.keras.Model:
    """MLPerf Tiny's ResNet-8 shape, narrow: a stem, an identity stack, two stacks with a 1x1
    stride-2 projection shortcut."""
    i = tf.keras.Input((16, 16, 3), name="x")
    x = _cbr(i, 4, 3, "stem")
    y = _cbr(_cbr(x, 4, 3, "s1a"), 4, 3, "s1b", relu=False)
    x = L.ReLU()(L.Add(name="add1")([x, y]))
    for s, f in ((2, 6), (3, 8)):
        y = _cbr(_cbr(x, f, 3, f"s{s}a", strides=2), f, 3, f"s{s}b", relu=False)
        p = L.Conv2D(f, 1, strides=2, name=f"s{s}p")(x)
        x = L.ReLU()(L.Add(name=f"add{s}")([p, y]))
    x = L.Flatten()(L.AveragePooling2D(4)(x))
    return _randomise(tf.keras.Model(i, L.Dense(4, name="out")(x)))


def concat_se() -> tf.keras.Model:
    """Two branches concatenated, a depthwise conv over the concatenation, and a
    squeeze-and-excite block (GAP, Dense, Dense, Reshape, Multiply) in a residual add."""
    i = tf.keras.Input((12, 10, 3), name="x")
    x = _cbr(i, 8, 3, "c1")
    y = _cbr(x, 8, 3, "c2", relu=False)
    s = L.GlobalAveragePooling2D()(y)
    s = L.Dense(2, activation="relu", name="se_squeeze")(s)
    s = L.Dense(8, activation="sigmoid", name="se_excite")(s)
    y = L.Multiply(name="se_scale")([y, L.Reshape((1, 1, 8))(s)])
    x = L.Add(name="add")([x, y])
    a = L.Conv2D(4, 1, name="br_a")(x)
    b = L.Conv2D(6, 3, padding="same", name="br_b")(x)
    c = L.Concatenate(name="cat")([a, b])
    c = L.DepthwiseConv2D(3, padding="same", name="dw")(c)
    c = L.BatchNormalization(name="dw_bn")(c)
    c = _cbr(c, 6, 1, "c3")
    x = L.GlobalAveragePooling2D()(c)
    return _randomise(tf.keras.Model(i, L.Dense(3, name="out")(x)))


def conv1d() -> tf.keras.Model:
    """Conv1D with BatchNorm, a 1D residual add and squeeze-and-excite by a 1x1 Conv1D."""
    i = tf.keras.Input((32, 6), name="x")
    x = L.Conv1D(8, 5, padding="same", name="k1")(i)
    x = L.ReLU()(L.BatchNormalization(name="k1_bn")(x))
    y = L.Conv1D(8, 3, padding="same", name="k2")(x)
    y = L.BatchNormalization(name="k2_bn")(y)
    s = L.GlobalAveragePooling1D(keepdims=True)(y)
    s = L.Conv1D(8, 1, activation="sigmoid", name="k_se")(s)
    y = L.Multiply()([y, s])
    x = L.MaxPooling1D(2)(L.Add()([x, y]))
    x = L.Conv1D(5, 3, padding="same", activation="relu", name="k3")(x)
    return _randomise(tf.keras.Model(i, L.Dense(3, name="out")(L.Flatten()(x))))


def mobilenet_v1() -> tf.keras.Model:
    return _randomise(tf.keras.applications.MobileNet(
        input_shape=(96, 96, 3), alpha=0.25, weights=None, classes=4, classifier_activation=None))


def mobilenet_v2() -> tf.keras.Model:
    return _randomise(tf.keras.applications.MobileNetV2(
        input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=4, classifier_activation=None))


MODELS = {"ds_cnn": ds_cnn, "resnet8": resnet8, "concat_se": concat_se, "conv1d": conv1d,
          "mobilenet_v1": mobilenet_v1, "mobilenet_v2": mobilenet_v2}


@pytest.fixture(scope="module")
def models() -> dict:
    cache: dict = {}

    def get(name: str) -> tf.keras.Model:
        if name not in cache:
            cache[name] = MODELS[name]()
        return cache[name]
    return get


def _x(model, n=4, seed=1):
    return np.random.default_rng(seed).normal(size=(n, *model.input_shape[1:])).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# the oracle: the original model with the removed channels masked to zero
# ---------------------------------------------------------------------------------------------

CARRIERS = ("BatchNormalization", "DepthwiseConv2D", "DepthwiseConv1D")


def _zero_filters(model: tf.keras.Model, delete: dict[str, list[int]]) -> None:
    for name, idx in delete.items():
        layer = model.get_layer(name)
        if type(layer).__name__ == "Dense":
            continue                                  # followers: the oracle leaves them alone
        w = layer.get_weights()
        w[0][..., idx] = 0.0
        if len(w) > 1:
            w[1][idx] = 0.0
        layer.set_weights(w)


def _zero_carriers(carriers, zero: dict[str, np.ndarray]) -> None:
    """BatchNorm gamma and beta, depthwise bias = 0 on the ``zero`` channels: output 0."""
    for layer in carriers:
        w = layer.get_weights()
        if type(layer).__name__ == "BatchNormalization":
            slots = [i for i, v in enumerate(layer.weights) if v.name.split("/")[-1].split(":")[0]
                     in ("gamma", "beta")]
        else:
            slots = [1] if layer.use_bias else []
        for i in slots:
            w[i][zero[layer.name]] = 0.0
        layer.set_weights(w)


def removed_at_carriers(model: tf.keras.Model, delete: dict[str, list[int]]) -> dict:
    """{BatchNorm or depthwise layer: mask of its channels that come from removed filters},
    found by running a copy of ``model`` in which every value is positive (weights made
    positive, BatchNorm = x + 1, positive inputs) and the removed filters are zero: a channel
    is then exactly zero only where removed filters feed it (no ReLU can kill one)."""
    det = tf.keras.models.clone_model(model)
    for src, layer in zip(model.layers, det.layers):
        w = src.get_weights()
        if type(layer).__name__ == "BatchNormalization":
            w = [np.zeros_like(v) if "moving_mean" in v_.name else np.ones_like(v)
                 for v, v_ in zip(w, layer.weights)]
        else:
            w = [np.abs(v) + 0.01 for v in w]
        layer.set_weights(w)
    _zero_filters(det, delete)
    carriers = [l for l in det.layers if type(l).__name__ in CARRIERS]
    probe = tf.keras.Model(det.inputs, [l.input for l in carriers])
    x = np.abs(_x(det, 2)) + 1.0
    zero: dict[str, np.ndarray] = {}
    for _ in range(50):
        acts = probe.predict(x, verbose=0)
        now = {l.name: np.all(a == 0, axis=tuple(range(a.ndim - 1)))
               for l, a in zip(carriers, acts)}
        if all(np.array_equal(now[n], zero.get(n)) for n in now):
            return zero
        zero = now
        _zero_carriers(carriers, zero)
    raise AssertionError("the oracle did not settle")


def masked(model: tf.keras.Model, delete: dict[str, list[int]]) -> tf.keras.Model:
    """A copy of ``model`` whose removed filters output zero, and whose BatchNorm and
    depthwise channels fed by them output zero too (:func:`removed_at_carriers`): what the
    pruned model must compute."""
    m = tf.keras.models.clone_model(model)
    m.set_weights(model.get_weights())
    zero = removed_at_carriers(model, delete)
    _zero_filters(m, delete)
    _zero_carriers([l for l in m.layers if l.name in zero], zero)
    return m


def _prune(model, keep: dict[str, int], criterion="l1"):
    from mcusearch.model.prune import channels_to_delete, remove_channels
    delete = channels_to_delete(model, keep, criterion)
    report: dict = {}
    return remove_channels(model, delete, "auto", report), delete, report


def _layout(model):
    from mcusearch.model.architectures import channel_layout
    return channel_layout(model)


# ---------------------------------------------------------------------------------------------
# groups
# ---------------------------------------------------------------------------------------------

def test_groups_of_residual_concat_se_and_depthwise_graphs(models):
    from mcusearch.model.architectures import group_lines
    from mcusearch.model.surgery import channel_graph
    r = _layout(models("resnet8"))
    assert r["groups"] == [["stem", "s1a", "s1b"], ["s2a", "s2b", "s2p"], ["s3a", "s3b", "s3p"]]
    assert r["coupled"] == [["stem", "s1b"], ["s2b", "s2p"], ["s3b", "s3p"]]   # projections too
    assert r["locked"] == []
    d = _layout(models("ds_cnn"))
    assert d["groups"] == [["conv1"], ["pw1"], ["pw2"]] and d["coupled"] == []
    g = channel_graph(models("ds_cnn"))
    assert g.unit_of("conv1").carriers == ("conv1_bn", "dw1", "dw1_bn")   # dw follows conv1
    assert g.batchnorm == {"conv1": "conv1_bn", "pw1": "pw1_bn", "pw2": "pw2_bn"}
    c = channel_graph(models("concat_se"))
    se = c.unit_of("c2")
    assert se.convs == ("c1", "c2") and se.followers == ("se_excite",)
    assert c.unit_of("se_squeeze") is None                  # a Dense alone is not pruned
    assert "dw" in c.unit_of("br_a").carriers and "dw" in c.unit_of("br_b").carriers
    k = _layout(models("conv1d"))
    assert k["convs"] == ["k1", "k2", "k_se", "k3"]
    assert k["coupled"] == [["k1", "k2", "k_se"]] and k["groups"] == [["k1", "k2", "k_se"], ["k3"]]
    lines = group_lines(models("concat_se"))
    assert lines[0] == "group 1: c1 + c2 (8 filters)"
    assert lines[1].startswith("  c1 = c2: lose the same channels")
    assert lines[2] == "  follow c1+c2: se_excite (output units), c1_bn, c2_bn"
    assert "  follow br_b: dw, dw_bn" in lines


def test_mobilenets_group_per_pointwise_conv_and_lock_the_classifier(models):
    v1 = _layout(models("mobilenet_v1"))
    assert len(v1["convs"]) == 15 and v1["locked"] == ["conv_preds"] and v1["coupled"] == []
    assert v1["groups"][:2] == [["conv1"], ["conv_pw_1"]] and len(v1["groups"]) == 15
    v2 = _layout(models("mobilenet_v2"))
    assert ["block_1_expand"] in v2["groups"]       # not with the narrower project before it
    assert ["block_1_project", "block_2_project"] in v2["coupled"]        # a residual add
    assert ["block_3_project", "block_4_project", "block_5_project"] in v2["coupled"]
    assert v2["locked"] == []
    grouped = [n for g in v2["groups"] for n in g]
    assert sorted(grouped) == sorted(v2["convs"])                        # every conv once


# ---------------------------------------------------------------------------------------------
# surgery = masked original
# ---------------------------------------------------------------------------------------------

def _half(model, layout, ratio=0.5):
    nk, _ = normalise_knobs(ModelKnobs(keep_ratio=ratio), layout)
    return {n: c for n, c in nk["keep"] if c < dict(zip(layout["convs"], layout["filters"]))[n]}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if "mobilenet" in n
                                  else n for n in MODELS])
def test_pruned_model_equals_the_masked_original(models, name):
    model = models(name)
    layout = _layout(model)
    keep = _half(model, layout)
    assert keep
    pruned, delete, report = _prune(model, keep)
    assert report["engine"] == "own"
    for conv, n in keep.items():
        assert pruned.get_layer(conv).filters == n
    assert pruned.count_params() < model.count_params()
    x = _x(model, 8)
    want = masked(model, delete).predict(x, verbose=0)
    got = pruned.predict(x, verbose=0)
    scale = max(1.0, float(np.abs(want).max()))
    assert np.allclose(got, want, rtol=1e-4, atol=1e-5 * scale), np.abs(got - want).max()
    # and the masked original really differs from the original: channels were removed
    assert not np.allclose(model.predict(x, verbose=0), want, rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.parametrize("name", ["resnet8", "conv1d"])
def test_each_knob_granularity(models, name):
    """Per layer, per group, globally and by ratio, through the knobs' own normalisation and
    the surgery: the filters asked are the filters built, coupled convs lose the same ones."""
    from mcusearch.model.prune import channels_to_delete, remove_channels
    model = models(name)
    layout = _layout(model)
    widths = dict(zip(layout["convs"], layout["filters"]))
    groups = layout["groups"]
    cases = [
        ModelKnobs(layer_channels=tuple(max(1, w - 2) for w in layout["filters"])),
        ModelKnobs(channels=tuple(min(widths[n] for n in g) - 1 for g in groups)),
        ModelKnobs(channels=(3,) * len(groups)),                     # what per: global sends
        ModelKnobs(keep_ratio=0.75, criterion="bn"),
    ]
    x = _x(model, 2)
    for knobs in cases:
        nk, adjusted = normalise_knobs(knobs, layout)
        keep = dict(nk["keep"])
        delete = channels_to_delete(model, keep, knobs.criterion)
        new = remove_channels(model, delete)
        assert [int(new.get_layer(n).filters) for n in layout["convs"]] == nk["channels"]
        assert not nk["full_width"]
        assert new.predict(x, verbose=0).shape == (2, *model.output_shape[1:])
        for c in layout["coupled"]:
            assert len({keep[n] for n in c}) == 1 and len({str(delete.get(n)) for n in c}) == 1


def test_a_squeeze_excite_follower_is_pruned_with_its_block(models):
    from mcusearch.model.prune import remove_channels, with_followers
    model = models("concat_se")
    delete = {"c1": [1, 5], "c2": [1, 5]}
    assert with_followers(model, delete)["se_excite"] == [1, 5]
    new = remove_channels(model, delete)
    assert new.get_layer("se_excite").units == 6 and new.get_layer("dw").get_weights()[0].shape[
        -2] == 10
    # pruning a concatenated branch removes its slice of the depthwise conv downstream
    new = remove_channels(model, {"br_b": [0, 2, 4]})
    assert new.get_layer("dw").get_weights()[0].shape[-2] == 7
    x = _x(model)
    want = masked(model, {"br_b": [0, 2, 4]}).predict(x, verbose=0)
    assert np.allclose(new.predict(x, verbose=0), want, atol=1e-5)


def test_locked_and_unequal_requests_are_refused(models):
    from mcusearch.model.prune import channels_to_delete
    with pytest.raises(SpecError, match="residual add") as e:
        channels_to_delete(models("resnet8"), {"s2b": 4, "s2p": 5})
    assert e.value.where == "knobs.channels"
    with pytest.raises(SpecError, match="model output"):
        channels_to_delete(models("mobilenet_v1"), {"conv_preds": 2})
    # a concatenation added to a conv ties channels in unequal numbers: locked, with the reason
    i = tf.keras.Input((6, 6, 2))
    a, b = L.Conv2D(2, 1, name="a")(i), L.Conv2D(2, 1, name="b")(i)
    c = L.Conv2D(4, 1, name="c")(i)
    m = tf.keras.Model(i, L.Flatten()(L.Add()([L.Concatenate()([a, b]), c])))
    assert _layout(m)["locked"] == ["a", "b", "c"]


# ---------------------------------------------------------------------------------------------
# the bn criterion
# ---------------------------------------------------------------------------------------------

def test_bn_criterion_removes_the_smallest_gammas_and_falls_back_to_l1(models):
    from mcusearch.model.prune import channels_to_delete, filter_scores
    model = models("resnet8")
    scores = filter_scores(model, ("s2b", "s2p"), "bn")     # the projection has no BatchNorm:
    assert np.allclose(scores, filter_scores(model, ("s2b", "s2p"), "l1"))   # the unit uses l1
    d = channels_to_delete(model, {"s1a": 2}, "bn")["s1a"]
    g = np.abs(model.get_layer("s1a_bn").gamma.numpy())
    assert d == sorted(np.argsort(g, kind="stable")[:2].tolist())
    assert np.allclose(filter_scores(model, ("stem", "s1b"), "bn"),
                       np.abs(model.get_layer("stem_bn").gamma.numpy())
                       + np.abs(model.get_layer("s1b_bn").gamma.numpy()))


def test_batchnorm_statistics_are_re_estimated_after_pruning(models):
    """After the surgery every BatchNorm's moving statistics are those of its inputs in the
    pruned model (upstream ones first, so the downstream ones see re-estimated inputs)."""
    from mcusearch.model import Dataset
    from mcusearch.model.prune import prune_channels
    model = models("ds_cnn")
    x = _x(model, 64, seed=3)
    y = np.arange(64) % 4
    data = Dataset("t", x, y, x[:8], y[:8], ("a", "b", "c", "d"))
    report: dict = {}
    new = prune_channels(model, {"conv1": 6, "pw1": 6}, data, recalibrate=64, report=report)
    assert report["recalibrated_batchnorms"] == 5
    bns = [l for l in new.layers if isinstance(l, L.BatchNormalization)]
    acts = tf.keras.Model(new.inputs, [l.input for l in bns]).predict(x, verbose=0)
    for bn, a in zip(bns, acts):
        a = a.reshape(-1, a.shape[-1]).astype(np.float64)
        assert np.allclose(bn.moving_mean.numpy(), a.mean(0), atol=1e-4), bn.name
        assert np.allclose(bn.moving_variance.numpy(), a.var(0), rtol=1e-3, atol=1e-4), bn.name
    stale = prune_channels(model, {"conv1": 6, "pw1": 6})
    assert not np.allclose(stale.get_layer("pw1_bn").moving_mean.numpy(),
                           new.get_layer("pw1_bn").moving_mean.numpy(), atol=1e-3)
