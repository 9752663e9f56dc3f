"""Graph rewrites of the optimised generator (converter ``"mcusearch"``) that give row kernels to
layers which would otherwise run whole through a reference kernel.

:func:`lower_for_rows` returns a new graph (the caller's is left as it is: the reference
generator and the tests read it) in which

* **a zero pad before a convolution is folded into the convolution's padding**
  (:func:`fold_pads`). A PAD / PADV2 (ZeroPadding2D) of the height and width only, whose only
  reader is a Conv2D or DepthwiseConv2D, pads with the value the convolution's padding stands
  for: 0.0 in float32; in int8 the convolution's input zero point (TFLite pads int8 with the
  output zero point of the PAD, which is its reader's input zero point), whose cells add
  ``(zp - zp) * w = 0`` to a sum - the row kernels add nothing for a padding cell. So the
  convolution reading the PAD's input with padding ``pad + before`` computes the same numbers,
  and the padded tensor never exists. Only where every window keeps a real cell (``before`` and
  ``after`` below the kernel size in both directions; beyond that the kernels' window clipping
  is not defined): other pads stay, and run as the ``pad`` row kernel. A causal Conv1D's PAD
  of the squeezed (T, C) sequence, which the convolution reads through a reshape as a 1 x T (or
  T x 1) map, folds the same way (:func:`sequence_pad`): a TCN's pads were a fifth of its
  instructions.
* **a depthwise convolution with depth multiplier M > 1 becomes a channel repeat and a depthwise
  convolution with multiplier 1** (:func:`split_depth_multiplier`): output channel c reads input
  channel c // M; :class:`RepeatChannels` writes every input channel M times in a row, which is
  exactly the input of a multiplier-1 depthwise convolution with the same weights, biases and
  requantisation (TFLite's [1][kh][kw][C * M] weights are already indexed by output channel).
  The repeat is a row layer (row r from input row r), so the depthwise layer gets its fast row
  kernel and the repeated tensor lives in a line buffer of a few rows.
* **a nearest-neighbour resize whose only reader is a concatenation on channels is read by the
  concatenation directly** (:func:`fuse_resize_into_concat`): a U-Net's UpSampling2D +
  Concatenate becomes one :class:`ConcatNearest`, whose output pixel (y, x) takes that input's
  channels from pixel (rows[y], cols[x]) of the resize's input. The same values are copied
  once instead of twice, and the upsampled tensor never exists.
* **a slice that selects one contiguous run of its input's elements is read in place**
  (:func:`slice_views`): TFLite's unrolled LSTM/GRU cells split the gate vector of a Dense into
  gates (SPLIT on the last axis) and slice the sequence into time steps; each such Slice becomes
  a :class:`~mcusearch.convert.graph.Reshape` at an element offset, so its readers read the
  input where the run starts (the generator adds the offset to their pointers) and no copy
  runs. Only where the input is stored whole in the layout the slice indexes: the model input
  (the caller's buffer) or a one-row tensor (the planner's vectors; a row kernel's H x W x C
  output may live in a ring of a few rows), the run starting on a 4-byte boundary.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from mcusearch.convert.graph import AvgPool2D, Conv2D, DepthwiseConv2D, Graph, Op, Reshape, Tensor
from mcusearch.convert.ops.shape import Concat, Mean, Pad, ResizeNearest, Slice


@dataclass
class RepeatChannels(Op):
    """Every channel of an H x W x C tensor ``repeats`` times in a row: output channel c is input
    channel c // repeats (the input of a depthwise convolution with that depth multiplier). Only
    the optimised generator creates it (:func:`split_depth_multiplier`); it moves values, so int8
    tensors keep their quantisation."""

    kind: ClassVar[str] = "RepeatChannels"
    repeats: int = 1


@dataclass
class ConcatNearest(Concat):
    """A concatenation on channels (H x W x C tensors) some of whose inputs are read through a
    nearest-neighbour resize: ``resize[k]`` is None (input k has the output's height and width)
    or (rows, cols) of the ResizeNearest folded in (:func:`fuse_resize_into_concat`)."""

    kind: ClassVar[str] = "Concat"
    resize: tuple = ()


def _readers(g: Graph) -> dict[int, list[Op]]:
    out: dict[int, list[Op]] = {}
    for op in g.ops:
        for t in op.inputs:
            out.setdefault(t, []).append(op)
    return out


def pad_geometry(op: Pad) -> tuple[int, int, int] | None:
    """(top, left, front): the padding before the rows, columns and channels of a pad of an
    H x W x C tensor (its four-dimensional geometry is (1, H, W, C)), or None (another rank, or
    a geometry with size-1 dimensions dropped)."""
    if len(op.in_shape) != 3 or len(op.out_shape) != 3 or len(op.in_dims) != 4:
        return None
    if (tuple(op.in_dims) != (1,) + tuple(op.in_shape) or op.before[0]
            or tuple(op.out_dims) != (1,) + tuple(op.out_shape)):
        return None
    return int(op.before[1]), int(op.before[2]), int(op.before[3])


def spatial_pad(op: Pad) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) of a pad of an H x W x C tensor's height and width only, or
    None (the channels padded too, or not such a pad)."""
    geo = pad_geometry(op)
    if geo is None or geo[2] or op.out_shape[2] != op.in_shape[2]:
        return None
    top, left = geo[0], geo[1]
    return top, op.out_shape[0] - op.in_shape[0] - top, left, op.out_shape[1] - op.in_shape[1] - left


def sequence_pad(op: Pad) -> tuple[int, int] | None:
    """(before, after) of a pad of a (T, C) sequence's time axis only (a causal Conv1D's: TFLite
    pads the squeezed sequence, then views it as 1 x T or T x 1), or None."""
    if len(op.in_shape) != 2 or len(op.out_shape) != 2 or op.in_shape[1] != op.out_shape[1]:
        return None
    diff = [k for k, (a, b) in enumerate(zip(op.in_dims, op.out_dims)) if a != b]
    if (len(diff) != 1 or int(op.in_dims[diff[0]]) != int(op.in_shape[0])
            or int(np.prod(op.in_dims)) != int(np.prod(op.in_shape))
            or int(op.out_dims[-1]) != int(op.out_shape[1])):
        return None
    before = int(op.before[diff[0]])
    return before, int(op.out_shape[0]) - int(op.in_shape[0]) - before


def _sides(pad: Pad, conv: Op) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) of ``pad`` as ``conv`` sees it: an H x W x C pad of its input
    map, or a sequence pad of the (T, C) that it views as 1 x T (left, right) or T x 1 (top,
    bottom)."""
    if len(pad.out_shape) == 3 and tuple(conv.in_shape) == tuple(pad.out_shape):
        return spatial_pad(pad)
    seq = sequence_pad(pad)
    t, c = (int(d) for d in pad.out_shape[:2]) if len(pad.out_shape) == 2 else (0, 0)
    if seq is None:
        return None
    if tuple(conv.in_shape) == (1, t, c):
        return 0, 0, seq[0], seq[1]
    if tuple(conv.in_shape) == (t, 1, c):
        return seq[0], seq[1], 0, 0
    return None


def _foldable(g: Graph, pad: Pad, conv: Op) -> tuple[int, int] | None:
    """(top, left) to add to ``conv``'s padding when ``pad`` folds into it, else None."""
    if not isinstance(conv, (Conv2D, DepthwiseConv2D)) or g.storage(conv.inputs[0]) != pad.output:
        return None
    if pad.output == g.output_id:
        return None
    sides = _sides(pad, conv)
    if sides is None:
        return None
    zero = 0.0 if g.dtype == "float32" else conv.requant.input_zero_point
    if float(pad.value) != float(zero):
        return None
    kh, kw = conv.kernel
    top, bottom, left, right = sides
    pt, pl = conv.pad[0] + top, conv.pad[1] + left
    if max(top, bottom, pt) >= kh or max(left, right, pl) >= kw:
        return None
    return pt, pl


def _seq_view(conv_in: tuple, seq: tuple) -> tuple[int, int, int]:
    """A (T, C) sequence as the 1 x T or T x 1 map ``conv_in`` (the padded one's view) is."""
    t, c = int(seq[0]), int(seq[1])
    return (1, t, c) if int(conv_in[0]) == 1 else (t, 1, c)


def fold_pads(g: Graph) -> Graph:
    """``g`` with every zero pad that only feeds a convolution folded into its padding (see the
    module docstring); a new Graph sharing the unchanged ops."""
    readers = _readers(g)
    drop: set[int] = set()
    changed: dict[int, Op] = {}
    for op in g.ops:
        if not isinstance(op, Pad) or len(readers.get(op.output, [])) != 1:
            continue
        conv, view = readers[op.output][0], None
        if isinstance(conv, Reshape) and len(readers.get(conv.output, [])) == 1:
            view, conv = conv, readers[conv.output][0]      # a sequence pad, viewed as a map
        pad = _foldable(g, op, conv)
        if pad is None:
            continue
        in_shape = tuple(op.in_shape) if view is None else _seq_view(conv.in_shape, op.in_shape)
        changed[id(conv)] = dataclasses.replace(conv, in_shape=in_shape,
                                                inputs=(op.inputs[0],) + tuple(conv.inputs[1:]),
                                                pad=pad)
        drop.update({id(op)} | ({id(view)} if view is not None else set()))
    if not drop:
        return g
    ops = [changed.get(id(op), op) for op in g.ops if id(op) not in drop]
    return dataclasses.replace(g, ops=ops, tensors=dict(g.tensors)).finish()


def split_depth_multiplier(g: Graph) -> Graph:
    """``g`` with every depthwise convolution of depth multiplier M > 1 as RepeatChannels(M) and
    a multiplier-1 depthwise convolution (see the module docstring)."""
    if not any(isinstance(op, DepthwiseConv2D) and op.depth_multiplier > 1 for op in g.ops):
        return g
    tensors = dict(g.tensors)
    next_id = max(tensors) + 1
    ops: list[Op] = []
    for op in g.ops:
        if not (isinstance(op, DepthwiseConv2D) and op.depth_multiplier > 1
                and len(op.in_shape) == 3):
            ops.append(op)
            continue
        h, w, c = op.in_shape
        m = op.depth_multiplier
        wide = (h, w, c * m)
        src = tensors.get(op.inputs[0])
        tensors[next_id] = Tensor(next_id, wide, f"{op.name}/repeat",
                                  getattr(src, "scale", None), getattr(src, "zero_point", None))
        ops.append(RepeatChannels(f"{op.name}/repeat", tuple(op.in_shape), wide,
                                  inputs=(op.inputs[0],), output=next_id, repeats=m))
        ops.append(dataclasses.replace(op, in_shape=wide, inputs=(next_id,)))
        next_id += 1
    return dataclasses.replace(g, ops=ops, tensors=tensors).finish()


def _channel_concat(g: Graph, op: Op) -> bool:
    """Whether ``op`` is a Concat on the channels of H x W x C tensors of the output's size."""
    if not isinstance(op, Concat) or len(op.out_shape) != 3:
        return False
    h, w, _ = op.out_shape
    shapes = [tuple(g.tensors[i].shape) for i in op.inputs]
    return (op.outer == h * w and all(len(s) == 3 and s[:2] == (h, w) for s in shapes)
            and list(op.inner) == [s[2] for s in shapes])


def fuse_resize_into_concat(g: Graph) -> Graph:
    """``g`` with every ResizeNearest whose only reader is a channel Concat (and not the model
    output) read by that Concat as a :class:`ConcatNearest` (see the module docstring)."""
    readers = _readers(g)
    producer = {op.output: op for op in g.ops}
    drop: set[int] = set()
    changed: dict[int, Op] = {}
    for op in g.ops:
        if not _channel_concat(g, op) or len(set(op.inputs)) != len(op.inputs):
            continue
        inputs, resize = list(op.inputs), []
        for k, t in enumerate(op.inputs):
            src = producer.get(t)
            if (isinstance(src, ResizeNearest) and len(readers.get(t, [])) == 1
                    and t != g.output_id and len(src.in_shape) == 3
                    and tuple(g.tensors[src.inputs[0]].shape) == tuple(src.in_shape)):
                inputs[k] = src.inputs[0]
                resize.append((tuple(src.rows), tuple(src.cols)))
                drop.add(id(src))
            else:
                resize.append(None)
        if any(resize):
            changed[id(op)] = ConcatNearest(op.name, tuple(g.tensors[inputs[0]].shape),
                                            op.out_shape, inputs=tuple(inputs), output=op.output,
                                            outer=op.outer, inner=op.inner, resize=tuple(resize))
    if not changed:
        return g
    ops = [changed.get(id(op), op) for op in g.ops if id(op) not in drop]
    return dataclasses.replace(g, ops=ops, tensors=dict(g.tensors)).finish()


def contiguous_run(op: Slice) -> int | None:
    """The element offset of the run ``op`` copies, when the elements it copies are consecutive
    in its input, in order; else None."""
    if type(op) is not Slice:               # a Transpose reorders
        return None
    idx = np.asarray(op.base, np.int64)
    for d, s in zip(op.dims, op.strides):
        idx = idx[..., None] + np.arange(int(d), dtype=np.int64) * int(s)
    idx = idx.ravel()
    if idx.size == 0 or np.any(np.diff(idx) != 1):
        return None
    return int(idx[0])


def _stored_whole(g: Graph, tid: int) -> bool:
    """Whether tensor ``tid``'s memory holds all its elements in row-major order wherever the
    optimised generator keeps it: the model input, or an op's output of one row (not a global
    average pool's or MEAN's, which may be streamed through a buffer of sums)."""
    s = g.storage(tid)
    if s == g.input_id:
        return True
    shape = g.tensors[s].shape
    return not isinstance(g.producer(s), (AvgPool2D, Mean)) and (len(shape) != 3 or int(shape[0]) == 1)


def slice_views(g: Graph, elem: int) -> Graph:
    """``g`` with every Slice of a contiguous run (:func:`contiguous_run`) of a tensor stored
    whole, starting at a multiple of 4 bytes (``elem`` bytes an element) and not the model
    output, as a view: a Reshape at the run's offset (see the module docstring)."""
    ops: list[Op] = []
    for op in g.ops:
        off = contiguous_run(op) if isinstance(op, Slice) else None
        if (off is None or op.output == g.output_id or (off * elem) % 4
                or not _stored_whole(g, op.inputs[0])):
            ops.append(op)
            continue
        ops.append(Reshape(op.name, tuple(op.in_shape), tuple(op.out_shape), inputs=op.inputs[:1],
                           output=op.output, offset=off))
    if all(a is b for a, b in zip(ops, g.ops)):
        return g
    return dataclasses.replace(g, ops=ops, tensors=dict(g.tensors)).finish()


def lower_for_rows(g: Graph) -> Graph:
    """The rewrites of this module, in order: pads folded, depth multipliers split, resizes
    read by their concatenation, contiguous slices read in place."""
    elem = 4 if g.dtype == "float32" else 1
    return slice_views(fuse_resize_into_concat(split_depth_multiplier(fold_pads(g))), elem)
