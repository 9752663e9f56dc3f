"""int8 ADD, exhaustively: every one of the 65,536 (a, b) input pairs through TFLite's built-in
ADD kernel and through our element function (mcus_add_s8_one, which the reference and the fast
kernels both call), for scales chosen so that the rescaling hits exact ties (.5 cases) - the case
random probes almost never produce. A tie counter in the C side proves the ties occurred, so the
test cannot pass without deciding them.

Scales: a calibration range of [-128 s, 127 s] quantises to exactly scale s and zero point 0, so
inputs of scale s and an output of scale 2 s make the output rescale an exact halving (every odd
sum is a tie); a second case shifts the calibration ranges so that every tensor has zero point -96;
a third has arbitrary scales and zero points (no forced ties: the general path).
"""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

import test_convert as tc
from mcusearch.convert import cgen
from mcusearch.convert.quant import add_quant

tf = tc.tf

_MAIN = r"""
#include <stdio.h>
#include "mcus_kernels.h"

/* 1 when rounding x / 2^e (RoundingDivideByPOT) or the doubling high multiply is an exact tie */
static int tie_pot(int32_t x, int32_t e) { return e > 0 && (x & ((1 << e) - 1)) == (1 << (e - 1)); }
static int tie_mul(int32_t x, int32_t m)
{
    const int64_t ab = (int64_t)x * m;
    return ((ab < 0 ? -ab : ab) & 0x7FFFFFFFLL) == 0x40000000LL;
}

int main(void)
{
    mcus_add_s8_params_t p;
    long v[13];
    int i, a, b;
    long ties = 0;
    for (i = 0; i < 13; ++i) {
        if (scanf("%ld", &v[i]) != 1) {
            return 2;
        }
    }
    p.len = 1;
    p.input_offset = (int32_t)v[0]; p.skip_offset = (int32_t)v[1]; p.output_offset = (int32_t)v[2];
    p.left_shift = (int32_t)v[3];
    p.input_multiplier = (int32_t)v[4]; p.input_shift = (int32_t)v[5];
    p.skip_multiplier = (int32_t)v[6]; p.skip_shift = (int32_t)v[7];
    p.output_multiplier = (int32_t)v[8]; p.output_shift = (int32_t)v[9];
    p.act_min = (int32_t)v[10]; p.act_max = (int32_t)v[11];
    for (a = -128; a < 128; ++a) {
        for (b = -128; b < 128; ++b) {
            const int32_t xa = (int32_t)((uint32_t)(a + p.input_offset) << p.left_shift);
            const int32_t xb = (int32_t)((uint32_t)(b + p.skip_offset) << p.left_shift);
            const int32_t sa = mcus_rescale_add(xa, p.input_multiplier, p.input_shift);
            const int32_t sb = mcus_rescale_add(xb, p.skip_multiplier, p.skip_shift);
            const int32_t h = mcus_sat_round_doubling_high_mul(sa + sb, p.output_multiplier);
            ties += tie_mul(xa, p.input_multiplier) || tie_mul(xb, p.skip_multiplier)
                    || tie_mul(sa + sb, p.output_multiplier)
                    || tie_pot(mcus_sat_round_doubling_high_mul(xa, p.input_multiplier), -p.input_shift)
                    || tie_pot(mcus_sat_round_doubling_high_mul(xb, p.skip_multiplier), -p.skip_shift)
                    || tie_pot(h, -p.output_shift);
            printf("%d\n", (int)mcus_add_s8_one(&p, a, b));
        }
    }
    fprintf(stderr, "%ld\n", ties);
    return 0;
}
"""


@pytest.fixture(scope="module")
def add_exe(tmp_path_factory):
    return tc.host_exe(tmp_path_factory.mktemp("add_ties"), "add", _MAIN, [cgen.KERNELS_DIR])


def _add_model_int8(lo_a, hi_a, lo_b, hi_b, path):
    """A two-input Keras Add, quantised to int8 by the TFLite converter with calibration data that
    spans exactly [lo_a, hi_a] and [lo_b, hi_b] (and their sums)."""
    a = tf.keras.Input((256,), name="a")
    b = tf.keras.Input((256,), name="b")
    model = tf.keras.Model([a, b], tc.L.Add(name="add")([a, b]))
    rng = np.random.default_rng(0)
    rep = [[np.full((1, 256), lo_a, np.float32), np.full((1, 256), lo_b, np.float32)],
           [np.full((1, 256), hi_a, np.float32), np.full((1, 256), hi_b, np.float32)]]
    rep += [[rng.uniform(lo_a, hi_a, (1, 256)).astype(np.float32),
             rng.uniform(lo_b, hi_b, (1, 256)).astype(np.float32)] for _ in range(4)]
    c = tf.lite.TFLiteConverter.from_keras_model(model)
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = lambda: iter(rep)
    c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    c.inference_input_type = tf.int8
    c.inference_output_type = tf.int8
    path.write_bytes(c.convert())
    return path


def _tflite_all_pairs(path):
    """TFLite's ADD on all 65,536 pairs (row i: a = i - 128, column j: b = j - 128) and the three
    tensors' (scale, zero point) in the order a, b, out."""
    it = tf.lite.Interpreter(model_path=str(path),
                             experimental_op_resolver_type=getattr(
                                 tf.lite.experimental.OpResolverType, cgen.TFLITE_RESOLVER))
    ins = sorted(it.get_input_details(), key=lambda d: d["name"])      # "a" before "b"
    out = it.get_output_details()[0]
    it.resize_tensor_input(ins[0]["index"], [256, 256])
    it.resize_tensor_input(ins[1]["index"], [256, 256])
    it.allocate_tensors()
    v = np.arange(-128, 128, dtype=np.int8)
    it.set_tensor(ins[0]["index"], np.repeat(v[:, None], 256, axis=1))
    it.set_tensor(ins[1]["index"], np.repeat(v[None, :], 256, axis=0))
    it.invoke()
    q = [(float(d["quantization"][0]), int(d["quantization"][1])) for d in (*ins, out)]
    return it.get_tensor(out["index"]).reshape(-1).astype(int), q


CASES = {
    # (a range, b range): equal power-of-two scales, output scale 2 s: every odd a + b is a tie
    "equal_pow2": ((-2.0, 127 / 64), (-2.0, 127 / 64), True),
    # the same scales with zero points -96 (inputs and output): ties after the offsets
    "pow2_zero_points": ((-0.5, 255 / 64 - 0.5), (-0.5, 255 / 64 - 0.5), True),
    # arbitrary scales and zero points: the general rounding path
    "arbitrary": ((-0.7, 2.3), (-3.1, 0.4), False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_int8_add_all_input_pairs_bit_exact_with_tflite(add_exe, tmp_path, case):
    (lo_a, hi_a), (lo_b, hi_b), forced_ties = CASES[case]
    want, ((sa, za), (sb, zb), (so, zo)) = _tflite_all_pairs(
        _add_model_int8(lo_a, hi_a, lo_b, hi_b, tmp_path / "add.tflite"))
    if forced_ties:                       # the calibration gave the scales the case is built on
        assert sa == sb and so == 2 * sa and za == zb
    q = add_quant(sa, za, sb, zb, so, zo)
    args = [q.prev_offset, q.skip_offset, q.output_offset, q.left_shift, q.prev_multiplier,
            q.prev_shift, q.skip_multiplier, q.skip_shift, q.output_multiplier, q.output_shift,
            -128, 127, 0]
    run = subprocess.run([str(add_exe)], input=" ".join(map(str, args)) + "\n", capture_output=True,
                         text=True, check=True)
    got = np.array(run.stdout.split(), dtype=int)
    ties = int(run.stderr)
    assert got.shape == want.shape == (65536,)
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, (f"{bad.size} of 65,536 pairs differ, first a={bad[0] // 256 - 128} "
                           f"b={bad[0] % 256 - 128}: ours {got[bad[0]]}, TFLite {want[bad[0]]}")
    if forced_ties:
        assert ties > 10000, f"only {ties} tie cases: the test no longer exercises the rounding"
