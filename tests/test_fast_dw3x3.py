"""The int8 depthwise 3 x 3 kernel dwconv3x3_s8 (issue 14): prepared input columns (two kernel
rows as int16 pairs for SMLAD), one asm block per 4-channel group, per-group data precomputed by
the generator (fastdata.dw3x3_s8_groups).

The group data against its definition; the kernel choice by shape in plan.json; bit-exact with the
TFLite interpreter on the host (where it calls dwconv2d_s8) and in QEMU on a Cortex-M7 (the
assembly): stride 1 and 2, SAME and VALID, odd and even widths (the phantom pixel), channel counts
4, 6 and 13 (an overlapping last group; 13 also mixes TFLite's two roundings: 8 vector lanes,
5 scalar ones), a ReLU6 clamp. The per-layer profile shows the path ran: DS-CNN's depthwise shape
(25 x 5 x 64) under 2.6 instructions a MAC (7.08 with dwconv2d_s8, 3.76 with the previous
pixel-pair kernel).
"""
from __future__ import annotations

import json

import numpy as np
import pytest

import test_convert as tc
from test_fast_kernels import arm
from mcusearch.convert import convert, layout
from mcusearch.convert.fastdata import DW3_GROUP_WORDS, dw3x3_s8_groups, dw_kernel
from mcusearch.convert.frontend import graph_from_tflite
from mcusearch.convert.graph import DepthwiseConv2D

L = tc.L


def dw_chain(channels: int, width: int, seed: int = 3):
    """1x1 conv -> dw same relu6 -> dw stride 2 same -> dw valid -> dw stride 2 valid."""
    tc.tf.keras.utils.set_random_seed(seed)
    model = tc.tf.keras.Sequential([
        L.InputLayer((11, width, 3)),
        L.Conv2D(channels, 1, activation="relu", name="pw"),
        L.DepthwiseConv2D(3, padding="same", name="dw1"),
        L.ReLU(max_value=6.0, name="relu6"),
        L.DepthwiseConv2D(3, strides=2, padding="same", activation="relu", name="dw2"),
        L.DepthwiseConv2D(3, padding="valid", name="dw3"),
        L.DepthwiseConv2D(3, strides=2, padding="valid", name="dw4"),
    ])
    return tc._random_biases(model, seed)


def _int8(model, d, n):
    d.mkdir(parents=True, exist_ok=True)
    tfl = tc.to_int8(model, d / "m.tflite")
    x = tc.probes(model.input_shape[1:], n=n, seed=9)
    return tfl, convert(tc.model_result(model, d, "int8", tfl, x=x), "mcusearch", d / "c")


def _dw_ops(tfl) -> list[DepthwiseConv2D]:
    return [op for op in graph_from_tflite(tfl).compute_ops if isinstance(op, DepthwiseConv2D)]


def test_group_data_definition(tmp_path):
    """Words against mcus_dwrq_make's formula (zp - act_min for zp) and the kernel's order, per
    group: initial accumulators, per kx the 6 weight words of the prepared column's order, then
    the requantisation."""
    tfl, _ = _int8(dw_chain(13, 9), tmp_path, 20)
    op = _dw_ops(tfl)[0]
    g = dw3x3_s8_groups(op).astype(np.int64)
    assert g.shape == (len(layout.dw_groups(13)), DW3_GROUP_WORDS)
    w = np.asarray(op.weights).astype(np.int64).reshape(3, 3, 13)
    rq = op.requant
    halves = lambda v: [int(np.int16(v & 0xFFFF)), int(np.int16((v >> 16) & 0xFFFF))]
    for row, c in zip(g, layout.dw_groups(13)):
        sums = w[:, :, c:c + 4].sum(axis=(0, 1))
        want = [int(op.bias[c + j]) - int(rq.input_zero_point) * int(sums[j]) for j in (0, 2, 1, 3)]
        assert row[:4].tolist() == want
        for kx in range(3):
            words = row[4 + 6 * kx: 10 + 6 * kx]
            for half, (a, b) in enumerate(((0, 2), (1, 3))):
                pa, pb, last = words[3 * half: 3 * half + 3]
                assert halves(pa) == [w[0, kx, c + a], w[1, kx, c + a]]
                assert halves(pb) == [w[0, kx, c + b], w[1, kx, c + b]]
                assert halves(last) == [w[2, kx, c + a], w[2, kx, c + b]]
        zp = int(rq.output_zero_point) - int(op.act[0])
        for j in range(4):
            m, hi, s, lo, k = row[22 + 5 * j: 27 + 5 * j]
            r = -int(np.broadcast_to(rq.shift, (13,))[c + j])
            assert s == r - 1 and (k & 0xFFFFFFFF) == (0 if c + j < 8 else 2**31)
            const = (int(hi) << 32) | (int(lo) & 0xFFFFFFFF)
            assert const == 2**30 + (1 + 2 * zp) * 2**(30 + r) - (k & 0xFFFFFFFF)


@pytest.mark.parametrize("channels,width", [(13, 9), (6, 10)])
def test_dw3x3_s8_host_bit_exact_and_plan(tmp_path, channels, width):
    tfl, conv = _int8(dw_chain(channels, width), tmp_path, 200)
    tc.check(conv, tmp_path)                        # raises unless bit-exact with the interpreter
    plan = json.loads((tmp_path / "c" / "plan.json").read_text())
    dws = [la for la in plan["layers"] if la["kind"] == "DepthwiseConv2D"]
    assert [la["kernel"] for la in dws] == [dw_kernel(op, False) for op in _dw_ops(tfl)]
    assert [la["kernel"] for la in dws] == ["dwconv3x3_s8"] * 4


@arm
def test_dw3x3_s8_in_qemu_m7(tmp_path):
    from test_codegen_fast import run_on
    for channels, width in ((13, 9), (6, 10), (4, 11)):
        d = tmp_path / f"dw{channels}"
        _, conv = _int8(dw_chain(channels, width), d, tc.N_PROBE)
        run_on("qemu-m7", conv, d)                  # raises unless the outputs match


@arm
def test_dw3x3_s8_cost_in_qemu_m7(tmp_path):
    """DS-CNN's depthwise shape: the layer's own count (markers) per MAC."""
    from test_codegen_fast import run_on
    tc.tf.keras.utils.set_random_seed(4)
    m = tc._random_biases(tc.tf.keras.Sequential([
        L.InputLayer((25, 5, 64)), L.DepthwiseConv2D(3, padding="same", name="dw")]), 4)
    _, conv = _int8(m, tmp_path, tc.N_PROBE)
    _, meas = run_on("qemu-m7", conv, tmp_path)
    (_, count), = [lc for lc in meas.layer_counts if lc[0].startswith("dw")]
    per_mac = count / (25 * 5 * 64 * 9)
    print(f"depthwise 25x5x64: {per_mac:.3f} instructions/MAC")
    assert per_mac < 2.6, per_mac
