"""Data-movement and reduction op plug-ins (mcusearch/convert/ops/shape.py) through both mcusearch
generators: PAD, MEAN, CONCATENATION, PACK, SLICE, STRIDED_SLICE, SPLIT, SPLIT_V, UNPACK, TRANSPOSE
and RESIZE_NEAREST_NEIGHBOR.

Small Keras models are lowered by TensorFlow's converter (float32, and full-integer int8), converted
by "mcusearch-ref" and "mcusearch" and run on the host: float32 within the converter's tolerance of
Keras, int8 bit-exact with the TFLite interpreter's built-in kernels. int8 MEAN is checked on its
own against one-operator models (both of TFLite's kernels, many random inputs, forced rounding
ties); STRIDED_SLICE and RESIZE_NEAREST_NEIGHBOR geometry against the interpreter over many
configurations; one model with several of these ops runs on QEMU (Cortex-M7).
"""
from __future__ import annotations

import shutil
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import test_convert as tc
from mcusearch.convert import ConvertResult, cgen, fast
from mcusearch.convert.frontend import graph_from_keras, graph_from_tflite
from mcusearch.convert.host import host_run
from mcusearch.convert.lowering import contiguous_run
from mcusearch.convert.ops.shape import Mean, Slice, nearest_source
from mcusearch.convert.quant import quantize_input
from mcusearch.model.quantize import to_int8_tflite

tf, L = tc.tf, tc.L
HAVE_ARM = bool(shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm"))


# ---- helpers ----------------------------------------------------------------------------------

def conv_result(converter: str, em, g, x: np.ndarray, expected: np.ndarray) -> ConvertResult:
    f32 = g.dtype == "float32"
    return ConvertResult(converter=converter, sources=em.sources, include_dirs=em.include_dirs,
                         input_dtype=g.dtype, output_dtype=g.dtype, inputs=x, expected=expected,
                         atol=cgen.FLOAT_ATOL if f32 else 0.0, rtol=cgen.FLOAT_RTOL if f32 else 0.0,
                         arena_bytes=em.arena_bytes, output_meaning="test", layers=em.layers)


def lower(m, dtype: str, d: Path, n: int = 8, seed: int = 0):
    """(graph, probe inputs, expected outputs) of Keras model ``m`` in ``dtype``: float32 from
    Keras, int8 from the interpreter's built-in kernels on the full-integer model."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1.0, (n,) + tuple(m.input_shape[1:])).astype(np.float32)
    if dtype == "float32":
        return graph_from_keras(m), x.reshape(n, -1), m.predict(x, verbose=0).reshape(n, -1)
    rep = rng.normal(0, 1.0, (40,) + tuple(m.input_shape[1:])).astype(np.float32)
    path = to_int8_tflite(m, rep, d / f"{m.name}.tflite")
    g = graph_from_tflite(path)
    xq = quantize_input(x, g.input_scale, g.input_zero_point).reshape(n, -1)
    return g, xq, cgen.tflite_tensor(path, xq, g.output_id)


def lowered_once(d: Path, build, n: int = 8):
    """(name, dtype) -> :func:`lower` of Keras model ``build(name)`` in ``dtype``, each lowered
    once (a module fixture's cache); ``.dir``: where the int8 .tflite files are."""
    cache: dict = {}

    def get(name: str, dtype: str):
        if (name, dtype) not in cache:
            cache[name, dtype] = lower(build(name), dtype, d, n=n)
        return cache[name, dtype]
    get.dir = d
    return get


def check_both_generators(g, x, expected, d: Path, cross: bool = True) -> None:
    """Host-run both generators' C under strict flags and compare with ``expected``; ``cross``:
    also cross-compile the reference generator's sources for a Cortex-M0+."""
    spread = np.ptp(expected.astype(np.float64), axis=0).max()
    assert spread > 0, "every probe gives the same output: the comparison would prove nothing"
    for converter in ("mcusearch-ref", "mcusearch"):
        em = cgen.emit_c(g, d / converter) if converter == "mcusearch-ref" else \
            fast.emit_fast(g, d / converter)
        conv = conv_result(converter, em, g, x, expected)
        if cross and converter == "mcusearch-ref":
            tc.check(conv, d / f"{converter}_host")
            continue
        got = host_run(conv, d / f"{converter}_host", extra_cflags=tc.STRICT)
        if g.dtype == "int8":
            np.testing.assert_array_equal(got, expected)
        else:
            np.testing.assert_allclose(got, expected, atol=conv.atol, rtol=conv.rtol)


def one_op(opname: str, inputs: list[dict], outputs: list[dict], options=None,
           op_inputs: list[int] | None = None) -> bytes:
    """A .tflite holding one builtin operator. Tensors: {shape, type, q: (scale, zp), data}; those
    with data are constants, the others the model's inputs. ``op_inputs``: the operator's input
    tensors (indices into ``inputs``), if not all of them once."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as s

    m = s.ModelT()
    m.version = 3
    code = s.OperatorCodeT()
    code.builtinCode = getattr(s.BuiltinOperator, opname)
    code.deprecatedBuiltinCode = min(code.builtinCode, 127)
    code.version = 1
    m.operatorCodes = [code]
    m.buffers = [s.BufferT()]
    types = {"int8": s.TensorType.INT8, "float32": s.TensorType.FLOAT32,
             "int32": s.TensorType.INT32}
    tensors = []
    for k, t in enumerate(inputs + outputs):
        tt = s.TensorT()
        tt.shape, tt.type, tt.name = list(t["shape"]), types[t["type"]], f"t{k}"
        buf = s.BufferT()
        if t.get("data") is not None:
            buf.data = np.frombuffer(np.ascontiguousarray(t["data"]).tobytes(), np.uint8)
        m.buffers.append(buf)
        tt.buffer = len(m.buffers) - 1
        if t.get("q") is not None:
            tt.quantization = s.QuantizationParametersT()
            tt.quantization.scale = [float(t["q"][0])]
            tt.quantization.zeroPoint = [int(t["q"][1])]
        tensors.append(tt)
    op = s.OperatorT()
    op.opcodeIndex = 0
    op.inputs = list(range(len(inputs))) if op_inputs is None else list(op_inputs)
    op.outputs = list(range(len(inputs), len(tensors)))
    if options is not None:
        op.builtinOptionsType = getattr(s.BuiltinOptions, type(options).__name__[:-1])
        op.builtinOptions = options
    sg = s.SubGraphT()
    sg.tensors, sg.operators = tensors, [op]
    sg.inputs = [k for k, t in enumerate(inputs) if t.get("data") is None]
    sg.outputs = list(op.outputs)
    m.subgraphs = [sg]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def schema():
    from tensorflow.lite.python import schema_py_generated as s
    return s


def interpret(model: bytes, x: np.ndarray) -> np.ndarray:
    """The interpreter's output (built-in kernels, as the generator's oracle) for one input."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        it = tf.lite.Interpreter(model_content=model, experimental_op_resolver_type=getattr(
            tf.lite.experimental.OpResolverType, cgen.TFLITE_RESOLVER))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return np.array(it.get_tensor(it.get_output_details()[0]["index"]))


# ---- MEAN: bit-exact with TFLite's kernels ------------------------------------------------------

# (input shape, axes, keep_dims): GlobalAveragePooling2D with and without keepdims (the keepdims
# one goes to TFLite's optimized 4-D kernel: 16-channel vector blocks round ties up, the tail away
# from zero), GlobalAveragePooling1D; counts that are powers of two give exact ties.
MEAN_CASES = [((1, 2, 2, 20), [1, 2], True), ((1, 2, 2, 20), [1, 2], False),
              ((1, 4, 4, 33), [1, 2], True), ((1, 5, 3, 7), [1, 2], False),
              ((1, 8, 6), [1], False), ((1, 20, 6), [1], False), ((1, 8, 6), [1], True),
              ((1, 2, 2, 20), [-3, -2], True)]     # negative axes: TFLite's reference kernel


def mean_model(shape, axes, keep: bool, q_in, q_out) -> bytes:
    red = {a % len(shape) for a in axes}
    out_shape = ([1 if k in red else d for k, d in enumerate(shape)] if keep else
                 [d for k, d in enumerate(shape) if k not in red])
    opts = schema().ReducerOptionsT()
    opts.keepDims = keep
    return one_op("MEAN", [dict(shape=shape, type="int8", q=q_in),
                           dict(shape=[len(axes)], type="int32", data=np.array(axes, np.int32))],
                  [dict(shape=out_shape, type="int8", q=q_out)], opts)


def test_mean_int8_bit_exact_with_tflite_random_inputs_and_ties(tmp_path):
    rng = np.random.default_rng(7)
    ties = Counter()
    for c, (shape, axes, keep) in enumerate(MEAN_CASES):
        n = int(np.prod([shape[a] for a in axes]))
        s_in, z_in = 0.05, int(rng.integers(-20, 20))
        # same quantisation, output scale twice the input's (dyadic: exact ties), random
        for q, (s_out, z_out) in enumerate([(s_in, z_in), (2 * s_in, int(rng.integers(-9, 9))),
                                            (float(rng.uniform(0.01, 0.1)),
                                             int(rng.integers(-128, 128)))]):
            path = tmp_path / f"mean{c}_{q}.tflite"
            path.write_bytes(mean_model(shape, axes, keep, (s_in, z_in), (s_out, z_out)))
            g = graph_from_tflite(path)
            (op,) = g.compute_ops
            assert isinstance(op, Mean) and op.reduce == n
            four_d_hw = keep and len(shape) == 4 and set(axes) == {1, 2}
            assert op.vector_channels == (16 * (shape[-1] // 16) if four_d_hw else 0)
            x = rng.integers(-128, 128, (300, int(np.prod(shape)))).astype(np.int8)
            x[:100] = rng.integers(-3, 4, x[:100].shape) + z_in      # sums near the zero point
            want = cgen.tflite_tensor(path, x, g.output_id)
            got = host_run(conv_result("mcusearch-ref", cgen.emit_c(g, tmp_path / f"c{c}_{q}"), g,
                                       x, want), tmp_path / f"h{c}_{q}")
            np.testing.assert_array_equal(got, want, err_msg=f"{shape} {axes} keep={keep} q={q}")
            if q < 2:       # count the exact ties the comparison covered (real = acc * s / s')
                acc = x.reshape((300,) + shape[1:]).astype(np.int64).sum(
                    axis=tuple(a for a in axes)) - n * z_in
                real = acc * (s_in / s_out) / n
                tie = np.abs(real - np.trunc(real)) == 0.5
                ties["keep" if four_d_hw else "reference"] += int(tie.sum())
                ties["negative"] += int((tie & (real < 0)).sum())
    assert ties["keep"] > 100 and ties["reference"] > 100 and ties["negative"] > 100, ties


def test_mean_int8_keepdims_channels_in_and_out_of_the_vector_loop(tmp_path):
    """GlobalAveragePooling2D(keepdims=True) over 2 x 2 with 16 <= C < 32: channels 0..15 round
    ties up, 16.. away from zero - the firmware keeps the difference."""
    shape = (1, 2, 2, 20)
    path = tmp_path / "m.tflite"
    path.write_bytes(mean_model(shape, [1, 2], True, (0.05, 0), (0.05, 0)))
    g = graph_from_tflite(path)
    x = np.zeros((1, 80), np.int8)          # element (h * 2 + w) * 20 + c
    x[0, [0, 20, 16, 36]] = -1              # channels 0 and 16: -2 / 4 = -0.5 -> 0 and -1
    x[0, 1::20] = -1                        # channel 1: -4 / 4 = -1 in both loops
    want = cgen.tflite_tensor(path, x, g.output_id)
    assert want[0, 0] == 0 and want[0, 16] == -1 and want[0, 1] == -1
    got = host_run(conv_result("mcusearch-ref", cgen.emit_c(g, tmp_path / "c"), g, x, want),
                   tmp_path / "h")
    np.testing.assert_array_equal(got, want)


# ---- geometry of STRIDED_SLICE and RESIZE_NEAREST_NEIGHBOR vs the interpreter -----------------

def apply_copy(op: Slice, x: np.ndarray) -> np.ndarray:
    """What the strided-copy kernel computes, in numpy."""
    idx = op.base + sum(np.arange(d).reshape([-1 if j == k else 1 for j in range(4)]) * s
                        for k, (d, s) in enumerate(zip(op.dims, op.strides)))
    return x.reshape(-1)[idx.reshape(-1)]


def test_strided_slice_geometry_matches_tflite(tmp_path):
    """60 random begin / end / stride (negative too) / begin, end and shrink masks on 1x5x6x4:
    numpy indexing, the interpreter and the generator's strided copy agree, and
    lowering.contiguous_run finds exactly the copies of consecutive elements."""
    rng = np.random.default_rng(3)
    shape = (1, 5, 6, 4)
    x = rng.normal(size=shape).astype(np.float32)
    seen = views = 0
    for k in range(60):
        begin, end = rng.integers(-6, 6, 4), rng.integers(-6, 7, 4)
        stride = rng.choice([-2, -1, 1, 2, 3], 4)
        begin[0], end[0], stride[0] = 0, 1, 1
        bm, em, sm = (int(rng.integers(0, 16)) & 14 for _ in range(3))
        sm &= ~(bm | em)
        stride[[a for a in range(4) if sm >> a & 1]] = 1     # as TensorFlow emits shrunk axes
        if any(sm >> a & 1 and not -shape[a] <= begin[a] < shape[a] for a in range(4)):
            continue
        index = tuple(int(begin[a]) if sm >> a & 1 else
                      slice(None if bm >> a & 1 else int(begin[a]),
                            None if em >> a & 1 else int(end[a]), int(stride[a]))
                      for a in range(4))
        ref = x[index]
        if ref.size == 0:
            continue
        opts = schema().StridedSliceOptionsT()
        opts.beginMask, opts.endMask, opts.shrinkAxisMask = bm, em, sm
        model = one_op("STRIDED_SLICE", [dict(shape=shape, type="float32")] + [
            dict(shape=[4], type="int32", data=v.astype(np.int32)) for v in (begin, end, stride)],
            [dict(shape=list(ref.shape), type="float32")], opts)
        want = interpret(model, x)
        np.testing.assert_array_equal(want, ref)          # the test's numpy model of TF
        path = tmp_path / f"ss{k}.tflite"
        path.write_bytes(model)
        (op,) = graph_from_tflite(path).compute_ops
        np.testing.assert_array_equal(apply_copy(op, x), want.reshape(-1))
        # the optimised generator reads a copy of consecutive elements in place
        run = contiguous_run(op)
        idx = apply_copy(op, np.arange(x.size))
        consecutive = bool(np.all(np.diff(idx) == 1))
        assert (run is not None) == consecutive and (run is None or run == idx[0]), (index, run)
        views += run is not None
        seen += 1
    assert seen >= 30 and views >= 3, (seen, views)


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_resize_nearest_sources_match_tflite(dtype):
    """Every (in, out) size pair up to 6 -> 12 and each mode TFLite has: the pixel each output
    reads, read from the interpreter's output on an input whose values are their positions."""
    s = schema()
    checked = 0
    for align, half in ((False, False), (False, True), (True, False)):
        for ih in range(1, 7):
            for oh in range(1, 13):
                if dtype == "int8" and ih > 6:
                    continue
                iw, ow = 3, oh if dtype == "float32" else 2
                opts = s.ResizeNearestNeighborOptionsT()
                opts.alignCorners, opts.halfPixelCenters = align, half
                q = (1.0, 0) if dtype == "int8" else None
                model = one_op("RESIZE_NEAREST_NEIGHBOR", [
                    dict(shape=[1, ih, iw, 1], type=dtype, q=q),
                    dict(shape=[2], type="int32", data=np.array([oh, ow], np.int32))],
                    [dict(shape=[1, oh, ow, 1], type=dtype, q=q)], opts)
                x = (np.arange(ih)[:, None] * 10 + np.arange(iw)[None, :]).astype(dtype)
                got = interpret(model, x.reshape(1, ih, iw, 1)).reshape(oh, ow).astype(int)
                assert [int(v) for v in got[:, 0] // 10] == nearest_source(oh, ih, align, half)
                assert [int(v) for v in got[0, :] % 10] == nearest_source(ow, iw, align, half)
                checked += 1
    assert checked == 3 * 6 * 12


# ---- Keras models through both generators ---------------------------------------------------

def shape_ops(seed=1):
    """ZeroPadding2D (asymmetric) -> Conv2D, and Permute -> Conv2D -> Permute (TRANSPOSE) ->
    Concatenate (channels) -> UpSampling2D -> Cropping2D (STRIDED_SLICE) ->
    GlobalAveragePooling2D; GlobalAveragePooling2D(keepdims=True) of the concatenation (18
    channels: TFLite's vector loop and its tail) -> Concatenate -> Dense."""
    tf.keras.utils.set_random_seed(seed)
    i = L.Input((6, 5, 3))
    x = L.ZeroPadding2D(((1, 0), (2, 1)), name="pad")(i)
    a = L.Conv2D(10, 3, activation="relu", name="ca")(x)
    b = L.Permute((2, 1, 3), name="perm")(L.Conv2D(8, 3, name="cb")(L.Permute((2, 1, 3))(x)))
    c = L.Concatenate(name="cat")([a, b])
    u = L.Cropping2D(((1, 0), (0, 1)), name="crop")(L.UpSampling2D(name="up")(c))
    g1 = L.GlobalAveragePooling2D(name="gap")(u)
    g2 = L.Flatten(name="flat")(L.GlobalAveragePooling2D(keepdims=True, name="gap_keep")(c))
    out = L.Dense(4, name="logits")(L.Concatenate(name="cat2")([g1, g2]))
    return tc._random_biases(tf.keras.Model(i, out, name="shape_ops"), seed)


def sequence_mean(seed=2):
    """Conv1D -> GlobalAveragePooling1D (MEAN over the time axis) -> Dense."""
    tf.keras.utils.set_random_seed(seed)
    i = L.Input((20, 6))
    x = L.Conv1D(8, 3, padding="same", activation="relu", name="conv")(i)
    out = L.Dense(3, name="logits")(L.GlobalAveragePooling1D(name="gap")(x))
    return tc._random_biases(tf.keras.Model(i, out, name="sequence_mean"), seed)


def slicing(seed=3):
    """STRIDED_SLICE (stride 2 on one axis), SPLIT, SPLIT_V, UNPACK, SLICE, PACK and TRANSPOSE
    (Permute), flattened and concatenated -> Dense."""
    tf.keras.utils.set_random_seed(seed)
    i = L.Input((6, 8, 4))
    parts = [L.Lambda(lambda t: t[:, 1:5, ::2, :], name="strided")(i),
             L.Lambda(lambda t: tf.split(t, 2, axis=-1)[1], name="split")(i),
             L.Lambda(lambda t: tf.split(t, [1, 3], axis=-1)[0], name="split_v")(i),
             L.Lambda(lambda t: tf.unstack(t, axis=1)[2], name="unpack")(i),
             L.Lambda(lambda t: tf.slice(t, [0, 1, 2, 1], [-1, 3, 4, 2]), name="slice")(i),
             L.Lambda(lambda t: tf.stack([t[:, 0], t[:, 3]], axis=2), name="pack")(i),
             L.Permute((2, 1, 3), name="permute")(i)]
    x = L.Concatenate(name="cat")([L.Flatten()(p) for p in parts])
    return tc._random_biases(tf.keras.Model(i, L.Dense(5, name="logits")(x), name="slicing"),
                             seed)


MODELS = {"shape_ops": (shape_ops, {"Pad": 1, "Concat": 2, "Mean": 2, "Transpose": 2,
                                     "ResizeNearest": 1, "Slice": 1}),
          "sequence_mean": (sequence_mean, {"Mean": 1}),
          "slicing": (slicing, {"Slice": 7, "Transpose": 1, "Concat": 2})}


@pytest.fixture(scope="module")
def lowered(tmp_path_factory):
    """(name, dtype) -> (graph, probe inputs, expected outputs), each lowered once."""
    return lowered_once(tmp_path_factory.mktemp("shape_models"), lambda name: MODELS[name][0]())


@pytest.mark.parametrize("dtype", ["float32", "int8"])
@pytest.mark.parametrize("name", list(MODELS))
def test_model_both_generators_on_host(lowered, tmp_path, name, dtype):
    g, x, want = lowered(name, dtype)
    kinds = Counter(op.kind for op in g.compute_ops)
    assert {k: kinds[k] for k in MODELS[name][1]} == MODELS[name][1], kinds
    check_both_generators(g, x, want, tmp_path)


def test_int8_dequantize_unpack_quantize_becomes_an_int8_copy(lowered):
    """TensorFlow leaves the partly used UNPACK in float32 between DEQUANTIZE and QUANTIZE; the
    reader moves the int8 values instead (same quantisation: the round trip is exact)."""
    from mcusearch.convert.frontend import Reader

    g, _, _ = lowered("slicing", "int8")
    names = [t.opname for t in Reader(lowered.dir / "slicing.tflite").ops]
    if "DEQUANTIZE" not in names:      # TF 2.21's converter does not always leave it in float32
        pytest.skip("TensorFlow quantised the UNPACK itself this time: no chain to rewrite")
    assert "QUANTIZE" in names                                 # what TF made of it
    assert all(g.tensors[op.output].scale is not None for op in g.compute_ops)
    assert [op.name for op in g.compute_ops if op.kind == "Slice"].count("unpack/2") == 1


def test_int8_concatenation_of_different_scales_is_a_clear_error(tmp_path):
    opts = schema().ConcatenationOptionsT()
    opts.axis = -1
    path = tmp_path / "cat.tflite"
    path.write_bytes(one_op("CONCATENATION", [dict(shape=[1, 4], type="int8", q=(0.1, 0))],
                            [dict(shape=[1, 8], type="int8", q=(0.2, 0))], opts, op_inputs=[0, 0]))
    with pytest.raises(tc.StageError, match="CONCATENATION.*quantised differently"):
        graph_from_tflite(path)


def unknown_batch_tflite(m, path, dtype: str, seed: int = 0) -> None:
    """``m`` converted by TensorFlow's converter as a user would (the batch size left unknown),
    int8 calibrated on 20 normal inputs, written to ``path``."""
    conv = tf.lite.TFLiteConverter.from_keras_model(m)
    if dtype == "int8":
        rep = np.random.default_rng(seed).normal(size=(20,) + tuple(m.input_shape[1:]))
        rep = rep.astype(np.float32)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([rep[k:k + 1]] for k in range(len(rep)))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = conv.inference_output_type = tf.int8
    path.write_bytes(conv.convert())


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_reshape_of_unknown_batch_needs_no_shape_arithmetic(tmp_path, dtype):
    """A .tflite converted with an unknown batch size computes a Keras Reshape's target shape at
    run time (SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE); the reader drops that int32
    arithmetic and takes the static shapes."""
    from mcusearch.convert.frontend import Reader

    tf.keras.utils.set_random_seed(6)
    i = L.Input((8, 8, 3))
    x = L.GlobalAveragePooling2D(name="gap")(L.Conv2D(4, 3, name="conv")(i))
    x = L.Conv2D(3, 1, name="head")(L.Reshape((1, 1, 4), name="to_map")(x))
    m = tc._random_biases(tf.keras.Model(i, L.Reshape((3,), name="to_vec")(x)), 6)
    path = tmp_path / "m.tflite"
    unknown_batch_tflite(m, path, dtype)
    assert {"SHAPE", "STRIDED_SLICE", "PACK"} <= {t.opname for t in Reader(path).ops}
    g = graph_from_tflite(path)
    assert [op.kind for op in g.compute_ops] == ["Conv2D", "Mean", "Conv2D"]
    x = tc.probes(m.input_shape[1:], n=6)
    if dtype == "int8":
        xin = quantize_input(x, g.input_scale, g.input_zero_point).reshape(6, -1)
        want = cgen.tflite_tensor(path, xin, g.output_id)
    else:
        xin, want = x.reshape(6, -1), m.predict(x, verbose=0)
    check_both_generators(g, xin, want, tmp_path, cross=False)


@pytest.mark.skipif(not HAVE_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm")
@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_shape_ops_in_qemu_m7(lowered, tmp_path, dtype):
    """The shape_ops model (PAD, TRANSPOSE, CONCATENATION, RESIZE_NEAREST_NEIGHBOR,
    STRIDED_SLICE, MEAN with and without keepdims) built by "mcusearch" and run on the emulated
    Cortex-M7; measure() raises unless the firmware's outputs match the host's."""
    from test_codegen_fast import run_on

    g, x, want = lowered("shape_ops", dtype)
    conv = conv_result("mcusearch", fast.emit_fast(g, tmp_path / "c"), g, x[:4], want[:4])
    _, meas = run_on("qemu-m7", conv, tmp_path)
    assert meas is not None
