"""BATCH_MATMUL (Keras MultiHeadAttention, tf.linalg.matmul): mcusearch/convert/ops/batch_matmul.py.

* One-operator models against the TFLite interpreter through "mcusearch-ref" and "mcusearch" on
  the host (strict flags, the reference one also cross-compiled for a Cortex-M0+): both operands
  computed (one tensor on both sides, every adj_x / adj_y combination), a constant operand on
  either side with a batch it broadcasts over, ranks 2 to 5; float32 within the converter's
  tolerance, int8 bit-exact with nonzero zero points on both operands;
* int8 requantisation pinned: power-of-two scales make many sums exact rounding ties, which the
  interpreter rounds away from zero (MultiplyByQuantizedMultiplier), as the generated C does;
* unsupported variants: one line naming the layer;
* a small tf-keras MultiHeadAttention model (self-attention and attention over a shorter
  sequence, Add, LayerNormalization), float32 and int8, against the interpreter on the host, and
  on the emulated Cortex-M7.
"""
from __future__ import annotations

import numpy as np
import pytest

import test_convert as tc
from mcusearch.convert import cgen, fast
from mcusearch.convert.frontend import graph_from_keras, graph_from_tflite
from mcusearch.convert.ops.batch_matmul import BatchMatMul
from mcusearch.convert.quant import multiply_by_quantized_multiplier
from mcusearch.errors import StageError
from test_ops_shape import HAVE_ARM, check_both_generators, conv_result, lower, one_op, schema

tf = tc.tf
L = tc.L
N_PROBE = 6


def _mat(shape, adj: bool) -> np.ndarray:
    """A zero array of ``shape`` seen as the matrices BATCH_MATMUL multiplies."""
    z = np.zeros(shape)
    return np.swapaxes(z, -1, -2) if adj else z


def bmm_tflite(x_shape, adj_x: bool, adj_y: bool, dtype: str, const: np.ndarray | None = None,
               const_index: int = 1, q_x=(0.05, 7), q_c=(0.03, -11), q_out=None) -> bytes:
    """A .tflite of one BATCH_MATMUL: the input x on both sides (``const`` None), or x and the
    constant ``const`` at position ``const_index``. int8: the quantisations (scale, zero point)
    of x, the constant and the output (default: about 40 output steps a standard deviation of
    the sum for inputs spread over the int8 range)."""
    s = schema()
    opts = s.BatchMatMulOptionsT()
    opts.adjX, opts.adjY = adj_x, adj_y
    int8 = dtype == "int8"
    x = dict(shape=x_shape, type=dtype, q=q_x if int8 else None)
    if const is None:
        ins, op_inputs, shapes = [x], [0, 0], (x_shape, x_shape)
    else:
        c = dict(shape=const.shape, type=dtype, q=q_c if int8 else None, data=const)
        ins = [x, c] if const_index == 1 else [c, x]
        op_inputs = None
        shapes = (x_shape, const.shape) if const_index == 1 else (const.shape, x_shape)
    out_shape = np.matmul(_mat(shapes[0], adj_x), _mat(shapes[1], adj_y)).shape
    depth = _mat(shapes[0], adj_x).shape[-1]
    if int8 and q_out is None:
        q_r = q_c if const is not None else q_x
        q_out = (q_x[0] * q_r[0] * np.sqrt(depth) * 75 * 75 / 40, -3)
    return one_op("BATCH_MATMUL", ins,
                  [dict(shape=out_shape, type=dtype, q=q_out if int8 else None)], opts,
                  op_inputs=op_inputs)


def _probes(g, dtype: str, n: int = N_PROBE, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    size = int(np.prod(g.input_shape))
    if dtype == "int8":
        return rng.integers(-128, 128, (n, size), dtype=np.int8)
    return rng.normal(0, 1, (n, size)).astype(np.float32)


def _const(shape, dtype: str, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == "int8":
        return rng.integers(-128, 128, shape, dtype=np.int8)
    return rng.normal(0, 1, shape).astype(np.float32)


# (name, x shape, adj_x, adj_y, constant shape or None, constant position)
ONE_OP_CASES = [
    ("x_x_rank4", (1, 2, 5, 5), False, False, None, 1),
    ("xT_x_rank4", (1, 2, 5, 5), True, False, None, 1),
    ("x_xT_rank3", (2, 5, 5), False, True, None, 1),
    ("xT_xT_rank3", (3, 4, 4), True, True, None, 1),
    ("x_xT_rank5", (1, 2, 2, 3, 3), False, True, None, 1),
    ("x_c_rank4_by_rank2", (1, 3, 4, 6), False, False, (6, 5), 1),     # c broadcast over 3
    ("x_cT_broadcast_batch", (2, 1, 4, 6), False, True, (1, 3, 5, 6), 1),  # both broadcast
    ("cT_xT_rank3", (2, 5, 6), True, True, (1, 6, 4), 0),             # c as lhs, batch 1 vs 2
    ("c_x_rank2", (6, 3), False, False, (4, 6), 0),
    # int8: depth x 255^2 >= 2^30, so the kernel requantises with the 64-bit generic function
    ("x_c_deep", (1, 16600), False, False, (16600, 2), 1),
]


@pytest.mark.parametrize("dtype", ["float32", "int8"])
@pytest.mark.parametrize("case", ONE_OP_CASES, ids=[c[0] for c in ONE_OP_CASES])
def test_one_op_both_generators_on_host(tmp_path, case, dtype):
    name, x_shape, adj_x, adj_y, c_shape, c_index = case
    const = None if c_shape is None else _const(c_shape, dtype)
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(bmm_tflite(x_shape, adj_x, adj_y, dtype, const, c_index))
    g = graph_from_tflite(path)
    (op,) = g.compute_ops
    assert isinstance(op, BatchMatMul) and (op.adj_x, op.adj_y) == (adj_x, adj_y)
    assert op.inputs == ((g.input_id,) * 2 if const is None else (g.input_id,))
    lhs = _mat(op.lhs_shape, adj_x)
    assert op.macs == op.out_len * lhs.shape[-1]
    x = _probes(g, dtype)
    want = cgen.tflite_tensor(path, x, g.output_id)
    if dtype == "int8":         # most outputs inside the range: the clamp does not hide the sums
        assert np.mean(np.abs(want.astype(np.int64)) < 127) > 0.9
        assert len(np.unique(want)) > min(want.shape[1], 20)
        zps = (7, 7) if const is None else (7, -11) if c_index == 1 else (-11, 7)
        assert (op.quant.a_offset, op.quant.b_offset) == (-zps[0], -zps[1])
    check_both_generators(g, x, want, tmp_path)


def test_int8_rounding_ties_away_from_zero(tmp_path):
    """s_x s_c / s_out = 1/4: multiplier 2^30, shift -1, so the doubling high multiply gives
    h = round(acc / 2) and the final shift rounds h / 2; the odd h are ties of that shift. The
    interpreter rounds them away from zero (MultiplyByQuantizedMultiplier), so does the generated
    C; rounding them up (mcus_requantize, CONV_2D's path) would differ on the negative ones."""
    rng = np.random.default_rng(3)
    c = rng.integers(-9, 10, (1, 8, 6), dtype=np.int8)
    model = bmm_tflite((2, 5, 8), False, False, "int8", c, 1, q_x=(1 / 16, 3), q_c=(1 / 8, -5),
                       q_out=(1 / 32, 2))
    path = tmp_path / "ties.tflite"
    path.write_bytes(model)
    g = graph_from_tflite(path)
    (op,) = g.compute_ops
    assert (op.quant.multiplier, op.quant.shift) == (1 << 30, -1)
    x = rng.integers(-12, 13, (N_PROBE, 80), dtype=np.int8)          # sums within +-8 x 15 x 14
    want = cgen.tflite_tensor(path, x, g.output_id).astype(np.int64)
    acc = np.matmul(x.reshape(-1, 2, 5, 8).astype(np.int64) - 3, c.astype(np.int64) + 5)
    acc = acc.reshape(N_PROBE, -1)
    h = multiply_by_quantized_multiplier(acc, 1 << 30, 0)
    assert ((h % 2) == 1).sum() > acc.size // 4 and ((h % 2 == 1) & (h < 0)).sum() > 20
    away = np.clip(multiply_by_quantized_multiplier(acc, 1 << 30, -1) + 2, -128, 127)
    half_up = np.clip(((h + 1) >> 1) + 2, -128, 127)
    np.testing.assert_array_equal(away, want)
    assert np.any(half_up != want)
    check_both_generators(g, x, want.astype(np.int8), tmp_path)


def _unsupported(tmp_path, model: bytes) -> str:
    path = tmp_path / "bad.tflite"
    path.write_bytes(model)
    with pytest.raises(StageError) as e:
        graph_from_tflite(path)
    msg = str(e.value)
    assert "\n" not in msg and "BATCH_MATMUL" in msg and "layer " in msg
    return msg


def test_unsupported_variants_are_one_line_naming_the_layer(tmp_path):
    s = schema()
    opts = s.BatchMatMulOptionsT()
    # batch dimensions 2 and 3
    c = np.zeros((3, 4, 5), np.float32)
    msg = _unsupported(tmp_path, one_op(
        "BATCH_MATMUL", [dict(shape=(2, 3, 4), type="float32"),
                         dict(shape=c.shape, type="float32", data=c)],
        [dict(shape=(3, 3, 5), type="float32")], opts))
    assert "do not broadcast" in msg
    # both operands constant (the input unused)
    msg = _unsupported(tmp_path, one_op(
        "BATCH_MATMUL", [dict(shape=(1, 4), type="float32"),
                         dict(shape=(3, 4), type="float32", data=np.ones((3, 4), np.float32)),
                         dict(shape=(4, 2), type="float32", data=np.ones((4, 2), np.float32))],
        [dict(shape=(3, 2), type="float32")], opts, op_inputs=[1, 2]))
    assert "both operands are constant" in msg
    # a hybrid model: float32 activations, int8 constant
    msg = _unsupported(tmp_path, one_op(
        "BATCH_MATMUL", [dict(shape=(3, 4), type="float32"),
                         dict(shape=(4, 2), type="int8", q=(0.1, 0),
                              data=np.ones((4, 2), np.int8))],
        [dict(shape=(3, 2), type="float32")], opts))
    assert "not float32" in msg
    # an int8 model with an int32 constant, and one with an unquantised constant
    msg = _unsupported(tmp_path, one_op(
        "BATCH_MATMUL", [dict(shape=(3, 4), type="int8", q=(0.1, 0)),
                         dict(shape=(4, 2), type="int32", data=np.ones((4, 2), np.int32))],
        [dict(shape=(3, 2), type="int8", q=(0.1, 0))], opts))
    assert "type int32 in an int8 model" in msg
    msg = _unsupported(tmp_path, one_op(
        "BATCH_MATMUL", [dict(shape=(3, 4), type="int8", q=(0.1, 0)),
                         dict(shape=(4, 2), type="int8", data=np.ones((4, 2), np.int8))],
        [dict(shape=(3, 2), type="int8", q=(0.1, 0))], opts))
    assert "is not quantised" in msg


# ---- tf-keras MultiHeadAttention ------------------------------------------------------------

def attention(seed: int = 0):
    """Input (8, 12) -> MultiHeadAttention(2 heads, key_dim 4) self-attention and (3 heads,
    key_dim 3, value_dim 5) over the sequence's last 5 steps (8 x 5 scores: not square) ->
    Add -> LayerNormalization -> GlobalAveragePooling1D -> Dense(3)."""
    tf.keras.utils.set_random_seed(seed)
    i = tf.keras.Input((8, 12))
    a = L.MultiHeadAttention(num_heads=2, key_dim=4, name="self_mha")(i, i)
    kv = L.Cropping1D((3, 0), name="last5")(i)
    b = L.MultiHeadAttention(num_heads=3, key_dim=3, value_dim=5, name="cross_mha")(i, kv)
    x = L.Add(name="residual2")([L.Add(name="residual")([i, a]), b])
    x = L.LayerNormalization(name="ln")(x)
    m = tf.keras.Model(i, L.Dense(3, name="head")(L.GlobalAveragePooling1D(name="gap")(x)),
                       name="attention")
    return tc._random_biases(m, seed)


@pytest.fixture(scope="module")
def mha(tmp_path_factory):
    """dtype -> (graph, probe inputs, the interpreter's outputs) of :func:`attention`."""
    d = tmp_path_factory.mktemp("mha")
    m = attention()
    out = {}
    g, x, want = lower(m, "int8", d, n=N_PROBE)
    out["int8"] = (g, x, want)
    path = d / "attention_f32.tflite"
    g = graph_from_keras(m, path)
    xf = tc.probes(m.input_shape[1:], n=N_PROBE).reshape(N_PROBE, -1)
    want = cgen.tflite_tensor(path, xf, g.output_id)
    np.testing.assert_allclose(want, m.predict(xf.reshape((N_PROBE,) + m.input_shape[1:]),
                                               verbose=0), atol=1e-4, rtol=1e-4)
    out["float32"] = (g, xf, want)
    return out


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_multi_head_attention_both_generators_on_host(mha, tmp_path, dtype):
    g, x, want = mha[dtype]
    ops = [op for op in g.ops if isinstance(op, BatchMatMul)]
    # two per attention layer: the scores (TensorFlow computes keys x queries: 8 x 8, 5 x 8),
    # the scores (transposed) times the values (8 x 4, 8 x 5)
    assert sorted(op.out_shape[-2:] for op in ops) == [(5, 8), (8, 4), (8, 5), (8, 8)]
    if dtype == "int8":
        assert any(q.a_offset != q.b_offset and q.a_offset and q.b_offset
                   for q in (op.quant for op in ops))
    check_both_generators(g, x, want, tmp_path)


def test_multi_head_attention_macs_are_the_graphs(mha):
    """evaluate.count_macs (the MACs a report divides by) counts a MultiHeadAttention layer's
    projections and attention products: the MACs of the graph TFLite runs (its FULLY_CONNECTED
    projections and BATCH_MATMULs, and the head)."""
    from mcusearch.convert.graph import Conv2D, Dense
    from mcusearch.model.evaluate import count_macs, layer_macs

    m = attention()
    g = mha["float32"][0]
    ops = [op for op in g.ops if isinstance(op, (Conv2D, Dense, BatchMatMul))]
    assert count_macs(m) == sum(op.macs for op in ops)
    assert layer_macs(m.get_layer("self_mha")) == 4 * 8 * 12 * 2 * 4 + 2 * 8 * 8 * (4 + 4)


@pytest.mark.skipif(not HAVE_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm")
@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_multi_head_attention_in_qemu_m7(mha, tmp_path, dtype):
    """The attention model built by "mcusearch" on the emulated Cortex-M7: measure() raises
    unless the firmware's outputs match the host's (and those are the interpreter's)."""
    from test_codegen_fast import run_on
    g, x, want = mha[dtype]
    conv = conv_result("mcusearch", fast.emit_fast(g, tmp_path / "c"), g, x[:3], want[:3])
    _, meas = run_on("qemu-m7", conv, tmp_path)
    assert meas is not None
