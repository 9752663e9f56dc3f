"""Data-movement and reduction op plug-ins: PAD/PADV2, MEAN, REDUCE_MAX/REDUCE_MIN,
CONCATENATION/PACK, the slicing operators (SLICE, STRIDED_SLICE, SPLIT, SPLIT_V, UNPACK), TRANSPOSE,
RESIZE_NEAREST_NEIGHBOR and RESIZE_BILINEAR.

Kernels: ``firmware/kernels/<op>_{f32,s8}.c`` for pad, mean, reduce_max, reduce_min, concat, slice,
resize_nearest and resize_bilinear, declared in ``mcus_shape.h``. Shapes are read in full (batch
included) from the ``.tflite`` tensors, so an operator's axes index them as TFLite does, and are
then reduced to at most four dimensions (dimensions of size 1 dropped, contiguous ones merged)
for the kernels.

int8: TFLite's data-movement kernels copy the stored int8 values and never requantise, and so do
these (PAD fills with the output zero point, PADV2 with its quantised constant). Its int8
CONCATENATION refuses inputs quantised differently from the output (checked: the interpreter fails
to prepare such a model), so the rule refuses them too. Its int8 REDUCE_MAX and REDUCE_MIN compare
the stored values and fail to run unless input and output share one quantisation; the rule refuses
any other too. MEAN rescales: :class:`Mean` says exactly how, path by path, as the interpreter's
built-in kernel does (bit-exact; tests/test_ops_shape.py compares many random inputs and forced
rounding ties with the interpreter). RESIZE_BILINEAR mixes the stored values in TFLite's integer
arithmetic (:class:`ResizeBilinear`; tests/test_resize_bilinear.py).

An operator with several outputs (SPLIT, SPLIT_V, UNPACK) becomes one strided copy per output:
the IR holds single-output ops, and an output nothing reads is dropped with its copy.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from mcusearch.convert.graph import Op
from mcusearch.convert.ops import RefContext, tflite_rule
from mcusearch.convert.quant import quantize_multiplier

if TYPE_CHECKING:
    from mcusearch.convert.frontend import Reader, TfliteOp

RANK = 4                 # dimensions every kernel of this family sees
MEAN_VECTOR_LANES = 16   # channels per iteration of TFLite's keep_dims int8 MEAN vector loop


def _ints(values) -> str:
    """A C initializer of a small int array: (1, 2) -> '{ 1, 2 }'."""
    return "{ " + ", ".join(str(int(v)) for v in values) + " }"



def _strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Row-major element strides of ``shape``."""
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= int(d)
    return tuple(reversed(out))


def _const_ints(r: "Reader", top: "TfliteOp", i: int, what: str) -> np.ndarray:
    if i < 0 or not r.is_const(i):
        raise r.unsupported(top, f"{what} is not constant")
    return r.const(i).astype(np.int64).reshape(-1)


def _copy_view(dims, strides) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """A strided copy's output dimensions and input strides in at most four dimensions: size-1
    dimensions dropped, neighbours merged where the input is contiguous across them, then padded
    in front with 1s. None when more than four remain."""
    kept = [(int(d), int(s)) for d, s in zip(dims, strides) if int(d) != 1]
    merged: list[tuple[int, int]] = []
    for d, s in kept:
        if merged and merged[-1][1] == s * d:
            merged[-1] = (merged[-1][0] * d, s)
        else:
            merged.append((d, s))
    if len(merged) > RANK:
        return None
    merged = [(1, 0)] * (RANK - len(merged)) + merged
    return tuple(d for d, _ in merged), tuple(s for _, s in merged)


def _one_output(top: "TfliteOp", k: int) -> "TfliteOp":
    """``top`` seen as computing only its output ``k`` (for Reader.add)."""
    return dataclasses.replace(top, outputs=[top.outputs[k]])


# Operators that TensorFlow's converter uses for shape arithmetic on int32 tensors (a Keras Reshape
# or Conv2DTranspose of a model whose batch size is unknown: SHAPE -> STRIDED_SLICE -> PACK ->
# RESHAPE's shape or TRANSPOSE_CONV's output shape; tf-keras' LayerNormalization: the rows,
# batch x steps, by REDUCE_PROD -> RESHAPE as FILL's shape and PACK's element; tf-keras' Dense on a
# sequence: GATHER -> REDUCE_PROD -> PACK as the shape of its rows).
SHAPE_ARITHMETIC = ("SHAPE", "STRIDED_SLICE", "PACK", "CONCATENATION", "SLICE", "REDUCE_PROD",
                    "RESHAPE", "GATHER")
# the operators whose input k is a target shape: (operator, k)
SHAPE_SINKS = (("RESHAPE", 1), ("TRANSPOSE_CONV", 0), ("FILL", 0))


def only_shape_arithmetic(r: "Reader", top: "TfliteOp") -> bool:
    """Whether ``top`` computes int32 shape arithmetic whose results only end up as the target
    shape of RESHAPEs or TRANSPOSE_CONVs. Those need no code: the reader takes their output
    shapes from the model's static shapes (batch 1)."""
    if any(r.type_of(o) != "int32" or o == r.graph.output_id for o in top.outputs):
        return False
    for t in (t for t in r.ops if t.index > top.index):
        for o in top.outputs:
            if o not in t.inputs:
                continue
            if any(t.opname == name and len(t.inputs) > k and t.inputs[k] == o
                   and t.inputs.count(o) == 1 for name, k in SHAPE_SINKS):
                continue
            if t.opname not in SHAPE_ARITHMETIC or not only_shape_arithmetic(r, t):
                return False
    return True


# ---- ops --------------------------------------------------------------------------------------

@dataclass
class Pad(Op):
    """PAD / PADV2: the input inside a box of ``value`` (float32, or the quantised int8 value).
    Geometry in four dimensions (``in_dims``, ``out_dims``, ``before``)."""

    kind: ClassVar[str] = "Pad"
    in_dims: tuple[int, ...] = (1, 1, 1, 1)
    out_dims: tuple[int, ...] = (1, 1, 1, 1)
    before: tuple[int, ...] = (0, 0, 0, 0)
    value: float = 0.0

    def emit_ref(self, ctx: RefContext) -> str:
        k = f"pad_{ctx.sfx}"
        ctx.kernel(k)
        g = {"in_dims": _ints(self.in_dims), "out_dims": _ints(self.out_dims),
             "before": _ints(self.before)}
        value = ctx.c_float(float(self.value)) if ctx.f32 else str(int(self.value))
        p = ctx.params(f"mcus_{k}_params_t", {"g": g, "value": value})
        return f"mcus_{k}(&{p}, {ctx.inputs[0]}, {ctx.output});"


@dataclass
class Mean(Op):
    """MEAN over a contiguous block of axes: the input viewed as [outer][reduce][inner].

    float32: the sum in order divided by the count. int8, as TFLite's built-in kernel (TF 2.21):

    * ``keep_dims`` on a 4-D input over axes given as (1, 2) or (2, 1) - not as negative
      numbers, which TFLite sends down the other path (GlobalAveragePooling2D(keepdims=True)):
      optimized_integer_ops::Mean - the raw int32 sum, multiplier and shift of the float32
      ``input_scale / (count * output_scale)``, plus ``output_zero_point - round(input_zero_point *
      input_scale / output_scale)`` (float32, half away from zero); channels in whole blocks of
      16 are rescaled in its vector loop (rounding right shift, ties up), the others in its scalar
      loop (ties away from zero). ``vector_channels`` says where the scalar ones start.
    * everything else (GlobalAveragePooling2D/1D without keepdims, any axis):
      reference_ops::QuantizedMeanOrSum - the sum minus ``count * input_zero_point``, rescaled by
      the multiplier of ``double(input_scale) / double(output_scale)`` with ``1 / count`` folded
      into it (shifted left by ``floor(log2(count))``, at most 32 and ``31 + shift``, then an
      integer division), ties away from zero, plus the output zero point.

    Both assume the interpreter's single thread (its default here; with several threads the
    vector blocks of the keep_dims kernel start at each thread's first channel).
    """

    kind: ClassVar[str] = "Mean"
    outer: int = 1
    reduce: int = 1
    inner: int = 1
    input_offset: int = 0
    output_offset: int = 0
    multiplier: int = 0
    shift: int = 0
    vector_channels: int = 0

    def emit_ref(self, ctx: RefContext) -> str:
        k = f"mean_{ctx.sfx}"
        ctx.kernel(k)
        fields: dict[str, object] = {"outer": self.outer, "reduce": self.reduce,
                                     "inner": self.inner}
        if not ctx.f32:
            fields.update(input_offset=self.input_offset, output_offset=self.output_offset,
                          multiplier=self.multiplier, shift=self.shift,
                          vector_channels=self.vector_channels)
        p = ctx.params(f"mcus_{k}_params_t", fields)
        return f"mcus_{k}(&{p}, {ctx.inputs[0]}, {ctx.output});"


@dataclass
class Reduce(Op):
    """REDUCE_MAX / REDUCE_MIN (``function`` "MAX" / "MIN") over a contiguous block of axes: the
    input viewed as [outer][reduce][inner], out[o][i] the largest / smallest in[o][r][i] over r.

    Exact in both dtypes: int8 compares the stored values, as TFLite's kernel does, which runs
    only when input and output share one quantisation (the rule refuses any other). Checked
    against the interpreter in tests/test_ops_reduce.py."""

    function: str = ""
    outer: int = 1
    reduce: int = 1
    inner: int = 1

    @property
    def kind(self) -> str:  # type: ignore[override]
        return "Reduce" + self.function.title()

    def emit_ref(self, ctx: RefContext) -> str:
        k = f"reduce_{self.function.lower()}_{ctx.sfx}"
        ctx.kernel(k)
        p = ctx.params("mcus_reduce_params_t", {"outer": self.outer, "reduce": self.reduce,
                                                "inner": self.inner})
        return f"mcus_{k}(&{p}, {ctx.inputs[0]}, {ctx.output});"


@dataclass
class Concat(Op):
    """CONCATENATION / PACK: input k viewed as [outer][inner[k]], the output as
    [outer][sum inner]. int8 inputs share the output's quantisation (a copy)."""

    kind: ClassVar[str] = "Concat"
    outer: int = 1
    inner: tuple[int, ...] = ()

    def emit_ref(self, ctx: RefContext) -> str:
        k = f"concat_{ctx.sfx}"
        ctx.kernel(k)
        inner = ctx.array("int32_t", "inner", np.asarray(self.inner, np.int32), 16)
        p = ctx.params("mcus_concat_params_t", {"n": len(self.inner), "outer": self.outer,
                                                "inner": inner})
        srcs = ", ".join(ctx.inputs)
        return (f"{{ const {ctx.ctype} *const {ctx.pfx}_in[{len(self.inner)}] = {{ {srcs} }}; "
                f"mcus_{k}(&{p}, {ctx.pfx}_in, {ctx.output}); }}")


@dataclass
class Slice(Op):
    """A strided copy (SLICE, STRIDED_SLICE, one output of SPLIT / SPLIT_V / UNPACK):
    out[i0][i1][i2][i3] = in[base + sum i_k * strides[k]] over ``dims``."""

    kind: ClassVar[str] = "Slice"
    base: int = 0
    dims: tuple[int, ...] = (1, 1, 1, 1)
    strides: tuple[int, ...] = (0, 0, 0, 0)

    def emit_ref(self, ctx: RefContext) -> str:
        k = f"slice_{ctx.sfx}"
        ctx.kernel(k)
        p = ctx.params("mcus_slice_params_t", {"base": self.base, "dims": _ints(self.dims),
                                               "strides": _ints(self.strides)})
        return f"mcus_{k}(&{p}, {ctx.inputs[0]}, {ctx.output});"


@dataclass
class Transpose(Slice):
    """TRANSPOSE (Keras Permute): a strided copy whose strides are the input's, permuted."""

    kind: ClassVar[str] = "Transpose"


@dataclass
class ResizeNearest(Op):
    """RESIZE_NEAREST_NEIGHBOR on H x W x C (UpSampling2D): output pixel (y, x) copies input
    pixel (rows[y], cols[x]); :func:`nearest_source` computes them as TFLite does."""

    kind: ClassVar[str] = "ResizeNearest"
    rows: tuple[int, ...] = ()
    cols: tuple[int, ...] = ()

    def emit_ref(self, ctx: RefContext) -> str:
        k = f"resize_nearest_{ctx.sfx}"
        ctx.kernel(k)
        rows = ctx.array("uint16_t", "rows", np.asarray(self.rows, np.uint16), 16)
        cols = ctx.array("uint16_t", "cols", np.asarray(self.cols, np.uint16), 16)
        _, in_w, c = self.in_shape
        oh, ow, _ = self.out_shape
        p = ctx.params("mcus_resize_nearest_params_t", {
            "in_w": in_w, "channels": c, "out_h": oh, "out_w": ow, "rows": rows, "cols": cols})
        return f"mcus_{k}(&{p}, {ctx.inputs[0]}, {ctx.output});"


def nearest_source(out_size: int, in_size: int, align_corners: bool,
                   half_pixel_centers: bool) -> list[int]:
    """The input index each output index reads: TFLite's GetNearestNeighbor, in float32
    (scale = in / out, or (in - 1) / (out - 1) with align_corners; + 0.5 with half-pixel
    centres; rounded half away from zero with align_corners, else floored; clamped)."""
    f32 = np.float32
    if align_corners and out_size > 1:
        scale = f32(in_size - 1) / f32(out_size - 1)
    else:
        scale = f32(in_size) / f32(out_size)
    offset = f32(0.5 if half_pixel_centers else 0.0)
    src = []
    for o in range(out_size):
        v = float((f32(o) + offset) * scale)
        i = int(math.floor(abs(v) + 0.5)) * (1 if v >= 0 else -1) if align_corners \
            else int(math.floor(v))
        i = min(i, in_size - 1)
        src.append(max(0, i) if half_pixel_centers else i)
    return src


@dataclass
class ResizeBilinear(Op):
    """RESIZE_BILINEAR on H x W x C (UpSampling2D(interpolation="bilinear"), Resizing,
    tf.image.resize): output pixel (y, x) mixes input rows ``rows[2y]`` (weight 1 - fy) and
    ``rows[2y + 1]`` (weight fy), and columns ``cols[2x]`` / ``cols[2x + 1]`` likewise (fx), as
    TFLite's kernels do. The generator computes the tables per dtype:

    * float32 (:func:`bilinear_source_f32`): TFLite's ComputeInterpolationValues in float32,
      ``row_frac``/``col_frac`` the float fractions; the kernel sums the four corners with
      weights (1 - fy)(1 - fx), fy (1 - fx), (1 - fy) fx, fy fx;
    * int8 (:func:`bilinear_source_s8`): reference_ops::ResizeBilinearInteger, which TFLite's
      built-in int8 kernel (reference and optimised alike) runs: positions in 10-bit fixed point,
      the fractions ``row_frac``/``col_frac`` integers (-512 .. 1023, negative before the first
      half-pixel centre), the four products summed in 20 fractional bits and rounded half away
      from zero. Stored int8 values are mixed as they are: TFLite does not requantise (the
      converter gives input and output one quantisation).
    """

    kind: ClassVar[str] = "ResizeBilinear"
    rows: tuple[int, ...] = ()          # [2 * out_h]: (upper, lower) source row per output row
    cols: tuple[int, ...] = ()          # [2 * out_w]
    row_frac: tuple = ()                # [out_h]: float fractions, or 10-bit integers (int8)
    col_frac: tuple = ()                # [out_w]

    @property
    def macs(self) -> int:
        return 4 * self.out_len

    def emit_ref(self, ctx: RefContext) -> str:
        k = f"resize_bilinear_{ctx.sfx}"
        ctx.kernel(k)
        rows = ctx.array("uint16_t", "rows", np.asarray(self.rows, np.uint16), 16)
        cols = ctx.array("uint16_t", "cols", np.asarray(self.cols, np.uint16), 16)
        if ctx.f32:
            fy = ctx.array("float", "fy", np.asarray(self.row_frac, np.float32), 6)
            fx = ctx.array("float", "fx", np.asarray(self.col_frac, np.float32), 6)
        else:
            fy = ctx.array("int16_t", "fy", np.asarray(self.row_frac, np.int16), 16)
            fx = ctx.array("int16_t", "fx", np.asarray(self.col_frac, np.int16), 16)
        _, in_w, c = self.in_shape
        oh, ow, _ = self.out_shape
        g = {"in_w": in_w, "channels": c, "out_h": oh, "out_w": ow, "rows": rows, "cols": cols}
        p = ctx.params(f"mcus_{k}_params_t", {"g": g, "row_frac": fy, "col_frac": fx})
        return f"mcus_{k}(&{p}, {ctx.inputs[0]}, {ctx.output});"


def bilinear_source_f32(out_size: int, in_size: int, align_corners: bool,
                        half_pixel_centers: bool) -> tuple[list[int], list[float]]:
    """Per output index: the two input indices it mixes (flattened pairs) and the weight of the
    second, as TFLite's float kernel computes them in float32: scale = in / out, or
    (in - 1) / (out - 1) with align_corners; position o * scale, or (o + 0.5) * scale - 0.5 with
    half-pixel centres; the pair (max(floor, 0), min(ceil, in - 1)); the weight position - first
    (negative before the first centre, where both indices are 0)."""
    f32 = np.float32
    if align_corners and out_size > 1:
        scale = f32(in_size - 1) / f32(out_size - 1)
    else:
        scale = f32(in_size) / f32(out_size)
    pairs: list[int] = []
    frac: list[float] = []
    for o in range(out_size):
        v = (f32(o) + f32(0.5)) * scale - f32(0.5) if half_pixel_centers else f32(o) * scale
        lo = max(int(math.floor(v)), 0)
        hi = min(int(math.ceil(v)), in_size - 1)
        pairs += [lo, hi]
        frac.append(float(f32(v - f32(lo))))
    return pairs, frac


def bilinear_source_s8(out_size: int, in_size: int, align_corners: bool,
                       half_pixel_centers: bool) -> tuple[list[int], list[int]]:
    """As :func:`bilinear_source_f32` in TFLite's integer arithmetic (ResizeBilinearInteger):
    scale = round(1024 * in / out) (halves up; (in - 1) / (out - 1) with align_corners);
    position o * scale, or o * scale + scale / 2 - 512 with half-pixel centres (C's truncating
    divisions); the pair (max(pos / 1024, 0), min(ceil(pos / 1024), in - 1)); the weight
    pos - 1024 * first."""
    def cdiv(a: int, b: int) -> int:          # C's integer division: truncates toward zero
        q = abs(a) // abs(b)
        return q if (a >= 0) == (b > 0) else -q
    if align_corners and out_size > 1:
        scale = cdiv(1024 * (in_size - 1) + cdiv(out_size - 1, 2), out_size - 1)
    else:
        scale = cdiv(1024 * in_size + cdiv(out_size, 2), out_size)
    pairs: list[int] = []
    frac: list[int] = []
    for o in range(out_size):
        v = o * scale + cdiv(scale, 2) - 512 if half_pixel_centers else o * scale
        lo = max(cdiv(v, 1024), 0)
        hi = min(cdiv(v + 1023, 1024), in_size - 1)
        pairs += [lo, hi]
        frac.append(v - 1024 * lo)
    return pairs, frac


# ---- front-end rules --------------------------------------------------------------------------

@tflite_rule("PAD", "PADV2")
def _pad(r: "Reader", top: "TfliteOp") -> None:
    """PAD / PADV2 with constant paddings (ZeroPadding2D, ZeroPadding1D)."""
    src, out = top.inputs[0], top.outputs[0]
    shape = r.full_shape(src)
    pads = _const_ints(r, top, top.inputs[1], "the padding").reshape(-1, 2)
    if len(pads) != len(shape) or np.any(pads < 0):
        raise r.unsupported(top, f"paddings {pads.tolist()} for a rank-{len(shape)} input")
    out_full = tuple(int(d + b + a) for d, (b, a) in zip(shape, pads))
    if out_full != r.full_shape(out):
        raise r.unsupported(top, f"output shape {r.full_shape(out)}, expected {out_full}")
    # size-1 dimensions without padding carry nothing; at most four may remain
    keep = [k for k, d in enumerate(shape) if d != 1 or pads[k].any()]
    if len(keep) > RANK:
        raise r.unsupported(top, f"padding in {len(keep)} dimensions (at most {RANK})")
    lead = [1] * (RANK - len(keep))
    value: float = 0.0
    has_const = len(top.inputs) > 2 and top.inputs[2] >= 0
    if has_const:
        if not r.is_const(top.inputs[2]):
            raise r.unsupported(top, "the padding value is not constant")
        value = r.const(top.inputs[2]).reshape(-1)[0].item()
    elif r.graph.dtype == "int8":
        value = r.q(out)[1]                    # TFLite pads int8 with the output zero point
    r.add(Pad(top.name, r.shape(src), r.shape(out), inputs=(src,),
              in_dims=tuple(lead + [shape[k] for k in keep]),
              out_dims=tuple(lead + [out_full[k] for k in keep]),
              before=tuple([0] * len(lead) + [int(pads[k][0]) for k in keep]), value=value), top)


def _reduce_axes(r: "Reader", top: "TfliteOp", shape: tuple[int, ...]) -> list[int]:
    """The constant axes of a reduction of ``shape`` (MEAN, REDUCE_MAX/MIN: input 1, one axis or
    a list, negative ones counting from the end) as given, checked to be inside ``shape``."""
    axes = [int(a) for a in _const_ints(r, top, top.inputs[1], "the axis")]
    if any(not -len(shape) <= a < len(shape) for a in axes):
        raise r.unsupported(top, f"axis {axes} of a rank-{len(shape)} input")
    return axes


def _reduce_view(r: "Reader", top: "TfliteOp", shape: tuple[int, ...],
                 raw_axes: list[int]) -> tuple[int, int, int]:
    """(outer, reduce, inner) of a reduction of ``shape`` over ``raw_axes`` (as given). The
    kernels reduce one block of adjacent axes; size-1 axes in between do not count."""
    axes = sorted({a % len(shape) for a in raw_axes})
    big = [k for k, d in enumerate(shape) if d != 1]
    red = [k for k in big if k in axes]
    if red and big.index(red[-1]) - big.index(red[0]) + 1 != len(red):
        raise r.unsupported(top, f"a reduction over axes {axes} of {list(shape)} that are not "
                                 "adjacent")
    reduce = int(np.prod([shape[k] for k in axes]))
    if not red:
        return int(np.prod(shape)), reduce, 1
    outer = int(np.prod([shape[k] for k in range(red[0]) if k not in axes]))
    inner = int(np.prod([shape[k] for k in range(red[-1] + 1, len(shape))]))
    return outer, reduce, inner


@tflite_rule("MEAN")
def _mean(r: "Reader", top: "TfliteOp") -> None:
    """MEAN over constant axes (GlobalAveragePooling2D / 1D); int8 as :class:`Mean` says."""
    src, out = top.inputs[0], top.outputs[0]
    shape = r.full_shape(src)
    raw = _reduce_axes(r, top, shape)
    outer, reduce, inner = _reduce_view(r, top, shape, raw)
    op = Mean(top.name, r.shape(src), r.shape(out), inputs=(src,), outer=outer, reduce=reduce,
              inner=inner)
    if r.graph.dtype == "int8":
        keep = bool(getattr(top.opts, "keepDims", False)) if top.opts is not None else False
        four_d_hw = keep and len(shape) == 4 and len(raw) == 2 and set(raw) == {1, 2}
        _mean_int8(op, r.q(src), r.q(out), four_d_hw)
    r.add(op, top)


def _mean_int8(op: Mean, q_in: tuple[float, int], q_out: tuple[float, int],
               four_d_hw: bool) -> None:
    """Set ``op``'s int8 rescaling as TFLite's MEAN kernel computes it (see :class:`Mean`)."""
    (s_in, z_in), (s_out, z_out) = q_in, q_out
    f32 = np.float32
    n = op.reduce
    if four_d_hw:        # optimized_integer_ops::Mean (float32 arithmetic, as in C++)
        temp = f32(f32(z_in) * f32(s_in)) / f32(s_out)
        temp = temp + f32(0.5) if temp > 0 else temp - f32(0.5)
        m, s = quantize_multiplier(float(f32(s_in) / (f32(n) * f32(s_out))))
        op.input_offset, op.output_offset = 0, int(z_out) - int(temp)
        op.vector_channels = MEAN_VECTOR_LANES * (op.inner // MEAN_VECTOR_LANES)
    else:                # reference_ops::QuantizedMeanOrSum
        m, s = quantize_multiplier(float(np.float64(f32(s_in)) / np.float64(f32(s_out))))
        k = min(n.bit_length() - 1, 32, 31 + s)
        m, s = (m << k) // n, s - k
        op.input_offset, op.output_offset = -int(z_in), int(z_out)
        op.vector_channels = 0
    op.multiplier, op.shift = int(m), int(s)


@tflite_rule("REDUCE_MAX", "REDUCE_MIN")
def _reduce(r: "Reader", top: "TfliteOp") -> None:
    """REDUCE_MAX / REDUCE_MIN over constant axes (GlobalMaxPooling2D / 1D, tf.reduce_max and
    tf.reduce_min in a Lambda); keep_dims changes only the output's shape."""
    src, out = top.inputs[0], top.outputs[0]
    shape = r.full_shape(src)
    outer, reduce, inner = _reduce_view(r, top, shape, _reduce_axes(r, top, shape))
    if r.graph.dtype == "int8" and r.q(src) != r.q(out):
        raise r.unsupported(top, "int8 input and output quantised differently: TFLite's "
                                 f"{top.opname} refuses them too (it compares the stored values, "
                                 "it does not rescale)")
    r.add(Reduce(top.name, r.shape(src), r.shape(out), inputs=(src,),
                 function=top.opname.removeprefix("REDUCE_"), outer=outer, reduce=reduce,
                 inner=inner), top)


def _no_activation(r: "Reader", top: "TfliteOp") -> None:
    if top.opts is not None and getattr(top.opts, "fusedActivationFunction", 0):
        raise r.unsupported(top, "a fused activation")


@tflite_rule("CONCATENATION")
def _concatenation(r: "Reader", top: "TfliteOp") -> None:
    """CONCATENATION on any axis (Concatenate): a copy per outer index and input."""
    if only_shape_arithmetic(r, top):
        return
    _no_activation(r, top)
    out = top.outputs[0]
    out_full = r.full_shape(out)
    axis = int(top.opts.axis) % len(out_full)
    shapes = [r.full_shape(i) for i in top.inputs]
    for s in shapes:
        if len(s) != len(out_full) or s[:axis] != out_full[:axis] or \
                s[axis + 1:] != out_full[axis + 1:]:
            raise r.unsupported(top, f"input shapes {shapes} for output {out_full}")
    if r.graph.dtype == "int8" and any(r.q(i) != r.q(out) for i in top.inputs):
        raise r.unsupported(top, "int8 inputs quantised differently from the output: TFLite's "
                                 "CONCATENATION refuses them too (it does not rescale)")
    _add_concat(r, top, int(np.prod(out_full[:axis])),
                [int(np.prod(s[axis:])) for s in shapes])


@tflite_rule("SHAPE", "REDUCE_PROD", "GATHER", "RESHAPE")
def _shape(r: "Reader", top: "TfliteOp") -> None:
    """SHAPE, REDUCE_PROD, GATHER and RESHAPE of an int32 tensor: only as shape arithmetic (see
    :func:`only_shape_arithmetic`). (An int8 RESHAPE that requantises comes here too.)"""
    if only_shape_arithmetic(r, top):
        return
    if r.type_of(top.outputs[0]) != "int32":         # on data, not shapes
        raise r.unsupported(top, "input and output quantised differently"
                            if top.opname == "RESHAPE" else "")
    raise r.unsupported(top, "a tensor's shape used as data")


@tflite_rule("FILL")
def _fill(r: "Reader", top: "TfliteOp") -> None:
    """FILL of a constant value (tf-keras LayerNormalization's scale of ones and offset of zeros
    per row): a constant of the output's shape, which the operators reading it take as such (a
    flash array, or folded into their tables). Its shape input is constant or shape arithmetic
    (the rule of the int32 operator computing it saw to that)."""
    value, out = top.inputs[1], top.outputs[0]
    if not r.is_const(value):
        raise r.unsupported(top, "the fill value is not constant")
    if r.type_of(value) != r.type_of(out) or r.type_of(out) != r.graph.dtype:
        raise r.unsupported(top, f"a {r.type_of(out)} fill in a {r.graph.dtype} model")
    r.folded[out] = np.full(r.full_shape(out), r.const(value).reshape(-1)[0])


@tflite_rule("PACK")
def _pack(r: "Reader", top: "TfliteOp") -> None:
    """PACK (tf.stack, a recurrent layer's output sequence): a concatenation on a new axis."""
    if only_shape_arithmetic(r, top):
        return
    shapes = [r.full_shape(i) for i in top.inputs]
    if len(set(shapes)) != 1:
        raise r.unsupported(top, f"inputs of different shapes {shapes}")
    axis = int(top.opts.axis) % (len(shapes[0]) + 1)
    s = shapes[0]
    _add_concat(r, top, int(np.prod(s[:axis])), [int(np.prod(s[axis:]))] * len(shapes))


def _add_concat(r: "Reader", top: "TfliteOp", outer: int, inner: list[int]) -> None:
    out = top.outputs[0]
    if outer * sum(inner) != int(np.prod(r.full_shape(out))):
        raise r.unsupported(top, f"output shape {r.full_shape(out)}")
    inputs = tuple(top.inputs)
    r.add(Concat(top.name, r.shape(inputs[0]), r.shape(out), inputs=inputs, outer=outer,
                 inner=tuple(inner)), top)


def _read_later(r: "Reader", top: "TfliteOp", tid: int) -> bool:
    """Whether an operator after ``top`` reads tensor ``tid`` (or it is the model output)."""
    return tid == r.graph.output_id or any(tid in t.inputs for t in r.ops if t.index > top.index)


def _add_copy(r: "Reader", top: "TfliteOp", k: int, base: int, dims, strides,
              cls: type[Slice] = Slice) -> None:
    """Add the strided copy that computes ``top``'s output ``k`` (none when nothing reads it)."""
    src, out = top.inputs[0] if top.opname != "SPLIT" else top.inputs[1], top.outputs[k]
    if not _read_later(r, top, out):
        return
    if int(np.prod(dims)) != int(np.prod(r.full_shape(out))):
        raise r.unsupported(top, f"output {k} has shape {r.full_shape(out)}, the slice "
                                 f"{[int(d) for d in dims]}")
    view = _copy_view(dims, strides)
    if view is None:
        raise r.unsupported(top, f"a copy in more than {RANK} dimensions")
    name = top.name if len(top.outputs) == 1 else f"{top.name}/{k}"
    r.add(cls(name, r.shape(src), r.shape(out), inputs=(src,), base=int(base), dims=view[0],
              strides=view[1]), _one_output(top, k))


@tflite_rule("SPLIT", "SPLIT_V")
def _split(r: "Reader", top: "TfliteOp") -> None:
    """SPLIT / SPLIT_V (the gates of an unrolled LSTM/GRU): one strided copy per output."""
    split_v = top.opname == "SPLIT_V"
    src = top.inputs[0] if split_v else top.inputs[1]
    shape = r.full_shape(src)
    axis_t = top.inputs[2] if split_v else top.inputs[0]
    axis = int(_const_ints(r, top, axis_t, "the axis")[0]) % len(shape)
    st = _strides(shape)
    sizes = [r.full_shape(o)[axis] for o in top.outputs]
    if sum(sizes) != shape[axis]:
        raise r.unsupported(top, f"outputs of {sizes} along an axis of {shape[axis]}")
    start = 0
    for k, size in enumerate(sizes):
        dims = list(shape)
        dims[axis] = size
        _add_copy(r, top, k, start * st[axis], dims, st)
        start += size


@tflite_rule("UNPACK")
def _unpack(r: "Reader", top: "TfliteOp") -> None:
    """UNPACK (the time steps of an unrolled recurrent layer): one copy per output."""
    shape = r.full_shape(top.inputs[0])
    axis = int(top.opts.axis) % len(shape)
    st = _strides(shape)
    dims = [d for j, d in enumerate(shape) if j != axis]
    strides = [s for j, s in enumerate(st) if j != axis]
    for k in range(len(top.outputs)):
        _add_copy(r, top, k, k * st[axis], dims, strides)


@tflite_rule("SLICE")
def _slice(r: "Reader", top: "TfliteOp") -> None:
    """SLICE with constant begin and size (-1: to the end)."""
    if only_shape_arithmetic(r, top):
        return
    shape = r.full_shape(top.inputs[0])
    begin = _const_ints(r, top, top.inputs[1], "the begin")
    size = _const_ints(r, top, top.inputs[2], "the size")
    if len(begin) != len(shape) or len(size) != len(shape):
        raise r.unsupported(top, f"begin {begin.tolist()} / size {size.tolist()} for {shape}")
    size = [int(d - b) if z < 0 else int(z) for d, b, z in zip(shape, begin, size)]
    if any(b < 0 or b + z > d for b, z, d in zip(begin, size, shape)):
        raise r.unsupported(top, f"begin {begin.tolist()} / size {size} outside {shape}")
    st = _strides(shape)
    _add_copy(r, top, 0, sum(int(b) * s for b, s in zip(begin, st)), size, st)


def _slice_axis(d: int, b: int, e: int, s: int, mask_b: bool, mask_e: bool,
                shrink: bool) -> tuple[int, int]:
    """(first index, count) of one axis of TF's strided slice (Python slice semantics)."""
    if shrink:
        b = b + d if b < 0 else b
        return b, 1
    if s > 0:
        b = 0 if mask_b else min(max(b + d if b < 0 else b, 0), d)
        e = d if mask_e else min(max(e + d if e < 0 else e, 0), d)
        return b, max(0, -(-(e - b) // s))
    b = d - 1 if mask_b else min(max(b + d if b < 0 else b, -1), d - 1)
    e = -1 if mask_e else min(max(e + d if e < 0 else e, -1), d - 1)
    return b, max(0, -(-(b - e) // -s))


@tflite_rule("STRIDED_SLICE")
def _strided_slice(r: "Reader", top: "TfliteOp") -> None:
    """STRIDED_SLICE with constant begin/end/strides (any stride, negative too), begin, end
    and shrink masks (Cropping2D, tensor[a:b:s] in a Lambda)."""
    if only_shape_arithmetic(r, top):
        return
    o = top.opts
    shape = r.full_shape(top.inputs[0])
    begin, end, stride = (_const_ints(r, top, top.inputs[k], w)
                          for k, w in ((1, "the begin"), (2, "the end"), (3, "the strides")))
    if o.ellipsisMask or o.newAxisMask:
        raise r.unsupported(top, "an ellipsis or a new axis")
    if not len(begin) == len(end) == len(stride) <= len(shape) or np.any(stride == 0):
        raise r.unsupported(top, f"begin/end/strides {begin.tolist()}/{end.tolist()}/"
                                 f"{stride.tolist()} for {shape}")
    if getattr(o, "offset", False):
        end = begin + end
    st = _strides(shape)
    base, dims, strides = 0, [], []
    for k, d in enumerate(shape):
        if k < len(begin):
            first, count = _slice_axis(d, int(begin[k]), int(end[k]), int(stride[k]),
                                       bool(o.beginMask >> k & 1), bool(o.endMask >> k & 1),
                                       bool(o.shrinkAxisMask >> k & 1))
            step = int(stride[k])
        else:
            first, count, step = 0, d, 1
        if count and not 0 <= first < d:
            raise r.unsupported(top, f"index {first} outside axis {k} of {shape}")
        base += first * st[k]
        dims.append(count)
        strides.append(step * st[k])
    _add_copy(r, top, 0, base, dims, strides)


@tflite_rule("TRANSPOSE")
def _transpose(r: "Reader", top: "TfliteOp") -> None:
    """TRANSPOSE with a constant permutation (Permute)."""
    shape = r.full_shape(top.inputs[0])
    perm = [int(p) % len(shape) for p in _const_ints(r, top, top.inputs[1], "the permutation")]
    if sorted(perm) != list(range(len(shape))):
        raise r.unsupported(top, f"permutation {perm} of a rank-{len(shape)} input")
    st = _strides(shape)
    _add_copy(r, top, 0, 0, [shape[p] for p in perm], [st[p] for p in perm], Transpose)


@tflite_rule("RESIZE_NEAREST_NEIGHBOR")
def _resize_nearest(r: "Reader", top: "TfliteOp") -> None:
    """RESIZE_NEAREST_NEIGHBOR to a constant size (UpSampling2D), any mode TFLite has."""
    src, out = top.inputs[0], top.outputs[0]
    shape, out_shape = r.shape(src), r.shape(out)
    if len(shape) != 3 or len(out_shape) != 3 or len(r.full_shape(src)) != 4:
        raise r.unsupported(top, f"needs a 1 x H x W x C input, got {r.full_shape(src)}")
    (ih, iw, c), (oh, ow, oc) = shape, out_shape
    if oc != c or max(ih, iw) > 0xFFFF:
        raise r.unsupported(top, f"{shape} -> {out_shape}")
    align = bool(top.opts.alignCorners) if top.opts is not None else False
    half = bool(top.opts.halfPixelCenters) if top.opts is not None else False
    r.add(ResizeNearest(top.name, shape, out_shape, inputs=(src,),
                        rows=tuple(nearest_source(oh, ih, align, half)),
                        cols=tuple(nearest_source(ow, iw, align, half))), top)


@tflite_rule("RESIZE_BILINEAR")
def _resize_bilinear(r: "Reader", top: "TfliteOp") -> None:
    """RESIZE_BILINEAR to a constant size (UpSampling2D(interpolation="bilinear"), Resizing,
    tf.image.resize), any mode TFLite has; float32 and int8 as :class:`ResizeBilinear` says."""
    src, out = top.inputs[0], top.outputs[0]
    shape, out_shape = r.shape(src), r.shape(out)
    if len(shape) != 3 or len(out_shape) != 3 or len(r.full_shape(src)) != 4:
        raise r.unsupported(top, f"needs a 1 x H x W x C input, got {r.full_shape(src)}")
    (ih, iw, c), (oh, ow, oc) = shape, out_shape
    if oc != c or max(ih, iw) > 0xFFFF or max(oh, ow) > 0x7FFF:
        raise r.unsupported(top, f"{shape} -> {out_shape}")
    align = bool(top.opts.alignCorners) if top.opts is not None else False
    half = bool(top.opts.halfPixelCenters) if top.opts is not None else False
    if align and half:
        raise r.unsupported(top, "align_corners with half_pixel_centers (TFLite refuses them)")
    source = bilinear_source_f32 if r.graph.dtype == "float32" else bilinear_source_s8
    (rows, fy), (cols, fx) = source(oh, ih, align, half), source(ow, iw, align, half)
    if max(rows) >= ih or max(cols) >= iw:      # TFLite would read outside the input
        raise r.unsupported(top, f"{shape} -> {out_shape}: an upsampling factor this large "
                                 "puts positions past the input's last pixel")
    r.add(ResizeBilinear(top.name, shape, out_shape, inputs=(src,), rows=tuple(rows),
                         cols=tuple(cols), row_frac=tuple(fy), col_frac=tuple(fx)), top)


# ---- int8 models: DEQUANTIZE -> float data movement -> QUANTIZE ---------------------------------

# Pure data-movement operators: in int8 they move the same values as in float32.
MOVES = ("SPLIT", "SPLIT_V", "UNPACK", "SLICE", "STRIDED_SLICE", "TRANSPOSE", "RESHAPE")


@tflite_rule("DEQUANTIZE")
def _dequantize(r: "Reader", top: "TfliteOp") -> None:
    """In a full-integer model, TensorFlow's converter leaves some data movement in float32
    between a DEQUANTIZE and QUANTIZEs (an UNPACK whose outputs are not all used, for one). With
    one quantisation throughout, dequantising, moving and quantising again gives back the same
    int8 values (the float32 round trip of an int8 value is exact), so the chain is rewritten as
    the same movement in int8: the data-movement operator reads the DEQUANTIZE's input and writes
    the QUANTIZEs' outputs, and the DEQUANTIZE and QUANTIZEs go."""
    if r.graph.dtype != "int8":
        raise r.unsupported(top)
    src, f = top.inputs[0], top.outputs[0]
    later = [t for t in r.ops if t.index > top.index]
    moves = [t for t in later if f in t.inputs]
    renamed: dict[int, int] = {}
    quantizes: list["TfliteOp"] = []
    for m in moves:
        if m.opname not in MOVES or m.inputs.count(f) != 1 or f != m.inputs[m.opname == "SPLIT"]:
            raise r.unsupported(top, f"its float output feeds {m.opname} ({m.name}), not only "
                                     "data movement")
        for o in m.outputs:
            readers = [t for t in later if o in t.inputs]
            if o == r.graph.output_id or any(t.opname != "QUANTIZE" for t in readers):
                raise r.unsupported(top, f"the float output of {m.opname} ({m.name}) is used "
                                         "as float")
            for q in readers:
                if r.type_of(q.outputs[0]) != "int8" or r.q(q.outputs[0]) != r.q(src) or \
                        len(readers) != 1:
                    raise r.unsupported(top, f"{m.opname} ({m.name}) is followed by a "
                                             "requantisation, not the same quantisation")
                renamed[o] = q.outputs[0]
                quantizes.append(q)
    for m in moves:
        pos = r.ops.index(m)
        r.ops[pos] = dataclasses.replace(
            m, inputs=[src if i == f else i for i in m.inputs],
            outputs=[renamed.get(o, o) for o in m.outputs])
    for q in quantizes:
        r.ops.remove(q)
