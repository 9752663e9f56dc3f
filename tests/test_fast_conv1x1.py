"""conv1x1_s8 (firmware/kernels/fast/conv1x1_s8.c): int8 1 x 1 unpadded convolutions of 4, 8 or 16
input channels, without a column, the weights and the requantisation (bias, input offset and zero
point folded into its constant) in one record per output channel (fastdata.conv1x1_records).

Graphs built without TensorFlow (test_codegen_fast's Graph API); the reference generator's host
output is the oracle (bit-exact with TFLite, tests/test_convert.py). Cases: one output channel
(K = 8 on an odd width: the two-pixel loop's odd entry; K = 4 on an even one), several channels
(odd and even counts: the two-channel loop's odd entry; K = 4, 8 and 16), stride 2 (K = 16: the
assembly; K = 8: the portable path on the M7), and the layers the generator leaves to conv2d_s8
(a ReLU clamp above -128, a multiplier of 0.5 or more, a K = 12 layer). Dense layers of 4, 8 or
16 inputs without a clamp run it too, as a 1 x 1 x K map (fc_s8 spends ~20 instructions an
output on bookkeeping there), where that costs no flash for little (fast._dense_1x1). Host (portable C) and qemu-m7 (the
assembly), and a cost check of the one-channel head (conv2d_s8: ~17 instructions a MAC).
"""
from __future__ import annotations

import numpy as np
import pytest

from mcusearch.convert import fast
from mcusearch.convert.graph import Conv2D, Dense, Graph
from test_codegen_fast import HAVE_ARM, _requant, as_result, graph_inputs, reference

arm = pytest.mark.skipif(not HAVE_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm")


def _chain(seed, shape, layers, zp_in=-3):
    """layers: (name, oc, kernel, stride, act, real_hi); act "full" is [-128, 127], "relu" clamps
    at the output zero point (drawn above -128)."""
    rng = np.random.default_rng(seed)
    g = Graph(dtype="int8", input_shape=shape, source=f"conv1x1 seed {seed}")
    g.input_scale, g.input_zero_point = 0.05, zp_in
    zp = zp_in
    for name, oc, k, s, act, real_hi in layers:
        h, w, c = shape
        oh, ow = (h - k) // s + 1, (w - k) // s + 1
        rq = _requant(rng, zp, oc, real_hi=real_hi)
        if real_hi > 1:                       # a multiplier of 0.5 to 1: shift 0
            rq.shift[0] = 0
        if act == "relu":
            rq.output_zero_point = int(rng.integers(-100, 20))
        a = (-128, 127) if act == "full" else (rq.output_zero_point, 127)
        wt = rng.integers(-127, 128, (oc, k, k, c)).astype(np.int8)
        bias = rng.integers(-20000, 20000, oc).astype(np.int32) if seed % 2 == 0 or oc > 1 else None
        g.ops.append(Conv2D(name, shape, (oh, ow, oc), weights=wt, bias=bias, stride=(s, s),
                            padding="valid", pad=(0, 0), requant=rq, act=a))
        shape = (oh, ow, oc)
        zp = rq.output_zero_point
    g.output_scale, g.output_zero_point = 0.1, zp
    return g.link_chain()


def _dense_chain(seed, k, layers, zp_in=-3):
    """layers: (name, n_out, act, real_hi) as _chain's, on a vector of k values."""
    rng = np.random.default_rng(seed)
    g = Graph(dtype="int8", input_shape=(k,), source=f"dense seed {seed}")
    g.input_scale, g.input_zero_point = 0.05, zp_in
    zp = zp_in
    for name, n, act, real_hi in layers:
        rq = _requant(rng, zp, n, real_hi=real_hi)
        if act == "relu":
            rq.output_zero_point = int(rng.integers(-100, 20))
        a = (-128, 127) if act == "full" else (rq.output_zero_point, 127)
        wt = rng.integers(-127, 128, (n, k)).astype(np.int8)
        bias = rng.integers(-20000, 20000, n).astype(np.int32)
        g.ops.append(Dense(name, (k,), (n,), weights=wt, bias=bias, requant=rq, act=a))
        k, zp = n, rq.output_zero_point
    g.output_scale, g.output_zero_point = 0.1, zp
    return g.link_chain()


# Dense layers that all take conv1x1_s8: K = 8 -> 16, 16 -> 16, 16 -> 4, 4 -> 3
DENSE = (8, [("x8", 16, "full", 0.45), ("h16", 16, "full", 0.45), ("k16", 4, "full", 0.45),
             ("k4", 3, "full", 0.45)],
         ["conv1x1_s8"] * 4)

CASES = {
    # K = 8 -> 8 (even), -> 5 (odd), K = 4 -> 3 (odd), -> 4 (even), -> 8, K = 8 -> 16, K = 16 -> 6,
    # then K = 8 -> 1 on an odd width (7)
    "main": ((5, 7, 8), [("a8", 8, 1, 1, "full", 0.45), ("b5", 5, 1, 1, "full", 0.45),
                         ("c4", 4, 1, 1, "full", 0.45), ("b3", 3, 1, 1, "full", 0.45),
                         ("c4b", 4, 1, 1, "full", 0.45), ("b4", 4, 1, 1, "full", 0.45),
                         ("b8", 8, 1, 1, "full", 0.45), ("w16", 16, 1, 1, "full", 0.45),
                         ("x6", 6, 1, 1, "full", 0.45), ("y8", 8, 1, 1, "full", 0.45),
                         ("one8", 1, 1, 1, "full", 0.45)],
             ["conv1x1_s8", "conv1x1_s8", "conv2d_s8", "conv1x1_s8", "conv2d_s8", "conv1x1_s8",
              "conv1x1_s8", "conv1x1_s8", "conv1x1_s8", "conv2d_s8", "conv1x1_s8"]),
    # K = 8 stride 2 (the portable path), K = 16 stride 2 -> 5 (odd), layers left to conv2d_s8
    # (a ReLU clamp above -128, a multiplier of 0.5 or more, K = 12), then K = 4 -> 1 on an even
    # width (6)
    "other": ((9, 21, 8), [("s2", 16, 1, 2, "full", 0.45), ("k16s2", 5, 1, 2, "full", 0.45),
                           ("c4", 4, 1, 1, "full", 0.45), ("relu", 4, 1, 1, "relu", 0.45),
                           ("big", 12, 1, 1, "full", 1.8), ("k12", 4, 1, 1, "full", 0.45),
                           ("one4", 1, 1, 1, "full", 0.45)],
              ["conv1x1_s8", "conv1x1_s8", "conv2d_s8", "conv2d_s8", "conv2d_s8", "conv2d_s8",
               "conv1x1_s8"]),
}


def _emit(case, d, seed=5):
    if case == "dense":
        k, layers, kernels = DENSE
        g = _dense_chain(seed, k, layers)
    else:
        shape, layers, kernels = CASES[case]
        g = _chain(seed + len(case), shape, layers)
    x = graph_inputs(g, 4, seed)
    want = reference(g, x, d)
    em = fast.emit_fast(g, d / "fast", sparse="never")
    assert [i.kernel for i in em.infos] == kernels
    return g, x, want, em


@pytest.mark.parametrize("case", sorted(CASES) + ["dense"])
def test_conv1x1_host_bit_exact(tmp_path, case):
    from mcusearch.convert.host import host_run
    from test_convert import STRICT
    g, x, want, em = _emit(case, tmp_path)
    got = host_run(as_result("mcusearch", em, g, x, want), tmp_path / "fast_host", extra_cflags=STRICT)
    np.testing.assert_array_equal(got, want)


def test_dense_keeps_fc_s8_where_conv1x1_costs_flash(tmp_path):
    """A Dense of K = 4, 8 or 16 runs conv1x1_s8 only where that adds no flash for nothing:
    not where another layer holds the same weights (an unrolled LSTM: conv1x1_s8's records would
    repeat them with each step's requantisation), and not when fc_s8 stays linked for other
    Dense layers while no convolution links conv1x1_s8 (its code for a few outputs)."""
    from mcusearch.convert.host import host_run
    layers = [("s1", 8, "full", 0.45), ("s2", 8, "full", 0.45), ("own", 8, "full", 0.45)]
    shared = _dense_chain(7, 8, layers)
    shared.ops[1].weights = shared.ops[0].weights.copy()          # equal values, another array
    wide = _dense_chain(7, 8, layers[:2] + [("k8", 64, "full", 0.45), ("k64", 4, "full", 0.45)])
    for g, kernels in ((shared, ["fc_s8"] * 3), (wide, ["fc_s8"] * 4),
                       (_dense_chain(7, 8, layers), ["conv1x1_s8"] * 3)):
        x = graph_inputs(g, 4, 7)
        want = reference(g, x, tmp_path)
        em = fast.emit_fast(g, tmp_path / "fast", sparse="never")
        assert [i.kernel for i in em.infos] == kernels
        got = host_run(as_result("mcusearch", em, g, x, want), tmp_path / "fast_host")
        np.testing.assert_array_equal(got, want)


@arm
def test_conv1x1_in_qemu_m7(tmp_path):
    from test_codegen_fast import run_on
    for case in sorted(CASES) + ["dense"]:
        d = tmp_path / case
        g, x, want, em = _emit(case, d)
        _, m = run_on("qemu-m7", as_result("mcusearch", em, g, x, want), d)  # raises unless equal
        if case == "main":
            (_, count), = [lc for lc in m.layer_counts if lc[0].startswith("one8")]
            macs = 5 * 7 * 8
            print(f"one-channel head K=8: {count / macs:.2f} instructions/MAC")
            assert count / macs < 4.0, count / macs
