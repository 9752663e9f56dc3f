"""The optimised mcusearch generator (converter ``"mcusearch"``): graph -> row plan -> C.

Same front ends, inputs and expected outputs as the reference generator (``"mcusearch-ref"``,
:mod:`mcusearch.convert.cgen`); the emitted code calls the optimised row kernels in
``firmware/kernels/fast`` instead of the reference kernels:

* int8 convolutions and dense layers: DSP (SMLAD) kernels with register blocking, bit-exact with
  the reference kernels and TFLite (see firmware/kernels/README.md);
* float32: FMA kernels with 4 x 4 register blocking;
* depth-first row schedule with line buffers between layers (:mod:`mcusearch.convert.planner`):
  a convolution's rows flow through the following convolutions and pools a few rows at a time, so
  no full-resolution feature map is materialised; Flatten/Reshape are free;
* one static arena whose offsets come from buffer lifetimes; ``arena_bytes`` is its size and the
  model's only RAM;
* graph rewrites first (:mod:`mcusearch.convert.lowering`): zero pads folded into the following
  convolution, depth multipliers as a channel repeat + multiplier-1 depthwise, a resize read by a
  concatenation folded into it; pads, channel concatenations, resizes and repeats are row
  layers (data-movement kernels, ``firmware/kernels/fast/mcus_moves.h``);
* sparse weights: a layer whose weights are mostly zero stores per-output-channel lists of its
  non-zero weights with 8-bit k distances and skips the zeros, when the cost model says that is
  cheaper (``sparse="auto"``; "never" / "always" force it);
* per-layer markers MCUS_LAYER_BEGIN(i) / MCUS_LAYER_END(i) around every kernel call (the harness's
  mcus_profile.h implements them; empty elsewhere).

Besides model.c / model.h the generator writes ``plan.json``: per layer the kernel, the variant
(dense/sparse), weight bytes, non-zeros, ring rows, and the schedule and arena layout.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mcusearch.convert import Converter, ConvertResult, register
from mcusearch.convert import layout
from mcusearch.convert.cgen import (KERNELS_DIR, layer_prefix, model_h, op_comment, prepare, ref_call,
                                    softmax_s8_fields)
from mcusearch.convert.ctext import c_array as _c_array, c_float as _c_float, comment as _comment, \
    dedupe_constants, init as _init
from mcusearch.convert.graph import (Add, AvgPool2D, Clamp, Conv2D, Dense, DepthwiseConv2D, Graph,
                                     MaxPool2D, Op, Softmax)
from mcusearch.convert.quant import tflite_depthwise_vector_channels
from mcusearch.convert.fastdata import (conv1x1_applies, conv1x1_records, conv_s8_rq, conv_s8_w16,
                                       dw3x3_s8_groups, dw_kernel, fc_kernel_applies,
                                       fc_quads_applies, fc_rq_short, folded_bias, gemm_scratch,
                                       k_order, k_padding, op_scratch)
from mcusearch.convert.lowering import RepeatChannels, lower_for_rows, pad_geometry
from mcusearch.convert.ops.elementwise import Binary, Unary, broadcast_geometry, same_shape_tb
from mcusearch.convert.ops.shape import Concat, Mean, Pad, ResizeNearest
from mcusearch.convert.planner import Plan, PlanLayer, PlanTensor, check_plan, peak, plan_min
from mcusearch.errors import StageError
from mcusearch.model import ModelResult

FAST_DIR = KERNELS_DIR / "fast"

# Cost model for the dense/sparse choice, in instructions on a Cortex-M7 (measured with
# bench/codegen.py; see firmware/kernels/README.md): per multiply-accumulate of the dense kernel and
# per (non-zero weight x output pixel) of the sparse one, plus the per-output-pixel im2col work
# per k (the sparse kernels' 4-pixel columns cost a little more to build).
COST = {
    "int8": {"dense_mac": 1.0, "sparse_entry": 2.6, "dense_col": 0.5, "sparse_col": 1.3},
    "float32": {"dense_mac": 1.25, "sparse_entry": 2.4, "dense_col": 0.5, "sparse_col": 0.5},
}
SPARSE_MODES = ("auto", "never", "always")


@dataclass
class LayerInfo:
    """What the generator decided for one computing op (written to plan.json)."""

    name: str
    kind: str
    kernel: str
    variant: str = "dense"                  # dense | sparse | -
    macs: int = 0
    weights: int = 0                        # weight count (dense)
    nonzeros: int = 0
    weight_bytes: int = 0                   # bytes of weight data as emitted (incl. sparse indices)
    dense_weight_bytes: int = 0             # what the dense layout would take
    est_dense: float = 0.0                  # cost-model instructions, dense and sparse
    est_sparse: float = 0.0
    scratch_bytes: int = 0
    extra: dict = field(default_factory=dict)


def _view(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(H, W, C) of a tensor as the kernels see it (a vector is 1 x 1 x N)."""
    if len(shape) == 3:
        return int(shape[0]), int(shape[1]), int(shape[2])
    return 1, 1, int(np.prod(shape))


def _u16(v: int, what: str) -> int:
    if not 0 <= v <= 0xFFFF:
        raise StageError("convert", f"{what} = {v} is beyond the optimised kernels' range (0..65535)")
    return v


def _u8(v: int, what: str) -> int:
    if not 0 <= v <= 0xFF:
        raise StageError("convert", f"{what} = {v} is beyond the optimised kernels' range (0..255)")
    return v


def _dense_1x1(ops: list[Op], f32: bool) -> set[int]:
    """id() of the Dense ops that run conv1x1_s8 (fastdata.conv1x1_applies: K of 4, 8 or 16, no
    clamp): ~14 instructions an output where fc_s8 takes ~26, but its records hold the weights
    with the layer's requantisation, so not where another Dense holds the same weights (an
    unrolled LSTM's steps: lstm_small's flash 85 -> 179 kB), and its code (~3 kB) not for Dense
    layers alone unless they all take it (fc_s8 then not linked): the activations model's
    4,531 -> 3,550 instructions cost 13.2 -> 17.0 kB of flash, the LSTM's last layer 45
    instructions for 3.2 kB."""
    by_weights: dict[tuple, list[Op]] = {}
    for op in ops:
        if isinstance(op, Dense):
            w = np.asarray(op.weights)
            by_weights.setdefault((w.shape, w.tobytes()), []).append(op)
    fit = {id(same[0]) for same in by_weights.values()
           if len(same) == 1 and conv1x1_applies(same[0], f32, True)}
    all_dense = sum(len(same) for same in by_weights.values())
    convs = any(isinstance(op, Conv2D) and conv1x1_applies(op, f32) for op in ops)
    return fit if convs or len(fit) == all_dense else set()


class _Emitter:
    def __init__(self, graph: Graph, sparse: str):
        if sparse not in SPARSE_MODES:
            raise StageError("convert", f"sparse={sparse!r}; one of {', '.join(SPARSE_MODES)}")
        self.g = graph
        self.f32 = graph.dtype == "float32"
        self.elem = 4 if self.f32 else 1
        self.sfx = "f32" if self.f32 else "s8"
        self.sparse = sparse
        self.ops: list[Op] = graph.compute_ops
        self.tindex = {graph.input_id: 0} | {op.output: j + 1 for j, op in enumerate(self.ops)}
        self.ref_kernels: list[str] = []
        self.data: list[str] = []
        self.infos: list[LayerInfo] = []
        self.kernel_files: list[str] = []
        self.row_ew: set[int] = set()      # outputs of the element-wise ops run a row a call
        self.dw_stage = True               # float depthwise layers may run in place (staged)
        self.dense_1x1 = _dense_1x1(self.ops, self.f32)

    # -- planning ---------------------------------------------------------------------------------

    def tensor_index(self, tid: int) -> int:
        """The planner's number of graph tensor ``tid``'s memory (0: model input, j + 1: op j's)."""
        return self.tindex[self.g.storage(tid)]

    def view_bytes(self, tid: int) -> int:
        """Where graph tensor ``tid`` starts in its memory, in bytes (a slice read in place,
        lowering.slice_views; else 0)."""
        return self.g.storage_offset(tid) * self.elem

    def input_views(self, op: Op) -> set[int]:
        """The byte offsets at which ``op`` reads the model input (0: the input itself; more:
        slices of it read in place)."""
        return {self.view_bytes(i) for i in op.inputs if self.tensor_index(i) == 0}

    def in_buf(self, plan_: Plan, tid: int, shape) -> dict:
        """:meth:`buf` of graph tensor ``tid`` read as ``shape``, at its view offset."""
        return self.buf(plan_, self.tensor_index(tid), shape, self.view_bytes(tid))

    def fast_kernel(self, op: Op) -> bool:
        """Whether ``op`` has a row kernel here (else its reference kernel runs whole). Not when it
        reads the model input at two offsets (its row kernel's NULL base means io->in, which
        :meth:`emit` moves to the one offset of a slice read in place)."""
        if len(self.input_views(op)) > 1:
            return False
        if isinstance(op, (Conv2D, Dense, MaxPool2D, AvgPool2D, Add)):
            return True
        if isinstance(op, DepthwiseConv2D):
            return op.depth_multiplier == 1
        if isinstance(op, Softmax):
            return op.rows == 1
        if isinstance(op, Mean):
            return self.streamed_pool(op)
        if isinstance(op, _MOVES):
            return self.row_move(op)
        return isinstance(op, Clamp) and self.f32

    def row_elementwise_candidates(self) -> set[int]:
        """The element-wise ops that may run a row a call (:meth:`row_form`) at a small cost: each
        one's extra calls cost (H - 1) x ROW_CALL_COST of its kernel in set-up; the cheapest
        first, as many as fit in ROW_STREAM_SHARE instructions per MAC of the model (so a
        squeeze-and-excite Mul on the 12-row map of a 43 k-MAC model stays whole, MobileNetV3's
        hard-swishes stream)."""
        costs = []
        for op in self.ops:
            if self.row_form(op) is not None:
                costs.append(((int(op.out_shape[0]) - 1) * self.row_call_cost(op), op.output))
        picked, total = set(), 0
        for cost, out in sorted(costs):
            if total + cost > ROW_STREAM_SHARE * self.g.macs:
                break
            picked.add(out)
            total += cost
        return picked

    def row_call_cost(self, op: Op) -> int:
        """ROW_CALL_COST of ``op``'s kernel, plus ROW_CALL_CHANNEL a channel when an operand is
        broadcast (mul_s8 and add_bcast_s8 prepare a per-channel table each call)."""
        if isinstance(op, Unary) or (isinstance(op, Binary) and op.scalar_table() is not None):
            return ROW_CALL_COST["lut"]
        if isinstance(op, Binary) and op.const_add() is not None:
            return ROW_CALL_COST["add_const"]
        shapes = [tuple(self.g.tensors[i].shape) for i in op.inputs]
        if op.const is not None:
            shapes.append(tuple(op.const.shape))
        broadcast = any(shape != tuple(op.out_shape) for shape in shapes)
        return (ROW_CALL_COST["mul" if op.function == "MUL" else "other"]
                + (ROW_CALL_CHANNEL * int(op.out_shape[-1]) if broadcast else 0))

    def row_elementwise(self, op: Op) -> Op | None:
        """The one-row form of an element-wise reference op (Unary, Binary) on an H x W x C map
        (H > 1) when it can run a row per call: each computed input either the output's shape
        (read row r; not a reshaped view nor a slice) or broadcast over the rows (its single row
        read whole), a constant operand broadcast over the rows too. Streamed, a chain such as
        MobileNetV3's hard-swish (x * ReLU6(x + 3) / 6) keeps line buffers, not whole maps.
        None when it cannot."""
        if op.output not in self.row_ew:
            return None
        return self.row_form(op)

    def row_form(self, op: Op) -> Op | None:
        """:meth:`row_elementwise`'s one-row op, whether or not it was chosen."""
        if not isinstance(op, (Unary, Binary)) or len(op.out_shape) != 3 or op.out_shape[0] < 2:
            return None
        out = tuple(int(d) for d in op.out_shape)
        row = (1,) + out[1:]
        shapes = []
        for i in op.inputs:
            shape = tuple(int(d) for d in self.g.tensors[i].shape)
            if self.view_bytes(i) or shape != tuple(self._tensor_shape(self.tensor_index(i))):
                return None
            if shape != out and (len(shape) > 3 or (len(shape) == 3 and shape[0] != 1)):
                return None
            shapes.append(row if shape == out else shape)
        if row not in shapes:
            return None
        if isinstance(op, Unary):
            return None if op.tail_table is not None else dataclasses.replace(
                op, in_shape=row, out_shape=row)
        in_shape = shapes[0]                    # the first computed input's
        if op.const is not None:
            if op.const.ndim > 3 or (op.const.ndim == 3 and op.const.shape[0] != 1):
                return None
            shapes.insert(op.const_index, tuple(op.const.shape))
        geometry = broadcast_geometry(shapes[0], shapes[1], row) if len(shapes) == 2 else None
        return None if geometry is None else dataclasses.replace(
            op, in_shape=in_shape, out_shape=row, geometry=geometry)

    def dw_in_place(self, op: Op) -> bool:
        """Whether depthwise ``op`` may write its output row over its input window's first row
        (planner.PlanLayer.overwrite_top; the planner decides whether it does): dwconv3x3_s8 at
        stride 1 on channels in groups of 4 (dwconv3x3_s8.c says why that is safe), or
        dwconv3x3_f32 at stride 1 (the row staged in the scratch area, then copied), and every
        reader of its output reads rows through mcus_row_ptr (the output then lives in a ring
        shifted by a slot, mcus_buf_t.lag): not a Dense, a softmax or a reference kernel, which
        read a whole tensor from its base."""
        if not (IN_PLACE_DW and isinstance(op, DepthwiseConv2D) and tuple(op.stride) == (1, 1)):
            return False
        kernel = dw_kernel(op, self.f32)
        if not ((kernel == "dwconv3x3_f32" and self.dw_stage)
                or (kernel == "dwconv3x3_s8" and int(op.out_shape[-1]) % 4 == 0)):
            return False
        return self.rows_only(self.tindex[op.output])

    def rows_only(self, t: int) -> bool:
        """Whether every reader of planner tensor ``t`` reads its rows through mcus_row_ptr, and so
        do the readers of each element-wise layer that may work in place on it (and share its
        shifted ring)."""
        for other in self.ops:
            ins = [i for i in other.inputs if self.tensor_index(i) == t]
            if not ins:
                continue
            rowwise = self.row_elementwise(other) is not None
            if any(self.view_bytes(i) or tuple(self.g.tensors[i].shape) != tuple(self._tensor_shape(t))
                   for i in ins) or not (rowwise or (self.fast_kernel(other)
                                                     and isinstance(other, _ROW_READERS))):
                return False
            if (rowwise or isinstance(other, (Add, Clamp))) and not self.rows_only(
                    self.tindex[other.output]):
                return False
        return True

    def row_move(self, op: Op) -> bool:
        """Whether a data-movement op runs as a row kernel (mcus_moves.h): on H x W x C tensors
        that are not reshaped views, a pad of the batch-free dimensions, a concatenation on
        channels, any nearest-neighbour resize, any channel repeat."""
        shapes = [tuple(self.g.tensors[i].shape) for i in op.inputs]
        if len(op.out_shape) != 3 or any(len(s) != 3 for s in shapes) or any(
                s != tuple(self._tensor_shape(self.tensor_index(i))) for s, i in zip(shapes, op.inputs)):
            return False
        if isinstance(op, Pad):
            return pad_geometry(op) is not None
        if isinstance(op, Concat):
            h, w, _ = op.out_shape
            return (op.outer == h * w and list(op.inner) == [s[2] for s in shapes]
                    and all(m is not None or s[:2] == (h, w) for s, m in zip(shapes, _resizes(op))))
        return True

    def move_needs(self, op: Op, h_in: int) -> list:
        """The input windows of a row data-movement op (see planner.PlanLayer): output row r of
        a pad reads input row r - top (none above or below the input), of a resize input row
        rows[r], of a concatenation or a channel repeat row r of every input."""
        if isinstance(op, Pad):
            top = pad_geometry(op)[0]

            def need(r, top=top, h=h_in):
                y = r - top
                return (-1, -1) if y < 0 else (h, h - 1) if y >= h else (y, y)
            return [need]
        if isinstance(op, ResizeNearest):
            return [lambda r, rows=tuple(op.rows): (rows[r], rows[r])]
        if isinstance(op, Concat):          # an input read through a resize: row rows[r]
            return [(lambda r: (r, r)) if m is None else (lambda r, rows=m[0]: (rows[r], rows[r]))
                    for m in _resizes(op)]
        return [lambda r: (r, r)] * len(op.inputs)

    def streamed_pool(self, op: Op) -> bool:
        """Whether ``op`` is a global average pool or a global MEAN computed one input row per call
        (avgpool_global_*, mean_global_s8: its input needs only a few rows, not all of them; on a
        1-D map, one row, just the faster sums), which is when it reduces its whole H x W input
        to C values, it reads no slices of the model input, and it is not the model output (its
        sums stay in its own output buffer)."""
        view = self.pool_view(op)
        if view is None or op is self.ops[-1] or int(np.prod(op.out_shape)) != view[2] \
                or len(self.input_views(op)) > 1:
            return False
        h, w, c = view
        if _view(self._tensor_shape(self.tensor_index(op.inputs[0])))[0] != h:
            return False    # a reshaped view stored in other rows (LayerNorm's N -> N x 1 x 1)
        if isinstance(op, AvgPool2D):
            return tuple(op.pool) == (h, w) and tuple(op.pad) == (0, 0)
        return isinstance(op, Mean) and (op.outer, op.reduce, op.inner) == (1, h * w, c)

    def plan_layers(self) -> tuple[list[PlanLayer], list[PlanTensor]]:
        ops = self.ops
        shapes = [self.g.input_shape] + [op.out_shape for op in ops]
        tensors = [PlanTensor(rows=_view(s)[0], row_bytes=_view(s)[1] * _view(s)[2] * self.elem)
                   for s in shapes]
        streamed = {j + 1: self.pool_view(op)[0] for j, op in enumerate(ops) if self.streamed_pool(op)}
        for t, h in streamed.items():     # H calls, one virtual row each; 4-byte sums a channel
            tensors[t] = PlanTensor(rows=h, row_bytes=4 * int(shapes[t][-1]))
        layers = []
        for j, op in enumerate(ops):
            ins = [self.tensor_index(i) for i in op.inputs]
            same_view = all(tuple(shapes[t]) == tuple(op.in_shape) for t in ins)
            h_in = tensors[ins[0]].rows
            whole = [lambda r, h=tensors[t].rows: (0, h - 1) for t in ins]
            if j + 1 in streamed:
                layers.append(PlanLayer(op.name, h_in, [lambda r: (r, r)], ins))
                continue
            if self.row_elementwise(op) is not None:    # row r of the output's-shape inputs
                rowwise = [tuple(self.g.tensors[i].shape) == tuple(op.out_shape) for i in op.inputs]
                layers.append(PlanLayer(op.name, int(op.out_shape[0]),
                                        [(lambda r: (r, r)) if rw else need
                                         for rw, need in zip(rowwise, whole)], ins, elementwise=True))
                continue
            if not self.fast_kernel(op):
                layers.append(PlanLayer(op.name, 1, whole, ins, whole=True,
                                        elementwise=isinstance(op, _IN_PLACE)))
            elif isinstance(op, _MOVES):
                layers.append(PlanLayer(op.name, int(op.out_shape[0]), self.move_needs(op, h_in), ins))
            elif isinstance(op, _WINDOWED) and same_view:
                kh = op.kernel[0] if isinstance(op, (Conv2D, DepthwiseConv2D)) else op.pool[0]
                sh, pt = op.stride[0], op.pad[0]

                def need(r, kh=kh, sh=sh, pt=pt, h=h_in):
                    lo = r * sh - pt
                    return max(lo, 0), min(lo + kh - 1, h - 1)
                layers.append(PlanLayer(op.name, int(op.out_shape[0]), [need], ins,
                                        overwrite_top=pt if self.dw_in_place(op) else None))
            elif isinstance(op, Add) and not same_view and _view(op.out_shape)[0] == 1:
                # a (T, C) sum of maps stored as T x 1 columns (a residual Conv1D in the
                # columns layout): one call over the whole maps, the same bytes
                layers.append(PlanLayer(op.name, 1, whole, ins, whole=True, elementwise=True))
            elif isinstance(op, Add):
                # row r from row r of both inputs
                if not same_view:
                    raise StageError("convert", f"{op.name} (Add): inputs of different layouts")
                layers.append(PlanLayer(op.name, _view(op.out_shape)[0], [lambda r: (r, r)] * 2,
                                        ins, elementwise=True))
            elif isinstance(op, Clamp) and same_view and len(op.in_shape) == 3:
                layers.append(PlanLayer(op.name, int(op.out_shape[0]), [lambda r: (r, r)], ins,
                                        elementwise=True))
            else:
                out_rows = _view(op.out_shape)[0] if isinstance(op, _WINDOWED) else 1
                layers.append(PlanLayer(op.name, out_rows, whole[:1], ins,
                                        elementwise=isinstance(op, Clamp) and h_in == 1))
        for lay in layers:                # a streamed pool's result exists after its last call
            lay.needs = [(lambda r, h=streamed[t]: (h - 1, h - 1)) if t in streamed else need
                         for need, t in zip(lay.needs, lay.inputs)]
        return layers, tensors

    # -- per-op emission --------------------------------------------------------------------------

    def choose(self, op, info: LayerInfo) -> bool:
        """Dense or sparse weights for a Conv2D/Dense (True: sparse)."""
        w = np.asarray(op.weights)
        nz = int(np.count_nonzero(w))
        info.nonzeros, info.weights = nz, int(w.size)
        oc = int(w.shape[0])
        K = int(w.size // oc)
        pixels = int(op.out_len // oc)
        c = COST[self.g.dtype]
        info.est_dense = pixels * (oc * K * c["dense_mac"] + K * c["dense_col"])
        entries = layout.sparse_encode(w).entries if nz < w.size else int(w.size)
        info.est_sparse = pixels * (entries * c["sparse_entry"] + K * c["sparse_col"])
        if self.sparse == "always":
            return True
        if self.sparse == "never":
            return False
        return info.est_sparse < info.est_dense

    def buf(self, plan_: Plan, t: int, shape, view: int = 0) -> dict:
        """The mcus_buf_t fields of planner tensor ``t`` read as ``shape`` from byte ``view`` on
        (a slice read in place; in the model input the caller moves io->in, see :meth:`emit`)."""
        h, w, c = _view(shape)
        off = plan_.offsets[t]
        rows = plan_.ring_rows[t]
        lag = plan_.slot(t, 0)               # row y in slot (y + lag) % rows
        if tuple(shape) != tuple(self._tensor_shape(t)):
            if lag:
                raise StageError("convert", f"tensor {t}: a shifted ring read as {shape}")
            rows = h                         # a reshaped view of a fully materialised tensor
        base = "0" if off is None else f"&mcus_arena.b[{off + view}]"
        fields = {"base": base, "h": _u16(h, "height"), "w": _u16(w, "width"),
                  "c": _u16(c, "channels"), "rows": _u16(rows, "rows")}
        if lag:
            fields["lag"] = _u16(lag, "lag")
        return fields

    def pool_view(self, op: Op) -> tuple[int, int, int] | None:
        """(H, W, C) of a pooling op's input: an H x W x C map, or a MEAN's (T, C) sequence
        (GlobalAveragePooling1D) as the map it is stored as (1 x T, or T x 1 in columns); None
        for any other shape."""
        shape = tuple(int(d) for d in op.in_shape)
        if len(shape) == 3:
            return shape
        if len(shape) != 2 or not isinstance(op, Mean):
            return None
        stored = tuple(int(d) for d in self._tensor_shape(self.tensor_index(op.inputs[0])))
        if len(stored) == 3 and stored[0] * stored[1] == shape[0] and stored[2] == shape[1]:
            return stored
        return None

    def _tensor_shape(self, t: int):
        return self.g.input_shape if t == 0 else self.ops[t - 1].out_shape

    def dilated_taps(self, op) -> Conv2D | None:
        """A dilated Conv2D as the dense kernels run it: the weights of its real taps only (the
        dense kernel's zeros dropped; the im2col reads the taps d apart: dh1, dw1 of
        mcus_fast_conv_f32_t, for the entry mcus_fast_conv2d_dilated_f32, or of
        mcus_fast_conv_s8_t), no dilation left. float32 any layer, int8 one whose input channels
        are a multiple of 4 (conv2d_s8's dilated im2col); None for any other op (a dilated layer
        then runs its dense kernel, zeros included)."""
        if (not isinstance(op, Conv2D) or tuple(op.dilation) == (1, 1)
                or (not self.f32 and int(op.in_shape[-1]) % 4)):
            return None
        dh, dw = op.dilation
        return dataclasses.replace(op, weights=np.ascontiguousarray(op.weights[:, ::dh, ::dw, :]),
                                   dilation=(1, 1))

    def win(self, op) -> dict:
        dil = self.dilated_taps(op)
        if isinstance(op, (Conv2D, DepthwiseConv2D)):
            kh, kw = (dil or op).kernel
        elif isinstance(op, (MaxPool2D, AvgPool2D)):
            kh, kw = op.pool
        else:
            kh = kw = 1
        sh, sw = getattr(op, "stride", (1, 1))
        pt, pl = getattr(op, "pad", (0, 0))
        return {"kh": _u8(kh, "kernel height"), "kw": _u8(kw, "kernel width"),
                "sh": _u8(sh, "stride"), "sw": _u8(sw, "stride"), "pt": _u8(pt, "padding"),
                "pl": _u8(pl, "padding")}

    def bias_requant(self, op, pfx: str, channels: int, fields: dict, act: dict) -> None:
        """A convolution's bias (left out when all zero: it adds nothing), its clamp, and for int8
        the per-channel multipliers/shifts and zero points: arrays into self.data, fields set."""
        bias = op.bias
        if bias is not None and np.any(bias):
            self.data.append(_c_array("float" if self.f32 else "int32_t", f"{pfx}_b", bias, 8))
            fields["bias"] = f"{pfx}_b"
        else:
            fields["bias"] = "0"
        if self.f32:
            fields.update(act)
            return
        rq = op.requant
        self.data.append(_c_array("int32_t", f"{pfx}_m", np.broadcast_to(rq.multiplier, (channels,)), 8))
        self.data.append(_c_array("int8_t", f"{pfx}_s", np.broadcast_to(rq.shift, (channels,)), 24))
        fields.update(input_offset=str(-rq.input_zero_point), output_offset=str(rq.output_zero_point),
                      **act, mult=f"{pfx}_m", shift=f"{pfx}_s")

    def emit_fallback(self, j: int, op, plan_: Plan) -> tuple[str, str, LayerInfo]:
        """An op without a row kernel: its reference kernel on whole tensors, in a wrapper with
        the row-kernel signature (the planner gives it fully materialised inputs and output)."""
        ctype = "float" if self.f32 else "int8_t"
        n = len(self.ops)

        def ptr(t: int, view: int = 0) -> str:
            if t == 0:
                return f"(const {ctype} *)io->in" + (f" + {view // self.elem}" if view else "")
            if t == n:
                return f"({ctype} *)io->out"
            return f"({ctype} *)&mcus_arena.b[{plan_.offsets[t] + view}]"
        pfx = layer_prefix(j, op)
        self.data.append(op_comment(j, op))
        kernels: list[str] = []
        srcs = [ptr(self.tensor_index(i), self.view_bytes(i)) for i in op.inputs]
        call = ref_call(self.g, op, pfx, srcs, ptr(j + 1), self.data, kernels)
        self.ref_kernels.extend(k for k in kernels if k not in self.ref_kernels)
        self.data.append(f"static void {pfx}_run(const void *params, const mcus_io_t *io, "
                         f"int32_t row)\n{{\n    (void)params;\n    (void)io;\n    (void)row;\n    {call}\n}}\n")
        info = LayerInfo(name=op.name, kind=op.kind, kernel=f"{kernels[0] if kernels else '?'} (reference)",
                         variant="fallback", macs=int(op.macs))
        w = getattr(op, "weights", None)
        if w is not None:
            info.weights = info.nonzeros = int(np.asarray(w).size)
            info.weight_bytes = info.dense_weight_bytes = int(np.asarray(w).size) * self.elem
        return f"{pfx}_run", "0", info

    def emit_row_elementwise(self, j: int, op, plan_: Plan) -> tuple[str, str, LayerInfo]:
        """An element-wise op's reference kernel on one row per call (:meth:`row_elementwise`):
        the row's pointers from the ring buffers (mcus_row_ptr), a broadcast input whole."""
        row_op = self.row_elementwise(op)
        ctype = "float" if self.f32 else "int8_t"
        n = len(self.ops)
        pfx = layer_prefix(j, op)
        self.data.append(op_comment(j, op))

        def base(t: int) -> str:
            return ("(void *)io->in" if t == 0 else "io->out" if t == n
                    else f"(void *)&mcus_arena.b[{plan_.offsets[t]}]")

        def row_ptr(t: int, name: str, shape) -> str:
            self.data.append(f"static const mcus_buf_t {name} = {_init(self.buf(plan_, t, shape))};\n")
            return f"mcus_row_ptr(&{name}, {base(t)}, row, {self.elem})"
        srcs = []
        for k, i in enumerate(op.inputs):
            t = self.tensor_index(i)
            if tuple(self.g.tensors[i].shape) == tuple(op.out_shape):
                srcs.append(f"(const {ctype} *){row_ptr(t, f'{pfx}_i{k}', op.out_shape)}")
            else:
                srcs.append(f"(const {ctype} *){base(t)}")
        dst = f"({ctype} *){row_ptr(j + 1, f'{pfx}_o', op.out_shape)}"
        kernels: list[str] = []
        call = ref_call(self.g, row_op, pfx, srcs, dst, self.data, kernels)
        self.ref_kernels.extend(k for k in kernels if k not in self.ref_kernels)
        self.data.append(f"static void {pfx}_run(const void *params, const mcus_io_t *io, "
                         f"int32_t row)\n{{\n    (void)params;\n    (void)io;\n    {call}\n}}\n")
        info = LayerInfo(name=op.name, kind=op.kind, kernel=f"{kernels[0] if kernels else '?'} "
                         "(reference, a row a call)", macs=int(op.macs))
        return f"{pfx}_run", "0", info

    def emit_move(self, j: int, op, plan_: Plan) -> tuple[str, str, LayerInfo]:
        """A data-movement op's row kernel (mcus_moves.h): its parameters into self.data."""
        pfx = layer_prefix(j, op)
        self.data.append(op_comment(j, op))
        ins = [self.in_buf(plan_, i, self.g.tensors[i].shape) for i in op.inputs]
        fields: dict[str, object] = {"out": self.buf(plan_, j + 1, op.out_shape)}
        if not isinstance(op, Concat):
            fields = {"in": ins[0], **fields}
        fields["elem"] = self.elem
        kernel = next(name for cls, name in ((Pad, "pad"), (Concat, "concat"),
                                             (ResizeNearest, "resize_nearest"),
                                             (RepeatChannels, "repeat_channels"))
                      if isinstance(op, cls))
        if isinstance(op, Pad):
            top, left, front = pad_geometry(op)
            bits = (int(np.float32(op.value).view(np.uint32)) if self.f32
                    else (int(op.value) & 0xFF) * 0x01010101)
            fields.update(top=top, left=left, front=front, value=f"0x{bits:08x}u")
        elif isinstance(op, Concat):
            items = []
            for k, (b, m) in enumerate(zip(ins, _resizes(op))):
                item = {"buf": b, "rows": "0", "cols": "0"}
                if m is not None:
                    for name, table in zip(("rows", "cols"), m):
                        self.data.append(_c_array("uint16_t", f"{pfx}_{name}{k}", np.asarray(table), 16))
                        item[name] = f"{pfx}_{name}{k}"
                items.append(_init(item, "    "))
            self.data.append(f"static const mcus_concat_in_t {pfx}_in[{len(ins)}] = {{\n    "
                             + ",\n    ".join(items) + "\n};\n")
            fields.update(**{"in": f"{pfx}_in", "n": len(ins)})
        elif isinstance(op, ResizeNearest):
            self.data.append(_c_array("uint16_t", f"{pfx}_rows", np.asarray(op.rows), 16))
            self.data.append(_c_array("uint16_t", f"{pfx}_cols", np.asarray(op.cols), 16))
            fields.update(rows=f"{pfx}_rows", cols=f"{pfx}_cols")
        else:
            fields["repeats"] = op.repeats
        self.data.append(f"static const mcus_fast_{kernel}_t {pfx}_p = {_init(fields)};\n")
        if kernel not in self.kernel_files:
            self.kernel_files.append(kernel)
        return f"mcus_fast_{kernel}", f"{pfx}_p", LayerInfo(name=op.name, kind=op.kind,
                                                            kernel=kernel, variant="-")

    def emit_op(self, j: int, op, plan_: Plan) -> tuple[str, str, LayerInfo]:
        """-> (kernel function, params symbol, info); appends data to self.data."""
        if self.row_elementwise(op) is not None:
            return self.emit_row_elementwise(j, op, plan_)
        if not self.fast_kernel(op):
            return self.emit_fallback(j, op, plan_)
        if isinstance(op, _MOVES):
            return self.emit_move(j, op, plan_)
        f32 = self.f32
        pfx = layer_prefix(j, op)
        info = LayerInfo(name=op.name, kind=op.kind, kernel="", macs=int(op.macs),
                         scratch_bytes=self.scratch_bytes(op))
        fields: dict[str, object] = {"in": self.in_buf(plan_, op.inputs[0], op.in_shape),
                                     "out": self.buf(plan_, j + 1, op.out_shape)}
        self.data.append(op_comment(j, op))
        amin, amax = getattr(op, "act", (0, 0))
        act = ({"act_min": _c_float(float(amin)), "act_max": _c_float(float(amax))} if f32 else
               {"act_min": str(int(amin)), "act_max": str(int(amax))})

        if isinstance(op, (Conv2D, Dense)):
            fields["g"] = self.win(op)
            if isinstance(op, Dense):
                fields["in"] = self.in_buf(plan_, op.inputs[0], (1, 1, int(op.weights.shape[1])))
            dil = self.dilated_taps(op)
            if dil is not None:                 # the im2col reads the taps d apart
                fields.update(dh1=_u8(op.dilation[0] - 1, "dilation"),
                              dw1=_u8(op.dilation[1] - 1, "dilation"))
                if not f32:                     # conv2d_s8's dilated functions (linked only so)
                    fields["dil"] = "&mcus_conv2d_s8_dilated"
                info.extra["dilation"] = tuple(int(d) for d in op.dilation)
            w = np.asarray((dil or op).weights)
            oc = int(w.shape[0])
            sparse = self.choose(dil or op, info) and dil is None
            info.dense_weight_bytes = int(w.size) * self.elem
            d1 = id(op) in self.dense_1x1
            fc = not sparse and fc_kernel_applies(op, f32, d1)
            pw = not sparse and not fc and conv1x1_applies(op, f32, d1)
            kind = "conv2d_sparse" if sparse else "fc" if fc else "conv1x1" if pw else "conv2d"
            info.kernel = f"{kind}_{self.sfx}"
            info.variant = "sparse" if sparse else "dense"
            if sparse:
                sp = layout.sparse_encode(w)
                info.extra["entries"] = sp.entries
                counts = sp.counts
                self.data.append(_c_array("uint16_t", f"{pfx}_n", counts, 16))
                empty = sp.entries == 0              # every weight zero: no list at all
                if f32:
                    if not empty:
                        self.data.append(_aligned(_c_array("float", f"{pfx}_v",
                                                           sp.values.astype(np.float32), 8)))
                        self.data.append(_c_array("uint8_t", f"{pfx}_d", sp.deltas, 24))
                    fields.update(values="0" if empty else f"{pfx}_v",
                                  deltas="0" if empty else f"{pfx}_d", counts=f"{pfx}_n")
                    info.weight_bytes = sp.entries * 5 + 2 * oc
                else:
                    if not empty:
                        self.data.append(_aligned(_c_array("uint8_t", f"{pfx}_e",
                                                           layout.s8_sparse_entries(sp), 24)))
                    fields.update(entries="0" if empty else f"{pfx}_e", counts=f"{pfx}_n")
                    info.weight_bytes = sp.entries * 2 + 2 * oc
            elif pw:
                # per channel: the weights as int16 pairs and the folded requantisation constants
                recs = conv1x1_records(op)
                self.data.append(_aligned(_c_array("int32_t", f"{pfx}_r", recs, 6)))
                fields.update(recs=f"{pfx}_r", **act)
                info.weight_bytes = int(recs.size) * 4
            elif fc:
                # the input offset folded into the bias (fc_s8.c), int32 wrap-around as the kernels
                paired = layout.s8_fc_paired_ok(w)
                fcw = layout.s8_fc_weights_paired(w) if paired else layout.s8_fc_weights(w)
                self.data.append(_aligned(_c_array("int8_t", f"{pfx}_w", fcw, 24)))
                fields["weights"] = f"{pfx}_w"
                info.weight_bytes = int(w.size)
            else:
                if f32:
                    self.data.append(_aligned(_c_array("float", f"{pfx}_w", layout.f32_weights(w), 8)))
                else:
                    kpad = k_padding(op)              # zero weights: K a multiple of 4 (GEMM path)
                    w = w.reshape(oc, -1)
                    order = k_order(op)
                    if order is not None:         # kernel rows of whole words first
                        w = w[:, order]
                    w = np.pad(w, ((0, 0), (0, kpad)))
                    self.data.append(_aligned(_c_array("int8_t", f"{pfx}_w", layout.s8_weights(w), 24)))
                    if kpad:
                        fields["kpad"] = str(kpad)
                        info.extra["kpad"] = kpad
                    rqt = conv_s8_rq(dil or op, kpad, act)
                    if rqt is not None:
                        self.data.append(_aligned(_c_array("int32_t", f"{pfx}_q", rqt, 5)))
                        fields["rq"] = f"(const struct mcus_rq *)(const void *){pfx}_q"
                        info.extra["rq_table"] = True
                    w16 = conv_s8_w16(op, w, rqt) if dil is None else None
                    if w16 is not None:           # rows of one pixel: int16 weights
                        self.data.append(_aligned(_c_array("int32_t", f"{pfx}_w16", w16, 8)))
                        fields["w16"] = f"{pfx}_w16"
                        info.extra["w16"] = True
                fields["weights"] = f"{pfx}_w"
                info.weight_bytes = int(w.size) * self.elem
            rq_short = fc and fc_rq_short(op)
            quads = fc and fc_quads_applies(op, rq_short)
            if fc:
                op = folded_bias(op)
            if not pw:
                self.bias_requant(op, pfx, oc, fields, act)
            if quads and fields["bias"] == "0":     # fc_s8_quads loads four biases a quad
                self.data.append(_c_array("int32_t", f"{pfx}_b", np.zeros(oc, np.int32), 8))
                fields["bias"] = f"{pfx}_b"
            if fc:
                info.extra.update(rq_short=rq_short, paired=paired, quads=quads)
                fields = {"c": fields, "rq_short": str(int(rq_short)), "paired": str(int(paired))}
            ptype = {("conv2d", False): "mcus_fast_conv_s8_t", ("conv2d", True): "mcus_fast_conv_f32_t",
                     ("conv1x1", False): "mcus_fast_conv1x1_s8_t", ("fc", False): "mcus_fast_fc_s8_t",
                     ("conv2d_sparse", False): "mcus_fast_conv_sparse_s8_t",
                     ("conv2d_sparse", True): "mcus_fast_conv_sparse_f32_t"}[(kind, f32)]
        elif isinstance(op, DepthwiseConv2D):
            # a row kernel on TFLite's [kh][kw][c] weights, channels innermost
            fields["g"] = self.win(op)
            w = np.asarray(op.weights)
            info.kernel, info.variant = dw_kernel(op, f32), "dense"
            info.weights = int(w.size)
            info.nonzeros = int(np.count_nonzero(w))
            info.weight_bytes = info.dense_weight_bytes = int(w.size) * self.elem
            in_place = plan_.buffer_of[j + 1] == plan_.buffer_of[self.tensor_index(op.inputs[0])]
            if info.kernel == "dwconv3x3_f32":
                w = layout.f32_dw3x3_weights(w)
                info.weight_bytes = int(w.size) * self.elem      # overlapping last group: + 36
                fields["in_place"] = int(in_place)
                info.extra["in_place"] = in_place
            self.data.append(_aligned(_c_array("float" if f32 else "int8_t", f"{pfx}_w", w,
                                               8 if f32 else 24)))
            fields["weights"] = f"{pfx}_w"
            ch = int(op.out_shape[-1])
            self.bias_requant(op, pfx, ch, fields, act)
            if not f32:
                fields["vector_channels"] = str(tflite_depthwise_vector_channels(ch))
            ptype = f"mcus_fast_dwconv_{self.sfx}_t"
            if info.kernel == "dwconv3x3_s8":
                groups = dw3x3_s8_groups(op)
                self.data.append(_aligned(_c_array("int32_t", f"{pfx}_g", groups, 6)))
                info.weight_bytes += int(groups.size) * 4        # + the raw weights (portable path)
                fields = {"d": fields, "groups": f"{pfx}_g", "in_place": int(in_place)}
                info.extra["in_place"] = in_place
                ptype = "mcus_fast_dw3x3_s8_t"
        elif isinstance(op, AvgPool2D):
            fields["g"] = self.win(op)
            fields.update(act)
            streamed = self.streamed_pool(op)
            info.kernel = f"avgpool_global_{self.sfx}" if streamed else f"avgpool2d_{self.sfx}"
            info.variant = "-"
            ptype = f"mcus_fast_avgpool_{self.sfx}_t"
        elif isinstance(op, Mean):          # global (fast_kernel): sums, then MEAN's rescaling
            fields["in"] = self.in_buf(plan_, op.inputs[0], self.pool_view(op))  # (T, C): stored
            info.variant = "-"
            if f32:                         # the sum in row order over the count, as mean_f32
                fields.update(act_min="-FLT_MAX", act_max="FLT_MAX")
                info.kernel, ptype = "avgpool_global_f32", "mcus_fast_avgpool_f32_t"
            else:
                fields.update(input_bias=op.input_offset * op.reduce,
                              output_offset=op.output_offset, multiplier=op.multiplier,
                              shift=op.shift, vector_channels=op.vector_channels)
                info.kernel, ptype = "mean_global_s8", "mcus_fast_mean_s8_t"
        elif isinstance(op, MaxPool2D):
            fields["g"] = self.win(op)
            fields.update(act)
            info.kernel = f"maxpool2d_{self.sfx}"
            info.variant = "-"
            ptype = f"mcus_fast_maxpool_{self.sfx}_t"
        elif isinstance(op, Add):
            fields = {"in": fields["in"],
                      "skip": self.in_buf(plan_, op.inputs[1], op.in_shape),
                      "out": fields["out"]}
            info.kernel, info.variant = f"add_{self.sfx}", "-"
            if f32:
                fields.update(act)
            else:
                fields["q"] = dict(len=op.out_len, **op.quant.c_fields(), **act)
                tb = same_shape_tb(op.quant, op.out_len)
                if tb is not None:
                    self.data.append(_c_array("int32_t", f"{pfx}_tb", tb, 8))
                fields["tb"] = "0" if tb is None else f"{pfx}_tb"
            ptype = f"mcus_fast_add_{self.sfx}_t"
        elif isinstance(op, Softmax):
            info.kernel, info.variant = f"softmax_{self.sfx}", "-"
            if not f32:
                self.data.append(_c_array("float", f"{pfx}_t", op.table, 6))
                fields["q"] = dict(len=op.out_len, **softmax_s8_fields(op, f"{pfx}_t"))
            ptype = f"mcus_fast_softmax_{self.sfx}_t"
        elif isinstance(op, Clamp) and f32:
            fields.update(act)
            info.kernel, info.variant = "clamp_f32", "-"
            ptype = "mcus_fast_clamp_f32_t"
        else:
            raise StageError("convert", f"{op.name} ({op.kind}) has no {self.g.dtype} kernel")
        self.data.append(f"static const {ptype} {pfx}_p = {_init(fields)};\n")
        needs = [info.kernel] + (["dwconv2d_s8"] if info.kernel == "dwconv3x3_s8" else [])
        self.kernel_files += [k for k in needs if k not in self.kernel_files]   # + its fallback
        entry = ("fc_s8_quads" if info.extra.get("quads") else   # fc_s8.c's, conv2d_s8.c's and
                 "conv2d_s8_w16" if info.extra.get("w16") else    # conv2d_f32.c's other entries
                 "conv2d_dilated_f32" if info.kernel == "conv2d_f32" and "dilation" in info.extra
                 else info.kernel)
        return f"mcus_fast_{entry}", f"{pfx}_p", info

    def emit_input_view(self, j: int, op: Op, fn: str, view: int) -> str:
        """A wrapper of row kernel ``fn`` that moves io->in ``view`` bytes on: the layer reads a
        slice of the model input in place (its buffer's NULL base is io->in). -> its name."""
        pfx = layer_prefix(j, op)
        self.data.append(f"static void {pfx}_view(const void *params, const mcus_io_t *io, int32_t row)\n"
                         f"{{\n    mcus_io_t v = *io;\n    v.in = (const uint8_t *)io->in + {view};\n"
                         f"    {fn}(params, &v, row);\n}}\n")
        return f"{pfx}_view"

    # -- the whole model --------------------------------------------------------------------------

    def plan_memory(self) -> tuple[list[PlanLayer], list[PlanTensor], Plan]:
        """The row schedule and the arena (planner.plan_min), with the element-wise ops of
        :meth:`row_elementwise_candidates` run a row a call where that gives the smaller arena
        (else whole, as without them), and float depthwise layers in place where that gives the
        smaller arena for copies within ROW_STREAM_SHARE instructions per MAC (:meth:`stage_cost`;
        else none of them)."""
        self.dw_stage = True
        layers, tensors, p = self._plan_ew()
        cost = self.stage_cost(layers, p) if self.f32 else 0
        if cost:
            streamed = self.row_ew
            self.dw_stage = False
            alt = self._plan_ew()
            if cost <= ROW_STREAM_SHARE * self.g.macs and p.arena_bytes < alt[2].arena_bytes:
                self.dw_stage, self.row_ew = True, streamed
                p.notes.append(f"float depthwise rows staged and copied in place: arena "
                               f"{alt[2].arena_bytes:,} -> {p.arena_bytes:,} bytes for about "
                               f"{cost:,} instructions")
            else:
                layers, tensors, p = alt
        dw = _windows_in_place(layers, p)
        if dw:
            p.notes.append(f"{len(dw)} depthwise layers in place (each output row over its input "
                           "window's first row)")
        return layers, tensors, p

    def stage_cost(self, layers: list[PlanLayer], p: Plan) -> int:
        """The instructions the float depthwise layers planned in place spend copying their
        staged rows: STAGE_COST per value and per row."""
        per_value, per_row = STAGE_COST
        ops = [self.ops[j] for j in _windows_in_place(layers, p)]
        return round(sum(per_value * int(np.prod(op.out_shape)) + per_row * int(op.out_shape[0])
                         for op in ops))

    def _plan_ew(self) -> tuple[list[PlanLayer], list[PlanTensor], Plan]:
        """_plan with the element-wise ops run a row a call or whole, whichever arena is smaller."""
        self.row_ew = self.row_elementwise_candidates()
        layers, tensors, p = self._plan()
        if self.row_ew:
            streamed, self.row_ew = self.row_ew, set()
            whole = self._plan()
            if p.arena_bytes < whole[2].arena_bytes:
                self.row_ew = streamed
                p.notes.insert(0, f"{len(streamed)} element-wise layers a row a call: arena "
                                  f"{whole[2].arena_bytes:,} -> {p.arena_bytes:,} bytes")
            else:
                layers, tensors, p = whole
        return layers, tensors, p

    def _plan(self) -> tuple[list[PlanLayer], list[PlanTensor], Plan]:
        layers, tensors = self.plan_layers()
        scratch = 0
        for lay, op in zip(layers, self.ops):
            need = self.scratch_bytes(op)
            lay.scratch = need > 0
            scratch = max(scratch, need)
        pools = [self.tensor_index(op.inputs[0]) for op in self.ops if self.streamed_pool(op)]
        seeds = (frozenset(t for t in pools if 0 < t and tensors[t].rows > 1),)
        layers, p = plan_min(layers, tensors, scratch, seeds=seeds if seeds[0] else ())
        return layers, tensors, p

    def scratch_bytes(self, op: Op) -> int:
        """The scratch bytes ``op``'s kernel uses (0: none; a reference kernel uses none)."""
        if not self.fast_kernel(op):
            return 0
        if isinstance(op, (Conv2D, Dense)):
            dil = self.dilated_taps(op)
            sparse = self.choose(dil or op, LayerInfo(name=op.name, kind=op.kind, kernel="")) \
                and dil is None
            d1 = id(op) in self.dense_1x1
            return 0 if not sparse and (fc_kernel_applies(op, self.f32, d1) or
                                        conv1x1_applies(op, self.f32, d1)) else \
                gemm_scratch(dil or op, sparse, self.f32)
        if isinstance(op, MaxPool2D) and op.pool[0] > 8:
            return 4 * op.pool[0]
        if isinstance(op, DepthwiseConv2D) or (isinstance(op, AvgPool2D) and not self.f32
                                               and not self.streamed_pool(op)):
            return op_scratch(op, self.f32, self.dw_in_place(op))
        return 0

    def emit(self, out_dir: Path, origin: str) -> tuple[Plan, list[LayerInfo]]:
        layers, tensors, p = self.plan_memory()
        check_plan(layers, tensors, p)

        fns, params = [], []
        for j, op in enumerate(self.ops):
            fn, par, info = self.emit_op(j, op, p)
            view = max(self.input_views(op), default=0)
            if view and self.fast_kernel(op):       # a slice of the model input read in place
                fn = self.emit_input_view(j, op, fn, view)
            info.extra["ring_rows"] = p.ring_rows[j + 1]
            info.extra["calls"] = p.schedule.count(j)
            fns.append(fn)
            params.append(par)
            self.infos.append(info)
        n = len(self.ops)
        if n > 65535:
            raise StageError("convert", f"{n} layers: the optimised generator handles up to 65,535")
        table = ",\n    ".join(f"{{ {f}, {'0' if q == '0' else '&' + q} }}" for f, q in zip(fns, params))
        sched = (_c_array("uint8_t", "mcus_schedule", np.array(p.schedule, np.uint8), 32) if n <= 255
                 else _c_array("uint16_t", "mcus_schedule", np.array(p.schedule, np.uint16), 24))
        arena = (f"static union {{\n    uint64_t align_;\n    uint8_t b[{p.arena_bytes}];\n}} mcus_arena;\n"
                 if p.arena_bytes else "")
        scratch_ptr = f"&mcus_arena.b[{p.scratch_offset}]" if p.scratch_bytes else "0"
        text = (
            f"/* Generated by mcusearch (converter \"mcusearch\", optimised kernels), {self.g.dtype}, "
            f"from {_comment(origin)}.\n"
            f" * {n} layers, {len(p.schedule)} row steps, {self.g.macs} MACs, {self.g.params} parameters, "
            f"activation arena {p.arena_bytes} bytes. Do not edit. */\n"
            "#include <float.h>\n#include <stdint.h>\n\n#include \"mcus_fast.h\"\n#include \"mcus_moves.h\"\n#include \"model.h\"\n\n"
            + _PROFILE_HOOKS
            + (f"/* activations: line buffers and tensors at planned offsets, and the scratch area */\n"
               f"{arena}" if arena else "")
            + "".join(self.data)
            + f"\nstatic const mcus_layer_t mcus_layers[{n}] = {{\n    {table}\n}};\n\n"
            + "/* the row schedule: layer index per step */\n" + sched + "\n"
            + "void mcus_model_run(const mcus_input_t *input, mcus_output_t *output)\n{\n"
            + f"    uint16_t row[{n}];\n"
            + "    mcus_io_t io;\n    uint32_t i;\n"
            + f"    for (i = 0; i < {n}u; ++i) {{\n        row[i] = 0;\n    }}\n"
            + "    io.in = input;\n    io.out = output;\n"
            + f"    io.scratch = {scratch_ptr};\n"
            + f"    for (i = 0; i < {len(p.schedule)}u; ++i) {{\n"
            + "        const uint32_t j = mcus_schedule[i];\n"
            + "        MCUS_LAYER_BEGIN(j);\n"
            + "        mcus_layers[j].fn(mcus_layers[j].params, &io, (int32_t)row[j]++);\n"
            + "        MCUS_LAYER_END(j);\n"
            + "    }\n}\n"
        )
        (out_dir / "model.c").write_text(dedupe_constants(text))
        return p, self.infos


_PROFILE_HOOKS = (
    "/* Per-layer markers: the firmware harness's mcus_profile.h defines them (empty elsewhere). */\n"
    "#if defined(__has_include)\n#if __has_include(\"mcus_profile.h\")\n#include \"mcus_profile.h\"\n"
    "#endif\n#endif\n"
    "#ifndef MCUS_LAYER_BEGIN\n#define MCUS_LAYER_BEGIN(i)\n#endif\n"
    "#ifndef MCUS_LAYER_END\n#define MCUS_LAYER_END(i)\n#endif\n\n"
)


# Ops computed by windowed row kernels (output row r needs input rows r*sh - pt .. + kh - 1).
_WINDOWED = (Conv2D, DepthwiseConv2D, MaxPool2D, AvgPool2D)
# Data-movement ops with row kernels where their shapes allow (_Emitter.row_move; mcus_moves.h).
_MOVES = (Pad, Concat, ResizeNearest, RepeatChannels)
# Reference kernels that compute output element i from element i of an input of the output's size
# (and any element of a broadcast operand) after reading it: the planner may give their output
# that input's buffer.
_IN_PLACE = (Unary, Binary, Clamp)
# The set-up one more call of a reference element-wise kernel costs, in instructions: the fixed
# part of its per-layer counts on qemu-m7 at -O3 (lstm_small int8: a 16-element LUT 116 = 68 +
# 3 an element, a 16-element Mul 330 = 186 + 9 an element, a 64-element Add of a constant
# 1,266 = 306 + 15 an element), and per channel of a broadcast operand's table (mobilenet_v3_block
# int8, 24 channels: its squeeze-and-excite Mul a row a call, 23 more calls, +11,301
# instructions: 491 a call = 186 + 12.7 a channel). An int8 ADD / SUB of a constant of 2 or more
# values (add_const_s8, its tables from the generator) 688 = 48 + 10 an element (lstm_small's
# 64-element gate bias); of a one-value constant, a LUT.
ROW_CALL_COST = {"lut": 68, "mul": 186, "other": 306, "add_const": 48}
ROW_CALL_CHANNEL = 13
# The most the extra calls of row-streamed element-wise layers may cost, in instructions per MAC
# of the model: about 1 % of its instructions at 1.3 to 2.7 instructions per MAC.
ROW_STREAM_SHARE = 0.02
# A float depthwise layer in place copies its staged rows (dwconv3x3_f32.c, copy_row): about 0.6
# instructions a value and 20 a row (qemu-m7 -O3, bench/zoo.py with and without: VWW 40,476
# instructions for 62,208 values in 105 rows, MobileNetV2 0.35 81,640 for 135,792 in 141, DS-CNN
# 21,462 for 32,000 in 100).
STAGE_COST = (0.6, 20)

# In-place depthwise (dw_in_place): on unless a benchmark compares without it.
IN_PLACE_DW = True
# Row kernels that read their inputs' rows through mcus_row_ptr (an in-place depthwise's output
# may be one of their inputs).
_ROW_READERS = (Conv2D, DepthwiseConv2D, MaxPool2D, AvgPool2D, Add, Pad, Concat, ResizeNearest,
                RepeatChannels, Mean)


def _windows_in_place(layers: list[PlanLayer], p: Plan) -> list[int]:
    """The layers (indexes) that may overwrite their input window (PlanLayer.overwrite_top) and
    that the plan put in place: in their input's buffer."""
    return [j for j, lay in enumerate(layers) if lay.overwrite_top is not None
            and p.buffer_of[j + 1] == p.buffer_of[lay.inputs[0]]]


def _resizes(op: Concat) -> tuple:
    """Per input of a Concat: None, or the (rows, cols) of a nearest-neighbour resize it is read
    through (lowering.ConcatNearest)."""
    return getattr(op, "resize", ()) or (None,) * len(op.inputs)




def _aligned(decl: str) -> str:
    return decl.replace("static const ", "static const __attribute__((aligned(4))) ", 1)


@dataclass
class FastEmitted:
    sources: list[Path]
    include_dirs: list[Path]
    arena_bytes: int
    layers: list[str]
    plan: Plan
    infos: list[LayerInfo]


def emit_fast(graph: Graph, out_dir: Path, origin: str = "", sparse: str = "auto") -> FastEmitted:
    """Write model.c, model.h and plan.json for ``graph`` under ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    em = _Emitter(lower_for_rows(graph), sparse)
    p, infos = em.emit(out_dir, origin or graph.source)
    layers = [f"{op.name} ({op.kind})" for op in em.ops]
    (out_dir / "model.h").write_text(model_h(graph, p.arena_bytes, layers, "mcusearch"))
    lag = any(p.slot(t, 0) for t in range(len(p.ring_rows)))
    (out_dir / "mcus_plan.h").write_text(
        "/* Generated by mcusearch: 1 when a ring holds its rows one slot behind (an in-place\n"
        " * depthwise layer's output, mcus_buf_t.lag), read by mcus_fast.h. Do not edit. */\n"
        f"#define MCUS_RING_LAG {int(lag)}\n")
    summary = {
        "dtype": graph.dtype, "macs": graph.macs, "params": graph.params,
        "arena_bytes": p.arena_bytes, "scratch_bytes": p.scratch_bytes,
        "peak": dict(zip(("bytes", "buffers"), peak(p, [op.name for op in em.ops]))),
        "notes": p.notes,
        "schedule": p.schedule,
        "layers": [dict(vars(i)) for i in infos],
        "tensors": [{"ring_rows": r, "offset": o, "bytes": b} for r, o, b in
                    zip(p.ring_rows, p.offsets, p.buffer_bytes)],
    }
    (out_dir / "plan.json").write_text(json.dumps(summary, indent=1, default=_json_default) + "\n")
    sources = ([out_dir / "model.c"] + [FAST_DIR / f"{k}.c" for k in em.kernel_files]
               + [KERNELS_DIR / f"{k}.c" for k in em.ref_kernels])
    return FastEmitted(sources=sources, include_dirs=[out_dir, FAST_DIR, KERNELS_DIR],
                       arena_bytes=p.arena_bytes, layers=layers, plan=p, infos=infos)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, float) and math.isinf(o):
        return str(o)
    raise TypeError(type(o))


@register
class FastConverter(Converter):
    """The project's optimised generator (the default)."""

    name = "mcusearch"
    quantizations = frozenset({"float32", "int8"})
    sparse = "auto"
    columns = False  # 1-D maps as 1 x T rows (see FastLowMemConverter)

    def convert(self, model: ModelResult, out_dir: Path) -> ConvertResult:
        out_dir = Path(out_dir)
        pre = prepare(model, out_dir, self.columns)
        em = emit_fast(pre.graph, out_dir, origin=pre.origin, sparse=self.sparse)
        return ConvertResult(
            converter=self.name, sources=em.sources, include_dirs=em.include_dirs,
            input_dtype=pre.graph.dtype, output_dtype=pre.graph.dtype, inputs=pre.inputs,
            expected=pre.expected, atol=pre.atol, rtol=pre.rtol, arena_bytes=em.arena_bytes,
            output_meaning=pre.meaning, layers=em.layers, probe_note=pre.probe_note)


@register
class FastLowMemConverter(FastConverter):
    """The optimised generator with 1-D maps turned into T x 1 columns (:mod:`mcusearch.convert.rows1d`)
    so that the row planner streams Conv1D models: a smaller arena (imu_conv1d int8 3,584 -> 1,200 B)
    for more instructions (one pixel per row call: +50-90 % on 1-D models today). A knob value, so
    the search weighs RAM against time; 2-D models get the same code as ``mcusearch``."""

    name = "mcusearch-lowmem"
    columns = True


@register
class FastDenseConverter(FastConverter):
    """The optimised generator with its sparse kernels off: every weight stored and multiplied,
    zeros too (as X-CUBE-AI and Keras2C do), to compare dense with sparse storage on one model."""

    name = "mcusearch-dense"
    sparse = "never"


__all__ = ["FastConverter", "FastLowMemConverter", "FastDenseConverter", "emit_fast", "FastEmitted", "LayerInfo", "COST", "FAST_DIR"]
