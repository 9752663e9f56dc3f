"""TRANSPOSE_CONV (Keras Conv2DTranspose / Conv1DTranspose): mcusearch/convert/ops/transpose_conv.py.

Keras models, float32 within the converter's tolerance of Keras and int8 bit-exact with the TFLite
interpreter, both generators on the host and on the emulated Cortex-M7; a one-operator int8 model
whose power-of-two scales make a sixth of the outputs exact rounding ties pins the requantisation's
rounding (ties away from zero: round-half-up would differ there).
"""
from __future__ import annotations

import numpy as np
import pytest

import test_convert as tc
from mcusearch.convert import cgen, fast
from mcusearch.convert.frontend import graph_from_tflite
from mcusearch.convert.ops.transpose_conv import TransposeConv2D
from mcusearch.convert.quant import multiply_by_quantized_multiplier, quantize_input
from test_ops_shape import (HAVE_ARM, check_both_generators, conv_result, interpret, lower, one_op,
                            schema, unknown_batch_tflite)

tf = tc.tf
L = tc.L


def _biased(m):
    """Non-zero biases (Keras starts them at 0 and TFLite then drops them)."""
    rng = np.random.default_rng(5)
    for layer in m.layers:
        if isinstance(layer, (L.Conv2DTranspose, L.Conv1DTranspose)) and layer.use_bias:
            w, b = layer.get_weights()
            layer.set_weights([w, rng.normal(0, 0.3, b.shape).astype(np.float32)])
    return m


def decoder(seed=0):
    """Stride 2 'same' 3 x 3 with bias and ReLU, stride 2 'valid' 2 x 2 (no overlap), stride
    (1, 2) 'same' 4 x 3 without bias."""
    tf.keras.utils.set_random_seed(seed)
    i = tf.keras.Input((5, 6, 4))
    x = L.Conv2DTranspose(6, 3, strides=2, padding="same", activation="relu", name="up1")(i)
    x = L.Conv2DTranspose(3, 2, strides=2, padding="valid", name="up2")(x)
    x = L.Conv2DTranspose(2, (4, 3), strides=(1, 2), padding="same", use_bias=False,
                          name="up3")(x)
    return _biased(tf.keras.Model(i, x, name="decoder"))


def upsample1d(seed=1):
    """Conv1DTranspose stride 2 on a sequence, then a Dense head."""
    tf.keras.utils.set_random_seed(seed)
    i = tf.keras.Input((16, 3))
    x = L.Conv1DTranspose(4, 5, strides=2, padding="same", activation="relu", name="up")(i)
    return _biased(tf.keras.Model(i, L.Dense(2, name="fc")(L.Flatten()(x)), name="upsample1d"))


def sparse_phases(seed=2):
    """Kernels smaller than their strides: 1 x 1 stride 2 and 2 x 2 stride 3 leave output
    phases that no tap reaches (they hold the bias alone); 5 input channels, one past a chunk
    of 4."""
    tf.keras.utils.set_random_seed(seed)
    i = tf.keras.Input((4, 5, 5))
    x = L.Conv2DTranspose(3, 1, strides=2, padding="valid", activation="relu", name="up1")(i)
    x = L.Conv2DTranspose(5, 2, strides=3, padding="same", name="up2")(x)
    return _biased(tf.keras.Model(i, x, name="sparse_phases"))


def one_channel(seed=4):
    """Layers of one output channel (the kernels' column-free path inside the input, the column
    at its borders): 5 input channels (a partial chunk) -> 1, 'valid'; 1 -> 8; 8 -> 1 by a 4 x 4
    kernel; widths 15 and 30 (odd and even pixel counts per phase)."""
    tf.keras.utils.set_random_seed(seed)
    i = tf.keras.Input((6, 7, 5))
    x = L.Conv2DTranspose(1, 3, strides=2, padding="valid", name="to1")(i)
    x = L.Conv2DTranspose(8, 3, strides=1, padding="same", activation="relu", name="to8")(x)
    x = L.Conv2DTranspose(1, 4, strides=2, padding="same", name="back1")(x)
    return _biased(tf.keras.Model(i, x, name="one_channel"))


MODELS = {"decoder": decoder, "upsample1d": upsample1d, "sparse_phases": sparse_phases,
          "one_channel": one_channel}


@pytest.mark.parametrize("dtype", ["float32", "int8"])
@pytest.mark.parametrize("name", list(MODELS))
def test_transpose_conv_models_both_generators_on_host(tmp_path, name, dtype):
    g, x, want = lower(MODELS[name](), dtype, tmp_path)
    ops = [op for op in g.ops if isinstance(op, TransposeConv2D)]
    assert len(ops) == {"decoder": 3, "upsample1d": 1, "sparse_phases": 2, "one_channel": 3}[name]
    if name == "sparse_phases":
        assert [sum(not taps for taps in op.phases()) for op in ops] == [3, 5]
    if name == "decoder":       # in positions x in_c x taps x out_c, as Keras counts
        assert [op.macs for op in ops] == [5 * 6 * 4 * 9 * 6, 10 * 12 * 6 * 4 * 3,
                                           20 * 24 * 3 * 12 * 2]
    from mcusearch.model.evaluate import layer_macs
    m = MODELS[name]()
    assert sum(op.macs for op in ops) == sum(layer_macs(la) for la in m.layers
                                             if "Transpose" in type(la).__name__)
    check_both_generators(g, x, want, tmp_path)


def _scatter(x, w, stride, pad, out_hw):
    """TFLite's reference TRANSPOSE_CONV accumulation (int64), input offset applied."""
    (h, wd, _), (n_out, kh, kw, _) = x.shape, w.shape
    acc = np.zeros(out_hw + (n_out,), np.int64)
    for iy in range(h):
        for ix in range(wd):
            for ky in range(kh):
                for kx in range(kw):
                    oy, ox = iy * stride[0] - pad[0] + ky, ix * stride[1] - pad[1] + kx
                    if 0 <= oy < out_hw[0] and 0 <= ox < out_hw[1]:
                        acc[oy, ox] += w[:, ky, kx, :].astype(np.int64) @ x[iy, ix].astype(np.int64)
    return acc


def test_int8_rounding_ties_away_from_zero(tmp_path):
    """s_in s_w / s_out = 1/4: multiplier 2^30, shift -1, so the rounding doubling high multiply
    gives h = round(acc / 2) and the final shift rounds h / 2; about half the h are odd - ties of
    that shift. The interpreter rounds them away from zero (MultiplyByQuantizedMultiplier), so does
    the generated C; rounding them up (CONV_2D's ruy path, mcus_requantize) would differ on the
    negative ones."""
    s = schema()
    rng = np.random.default_rng(0)
    x = rng.integers(-8, 9, (1, 4, 4, 8), dtype=np.int8)       # sums within +-4 x 127
    w = rng.integers(-8, 9, (6, 3, 3, 8), dtype=np.int8)
    opts = s.TransposeConvOptionsT()
    opts.padding, opts.strideH, opts.strideW = s.Padding.SAME, 2, 2
    model = one_op("TRANSPOSE_CONV",
                   [dict(shape=(4,), type="int32", data=np.array([1, 8, 8, 6], np.int32)),
                    dict(shape=w.shape, type="int8", q=(1 / 8, 0), data=w),
                    dict(shape=x.shape, type="int8", q=(1 / 16, 0))],
                   [dict(shape=(1, 8, 8, 6), type="int8", q=(1 / 32, 0))], opts)
    path = tmp_path / "tconv.tflite"
    path.write_bytes(model)
    want = interpret(model, x).astype(np.int64).reshape(8, 8, 6)
    g = graph_from_tflite(path)
    (op,) = g.compute_ops
    assert op.requant.multiplier[0] == 1 << 30 and op.requant.shift[0] == -1     # 1/4
    acc = _scatter(x[0].astype(np.int64), w, (2, 2), op.pad, (8, 8))
    h = multiply_by_quantized_multiplier(acc, 1 << 30, 0)       # the doubling high multiply
    ties = (h % 2) == 1
    assert ties.sum() > acc.size // 4 and (ties & (h < 0)).sum() > 20
    away = np.clip(multiply_by_quantized_multiplier(acc, 1 << 30, -1), -128, 127)
    half_up = np.clip((h + 1) >> 1, -128, 127)
    np.testing.assert_array_equal(away, want)           # the interpreter: ties away from zero
    assert np.any(half_up != want)
    for gen in ("mcusearch-ref", "mcusearch"):
        em = cgen.emit_c(g, tmp_path / gen) if gen == "mcusearch-ref" else \
            fast.emit_fast(g, tmp_path / gen)
        conv = conv_result(gen, em, g, x.reshape(1, -1), want.reshape(1, -1).astype(np.int8))
        tc.check(conv, tmp_path / f"{gen}_host")


def test_output_shape_computed_for_an_unknown_batch(tmp_path):
    """Keras' Conv2DTranspose converted with an unknown batch size computes its output shape at
    run time (SHAPE -> STRIDED_SLICE -> PACK -> TRANSPOSE_CONV): that int32 arithmetic is dropped
    and the static shapes taken; int8 bit-exact with the interpreter."""
    from mcusearch.convert.frontend import Reader

    m = decoder(3)
    path = tmp_path / "m.tflite"
    unknown_batch_tflite(m, path, "int8")
    assert {"SHAPE", "STRIDED_SLICE", "PACK"} <= {t.opname for t in Reader(path).ops}
    g = graph_from_tflite(path)
    assert [op.kind for op in g.compute_ops] == ["TransposeConv2D"] * 3
    x = tc.probes(m.input_shape[1:], n=4)
    xin = quantize_input(x, g.input_scale, g.input_zero_point).reshape(4, -1)
    check_both_generators(g, xin, cgen.tflite_tensor(path, xin, g.output_id), tmp_path,
                          cross=False)


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_conv1d_transpose_of_an_unknown_batch(tmp_path, dtype):
    """A Conv1DTranspose converted with an unknown batch size leaves TensorFlow's converter
    without static shapes after it ([-1, 1, -1, -1]): the reader takes the shapes the interpreter
    computes for a batch of one (Reader.run_shapes), the same graph as the model built with
    batch_size=1, and the generators match the interpreter (int8 bit-exact)."""
    from mcusearch.convert.frontend import Reader

    m = upsample1d()
    path = tmp_path / "m.tflite"
    unknown_batch_tflite(m, path, dtype)
    r = Reader(path)
    unknown = [i for i, t in enumerate(r.sg.tensors)
               if t.shapeSignature is not None and min(list(t.shapeSignature)[1:], default=0) < 0]
    assert unknown and r.run_shapes()[unknown[0]] == (1, 1, 32, 4)
    g = graph_from_tflite(path)
    assert [op.kind for op in g.compute_ops] == ["TransposeConv2D", "Add", "Dense"]   # the bias
    assert g.compute_ops[0].out_shape == (1, 32, 4)
    x = tc.probes(m.input_shape[1:], n=4)
    if dtype == "int8":
        x = quantize_input(x, g.input_scale, g.input_zero_point)
    xin = x.reshape(4, -1)
    check_both_generators(g, xin, cgen.tflite_tensor(path, xin, g.output_id), tmp_path,
                          cross=False)


def test_unknown_input_length_names_the_fix(tmp_path):
    """A model whose input has an unknown length (a sequence of any length) has no one answer:
    one clear error that names the tensor and the fix (fixed input shape and batch size)."""
    from mcusearch.errors import StageError
    i = tf.keras.Input((None, 3))
    x = L.GlobalMaxPooling1D()(L.Conv1D(4, 3, name="conv")(i))
    path = tmp_path / "m.tflite"
    unknown_batch_tflite(tf.keras.Model(i, L.Dense(2)(x)), path, "float32")
    with pytest.raises(StageError, match=r"unknown dimensions \[-1, -1, 3\].*batch_size=1"):
        graph_from_tflite(path)


def test_int8_requantisation_paths(tmp_path):
    """The kernels' short requantisation (small_requant) serves shifts of -1 to -22; a layer
    whose scales give shift 0 takes MultiplyByQuantizedMultiplier itself, and matches too."""
    s = schema()
    rng = np.random.default_rng(1)
    x = rng.integers(-3, 4, (1, 3, 3, 6), dtype=np.int8)        # sums within 4 x 6 x 9
    w = rng.integers(-3, 4, (4, 3, 3, 6), dtype=np.int8)
    opts = s.TransposeConvOptionsT()
    opts.padding, opts.strideH, opts.strideW = s.Padding.SAME, 2, 2
    for out_scale, short in ((1 / 96, False), (1 / 16, True)):     # x 0.75: shift 0; x 1/8: -2
        model = one_op("TRANSPOSE_CONV",
                       [dict(shape=(4,), type="int32", data=np.array([1, 6, 6, 4], np.int32)),
                        dict(shape=w.shape, type="int8", q=(1 / 8, 0), data=w),
                        dict(shape=x.shape, type="int8", q=(1 / 16, 0))],
                       [dict(shape=(1, 6, 6, 4), type="int8", q=(out_scale, -5))], opts)
        path = tmp_path / f"tconv{short}.tflite"
        path.write_bytes(model)
        want = interpret(model, x).reshape(1, -1)
        g = graph_from_tflite(path)
        (op,) = g.compute_ops
        assert (op.small_requant() is not None) == short
        assert len(np.unique(want)) > 8 and want.max() < 127 and want.min() > -128
        for gen in ("mcusearch-ref", "mcusearch"):
            em = cgen.emit_c(g, tmp_path / f"{gen}{short}") if gen == "mcusearch-ref" else \
                fast.emit_fast(g, tmp_path / f"{gen}{short}")
            conv = conv_result(gen, em, g, x.reshape(1, -1), want)
            tc.check(conv, tmp_path / f"{gen}{short}_host")


@pytest.mark.skipif(not HAVE_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm")
@pytest.mark.parametrize("dtype", ["int8", "float32"])
@pytest.mark.parametrize("name", ["decoder", "sparse_phases", "one_channel"])
def test_models_in_qemu_m7(tmp_path, name, dtype):
    """The models built by "mcusearch" on the emulated Cortex-M7 (int8: the DSP path of the
    kernels; the host ran the plain C): measure() raises unless the firmware's outputs match
    the host's."""
    from test_codegen_fast import run_on
    g, x, want = lower(MODELS[name](), dtype, tmp_path)
    conv = conv_result("mcusearch", fast.emit_fast(g, tmp_path / "c"), g, x[:3], want[:3])
    _, meas = run_on("qemu-m7", conv, tmp_path)
    assert meas is not None
