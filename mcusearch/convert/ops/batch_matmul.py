"""BATCH_MATMUL (Keras MultiHeadAttention's einsums, tf.linalg.matmul, ``a @ b``).

For every batch index of the output, ``out[..., m, n] = sum_k lhs[..., m, k] rhs[..., k, n]``,
with ``adj_x`` reading lhs stored as [..., K, M] and ``adj_y`` rhs stored as [..., N, K]. Operands
have rank 2 to 5 (what TFLite's kernel takes); their batch dimensions, right-aligned, are equal or
one of them is 1 (broadcast). Both operands may be computed tensors (attention: queries times
keys, scores times values); one of them may be a constant (a flash array).

float32 sums over k in order, within the converter's tolerance of the interpreter. int8 is
TFLite's BATCH_MATMUL arithmetic (batch_matmul.cc, EvalInt8Int8 with the reference kernel):
per-tensor scales, ``(lhs - z_lhs) (rhs - z_rhs)`` summed in int32, requantised by
MultiplyByQuantizedMultiplier (ties away from zero) with the multiplier of
``float32(s_lhs s_rhs) / s_out`` (GetQuantizedConvolutionMultipler), plus the output zero point,
clamped to the int8 range (the operator has no fused activation). tests/test_batch_matmul.py pins
the rounding against the interpreter with rounding ties.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from mcusearch.convert.graph import Op
from mcusearch.convert.ops import RefContext, tflite_rule
from mcusearch.convert.ops.elementwise import MulQuant
from mcusearch.convert.ops.shape import _ints, _strides
from mcusearch.convert.quant import quantized_convolution_multiplier
from mcusearch.errors import StageError

if TYPE_CHECKING:
    from mcusearch.convert.frontend import Reader, TfliteOp

MAX_BATCH_DIMS = 3        # MCUS_BMM_MAX_BATCH in firmware/kernels/mcus_kernels.h (rank 5)
# int8: the largest depth whose int32 sum cannot overflow (|(x - z_x)(y - z_y)| <= 255 * 255)
MAX_DEPTH_S8 = (2**31 - 1) // (255 * 255)


def matmul_geometry(lhs: tuple[int, ...], rhs: tuple[int, ...], adj_x: bool,
                    adj_y: bool) -> tuple[tuple[int, ...], dict]:
    """(the output's shape, mcus_bmm_geom_t's fields) of BATCH_MATMUL on operands of shapes
    ``lhs`` and ``rhs`` (batch included), as TFLite's Prepare computes it; a ValueError saying why
    for shapes it refuses."""
    lhs, rhs = tuple(int(d) for d in lhs), tuple(int(d) for d in rhs)
    if not (2 <= len(lhs) <= 2 + MAX_BATCH_DIMS and 2 <= len(rhs) <= 2 + MAX_BATCH_DIMS):
        raise ValueError(f"operands of rank {len(lhs)} and {len(rhs)} (2 to "
                         f"{2 + MAX_BATCH_DIMS} taken)")
    rows, depth = (lhs[-1], lhs[-2]) if adj_x else (lhs[-2], lhs[-1])
    depth_y, cols = (rhs[-1], rhs[-2]) if adj_y else (rhs[-2], rhs[-1])
    if depth != depth_y:
        raise ValueError(f"{list(lhs)}{' (adj_x)' if adj_x else ''} times "
                         f"{list(rhs)}{' (adj_y)' if adj_y else ''}: depths {depth} and {depth_y}")
    n = MAX_BATCH_DIMS
    lb, rb = (1,) * (n + 2 - len(lhs)) + lhs[:-2], (1,) * (n + 2 - len(rhs)) + rhs[:-2]
    if any(a != b and 1 not in (a, b) for a, b in zip(lb, rb)):
        raise ValueError(f"batch dimensions {list(lhs[:-2])} and {list(rhs[:-2])} do not "
                         "broadcast")
    batch = tuple(max(a, b) for a, b in zip(lb, rb))
    ls, rs = _strides(lhs), _strides(rhs)
    # per batch dimension the elements an operand steps (0: it broadcasts there)
    l_step = [0 if d == 1 else lhs[-2] * lhs[-1] * int(np.prod(lb[k + 1:]))
              for k, d in enumerate(lb)]
    r_step = [0 if d == 1 else rhs[-2] * rhs[-1] * int(np.prod(rb[k + 1:]))
              for k, d in enumerate(rb)]
    lhs_row, lhs_depth = (ls[-1], ls[-2]) if adj_x else (ls[-2], ls[-1])
    rhs_col, rhs_depth = (rs[-2], rs[-1]) if adj_y else (rs[-1], rs[-2])
    out_rank = max(len(lhs), len(rhs))
    out_shape = batch[n + 2 - out_rank:] + (rows, cols)
    return out_shape, {"batch": _ints(batch), "lhs_batch": _ints(l_step),
                       "rhs_batch": _ints(r_step), "rows": rows, "cols": cols, "depth": depth,
                       "lhs_row": lhs_row, "lhs_depth": lhs_depth, "rhs_depth": rhs_depth,
                       "rhs_col": rhs_col}


@dataclass
class BatchMatMul(Op):
    """``inputs``: the computed operands in order (lhs, rhs); a constant operand sits at
    ``const_index`` (0: lhs, 1: rhs) with its values in ``const``. Shapes with the batch
    (``lhs_shape``, ``rhs_shape``) are TFLite's frame. int8: ``quant`` holds the operands'
    offsets (a_offset: lhs, b_offset: rhs), the output offset and the multiplier."""

    kind: ClassVar[str] = "BatchMatMul"
    lhs_shape: tuple[int, ...] = ()
    rhs_shape: tuple[int, ...] = ()
    adj_x: bool = False
    adj_y: bool = False
    const: np.ndarray | None = None
    const_index: int = -1
    quant: MulQuant | None = None

    def geometry(self) -> dict:
        return matmul_geometry(self.lhs_shape, self.rhs_shape, self.adj_x, self.adj_y)[1]

    @property
    def macs(self) -> int:
        g = self.geometry()
        return self.out_len * int(g["depth"])

    @property
    def params(self) -> int:
        return 0 if self.const is None else int(self.const.size)

    def emit_ref(self, ctx: RefContext) -> str:
        name = f"batch_matmul_{ctx.sfx}"
        ctx.kernel(name)
        srcs = list(ctx.inputs)
        if self.const is not None:
            srcs.insert(self.const_index, ctx.array(ctx.ctype, "c", self.const,
                                                    12 if ctx.f32 else 24))
        fields: dict[str, object] = {"g": self.geometry()}
        if not ctx.f32:
            q = self.quant
            fields.update(lhs_offset=q.a_offset, rhs_offset=q.b_offset,
                          output_offset=q.output_offset, multiplier=q.multiplier, shift=q.shift)
        p = ctx.params(f"mcus_{name}_params_t", fields)
        return f"mcus_{name}(&{p}, {srcs[0]}, {srcs[1]}, {ctx.output});"


def _int8_quant(r: "Reader", top: "TfliteOp", lhs: int, rhs: int) -> MulQuant:
    """TFLite's int8 BATCH_MATMUL parameters (batch_matmul.cc, Prepare and EvalInt8Int8)."""
    for i in (lhs, rhs, top.outputs[0]):
        if r.type_of(i) != "int8":
            raise r.unsupported(top, f"a tensor of type {r.type_of(i)} in an int8 model")
    try:       # not quantised, per channel, a multiplier beyond TFLite's range: said in one line
        (sl, zl), (sr, zr), (so, zo) = (r.q(i) for i in (lhs, rhs, top.outputs[0]))
        m, s = quantized_convolution_multiplier(sl, sr, so)
    except StageError as e:
        raise r.unsupported(top, e.message) from e
    return MulQuant(a_offset=-zl, b_offset=-zr, output_offset=zo, multiplier=m, shift=s)


@tflite_rule("BATCH_MATMUL")
def _batch_matmul(r: "Reader", top: "TfliteOp") -> None:
    lhs, rhs = top.inputs[:2]
    out = top.outputs[0]
    adj_x = bool(getattr(top.opts, "adjX", False))
    adj_y = bool(getattr(top.opts, "adjY", False))
    consts = [r.is_const(lhs), r.is_const(rhs)]
    if all(consts):
        raise r.unsupported(top, "both operands are constant")
    dtype = r.graph.dtype
    if dtype == "float32" and any(r.type_of(i) != "float32" for i in (lhs, rhs)):
        raise r.unsupported(top, "an operand that is not float32 (a hybrid model: quantise it "
                                 "fully, or keep it float32)")
    quant = _int8_quant(r, top, lhs, rhs) if dtype == "int8" else None
    shapes = r.full_shape(lhs), r.full_shape(rhs)
    try:
        want, _ = matmul_geometry(*shapes, adj_x, adj_y)
    except ValueError as e:
        raise r.unsupported(top, str(e)) from e
    if tuple(want) != tuple(r.full_shape(out)):
        raise r.unsupported(top, f"output shape {list(r.full_shape(out))}, TFLite's would be "
                                 f"{list(want)}")
    depth = shapes[0][-2] if adj_x else shapes[0][-1]
    if dtype == "int8" and depth > MAX_DEPTH_S8:
        raise r.unsupported(top, f"a sum over {depth} products may overflow int32")
    const_index = consts.index(True) if any(consts) else -1
    const = None
    if const_index >= 0:
        const = r.const((lhs, rhs)[const_index], np.float32 if dtype == "float32" else np.int8)
    live = tuple(i for i, c in zip((lhs, rhs), consts) if not c)
    r.add(BatchMatMul(top.name, r.shape(live[0]), r.shape(out), inputs=live,
                      lhs_shape=tuple(shapes[0]), rhs_shape=tuple(shapes[1]), adj_x=adj_x,
                      adj_y=adj_y, const=const, const_index=const_index, quant=quant), top)
