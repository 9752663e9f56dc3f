"""One-dimensional models as columns: a graph pass that turns 1 x T views into T x 1 views.

TensorFlow's TFLite converter lowers a Keras Conv1D as EXPAND_DIMS + CONV_2D on a (1, 1, T, C)
tensor with a (Cout, 1, K, Cin) kernel: in the IR (batch dropped) a 1-D feature map is a
(1, T, C) tensor, a single row. The optimised generator's row planner
(:mod:`mcusearch.convert.planner`) computes and keeps tensors by rows, so such a tensor can only
exist whole and the arena cannot shrink below the sum of the whole maps that live at once.

In NHWC the tensors (1, T, C) and (T, 1, C) hold the same bytes, and so do the kernels
(Cout, 1, K, Cin) and (Cout, K, 1, Cin); a convolution or pooling over the first is the
convolution or pooling with kernel, stride and padding swapped over the second. :func:`to_columns`
rewrites the graph that way: every *row tensor* (shape (1, W, C), W > 1) becomes (W, 1, C), and
every op that reads or writes one sees H and W swapped. Nothing moves in memory and no kernel
changes; the planner then streams a 1-D model T rows at a time.

Row tensors are grouped into *regions*: two row tensors are in one region when an op other than a
reshape reads or writes both. A region is rewritten only when every op that touches it is one this
pass knows how to transpose:

* **spatial ops** (Conv2D, DepthwiseConv2D, MaxPool2D, AvgPool2D) whose input and output views are
  both one row high: their shapes, kernel (the weights' KH and KW axes), stride, padding and pool
  size are swapped (and a dilated kernel's dilation, its weights being the dense kernel);
* **flat ops**, which address memory through a flat geometry stored in the op (element-wise
  Add, Clamp, the unary and broadcasting binary plug-ins, Softmax over the last axis, Dense, PAD,
  MEAN, REDUCE_MAX and REDUCE_MIN as outer/reduce/inner, CONCATENATION as outer/inner, strided
  copies): the geometry is computed with size-1 dimensions dropped, so it describes the same bytes
  after the swap, and only the shapes the op carries change. Axes are thereby remapped already: a
  MEAN or REDUCE_MAX over T, a concatenation on channels or on T, a pad of T keep their geometry.
  Such an op must not produce or read a tensor more than one row high (a pad or concatenation that
  grows H is 2-D);
* **reshapes** (RESHAPE, SQUEEZE, EXPAND_DIMS, Flatten) are boundaries: free aliases, so only the
  side that lies in a rewritten region changes.

Any other op (a resize, a future plug-in) touching a region leaves that whole region as it is.
The model input and output keep their declared shapes (probe inputs are shaped by them); the ops
that read or write them see them as T x 1 views, as ops see reshaped tensors.

:func:`to_rows` is the same pass the other way, for the default layout (converter "mcusearch"):
TensorFlow lowers MaxPooling1D and AveragePooling1D on a (1, T, 1, C) view, so between two
Conv1D rows a 1-D pool sees a T x 1 column and its row kernel would run T times, a pixel a call
(an IMU model's 124-step pool: 15,624 instructions for 992 outputs, ~250 of set-up a call). It
rewrites such columns as 1 x T rows, with the same region rules (a column: (T, 1, C), T > 1),
but only regions whose windowed ops are all pools: a model built of T x 1 convolutions keeps its
columns, which the planner streams a few rows at a time.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mcusearch.convert.graph import (Add, AvgPool2D, Clamp, Conv2D, Dense, DepthwiseConv2D, Graph,
                                     MaxPool2D, Op, Reshape, Softmax)
from mcusearch.convert.ops.elementwise import Binary, Unary
from mcusearch.convert.ops.shape import Concat, Mean, Pad, Reduce, Slice, Transpose

SPATIAL: tuple[type[Op], ...] = (Conv2D, DepthwiseConv2D, MaxPool2D, AvgPool2D)
FLAT: tuple[type[Op], ...] = (Add, Clamp, Softmax, Dense, Unary, Binary, Pad, Mean, Reduce, Concat,
                              Slice, Transpose)


@dataclass
class ColumnView:
    """What :func:`to_columns` did: the regions rewritten and those left alone (tensor ids), and
    why each one left alone was."""

    rewritten: list[frozenset[int]] = field(default_factory=list)
    kept: dict[frozenset[int], str] = field(default_factory=dict)


def is_row(shape: tuple[int, ...], axis: int = 0) -> bool:
    """A (1, W, C) feature map with W > 1: a 1-D map stored as one row (axis 1: a (T, 1, C)
    column, T > 1)."""
    return len(shape) == 3 and int(shape[axis]) == 1 and int(shape[1 - axis]) > 1


def _one_high(shape: tuple[int, ...], axis: int = 0) -> bool:
    """Rank 3 and one row high (a row, or a 1 x 1 x C vector); axis 1: one column wide."""
    return len(shape) == 3 and int(shape[axis]) == 1


def _swapped(shape: tuple[int, ...], axis: int = 0) -> tuple[int, ...]:
    """(1, W, C) -> (W, 1, C) (axis 1: (T, 1, C) -> (1, T, C)); any other shape unchanged."""
    if _one_high(shape, axis):
        return (int(shape[1]), int(shape[0]), int(shape[2]))
    return tuple(shape)


def _touched(op: Op) -> tuple[int, ...]:
    return (*op.inputs, op.output)


def regions(graph: Graph, axis: int = 0) -> list[frozenset[int]]:
    """The row tensors (axis 1: column tensors) of ``graph`` grouped into regions (see the module
    docstring), in the order of their first tensor's producer."""
    parent: dict[int, int] = {t: t for t, ten in graph.tensors.items() if is_row(ten.shape, axis)}

    def root(t: int) -> int:
        while parent[t] != t:
            parent[t] = parent[parent[t]]
            t = parent[t]
        return t

    for op in graph.ops:
        if isinstance(op, Reshape):
            continue
        rows = [t for t in _touched(op) if t in parent]
        for t in rows[1:]:
            parent[root(t)] = root(rows[0])
    groups: dict[int, set[int]] = {}
    for t in parent:
        groups.setdefault(root(t), set()).add(t)
    return [frozenset(g) for g in groups.values()]


def why_not(graph: Graph, op: Op, axis: int = 0) -> str:
    """Why ``op`` cannot be seen as T x 1 (axis 1: as 1 x T) ('' when it can)."""
    if isinstance(op, Reshape):
        return ""
    kind = type(op)
    if kind in SPATIAL:
        if _one_high(op.in_shape, axis) and _one_high(op.out_shape, axis):
            return ""
        return f"{op.name} ({op.kind}) maps {op.in_shape} to {op.out_shape}: a 2-D window"
    if kind not in FLAT:
        return f"{op.name} ({op.kind}) is not an op this pass knows how to transpose"
    shapes = [op.in_shape, op.out_shape] + [graph.tensors[t].shape for t in _touched(op)]
    tall = [s for s in shapes if len(s) == 3 and int(s[axis]) > 1]
    if tall:
        return (f"{op.name} ({op.kind}) also reads or writes {tall[0]}, more than one "
                f"{'column wide' if axis else 'row high'}")
    return ""


def _transpose_op(op: Op, axis: int = 0) -> None:
    """Swap H and W in a one-row-high (axis 1: one-column-wide) op's views and spatial attributes
    (in place)."""
    op.in_shape, op.out_shape = _swapped(op.in_shape, axis), _swapped(op.out_shape, axis)
    if isinstance(op, (Conv2D, DepthwiseConv2D)):
        op.weights = np.ascontiguousarray(np.swapaxes(op.weights, 1, 2))
        op.dilation = (op.dilation[1], op.dilation[0])
    if isinstance(op, (MaxPool2D, AvgPool2D)):
        op.pool = (op.pool[1], op.pool[0])
    if isinstance(op, SPATIAL):
        op.stride = (op.stride[1], op.stride[0])
        op.pad = (op.pad[1], op.pad[0])


def _rewrite(graph: Graph, region: frozenset[int], axis: int) -> None:
    for t in region:
        if t not in (graph.input_id, graph.output_id):
            graph.tensors[t].shape = _swapped(graph.tensors[t].shape, axis)
    for op in graph.ops:
        if isinstance(op, Reshape):
            if op.inputs[0] in region:
                op.in_shape = _swapped(op.in_shape, axis)
            if op.output in region:
                op.out_shape = _swapped(op.out_shape, axis)
        elif any(t in region for t in _touched(op)):
            _transpose_op(op, axis)


def _transpose_regions(graph: Graph, axis: int, pools_only: bool = False) -> ColumnView:
    done = ColumnView()
    for region in regions(graph, axis):
        ops = [op for op in graph.ops if any(t in region for t in _touched(op))]
        reasons = [r for r in (why_not(graph, op, axis) for op in ops) if r]
        if pools_only:
            reasons += [f"{op.name} ({op.kind}) is a convolution of T x 1 columns (streamed)"
                        for op in ops if isinstance(op, (Conv2D, DepthwiseConv2D))]
        if reasons:
            done.kept[region] = reasons[0]
            continue
        _rewrite(graph, region, axis)
        done.rewritten.append(region)
    return done


def to_columns(graph: Graph) -> ColumnView:
    """Rewrite every region of row tensors of ``graph`` whose ops all allow it as T x 1 (in place;
    see the module docstring). Returns what was rewritten and what was left alone, and why."""
    return _transpose_regions(graph, 0)


def to_rows(graph: Graph) -> ColumnView:
    """Rewrite every region of column tensors (T x 1) of ``graph`` whose ops all allow it and
    whose windowed ops are all pools as 1 x T rows (in place; the inverse of :func:`to_columns`)."""
    return _transpose_regions(graph, 1, pools_only=True)
