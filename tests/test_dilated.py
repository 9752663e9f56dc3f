"""Dilated convolutions (a TCN's causal Conv1D, Conv2D and DepthwiseConv2D with dilation_rate):
the front end makes the dilated kernel dense, zeros between the taps (graph.dilate_kernel); the
optimised generator runs a float32 Conv2D, and an int8 one whose input channels are a multiple
of 4, on its real taps (fast._Emitter.dilated_taps).

float32 within the converter's tolerance of Keras, int8 bit-exact with the TFLite interpreter,
both generators on the host and the optimised one on the emulated Cortex-M7; the graph's MACs
count the real taps, as Keras' do.
"""
from __future__ import annotations

import numpy as np
import pytest

import test_convert as tc
from mcusearch.convert import fast
from mcusearch.convert.graph import Conv2D, DepthwiseConv2D, dilate_kernel
from mcusearch.convert.frontend import graph_from_keras, graph_from_tflite
from test_ops_shape import HAVE_ARM, check_both_generators, conv_result, lower

tf = tc.tf
L = tc.L


def tcn(seed=0):
    """Causal Conv1D with dilations 1, 2 and 4 and residual Adds (a temporal convolutional
    network on a 3-axis sensor)."""
    tf.keras.utils.set_random_seed(seed)
    i = tf.keras.Input((64, 3))
    x = L.Conv1D(8, 1, name="proj")(i)
    for d in (1, 2, 4):
        y = L.Conv1D(8, 3, padding="causal", dilation_rate=d, activation="relu", name=f"tcn{d}")(x)
        x = L.Add(name=f"res{d}")([x, y])
    x = L.GlobalAveragePooling1D()(x)
    return tf.keras.Model(i, L.Dense(4, activation="softmax", name="fc")(x), name="tcn")


def dilated2d(seed=1):
    """Conv2D dilation 2 ('same') and 3 ('valid'), DepthwiseConv2D dilation 2 ('same')."""
    tf.keras.utils.set_random_seed(seed)
    i = tf.keras.Input((12, 12, 3))
    x = L.Conv2D(8, 3, padding="same", dilation_rate=2, activation="relu", name="c2")(i)
    x = L.DepthwiseConv2D(3, padding="same", dilation_rate=2, name="dw2")(x)
    x = L.Conv2D(6, (3, 2), padding="valid", dilation_rate=(3, 2), name="c3")(x)
    return tf.keras.Model(i, L.Dense(3, name="fc")(L.Flatten()(x)), name="dilated2d")


MODELS = {"tcn": tcn, "dilated2d": dilated2d}


def test_dilate_kernel_spreads_the_taps():
    w = np.arange(1, 1 + 2 * 2 * 3 * 1, dtype=np.int8).reshape(2, 2, 3, 1)
    d = dilate_kernel(w, (3, 2))
    assert d.shape == (2, 4, 5, 1)
    np.testing.assert_array_equal(d[:, ::3, ::2], w)
    assert np.count_nonzero(d) == w.size


def lowered(name: str, dtype: str, layout: str, d):
    """(graph, inputs, expected) in the default converter's layout ("rows": 1-D maps as 1 x T
    rows) or mcusearch-lowmem's ("columns": T x 1, graph_from_tflite's default)."""
    m = MODELS[name]()
    g, x, want = lower(m, dtype, d)
    if layout == "rows":
        g = (graph_from_keras(m, columns=False) if dtype == "float32" else
             graph_from_tflite(d / f"{m.name}.tflite", columns=False))
    return g, x, want


@pytest.mark.parametrize("layout", ["rows", "columns"])
@pytest.mark.parametrize("dtype", ["float32", "int8"])
@pytest.mark.parametrize("name", list(MODELS))
def test_dilated_models_both_generators_on_host(tmp_path, name, dtype, layout):
    """In the columns layout the TCN's residual Adds read (T, C) sums of T x 1 maps (planned
    whole: fast.plan_layers)."""
    g, x, want = lowered(name, dtype, layout, tmp_path)
    dilated = [op for op in g.ops if isinstance(op, (Conv2D, DepthwiseConv2D))
               and op.dilation != (1, 1)]
    assert len(dilated) == {"tcn": 2, "dilated2d": 3}[name]
    if name == "tcn":                  # the layout asked for: 1 x T rows or T x 1 columns
        assert {op.in_shape[0 if layout == "rows" else 1] for op in dilated} == {1}
    keras_macs = {"tcn": 64 * 8 * 3 + 3 * 64 * 8 * 3 * 8 + 8 * 4,             # proj, tcn*, fc
                  "dilated2d": (12 * 12 * 8 * 27 + 12 * 12 * 8 * 9           # c2, dw2
                                + 6 * 10 * 6 * 3 * 2 * 8 + 6 * 10 * 6 * 3)}[name]  # c3, fc
    assert g.macs == keras_macs
    check_both_generators(g, x, want, tmp_path)


@pytest.mark.skipif(not HAVE_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm")
def test_tcn_int8_in_qemu_m7(tmp_path):
    """The TCN built by "mcusearch" on the emulated Cortex-M7 (its dilated layers through
    conv2d_s8's dilated im2col): measure() raises unless every output equals the
    interpreter's."""
    from test_codegen_fast import run_on
    g, x, want = lowered("tcn", "int8", "rows", tmp_path)
    em = fast.emit_fast(g, tmp_path / "c")
    # the dilated layers (8 input channels) run conv2d_s8 on their real taps, read d apart
    infos = {i.name: i for i in em.infos}
    for name in ("tcn2", "tcn4"):
        assert (infos[name].kernel, infos[name].variant) == ("conv2d_s8", "dense")
        assert infos[name].weights == 8 * 3 * 8
    conv = conv_result("mcusearch", em, g, x[:4], want[:4])
    _, meas = run_on("qemu-m7", conv, tmp_path)
    assert meas.max_abs_error == 0


# the weights of each dilated Conv2D's real taps, out x kh x kw x in (the dense kernel's zeros out)
REAL_TAPS = {"tcn": {"tcn2": 8 * 3 * 8, "tcn4": 8 * 3 * 8},
             "dilated2d": {"c2": 8 * 3 * 3 * 3, "c3": 6 * 3 * 2 * 8}}


@pytest.mark.skipif(not HAVE_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm")
@pytest.mark.parametrize("name,layout",
                         [("tcn", "rows"), ("tcn", "columns"), ("dilated2d", "rows")])
def test_float32_dilated_on_real_taps_in_qemu_m7(tmp_path, name, layout):
    """float32 dilated Conv2D layers run conv2d_f32's dilated entry on their real taps, read d
    apart (mcus_fast_conv_f32_t's dh1, dw1): 4-pixel tiles (tcn rows), the 2-pixel tile (c3: 10
    columns) and the lone pixel (tcn columns: 1 column, the taps rows apart); measure() raises
    unless every output is within 1e-4 of Keras'."""
    from test_codegen_fast import run_on
    g, x, want = lowered(name, "float32", layout, tmp_path)
    em = fast.emit_fast(g, tmp_path / "c")
    infos = {i.name: i for i in em.infos}
    dilated = {op.name: op for op in g.ops if isinstance(op, Conv2D) and op.dilation != (1, 1)}
    assert set(dilated) == set(REAL_TAPS[name])
    for lname, op in dilated.items():
        info = infos[lname]
        assert (info.kernel, info.variant) == ("conv2d_f32", "dense")
        assert info.extra["dilation"] == tuple(op.dilation)
        assert info.weights == REAL_TAPS[name][lname] < op.weights.size
    model_c = (tmp_path / "c" / "model.c").read_text()
    assert model_c.count("{ mcus_fast_conv2d_dilated_f32, &") == len(dilated)
    conv = conv_result("mcusearch", em, g, x, want)
    _, meas = run_on("qemu-m7", conv, tmp_path)
    assert meas.max_abs_error <= 1e-4


@pytest.mark.parametrize("layout", ["rows", "columns"])
def test_causal_pads_fold_into_the_convolutions(tmp_path, layout):
    """A causal Conv1D's PAD of the squeezed (T, C) sequence, which the convolution reads through
    a reshape as 1 x T (or T x 1), becomes the convolution's own padding in the optimised
    generator's graph (lowering.fold_pads): (K - 1) d cells before, none after."""
    from mcusearch.convert.lowering import lower_for_rows
    g, _, _ = lowered("tcn", "int8", layout, tmp_path)
    assert sum(op.kind == "Pad" for op in g.ops) == 3
    low = lower_for_rows(g)
    assert not any(op.kind == "Pad" for op in low.ops)
    pads = [op.pad for op in low.ops if isinstance(op, Conv2D) and op.kernel != (1, 1)]
    want = [(0, 2), (0, 4), (0, 8)] if layout == "rows" else [(2, 0), (4, 0), (8, 0)]
    assert pads == want
