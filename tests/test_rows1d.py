"""1-D models as T x 1 columns (mcusearch/convert/rows1d.py).

Keras 1-D layers lowered by TensorFlow's TFLite converter (float32, and full-integer int8): the
front end's pass turns their 1 x T maps into T x 1 maps (swapped shapes, kernels, strides,
padding and pool sizes); both generators' C, run on the host, still matches Keras (float32,
within the converter's tolerance) and the TFLite interpreter's built-in kernels (int8,
bit-exact); the optimised generator's arena shrinks because its row planner can now stream the
maps; a region of row tensors touched by an op the pass does not know stays as it is; one model
runs on QEMU (Cortex-M7).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import test_convert as tc
from mcusearch.convert import cgen, fast
from mcusearch.convert.frontend import graph_from_tflite
from mcusearch.convert.graph import AvgPool2D, Conv2D, DepthwiseConv2D, Graph, MaxPool2D
from mcusearch.convert.quant import quantize_input
from mcusearch.convert.rows1d import is_row, to_columns, to_rows
from mcusearch.model.quantize import to_float_tflite, to_int8_tflite
from test_ops_shape import check_both_generators, conv_result

tf, L = tc.tf, tc.L
HAVE_ARM = bool(shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm"))
SPATIAL = (Conv2D, DepthwiseConv2D, MaxPool2D, AvgPool2D)


# ---- models --------------------------------------------------------------------------------------

def sensor(seed: int = 1):
    """ZeroPadding1D, Conv1D stride 2, DepthwiseConv1D and SeparableConv1D 'same' in a residual
    block (Add), MaxPooling1D 'same' stride 2, a pointwise Conv1D and an AveragePooling1D joined
    on channels (Concatenate), Conv1D 'same' stride 2, GlobalAveragePooling1D, Dense."""
    tf.keras.utils.set_random_seed(seed)
    i = L.Input((96, 3))
    x = L.ZeroPadding1D((2, 1), name="pad")(i)
    x = L.Conv1D(8, 5, strides=2, activation="relu", name="c1")(x)
    y = L.DepthwiseConv1D(3, padding="same", name="dw")(x)
    y = L.SeparableConv1D(8, 3, padding="same", activation="relu", name="sep")(y)
    x = L.Add(name="res")([x, y])
    x = L.MaxPooling1D(3, strides=2, padding="same", name="mp")(x)
    x = L.Concatenate(name="cat")([L.Conv1D(4, 1, name="pw")(x),
                                   L.AveragePooling1D(2, strides=1, padding="same", name="ap")(x)])
    x = L.Conv1D(8, 3, strides=2, padding="same", activation="relu", name="c2")(x)
    out = L.Dense(4, name="fc")(L.GlobalAveragePooling1D(name="gap")(x))
    return tc._random_biases(tf.keras.Model(i, out, name="sensor"), seed)


def conv_lstm(seed: int = 2):
    """Conv1D stride 2 -> LSTM(6) over its 10 steps -> Dense."""
    tf.keras.utils.set_random_seed(seed)
    i = L.Input((20, 4))
    x = L.Conv1D(6, 3, strides=2, padding="same", activation="relu", name="conv")(i)
    out = L.Dense(3, name="fc")(L.LSTM(6, name="lstm")(x))
    return tc._random_biases(tf.keras.Model(i, out, name="conv_lstm"), seed)


def row_input(seed: int = 3):
    """A 2-D model on a 1 x 24 x 3 input (the model input is itself a row): Conv2D 1 x 3
    'same', MaxPooling2D 1 x 2, UpSampling2D 1 x 2 (RESIZE_NEAREST_NEIGHBOR, which the pass does
    not transpose); beside it Dense -> Reshape to 8 x 4 -> Conv1D."""
    tf.keras.utils.set_random_seed(seed)
    i = L.Input((1, 24, 3))
    x = L.Conv2D(6, (1, 3), padding="same", activation="relu", name="conv")(i)
    x = L.MaxPooling2D((1, 2), name="pool")(x)
    up = L.Flatten(name="flat_up")(L.UpSampling2D((1, 2), name="up")(x))
    seq = L.Reshape((8, 4), name="to_seq")(L.Dense(32, name="fc_seq")(L.Flatten(name="flat_in")(i)))
    seq = L.Flatten(name="flat")(L.Conv1D(4, 3, name="c1d")(seq))
    out = L.Dense(3, name="fc")(L.Concatenate(name="cat")([up, seq]))
    return tc._random_biases(tf.keras.Model(i, out, name="row_input"), seed)


def pixel_convs(seed: int = 4):
    """int8 Conv1D layers that take conv2d_s8's one-pixel path (int16 weights, conv_w16) as
    columns: 3 input channels (kernel rows under a word), 'same' padding (windows in the padding:
    im2col_s8), 10 output channels (two groups of 4 and a last 2), 10 input channels (kernel rows
    of words and leftovers), 4 input channels x 3 (an odd chunk count), stride 2."""
    tf.keras.utils.set_random_seed(seed)
    i = L.Input((48, 3))
    x = L.Conv1D(10, 5, padding="same", activation="relu", name="c1")(i)
    x = L.Conv1D(4, 3, activation="relu", name="c2")(x)
    x = L.Conv1D(6, 3, strides=2, padding="same", name="c3")(x)
    x = L.MaxPooling1D(2, name="mp")(x)
    out = L.Dense(3, name="fc")(L.GlobalAveragePooling1D(name="gap")(x))
    return tc._random_biases(tf.keras.Model(i, out, name="pixel_convs"), seed)


def column_convs(seed: int = 5):
    """A model built of T x 1 convolutions on a (24, 1, 6) input (as some keyword-spotting
    models are): Conv2D (3, 1), MaxPooling2D (2, 1), Conv2D (3, 1), Flatten, Dense. The default
    layout keeps these columns (the planner streams them); only regions of pools become rows."""
    tf.keras.utils.set_random_seed(seed)
    i = L.Input((24, 1, 6))
    x = L.Conv2D(8, (3, 1), activation="relu", name="ca")(i)
    x = L.MaxPooling2D((2, 1), name="pool")(x)
    x = L.Conv2D(8, (3, 1), activation="relu", name="cb")(x)
    return tc._random_biases(tf.keras.Model(i, L.Dense(3, name="fc")(L.Flatten()(x)),
                                            name="column_convs"), seed)


MODELS = {"sensor": sensor, "conv_lstm": conv_lstm, "row_input": row_input,
          "pixel_convs": pixel_convs, "column_convs": column_convs}


@pytest.fixture(scope="module")
def lowered(tmp_path_factory):
    """(name, dtype) -> (.tflite path, probe inputs, expected outputs), each converted once."""
    d = tmp_path_factory.mktemp("rows1d")
    cache: dict = {}

    def get(name: str, dtype: str):
        if (name, dtype) not in cache:
            m = MODELS[name]()
            rng = np.random.default_rng(0)
            x = rng.normal(0, 1.0, (6,) + tuple(m.input_shape[1:])).astype(np.float32)
            if dtype == "float32":
                path = to_float_tflite(m, d / f"{name}_f32.tflite")
                cache[name, dtype] = (path, x.reshape(6, -1), m.predict(x, verbose=0))
            else:
                rep = rng.normal(0, 1.0, (40,) + tuple(m.input_shape[1:])).astype(np.float32)
                path = to_int8_tflite(m, rep, d / f"{name}_s8.tflite")
                g = graph_from_tflite(path)
                xq = quantize_input(x, g.input_scale, g.input_zero_point).reshape(6, -1)
                cache[name, dtype] = (path, xq, cgen.tflite_tensor(path, xq, g.output_id))
        return cache[name, dtype]
    return get


def _spatial(g: Graph) -> dict[str, object]:
    return {op.name: op for op in g.ops if isinstance(op, SPATIAL)}


# ---- the pass ------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_sensor_model_becomes_columns(lowered, dtype):
    """Every convolution and pool of the 1-D model, a 1 x T row in the default layout, becomes
    T x 1 with its geometry swapped and its weights the same bytes; no tensor but the model's
    input and output is left one row high. The pools, which TensorFlow lowers as T x 1, are rows
    in the default layout too (to_rows), so that their row kernels run once, not T times."""
    path, _, _ = lowered("sensor", dtype)
    rows, cols = graph_from_tflite(path, columns=False), graph_from_tflite(path)
    before, after = _spatial(rows), _spatial(cols)
    assert set(before) == set(after), (sorted(before), sorted(after))
    turned = {n for n, b in before.items() if is_row(b.in_shape)}
    assert turned == {"c1", "dw", "separable_conv2d", "sep", "pw", "c2", "mp", "ap"}, sorted(turned)
    for name, a in after.items():
        b = before[name]
        assert a.in_shape == (b.in_shape[1], 1, b.in_shape[2]), name
        assert a.out_shape == (b.out_shape[1], 1, b.out_shape[2]), name
        assert a.stride == b.stride[::-1] and a.pad == b.pad[::-1], name
        if name in ("mp", "ap"):                                   # MaxPooling1D, AveragePooling1D
            assert a.pool == b.pool[::-1], name
            continue
        assert a.kernel == b.kernel[::-1], name
        assert a.weights.tobytes() == b.weights.tobytes(), name
    assert {n: a.stride for n, a in after.items() if a.stride != (1, 1)} == \
        {"c1": (2, 1), "mp": (2, 1), "c2": (2, 1)}
    assert after["dw"].pad == (1, 0)                                   # 'same', kernel 3
    left = [t for t, ten in cols.tensors.items() if is_row(ten.shape)]
    assert set(left) <= {cols.input_id, cols.output_id}, left
    tall = [t for t, ten in rows.tensors.items() if is_row(ten.shape, 1)]
    assert set(tall) <= {rows.input_id, rows.output_id}, tall          # no column left either
    assert [t.shape for t in rows.tensors.values()] != [t.shape for t in cols.tensors.values()]


def test_column_convolutions_stay_columns(lowered):
    """to_rows rewrites only regions whose windowed ops are pools: a model of T x 1 convolutions
    keeps its columns in the default layout (and the lowmem one)."""
    path, _, _ = lowered("column_convs", "float32")
    default = _spatial(graph_from_tflite(path, columns=False))
    assert {n: op.in_shape for n, op in default.items()} == \
        {"ca": (24, 1, 6), "pool": (22, 1, 8), "cb": (11, 1, 8)}
    g = graph_from_tflite(path, columns=False)
    view = to_rows(g)                                   # again: nothing left to rewrite, and why
    assert not view.rewritten and any("convolution of T x 1 columns" in why
                                      for why in view.kept.values())


def test_region_with_an_unknown_op_is_left_alone(lowered):
    """row_input: the region holding the model input, the Conv2D, the pool and the resize stays
    1 x T (RESIZE_NEAREST_NEIGHBOR is not transposed); the Conv1D's region behind a Reshape is
    rewritten; the model input keeps its declared shape."""
    path, _, _ = lowered("row_input", "float32")
    g = graph_from_tflite(path, columns=False)
    view = to_columns(g)
    assert len(view.kept) == 1 and len(view.rewritten) == 1
    (why,) = view.kept.values()
    assert "ResizeNearest" in why and "not an op this pass knows" in why
    ops = _spatial(g)
    assert ops["conv"].in_shape == (1, 24, 3) and ops["pool"].pool == (1, 2)
    assert ops["c1d"].in_shape == (8, 1, 4) and ops["c1d"].kernel == (3, 1)
    assert g.input_shape == g.tensors[g.input_id].shape == (1, 24, 3)
    assert to_columns(g).rewritten == []                  # a second run finds nothing to do


# ---- outputs and memory --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "int8"])
@pytest.mark.parametrize("name", list(MODELS))
def test_both_generators_on_host(lowered, tmp_path, name, dtype):
    """Host C of both generators on the T x 1 graph: float32 within tolerance of Keras, int8
    bit-exact with the interpreter."""
    path, x, want = lowered(name, dtype)
    g = graph_from_tflite(path)
    assert any(op.in_shape[1:2] == (1,) and op.in_shape[0] > 1 for op in _spatial(g).values())
    check_both_generators(g, x, want, tmp_path, cross=False)


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_columns_shrink_the_optimised_arena(lowered, tmp_path, dtype):
    """The row planner streams T x 1 maps: the convolutions' outputs, whole single rows before,
    keep a few of their rows (ring slots) at a time, and the sensor model's arena shrinks (what
    remains whole are the plug-in ops' tensors and the scratch)."""
    path, _, _ = lowered("sensor", dtype)
    arena, rings = {}, {}
    for cols in (False, True):
        g = graph_from_tflite(path, columns=cols)
        em = fast.emit_fast(g, tmp_path / str(cols))
        arena[cols] = em.arena_bytes
        rings[cols] = {op.name: (em.plan.ring_rows[j + 1], op.out_shape[0])
                       for j, op in enumerate(g.compute_ops)
                       if op.name in ("c1", "dw", "separable_conv2d", "sep")}
    assert all(r == h == 1 for r, h in rings[False].values()), rings[False]
    assert all(h >= 24 and r <= 4 for r, h in rings[True].values()), rings[True]
    assert arena[True] < 0.75 * arena[False], arena


def test_lowmem_converter_streams_and_mcusearch_does_not(lowered, tmp_path):
    """The converter knob decides: "mcusearch" keeps 1-D maps as rows (fewer instructions),
    "mcusearch-lowmem" turns them into columns (a smaller arena); both check against the host."""
    from mcusearch.convert import convert
    from mcusearch.model import ModelResult

    path, _, _ = lowered("sensor", "int8")
    shape = tuple(graph_from_tflite(path, columns=False).input_shape)
    x = np.random.default_rng(1).normal(size=(3, *shape)).astype(np.float32)
    model = ModelResult(keras_path=None, tflite_path=path, quantization="int8", accuracy=float("nan"),
                        params=0, macs=0, input_shape=shape, class_names=(), probe_inputs=x,
                        probe_labels=np.zeros(3, np.int64), cache_key="")
    rows, cols = (convert(model, c, tmp_path / c) for c in ("mcusearch", "mcusearch-lowmem"))
    assert cols.arena_bytes < 0.75 * rows.arena_bytes, (cols.arena_bytes, rows.arena_bytes)
    assert np.array_equal(rows.expected, cols.expected)


# ---- on the target -------------------------------------------------------------------------------

@pytest.mark.skipif(not HAVE_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm")
def test_sensor_int8_in_qemu_m7(lowered, tmp_path: Path):
    """The int8 sensor model as T x 1, built by "mcusearch" and run on the emulated Cortex-M7;
    measure() raises unless the firmware's outputs are bit-exact with the interpreter's."""
    from test_codegen_fast import run_on

    path, x, want = lowered("sensor", "int8")
    g = graph_from_tflite(path)
    conv = conv_result("mcusearch", fast.emit_fast(g, tmp_path / "c"), g, x[:3], want[:3])
    _, meas = run_on("qemu-m7", conv, tmp_path)
    assert meas.max_abs_error == 0 and min(meas.counts) > 0


@pytest.mark.skipif(not HAVE_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm")
def test_pixel_rows_int8_in_qemu_m7(lowered, tmp_path: Path):
    """Rows of one pixel with int16 weights (conv2d_s8's conv_w16: its asm on the M7, the
    portable C in test_both_generators_on_host) bit-exact with the interpreter on the emulated
    Cortex-M7, for every layer shape of pixel_convs."""
    from test_codegen_fast import run_on

    path, x, want = lowered("pixel_convs", "int8")
    g = graph_from_tflite(path)
    em = fast.emit_fast(g, tmp_path / "c")
    assert {i.name for i in em.infos if i.extra.get("w16")} == {"c1", "c2", "c3"}
    conv = conv_result("mcusearch", em, g, x[:3], want[:3])
    _, meas = run_on("qemu-m7", conv, tmp_path)
    assert meas.max_abs_error == 0 and min(meas.counts) > 0
