"""TRANSPOSE_CONV (Keras Conv2DTranspose, a decoder's or U-Net's learned upsampling).

TFLite's reference kernel scatters: input pixel (iy, ix) times filter tap (ky, kx) adds to output
pixel (iy * stride - pad + ky, ix * stride - pad + kx) when that lies inside the output, with
``pad`` from ComputePaddingHeightWidth run on the *output* size (its odd extra is ignored). The
kernels here gather the same products per output pixel, so they need no int32 scratch map; int8
then requantises per output channel as TFLite's TRANSPOSE_CONV does (tests/test_transpose_conv.py
finds its rounding against the interpreter), float32 sums within the converter's tolerance.
Weights are TFLite's [out_c][kh][kw][in_c]; the bias is optional (the converter drops zero ones).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from mcusearch.convert.graph import Op, Requant
from mcusearch.convert.ops import RefContext, tflite_rule

if TYPE_CHECKING:
    from mcusearch.convert.frontend import Reader, TfliteOp


@dataclass
class TransposeConv2D(Op):
    """``weights`` [O][KH][KW][I], ``bias`` [O] or None, ``pad`` (top, left) as TFLite's."""

    kind: ClassVar[str] = "TransposeConv2D"
    weights: np.ndarray = None
    bias: np.ndarray | None = None
    stride: tuple[int, int] = (1, 1)
    pad: tuple[int, int] = (0, 0)
    act: tuple = (-math.inf, math.inf)
    requant: Requant | None = None

    @property
    def kernel(self) -> tuple[int, int]:
        return int(self.weights.shape[1]), int(self.weights.shape[2])

    @property
    def macs(self) -> int:
        """Every product of an input value and a filter tap (evaluate.layer_macs' count; the
        kernel skips those the output crops)."""
        return int(np.prod(self.in_shape[:-1])) * int(self.weights.size)

    def emit_ref(self, ctx: RefContext) -> str:
        name = f"transpose_conv_{ctx.sfx}"
        ctx.kernel(name)
        w = ctx.array(ctx.ctype, "w", self.weights, 12 if ctx.f32 else 24)
        b = "0" if self.bias is None else ctx.array("float" if ctx.f32 else "int32_t", "b",
                                                     self.bias, 8)
        (ih, iw, ic), (oh, ow, oc) = self.in_shape, self.out_shape
        kh, kw = self.kernel
        fields: dict[str, object] = {"g": dict(
            in_h=ih, in_w=iw, in_c=ic, out_h=oh, out_w=ow, out_c=oc, kernel_h=kh, kernel_w=kw,
            stride_h=self.stride[0], stride_w=self.stride[1], pad_top=self.pad[0],
            pad_left=self.pad[1])}
        lo, hi = self.act
        if ctx.f32:
            fields.update(act_min=ctx.c_float(float(lo)), act_max=ctx.c_float(float(hi)))
            ptype = "mcus_conv2d_f32_params_t"
        else:
            rq = self.requant
            fields.update(input_offset=-rq.input_zero_point, output_offset=rq.output_zero_point,
                          act_min=int(lo), act_max=int(hi),
                          multiplier=ctx.array("int32_t", "mult", rq.multiplier, 8),
                          shift=ctx.array("int32_t", "shift", rq.shift, 8))
            ptype = "mcus_conv2d_s8_params_t"
        p = ctx.params(ptype, fields)
        return f"mcus_{name}(&{p}, {ctx.inputs[0]}, {w}, {b}, {ctx.output});"


def _out_size(padding_same: bool, size: int, k: int, stride: int) -> int:
    """TFLite's ComputeOutSize (dilation 1)."""
    return (size + stride - 1) // stride if padding_same else (size + stride - k) // stride


def transpose_conv_pad(padding_same: bool, out_size: int, k: int, stride: int) -> int:
    """TRANSPOSE_CONV's padding along one axis: ComputePadding with the output size in the input's
    place, as TFLite's Prepare calls it; the odd extra (its offset) is not used by the kernel."""
    return max(((_out_size(padding_same, out_size, k, stride) - 1) * stride + k - out_size) // 2, 0)


@tflite_rule("TRANSPOSE_CONV")
def _transpose_conv(r: "Reader", top: "TfliteOp") -> None:
    from mcusearch.convert.frontend import _hwc, _weights

    shape_idx, w_idx, src = top.inputs[:3]
    bias_idx = top.inputs[3] if len(top.inputs) > 3 else -1
    if not r.is_const(shape_idx):
        raise r.unsupported(top, "the output shape is not constant")
    shape = _hwc(r, top, src)
    out_shape = r.shape(top.outputs[0])
    if len(out_shape) != 3:
        raise r.unsupported(top, f"output shape {out_shape}")
    n_out, _, _, n_in = (int(d) for d in r.sg.tensors[w_idx].shape)
    if n_in != shape[2] or n_out != out_shape[2]:
        raise r.unsupported(top, f"weights [{n_out}, ., ., {n_in}] for {shape} -> {out_shape}")
    # _weights reads (input, weights, bias) in CONV_2D's order
    w, bias, rq = _weights(r, dataclasses.replace(top, inputs=[src, w_idx, bias_idx]), n_out)
    o = top.opts
    same = o.padding == r.schema.Padding.SAME
    stride = (int(o.strideH), int(o.strideW))
    pad = tuple(transpose_conv_pad(same, int(out_shape[a]), int(w.shape[1 + a]), stride[a])
                for a in (0, 1))
    r.add(TransposeConv2D(top.name, shape, out_shape, inputs=(src,), weights=w, bias=bias,
                          stride=stride, pad=pad, act=r.act(top), requant=rq), top)
