"""Element-wise op plug-ins (mcusearch/convert/ops/elementwise.py) through both generators.

Small Keras models, lowered by TensorFlow's TFLite converter: float32 generated C (host gcc) vs
Keras within the converter's tolerance, int8 bit-exact with the TFLite interpreter's built-in
kernels (cgen.TFLITE_RESOLVER), for "mcusearch-ref" and "mcusearch"; one Cortex-M7 run in QEMU;
int8 MUL and SUB on all 65,536 input pairs against the interpreter, through its same-shape,
broadcasting and scalar-tail paths; the int8 look-up table's vector/tail split (QUANTIZE).
"""
from __future__ import annotations

import itertools
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import test_convert as tc
from mcusearch.convert import ConvertResult, cgen, fast
from mcusearch.convert.frontend import graph_from_keras, graph_from_tflite
from mcusearch.convert.host import host_run
from mcusearch.convert.ops.elementwise import (Binary, Unary, binary_quant, binary_s8,
                                                broadcast_geometry, unary_tflite)
from mcusearch.convert.quant import quantize_input
from mcusearch.model.quantize import to_int8_tflite

tf = tc.tf
L = tc.L
HAVE_ARM = bool(shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm"))
N_PROBE = 24


# ---- models --------------------------------------------------------------------------------------

def _hard_swish(x):
    return x * tf.nn.relu6(x + 3.0) / 6.0


def acts_model():
    """Every unary activation on one 5x7x6 map (210 elements: not a multiple of 16, so TFLite's
    vector loops leave a tail), summed by same-shape adds; hard_sigmoid gives MINIMUM (a constant
    operand) and a stand-alone int8 RELU."""
    i = L.Input((5, 7, 3))
    x = L.Conv2D(6, 1, name="conv")(i)
    branches = [L.Activation("sigmoid", name="sig")(x), L.Activation("tanh", name="tanh")(x),
                L.Lambda(_hard_swish, name="hswish")(x), L.LeakyReLU(0.2, name="leaky")(x),
                L.Activation("gelu", name="gelu")(x), L.Activation("hard_sigmoid", name="hsig")(x)]
    y = branches[0]
    for b in branches[1:]:
        y = L.Add()([y, b])
    return tf.keras.Model(i, L.Flatten()(y))


def binary_model():
    """Squeeze-and-excite without MEAN (a full-size average pool, a 1x1 conv, sigmoid, Multiply
    broadcast over H and W), Subtract, Maximum (int8: inputs requantised by QUANTIZE), Minimum,
    a broadcast Add, and a BatchNormalization after a max-pool (not folded: MUL + ADD with
    per-channel constants)."""
    i = L.Input((5, 7, 3))
    x = L.Conv2D(6, 1, name="conv_a")(i)
    gate = L.AveragePooling2D((5, 7), name="squeeze")(x)
    gate = L.Conv2D(6, 1, activation="sigmoid", name="excite")(gate)
    se = L.Multiply(name="scale")([x, gate])
    y = L.Conv2D(6, 1, name="conv_b")(i)
    z = L.Add(name="add_gate")([L.Maximum(name="max")([x, y]),
                                L.Minimum(name="min")([L.Subtract(name="sub")([se, y]), x])])
    z = L.Add(name="add_bcast")([z, gate])
    z = L.MaxPooling2D(1, name="pool")(z)
    z = L.BatchNormalization(name="bn")(z)
    return tf.keras.Model(i, L.Flatten()(z))


def compound_model():
    """swish (LOGISTIC, MUL), softplus (EXP, ADD of a constant, LOG), mish (... TANH, MUL), a
    PReLU with one slope per channel (PRELU, alpha broadcast over H and W) and GELU's tanh form
    (with the erf form in the same model TensorFlow's converter fails on tf.Erfc)."""
    i = L.Input((5, 7, 3))
    x = L.Conv2D(6, 1, name="conv")(i)
    a, b, c = (L.Activation(f, name=f)(x) for f in ("swish", "softplus", "mish"))
    p = L.PReLU(alpha_initializer=tf.keras.initializers.RandomUniform(-0.5, 1.0),
                shared_axes=[1, 2], name="prelu")(x)
    g = L.Lambda(lambda v: tf.nn.gelu(v, approximate=True), name="gelu_tanh")(x)
    y = a
    for t in (b, c, p, g):
        y = L.Add()([y, t])
    return tf.keras.Model(i, L.Flatten()(y))


def float_only_model():
    """ELU, softsign (ABS, ADD, DIV), EXP and LOG: TFLite's converter keeps ELU in float."""
    i = L.Input((5, 7, 3))
    x = L.Conv2D(6, 1, name="conv")(i)
    a = L.ELU(name="elu")(x)
    b = L.Activation("softsign", name="softsign")(x)
    c = L.Lambda(lambda v: tf.exp(v) * 0.1 + tf.math.log(tf.abs(v) + 1.0), name="explog")(x)
    return tf.keras.Model(i, L.Flatten()(L.Add()([L.Add()([a, b]), c])))


def broadcast3_model():
    """Constants broadcast over three dimensions of a 4x5x3 map (a (4, 1, 3) scale: runs of 3
    with the outer coordinate wrapping every 5 runs; a (1, 5, 1) shift: one value per run) and a
    (4, 5, 1) floor through MAXIMUM."""
    rng = np.random.default_rng(5)
    scale = rng.uniform(0.5, 1.5, (4, 1, 3)).astype(np.float32)
    shift = rng.normal(0.0, 0.5, (1, 5, 1)).astype(np.float32)
    floor = rng.normal(-0.3, 0.2, (4, 5, 1)).astype(np.float32)
    i = L.Input((4, 5, 3))
    x = L.Conv2D(3, 1, name="conv")(i)
    x = L.Lambda(lambda v: tf.maximum(v * scale + shift, floor), name="bcast3")(x)
    return tf.keras.Model(i, L.Flatten()(x))


def scalar_model():
    """A tensor the model computes broadcast as one value over a 64-vector (LayerNormalization's
    mean): added with the value first, subtracted from the vector, multiplied (the int8 ADD / SUB
    kernel's period-1 path)."""
    i = L.Input((16,))
    x = L.Dense(64, name="fc")(i)
    m = L.Lambda(lambda v: tf.reduce_mean(v, axis=-1, keepdims=True), name="mean")(x)
    y = L.Add(name="add_first")([m, x])
    y = L.Add()([y, L.Subtract(name="sub")([x, m])])
    return tf.keras.Model(i, L.Add()([y, L.Multiply(name="mul")([x, m])]))


MODELS = {"broadcast3": broadcast3_model, "acts": acts_model, "binary": binary_model, "compound": compound_model,
          "float_only": float_only_model, "scalar": scalar_model}
KINDS = {
    "broadcast3": {"Mul", "Add", "Maximum"},
    "acts": {"Logistic", "Tanh", "HardSwish", "LeakyRelu", "Gelu", "Minimum"},
    "binary": {"Logistic", "Mul", "Sub", "Maximum", "Minimum", "Add"},
    "compound": {"Logistic", "Mul", "Exp", "Add", "Log", "Tanh", "Prelu", "Gelu"},
    "float_only": {"Elu", "Abs", "Add", "Div", "Exp", "Log", "Mul"},
    "scalar": {"Add", "Sub", "Mul"},
}


def _init(model, seed):
    """Random biases and BatchNorm statistics that keep activations in range."""
    tc._random_biases(model, seed)
    rng = np.random.default_rng(seed)
    for bn in (lyr for lyr in model.layers if isinstance(lyr, L.BatchNormalization)):
        c = bn.get_weights()[0].shape[0]
        bn.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.2, c), rng.normal(0, 0.1, c),
                        rng.uniform(0.5, 2.0, c)])
    return model


@pytest.fixture(scope="module", params=list(MODELS))
def case(request, tmp_path_factory):
    """(name, model, {dtype: (graph, inputs, expected, atol, rtol)}, work dir)."""
    name = request.param
    d = tmp_path_factory.mktemp(f"ew_{name}")
    tf.keras.utils.set_random_seed(3)
    m = _init(MODELS[name](), 3)
    x = tc.probes(m.input_shape[1:], n=N_PROBE, seed=11)
    runs = {"float32": (graph_from_keras(m), x.reshape(len(x), -1),
                        m.predict(x, verbose=0).reshape(len(x), -1), cgen.FLOAT_ATOL,
                        cgen.FLOAT_RTOL)}
    if name != "float_only":
        rep = np.random.default_rng(4).normal(0, 1, (32,) + m.input_shape[1:]).astype(np.float32)
        tfl = to_int8_tflite(m, rep, d / "m.tflite")
        g = graph_from_tflite(tfl)
        q = quantize_input(x, g.input_scale, g.input_zero_point).reshape(len(x), -1)
        runs["int8"] = (g, q, cgen.tflite_tensor(tfl, q, g.output_id).astype(np.int8), 0.0, 0.0)
    return name, m, runs, d


def _conv_result(graph, out: Path, gen: str, inputs, expected, atol, rtol) -> ConvertResult:
    em = cgen.emit_c(graph, out) if gen == "mcusearch-ref" else fast.emit_fast(graph, out)
    return ConvertResult(converter=gen, sources=em.sources, include_dirs=em.include_dirs,
                         input_dtype=graph.dtype, output_dtype=graph.dtype, inputs=inputs,
                         expected=expected, atol=atol, rtol=rtol, arena_bytes=em.arena_bytes,
                         output_meaning=f"{graph.dtype} outputs", layers=em.layers)


@pytest.mark.parametrize("quant", ["float32", "int8"])
def test_models_host_both_generators(case, quant):
    name, _, runs, d = case
    if quant not in runs:
        pytest.skip("TFLite's converter keeps ELU in float (DEQUANTIZE / QUANTIZE around it)")
    graph, inputs, expected, atol, rtol = runs[quant]
    kinds = {op.kind for op in graph.ops if isinstance(op, (Unary, Binary))}
    assert KINDS[name] <= kinds, kinds
    # the probes exercise the model: outputs differ between inputs
    assert cgen.probe_spread_note(expected, quant) == ""
    for gen in ("mcusearch-ref", "mcusearch"):
        conv = _conv_result(graph, d / f"{quant}_{gen}", gen, inputs, expected, atol, rtol)
        tc.check(conv, d / f"{quant}_{gen}")     # int8 bit-exact, float32 within tolerance


def test_graph_details(case):
    """Constants, MACs and the int8 operators TFLite's converter inserted."""
    name, _, runs, _ = case
    g = runs["float32"][0]
    if name == "binary":
        mul = [op for op in g.ops if isinstance(op, Binary) and op.function == "MUL"]
        assert [op.const is None for op in mul] == [True, False]        # SE gate, BatchNorm scale
        assert mul[0].macs == 5 * 7 * 6 and mul[1].const.shape[-1] == 6
        assert mul[0].geometry.dims == (35, 6) and mul[0].geometry.b_stride == (0, 1)
        g8 = runs["int8"][0]
        assert any(isinstance(op, Unary) and op.function == "QUANTIZE" for op in g8.ops)
    if name == "acts":
        leaky = next(op for op in g.ops if isinstance(op, Unary) and op.function == "LEAKY_RELU")
        assert leaky.alpha == pytest.approx(0.2)
        gelu = next(op for op in g.ops if isinstance(op, Unary) and op.function == "GELU")
        assert gelu.alpha == 0.0                                      # the erf form
        relu8 = [op for op in runs["int8"][0].ops
                 if isinstance(op, Unary) and op.function == "RELU"]
        assert relu8 and relu8[0].table is not None                   # stand-alone int8 RELU
    if name == "compound":
        gelu = next(op for op in g.ops if isinstance(op, Unary) and op.function == "GELU")
        assert gelu.alpha == 1.0                                      # the tanh form


def test_broadcast_geometry():
    g = broadcast_geometry((1, 5, 7, 6), (1, 1, 1, 6), (1, 5, 7, 6))
    assert (g.dims, g.a_stride, g.b_stride) == ((35, 6), (6, 1), (0, 1))
    g = broadcast_geometry((6,), (1, 5, 7, 6), (1, 5, 7, 6))      # constant first, rank 1
    assert (g.dims, g.a_stride, g.b_stride) == ((35, 6), (0, 1), (6, 1))
    g = broadcast_geometry((4, 1, 3), (1, 5, 1), (4, 5, 3))
    assert (g.dims, g.a_stride, g.b_stride) == ((4, 5, 3), (3, 0, 1), (0, 1, 0))
    g = broadcast_geometry((2, 3), (2, 3), (2, 3))                   # same shape: one dimension
    assert (g.dims, g.a_stride, g.b_stride) == ((6,), (1,), (1,))
    g = broadcast_geometry((1, 1), (), (1, 1))
    assert (g.dims, g.length) == ((1,), 1)
    assert broadcast_geometry((4, 3), (5, 3), (4, 3)) is None
    assert broadcast_geometry((4, 1), (1, 3), (4, 1)) is None


# ---- the int8 look-up table: vector and tail ----------------------------------------------------

def _qparams(scale: float, zero_point: int):
    from tensorflow.lite.python import schema_py_generated as s
    q = s.QuantizationParametersT()
    q.scale, q.zeroPoint = [float(np.float32(scale))], [int(zero_point)]
    return q


def test_int8_requantize_lut_splits_vector_and_tail(tmp_path):
    """TFLite's int8 -> int8 QUANTIZE rounds ties differently in its 16-lane loop and its scalar
    tail: on 100 elements, elements 96..99 need the tail table; host C bit-exact with the
    interpreter at every position for all 256 values."""
    from tensorflow.lite.python import schema_py_generated as s
    code = s.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = s.BuiltinOperator.QUANTIZE
    code.version = 1
    path = tmp_path / "q.tflite"
    path.write_bytes(unary_tflite(code, 0, None, _qparams(0.012720610949519557, 55),
                                  _qparams(0.09457049716265373, 6), 100))
    g = graph_from_tflite(path)
    (op,) = g.compute_ops
    assert isinstance(op, Unary) and op.split == 96
    assert op.tail_table is not None and np.any(op.tail_table != op.table)
    v = np.arange(-128, 128)
    inputs = np.stack([np.roll(np.resize(v, 100), k) for k in range(0, 256, 3)]).astype(np.int8)
    expected = cgen.tflite_tensor(path, inputs, g.output_id).astype(np.int8)
    for gen in ("mcusearch-ref", "mcusearch"):
        conv = _conv_result(g, tmp_path / gen, gen, inputs, expected, 0.0, 0.0)
        np.testing.assert_array_equal(host_run(conv, tmp_path / gen / "host"), expected)


# ---- int8 MUL, SUB and ADD: all 65,536 input pairs -----------------------------------------------

_PAIRS_TEMPLATE = r"""
#include <stdio.h>
#include "mcus_kernels.h"
/*INCLUDES*/

/* All 65,536 pairs through reference kernels, a = i - 128 and b = j - 128, in one of three run
 * layouts: 0 a 256 x 1 column against a 1 x 256 row (runs along b, a broadcast), 1 the same with
 * the roles swapped (runs along a, b broadcast; outputs in b-major order), 2 two 65,536-element
 * tensors of the same shape (one run, both operands vary). Input: kind, layout, 12 parameters. */
int main(void)
{
    static int8_t v[256], fa[65536], fb[65536], out[65536];
    static const mcus_bcast_t geom[3] = {
        { .len = 65536, .rank = 2, .dims = { 256, 256 }, .a_stride = { 1, 0 }, .b_stride = { 0, 1 } },
        { .len = 65536, .rank = 2, .dims = { 256, 256 }, .a_stride = { 0, 1 }, .b_stride = { 1, 0 } },
        { .len = 65536, .rank = 1, .dims = { 65536 }, .a_stride = { 1 }, .b_stride = { 1 } },
    };
    /*DECLS*/
    const int8_t *a = v, *b = v;
    long p[12];
    int i, kind, layout;
    if (scanf("%d %d", &kind, &layout) != 2 || layout < 0 || layout > 2) {
        return 2;
    }
    for (i = 0; i < 12; ++i) {
        if (scanf("%ld", &p[i]) != 1) {
            return 2;
        }
    }
    for (i = 0; i < 256; ++i) {
        v[i] = (int8_t)(i - 128);
    }
    for (i = 0; i < 65536; ++i) {
        fa[i] = (int8_t)(i / 256 - 128);
        fb[i] = (int8_t)(i % 256 - 128);
    }
    if (layout == 2) {
        a = fa;
        b = fb;
    }
    /*CALL*/
    for (i = 0; i < 65536; ++i) {
        printf("%d\n", out[i]);
    }
    return 0;
}
"""


def pairs_programs(d: Path, includes: str, decls: str, call: str) -> dict[str, Path]:
    """The all-pairs program (_PAIRS_TEMPLATE with the kernels' sources, their parameter
    declarations and the call of kind ``kind`` on geometry ``geom[layout]`` and parameters p[])
    built for speed (-O2: the specialised loops, mcus_small_mbqm) and for size (-Os: one loop,
    the generic requantisation)."""
    src = (_PAIRS_TEMPLATE.replace("/*INCLUDES*/", includes).replace("/*DECLS*/", decls)
           .replace("/*CALL*/", call))
    fast_exe = tc.host_exe(d, "pairs", src, [cgen.KERNELS_DIR])
    small_exe = d / "pairs_os"
    subprocess.run(["gcc", "-Os", "-std=c99", *tc.STRICT, f"-I{cgen.KERNELS_DIR}",
                    str(d / "pairs.c"), "-o", str(small_exe)], check=True)
    return {"-O2": fast_exe, "-Os": small_exe}


@pytest.fixture(scope="module")
def pairs_exe(tmp_path_factory):
    """The pairs programs of MUL (kind 0) and ADD / SUB (kind 1), -O2 and -Os."""
    return pairs_programs(
        tmp_path_factory.mktemp("ew_pairs"), '#include "add_bcast_s8.c"\n#include "mul_s8.c"',
        "mcus_mul_s8_params_t m;\n    mcus_add_bcast_s8_params_t s;",
        """m.g = s.g = geom[layout];
    if (kind == 0) {
        m.a_offset = (int32_t)p[0]; m.b_offset = (int32_t)p[1]; m.output_offset = (int32_t)p[2];
        m.multiplier = (int32_t)p[3]; m.shift = (int32_t)p[4];
        m.act_min = (int32_t)p[5]; m.act_max = (int32_t)p[6];
        mcus_mul_s8(&m, a, b, out);
    } else {
        s.q.input_offset = (int32_t)p[0]; s.q.skip_offset = (int32_t)p[1];
        s.q.output_offset = (int32_t)p[2]; s.q.left_shift = (int32_t)p[3];
        s.q.input_multiplier = (int32_t)p[4]; s.q.input_shift = (int32_t)p[5];
        s.q.skip_multiplier = (int32_t)p[6]; s.q.skip_shift = (int32_t)p[7];
        s.q.output_multiplier = (int32_t)p[8]; s.q.output_shift = (int32_t)p[9];
        s.q.act_min = (int32_t)p[10]; s.q.act_max = (int32_t)p[11];
        s.tx = 0;
        mcus_add_bcast_s8(&s, a, b, out);
    }""")


def _vec(*vals):
    x = np.zeros(256, np.float32)
    x[:len(vals)] = vals
    return x


_U = [np.random.default_rng(k).uniform(lo, hi, 256).astype(np.float32)
      for k, (lo, hi) in enumerate([(-0.7, 2.3), (-3.1, 0.4)])]
PAIR_CASES = {
    # s_a = s_b = s_out = 1/64, zero points 0: s_a s_b / s_out = 2^-6, every odd product is a
    # tie of the doubling high multiply and products = 32 mod 64 ties of the final shift
    "mul_pow2": ("MUL", [(_vec(-2, 127 / 64, 1, 1), _vec(1, 1, -2, 127 / 64))], True),
    "mul_arbitrary": ("MUL", [(_U[0], _U[1]), (_vec(-0.7, 2.3), _vec(-3.1, 0.4))], False),
    # large inputs whose products stay small: s_a s_b / s_out > 1, a left shift (about 2^6),
    # and beyond mcus_small_mbqm's bound (about 2^19: the generic requantisation)
    "mul_left_shift": ("MUL", [(_vec(100, 0.01, -100), _vec(0.01, 100, -0.01))], False),
    "mul_beyond_small": ("MUL", [(_vec(1e4, 1e-4, -1e4), _vec(1e-4, 1e4, -1e-4))], False),
    # s_out = 2 s: the output rescale halves exactly
    "sub_pow2": ("SUB", [(np.full(256, -2.0), np.full(256, 127 / 64)),
                         (np.full(256, 127 / 64), np.full(256, -2.0))], True),
    "sub_arbitrary": ("SUB", [(np.full(256, -0.7), np.full(256, 0.4)),
                              (np.full(256, 2.3), np.full(256, -3.1))], False),
    # ADD through the broadcasting kernel (tests/test_add_ties.py covers the same-shape one)
    "add_arbitrary": ("ADD", [(np.full(256, -0.7), np.full(256, -3.1)),
                              (np.full(256, 2.3), np.full(256, 0.4))], False),
}


def _pair_model_int8(op: str, rep, path: Path) -> Path:
    a, b = tf.keras.Input((256,), name="a"), tf.keras.Input((256,), name="b")
    layer = {"MUL": L.Multiply, "SUB": L.Subtract, "ADD": L.Add}[op]
    model = tf.keras.Model([a, b], layer(name="op")([a, b]))
    c = tf.lite.TFLiteConverter.from_keras_model(model)
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = lambda: iter([[np.asarray(x, np.float32)[None],
                                              np.asarray(y, np.float32)[None]] for x, y in rep])
    c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    c.inference_input_type = c.inference_output_type = tf.int8
    path.write_bytes(c.convert())
    return path


def _tflite_pairs(path: Path):
    """TFLite's outputs for all pairs (a = i - 128, b = j - 128, flattened i * 256 + j) through
    three kernel paths - same-shape 256 x 256 tensors, a 256 x 1 column broadcast against a
    1 x 256 row, and 7-element tensors (the scalar tail of the vector loops) - and the (scale,
    zero point) of a, b and the output."""
    it = cgen.tflite_interpreter(path)
    ins = sorted(it.get_input_details(), key=lambda d: d["name"])     # "a" before "b"
    out = it.get_output_details()[0]["index"]
    v = np.arange(-128, 128, dtype=np.int8)
    flat_a, flat_b = np.repeat(v, 256), np.tile(v, 256)
    got = {}
    for path_name, (sa, sb, xa, xb) in {
            "same": ((256, 256), (256, 256), flat_a.reshape(256, 256), flat_b.reshape(256, 256)),
            "broadcast": ((256, 1), (1, 256), v[:, None], v[None, :])}.items():
        it.resize_tensor_input(ins[0]["index"], list(sa))
        it.resize_tensor_input(ins[1]["index"], list(sb))
        it.allocate_tensors()
        it.set_tensor(ins[0]["index"], xa)
        it.set_tensor(ins[1]["index"], xb)
        it.invoke()
        got[path_name] = it.get_tensor(out).reshape(-1).astype(int)
    n = 7
    it.resize_tensor_input(ins[0]["index"], [1, n])
    it.resize_tensor_input(ins[1]["index"], [1, n])
    it.allocate_tensors()
    pad = (-len(flat_a)) % n
    ca, cb = np.pad(flat_a, (0, pad)).reshape(-1, n), np.pad(flat_b, (0, pad)).reshape(-1, n)
    tail = []
    for ra, rb in zip(ca, cb):
        it.set_tensor(ins[0]["index"], ra[None])
        it.set_tensor(ins[1]["index"], rb[None])
        it.invoke()
        tail.append(it.get_tensor(out).reshape(-1))
    got["tail"] = np.concatenate(tail)[:65536].astype(int)
    q = [(float(d["quantization"][0]), int(d["quantization"][1]))
         for d in (*ins, it.get_output_details()[0])]
    return got, q


def _mul_ties(za: int, zb: int, m: int, shift: int) -> int:
    """Pairs whose MUL requantisation meets an exact tie (doubling high multiply or final shift)."""
    a, b = np.repeat(np.arange(-128, 128), 256), np.tile(np.arange(-128, 128), 256)
    x = ((a - za) * (b - zb)).astype(np.int64) << max(shift, 0)
    right = max(-shift, 0)
    ab = x * m
    h = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    h = np.where(h >= 0, h >> 31, -((-h) >> 31))
    tie_pot = (h & ((1 << right) - 1)) == (1 << (right - 1)) if right else np.zeros_like(h, bool)
    return int(np.sum(((np.abs(ab) & 0x7FFFFFFF) == 0x40000000) | tie_pot))


@pytest.mark.parametrize("name", list(PAIR_CASES))
def test_int8_binary_all_input_pairs_bit_exact_with_tflite(pairs_exe, tmp_path, name):
    op, rep, forced = PAIR_CASES[name]
    want, ((sa, za), (sb, zb), (so, zo)) = _tflite_pairs(
        _pair_model_int8(op, rep, tmp_path / f"{name}.tflite"))
    q = binary_quant(op, (sa, za), (sb, zb), (so, zo))
    if op == "MUL":
        args = [q.a_offset, q.b_offset, q.output_offset, q.multiplier, q.shift, -128, 127,
                0, 0, 0, 0, 0]
        left = {"mul_left_shift": (1, 14), "mul_beyond_small": (15, 31)}.get(name, (-31, 0))
        assert left[0] <= q.shift <= left[1], q.shift
        if q.shift > 0:
            # TFLite's vector loops (x86) overflow on a left shift (a product of -508 gives
            # 127 where its scalar tail, and the arithmetic, give -128): compare with the tail
            assert np.any(want["same"] != want["tail"])
            want = {"tail": want["tail"]}
        if forced:
            assert sa == sb == so == 1 / 64 and za == zb == zo == 0
            assert _mul_ties(za, zb, q.multiplier, q.shift) > 10000, \
                "the case no longer exercises the rounding"
    else:
        args = [q.prev_offset, q.skip_offset, q.output_offset, q.left_shift, q.prev_multiplier,
                q.prev_shift, q.skip_multiplier, q.skip_shift, q.output_multiplier,
                q.output_shift, -128, 127]
        if forced:
            assert sa == sb and so == 2 * sa
    # the generator's own arithmetic (binary_s8: its look-up tables and add_const_s8's values)
    a, b = np.repeat(np.arange(-128, 128), 256), np.tile(np.arange(-128, 128), 256)
    ours_py = binary_s8(op, q, a, b, -128, 127)
    for path_name, w in want.items():
        assert np.array_equal(ours_py, w), f"binary_s8 vs TFLite ({path_name})"
    check_pairs(pairs_exe, int(op != "MUL"), args, want)


def check_pairs(exes: dict[str, Path], kind: int, args: list, want: dict) -> None:
    """Run the pairs programs (pairs_programs) of ``kind`` with parameters ``args`` in every run
    layout and compare all 65,536 outputs with TFLite's (``want``: per interpreter path)."""
    for (opt, exe), (layout, ours) in itertools.product(
            exes.items(), enumerate(("a broadcast along runs", "b broadcast along runs",
                                     "same shape"))):
        line = " ".join(map(str, [kind, layout] + args)) + "\n"
        run = subprocess.run([str(exe)], input=line, capture_output=True, text=True, check=True)
        got = np.array(run.stdout.split(), dtype=int)
        assert got.shape == (65536,)
        if layout == 1:                                   # b-major: back to a-major order
            got = got.reshape(256, 256).T.reshape(-1)
        for path_name, w in want.items():
            bad = np.flatnonzero(got != w)
            assert bad.size == 0, (f"ours ({ours}, {opt}) vs TFLite ({path_name}): {bad.size} of "
                                   f"65,536 pairs differ, first a={bad[0] // 256 - 128} "
                                   f"b={bad[0] % 256 - 128}: ours {got[bad[0]]}, TFLite "
                                   f"{w[bad[0]]}")


def test_int8_prelu_every_input_and_slope(tmp_path):
    """int8 PRELU on every input value (one row each) against 256 slopes that quantise to
    (nearly) every int8 value, whole model C vs the interpreter."""
    inp = tf.keras.Input((256,))
    layer = L.PReLU(name="prelu")
    model = tf.keras.Model(inp, layer(inp))
    layer.set_weights([np.linspace(-1.5, 1.5, 256).astype(np.float32)])
    rep = np.random.default_rng(0).uniform(-3, 2, (16, 256)).astype(np.float32)
    tfl = to_int8_tflite(model, rep, tmp_path / "prelu.tflite")
    g = graph_from_tflite(tfl)
    (op,) = g.compute_ops
    assert isinstance(op, Binary) and op.function == "PRELU" and len(np.unique(op.const)) > 250
    inputs = np.repeat(np.arange(-128, 128, dtype=np.int8)[:, None], 256, axis=1)
    expected = cgen.tflite_tensor(tfl, inputs, g.output_id).astype(np.int8)
    conv = _conv_result(g, tmp_path / "c", "mcusearch-ref", inputs, expected, 0.0, 0.0)
    np.testing.assert_array_equal(host_run(conv, tmp_path / "host"), expected)


# ---- on the target -------------------------------------------------------------------------------

@pytest.mark.skipif(not HAVE_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm")
@pytest.mark.parametrize("case", ["binary", "scalar"], indirect=True)
@pytest.mark.parametrize("quant,opt", [("int8", "-O3"), ("float32", "-O3"), ("int8", "-Os"),
                                       ("float32", "-Os")])
def test_binary_model_in_qemu_m7(case, quant, opt):
    """The squeeze-and-excite / broadcasting model (MUL, SUB, MAXIMUM, MINIMUM, ADD with
    constants, LOGISTIC, QUANTIZE) and the one-value broadcast model through "mcusearch" on an
    emulated Cortex-M7, built for speed and for size (the element-wise kernels' two builds)."""
    from test_codegen_fast import run_on
    name, _, runs, d = case
    if name == "scalar" and quant == "int8":      # the period-1 path is taken where it claims
        geoms = [op.geometry for op in runs[quant][0].ops
                 if isinstance(op, Binary) and op.function in ("ADD", "SUB") and op.const is None]
        assert sum(len(g.dims) == 1 and 0 in g.a_stride + g.b_stride for g in geoms) == 2
    w = d / f"qemu_{quant}{opt}"
    conv = _conv_result(*runs[quant][:1], w, "mcusearch", *runs[quant][1:])
    _, meas = run_on("qemu-m7", conv, w, opt)               # raises unless outputs match
    assert meas is not None


def test_int8_div_is_a_clear_error(tmp_path):
    """softsign in int8 needs DIV, which has no int8 kernel here: one error naming the layer,
    the operator and the dtype."""
    from mcusearch.errors import StageError
    i = L.Input((8,))
    x = L.Activation("softsign", name="softsign")(L.Dense(8)(i))
    model = tf.keras.Model(i, L.Dense(2)(x))
    rep = np.random.default_rng(0).normal(0, 1, (16, 8)).astype(np.float32)
    tfl = to_int8_tflite(model, rep, tmp_path / "m.tflite")
    with pytest.raises(StageError, match=r"layer softsign: TFLite op DIV \(no int8 kernel\).*int8"):
        graph_from_tflite(tfl)


# int8 MUL, ADD and SUB on the target: every input pair through each run layout, in the DSP build
PAIR_LAYOUTS = {   # (input shape, constant shape): which operand runs along the innermost axis
    "a_broadcast": ((1, 256, 1), (1, 1, 256)),       # runs along the constant b, a fixed per run
    "b_broadcast": ((1, 1, 256), (1, 256, 1)),       # runs along the input a, b fixed per run
    "same_shape": ((1, 256, 256), (1, 256, 256)),    # both vary
}
PAIR_QUANT = {"ties": ((1 / 64, 0), (1 / 64, 0), (1 / 64, 0)),
              "arbitrary": ((0.0117, 3), (0.0137, -7), (0.0323, 5))}
MAX_PER_ELEMENT = {"MUL": 20, "ADD": 50, "SUB": 50}   # measured: MUL 12-15, ADD 25-37
MAX_MUL_SAME = 9.5                                    # measured 8.5 (mul_same_simd)


@pytest.mark.skipif(not HAVE_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm")
@pytest.mark.parametrize("op,layout,quant", [
    ("MUL", "a_broadcast", "ties"), ("MUL", "b_broadcast", "ties"), ("MUL", "same_shape", "ties"),
    ("MUL", "same_shape", "arbitrary"),
    ("MUL", "b_broadcast", "arbitrary"), ("ADD", "b_broadcast", "arbitrary"),
    ("ADD", "same_shape", "ties"), ("SUB", "a_broadcast", "arbitrary")])
def test_int8_binary_every_pair_in_qemu_m7(tmp_path, op, layout, quant):
    """A one-operator int8 MUL, ADD or SUB of the input and a constant, all 65,536 (a, b) pairs
    in one inference, built by "mcusearch" for the Cortex-M7 (its SMMULR and SSAT path) and run
    in QEMU: measure() raises unless every output equals the interpreter's. The kernel's
    instructions per element (the layer's marker count) stay far below the 74 (MUL) and 115 (ADD)
    of a per-element odometer with the generic requantisation."""
    from test_codegen_fast import run_on
    from test_ops_shape import conv_result, one_op, schema
    (qa, qb, qo), (sa, sb) = PAIR_QUANT[quant], PAIR_LAYOUTS[layout]
    v = np.arange(-128, 128, dtype=np.int8)
    values = {(1, 256, 1): v, (1, 1, 256): v,
              (1, 256, 256): np.tile(v, 256)}       # against the input's np.repeat
    x = (np.repeat(v, 256) if sa == (1, 256, 256) else values[sa]).reshape(1, -1)
    out_shape = tuple(max(p, q) for p, q in zip(sa, sb))
    options = {"MUL": schema().MulOptionsT, "ADD": schema().AddOptionsT,
               "SUB": schema().SubOptionsT}[op]()
    path = tmp_path / "op.tflite"
    path.write_bytes(one_op(op, [dict(shape=sa, type="int8", q=qa),
                                 dict(shape=sb, type="int8", q=qb, data=values[sb].reshape(sb))],
                            [dict(shape=out_shape, type="int8", q=qo)], options))
    g = graph_from_tflite(path)
    (binary,) = g.compute_ops
    assert isinstance(binary, Binary) and binary.function == op
    want = cgen.tflite_tensor(path, x, g.output_id).astype(np.int8)
    pairs = {(int(a), int(b)) for a, b in zip(np.broadcast_to(x.reshape(sa), out_shape).ravel(),
                                              np.broadcast_to(values[sb].reshape(sb),
                                                              out_shape).ravel())}
    assert len(pairs) == 65536
    conv = conv_result("mcusearch", fast.emit_fast(g, tmp_path / "c"), g, x, want)
    _, meas = run_on("qemu-m7", conv, tmp_path)
    assert meas.max_abs_error == 0
    ((_, count),) = meas.layer_counts
    print(f"{op} {layout} {quant}: {count / 65536:.2f} instructions/element")
    assert count / 65536 < (MAX_MUL_SAME if (op, layout) == ("MUL", "same_shape") else
                            MAX_PER_ELEMENT[op]), count / 65536


@pytest.mark.skipif(not HAVE_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm")
def test_int8_mul_same_shape_tail_in_qemu_m7(tmp_path):
    """A same-shape MUL of 23 elements: mul_same_simd's five blocks of four and its three-element
    tail, against the interpreter on 64 inputs (every int8 value of the input across them)."""
    from test_codegen_fast import run_on
    from test_ops_shape import conv_result, one_op, schema
    rng = np.random.default_rng(5)
    c = rng.integers(-128, 128, (1, 1, 23)).astype(np.int8)
    path = tmp_path / "mul.tflite"
    path.write_bytes(one_op("MUL", [dict(shape=(1, 1, 23), type="int8", q=(0.0117, 3)),
                                    dict(shape=(1, 1, 23), type="int8", q=(0.0137, -7), data=c)],
                            [dict(shape=(1, 1, 23), type="int8", q=(0.0323, 5))],
                            schema().MulOptionsT()))
    g = graph_from_tflite(path)
    x = rng.permutation(np.resize(np.arange(-128, 128, dtype=np.int8), 64 * 23)).reshape(64, 23)
    want = cgen.tflite_tensor(path, x, g.output_id).astype(np.int8)
    assert len(np.unique(want)) > 50
    conv = conv_result("mcusearch", fast.emit_fast(g, tmp_path / "c"), g, x, want)
    _, meas = run_on("qemu-m7", conv, tmp_path)
    assert meas.max_abs_error == 0


# ---- int8 ADD / SUB / MUL with a constant operand: tables made by the generator -----------------

def _x_all_values(shape) -> np.ndarray:
    """An int8 input of ``shape``: (1, 256, C) holds every value on every channel, others distinct
    values (a fixed permutation, all 256 of them for 256 elements)."""
    v = np.arange(-128, 128, dtype=np.int8)
    if shape[1] == 256:
        return np.repeat(v, shape[-1]).reshape(shape)
    return np.random.default_rng(3).permutation(v)[:int(np.prod(shape))].reshape(shape)


# (op, constant first, x shape, constant shape, (q_x, q_c, q_out), fused ReLU, expected path):
# "table" is lut_s8 (a one-value constant), "shift" / "tx" add_const_s8 with x of the larger
# scale (rescaled by a shift) or of the smaller (or SUB's second: a negated multiplier; x's
# rescaled values from a table)
CONST_CASES = {
    "add_scalar": ("ADD", False, (1, 256, 1), (), ((0.02, 3), (0.05, -9), (0.04, 2)), False,
                   "table"),
    "sub_scalar_first": ("SUB", True, (1, 256, 1), (1,), ((1 / 256, -128), (1 / 255, -128),
                                                          (1 / 128, -1)), False, "table"),
    "mul_scalar": ("MUL", False, (1, 256, 1), (1, 1, 1), ((0.03, -5), (0.5 / 127, 0),
                                                          (0.015, 1)), False, "table"),
    "add_channels_x_larger": ("ADD", False, (1, 256, 8), (1, 1, 8),
                              ((0.05, -3), (0.011, 7), (0.06, 4)), False, "shift"),
    "add_channels_x_smaller": ("ADD", True, (1, 256, 8), (8,),
                               ((0.009, 11), (0.04, -20), (0.045, -2)), True, "tx"),
    "sub_channels_x_second": ("SUB", True, (1, 256, 4), (1, 1, 4),
                              ((0.02, -1), (0.03, 5), (0.05, 0)), False, "tx"),
    "sub_same_shape_x_first": ("SUB", False, (1, 16, 16), (1, 16, 16),
                               ((1 / 64, 0), (1 / 64, 0), (1 / 32, 0)), False, "shift"),
    "add_bias_like_lstm": ("ADD", False, (1, 64), (64,),
                           ((0.0187, -25), (1 / 255, -128), (0.0187, -25)), False, "shift"),
}


def _const_case(name: str, d: Path):
    from test_ops_shape import one_op, schema
    op, first, xs, cs, (qx, qc, qo), relu, path = CONST_CASES[name]
    s = schema()
    rng = np.random.default_rng(len(name))
    c = rng.integers(-128, 128, cs, dtype=np.int8) if cs else np.int8(rng.integers(-128, 128))
    if name == "sub_same_shape_x_first":
        c = np.tile(np.array([-128, 127, 0, -1, 1, 64, -64, 33], np.int8), 32).reshape(cs)
    options = {"MUL": s.MulOptionsT, "ADD": s.AddOptionsT, "SUB": s.SubOptionsT}[op]()
    if relu:
        options.fusedActivationFunction = s.ActivationFunctionType.RELU
    x_t = dict(shape=xs, type="int8", q=qx)
    c_t = dict(shape=cs, type="int8", q=qc, data=np.asarray(c))
    out_shape = tuple(np.broadcast_shapes(xs, cs))
    model = d / f"{name}.tflite"
    model.write_bytes(one_op(op, [c_t, x_t] if first else [x_t, c_t],
                             [dict(shape=out_shape, type="int8", q=qo)], options))
    g = graph_from_tflite(model)
    (binary,) = g.compute_ops
    assert isinstance(binary, Binary) and binary.function == op
    if path == "table":
        assert binary.scalar_table() is not None
    else:
        k = binary.const_add()
        assert binary.scalar_table() is None and (k["tx"] is None) == (path == "shift")
    x = _x_all_values(xs).reshape(1, -1)
    return g, model, x, cgen.tflite_tensor(model, x, g.output_id).astype(np.int8)


def test_binary_s8_arithmetic_is_tflites(tmp_path):
    """binary_s8 (the generator's tables) against the interpreter on every input value of each
    constant-operand case."""
    for name in CONST_CASES:
        g, model, x, want = _const_case(name, tmp_path)
        (binary,) = g.compute_ops
        c = np.broadcast_to(binary.const.reshape(binary.const.shape),
                            (1,) + tuple(binary.out_shape)).reshape(-1)
        a, b = (c, x.reshape(-1)) if binary.const_index == 0 else (x.reshape(-1), c)
        lo, hi = binary.act
        got = binary_s8(binary.function, binary.quant, a, b, int(lo), int(hi))
        np.testing.assert_array_equal(got, want.reshape(-1), err_msg=name)


@pytest.mark.parametrize("name", list(CONST_CASES))
def test_int8_constant_operand_host_both_generators(tmp_path, name):
    """Each case through both generators on the host (lut_s8 or add_const_s8 in the generated
    C, and an M0+ cross-compile): bit-exact with the interpreter on every input value."""
    g, _, x, want = _const_case(name, tmp_path)
    for gen in ("mcusearch-ref", "mcusearch"):
        conv = _conv_result(g, tmp_path / gen, gen, x, want.reshape(1, -1), 0.0, 0.0)
        names = " ".join(p.name for p in conv.sources)
        kernel = "lut_s8" if CONST_CASES[name][-1] == "table" else "add_const_s8"
        assert kernel in names, names
        tc.check(conv, tmp_path / gen)


@pytest.mark.skipif(not HAVE_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm")
@pytest.mark.parametrize("board", ["qemu-m7", "qemu-m3"])
def test_int8_constant_operand_on_target(tmp_path, board):
    """The add_const_s8 cases on the target (the M7's SMMLAR / SSAT path, the M3's C one):
    measure() raises unless every output equals the interpreter's. On the M7 an element costs at
    most 13 instructions, 16 with a fused ReLU (mcus_add_bcast_s8 took 25-37)."""
    from test_codegen_fast import run_on
    from test_ops_shape import conv_result
    for name, case in CONST_CASES.items():
        if case[-1] == "table":
            continue
        d = tmp_path / name
        g, _, x, want = _const_case(name, d.parent)
        conv = conv_result("mcusearch", fast.emit_fast(g, d / "c"), g, x, want.reshape(1, -1))
        _, meas = run_on(board, conv, d)
        assert meas.max_abs_error == 0
        ((_, count),) = meas.layer_counts
        if board == "qemu-m7":
            print(f"{name}: {count / x.size:.2f} instructions/element")
            assert count / x.size < (16 if case[5] else 13), (name, count / x.size)


# ---- int8 MUL / ADD / SUB of a map and a computed per-channel vector (squeeze-and-excite) --------

# op, vector first, ((scale, zero point) of the map, the vector, the output), activation: gates as
# sigmoid / hard-sigmoid outputs give them, equal scales (every product a tie), ADD / SUB with the
# map rescaled by a table (x of the smaller scale; SUB's map second: a negated multiplier) and by
# a shift (x of the larger scale), fused ReLU / ReLU6 (TFLite fuses them into ADD, SUB and MUL)
VECTOR_CASES = {
    "mul_sigmoid_gate": ("MUL", False, ((0.0235, -128), (1 / 256, -128), (0.0173, -128)), None),
    "mul_gate_first": ("MUL", True, ((0.041, 9), (1 / 255, -128), (0.037, -3)), None),
    "mul_ties": ("MUL", False, ((1 / 64, 0), (1 / 64, 0), (1 / 64, 0)), None),
    "mul_relu6": ("MUL", True, ((0.05, -20), (0.021, 11), (0.03, -128)), "relu6"),
    "add_table": ("ADD", False, ((0.011, 7), (0.05, -3), (0.06, 4)), None),
    "add_table_vector_first_relu": ("ADD", True, ((0.009, 11), (0.04, -20), (0.045, -2)), "relu"),
    "add_shift": ("ADD", True, ((0.05, -3), (0.011, 7), (0.06, 4)), None),
    "sub_map_second": ("SUB", True, ((0.02, -1), (0.03, 5), (0.05, 0)), None),
}
VECTOR_CHANNELS = (63, 6)     # 63: a row of one channel table with a 3-channel tail; 6: repeated


def vector_graph(name: str, channels: int):
    """input (257, 1, C) -> row 0 is the vector (1, 1, C), rows 1..256 the map (256, 1, C) ->
    the case's op of map and vector (in the case's order): a computed operand, as the gate of a
    squeeze-and-excite block."""
    from mcusearch.convert.graph import Graph, Tensor
    from mcusearch.convert.ops.shape import Slice
    op, first, (qm, qv, qo), act = VECTOR_CASES[name]
    c = channels
    lo, hi = {None: (-128, 127), "relu": (max(-128, qo[1]), 127),
              "relu6": (max(-128, qo[1]), min(127, qo[1] + round(6 / qo[0])))}[act]
    g = Graph(dtype="int8", input_shape=(257, 1, c), source=f"vector {name}")
    g.input_scale, g.input_zero_point = 1.0, 0
    vec = Slice("vector", (257, 1, c), (1, 1, c), dims=(1, 1, 1, c), strides=(0, 0, 0, 1))
    fmap = Slice("map", (257, 1, c), (256, 1, c), base=c, dims=(1, 256, 1, c),
                 strides=(0, c, 0, 1))
    shapes, quants = [(256, 1, c), (1, 1, c)], [qm, qv]
    if first:
        shapes, quants = shapes[::-1], quants[::-1]
    binary = Binary("op", shapes[0], (256, 1, c), function=op,
                    geometry=broadcast_geometry(shapes[0], shapes[1], (256, 1, c)),
                    act=(lo, hi), quant=binary_quant(op, *quants, qo))
    g.ops = [vec, fmap, binary]
    g.input_id, g.output_id = 0, 3
    g.tensors = {0: Tensor(0, (257, 1, c), "input", 1.0, 0), 1: Tensor(1, (1, 1, c), "vector"),
                 2: Tensor(2, (256, 1, c), "map"), 3: Tensor(3, (256, 1, c), "op")}
    vec.inputs, vec.output, fmap.inputs, fmap.output = (0,), 1, (0,), 2
    binary.inputs, binary.output = ((1, 2) if first else (2, 1)), 3
    g.output_scale, g.output_zero_point = qo
    return g.finish()


def vector_inputs(channels: int) -> np.ndarray:
    """Inputs pairing every vector value with every map value on every channel: row 0 (the
    vector) steps through -128..127 across channels and inputs, rows 1..256 hold r - 129."""
    c = channels
    fmap = np.repeat(np.arange(-128, 128), c).reshape(256, c)
    rows = [np.concatenate([((s + np.arange(c)) % 256 - 128)[None], fmap])
            for s in range(0, 256, c)]
    return np.stack(rows).reshape(len(rows), -1).astype(np.int8)


def vector_expected(g, x: np.ndarray) -> np.ndarray:
    """binary_s8 (bit-exact with the interpreter: the all-pairs tests above) per input."""
    binary = g.ops[-1]
    c = g.input_shape[-1]
    vec, fmap = x[:, None, :c], x[:, c:].reshape(len(x), 256, c)
    a, b = (vec, fmap) if binary.inputs[0] == 1 else (fmap, vec)
    lo, hi = binary.act
    return binary_s8(binary.function, binary.quant, a, b, int(lo), int(hi)).reshape(len(x), -1)


def test_vector_cases_take_their_paths():
    """Each case is what its name says: the geometry a per-channel broadcast in the case's order,
    ADD / SUB's map rescaled by the generator's table or by a shift, the pairs all covered."""
    for name, (op, first, _, act) in VECTOR_CASES.items():
        for c in VECTOR_CHANNELS:
            g = vector_graph(name, c)
            binary = g.ops[-1]
            geo = binary.geometry
            assert geo.dims == (256, c)
            assert (geo.a_stride, geo.b_stride) == (((0, 1), (c, 1)) if first else
                                                    ((c, 1), (0, 1)))
            if op != "MUL":
                tx = binary.periodic_tx()
                assert (tx is None) == (name == "add_shift"), name
                if tx is not None:
                    q, role = binary.quant, "skip" if first else "prev"
                    from mcusearch.convert.quant import add_rescaled
                    np.testing.assert_array_equal(tx, 2 * add_rescaled(q, role,
                                                                         np.arange(-128, 128)))
            assert (binary.act != (-128, 127)) == (act is not None)
            x = vector_inputs(c)
            vec, fmap = x[:, :c], x[:, c:].reshape(len(x), 256, c)
            assert set(np.unique(vec)) == set(range(-128, 128))
            assert all(set(np.unique(fmap[:, :, k])) == set(range(-128, 128)) for k in range(c))
            assert len(np.unique(vector_expected(g, x))) > 20          # not one saturated value


@pytest.mark.parametrize("name", list(VECTOR_CASES))
def test_int8_vector_operand_every_pair_host(tmp_path, name):
    """Every (map, vector) pair through both generators on the host (strict flags), bit-exact,
    and the generated C cross-compiled for the Cortex-M0+."""
    for c in VECTOR_CHANNELS:
        g = vector_graph(name, c)
        x = vector_inputs(c)
        want = vector_expected(g, x).astype(np.int8)
        for gen in ("mcusearch-ref", "mcusearch"):
            d = tmp_path / f"{gen}{c}"
            tc.check(_conv_result(g, d, gen, x, want, 0.0, 0.0), d)     # and an M0+ compile


# instructions per element on qemu-m7 -O3 (measured: MUL 7.8-7.9, ADD / SUB with the table
# 9.6-9.8; before: MUL 9.3, ADD 13.4; with a fused clamp (the C loops) MUL 16.9-17.1, ADD 17.3-17.6)
MAX_VECTOR_PER_ELEMENT = {"MUL": 8.2, "ADD": 10.1, "SUB": 10.1, "clamp": 18.0}


@pytest.mark.skipif(not HAVE_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm")
@pytest.mark.parametrize("board", ["qemu-m7", "qemu-m3", "qemu-m0plus"])
def test_int8_vector_operand_every_pair_on_target(tmp_path, board):
    """Every case on the target (the M7's DSP loops, the C ones of the M3 and of the M0+, which
    has no SSAT either): measure() raises unless
    every output equals binary_s8's; on the M7 the op's instructions per element stay under the
    bound."""
    from test_codegen_fast import run_on
    from test_ops_shape import conv_result
    for name, (op, _, _, act) in VECTOR_CASES.items():
        for c in VECTOR_CHANNELS:
            d = tmp_path / f"{name}{c}"
            g = vector_graph(name, c)
            x = vector_inputs(c)
            want = vector_expected(g, x).astype(np.int8)
            conv = conv_result("mcusearch", fast.emit_fast(g, d / "c"), g, x, want)
            _, meas = run_on(board, conv, d)
            assert meas.max_abs_error == 0
            if board == "qemu-m7" and name != "add_shift":
                per = dict(meas.layer_counts)[f"op ({op.capitalize()})"] / (256 * c)
                print(f"{name} {c} channels: {per:.2f} instructions/element")
                assert per < MAX_VECTOR_PER_ELEMENT["clamp" if act else op], (name, c, per)
