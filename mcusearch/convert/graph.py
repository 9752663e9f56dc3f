"""The mcusearch generator's intermediate representation: a DAG of operators over NHWC tensors.

A :class:`Graph` holds :class:`Tensor` s (activations; constants live inside the ops that use
them) and :class:`Op` s in execution order (a topological order). Every op reads one or more
tensors (``inputs``; ``inputs[0]`` has the op's ``in_shape``) and writes one (``output``). A
tensor may have any number of readers: residual connections, projection shortcuts,
concatenations and squeeze-and-excite gates are ordinary edges.

Front ends build graphs: :mod:`mcusearch.convert.frontend` reads a ``.tflite`` flatbuffer, float32
or full-integer int8; a Keras model goes through TensorFlow's own TFLite converter first (batch 1,
recurrent layers unrolled), so BatchNormalization is folded, padding and pooling layers become
their TFLite ops and what the firmware runs is what TFLite would run. Emitters turn graphs into C:
:mod:`mcusearch.convert.cgen` (reference kernels) and :mod:`mcusearch.convert.fast` (optimised
row kernels, with the reference kernel as a per-layer fallback).

Layouts follow TFLite: activations row-major NHWC with batch 1 (dropped from every shape), conv
weights OHWI, dense weights ``[out][in]``. Reshape-like ops (RESHAPE, SQUEEZE, EXPAND_DIMS,
Flatten) move no data in NHWC: their output is an *alias* of their input (:meth:`Graph.storage`)
and they emit nothing.

The op classes here are the generator's built-in ops, which both emitters know. Further ops are
plug-ins (:mod:`mcusearch.convert.ops`): an Op subclass that emits its own reference-kernel call
(:meth:`Op.emit_ref`) plus the front-end rule that builds it; the optimised generator runs such
ops on their reference kernel.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from mcusearch.convert.quant import AddQuant
from mcusearch.errors import StageError

if TYPE_CHECKING:
    from mcusearch.convert.ops import RefContext


@dataclass
class Tensor:
    """An activation tensor. ``shape`` excludes the batch; int8 tensors carry their quantisation."""

    id: int
    shape: tuple[int, ...]
    name: str = ""
    scale: float | None = None
    zero_point: int | None = None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass
class Requant:
    """int8 requantisation of one Conv2D/Dense: offsets and per-channel (or per-tensor) multipliers."""

    input_zero_point: int
    output_zero_point: int
    output_scale: float
    multiplier: np.ndarray        # int32, [out_c] (or [1] for a per-tensor dense)
    shift: np.ndarray             # int32, TFLite convention (> 0 = left shift)

    @property
    def per_channel(self) -> bool:
        return len(self.multiplier) > 1


@dataclass
class Op:
    """One operator. ``in_shape`` (of ``inputs[0]``, as this op views it) and ``out_shape``
    exclude the batch: (H, W, C), (T, C) or (N,)."""

    kind: ClassVar[str] = "Op"
    name: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    inputs: tuple[int, ...] = ()   # tensor ids read
    output: int = -1               # tensor id written

    @property
    def in_len(self) -> int:
        return int(np.prod(self.in_shape))

    @property
    def out_len(self) -> int:
        return int(np.prod(self.out_shape))

    @property
    def macs(self) -> int:
        return 0

    @property
    def params(self) -> int:
        """Weights and biases (ops with ``weights``/``bias`` fields), else 0."""
        w, b = getattr(self, "weights", None), getattr(self, "bias", None)
        return (0 if w is None else int(w.size)) + (0 if b is None else int(b.size))

    def emit_ref(self, ctx: "RefContext") -> str:
        """Plug-in ops: append this op's constants and parameters through ``ctx`` and return the C
        statement that calls its reference kernel. Built-in ops are emitted by the emitters."""
        raise StageError("convert", f"{self.name} ({self.kind}) has no {ctx.dtype} kernel")


@dataclass
class Conv2D(Op):
    kind: ClassVar[str] = "Conv2D"
    weights: np.ndarray = None     # OHWI
    bias: np.ndarray | None = None # [O] float32, or int32 for int8
    stride: tuple[int, int] = (1, 1)
    padding: str = "valid"         # "same" | "valid"
    pad: tuple[int, int] = (0, 0)  # (top, left)
    act: tuple = (-math.inf, math.inf)  # clamp: floats, or quantised ints for int8
    requant: Requant | None = None
    dilation: tuple[int, int] = (1, 1)  # the layer's: ``weights`` hold the dilated kernel dense

    @property
    def kernel(self) -> tuple[int, int]:
        return int(self.weights.shape[1]), int(self.weights.shape[2])

    @property
    def macs(self) -> int:
        return self.out_len * int(self.weights.shape[3]) * _taps(self.kernel, self.dilation)


@dataclass
class DepthwiseConv2D(Op):
    """Depthwise convolution: output channel c reads input channel c // depth_multiplier."""

    kind: ClassVar[str] = "DepthwiseConv2D"
    weights: np.ndarray = None     # [1][KH][KW][C * multiplier] (TFLite's layout)
    bias: np.ndarray | None = None # [C * multiplier] float32, or int32 for int8
    stride: tuple[int, int] = (1, 1)
    padding: str = "valid"
    pad: tuple[int, int] = (0, 0)  # (top, left)
    act: tuple = (-math.inf, math.inf)
    requant: Requant | None = None
    dilation: tuple[int, int] = (1, 1)  # as Conv2D's

    @property
    def kernel(self) -> tuple[int, int]:
        return int(self.weights.shape[1]), int(self.weights.shape[2])

    @property
    def depth_multiplier(self) -> int:
        return int(self.out_shape[-1]) // int(self.in_shape[-1])

    @property
    def macs(self) -> int:
        return self.out_len * _taps(self.kernel, self.dilation)


def _taps(kernel: tuple[int, int], dilation: tuple[int, int]) -> int:
    """The real taps of a (dilated, then made dense) kernel: the zeros between them do no MACs."""
    (kh, kw), (dh, dw) = kernel, dilation
    return ((kh - 1) // dh + 1) * ((kw - 1) // dw + 1)


def dilate_kernel(weights: np.ndarray, dilation: tuple[int, int]) -> np.ndarray:
    """A dilated convolution's [N][KH][KW][C] weights as the dense kernel of (K - 1) d + 1 rows
    and columns with zeros between the taps: the same outputs in float32 (x 0 adds nothing) and
    int8 (the same products in the int32 sum), for every kernel that takes a plain one."""
    n, kh, kw, c = weights.shape
    dh, dw = dilation
    out = np.zeros((n, (kh - 1) * dh + 1, (kw - 1) * dw + 1, c), weights.dtype)
    out[:, ::dh, ::dw, :] = weights
    return out


@dataclass
class MaxPool2D(Op):
    kind: ClassVar[str] = "MaxPool2D"
    pool: tuple[int, int] = (2, 2)
    stride: tuple[int, int] = (2, 2)
    padding: str = "valid"
    pad: tuple[int, int] = (0, 0)
    act: tuple = (-math.inf, math.inf)


@dataclass
class AvgPool2D(Op):
    """Average pooling; padded cells are not counted (TF 'same'). int8: input and output share
    scale and zero point, the mean is rounded half away from zero (TFLite's AVERAGE_POOL_2D)."""

    kind: ClassVar[str] = "AvgPool2D"
    pool: tuple[int, int] = (2, 2)
    stride: tuple[int, int] = (2, 2)
    padding: str = "valid"
    pad: tuple[int, int] = (0, 0)
    act: tuple = (-math.inf, math.inf)


@dataclass
class Dense(Op):
    """A fully connected layer on a vector. (FULLY_CONNECTED on a rank-3 input, one Dense per
    row, becomes a 1 x 1 Conv2D over a 1 x rows x features view.)"""

    kind: ClassVar[str] = "Dense"
    weights: np.ndarray = None     # [out][in]
    bias: np.ndarray | None = None
    act: tuple = (-math.inf, math.inf)
    requant: Requant | None = None

    @property
    def macs(self) -> int:
        return int(self.weights.size)


@dataclass
class Add(Op):
    """Element-wise sum of two tensors of the same shape (``inputs[0] + inputs[1]``)."""

    kind: ClassVar[str] = "Add"
    act: tuple = (-math.inf, math.inf)
    quant: AddQuant | None = None


@dataclass
class Reshape(Op):
    """Flatten/Reshape/Squeeze/ExpandDims: nothing to do in NHWC; the output aliases the input.
    ``offset`` > 0 (only the optimised generator's :func:`mcusearch.convert.lowering.slice_views`
    makes one): the output is a contiguous run of the input's elements that starts there, a Slice
    read in place."""

    kind: ClassVar[str] = "Reshape"
    offset: int = 0                # elements from the input's start


@dataclass
class Softmax(Op):
    """Softmax over the last axis. float32: the softmax. int8: TFLite's float look-up-table
    softmax, with ``table`` (256 float32, :func:`~mcusearch.convert.quant.tflite_softmax_table`)
    and the output quantisation."""

    kind: ClassVar[str] = "Softmax"
    table: np.ndarray | None = None
    output_scale: float = 0.0
    output_zero_point: int = 0

    @property
    def rows(self) -> int:
        return self.out_len // int(self.out_shape[-1])


@dataclass
class Clamp(Op):
    """An element-wise clamp (ReLU / ReLU6 / ReLU_N1_TO_1) that could not be fused into a
    preceding op. int8: input and output share their quantisation, bounds are quantised."""

    kind: ClassVar[str] = "Clamp"
    act: tuple = (0.0, math.inf)


@dataclass
class Graph:
    dtype: str                                # "float32" | "int8" (activations, input, output)
    input_shape: tuple[int, ...]              # without batch
    ops: list[Op] = field(default_factory=list)
    tensors: dict[int, Tensor] = field(default_factory=dict)
    input_id: int = 0                         # tensor ids (the .tflite tensor indices)
    output_id: int = -1
    input_scale: float | None = None          # int8 only
    input_zero_point: int | None = None
    output_scale: float | None = None
    output_zero_point: int | None = None
    source: str = ""

    # -- structure --------------------------------------------------------------------------------

    def storage(self, tid: int) -> int:
        """The tensor whose memory ``tid`` lives in: follows Reshape aliases back to a tensor that
        an op computes (or the model input)."""
        seen = 0
        while True:
            op = self._producers().get(tid)
            if not isinstance(op, Reshape):
                return tid
            tid = op.inputs[0]
            seen += 1
            if seen > len(self.ops):
                raise StageError("convert", "a cycle of reshapes")

    def storage_offset(self, tid: int) -> int:
        """Where ``tid`` starts in :meth:`storage`'s memory, in elements: the sum of the offsets of
        the views on the way (0 for plain reshapes)."""
        off = 0
        producers = self._producers()
        for _ in range(len(self.ops) + 1):
            op = producers.get(tid)
            if not isinstance(op, Reshape):
                return off
            off += op.offset
            tid = op.inputs[0]
        raise StageError("convert", "a cycle of reshapes")

    def _producers(self) -> dict[int, Op]:
        return {op.output: op for op in self.ops}

    def producer(self, tid: int) -> Op | None:
        """The op computing ``tid``'s memory (None: the model input)."""
        return self._producers().get(self.storage(tid))

    @property
    def compute_ops(self) -> list[Op]:
        """The ops that become kernel calls (Reshape is free)."""
        return [op for op in self.ops if not isinstance(op, Reshape)]

    @property
    def output_storage(self) -> int:
        return self.storage(self.output_id)

    def link_chain(self) -> "Graph":
        """Number tensors for a graph built as a plain chain (each op reads the op before it):
        the input is tensor 0, op j writes tensor j + 1. For graphs built by hand (tests)."""
        self.input_id = 0
        self.tensors = {0: Tensor(0, tuple(self.input_shape), "input",
                                  self.input_scale, self.input_zero_point)}
        for j, op in enumerate(self.ops):
            op.inputs, op.output = (j,), j + 1
            self.tensors[j + 1] = Tensor(j + 1, tuple(op.out_shape), op.name)
        self.output_id = len(self.ops)
        return self.finish()

    def finish(self) -> "Graph":
        """Drop ops the output does not depend on; check the graph is computable."""
        need = {self.output_id}
        keep: list[Op] = []
        for op in reversed(self.ops):
            if op.output in need:
                keep.append(op)
                need.update(op.inputs)
        self.ops = keep[::-1]
        if not self.compute_ops or self.output_storage == self.input_id:
            raise StageError("convert", "the model has no layer to compute")
        known = {self.input_id}
        for op in self.ops:
            missing = [i for i in op.inputs if i not in known]
            if missing:
                raise StageError("convert", f"{op.name} ({op.kind}) reads tensor(s) {missing} that "
                                            "no earlier op computes")
            known.add(op.output)
        return self

    # -- sizes ------------------------------------------------------------------------------------

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.tensors[self.output_id].shape

    @property
    def input_len(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def output_len(self) -> int:
        return int(np.prod(self.output_shape))

    @property
    def macs(self) -> int:
        return sum(op.macs for op in self.ops)

    @property
    def params(self) -> int:
        return sum(op.params for op in self.ops)
