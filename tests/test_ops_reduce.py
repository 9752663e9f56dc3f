"""REDUCE_MAX and REDUCE_MIN (mcusearch/convert/ops/shape.py, Reduce) through both mcusearch
generators.

Keras models with GlobalMaxPooling2D (keepdims off and on; of a 1 x T map, in both 1-D layouts),
GlobalMaxPooling1D and tf.reduce_max / tf.reduce_min over the channels and over one spatial axis are
lowered by TensorFlow's converter and converted by "mcusearch-ref" and "mcusearch": float32 on the
host within the converter's tolerance of Keras, int8 bit-exact with the TFLite interpreter.
One-operator models check the geometry (negative, scalar and repeated axes, keep_dims, the batch
axis, size-1 axes between reduced ones) against the interpreter on many random inputs. An int8
reduction whose input and output are quantised differently (TFLite refuses to run it) and a
reduction over axes that are not adjacent are clear errors; one int8 model runs on QEMU
(Cortex-M7).
"""
from __future__ import annotations

import numpy as np
import pytest

import test_convert as tc
from mcusearch.convert import cgen, fast
from mcusearch.convert.frontend import graph_from_keras, graph_from_tflite
from mcusearch.convert.host import host_run
from mcusearch.convert.ops.shape import Reduce
from test_ops_shape import (HAVE_ARM, check_both_generators, conv_result, interpret,
                            lowered_once, one_op, schema)

tf, L = tc.tf, tc.L
N_PROBE = 16        # probe inputs of the Keras models: every reduced position is some extreme


# ---- one-operator models: geometry against the interpreter ------------------------------------

# (input shape, axis tensor, keep_dims, (outer, reduce, inner) expected): GlobalMaxPooling2D and
# 1D, the channels by a negative axis, an axis given as a scalar, the batch axis with H, the same
# axis twice, H and C around a size-1 W (adjacent once W is dropped), all axes but the batch.
CASES = [((1, 4, 3, 5), [1, 2], False, (1, 12, 5)),
         ((1, 4, 3, 5), [2, 1], True, (1, 12, 5)),
         ((1, 7, 6), [1], False, (1, 7, 6)),
         ((1, 4, 3, 5), [-1], False, (12, 5, 1)),
         ((1, 4, 3, 5), 2, True, (4, 3, 5)),
         ((1, 4, 3, 5), [0, 1], False, (1, 4, 15)),
         ((1, 4, 3, 5), [2, -2], False, (4, 3, 5)),
         ((1, 4, 1, 5), [1, 3], True, (1, 20, 1)),
         ((1, 4, 3, 5), [1, 2, 3], False, (1, 60, 1))]


def reduce_model(opname: str, shape, axes, keep: bool, dtype: str, q_in=None, q_out=None) -> bytes:
    """A .tflite of one REDUCE_MAX / REDUCE_MIN of a ``dtype`` input over constant ``axes`` (a list,
    or an int: a scalar axis tensor)."""
    red = {a % len(shape) for a in np.atleast_1d(axes)}
    out_shape = ([1 if k in red else d for k, d in enumerate(shape)] if keep else
                 [d for k, d in enumerate(shape) if k not in red])
    opts = schema().ReducerOptionsT()
    opts.keepDims = keep
    axis = np.asarray(axes, np.int32)
    return one_op(opname, [dict(shape=shape, type=dtype, q=q_in),
                           dict(shape=list(axis.shape), type="int32", data=axis)],
                  [dict(shape=out_shape, type=dtype, q=q_out)], opts)


def random_inputs(rng, dtype: str, n: int, size: int) -> np.ndarray:
    """``n`` inputs: float32 normal, or int8 over the whole range, a third of them drawn from
    -128, -1, 0, 1 and 127 (the int8 limits, and many equal candidates for the extreme)."""
    if dtype == "float32":
        return rng.normal(0, 1, (n, size)).astype(np.float32)
    x = rng.integers(-128, 128, (n, size))
    x[: n // 3] = rng.choice([-128, -1, 0, 1, 127], (n // 3, size))
    return x.astype(np.int8)


@pytest.mark.parametrize("case", range(len(CASES)))
def test_reduce_geometry_matches_tflite(tmp_path, case):
    """REDUCE_MAX and REDUCE_MIN, float32 and int8, on one case: the op's [outer][reduce][inner]
    view and the reference kernels' outputs for 200 random inputs equal the interpreter's."""
    shape, axes, keep, view = CASES[case]
    rng = np.random.default_rng(case)
    for opname in ("REDUCE_MAX", "REDUCE_MIN"):
        for dtype in ("float32", "int8"):
            q = (0.05, 3) if dtype == "int8" else None
            path = tmp_path / f"{opname}_{dtype}.tflite"
            path.write_bytes(reduce_model(opname, shape, axes, keep, dtype, q, q))
            g = graph_from_tflite(path)
            (op,) = g.compute_ops
            assert isinstance(op, Reduce) and op.kind == ("ReduceMax" if opname == "REDUCE_MAX"
                                                          else "ReduceMin")
            assert (op.outer, op.reduce, op.inner) == view
            x = random_inputs(rng, dtype, 200, int(np.prod(shape)))
            want = cgen.tflite_tensor(path, x, g.output_id)
            d = tmp_path / f"{opname}_{dtype}"
            got = host_run(conv_result("mcusearch-ref", cgen.emit_c(g, d / "c"), g, x, want),
                           d / "h", extra_cflags=tc.STRICT)
            np.testing.assert_array_equal(got, want, err_msg=f"{opname} {dtype} {CASES[case]}")


def test_int8_reduce_of_two_quantisations_is_refused_as_tflite_does(tmp_path):
    """TFLite's int8 REDUCE_MAX compares stored values and fails to run when the output is
    quantised differently from the input; the converter says so instead of guessing a rescale."""
    x = np.zeros((1, 4, 3, 5), np.int8)
    same = reduce_model("REDUCE_MAX", (1, 4, 3, 5), [1, 2], False, "int8", (0.05, 3), (0.05, 3))
    assert interpret(same, x).shape == (1, 5)
    model = reduce_model("REDUCE_MAX", (1, 4, 3, 5), [1, 2], False, "int8", (0.05, 3), (0.1, 3))
    with pytest.raises(RuntimeError):
        interpret(model, x)
    path = tmp_path / "m.tflite"
    path.write_bytes(model)
    with pytest.raises(tc.StageError, match="REDUCE_MAX.*quantised differently.*not rescale"):
        graph_from_tflite(path)


def test_reduce_over_axes_that_are_not_adjacent_is_a_clear_error():
    i = L.Input((4, 3, 5))
    x = L.Conv2D(4, 1, name="conv")(i)
    m = tf.keras.Model(i, L.Lambda(lambda t: tf.reduce_min(t, axis=[1, 3]), name="hc_min")(x))
    with pytest.raises(tc.StageError, match=r"TFLite op REDUCE_MIN \(a reduction over axes "
                                            r"\[1, 3\] of \[1, 4, 3, 4\] that are not "
                                            r"adjacent\) is not supported"):
        graph_from_keras(m)


# ---- Keras models through both generators -------------------------------------------------------

def global_max_2d(keepdims: bool, seed=1):
    """Conv2D -> GlobalMaxPooling2D, the model's output; keepdims: -> a 1 x 1 Conv2D on the
    1 x 1 x C map -> Flatten (the reduction writes an inner buffer)."""
    tf.keras.utils.set_random_seed(seed)
    i = L.Input((6, 5, 3))
    x = L.Conv2D(6, 3, name="conv")(i)
    x = L.GlobalMaxPooling2D(keepdims=keepdims, name="gmp")(x)
    if keepdims:
        x = L.Flatten(name="flat")(L.Conv2D(4, 1, name="head")(x))
    name = "global_max_2d" + ("_keep" if keepdims else "")
    return tc._random_biases(tf.keras.Model(i, x, name=name), seed)


def global_max_1d(seed=2):
    """Conv1D -> GlobalMaxPooling1D (REDUCE_MAX over the time axis) -> Dense."""
    tf.keras.utils.set_random_seed(seed)
    i = L.Input((20, 4))
    x = L.Conv1D(8, 3, padding="same", name="conv")(i)
    out = L.Dense(3, name="logits")(L.GlobalMaxPooling1D(name="gmp")(x))
    return tc._random_biases(tf.keras.Model(i, out, name="global_max_1d"), seed)


def row_max(seed=5):
    """Conv2D (1 x 3 kernels) on a 1 x 20 map -> GlobalMaxPooling2D -> Dense: REDUCE_MAX reads the
    convolution's 1 x T output itself, no reshape between them (GlobalMaxPooling1D has one)."""
    tf.keras.utils.set_random_seed(seed)
    i = L.Input((1, 20, 4))
    x = L.Conv2D(8, (1, 3), padding="same", name="conv")(i)
    out = L.Dense(3, name="logits")(L.GlobalMaxPooling2D(name="gmp")(x))
    return tc._random_biases(tf.keras.Model(i, out, name="row_max"), seed)


def channel_max(seed=3):
    """Conv2D -> tf.reduce_max over the channels (a 4 x 3 map) -> Flatten -> Dense."""
    tf.keras.utils.set_random_seed(seed)
    i = L.Input((6, 5, 3))
    x = L.Conv2D(5, 3, name="conv")(i)
    x = L.Lambda(lambda t: tf.reduce_max(t, axis=-1), name="ch_max")(x)
    out = L.Dense(3, name="logits")(L.Flatten(name="flat")(x))
    return tc._random_biases(tf.keras.Model(i, out, name="channel_max"), seed)


def column_min(seed=4):
    """Conv2D -> tf.reduce_min over H with keepdims (a 1 x 3 x 5 map) -> Flatten."""
    tf.keras.utils.set_random_seed(seed)
    i = L.Input((6, 5, 3))
    x = L.Conv2D(5, 3, name="conv")(i)
    x = L.Lambda(lambda t: tf.reduce_min(t, axis=1, keepdims=True), name="h_min")(x)
    return tc._random_biases(tf.keras.Model(i, L.Flatten(name="flat")(x), name="column_min"),
                             seed)


# name -> (model builder, the reduction's kind and (outer, reduce, inner) in the graph read with
# 1-D maps as columns, the default of graph_from_keras)
MODELS = {"global_max_2d": (lambda: global_max_2d(False), "ReduceMax", (1, 12, 6)),
          "global_max_2d_keep": (lambda: global_max_2d(True), "ReduceMax", (1, 12, 6)),
          "global_max_1d": (global_max_1d, "ReduceMax", (1, 20, 8)),
          "row_max": (row_max, "ReduceMax", (1, 20, 8)),
          "channel_max": (channel_max, "ReduceMax", (12, 5, 1)),
          "column_min": (column_min, "ReduceMin", (1, 4, 15))}


@pytest.fixture(scope="module")
def lowered(tmp_path_factory):
    """(name, dtype) -> (graph, probe inputs, expected outputs), each lowered once; .model(name):
    the Keras model, .dir: where the int8 .tflite files are."""
    models: dict = {}

    def model(name: str):
        if name not in models:
            models[name] = MODELS[name][0]()
        return models[name]
    get = lowered_once(tmp_path_factory.mktemp("reduce_models"), model, n=N_PROBE)
    get.model = model
    return get


@pytest.mark.parametrize("dtype", ["float32", "int8"])
@pytest.mark.parametrize("name", list(MODELS))
def test_model_both_generators_on_host(lowered, tmp_path, name, dtype):
    """float32 within tolerance of Keras, int8 bit-exact with the interpreter; the optimised
    generator runs the reduction through its reference kernel (a fallback layer)."""
    g, x, want = lowered(name, dtype)
    _, kind, view = MODELS[name]
    (op,) = [op for op in g.compute_ops if isinstance(op, Reduce)]
    assert op.kind == kind and (op.outer, op.reduce, op.inner) == view
    # named after its Keras layer, not after its axis tensor ('.../gmp/Max/reduction_indices')
    assert op.name == {"channel_max": "ch_max", "column_min": "h_min"}.get(name, "gmp")
    check_both_generators(g, x, want, tmp_path)
    infos = fast.emit_fast(g, tmp_path / "plan").infos
    assert [i.variant for i in infos if i.kind == kind] == ["fallback"]


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_row_max_in_both_layouts(lowered, tmp_path, dtype):
    """A reduction reading a 1 x T map directly is a flat op for the 1-D layout pass
    (mcusearch/convert/rows1d.py): read with 1-D maps as columns (the graph tested above) the map
    becomes T x 1, in the converters' default layout it stays 1 x T; same view, same outputs."""
    g_columns, x, want = lowered("row_max", dtype)
    g = (graph_from_keras(lowered.model("row_max"), columns=False) if dtype == "float32"
         else graph_from_tflite(lowered.dir / "row_max.tflite", columns=False))
    ((op_columns,), (op,)) = ([op for op in h.compute_ops if isinstance(op, Reduce)]
                              for h in (g_columns, g))
    assert op_columns.in_shape == (20, 1, 8) and op.in_shape == (1, 20, 8)
    assert (op.outer, op.reduce, op.inner) == MODELS["row_max"][2]
    check_both_generators(g, x, want, tmp_path, cross=False)


@pytest.mark.skipif(not HAVE_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm")
def test_int8_global_max_in_qemu_m7(lowered, tmp_path):
    """GlobalMaxPooling2D(keepdims=True) between two convolutions, int8, built by "mcusearch" and
    run on the emulated Cortex-M7; measure() raises unless the firmware's outputs match the
    interpreter's."""
    from test_codegen_fast import run_on

    g, x, want = lowered("global_max_2d_keep", "int8")
    conv = conv_result("mcusearch", fast.emit_fast(g, tmp_path / "c"), g, x, want)
    _, meas = run_on("qemu-m7", conv, tmp_path)
    assert meas is not None
