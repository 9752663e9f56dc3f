"""Row kernels for the layers that used to run whole in the optimised generator (issue 14):
depthwise convolutions with depth multiplier > 1 (a channel repeat + the multiplier-1 kernels),
zero padding folded into the following convolution (or the ``pad`` row kernel), and
concatenation on channels and nearest-neighbour resizing as row layers (a resize read only by a
concatenation folded into it).

float32: generated C vs Keras within the converter's tolerance; int8: bit-exact with the TFLite
interpreter, on the host (portable C, strict flags) and in QEMU (Cortex-M7, -O3). Shapes are odd
on purpose: odd channel counts, odd sizes, stride 2, 'same' and 'valid', asymmetric pads.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import test_convert as tc
from mcusearch.convert import convert
from mcusearch.convert.frontend import graph_from_tflite
from mcusearch.convert.graph import Conv2D, DepthwiseConv2D
from mcusearch.convert.lowering import ConcatNearest, RepeatChannels, lower_for_rows
from mcusearch.convert.ops.shape import Pad, ResizeNearest

L = tc.L
HAVE_ARM = bool(shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm"))


def dm_model():
    """Depth multipliers 2 and 3 on 3 and 5 channels, 'same' stride 1 and 'valid' stride 2."""
    inp = tc.tf.keras.Input((9, 7, 3))
    x = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, activation="relu", name="dw_x2")(inp)
    x = L.Conv2D(5, 1, name="pw")(x)
    x = L.DepthwiseConv2D(3, strides=2, depth_multiplier=3, name="dw_x3_s2")(x)
    x = L.Flatten()(x)
    return tc.tf.keras.Model(inp, L.Dense(3, name="fc")(x))


def pad_model():
    """Pads folded into a stride-2 conv and a depthwise conv, a pad before a max-pool (not
    foldable: the pad row kernel), a pad of the channels too (row kernel, per-pixel fill) and a
    pad wider than the next kernel (row kernel)."""
    inp = tc.tf.keras.Input((11, 9, 3))
    x = L.ZeroPadding2D(((2, 1), (1, 2)), name="pad_a")(inp)                  # 14 x 12
    x = L.Conv2D(5, 5, strides=2, activation="relu", name="conv_s2")(x)       # 5 x 4
    x = L.ZeroPadding2D(((0, 1), (1, 0)), name="pad_b")(x)                    # 6 x 5
    x = L.DepthwiseConv2D(2, name="dw_valid")(x)                              # 5 x 4
    x = L.ZeroPadding2D(1, name="pad_pool")(x)                                # 7 x 6
    x = L.MaxPooling2D(2, name="pool")(x)                                     # 3 x 3 x 5
    x = L.Lambda(lambda t: tc.tf.pad(t, [[0, 0], [1, 0], [0, 2], [2, 1]]),
                 name="pad_chan")(x)                                          # 4 x 5 x 8
    x = L.ZeroPadding2D(3, name="pad_wide")(x)                                # 10 x 11 x 8
    x = L.Conv2D(3, 3, strides=2, name="conv_wide")(x)                        # 4 x 5
    x = L.Flatten()(x)
    return tc.tf.keras.Model(inp, L.Dense(3, name="fc")(x))


def concat_model():
    """A U-Net-like join: a skip of 3 channels, a branch of 5, upsampled (2 x 3 and 2 x 2) and
    concatenated on channels with the model input as a third input, then a conv."""
    inp = tc.tf.keras.Input((8, 6, 3))
    e = L.Conv2D(3, 3, padding="same", activation="relu", name="enc")(inp)
    d = L.MaxPooling2D(2, name="down")(e)                                      # 4 x 3
    d = L.Conv2D(5, 3, padding="same", activation="relu", name="mid")(d)
    u = L.UpSampling2D(2, name="up")(d)                                        # 8 x 6
    x = L.Concatenate(name="skip")([u, e, inp])                                # 8 x 6 x 11
    x = L.Conv2D(4, 3, strides=2, padding="same", name="dec")(x)
    y = L.UpSampling2D((3, 2), name="up_odd")(x)                               # 12 x 6
    y = L.Conv2D(2, 1, name="mask")(y)
    return tc.tf.keras.Model(inp, L.Flatten()(y))


MODELS = {"dm": dm_model, "pad": pad_model, "concat": concat_model}
# the kernels each model's plan must use (and no reference fallback anywhere)
KERNELS = {"dm": {"repeat_channels"}, "pad": {"pad"}, "concat": {"concat", "resize_nearest"}}


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    d = tmp_path_factory.mktemp("rows")
    out = {}
    for name, build in MODELS.items():
        tc.tf.keras.utils.set_random_seed(7)
        m = tc._random_biases(build(), 7)
        out[name] = (m, tc.to_int8(m, d / f"{name}.tflite"), d / name)
    return out


def _convert(case, quant, where, n=None):
    m, tfl, d = case
    w = d / f"{where}_{quant}"
    x = tc.probes(m.input_shape[1:], n=n or tc.N_PROBE, seed=3)
    mr = tc.model_result(m, w, quant, tfl if quant == "int8" else None, x=x)
    return convert(mr, "mcusearch", w / "c"), w


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("quant", ["int8", "float32"])
def test_rows_host(cases, name, quant):
    """Bit-exact (int8) / within tolerance (float32) on the host; every layer a row kernel."""
    conv, w = _convert(cases[name], quant, "host", n=120 if quant == "int8" else None)
    tc.check(conv, w)
    plan = json.loads((w / "c" / "plan.json").read_text())
    kernels = {lay["kernel"] for lay in plan["layers"]}
    assert KERNELS[name] <= kernels
    assert not [lay["name"] for lay in plan["layers"] if lay["variant"] == "fallback"]


def test_lowering_folds_pads_and_splits_multipliers(cases):
    """What the rewrite does to the graphs: pad_a and pad_b fold (zero point / 0.0, within the
    kernel), pad_pool (a max-pool reads it), pad_chan (channels) and pad_wide (3 > kernel - 1)
    stay; each depth
    multiplier becomes a repeat before a multiplier-1 depthwise conv with the same weights."""
    g = graph_from_tflite(cases["pad"][1])
    low = lower_for_rows(g)
    assert [op.name for op in g.ops if isinstance(op, Pad)] and g.ops != low.ops
    kept = [op for op in low.ops if isinstance(op, Pad)]
    assert len(kept) == 3 and len([op for op in g.ops if isinstance(op, Pad)]) == 5
    convs = [op for op in low.ops if isinstance(op, (Conv2D, DepthwiseConv2D))]
    assert convs[0].in_shape == (11, 9, 3) and convs[0].pad == (2, 1)
    assert convs[1].in_shape == (5, 4, 5) and convs[1].pad == (0, 1)
    assert convs[2].pad == (0, 0)                       # pad_wide not folded
    g = graph_from_tflite(cases["dm"][1])
    low = lower_for_rows(g)
    reps = [op for op in low.ops if isinstance(op, RepeatChannels)]
    assert [op.repeats for op in reps] == [2, 3]
    dws = [op for op in low.ops if isinstance(op, DepthwiseConv2D)]
    assert [op.depth_multiplier for op in dws] == [1, 1]
    assert [op.in_shape for op in dws] == [(9, 7, 6), (9, 7, 15)]
    orig = [op for op in g.ops if isinstance(op, DepthwiseConv2D)]
    assert all(np.array_equal(a.weights, b.weights) for a, b in zip(orig, dws))
    assert [op.depth_multiplier for op in orig] == [2, 3]      # the caller's graph is unchanged


def test_concat_and_resize_stream(cases):
    """The U-Net join streams: the upsampling read by the concatenation is folded into it (no
    "up" layer: the concatenation reads "mid" through the resize's tables), the other resize
    (read by a conv) stays a row layer, and the skip tensor and the concatenation live in line
    buffers of a few rows, not as whole 8-row maps."""
    g = lower_for_rows(graph_from_tflite(cases["concat"][1]))
    cat = next(op for op in g.ops if isinstance(op, ConcatNearest))
    assert [m is not None for m in cat.resize] == [True, False, False]
    assert cat.resize[0] == ((0, 0, 1, 1, 2, 2, 3, 3), (0, 0, 1, 1, 2, 2))
    assert [op.name for op in g.ops if isinstance(op, ResizeNearest)] == ["up_odd"]
    conv, w = _convert(cases["concat"], "int8", "plan")
    plan = json.loads((w / "c" / "plan.json").read_text())
    rows = {lay["name"]: lay["extra"]["ring_rows"] for lay in plan["layers"]}
    assert "up" not in rows and rows["enc"] < 8 and rows["skip"] < 8 and rows["mid"] < 4
    assert plan["layers"][[lay["name"] for lay in plan["layers"]].index("skip")]["extra"]["calls"] == 8


@pytest.mark.skipif(not HAVE_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm")
@pytest.mark.parametrize("quant", ["int8", "float32"])
def test_rows_in_qemu_m7(cases, quant):
    from test_codegen_fast import run_on
    for name in MODELS:
        conv, w = _convert(cases[name], quant, "qemu")
        _, meas = run_on("qemu-m7", conv, w)       # raises unless the outputs match conv.expected
        assert meas is not None
