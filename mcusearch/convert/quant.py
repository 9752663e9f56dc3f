"""int8 arithmetic shared by the front ends and the emitters: TFLite's formulas, bit for bit.

Multipliers and shifts come from the same formulas as TFLite's ``QuantizeMultiplier`` /
``PopulateConvolutionQuantizationParams`` / ``GetQuantizedConvolutionMultipler``, activation ranges
from ``CalculateActivationRangeQuantized``. A final int8 SOFTMAX is TFLite's float look-up-table
kernel (optimized_ops::Softmax): the table exp(input_scale * beta * (x - max)) is computed here
with the C library's expf, as TFLite does (:func:`tflite_softmax_table`), and the firmware sums
and normalises in float32 in the same order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mcusearch.errors import StageError

INT8_MIN, INT8_MAX = -128, 127


@dataclass
class AddQuant:
    """int8 ADD (TFLite): each input is offset, shifted left by ``left_shift`` and rescaled to twice
    the larger input scale, the sum rescaled to the output (multipliers < 1, shifts <= 0)."""

    prev_offset: int              # -zero point of the chain input (the previous op's output)
    skip_offset: int              # -zero point of the residual input
    output_offset: int
    left_shift: int
    prev_multiplier: int
    prev_shift: int
    skip_multiplier: int
    skip_shift: int
    output_multiplier: int
    output_shift: int

    def c_fields(self) -> dict[str, int]:
        """The fields of the kernels' int8 ADD parameters (len and the clamp aside)."""
        return dict(input_offset=self.prev_offset, skip_offset=self.skip_offset,
                    output_offset=self.output_offset, left_shift=self.left_shift,
                    input_multiplier=self.prev_multiplier, input_shift=self.prev_shift,
                    skip_multiplier=self.skip_multiplier, skip_shift=self.skip_shift,
                    output_multiplier=self.output_multiplier, output_shift=self.output_shift)


def same_padding(in_size: int, k: int, stride: int) -> tuple[int, int]:
    """TF 'same': (output size, padding before); the odd extra row/column goes after."""
    out = -(-in_size // stride)
    total = max((out - 1) * stride + k - in_size, 0)
    return out, total // 2


def valid_size(in_size: int, k: int, stride: int) -> int:
    return (in_size - k) // stride + 1


def _round_half_away(x: float) -> int:
    """std::round / TfLiteRound."""
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: real = q * 2^(shift - 31) with q in [2^30, 2^31)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = _round_half_away(q * (1 << 31))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if q_fixed > 2**31 - 1 or shift > 30:
        raise StageError("convert", f"requantisation multiplier {real!r} is out of TFLite's range")
    return int(q_fixed), int(shift)


def quantized_convolution_multiplier(s_in: float, s_w: float, s_out: float) -> tuple[int, int]:
    """TFLite's GetQuantizedConvolutionMultipler then QuantizeMultiplier: the product of the two
    input scales in float32, divided by the output scale in double (FULLY_CONNECTED per tensor,
    BATCH_MATMUL)."""
    prod = np.float32(s_in) * np.float32(s_w)
    return quantize_multiplier(float(np.float64(prod) / np.float64(np.float32(s_out))))


def quantize_multiplier_smaller_than_one(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplierSmallerThanOneExp: QuantizeMultiplier of a real in (0, 1)."""
    if not 0.0 < real < 1.0:
        raise StageError("convert", f"rescaling multiplier {real!r} is not in (0, 1)")
    return quantize_multiplier(real)


def tflite_depthwise_vector_channels(channels: int) -> int:
    """How many leading channels TFLite's built-in int8 DEPTHWISE_CONV_2D requantises in its
    8-lane vector loop (rounding ties up); the remaining ``channels % 8`` go through its scalar
    loop (ties away from zero). See mcus_requantize_depthwise in firmware/kernels/mcus_kernels.h;
    tests/test_ops_extra.py checks it against the interpreter."""
    return 8 * (int(channels) // 8)


def tflite_softmax_table(input_scale: float, beta: float = 1.0) -> np.ndarray:
    """TFLite's int8 softmax table (optimized_ops::PopulateSoftmaxLookupTable):
    table[255 - v] = expf(-input_scale * beta * v), v = 0..255, in float32 with the C library's
    expf (what the interpreter calls; numpy's float32 exp may differ in the last bit)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("m")
    if name is None:
        raise StageError("convert", "the C math library (libm) was not found: it computes the int8 "
                                    "softmax table exactly as TFLite does")
    expf = ctypes.CDLL(name).expf
    expf.restype, expf.argtypes = ctypes.c_float, [ctypes.c_float]
    scale = np.float32(-np.float32(input_scale) * np.float32(beta))
    table = np.empty(256, np.float32)
    for v in range(256):
        table[255 - v] = expf(float(np.float32(scale * np.float32(v))))
    return table


def add_quant(s_in: float, zp_in: int, s_skip: float, zp_skip: int, s_out: float,
              zp_out: int) -> AddQuant:
    """The int8 ADD parameters TFLite derives from the two inputs' and the output's scales and
    zero points (tensorflow/lite/kernels/add.cc, Prepare): left shift 20, both inputs rescaled
    to twice the larger input scale (scales as float32, arithmetic in double)."""
    left = 20
    s_in, s_skip, s_out = (np.float64(np.float32(v)) for v in (s_in, s_skip, s_out))
    twice_max = 2 * max(s_in, s_skip)
    m1 = quantize_multiplier_smaller_than_one(float(s_in / twice_max))
    m2 = quantize_multiplier_smaller_than_one(float(s_skip / twice_max))
    mo = quantize_multiplier_smaller_than_one(float(twice_max / ((1 << left) * s_out)))
    return AddQuant(prev_offset=-zp_in, skip_offset=-zp_skip, output_offset=zp_out, left_shift=left,
                    prev_multiplier=m1[0], prev_shift=m1[1], skip_multiplier=m2[0],
                    skip_shift=m2[1], output_multiplier=mo[0], output_shift=mo[1])


def _wrap32(x: np.ndarray) -> np.ndarray:
    """int64 values as C's (int32_t)(uint32_t) conversion leaves them."""
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _sat_round_doubling_high_mul(a: np.ndarray, b: int) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul on int32 values held in int64."""
    ab = a * np.int64(b)
    s = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    q = np.where(s >= 0, s >> 31, -((-s) >> 31))            # C's truncating division by 2^31
    return np.where((a == -(1 << 31)) & (b == -(1 << 31)), (1 << 31) - 1, q)


def _rounding_divide_by_pot(x: np.ndarray, e: int) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT: x / 2^e, ties away from zero."""
    mask = (1 << e) - 1
    return (x >> e) + ((x & mask) > (mask >> 1) + (x < 0))


def multiply_by_quantized_multiplier(x, multiplier: int, shift: int) -> np.ndarray:
    """TFLite's MultiplyByQuantizedMultiplier (x * multiplier * 2^(shift - 31); the left shift
    wraps in 32 bits, as the firmware's and the interpreter's scalar code do) on int64 arrays.
    With shift <= 0 it is MultiplyByQuantizedMultiplierSmallerThanOneExp, ADD's rescaling."""
    x = _wrap32(np.asarray(x, np.int64) << max(shift, 0))
    return _rounding_divide_by_pot(_sat_round_doubling_high_mul(x, multiplier), max(-shift, 0))


def add_rescaled(q: AddQuant, which: str, v) -> np.ndarray:
    """One ADD input's rescaled value (``which``: "prev" or "skip"): (v + offset) << left_shift
    times its multiplier (mcus_add_s8_input / mcus_add_s8_skip)."""
    off, mult, shift = ((q.prev_offset, q.prev_multiplier, q.prev_shift) if which == "prev" else
                        (q.skip_offset, q.skip_multiplier, q.skip_shift))
    return multiply_by_quantized_multiplier((np.asarray(v, np.int64) + off) << q.left_shift,
                                            mult, shift)


def add_s8(q: AddQuant, a, b, act_min: int = INT8_MIN, act_max: int = INT8_MAX) -> np.ndarray:
    """TFLite's int8 ADD (SUB: q's skip multiplier negated) of int8 arrays, bit for bit
    (mcus_add_s8_one); tests/test_ops_elementwise.py checks it on all 65,536 pairs."""
    s = add_rescaled(q, "prev", a) + add_rescaled(q, "skip", b)
    v = multiply_by_quantized_multiplier(s, q.output_multiplier, q.output_shift) + q.output_offset
    return np.clip(v, act_min, act_max)


def quantize_input(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Quantise float inputs to int8 exactly as the QUANTIZE op of a TFLite model does.

    TFLite's built-in (optimised) kernel and XNNPACK multiply by the float32 reciprocal of the
    scale and round half to even; checked bit-exact against both in TF 2.21 (the reference
    kernel divides and rounds half away from zero instead, which differs on ties).
    """
    x = np.asarray(x, dtype=np.float32)
    inv = np.float32(1.0) / np.float32(scale)
    q = np.rint(x * inv).astype(np.int64) + int(zero_point)
    return np.clip(q, INT8_MIN, INT8_MAX).astype(np.int8)


def activation_range_int8(act: str, scale: float, zero_point: int) -> tuple[int, int]:
    """TFLite CalculateActivationRangeQuantized for an int8 output."""
    def q(f: float) -> int:
        return int(zero_point) + _round_half_away(float(np.float32(f) / np.float32(scale)))

    if act == "NONE":
        return INT8_MIN, INT8_MAX
    if act == "RELU":
        return max(INT8_MIN, q(0.0)), INT8_MAX
    if act == "RELU6":
        return max(INT8_MIN, q(0.0)), min(INT8_MAX, q(6.0))
    if act == "RELU_N1_TO_1":
        return max(INT8_MIN, q(-1.0)), min(INT8_MAX, q(1.0))
    raise ValueError(act)
