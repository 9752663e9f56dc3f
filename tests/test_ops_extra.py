"""DepthwiseConv2D, AveragePooling2D and Add (residual connections) through both mcusearch
generators.

float32: generated C (host gcc) vs Keras within the converter's tolerance; int8: bit-exact with the
TFLite interpreter's built-in DEPTHWISE_CONV_2D / AVERAGE_POOL_2D kernels, on the host for
"mcusearch-ref" and "mcusearch", and in QEMU (Cortex-M7) for "mcusearch" through build() + measure().
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import test_convert as tc
from mcusearch.convert import convert
from mcusearch.convert.frontend import graph_from_keras, graph_from_tflite
from mcusearch.convert.graph import Add, AvgPool2D, DepthwiseConv2D

L = tc.L
HAVE_ARM = bool(shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm"))
LAYERS = ["conv (Conv2D)", "dw_same (DepthwiseConv2D)", "avg_same (AvgPool2D)",
          "dw_s2 (DepthwiseConv2D)", "avg_valid (AvgPool2D)", "dw_valid (DepthwiseConv2D)",
          "logits (Dense)"]


def dw_avg_cnn(seed=2):
    """conv -> depthwise 3x3 same relu -> avgpool 3/2 same (padding not counted) -> depthwise 3x3
    stride 2 same (asymmetric padding), relu6, no bias -> avgpool 2 valid (drops a row) ->
    depthwise (2, 1) valid linear -> flatten -> dense softmax."""
    tc.tf.keras.utils.set_random_seed(seed)
    model = tc.tf.keras.Sequential([
        L.InputLayer((14, 11, 2)),
        L.Conv2D(4, 3, padding="same", activation="relu", name="conv"),          # 14x11x4
        L.DepthwiseConv2D(3, padding="same", activation="relu", name="dw_same"),  # 14x11x4
        L.AveragePooling2D(3, strides=2, padding="same", name="avg_same"),        # 7x6x4
        L.DepthwiseConv2D(3, strides=2, padding="same", use_bias=False, name="dw_s2"),  # 4x3x4
        L.ReLU(max_value=6.0, name="relu6"),                                      # fused
        L.AveragePooling2D(2, name="avg_valid"),                                  # 2x1x4
        L.DepthwiseConv2D((2, 1), name="dw_valid"),                               # 1x1x4
        L.Flatten(name="flatten"),
        L.Dense(4, activation="softmax", name="logits"),
    ])
    return tc._random_biases(model, seed)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    d = tmp_path_factory.mktemp("ops_extra")
    m = dw_avg_cnn()
    return m, tc.to_int8(m, d / "m.tflite"), d


def test_graph_front_ends(case):
    m, tfl, _ = case
    for g in (graph_from_keras(m), graph_from_tflite(tfl)):
        dws = [op for op in g.ops if isinstance(op, DepthwiseConv2D)]
        avgs = [op for op in g.ops if isinstance(op, AvgPool2D)]
        assert [op.out_shape for op in dws] == [(14, 11, 4), (4, 3, 4), (1, 1, 4)]
        assert [op.weights.shape for op in dws] == [(1, 3, 3, 4), (1, 3, 3, 4), (1, 2, 1, 4)]
        assert (dws[1].stride, dws[1].pad) == ((2, 2), (1, 0))     # 6 wide: the extra column after
        assert [(op.pool, op.stride, op.pad, op.out_shape) for op in avgs] == [
            ((3, 3), (2, 2), (0, 1), (7, 6, 4)), ((2, 2), (2, 2), (0, 0), (2, 1, 4))]
        if g.dtype == "float32":
            assert dws[1].bias is None and dws[1].act == (0.0, 6.0) and dws[0].act == (0.0, float("inf"))
            assert dws[0].macs == 14 * 11 * 4 * 9
        else:
            assert all(op.requant.per_channel for op in dws)


@pytest.mark.parametrize("converter", ["mcusearch-ref", "mcusearch"])
@pytest.mark.parametrize("quant", ["float32", "int8"])
def test_depthwise_avgpool_host(case, converter, quant):
    m, tfl, d = case
    w = d / f"{converter}_{quant}"
    # 300 int8 probes: enough that the depthwise requantisation meets negative ties, where
    # TFLite's depthwise rounding (away from zero) differs from its conv rounding (up)
    x = tc.probes(m.input_shape[1:], n=300 if quant == "int8" else tc.N_PROBE, seed=11)
    mr = tc.model_result(m, w, quant, tfl if quant == "int8" else None, x=x)
    conv = convert(mr, converter, w / "c")
    tc.check(conv, w)        # int8 bit-exact with TFLite, float32 within tolerance of Keras
    assert conv.layers == LAYERS + ["logits/softmax (Softmax)"]
    names = {p.name for p in conv.sources}
    sfx = "f32" if quant == "float32" else "s8"
    if converter == "mcusearch-ref":
        assert {f"depthwise_conv2d_{sfx}.c", f"avgpool2d_{sfx}.c"} <= names
    else:
        assert {f"dwconv2d_{sfx}.c", f"avgpool2d_{sfx}.c"} <= names
        plan = (w / "c" / "plan.json").read_text()
        assert '"kernel": "dwconv2d_' in plan


def test_depthwise_avgpool_fast_row_fusion(case):
    """The planner row-fuses depthwise convolutions and average pools like Conv2D / MaxPool2D:
    no full-resolution 14x11 map is materialised after the first convolution."""
    m, _, d = case
    from mcusearch.convert.fast import emit_fast
    em = emit_fast(graph_from_keras(m), d / "fuse")
    rings = em.plan.ring_rows
    assert rings[1] == 3 and rings[2] < 14        # conv: 3 rows for dw_same; dw_same: avgpool's window
    assert em.plan.schedule.count(4) == 2         # avg_valid's 2 rows only


@pytest.mark.skipif(not HAVE_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm")
@pytest.mark.parametrize("quant", ["int8", "float32"])
def test_depthwise_avgpool_fast_in_qemu_m7(case, quant):
    from test_codegen_fast import run_on
    m, tfl, d = case
    w = d / f"qemu_{quant}"
    mr = tc.model_result(m, w, quant, tfl if quant == "int8" else None)
    conv = convert(mr, "mcusearch", w / "c")
    _, meas = run_on("qemu-m7", conv, w)       # raises unless the outputs match conv.expected
    assert meas is not None


@pytest.mark.parametrize("quant", ["float32", "int8"])
def test_depthwise_multiplier_2(tmp_path, quant):
    """depth_multiplier 2 (output channel c reads input channel c / 2): the reference kernel in
    mcusearch-ref; in mcusearch a channel repeat and the multiplier-1 row kernel
    (mcusearch/convert/lowering.py)."""
    tc.tf.keras.utils.set_random_seed(0)
    m = tc.tf.keras.Sequential([L.InputLayer((6, 5, 3)), L.DepthwiseConv2D(3, depth_multiplier=2),
                                L.Flatten(), L.Dense(2)])
    tfl = tc.to_int8(m, tmp_path / "dm2.tflite") if quant == "int8" else None
    x = tc.probes(m.input_shape[1:], n=200 if quant == "int8" else tc.N_PROBE, seed=2)
    for converter in ("mcusearch-ref", "mcusearch"):
        w = tmp_path / converter
        conv = convert(tc.model_result(m, w, quant, tfl, x=x), converter, w / "c")
        tc.check(conv, w)
    layers = json.loads((w / "c" / "plan.json").read_text())["layers"]
    assert layers[0]["kernel"] == "repeat_channels" and layers[1]["kernel"].startswith("dwconv")


# ---------------------------------------------------------------------------------------------
# Add: residual connections
# ---------------------------------------------------------------------------------------------

RES_LAYERS = ["c0 (Conv2D)", "add_in (Add)", "c1 (Conv2D)", "dw (DepthwiseConv2D)", "c2 (Conv2D)",
              "add_res (Add)", "avg (AvgPool2D)", "logits (Dense)"]


def residual_cnn(seed=4):
    """inp -> c0 -> add(inp, c0) -> c1 relu -> dw relu -> c2 -> add(c1, c2) -> relu -> avgpool ->
    flatten -> dense softmax: one residual from the model input, one around two layers."""
    tc.tf.keras.utils.set_random_seed(seed)
    inp = tc.tf.keras.Input((10, 7, 3))
    c0 = L.Conv2D(3, 3, padding="same", name="c0")(inp)
    a0 = L.Add(name="add_in")([inp, c0])
    c1 = L.Conv2D(4, 3, padding="same", activation="relu", name="c1")(a0)
    d = L.DepthwiseConv2D(3, padding="same", activation="relu", name="dw")(c1)
    c2 = L.Conv2D(4, 1, name="c2")(d)
    a1 = L.Add(name="add_res")([c2, c1])
    r = L.ReLU(name="relu")(a1)
    p = L.AveragePooling2D(2, name="avg")(r)
    out = L.Dense(3, activation="softmax", name="logits")(L.Flatten(name="flatten")(p))
    return tc._random_biases(tc.tf.keras.Model(inp, out), seed)


@pytest.fixture(scope="module")
def res_case(tmp_path_factory):
    d = tmp_path_factory.mktemp("residual")
    m = residual_cnn()
    return m, tc.to_int8(m, d / "m.tflite"), d


@pytest.mark.parametrize("converter", ["mcusearch-ref", "mcusearch"])
@pytest.mark.parametrize("quant", ["float32", "int8"])
def test_residual_add_host(res_case, converter, quant):
    m, tfl, d = res_case
    w = d / f"{converter}_{quant}"
    x = tc.probes(m.input_shape[1:], n=300 if quant == "int8" else tc.N_PROBE, seed=11)
    mr = tc.model_result(m, w, quant, tfl if quant == "int8" else None, x=x)
    conv = convert(mr, converter, w / "c")
    tc.check(conv, w)
    assert conv.layers == RES_LAYERS + ["logits/softmax (Softmax)"]


def test_residual_graph_front_ends(res_case):
    m, tfl, _ = res_case
    for g in (graph_from_keras(m), graph_from_tflite(tfl)):
        adds = [op for op in g.ops if isinstance(op, Add)]
        c1 = next(op for op in g.ops if op.name == "c1")
        assert [op.name for op in adds] == ["add_in", "add_res"]
        assert g.input_id in adds[0].inputs and c1.output in adds[1].inputs
        if g.dtype == "int8":
            q = adds[1].quant
            assert q.left_shift == 20 and q.prev_shift <= 0 and q.skip_shift <= 0
            assert adds[0].act == (-128, 127)
            assert adds[1].act == (max(-128, q.output_offset), 127)      # the fused ReLU
        else:
            assert adds[0].act == (-float("inf"), float("inf"))
            assert adds[1].act == (0.0, float("inf"))


def test_residual_fast_plan_keeps_the_residual_rows(res_case):
    """c1's output is read by dw (3 rows) and, later, by add_res: its ring holds what both need
    (check_plan replays the schedule), and the reference arena keeps it alive up to the Add."""
    m, _, d = res_case
    from mcusearch.convert import cgen
    from mcusearch.convert.fast import emit_fast
    g = graph_from_keras(m)
    em = emit_fast(g, d / "plan")
    assert 3 <= em.plan.ring_rows[3] < 10
    mp = cgen.plan_memory(g)
    life = cgen.lifetimes(g)
    c1 = next(op for op in g.ops if op.name == "c1").output
    add_res = next(op for op in g.compute_ops if op.name == "add_res")
    assert life[c1][1] == g.compute_ops.index(add_res)
    for t, (a, b) in life.items():                 # no tensor live with c1 shares its bytes
        if t != c1 and mp.offsets[t] >= 0 and not (b < life[c1][0] or life[c1][1] < a):
            assert (mp.offsets[t] + mp.sizes[t] <= mp.offsets[c1]
                    or mp.offsets[c1] + mp.sizes[c1] <= mp.offsets[t])


@pytest.mark.skipif(not HAVE_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm")
@pytest.mark.parametrize("quant", ["int8", "float32"])
def test_residual_fast_in_qemu_m7(res_case, quant):
    from test_codegen_fast import run_on
    m, tfl, d = res_case
    w = d / f"qemu_{quant}"
    mr = tc.model_result(m, w, quant, tfl if quant == "int8" else None)
    run_on("qemu-m7", convert(mr, "mcusearch", w / "c"), w)


def test_add_of_a_pre_activation_tensor(tmp_path):
    """c's output is read before (Add) and after (c2) a ReLU: TFLite keeps the ReLU apart."""
    tc.tf.keras.utils.set_random_seed(0)
    inp = tc.tf.keras.Input((6, 5, 2))
    c = L.Conv2D(2, 3, padding="same", name="c")(inp)
    r = L.ReLU(name="r")(c)
    c2 = L.Conv2D(2, 3, padding="same", name="c2")(r)
    m = tc.tf.keras.Model(inp, L.Flatten()(L.Add(name="a")([c2, c])))
    for converter in ("mcusearch-ref", "mcusearch"):
        w = tmp_path / converter
        tc.check(convert(tc.model_result(m, w), converter, w / "c"), w)


# ---------------------------------------------------------------------------------------------
# depthwise rounding per channel: TFLite's built-in kernel requantises channels [0, 8 floor(C/8))
# in its 8-lane vector loop (ties up) and the last C % 8 in its scalar loop (ties away)
# ---------------------------------------------------------------------------------------------

def dw_only(channels, seed=6):
    """A linear depthwise layer (no clamp to hide the rounding) that is the model's output."""
    tc.tf.keras.utils.set_random_seed(seed)
    model = tc.tf.keras.Sequential([
        L.InputLayer((9, 7, channels)),
        L.DepthwiseConv2D(3, padding="same", name="dw"),
        L.DepthwiseConv2D(3, strides=2, name="dw_s2"),
        L.Flatten(name="flatten"),
    ])
    return tc._random_biases(model, seed)


@pytest.fixture(scope="module", params=[8, 13, 20])
def dw_wide(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(f"dw{request.param}")
    m = dw_only(request.param)
    return m, tc.to_int8(m, d / "m.tflite"), d


@pytest.mark.parametrize("converter", ["mcusearch-ref", "mcusearch"])
def test_depthwise_rounding_per_channel_host(dw_wide, converter):
    m, tfl, d = dw_wide
    w = d / converter
    x = tc.probes(m.input_shape[1:], n=300, seed=12)
    conv = convert(tc.model_result(m, w, "int8", tfl, x=x), converter, w / "c")
    tc.check(conv, w)                                 # bit-exact with TFLite, every channel


@pytest.mark.skipif(not HAVE_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm")
def test_depthwise_rounding_per_channel_in_qemu_m7(dw_wide):
    from test_codegen_fast import run_on
    m, tfl, d = dw_wide
    w = d / "qemu"
    x = tc.probes(m.input_shape[1:], n=60, seed=12)
    conv = convert(tc.model_result(m, w, "int8", tfl, x=x), "mcusearch", w / "c")
    run_on("qemu-m7", conv, w)                        # raises unless bit-exact with TFLite


# ---------------------------------------------------------------------------------------------
# int8 softmax: TFLite's float look-up-table kernel, bit-exact, under every optimisation level
# ---------------------------------------------------------------------------------------------

def softmax_net(classes, gain, seed=7):
    """Dense -> Dense softmax; ``gain`` scales the last layer so that its logits (and the softmax's
    input scale) are wide: at 30 the table ends in 32 subnormals and 57 zeros."""
    tc.tf.keras.utils.set_random_seed(seed)
    model = tc.tf.keras.Sequential([L.InputLayer((12,)), L.Dense(16, activation="relu", name="hidden"),
                                    L.Dense(classes, activation="softmax", name="logits")])
    w, b = model.layers[-1].get_weights()
    model.layers[-1].set_weights([w * gain, b])
    return model


@pytest.fixture(scope="module", params=[(4, 1.0), (10, 30.0)], ids=["4cls", "10cls_wide"])
def sm_case(request, tmp_path_factory):
    classes, gain = request.param
    d = tmp_path_factory.mktemp(f"softmax{classes}")
    m = softmax_net(classes, gain)
    return m, tc.to_int8(m, d / "m.tflite"), d


@pytest.mark.parametrize("converter", ["mcusearch-ref", "mcusearch"])
def test_int8_softmax_host(sm_case, converter):
    m, tfl, d = sm_case
    w = d / converter
    conv = convert(tc.model_result(m, w, "int8", tfl, x=tc.probes((12,), n=300, seed=3)), converter, w / "c")
    assert conv.output_meaning == "int8 softmax probabilities"
    assert conv.layers[-1] == "logits/softmax (Softmax)"
    got = tc.check(conv, w)                     # bit-exact with the interpreter's SOFTMAX output
    assert len(np.unique(got)) > 20             # the probabilities spread, not saturated


@pytest.mark.skipif(not HAVE_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm")
@pytest.mark.parametrize("board,opt", [("qemu-m4", "-Ofast"), ("qemu-m3", "-O0"), ("qemu-m7", "-Os")])
def test_int8_softmax_in_qemu(sm_case, board, opt):
    from test_codegen_fast import run_on
    m, tfl, d = sm_case
    w = d / f"qemu{opt}"
    conv = convert(tc.model_result(m, w, "int8", tfl, x=tc.probes((12,), n=60, seed=3)), "mcusearch",
                   w / "c")
    run_on(board, conv, w, opt=opt)            # raises unless bit-exact with TFLite
