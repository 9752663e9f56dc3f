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
from mcusearch.convert.ops.elementwise import small_mbqm_fields

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

    def phases(self) -> list[list[tuple[int, int, int, int]]]:
        """Per stride phase (py, px), py then px ascending: the taps (ky, kx, dy, dx) that reach
        its output pixels (py + stride_h qy, px + stride_w qx), each from input pixel (qy + dy,
        qx + dx) - ky = oy + pad_top - iy stride_h, so ky runs over one residue of the stride."""
        (kh, kw), (sh, sw), (pt, pl) = self.kernel, self.stride, self.pad
        return [[(ky, kx, (py + pt - ky) // sh, (px + pl - kx) // sw)
                 for ky in range((py + pt) % sh, kh, sh) for kx in range((px + pl) % sw, kw, sw)]
                for py in range(sh) for px in range(sw)]

    def tap_table(self) -> np.ndarray:
        """The kernels' ``taps`` (mcus_kernels.h): per phase the tap count; the rows [y0, y1)
        and columns [x0, x1) of the phase whose taps all lie inside the input (the kernels skip
        the position test there); the taps' (dy, dx, (dy in_w + dx) in_c)."""
        (ih, iw, ic), (oh, ow, _) = self.in_shape, self.out_shape
        (sh, sw), table = self.stride, []
        for k, taps in enumerate(self.phases()):
            py, px = divmod(k, sw)
            rows, cols = -(-(oh - py) // sh), -(-(ow - px) // sw)
            dys, dxs = [t[2] for t in taps] or [0], [t[3] for t in taps] or [0]
            y0, x0 = min(max(0, -min(dys)), rows), min(max(0, -min(dxs)), cols)
            y1, x1 = max(y0, min(rows, ih - max(dys))), max(x0, min(cols, iw - max(dxs)))
            table += [len(taps), y0, y1, x0, x1]
            table += [v for t in taps for v in (t[2], t[3], (t[2] * iw + t[3]) * ic)]
        return np.array(table, np.int64)

    def phase_weights(self, int8: bool) -> np.ndarray:
        """The filter as the kernels read it (mcus_kernels.h): per phase, blocks of output
        channels (4 for float32, 2 for int8) as [tap][in][block], then the channels past the last
        block as [tap][in]; for int8 "in" is a chunk of 4 input channels as two words of int16
        pairs (c0, c2), (c1, c3)."""
        w = np.asarray(self.weights)
        n_out, n_in = w.shape[0], w.shape[3]
        if int8:
            chunks = -(-n_in // 4)
            padded = np.zeros(w.shape[:3] + (4 * chunks,), np.int64)
            padded[..., :n_in] = w
            # per chunk the words (c0, c2), (c1, c3), the low half first
            halves = padded.reshape(w.shape[:3] + (chunks, 2, 2)).swapaxes(-1, -2)
            w = ((halves[..., 0] & 0xFFFF) | (halves[..., 1] << 16)).astype(np.uint32)
            w = w.view(np.int32)
        else:
            w = w[..., None]                                      # [out][kh][kw][in][1]
        block = 2 if int8 else 4
        full = n_out // block * block
        parts = []
        for taps in self.phases():
            tw = w[:, [t[0] for t in taps], [t[1] for t in taps]]     # [out][tap][in][1 or 2]
            parts.append(tw[:full].reshape((full // block, block) + tw.shape[1:])
                         .transpose(0, 2, 3, 1, 4).ravel())
            parts.append(tw[full:].ravel())
        return np.concatenate(parts)

    def small_requant(self) -> np.ndarray | None:
        """Per output channel a mcus_small_mbqm_t (elementwise.small_mbqm_fields: multiplier, left1,
        right, bias with the output offset, neg) for the kernel's mcus_small_mbqm_pos, when that
        computes MultiplyByQuantizedMultiplier exactly for every sum of the layer:
        1 <= right <= 22 (MCUS_SMALL_MBQM_MAX_RIGHT) and |sum| < 2^30, bounded by 255 sum|w| +
        |bias| (|x + input offset| <= 255); else None."""
        rq, w = self.requant, np.asarray(self.weights, np.int64)
        n_out = w.shape[0]
        right = -np.broadcast_to(rq.shift, (n_out,)).astype(np.int64)
        bound = 255 * np.abs(w).reshape(n_out, -1).sum(axis=1)
        if self.bias is not None:
            bound = bound + np.abs(np.asarray(self.bias, np.int64))
        if right.min() < 1 or right.max() > 22 or bound.max() >= 1 << 30:
            return None
        mult = np.broadcast_to(rq.multiplier, (n_out,))
        return np.array([list(small_mbqm_fields(int(m), -int(r), rq.output_zero_point).values())
                         for m, r in zip(mult, right)], np.int64)

    def emit_ref(self, ctx: RefContext) -> str:
        name = f"transpose_conv_{ctx.sfx}"
        ctx.kernel(name)
        w = ctx.array("float" if ctx.f32 else "int32_t", "w", self.phase_weights(not ctx.f32),
                      12 if ctx.f32 else 8)
        taps = ctx.array("int32_t", "taps", self.tap_table(), 12)
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
        else:
            rq = self.requant
            fields.update(input_offset=-rq.input_zero_point, output_offset=rq.output_zero_point,
                          act_min=int(lo), act_max=int(hi),
                          multiplier=ctx.array("int32_t", "mult", rq.multiplier, 8),
                          shift=ctx.array("int32_t", "shift", rq.shift, 8))
            rqs = self.small_requant()
            fields["rq"] = "0" if rqs is None else ctx.array("int32_t", "rq", rqs, 8)
            words = 4 * -(-ic // 4) * max(len(t) for t in self.phases())     # two pixels
            ctx.data.append(f"static uint32_t {ctx.pfx}_col[{max(words, 1)}];\n")
            fields["col"] = f"{ctx.pfx}_col"
        fields["taps"] = taps
        p = ctx.params(f"mcus_transpose_conv_{ctx.sfx}_params_t", fields)
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
    shape = _hwc(r, top, src)
    out_shape = r.shape(top.outputs[0])     # static; a computed output shape (a model of unknown
    if r.is_const(shape_idx):               # batch size) is shape arithmetic on it
        want = [int(d) for d in r.const(shape_idx)][1:]
        if want != [int(d) for d in out_shape]:
            raise r.unsupported(top, f"output shape {want} against the tensor's {out_shape}")
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
