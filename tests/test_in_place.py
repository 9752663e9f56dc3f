"""Memory beyond tensor lifetimes (issue 14): layers that run in place or a row a call.

* Element-wise reference layers a row a call: MobileNetV3's hard-swish and hard sigmoid (TFLite
  HARD_SWISH, MUL, ADD of a constant) have no row kernel of their own, and their reference kernels
  used to run once on whole feature maps, so every map they touched existed whole. The optimised
  generator runs them one output row per call where that gives the smaller arena and their extra
  calls' set-up fits a stated budget (``fast.ROW_STREAM_SHARE`` instructions per MAC). Checked on
  the zoo's MobileNetV3 bottleneck (``mobilenet_v3_block``; qemu-m7 runs it in
  tests/test_zoo_convert.py), and that a model whose streamed layers would cost more than the
  budget (squeeze-and-excite on a 12-row map) keeps them whole.
* Element-wise layers in place: a layer overwrites an input that no later layer reads (the
  squeeze-and-excite Mul over the map its global pool read before).
* In-place depthwise (TinyEngine's trick, on rows): a 3 x 3 stride-1 int8 depthwise writes its
  output row over its input window's first row, so its output needs no ring of its own. The
  assembly kernel (qemu-m7, qemu-m4) does that directly; the portable path (the host, qemu-m3,
  -O0 builds) stages the row in the scratch area. Bit-exact on all of them.
"""
from __future__ import annotations

import json
import shutil

import pytest

import test_convert as tc
from mcusearch.convert import convert, fast
from mcusearch.model import zoo
from mcusearch.model.quantize import to_int8_tflite

HAVE_ARM = bool(shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm"))


def _convert(name: str, quant: str, d, share: float | None = None):
    model = zoo.build(name)
    x = zoo.sample_inputs(name, 3, seed=5)
    tfl = (to_int8_tflite(model, zoo.sample_inputs(name, 16, seed=9), d / "m.tflite")
           if quant == "int8" else None)
    mr = tc.model_result(model, d, quant, tfl, x=x)
    old = fast.ROW_STREAM_SHARE
    if share is not None:
        fast.ROW_STREAM_SHARE = share
    try:
        conv = convert(mr, "mcusearch", d / "c")
    finally:
        fast.ROW_STREAM_SHARE = old
    plan = json.loads((d / "c" / "plan.json").read_text())
    return conv, plan


@pytest.mark.parametrize("quant", ["int8", "float32"])
def test_hard_swish_streams_and_shrinks_the_arena(tmp_path, quant):
    conv, plan = _convert("mobilenet_v3_block", quant, tmp_path / "rows")
    tc.check(conv, tmp_path / "rows")                     # bit-exact int8 / float tolerance
    streamed = [la["name"] for la in plan["layers"] if "a row a call" in la["kernel"]]
    assert {"stem_hswish", "expand_hswish", "dw_hswish"} <= set(streamed)
    assert plan["notes"][0].startswith(f"{len(streamed)} element-wise layers a row a call")
    whole_conv, whole = _convert("mobilenet_v3_block", quant, tmp_path / "whole", share=0.0)
    assert not any("a row a call" in la["kernel"] for la in whole["layers"])
    # the expand conv's output was whole (its hard-swish read it whole); now a line buffer
    assert plan["arena_bytes"] < 0.7 * whole["arena_bytes"]
    assert conv.arena_bytes == plan["arena_bytes"]
    tc.check(whole_conv, tmp_path / "whole")


def test_over_budget_layers_stay_whole(tmp_path):
    """se_block's excite Mul on a 12 x 12 x 8 map: 11 more calls of a broadcasting Mul
    (186 + 13 x 8 instructions each) exceed 0.02 instructions per MAC of a 42,688-MAC model."""
    conv, plan = _convert("se_block", "int8", tmp_path)
    assert not any("a row a call" in la["kernel"] for la in plan["layers"])
    excite = next(la for la in plan["layers"] if la["name"] == "excite")
    assert excite["kernel"] == "mul_s8 (reference)"
    # in place: the excite Mul overwrites the conv's map its global pool read before, so the
    # peak is that map and the conv's scratch, not two maps
    assert plan["peak"]["buffers"] == ["conv: 1152", "scratch: 376"]
    tc.check(conv, tmp_path)


def dw_chain():
    """Two depthwise-separable blocks on a 12 x 10 map (16 channels: groups of 4), a 3-channel
    first depthwise (not in place: channels % 4 != 0) and a stride-2 one (not in place)."""
    import tensorflow as tf
    L = tf.keras.layers
    inp = tf.keras.Input((12, 10, 3))
    x = L.DepthwiseConv2D(3, padding="same", activation="relu", name="dw0")(inp)
    x = L.Conv2D(16, 3, padding="same", activation="relu", name="stem")(x)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu", name="dw1")(x)
    x = L.Conv2D(16, 1, activation="relu", name="pw1")(x)
    x = L.DepthwiseConv2D(3, padding="same", name="dw2")(x)
    x = L.Conv2D(16, 3, padding="same", activation="relu", name="conv3")(x)
    x = L.DepthwiseConv2D(3, strides=2, padding="same", name="dw3")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return tf.keras.Model(inp, L.Dense(4, activation="softmax", name="fc")(x))


def _dw_convert(d, in_place: bool, quant: str = "int8"):
    import numpy as np
    model = dw_chain()
    rng = np.random.default_rng(4)
    for w in model.weights:                      # weights that spread the outputs
        w.assign(rng.normal(0, 0.4, w.shape).astype("float32"))
    x = rng.uniform(-1, 1, (3, 12, 10, 3)).astype("float32")
    tfl = to_int8_tflite(model, rng.uniform(-1, 1, (16, 12, 10, 3)).astype("float32"),
                         d / "m.tflite") if quant == "int8" else None
    mr = tc.model_result(model, d, quant, tfl, x=x)
    old = fast.IN_PLACE_DW
    fast.IN_PLACE_DW = in_place
    try:
        conv = convert(mr, "mcusearch", d / "c")
    finally:
        fast.IN_PLACE_DW = old
    return conv, json.loads((d / "c" / "plan.json").read_text())


def test_in_place_depthwise_on_the_host(tmp_path):
    conv, plan = _dw_convert(tmp_path / "in", True)
    flags = {la["name"]: la["extra"].get("in_place") for la in plan["layers"]
             if la["kind"] == "DepthwiseConv2D"}
    assert flags == {"dw0": None, "dw1": True, "dw2": True, "dw3": False}, flags
    assert plan["notes"][-1].startswith("2 depthwise layers in place")
    tc.check(conv, tmp_path / "in")                  # the staged (portable) path, bit-exact
    plain, whole = _dw_convert(tmp_path / "out", False)
    assert plan["arena_bytes"] < whole["arena_bytes"]
    tc.check(plain, tmp_path / "out")


@pytest.mark.skipif(not HAVE_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm")
def test_in_place_depthwise_in_qemu(tmp_path):
    """The assembly kernel (qemu-m7 -O3, qemu-m4 -Os) and the staged portable path (qemu-m3: no
    DSP; qemu-m7 -O0: not optimised) give the interpreter's outputs."""
    from test_codegen_fast import run_on
    conv, _ = _dw_convert(tmp_path, True)
    for board, opt in (("qemu-m7", "-O3"), ("qemu-m4", "-Os"), ("qemu-m3", "-O2"),
                       ("qemu-m7", "-O0")):
        run_on(board, conv, tmp_path / board, opt)   # raises unless bit-exact


def test_float_in_place_depthwise_on_the_host(tmp_path):
    """dwconv3x3_f32 in place: the row staged in the scratch area, then copied over the input
    window's first row; the same values as without (its tiles read columns left of their first
    pixel, so writing in place directly would not be)."""
    import numpy as np
    conv, plan = _dw_convert(tmp_path / "in", True, "float32")
    flags = {la["name"]: la["extra"].get("in_place") for la in plan["layers"]
             if la["kind"] == "DepthwiseConv2D"}
    assert flags == {"dw0": None, "dw1": True, "dw2": True, "dw3": False}, flags   # dw0: 3 ch
    got = tc.check(conv, tmp_path / "in")
    plain, whole = _dw_convert(tmp_path / "out", False, "float32")
    assert plan["arena_bytes"] < whole["arena_bytes"]
    np.testing.assert_array_equal(got, tc.check(plain, tmp_path / "out"))
    note = next(n for n in plan["notes"] if n.startswith("float depthwise rows staged"))
    assert f"arena {whole['arena_bytes']:,} -> {plan['arena_bytes']:,} bytes" in note
    # the copies' cost (fast.STAGE_COST) must fit ROW_STREAM_SHARE instructions per MAC
    old = fast.ROW_STREAM_SHARE
    fast.ROW_STREAM_SHARE = 0.0
    try:
        _, over = _dw_convert(tmp_path / "over", True, "float32")
    finally:
        fast.ROW_STREAM_SHARE = old
    assert not any(la["extra"].get("in_place") for la in over["layers"])
    assert over["arena_bytes"] == whole["arena_bytes"]


@pytest.mark.skipif(not HAVE_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm")
def test_float_in_place_depthwise_in_qemu(tmp_path):
    """The FPU tiles (qemu-m7 -O3) and the C pixels (qemu-m3, soft float) in place."""
    from test_codegen_fast import run_on
    conv, _ = _dw_convert(tmp_path, True, "float32")
    for board in ("qemu-m7", "qemu-m3"):
        run_on(board, conv, tmp_path / board)      # raises unless within the float tolerance
