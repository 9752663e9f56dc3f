"""Recurrent models through both mcusearch generators: a Keras LSTM and a GRU (8 units over 20 steps
of 6 features, Dense head), unrolled by the tool's TFLite lowering into FULLY_CONNECTED, UNPACK,
SPLIT / SPLIT_V, LOGISTIC, TANH, MUL, ADD and SUB operators.

float32 within the converter's tolerance of Keras, int8 bit-exact with the TFLite interpreter's
built-in kernels, on the host for "mcusearch-ref" and "mcusearch", and on QEMU (Cortex-M7). A
GRU(reset_after=False), whose int8 model from TensorFlow keeps float32 islands
(DEQUANTIZE -> SPLIT -> QUANTIZE), is bit-exact too.
"""
from __future__ import annotations

import shutil
from collections import Counter

import pytest

import test_convert as tc
from test_ops_shape import check_both_generators, conv_result, lowered_once

tf, L = tc.tf, tc.L
HAVE_ARM = bool(shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm"))
STEPS, FEATURES, UNITS = 20, 6, 8


def recurrent(kind: str, seed: int = 0):
    """Input 20 x 6 -> LSTM(8) or GRU(8), or 8 x 6 -> GRU(8, reset_after=False) or
    Bidirectional(LSTM(8)) (last state) -> Dense(3)."""
    tf.keras.utils.set_random_seed(seed)
    i = L.Input((STEPS if kind in ("lstm", "gru") else 8, FEATURES))   # 8 steps: a faster test
    cell = {"lstm": lambda: L.LSTM(UNITS, name=kind), "gru": lambda: L.GRU(UNITS, name=kind),
            "gru_reset_before": lambda: L.GRU(UNITS, reset_after=False, name=kind),
            "bilstm": lambda: L.Bidirectional(L.LSTM(UNITS), name=kind)}[kind]()
    return tf.keras.Model(i, L.Dense(3, name="logits")(cell(i)), name=kind)


# TensorFlow's unrolled graphs: per step an input and a recurrent FULLY_CONNECTED (none at the
# first step, whose state is zero) and a SPLIT into the gates (LSTM: 4; GRU: a SPLIT and a SPLIT_V
# into 3, the first step's SPLIT_V folded away), plus UNPACK's 20 steps and the Dense head. Copies
# that nothing reads are dropped (one gate of the last step).
EXPECTED = {"lstm": {"Dense": 2 * STEPS, "Slice": STEPS + 4 * STEPS - 1},
            "gru": {"Dense": 2 * STEPS, "Slice": STEPS + 3 * STEPS + 3 * (STEPS - 1) - 1}}


@pytest.fixture(scope="module")
def lowered(tmp_path_factory):
    return lowered_once(tmp_path_factory.mktemp("recurrent"), recurrent, n=6)


@pytest.mark.parametrize("dtype", ["float32", "int8"])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_recurrent_both_generators_on_host(lowered, tmp_path, kind, dtype):
    g, x, want = lowered(kind, dtype)
    kinds = Counter(op.kind for op in g.compute_ops)
    assert {k: kinds[k] for k in EXPECTED[kind]} == EXPECTED[kind], kinds
    assert kinds["Logistic"] and kinds["Tanh"] and kinds["Mul"], kinds
    check_both_generators(g, x, want, tmp_path, cross=False)   # kernels: test_ops_* cross-build


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_bidirectional_is_unrolled_both_ways(lowered, tmp_path, dtype):
    """A Bidirectional wrapper's LSTMs are unrolled too (without, TensorFlow makes WHILE loops,
    and its int8 converter crashed on a Bidirectional GRU): 2 x 8 steps of two projections each;
    the Keras MAC count takes both directions."""
    from mcusearch.model.evaluate import count_macs
    g, x, want = lowered("bilstm", dtype)
    assert Counter(op.kind for op in g.compute_ops)["Dense"] == 2 * 2 * 8 - 2 + 1
    assert count_macs(recurrent("bilstm")) == 2 * 8 * 4 * UNITS * (FEATURES + UNITS) + 2 * UNITS * 3
    check_both_generators(g, x, want, tmp_path, cross=False)


def test_gru_int8_with_float_islands_is_bit_exact(lowered, tmp_path):
    """TensorFlow's int8 GRU(reset_after=False) keeps some gate SPLITs in float32 between
    DEQUANTIZE and QUANTIZE; the reader moves the int8 values instead, bit-exact."""
    from mcusearch.convert.frontend import Reader

    g, x, want = lowered("gru_reset_before", "int8")
    names = Counter(t.opname for t in Reader(lowered.dir / "gru_reset_before.tflite").ops)
    assert names["DEQUANTIZE"] and names["QUANTIZE"], names
    check_both_generators(g, x, want, tmp_path, cross=False)


@pytest.mark.skipif(not HAVE_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm")
@pytest.mark.parametrize("kind, dtype", [
    ("lstm", "int8"), pytest.param("gru", "float32", marks=pytest.mark.slow)])
def test_recurrent_in_qemu_m7(lowered, tmp_path, kind, dtype):
    from mcusearch.convert import fast
    from test_codegen_fast import run_on

    g, x, want = lowered(kind, dtype)
    conv = conv_result("mcusearch", fast.emit_fast(g, tmp_path / "c"), g, x[:3], want[:3])
    _, meas = run_on("qemu-m7", conv, tmp_path)       # raises unless the outputs match
    assert meas is not None
    if kind == "lstm":            # the gates and the even steps read in place (see below)
        assert (tmp_path / "c" / "model.c").read_text().count("mcus_slice_s8(") == STEPS // 2


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_gate_and_step_slices_are_views(lowered, dtype):
    """The optimised generator reads a contiguous slice in place (lowering.slice_views): no copy
    of the gates, nor of the time steps that start on a 4-byte boundary (int8: 6 t bytes, the
    even steps; float32: every step)."""
    from mcusearch.convert.lowering import lower_for_rows

    for kind in ("lstm", "gru"):
        g, _, _ = lowered(kind, dtype)
        low = lower_for_rows(g)
        left = [op for op in low.compute_ops if op.kind == "Slice"]
        assert len(left) == (STEPS // 2 if dtype == "int8" else 0), [op.name for op in left]
        assert all(low.storage(op.inputs[0]) == low.input_id and op.base % 4 for op in left)
