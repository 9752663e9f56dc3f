"""int8 kernels of DS-CNN and MobileNetV1-VWW besides the depthwise one (issue 14):

* the streamed global average pool's 4-channel SXTAB16 row sums (avgpool_global_s8.c, pool_row4);
* conv2d_s8's stored requantisation constants for narrow rows (fastdata.conv_s8_rq);
* conv2d_s8's direct columns for small-channel layers (im2col_rows_s8) and their K order
  (fastdata.k_order).

Definitions against their formulas; bit-exact with the TFLite interpreter on the host (the
portable C) and in QEMU on a Cortex-M7, M4 and M33 (the DSP assembly), on odd shapes: channel
counts 13, 7, 5, 3, 2, 1, kernel rows of 9, 4, 6 and 15 bytes, stride 2, SAME and VALID, odd
widths. The per-layer profile of DS-CNN's pool shape (25 x 5 x 64) shows the fast path ran.
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import test_convert as tc
from test_fast_kernels import arm
from mcusearch.convert import convert

L = tc.L


def pooled(h: int, w: int, channels: int, seed: int = 7):
    """conv 3x3 same relu -> global AveragePooling2D over h x w -> Dense 3."""
    tc.tf.keras.utils.set_random_seed(seed)
    model = tc.tf.keras.Sequential([
        L.InputLayer((h, w, 2)), L.Conv2D(channels, 3, padding="same", activation="relu", name="conv"),
        L.AveragePooling2D((h, w), name="pool"), L.Flatten(), L.Dense(3, name="fc")])
    return tc._random_biases(model, seed)


def _int8(model, d, n):
    d.mkdir(parents=True, exist_ok=True)
    tfl = tc.to_int8(model, d / "m.tflite")
    x = tc.probes(model.input_shape[1:], n=n, seed=9)
    return convert(tc.model_result(model, d, "int8", tfl, x=x), "mcusearch", d / "c")


def test_pool_tail_channels_host(tmp_path):
    conv = _int8(pooled(5, 9, 13), tmp_path, 300)
    tc.check(conv, tmp_path)                        # raises unless bit-exact with the interpreter
    plan = json.loads((tmp_path / "c" / "plan.json").read_text())
    assert [la["kernel"] for la in plan["layers"] if la["kind"] == "AvgPool2D"] == ["avgpool_global_s8"]


@arm
@pytest.mark.parametrize("h,w,channels", [(5, 9, 13), (25, 5, 64)])
def test_pool_in_qemu_m7(tmp_path, h, w, channels):
    from test_codegen_fast import run_on
    conv = _int8(pooled(h, w, channels), tmp_path, tc.N_PROBE)
    _, meas = run_on("qemu-m7", conv, tmp_path)      # raises unless the outputs match
    (_, count), = [lc for lc in meas.layer_counts if lc[0].startswith("pool")]
    per_value = count / (h * w * channels)
    print(f"global pool {h}x{w}x{channels}: {per_value:.3f} instructions an input value")
    if channels == 64:
        assert per_value < 3.0, per_value           # 6.4 with the scalar loop


def narrow(seed: int = 8):
    """Rows of 5 and 3 pixels, 17 and 9 rows: pointwise 12 -> 13 (odd: the last channel's z is 0;
    4, 8 or 16 input channels would take conv1x1_s8), 3 x 3 stride 2 13 -> 7 (K = 117 + kpad 3),
    1 x 1 7 -> 6 (K = 7 + kpad 1); ReLU and linear outputs."""
    tc.tf.keras.utils.set_random_seed(seed)
    model = tc.tf.keras.Sequential([
        L.InputLayer((17, 5, 12)), L.Conv2D(13, 1, activation="relu", name="pw"),
        L.Conv2D(7, 3, strides=2, padding="same", activation="relu", name="c3"),
        L.Conv2D(6, 1, name="pw2")])
    return tc._random_biases(model, seed)


def test_conv_rq_table_definition(tmp_path):
    """The stored constants equal gemm_rq's formula (mcus_rq_make's fast form, zp folded)."""
    from mcusearch.convert.fastdata import conv_s8_rq
    from mcusearch.convert.frontend import graph_from_tflite
    from mcusearch.convert.graph import Conv2D
    d = tmp_path
    tfl = tc.to_int8(narrow(), d / "m.tflite")
    ops = [op for op in graph_from_tflite(tfl).compute_ops if isinstance(op, Conv2D)]
    full = {"act_min": "-128", "act_max": "127"}
    for op, kpad in zip(ops, (0, 3, 1)):
        q = conv_s8_rq(op, kpad, full)
        assert q is not None and q.shape == (int(op.out_shape[-1]), 5)
        rq, oc = op.requant, int(op.out_shape[-1])
        for c in range(oc):
            r = -int(np.broadcast_to(rq.shift, (oc,))[c])
            m, s, lo, hi, z = (int(v) for v in q[c])
            assert m == int(np.broadcast_to(rq.multiplier, (oc,))[c]) and s == r - 1
            const = (hi << 32) | (lo & 0xFFFFFFFF)
            assert const == 2**30 + (1 + 2 * int(rq.output_zero_point)) * 2**(30 + r)
            bias = 0 if op.bias is None else int(op.bias[c])
            assert z == (0 if oc % 2 and c == oc - 1 else bias)
        assert conv_s8_rq(op, kpad, {"act_min": "-100", "act_max": "127"}) is None
        short = dataclasses.replace(op, out_shape=(7,) + tuple(op.out_shape[1:]))
        assert conv_s8_rq(short, kpad, full) is None          # fewer than RQ_TABLE_MIN_ROWS rows


@arm
def test_conv_rq_table_in_qemu_m7(tmp_path):
    """Bit-exact on the DSP path with the stored constants; plan.json says which layers have them."""
    from test_codegen_fast import run_on
    conv = _int8(narrow(), tmp_path, tc.N_PROBE)
    plan = json.loads((tmp_path / "c" / "plan.json").read_text())
    assert [bool(la["extra"].get("rq_table")) for la in plan["layers"]] == [True, True, True]
    run_on("qemu-m7", conv, tmp_path)               # raises unless the outputs match


def small_c(seed: int = 9):
    """Convolutions whose input channels are not a multiple of 4, kernel rows of 9, 4, 6 and 15
    bytes (rowb % 4 = 1, 0, 2, 3): the direct column builder (im2col_rows_s8) inside, the staged
    one at the edges; stride 2 SAME, stride 1 VALID, odd widths."""
    tc.tf.keras.utils.set_random_seed(seed)
    model = tc.tf.keras.Sequential([
        L.InputLayer((13, 17, 3)),
        L.Conv2D(5, 3, strides=2, padding="same", activation="relu", name="c3"),     # rowb 9
        L.Conv2D(1, 1, name="c1"),
        L.Conv2D(2, (3, 4), padding="same", name="c4"),                              # rowb 4
        L.Conv2D(5, 3, strides=2, padding="valid", activation="relu", name="c6"),    # rowb 6
        L.Conv2D(7, (2, 3), padding="same", name="c15")])                            # rowb 15
    return tc._random_biases(model, seed)


def test_k_order_definition(tmp_path):
    """Whole words of every kernel row first, then the rows' leftovers (TFLite's order inside)."""
    from mcusearch.convert.fastdata import k_order
    from mcusearch.convert.frontend import graph_from_tflite
    from mcusearch.convert.graph import Conv2D
    tfl = tc.to_int8(small_c(), tmp_path / "m.tflite")
    ops = [op for op in graph_from_tflite(tfl).compute_ops if isinstance(op, Conv2D)]
    assert k_order(ops[2]) is None                 # rowb 4: TFLite's order
    order = k_order(ops[0])                        # 3 rows of 9: 0-7, 9-16, 18-25, then 8, 17, 26
    assert order.tolist() == [*range(8), *range(9, 17), *range(18, 26), 8, 17, 26]
    for op in ops:
        o = k_order(op)
        if o is not None:
            assert sorted(o.tolist()) == list(range(o.size))


def test_small_channels_host(tmp_path):
    conv = _int8(small_c(), tmp_path, 200)
    tc.check(conv, tmp_path)                        # raises unless bit-exact with the interpreter


@arm
def test_small_channels_in_qemu_m7(tmp_path):
    from test_codegen_fast import run_on
    conv = _int8(small_c(), tmp_path, tc.N_PROBE)
    run_on("qemu-m7", conv, tmp_path)               # raises unless the outputs match


@arm
@pytest.mark.parametrize("board", ["qemu-m4", "qemu-m33"])
def test_other_dsp_cores(tmp_path, board):
    """The same assembly on the other DSP cores: small-channel columns, stored constants, the
    depthwise row block (13 channels: both roundings, an overlapping group; ReLU6), the pool."""
    from test_codegen_fast import run_on
    from test_fast_dw3x3 import dw_chain
    for name, model in (("small", small_c()), ("narrow", narrow()), ("dw", dw_chain(13, 9)),
                        ("pool", pooled(5, 9, 13))):
        d = tmp_path / name
        run_on(board, _int8(model, d, tc.N_PROBE), d)   # raises unless the outputs match
