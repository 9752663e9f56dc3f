"""RESIZE_BILINEAR (UpSampling2D(interpolation="bilinear"), Resizing, tf.image.resize) through
both mcusearch generators, float32 and int8.

* The tables the generator computes (source rows/columns, fractions) and the arithmetic the kernels
  do, modelled in numpy, against the TFLite interpreter on one-operator models over every size
  pair up to 6 -> 13 and each mode (align_corners, half_pixel_centers, neither): float32 within
  rounding, int8 bit-exact, with the rounding ties counted and a ties-up rounding shown to fail.
* The C kernels on one-operator int8 models fed every int8 value: bit-exact with the interpreter
  (both generators on the host under strict flags, the reference one cross-compiled for M0+).
* Keras models (Conv2D around UpSampling2D 2 and (3, 2), Resizing 7 x 5 -> 12 x 9 with half-pixel
  centres, tf.compat.v1.image.resize_bilinear with align_corners): float32 within the converter's
  tolerance of Keras, int8 bit-exact with the interpreter, both generators on the host; one model
  on the emulated Cortex-M7.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import test_convert as tc
from mcusearch.convert import cgen, fast
from mcusearch.convert.frontend import graph_from_tflite
from mcusearch.convert.ops.shape import ResizeBilinear
from test_ops_shape import (HAVE_ARM, check_both_generators, conv_result, interpret,
                            lowered_once, one_op, schema)

tf, L = tc.tf, tc.L

MODES = {"half_pixel": (False, True), "align_corners": (True, False), "legacy": (False, False)}


def resize_model(dtype: str, in_hw, out_hw, channels: int, align: bool, half: bool,
                 q=(0.05, -3)) -> bytes:
    """A .tflite holding one RESIZE_BILINEAR of a 1 x H x W x C input to a constant size."""
    opts = schema().ResizeBilinearOptionsT()
    opts.alignCorners, opts.halfPixelCenters = align, half
    qq = q if dtype == "int8" else None
    return one_op("RESIZE_BILINEAR", [
        dict(shape=[1, *in_hw, channels], type=dtype, q=qq),
        dict(shape=[2], type="int32", data=np.array(out_hw, np.int32))],
        [dict(shape=[1, *out_hw, channels], type=dtype, q=qq)], opts)


def corners(op: ResizeBilinear, x: np.ndarray):
    """The four corner values of every output pixel (upper-left, upper-right, lower-left,
    lower-right) and the fractions fy, fx broadcast to the output, from ``op``'s tables."""
    ih, iw, c = op.in_shape
    rows, cols = np.asarray(op.rows).reshape(-1, 2), np.asarray(op.cols).reshape(-1, 2)
    t = x.reshape(ih, iw, c)
    ul, ur = t[rows[:, 0]][:, cols[:, 0]], t[rows[:, 0]][:, cols[:, 1]]
    dl, dr = t[rows[:, 1]][:, cols[:, 0]], t[rows[:, 1]][:, cols[:, 1]]
    return ul, ur, dl, dr, np.asarray(op.row_frac)[:, None, None], \
        np.asarray(op.col_frac)[None, :, None]


def acc_s8(op: ResizeBilinear, x: np.ndarray) -> np.ndarray:
    """resize_bilinear_s8's 20-bit sum for one int8 input."""
    ul, ur, dl, dr, fy, fx = corners(op, x.astype(np.int64))
    fy, fx = fy.astype(np.int64), fx.astype(np.int64)
    return (ul * (1024 - fy) * (1024 - fx) + dl * fy * (1024 - fx) + ur * (1024 - fy) * fx
            + dr * fy * fx)


def model_s8(op: ResizeBilinear, x: np.ndarray, ties_up: bool = False) -> np.ndarray:
    """resize_bilinear_s8 in numpy: the sum rounded half away from zero (``ties_up``: the
    rounding a wrong kernel might do, for the test to show it would be caught)."""
    acc = acc_s8(op, x)
    out = (acc + (1 << 19)) >> 20 if ties_up else np.sign(acc) * ((np.abs(acc) + (1 << 19)) >> 20)
    return out.reshape(-1)


def model_f32(op: ResizeBilinear, x: np.ndarray) -> np.ndarray:
    ul, ur, dl, dr, fy, fx = corners(op, x.astype(np.float64))
    return ((1 - fy) * (1 - fx) * ul + fy * (1 - fx) * dl + (1 - fy) * fx * ur
            + fy * fx * dr).reshape(-1)


def ties(op: ResizeBilinear, x: np.ndarray) -> tuple[int, int]:
    """(exact rounding ties, negative ones) among the outputs of int8 input ``x``."""
    acc = acc_s8(op, x)
    tie = np.abs(acc) % (1 << 20) == 1 << 19
    return int(tie.sum()), int((tie & (acc < 0)).sum())


def every_int8(n_values: int, rng, extra: int = 2) -> np.ndarray:
    """Probe inputs of ``n_values`` int8 values that hold every int8 value (permuted), then
    ``extra`` random ones, then all -128 and all 127."""
    k = -(-256 // n_values)
    allv = np.resize(rng.permutation(np.arange(-128, 128)), k * n_values).reshape(k, n_values)
    rand = rng.integers(-128, 128, (extra, n_values))
    edge = np.array([[-128] * n_values, [127] * n_values])
    return np.concatenate([allv, rand, edge]).astype(np.int8)


# ---- tables and arithmetic against the interpreter ------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_tables_and_arithmetic_match_tflite_every_size_and_mode(tmp_path, dtype):
    """Every (in, out) height pair up to 6 -> 13 (up- and downsampling), widths varied alongside,
    in each of TFLite's modes: the generator's tables through the kernels' arithmetic (numpy)
    give the interpreter's output; int8 bit-exact with many ties of both signs, which a ties-up
    rounding gets wrong."""
    rng = np.random.default_rng(5)
    checked, tie_count, neg_ties, ties_up_wrong = 0, 0, 0, 0
    for mode, (align, half) in MODES.items():
        for ih in range(1, 7):
            for oh in range(1, 14):
                iw, ow = 1 + (ih + oh) % 5, 1 + (2 * oh + ih) % 9
                path = tmp_path / f"{dtype}_{mode}_{ih}_{oh}.tflite"
                path.write_bytes(resize_model(dtype, (ih, iw), (oh, ow), 3, align, half))
                (op,) = graph_from_tflite(path).compute_ops
                assert isinstance(op, ResizeBilinear)
                assert op.in_shape == (ih, iw, 3) and op.out_shape == (oh, ow, 3)
                n = ih * iw * 3
                xs = every_int8(n, rng) if dtype == "int8" else \
                    rng.normal(0, 3, (3, n)).astype(np.float32)
                for x in xs:
                    want = interpret(path.read_bytes(), x.reshape(1, ih, iw, 3)).reshape(-1)
                    if dtype == "float32":
                        np.testing.assert_allclose(model_f32(op, x), want, rtol=1e-5, atol=1e-5,
                                                   err_msg=f"{mode} {ih}x{iw} -> {oh}x{ow}")
                        continue
                    np.testing.assert_array_equal(model_s8(op, x), want,
                                                  err_msg=f"{mode} {ih}x{iw} -> {oh}x{ow}")
                    t, neg = ties(op, x)
                    tie_count, neg_ties = tie_count + t, neg_ties + neg
                    ties_up_wrong += int(np.any(model_s8(op, x, ties_up=True) != want))
                checked += 1
    assert checked == len(MODES) * 6 * 13
    if dtype == "int8":
        assert tie_count > 10000 and neg_ties > 5000 and ties_up_wrong > 500, \
            (tie_count, neg_ties, ties_up_wrong)


def test_int8_fractions_are_ten_bit_and_negative_before_the_first_centre(tmp_path):
    """The int8 tables of a 2x half-pixel upsampling of 4 rows: positions -256, 256, 768, ...
    (10-bit), the first before row 0's centre (both rows 0, fraction -256), the last past row 3's
    (both rows 3)."""
    path = tmp_path / "up.tflite"
    path.write_bytes(resize_model("int8", (4, 3), (8, 6), 2, False, True))
    (op,) = graph_from_tflite(path).compute_ops
    assert list(op.row_frac) == [-256, 256, 768, 256, 768, 256, 768, 256]
    assert list(op.rows) == [0, 0, 0, 1, 0, 1, 1, 2, 1, 2, 2, 3, 2, 3, 3, 3]


def test_align_corners_with_half_pixel_centres_is_refused(tmp_path):
    path = tmp_path / "both.tflite"
    path.write_bytes(resize_model("float32", (3, 3), (6, 6), 1, True, True))
    with pytest.raises(tc.StageError, match="RESIZE_BILINEAR.*align_corners with half_pixel"):
        graph_from_tflite(path)


def test_int8_positions_past_the_input_are_refused(tmp_path):
    """3 -> 2048 rows: TFLite's rounded 10-bit scale (2 for 1.5) puts the last positions past
    row 2, where its int8 kernel would read outside the input; float32 positions stay inside."""
    for dtype in ("float32", "int8"):
        path = tmp_path / f"{dtype}.tflite"
        path.write_bytes(resize_model(dtype, (3, 1), (2048, 1), 1, False, False))
        if dtype == "float32":
            (op,) = graph_from_tflite(path).compute_ops
            assert max(op.rows) == 2
            continue
        with pytest.raises(tc.StageError, match="RESIZE_BILINEAR.*past the input's last pixel"):
            graph_from_tflite(path)


# ---- the C kernels: every int8 value, both generators ---------------------------------------------

# (input H x W, output H x W, channels, mode): 2x and 3 x 2 half-pixel upsampling, an arbitrary
# size with align_corners, a legacy-mode downsampling.
KERNEL_CASES = [((4, 5), (8, 10), 7, "half_pixel"), ((3, 4), (9, 8), 5, "half_pixel"),
                ((7, 5), (12, 9), 3, "align_corners"), ((9, 7), (4, 3), 4, "legacy")]


@pytest.mark.parametrize("case", range(len(KERNEL_CASES)))
def test_int8_kernel_bit_exact_with_tflite_on_every_value(tmp_path, case):
    (ih, iw), (oh, ow), c, mode = KERNEL_CASES[case]
    path = tmp_path / "m.tflite"
    path.write_bytes(resize_model("int8", (ih, iw), (oh, ow), c, *MODES[mode], q=(0.1, 5)))
    g = graph_from_tflite(path)
    (op,) = g.compute_ops
    x = every_int8(ih * iw * c, np.random.default_rng(case), extra=4)
    want = cgen.tflite_tensor(path, x, g.output_id)
    if mode == "half_pixel":                          # ties the comparison covers
        t = Counter()
        for xi in x:
            n_ties, n_neg = ties(op, xi)
            t["ties"] += n_ties
            t["negative"] += n_neg
        assert t["ties"] > 30 and t["negative"] > 10, t
    check_both_generators(g, x, want, tmp_path)


def test_float32_kernel_within_tolerance_of_tflite(tmp_path):
    """Each mode on an arbitrary size, float32, both generators against the interpreter."""
    rng = np.random.default_rng(9)
    for mode, (align, half) in MODES.items():
        path = tmp_path / f"{mode}.tflite"
        path.write_bytes(resize_model("float32", (5, 6), (11, 4), 3, align, half))
        g = graph_from_tflite(path)
        x = rng.normal(0, 2, (4, 5 * 6 * 3)).astype(np.float32)
        check_both_generators(g, x, cgen.tflite_tensor(path, x, g.output_id), tmp_path / mode)


# ---- Keras models ---------------------------------------------------------------------------------

def keras_model(name: str, seed: int = 4):
    """Conv2D -> a bilinear resize (-> Conv2D): the resize in the middle of the network or as its
    output (the optimised generator's fallback writing the arena or the model output)."""
    tf.keras.utils.set_random_seed(seed)
    shape, resize, after = {
        "up2": ((6, 5, 3), L.UpSampling2D(2, interpolation="bilinear", name="up"), True),
        "up3x2": ((5, 4, 2), L.UpSampling2D((3, 2), interpolation="bilinear", name="up"), False),
        "resizing": ((7, 5, 3), L.Resizing(12, 9, name="up"), True),
        "align_corners": ((7, 5, 3), L.Lambda(lambda t: tf.compat.v1.image.resize_bilinear(
            t, (12, 9), align_corners=True), name="up"), False),
    }[name]
    i = L.Input(shape)
    x = resize(L.Conv2D(4, 3, padding="same", name="conv")(i))
    if after:
        x = L.Conv2D(3, 3, padding="same", name="head")(x)
    return tc._random_biases(tf.keras.Model(i, x, name=name), seed)


KERAS = ["up2", "up3x2", "resizing", "align_corners"]


@pytest.fixture(scope="module")
def lowered(tmp_path_factory):
    return lowered_once(tmp_path_factory.mktemp("bilinear_models"), keras_model)


@pytest.mark.parametrize("dtype", ["float32", "int8"])
@pytest.mark.parametrize("name", KERAS)
def test_keras_model_both_generators_on_host(lowered, tmp_path, name, dtype):
    g, x, want = lowered(name, dtype)
    (op,) = [op for op in g.compute_ops if op.kind == "ResizeBilinear"]
    align = name == "align_corners"
    rows = np.asarray(op.rows).reshape(-1, 2)
    assert rows[0].tolist() == [0, 0]                     # starts on the first row
    if align:             # corners on corners (int8: 12 * 559 / 1024 a little past row 6)
        assert rows[-1].tolist() == [6, 6]
    check_both_generators(g, x, want, tmp_path)


@pytest.mark.skipif(not HAVE_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm")
@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_keras_upsampling_in_qemu_m7(lowered, tmp_path, dtype):
    """Conv2D -> UpSampling2D(2, bilinear) -> Conv2D built by "mcusearch" and run on the emulated
    Cortex-M7; measure() raises unless the firmware's outputs match the expected ones."""
    from test_codegen_fast import run_on

    g, x, want = lowered("up2", dtype)
    conv = conv_result("mcusearch", fast.emit_fast(g, tmp_path / "c"), g, x[:4], want[:4])
    _, meas = run_on("qemu-m7", conv, tmp_path)
    assert meas is not None
