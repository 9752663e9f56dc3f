"""conv2d_s8's GEMM path (issue 14): 2 pixels x 2 output channels per inner loop, the bias and the
requantisation constants of a channel read once per pixel pair (firmware/kernels/fast/conv2d_s8.c,
gemm_run). Taken on DSP cores when K % 4 == 0 and every channel's zero point folds into its
rounding constant; other layers keep the older paths.

Bit-exact with the TFLite interpreter on the host (the portable C paths) and in QEMU on a Cortex-M7
(the assembly): odd output-channel counts, odd chunk counts (K / 4 odd), odd widths (the single-pixel
variant), stride 2, SAME and VALID padding, more than one 64-channel block, K % 4 != 0 beside it,
input channels not in multiples of 4 (a 3-channel stem, one channel, 1 x N convs: K padded with
zero weights, kpad). The per-layer profile shows the path ran: a 1 x 1 layer of K = 64 costs under 1.25 instructions a
MAC (1.49 before it existed).
"""
from __future__ import annotations

import json

import pytest

import test_convert as tc
from test_fast_kernels import arm
from mcusearch.convert import convert

L = tc.L


def gemm_chain(seed: int = 7):
    """Every shape case of the GEMM path (comments: K (+ kpad), chunks, output width); 1 x 1
    layers on inputs of 4k channels build their columns with pw_cols (K = 4, 8 and 16
    take conv1x1_s8: tests/test_fast_conv1x1.py)."""
    tc.tf.keras.utils.set_random_seed(seed)
    model = tc.tf.keras.Sequential([
        L.InputLayer((9, 9, 4)),
        L.Conv2D(12, 3, strides=2, padding="same", activation="relu", name="c3s2"),  # 36, 9 odd, 5
        L.Conv2D(13, 1, activation="relu", name="pw13"),                            # 12, 3, oc odd
        L.Conv2D(12, 3, padding="valid", name="c3v"),                               # 117 + 3
        L.Conv2D(70, 1, activation="relu", name="pw70"),                            # 12, 2 blocks
        L.Conv2D(64, 1, activation="relu", name="pw64"),                            # 70 + 2
        L.Conv2D(5, 1, name="pw5"),                                                 # 64, 3 x 3
    ])
    return tc._random_biases(model, seed)


def stem_chain(seed: int = 9):
    """Input channels not in multiples of 4: the generator pads K with zero weights (kpad) and
    the column is staged byte by byte (comments: K + kpad)."""
    tc.tf.keras.utils.set_random_seed(seed)
    model = tc.tf.keras.Sequential([
        L.InputLayer((12, 11, 3)),
        L.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="stem"),   # 27 + 1
        L.Conv2D(5, 3, padding="valid", activation="relu", name="c3"),               # 72
        L.Conv2D(7, (1, 2), padding="same", name="c12"),                             # 10 + 2
    ])
    return tc._random_biases(model, seed)


def mono_chain(seed: int = 10):
    """One input channel (DS-CNN's stem and sensor data): 3 x 2 SAME (6 + 2), then a 1 x 5 conv
    along the rows (6 channels: 30 + 2)."""
    tc.tf.keras.utils.set_random_seed(seed)
    model = tc.tf.keras.Sequential([
        L.InputLayer((9, 13, 1)),
        L.Conv2D(6, (3, 2), padding="same", activation="relu", name="mono"),
        L.Conv2D(9, (1, 5), strides=(1, 2), name="row5"),
    ])
    return tc._random_biases(model, seed)


def edge_chain(seed: int = 11):
    """Input channels in multiples of 4 at the input's edges (im2col_s8's runs of words and
    zeros): a 5 x 7 SAME window taller and wider than a 4 x 4 input (padding rows, padding on
    both sides of a row, no window inside: every column built at the edges), a 3 x 3 SAME layer
    whose inner pixels take im2col_rows_s8, then a pointwise layer of an even channel count on
    4 pixels a row (pw_gemm_row's 3, then a single pixel)."""
    tc.tf.keras.utils.set_random_seed(seed)
    model = tc.tf.keras.Sequential([
        L.InputLayer((4, 4, 8)),
        L.Conv2D(8, (5, 7), padding="same", activation="relu", name="c57"),       # 280
        L.Conv2D(12, 3, padding="same", name="c3"),                                # 72
        L.Conv2D(6, 1, activation="relu", name="pw6"),                             # 12
    ])
    return tc._random_biases(model, seed)


def pointwise(seed: int = 8):
    """DS-CNN's pointwise shape: 25 x 5 x 64 -> 64 channels (K = 64)."""
    tc.tf.keras.utils.set_random_seed(seed)
    model = tc.tf.keras.Sequential([L.InputLayer((6, 5, 64)),
                                    L.Conv2D(64, 1, activation="relu", name="pw")])
    return tc._random_biases(model, seed)


def _int8(model, d, n=200):
    tfl = tc.to_int8(model, d / "m.tflite")
    x = tc.probes(model.input_shape[1:], n=n, seed=9)
    return convert(tc.model_result(model, d, "int8", tfl, x=x), "mcusearch", d / "c")


def test_gemm_chain_host_bit_exact(tmp_path):
    conv = _int8(gemm_chain(), tmp_path)
    tc.check(conv, tmp_path)                        # raises unless bit-exact with the interpreter
    plan = json.loads((tmp_path / "c" / "plan.json").read_text())
    assert {la["kernel"] for la in plan["layers"]} == {"conv2d_s8"}


@pytest.mark.parametrize("chain,kpads", [(stem_chain, [1, 0, 2]), (mono_chain, [2, 2])])
def test_kpad_chains_host_bit_exact(tmp_path, chain, kpads):
    conv = _int8(chain(), tmp_path)
    tc.check(conv, tmp_path)
    plan = json.loads((tmp_path / "c" / "plan.json").read_text())
    assert [la["extra"].get("kpad", 0) for la in plan["layers"]] == kpads


@arm
def test_gemm_chain_in_qemu_m7(tmp_path):
    from test_codegen_fast import run_on
    for chain in (gemm_chain, stem_chain, mono_chain, edge_chain):
        d = tmp_path / chain.__name__
        d.mkdir()
        conv = _int8(chain(), d, n=tc.N_PROBE)
        run_on("qemu-m7", conv, d)                  # raises unless the outputs match


@arm
def test_gemm_pointwise_cost_in_qemu_m7(tmp_path):
    """The GEMM path ran: the 1 x 1 layer's own count (markers) per MAC."""
    from test_codegen_fast import run_on
    conv = _int8(pointwise(), tmp_path, n=tc.N_PROBE)
    _, m = run_on("qemu-m7", conv, tmp_path)
    (_, count), = [lc for lc in m.layer_counts if lc[0].startswith("pw")]
    macs = 6 * 5 * 64 * 64
    print(f"pointwise K=64: {count / macs:.3f} instructions/MAC")
    assert count / macs < 1.25, count / macs
