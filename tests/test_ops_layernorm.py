"""Keras LayerNormalization through both mcusearch generators, and the operators it needs.

TensorFlow's converter lowers LayerNormalization (tf-keras: its fused-batch-norm form) to
RESHAPE, TRANSPOSE (a sequence), MEAN, SQUARED_DIFFERENCE, MEAN, ADD (epsilon), RSQRT, MUL, MUL,
SUB, ADD, TRANSPOSE, RESHAPE, then MUL / ADD by gamma / beta, the same operators in float32 and in
full-integer int8. New here: SQUARED_DIFFERENCE (float32 kernel; int8 TFLite's fixed-point
arithmetic) and RSQRT (float32 kernel; int8 a look-up table from the interpreter's own kernel).

* Small Keras models with LayerNormalization over the last axis of a vector, of a (T, C)
  sequence and of an H x W x C map, with and without scale / center: float32 generated C within the converter's tolerance
  of Keras, int8 bit-exact with the TFLite interpreter's built-in kernels, for "mcusearch-ref" and
  "mcusearch" on the host (strict flags, plus an M0+ cross-compile);
* int8 SQUARED_DIFFERENCE on all 65,536 input pairs against the interpreter: the generator's
  arithmetic (binary_s8) and the C kernel built for speed (-O2: SMMLAR requantisation) and size
  (-Os: the generic one), in three run layouts, with quantisations forcing rounding ties and
  right shifts beyond the fast path's bound; a one-value constant operand (a look-up table);
* an int8 LayerNormalization model and all SQUARED_DIFFERENCE pairs on an emulated Cortex-M7.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import test_convert as tc
from mcusearch.convert import cgen, fast
from mcusearch.convert.frontend import graph_from_keras, graph_from_tflite
from mcusearch.convert.host import host_run
from mcusearch.convert.ops.elementwise import (Binary, SqDiffQuant, Unary, binary_quant,
                                                binary_s8)
from mcusearch.convert.quant import quantize_input
from mcusearch.model.quantize import to_int8_tflite
from test_ops_elementwise import _conv_result, _tflite_pairs, check_pairs, pairs_programs
from test_ops_shape import conv_result, one_op

tf = tc.tf
L = tc.L
HAVE_ARM = bool(shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm"))
N_PROBE = 16


# ---- models --------------------------------------------------------------------------------------

def ln_model(shape: tuple[int, ...], scale: bool, center: bool, seed: int):
    """Dense(24, gelu) -> LayerNormalization (gamma, beta random) -> Dense(4) on ``shape`` (a
    vector, or a (T, C) sequence: the Dense layers and the normalisation per time step); on an
    H x W x C map 1 x 1 convolutions instead, the normalisation per pixel."""
    tf.keras.utils.set_random_seed(seed)
    i = L.Input(shape)
    if len(shape) == 3:
        dense_in, dense_out = (L.Conv2D(24, 1, activation="gelu", name="dense_in"),
                               L.Conv2D(4, 1, name="dense_out"))
    else:
        dense_in, dense_out = (L.Dense(24, activation="gelu", name="dense_in"),
                               L.Dense(4, name="dense_out"))
    x = L.LayerNormalization(scale=scale, center=center, epsilon=1e-3, name="ln")(dense_in(i))
    m = tf.keras.Model(i, dense_out(x))
    tc._random_biases(m, seed)
    rng = np.random.default_rng(seed)
    ln = m.get_layer("ln")
    weights = []
    if scale:
        weights.append(rng.uniform(0.5, 1.5, 24).astype(np.float32))
    if center:
        weights.append(rng.normal(0.0, 0.3, 24).astype(np.float32))
    ln.set_weights(weights)
    return m


# name: (input shape, scale, center)
MODELS = {
    "vector": ((10,), True, True),
    "vector_plain": ((10,), False, False),
    "sequence": ((6, 10), True, True),
    "sequence_scale_only": ((6, 10), True, False),
    "map": ((4, 5, 6), True, True),
}


@pytest.fixture(scope="module")
def lowered(tmp_path_factory):
    """(name, dtype) -> (graph, probe inputs, expected outputs, .tflite or None), each once."""
    d = tmp_path_factory.mktemp("ln_models")
    cache: dict = {}

    def get(name: str, dtype: str):
        if (name, dtype) not in cache:
            shape, scale, center = MODELS[name]
            m = ln_model(shape, scale, center, seed=len(name))
            x = tc.probes(shape, n=N_PROBE, seed=7)
            if dtype == "float32":
                cache[name, dtype] = (graph_from_keras(m), x.reshape(len(x), -1),
                                      m.predict(x, verbose=0).reshape(len(x), -1), None)
            else:
                rep = np.random.default_rng(4).normal(0, 1, (32,) + shape).astype(np.float32)
                path = to_int8_tflite(m, rep, d / f"{name}.tflite")
                g = graph_from_tflite(path)
                q = quantize_input(x, g.input_scale, g.input_zero_point).reshape(len(x), -1)
                cache[name, dtype] = (g, q, cgen.tflite_tensor(path, q, g.output_id)
                                      .astype(np.int8), path)
        return cache[name, dtype]
    return get


@pytest.mark.parametrize("dtype", ["float32", "int8"])
@pytest.mark.parametrize("name", list(MODELS))
def test_layernorm_models_host_both_generators(lowered, tmp_path, name, dtype):
    g, x, want, _ = lowered(name, dtype)
    sqdiff = [op for op in g.ops if isinstance(op, Binary) and op.function == "SQUARED_DIFFERENCE"]
    rsqrt = [op for op in g.ops if isinstance(op, Unary) and op.function == "RSQRT"]
    assert len(sqdiff) == 1 and len(rsqrt) == 1, [op.kind for op in g.ops]
    if dtype == "int8":
        assert isinstance(sqdiff[0].quant, SqDiffQuant) and rsqrt[0].table is not None
    # the mean is broadcast against the normalised axis: one value per vector / step / pixel
    t = int(np.prod(MODELS[name][0][:-1]))
    assert sqdiff[0].out_len == 24 * t and sqdiff[0].geometry.length == 24 * t
    # the probes exercise the model: outputs differ between inputs
    assert cgen.probe_spread_note(want, dtype) == ""
    atol, rtol = (cgen.FLOAT_ATOL, cgen.FLOAT_RTOL) if dtype == "float32" else (0.0, 0.0)
    for gen in ("mcusearch-ref", "mcusearch"):
        conv = _conv_result(g, tmp_path / gen, gen, x, want, atol, rtol)
        tc.check(conv, tmp_path / gen)           # int8 bit-exact, float32 within tolerance


@pytest.mark.parametrize("dtype", ["float32", "int8"])
@pytest.mark.parametrize("name", ["vector", "sequence"])
def test_layernorm_of_an_unknown_batch(tmp_path, name, dtype):
    """A .tflite converted with an unknown batch size (as a user converts) computes the rows of
    tf-keras' fused form at run time: SHAPE -> STRIDED_SLICE -> REDUCE_PROD -> RESHAPE as FILL's
    shape (a scale of ones, an offset of zeros per row) and PACK's element (RESHAPE's target);
    the file stores those rows as [1] (signature [-1]), not the batch's 6 steps. The int32
    arithmetic is dropped, the FILLs become constants of the interpreter's shapes for a batch of
    one, and both generators match the interpreter (int8 bit-exact)."""
    from mcusearch.convert.frontend import Reader
    from test_ops_shape import check_both_generators, unknown_batch_tflite

    shape, scale, center = MODELS[name]
    m = ln_model(shape, scale, center, seed=len(name))
    path = tmp_path / "m.tflite"
    unknown_batch_tflite(m, path, dtype)
    assert {"SHAPE", "REDUCE_PROD", "FILL"} <= {t.opname for t in Reader(path).ops}
    g = graph_from_tflite(path)
    t = int(np.prod(shape[:-1]))
    sqdiff = [op for op in g.ops if isinstance(op, Binary) and op.function == "SQUARED_DIFFERENCE"]
    assert len(sqdiff) == 1 and sqdiff[0].out_len == 24 * t
    consts = [op.const for op in g.ops if isinstance(op, Binary) and op.const is not None]
    assert sum(c.size == t for c in consts) >= 2      # the FILLs: one value per row
    x = tc.probes(shape, n=N_PROBE, seed=7)
    if dtype == "int8":
        x = quantize_input(x, g.input_scale, g.input_zero_point)
    xin = x.reshape(N_PROBE, -1)
    check_both_generators(g, xin, cgen.tflite_tensor(path, xin, g.output_id), tmp_path,
                          cross=False)


def test_layernorm_normalises(lowered, tmp_path):
    """The float32 C computes a layer normalisation, not just something Keras agrees with: the
    model cut after LayerNormalization (no gamma / beta) gives rows of mean 0 and variance ~1."""
    m = ln_model((6, 10), False, False, seed=1)
    cut = tf.keras.Model(m.input, m.get_layer("ln").output)
    x = tc.probes((6, 10), n=4, seed=3)
    g = graph_from_keras(cut)
    conv = _conv_result(g, tmp_path / "c", "mcusearch", x.reshape(4, -1),
                        cut.predict(x, verbose=0).reshape(4, -1), cgen.FLOAT_ATOL,
                        cgen.FLOAT_RTOL)
    got = tc.check(conv, tmp_path / "c").reshape(4, 6, 24)
    np.testing.assert_allclose(got.mean(axis=-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(got.var(axis=-1), 1.0, rtol=0.05)


# ---- int8 SQUARED_DIFFERENCE: all 65,536 input pairs ---------------------------------------------

@pytest.fixture(scope="module")
def pairs_exe(tmp_path_factory):
    """The all-pairs program of SQUARED_DIFFERENCE (test_ops_elementwise.pairs_programs), built
    for speed (-O2: mcus_small_mbqm) and for size (-Os: the generic requantisation)."""
    return pairs_programs(
        tmp_path_factory.mktemp("sqdiff_pairs"), '#include "squared_difference_s8.c"',
        "mcus_squared_difference_s8_params_t s;",
        """(void)kind;
    s.g = geom[layout];
    s.a_offset = (int32_t)p[0]; s.b_offset = (int32_t)p[1]; s.output_offset = (int32_t)p[2];
    s.left_shift = (int32_t)p[3];
    s.a_multiplier = (int32_t)p[4]; s.a_shift = (int32_t)p[5];
    s.b_multiplier = (int32_t)p[6]; s.b_shift = (int32_t)p[7];
    s.output_multiplier = (int32_t)p[8]; s.output_shift = (int32_t)p[9];
    s.act_min = (int32_t)p[10]; s.act_max = (int32_t)p[11];
    mcus_squared_difference_s8(&s, a, b, out);""")


def _keras_pair_model(path: Path) -> Path:
    """tf.math.squared_difference of two 256-vectors, quantised by TensorFlow's converter from
    LayerNormalization-like data (a wide input against a narrow mean)."""
    a, b = tf.keras.Input((256,), name="a"), tf.keras.Input((256,), name="b")
    model = tf.keras.Model([a, b], L.Lambda(lambda t: tf.math.squared_difference(t[0], t[1]),
                                            name="sqdiff")([a, b]))
    rng = np.random.default_rng(2)
    rep = [(rng.uniform(-2.2, 3.1, 256).astype(np.float32),
            rng.uniform(-0.3, 0.45, 256).astype(np.float32)) for _ in range(4)]
    c = tf.lite.TFLiteConverter.from_keras_model(model)
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = lambda: iter([[x[None], y[None]] for x, y in rep])
    c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    c.inference_input_type = c.inference_output_type = tf.int8
    path.write_bytes(c.convert())
    return path


def _one_op_pair_model(qa, qb, qo, path: Path) -> Path:
    """A one-operator SQUARED_DIFFERENCE of two int8 256-vectors with the given quantisations."""
    path.write_bytes(one_op("SQUARED_DIFFERENCE",
                            [dict(shape=(1, 256), type="int8", q=qa),
                             dict(shape=(1, 256), type="int8", q=qb)],
                            [dict(shape=(1, 256), type="int8", q=qo)]))
    return path


# name: ((q_a, q_b, q_out) of a one-operator model, or None: the Keras model), the largest right
# shift of the three rescalings (mcus_small_mbqm takes up to 22)
SQDIFF_CASES = {
    # s_a = s_b = 1/64, s_out = 2^-7: each rescaled input is v * 2^6 exactly, the output
    # (a - b)^2 / 32, a rounding tie wherever a - b = 4 (mod 8)
    "ties": (((1 / 64, 0), (1 / 64, 0), (2 ** -7, -128)), "<=22"),
    "arbitrary": (((0.0117, 3), (0.0137, -7), (0.0623, -101)), "<=22"),
    # a negligible second input: its multiplier's right shift is beyond the fast path
    "tiny_b": (((0.02, 0), (2e-9, 5), (0.1, -128)), ">22"),
    "keras_layernorm_like": (None, "<=22"),
}


@pytest.mark.parametrize("name", list(SQDIFF_CASES))
def test_int8_squared_difference_all_input_pairs_bit_exact_with_tflite(pairs_exe, tmp_path, name):
    quant, right = SQDIFF_CASES[name]
    path = (_keras_pair_model(tmp_path / "k.tflite") if quant is None else
            _one_op_pair_model(*quant, tmp_path / "op.tflite"))
    want, (qa, qb, qo) = _tflite_pairs(path)
    assert set(want) == {"same", "broadcast", "tail"}
    q = binary_quant("SQUARED_DIFFERENCE", qa, qb, qo)
    assert isinstance(q, SqDiffQuant) and q.left_shift == 7
    shifts = (q.a_shift, q.b_shift, q.output_shift)
    assert (max(-s for s in shifts) <= 22) == (right == "<=22"), shifts
    if name == "ties":
        assert q.a_multiplier == q.b_multiplier == 1 << 30 and q.a_shift == q.b_shift == 0
        d = np.subtract.outer(np.arange(-128, 128), np.arange(-128, 128))
        assert np.sum((d % 8 == 4) & (np.abs(d) < 91)) > 2000, "no longer exercises ties"
    for w in want.values():            # the output is not saturated everywhere: it tells apart
        assert len(np.unique(w)) > 50
    # the generator's own arithmetic (binary_s8: look-up tables of a one-value constant)
    a, b = np.repeat(np.arange(-128, 128), 256), np.tile(np.arange(-128, 128), 256)
    ours_py = binary_s8("SQUARED_DIFFERENCE", q, a, b, -128, 127)
    for path_name, w in want.items():
        assert np.array_equal(ours_py, w), f"binary_s8 vs TFLite ({path_name})"
    args = [q.a_offset, q.b_offset, q.output_offset, q.left_shift, q.a_multiplier, q.a_shift,
            q.b_multiplier, q.b_shift, q.output_multiplier, q.output_shift, -128, 127]
    check_pairs(pairs_exe, 0, args, want)


def _constant_pair_model(path: Path, const_shape, const: np.ndarray, x_shape, quant) -> Path:
    qa, qb, qo = quant
    out_shape = tuple(np.broadcast_shapes(x_shape, const_shape))
    path.write_bytes(one_op("SQUARED_DIFFERENCE",
                            [dict(shape=x_shape, type="int8", q=qa),
                             dict(shape=const_shape, type="int8", q=qb, data=const)],
                            [dict(shape=out_shape, type="int8", q=qo)]))
    return path


def test_int8_squared_difference_of_a_scalar_is_a_table(tmp_path):
    """(x - c)^2 with a one-value constant: a look-up table from binary_s8, bit-exact with the
    interpreter on every input value through both generators."""
    path = _constant_pair_model(tmp_path / "op.tflite", (1,), np.array([37], np.int8), (1, 256),
                                SQDIFF_CASES["arbitrary"][0])
    g = graph_from_tflite(path)
    (op,) = g.compute_ops
    assert isinstance(op, Binary) and op.function == "SQUARED_DIFFERENCE"
    assert op.scalar_table() is not None
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, -1)
    want = cgen.tflite_tensor(path, x, g.output_id).astype(np.int8)
    assert len(np.unique(want)) > 50
    for gen in ("mcusearch-ref", "mcusearch"):
        conv = _conv_result(g, tmp_path / gen, gen, x, want, 0.0, 0.0)
        assert "lut_s8" in " ".join(p.name for p in conv.sources)
        np.testing.assert_array_equal(host_run(conv, tmp_path / gen / "host"), want)


# ---- on the target -------------------------------------------------------------------------------

@pytest.mark.skipif(not HAVE_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm")
def test_int8_layernorm_sequence_in_qemu_m7(lowered, tmp_path):
    """The int8 sequence model (LayerNormalization per time step with gamma and beta) through
    "mcusearch" on an emulated Cortex-M7: measure() raises unless every output equals the
    interpreter's."""
    from test_codegen_fast import run_on
    g, x, want, _ = lowered("sequence", "int8")
    conv = _conv_result(g, tmp_path / "c", "mcusearch", x, want, 0.0, 0.0)
    _, meas = run_on("qemu-m7", conv, tmp_path)
    assert meas.max_abs_error == 0


@pytest.mark.skipif(not HAVE_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm")
def test_int8_squared_difference_every_pair_in_qemu_m7(tmp_path):
    """A one-operator int8 SQUARED_DIFFERENCE of the input (a 256 x 1 column) and a constant
    (a 1 x 256 row): all 65,536 pairs in one inference, built by "mcusearch" for the Cortex-M7
    (its SMMLAR path) and run in QEMU; measure() raises unless every output equals the
    interpreter's. An element costs about 25 instructions."""
    from test_codegen_fast import run_on
    v = np.arange(-128, 128, dtype=np.int8)
    path = _constant_pair_model(tmp_path / "op.tflite", (1, 1, 256), v.reshape(1, 1, 256),
                                (1, 256, 1), SQDIFF_CASES["ties"][0])
    g = graph_from_tflite(path)
    (op,) = g.compute_ops
    assert isinstance(op, Binary) and op.scalar_table() is None
    x = v.reshape(1, -1)
    want = cgen.tflite_tensor(path, x, g.output_id).astype(np.int8)
    conv = conv_result("mcusearch", fast.emit_fast(g, tmp_path / "c"), g, x, want)
    _, meas = run_on("qemu-m7", conv, tmp_path)
    assert meas.max_abs_error == 0
    ((_, count),) = meas.layer_counts
    print(f"SQUARED_DIFFERENCE: {count / 65536:.2f} instructions/element")
    assert count / 65536 < 35, count / 65536        # measured 25.2 (qemu-m7, -O3)
