"""The fast kernels chosen per layer by shape (issue 14): ``dwconv3x3_f32`` (float depthwise 3 x 3,
4-channel groups, accumulators in FPU registers, a sliding window over pixel pairs) and ``fc_s8``
(int8 Dense without an im2col column or scratch, the input offset folded into the bias).

Layouts against their definitions; the choice and the memory it needs in plan.json; the generated C
on the host (the portable paths) and in QEMU on a Cortex-M7 (the FPU and DSP assembly): float32
within the converter's tolerance of Keras, int8 bit-exact with the TFLite interpreter.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from hypothesis import given, settings

import test_convert as tc
from test_codegen_fast import SETTINGS, chains
from mcusearch.convert import convert, layout
from mcusearch.convert.fast import emit_fast
from mcusearch.convert.fastdata import folded_bias
from mcusearch.convert.frontend import graph_from_keras, graph_from_tflite
from mcusearch.convert.graph import Dense
from mcusearch.convert.planner import PlanLayer, PlanTensor, check_plan, peak, plan, plan_min

L = tc.L
HAVE_ARM = bool(shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm"))
arm = pytest.mark.skipif(not HAVE_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm")


def test_s8_fc_weights_layout():
    """Quads of channels per 4-k chunk, then the last oc % 4 channels, then the K % 4 leftovers."""
    rng = np.random.default_rng(0)
    for oc, K in ((8, 16), (6, 13), (3, 5), (4, 3), (9, 40)):
        W = rng.integers(-128, 128, (oc, K)).astype(np.int8)
        got = layout.s8_fc_weights(W)
        nch, T, nq = K // 4, K % 4, oc // 4
        want = [W[4 * q + i, 4 * j + k] for q in range(nq) for j in range(nch) for i in range(4)
                for k in range(4)]
        want += [W[c, 4 * j + k] for c in range(4 * nq, oc) for j in range(nch) for k in range(4)]
        want += [W[c, 4 * nch + t] for c in range(oc) for t in range(T)]
        assert got.tolist() == want


def test_f32_dw3x3_weights_layout():
    """Per 4-channel group [ky][kx][4]; a last group overlapping when channels % 4 != 0."""
    assert layout.dw_groups(4) == [0] and layout.dw_groups(8) == [0, 4]
    assert layout.dw_groups(6) == [0, 2] and layout.dw_groups(10) == [0, 4, 6]
    w = np.arange(9 * 6, dtype=np.float32).reshape(1, 3, 3, 6)
    got = layout.f32_dw3x3_weights(w).reshape(2, 3, 3, 4)
    assert np.array_equal(got[0], w[0, :, :, 0:4]) and np.array_equal(got[1], w[0, :, :, 2:6])


def test_folded_bias_wraps_like_int32():
    """b - zp * sum(w), wrapped to int32 as the kernels' sums wrap."""
    from mcusearch.convert.graph import Requant
    w = np.full((2, 4), 127, np.int8)
    rq = Requant(input_zero_point=-128, output_zero_point=0, output_scale=1.0,
                 multiplier=np.array([1 << 30], np.int32), shift=np.array([-1], np.int32))
    op = Dense(name="d", inputs=[0], output=1, in_shape=(4,), out_shape=(2,), weights=w,
               bias=np.array([2**31 - 1, -5], np.int32), requant=rq)
    got = folded_bias(op).bias
    want = [(b + 128 * 508 + 2**31) % 2**32 - 2**31 for b in (2**31 - 1, -5)]
    assert got.dtype == np.int32 and got.tolist() == want
    assert op.bias.tolist() == [2**31 - 1, -5]          # the graph's op is left alone


def dw_chain(channels: int, width: int, seed: int = 4):
    """1x1 conv -> dw 3x3 same relu6 -> dw 3x3 stride 2 same -> dw 3x3 valid (linear output):
    every edge case of dwconv3x3_f32 (left/right/top/bottom edges, pixel pairs, odd pixels,
    stride 2, an upper clamp, an overlapping last channel group when channels % 4 != 0)."""
    tc.tf.keras.utils.set_random_seed(seed)
    model = tc.tf.keras.Sequential([
        L.InputLayer((9, width, 2)),
        L.Conv2D(channels, 1, activation="relu", name="pw"),
        L.DepthwiseConv2D(3, padding="same", name="dw1"),
        L.ReLU(max_value=6.0, name="relu6"),
        L.DepthwiseConv2D(3, strides=2, padding="same", activation="relu", name="dw2"),
        L.DepthwiseConv2D(3, name="dw3"),
    ])
    return tc._random_biases(model, seed)


def fc_chain(seed: int = 5):
    """Dense 37 -> 10 relu -> Dense 4: K % 4 = 1 and 2, oc % 4 = 2 and 0."""
    tc.tf.keras.utils.set_random_seed(seed)
    model = tc.tf.keras.Sequential([L.InputLayer((37,)), L.Dense(10, activation="relu", name="fc1"),
                                    L.Dense(4, name="fc2")])
    return tc._random_biases(model, seed)


def _plan(conv_dir) -> dict:
    return json.loads((conv_dir / "plan.json").read_text())


@pytest.mark.parametrize("channels,width", [(4, 5), (6, 11), (8, 8)])
def test_dwconv3x3_f32_host(tmp_path, channels, width):
    m = dw_chain(channels, width)
    mr = tc.model_result(m, tmp_path, "float32")
    conv = convert(mr, "mcusearch", tmp_path / "c")
    tc.check(conv, tmp_path)
    plan = _plan(tmp_path / "c")
    dws = [la for la in plan["layers"] if la["kind"] == "DepthwiseConv2D"]
    assert [la["kernel"] for la in dws] == ["dwconv3x3_f32"] * 3
    assert all(la["scratch_bytes"] == 0 for la in dws)


def test_fc_s8_host_and_plan(tmp_path):
    m = fc_chain()
    tfl = tc.to_int8(m, tmp_path / "m.tflite")
    x = tc.probes(m.input_shape[1:], n=200, seed=9)
    mr = tc.model_result(m, tmp_path, "int8", tfl, x=x)
    conv = convert(mr, "mcusearch", tmp_path / "c")
    tc.check(conv, tmp_path)                        # bit-exact with the interpreter
    plan = _plan(tmp_path / "c")
    assert [la["kernel"] for la in plan["layers"] if la["kind"] == "Dense"] == ["fc_s8", "fc_s8"]
    # no scratch: the arena is the one 10-byte tensor between the layers (8-byte aligned)
    assert plan["scratch_bytes"] == 0 and plan["arena_bytes"] == 16


def test_fc_s8_arena_is_the_tensors():
    """The FC auto-encoder's shape: the arena holds two 128-byte vectors, no im2col column and no
    per-channel requantisation table (conv2d_s8 would need 20 bytes per output channel)."""
    tc.tf.keras.utils.set_random_seed(1)
    m = tc.tf.keras.Sequential([L.InputLayer((640,)), L.Dense(128, activation="relu"),
                                L.Dense(128, activation="relu"), L.Dense(640)])
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as d:
        g = graph_from_tflite(tc.to_int8(m, Path(d) / "m.tflite"))
        em = emit_fast(g, Path(d) / "c")
    assert em.plan.scratch_bytes == 0 and em.arena_bytes == 256
    assert graph_from_keras(m).dtype == "float32"


@arm
def test_fast_kernels_in_qemu_m7(tmp_path):
    """The FPU and DSP assembly paths: float depthwise within tolerance, int8 Dense bit-exact."""
    from test_codegen_fast import run_on
    for channels, width in ((6, 11), (4, 5)):
        m = dw_chain(channels, width)
        w = tmp_path / f"dw{channels}"
        conv = convert(tc.model_result(m, w, "float32"), "mcusearch", w / "c")
        run_on("qemu-m7", conv, w)                  # raises unless the outputs match
    m = fc_chain()
    w = tmp_path / "fc"
    tfl = tc.to_int8(m, tmp_path / "fc.tflite")
    conv = convert(tc.model_result(m, w, "int8", tfl), "mcusearch", w / "c")
    run_on("qemu-m7", conv, w)


# ---------------------------------------------------------------------------------------------
# memory: stage boundaries (planner.plan_min) and the streamed global average pool
# ---------------------------------------------------------------------------------------------


@settings(max_examples=100, **SETTINGS)
@given(chains())
def test_plan_min_never_worse_and_valid(chain):
    """Stage boundaries are taken only where they lower the arena, and the plan stays valid."""
    layers, tensors = chain
    base = plan(layers, tensors, 64)
    planned, p = plan_min(layers, tensors, 64)
    check_plan(planned, tensors, p)
    assert p.arena_bytes <= base.arena_bytes
    assert p.schedule.count(len(layers) - 1) == layers[-1].out_rows
    assert len(p.notes) == sum("stage boundary" in s for s in p.notes)
    assert (p.arena_bytes < base.arena_bytes) == bool(p.notes)
    assert peak(p, [la.name for la in layers])[0] <= p.arena_bytes


def test_plan_min_cuts_a_long_chain_of_small_layers():
    """A big early layer then many small 3x3 layers (MobileNet's shape): the depth-first schedule
    keeps every small layer's line buffer alive with the big one's; materialising the tensor
    between the two stages lowers the peak."""

    def conv(h, s=1):
        def need(r, h=h, s=s):
            lo = r * s - 1
            return max(lo, 0), min(lo + 2, h - 1)
        return need
    tensors = [PlanTensor(32, 96), PlanTensor(16, 2048)]
    layers = [PlanLayer("big", 16, [conv(32, 2)], [0])]
    for i in range(8):
        first = i == 0                    # 16 -> 8 rows, stride 2; then 8 -> 8
        layers.append(PlanLayer(f"small{i}", 8, [conv(16 if first else 8, 2 if first else 1)],
                                [len(layers)]))
        tensors.append(PlanTensor(8, 256))
    base = plan(layers, tensors, 0)
    planned, p = plan_min(layers, tensors, 0)
    check_plan(planned, tensors, p)
    assert p.arena_bytes < base.arena_bytes and "stage boundary" in p.notes[0]


def pooled_cnn(seed: int = 6):
    """conv 3x3 -> global AveragePooling2D over the whole 7 x 5 map -> Dense: the DS-CNN tail."""
    tc.tf.keras.utils.set_random_seed(seed)
    model = tc.tf.keras.Sequential([
        L.InputLayer((7, 5, 2)), L.Conv2D(12, 3, padding="same", activation="relu", name="conv"),
        L.AveragePooling2D((7, 5), name="pool"), L.Flatten(), L.Dense(3, name="fc")])
    return tc._random_biases(model, seed)


@pytest.mark.parametrize("quant", ["int8", "float32"])
def test_streamed_global_pool_host(tmp_path, quant):
    """The pool runs once per input row: its input keeps a 1-row ring, not the whole 7 x 5 map;
    int8 bit-exact with TFLite (300 probes meet rounding ties), float32 within tolerance."""
    m = pooled_cnn()
    tfl = tc.to_int8(m, tmp_path / "m.tflite") if quant == "int8" else None
    x = tc.probes(m.input_shape[1:], n=300 if quant == "int8" else tc.N_PROBE, seed=8)
    conv = convert(tc.model_result(m, tmp_path, quant, tfl, x=x), "mcusearch", tmp_path / "c")
    tc.check(conv, tmp_path)
    plan_ = _plan(tmp_path / "c")
    pool = next(la for la in plan_["layers"] if la["kind"] == "AvgPool2D")
    sfx = "s8" if quant == "int8" else "f32"
    assert pool["kernel"] == f"avgpool_global_{sfx}" and pool["extra"]["calls"] == 7
    assert plan_["tensors"][1]["ring_rows"] == 1          # conv's output: one row at a time
    assert plan_["tensors"][2]["bytes"] == 4 * 12          # the sums: 4 bytes a channel


@arm
def test_streamed_global_pool_in_qemu_m7(tmp_path):
    from test_codegen_fast import run_on
    m = pooled_cnn()
    tfl = tc.to_int8(m, tmp_path / "m.tflite")
    conv = convert(tc.model_result(m, tmp_path / "q", "int8", tfl), "mcusearch", tmp_path / "q" / "c")
    run_on("qemu-m7", conv, tmp_path / "q")
