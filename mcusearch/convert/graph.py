"""The mcusearch generator's intermediate representation: a chain of NHWC operators, plus residuals.

Every op reads the previous op's output; an :class:`Add` also reads an earlier tensor (the output
of an earlier op, ``Add.skip``, or the model input): identity residual connections. Any other
branching is rejected.

A :class:`Graph` is what the C emitter (:mod:`mcusearch.convert.cgen`) turns into calls of the
reference kernels in ``firmware/kernels``. Two front ends build one:

* :func:`graph_from_keras` - a float32 Keras (tf-keras / Keras 2) model;
* :func:`graph_from_tflite` - a full-integer int8 ``.tflite`` model (int8 input and output).

Layouts follow TFLite: activations NHWC (batch 1, dropped from every shape), conv weights OHWI,
dense weights ``[out][in]``. Flatten/Reshape are no-ops in NHWC and stay in the graph only as
:class:`Reshape` markers; Dropout-like layers and the InputLayer are dropped. A ReLU layer is
fused into the clamp of the preceding Conv2D/DepthwiseConv2D/Dense/MaxPool2D/AvgPool2D/Add.

int8 arithmetic is TFLite's: multipliers and shifts come from the same formulas as TFLite's
``QuantizeMultiplier`` / ``PopulateConvolutionQuantizationParams`` /
``GetQuantizedConvolutionMultipler``, activation ranges from ``CalculateActivationRangeQuantized``.
A final int8 SOFTMAX is TFLite's float look-up-table kernel (optimized_ops::Softmax): the table
exp(input_scale * beta * (x - max)) is computed here with the C library's expf, as TFLite does
(:func:`tflite_softmax_table`), and the firmware sums and normalises in float32 in the same order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import mcusearch  # noqa: F401  (selects tf-keras before TensorFlow is imported)
import numpy as np

from mcusearch.errors import StageError

SUPPORTED_KERAS = ("InputLayer, Conv2D, DepthwiseConv2D (depth_multiplier 1), MaxPooling2D, "
                   "AveragePooling2D, Add (two same-shape tensors: the previous layer's output and "
                   "an earlier one), Flatten, Reshape, Dense, Dropout, "
                   "ReLU, Activation(relu|relu6|linear|softmax), Softmax")
SUPPORTED_TFLITE = ("CONV_2D, DEPTHWISE_CONV_2D (depth_multiplier 1), MAX_POOL_2D, AVERAGE_POOL_2D, "
                    "ADD (same shapes, a residual), RESHAPE, FULLY_CONNECTED, SOFTMAX (last op only)")

INT8_MIN, INT8_MAX = -128, 127


# ---- IR -------------------------------------------------------------------------------------

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
    """One operator. ``in_shape``/``out_shape`` exclude the batch: (H, W, C) or (N,)."""

    kind: ClassVar[str] = "Op"
    name: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

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

    @property
    def kernel(self) -> tuple[int, int]:
        return int(self.weights.shape[1]), int(self.weights.shape[2])

    @property
    def macs(self) -> int:
        return self.out_len * int(np.prod(self.weights.shape[1:]))


@dataclass
class DepthwiseConv2D(Op):
    """Depthwise convolution, depth multiplier 1: output channel c = input channel c."""

    kind: ClassVar[str] = "DepthwiseConv2D"
    weights: np.ndarray = None     # [1][KH][KW][C] (TFLite's layout)
    bias: np.ndarray | None = None # [C] float32, or int32 for int8
    stride: tuple[int, int] = (1, 1)
    padding: str = "valid"
    pad: tuple[int, int] = (0, 0)  # (top, left)
    act: tuple = (-math.inf, math.inf)
    requant: Requant | None = None

    @property
    def kernel(self) -> tuple[int, int]:
        return int(self.weights.shape[1]), int(self.weights.shape[2])

    @property
    def macs(self) -> int:
        kh, kw = self.kernel
        return self.out_len * kh * kw


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
    kind: ClassVar[str] = "Dense"
    weights: np.ndarray = None     # [out][in]
    bias: np.ndarray | None = None
    act: tuple = (-math.inf, math.inf)
    requant: Requant | None = None

    @property
    def macs(self) -> int:
        return int(self.weights.size)


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


@dataclass
class Add(Op):
    """Element-wise sum of the previous op's output and an earlier tensor of the same shape: the
    output of ``skip`` (an earlier computing op of the graph), or the model input (None)."""

    kind: ClassVar[str] = "Add"
    skip: Op | None = None
    act: tuple = (-math.inf, math.inf)
    quant: AddQuant | None = None


@dataclass
class Reshape(Op):
    """Flatten/Reshape: nothing to do in NHWC (the memory order is already right)."""

    kind: ClassVar[str] = "Reshape"


@dataclass
class Softmax(Op):
    """float32: the softmax. int8 (the last op only): TFLite's float look-up-table softmax, with
    ``table`` (256 float32, :func:`tflite_softmax_table`) and the output quantisation."""

    kind: ClassVar[str] = "Softmax"
    table: np.ndarray | None = None
    output_scale: float = 0.0
    output_zero_point: int = 0


@dataclass
class Clamp(Op):
    """An element-wise clamp (ReLU / ReLU6) that could not be fused into a preceding op."""

    kind: ClassVar[str] = "Clamp"
    act: tuple = (0.0, math.inf)


@dataclass
class Graph:
    dtype: str                                # "float32" | "int8" (activations, input, output)
    input_shape: tuple[int, ...]              # without batch
    ops: list[Op] = field(default_factory=list)
    input_scale: float | None = None          # int8 only
    input_zero_point: int | None = None
    output_scale: float | None = None         # int8: quantisation of the last op's output
    output_zero_point: int | None = None
    output_tensor: int | None = None          # tflite: tensor index of the last op's output
    source: str = ""

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.ops[-1].out_shape if self.ops else self.input_shape

    @property
    def input_len(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def output_len(self) -> int:
        return int(np.prod(self.output_shape))

    @property
    def compute_ops(self) -> list[Op]:
        """The ops that become kernel calls (Reshape is free)."""
        return [op for op in self.ops if not isinstance(op, Reshape)]

    @property
    def macs(self) -> int:
        return sum(op.macs for op in self.ops)

    def skip_index(self, add: "Add") -> int:
        """Index in :attr:`compute_ops` of an Add's residual input (-1: the model input)."""
        if add.skip is None:
            return -1
        return next(i for i, op in enumerate(self.compute_ops) if op is add.skip)

    @property
    def params(self) -> int:
        return sum(op.params for op in self.ops)


# ---- shared arithmetic ------------------------------------------------------------------------

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


# ---- Keras front end --------------------------------------------------------------------------

_KERAS_IDENTITY = {"Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
                   "GaussianNoise", "GaussianDropout", "AlphaDropout", "InputLayer"}
_KERAS_CLAMPS = {"linear": (-math.inf, math.inf), "relu": (0.0, math.inf), "relu6": (0.0, 6.0)}


def _unsupported(name: str, typ: str, supported: str, why: str = "") -> StageError:
    extra = f": {why}" if why else ""
    return StageError("convert", f"{name} ({typ}) is not supported by the mcusearch generator"
                                 f"{extra}; supported: {supported}")


def _shape(s) -> tuple[int, ...]:
    return tuple(int(d) for d in s)


def _activation_name(fn) -> str:
    return getattr(fn, "__name__", str(fn))


def graph_from_keras(model) -> Graph:
    """A float32 graph from a Keras 2 model whose layers form one chain (Sequential or functional)."""
    in_shape = model.input_shape
    if isinstance(in_shape, list) or len(model.outputs) != 1:
        raise StageError("convert", "the mcusearch generator needs a model with one input and "
                                    "one output")
    if any(d is None for d in in_shape[1:]):
        raise StageError("convert", f"input shape {in_shape} has unknown dimensions")
    shape = _shape(in_shape[1:])
    if len(shape) not in (1, 3):
        raise StageError("convert", f"input shape {in_shape}: the mcusearch generator takes "
                                    "NHWC images (rank 4) or vectors (rank 2)")
    graph = Graph(dtype="float32", input_shape=shape, source=str(getattr(model, "name", "")))
    prev = model.inputs[0]
    # Keras tensors (by id) that an Add may still take: -> (the op computing it or None for the
    # model input, that op's act when the tensor was its output: a later fused clamp changes it)
    earlier: dict[int, tuple[Op | None, tuple]] = {id(prev): (None, ())}
    for layer in model.layers:
        typ = type(layer).__name__
        if typ == "InputLayer":
            continue
        try:
            linp = layer.input
        except (AttributeError, ValueError) as e:  # a shared or unconnected layer
            raise _unsupported(layer.name, typ, SUPPORTED_KERAS, f"not a single chain ({e})")
        skip = None
        if typ == "Add" and isinstance(linp, (list, tuple)) and len(linp) == 2 and \
                any(t is prev for t in linp):
            other = linp[1] if linp[0] is prev else linp[0]
            if other is prev or id(other) not in earlier:
                raise _unsupported(layer.name, typ, SUPPORTED_KERAS, "needs the previous layer's "
                                   "output and an earlier tensor")
            skip, act_then = earlier[id(other)]
            if skip is not None and getattr(skip, "act", ()) != act_then:
                raise _unsupported(layer.name, typ, SUPPORTED_KERAS, "the residual tensor is taken "
                                   "before an activation that was fused into its layer")
            if _shape(other.shape[1:]) != shape:
                raise _unsupported(layer.name, typ, SUPPORTED_KERAS, "inputs of different shapes")
        elif isinstance(linp, (list, tuple)) or linp is not prev:
            raise _unsupported(layer.name, typ, SUPPORTED_KERAS,
                               "the model is not a single chain of layers")
        prev = layer.output
        if layer.dtype not in (None, "float32"):
            raise _unsupported(layer.name, typ, SUPPORTED_KERAS, f"dtype {layer.dtype}")
        if typ == "Add":
            if skip is None and not isinstance(linp, (list, tuple)):
                raise _unsupported(layer.name, typ, SUPPORTED_KERAS, "needs two inputs")
            graph.ops.append(Add(layer.name, shape, shape, skip=skip))
        else:
            _keras_layer(graph, layer, typ, shape)
        last = next((op for op in reversed(graph.ops) if not isinstance(op, Reshape)), None)
        if last is not None and (not graph.ops or not isinstance(graph.ops[-1], Reshape)):
            earlier[id(prev)] = (last, getattr(last, "act", ()))
        shape = graph.ops[-1].out_shape if graph.ops else shape
        out = _shape(layer.output_shape[1:])
        if out != shape:
            raise StageError("convert", f"{layer.name} ({typ}): computed output shape {shape} "
                                        f"differs from Keras' {out}")
    if not graph.compute_ops:
        raise StageError("convert", "the model has no layer to compute")
    return graph


def _keras_layer(graph: Graph, layer, typ: str, shape: tuple[int, ...]) -> None:
    name = layer.name
    cfg = layer.get_config()
    if typ in _KERAS_IDENTITY:
        return
    if typ in ("Conv2D", "DepthwiseConv2D"):
        if len(shape) != 3 or cfg.get("data_format", "channels_last") != "channels_last":
            raise _unsupported(name, typ, SUPPORTED_KERAS, "needs a channels-last H x W x C input")
        extra = "groups" if typ == "Conv2D" else "depth_multiplier"
        if tuple(cfg.get("dilation_rate", (1, 1))) != (1, 1) or cfg.get(extra, 1) != 1:
            raise _unsupported(name, typ, SUPPORTED_KERAS, f"dilation and {extra} must be 1")
        act = _activation_name(layer.activation)
        if act not in _KERAS_CLAMPS:
            raise _unsupported(name, typ, SUPPORTED_KERAS, f"activation {act!r}")
        w = layer.get_weights()
        kernel = np.asarray(w[0], np.float32)          # Conv2D: HWIO; depthwise: [KH][KW][C][1]
        bias = np.asarray(w[1], np.float32) if layer.use_bias else None
        (kh, kw), (sh, sw) = kernel.shape[:2], tuple(cfg["strides"])
        pad_mode = cfg["padding"]
        if pad_mode == "same":
            oh, pt = same_padding(shape[0], kh, sh)
            ow, pl = same_padding(shape[1], kw, sw)
        elif pad_mode == "valid":
            oh, ow, pt, pl = valid_size(shape[0], kh, sh), valid_size(shape[1], kw, sw), 0, 0
        else:
            raise _unsupported(name, typ, SUPPORTED_KERAS, f"padding {pad_mode!r}")
        common = dict(bias=bias, stride=(int(sh), int(sw)), padding=pad_mode, pad=(pt, pl),
                      act=_KERAS_CLAMPS[act])
        if typ == "Conv2D":
            graph.ops.append(Conv2D(name, shape, (oh, ow, int(kernel.shape[3])),
                                    weights=np.ascontiguousarray(kernel.transpose(3, 0, 1, 2)), **common))
        else:
            graph.ops.append(DepthwiseConv2D(name, shape, (oh, ow, shape[2]),
                                             weights=np.ascontiguousarray(kernel[..., 0][None]), **common))
        return
    if typ in ("MaxPooling2D", "MaxPool2D", "AveragePooling2D", "AvgPool2D"):
        if len(shape) != 3 or cfg.get("data_format", "channels_last") != "channels_last":
            raise _unsupported(name, typ, SUPPORTED_KERAS, "needs a channels-last H x W x C input")
        (ph, pw), (sh, sw), pad_mode = tuple(cfg["pool_size"]), tuple(cfg["strides"]), cfg["padding"]
        if pad_mode == "same":
            oh, pt = same_padding(shape[0], ph, sh)
            ow, pl = same_padding(shape[1], pw, sw)
        else:
            oh, ow, pt, pl = valid_size(shape[0], ph, sh), valid_size(shape[1], pw, sw), 0, 0
        cls = MaxPool2D if typ in ("MaxPooling2D", "MaxPool2D") else AvgPool2D
        graph.ops.append(cls(name, shape, (oh, ow, shape[2]), pool=(int(ph), int(pw)),
                             stride=(int(sh), int(sw)), padding=pad_mode, pad=(pt, pl)))
        return
    if typ in ("Flatten", "Reshape"):
        out = _shape(layer.output_shape[1:])
        graph.ops.append(Reshape(name, shape, out))
        return
    if typ == "Dense":
        if len(shape) != 1:
            raise _unsupported(name, typ, SUPPORTED_KERAS,
                               f"input of rank {len(shape) + 1}: add a Flatten before it")
        act = _activation_name(layer.activation)
        if act not in _KERAS_CLAMPS and act != "softmax":
            raise _unsupported(name, typ, SUPPORTED_KERAS, f"activation {act!r}")
        w = layer.get_weights()
        kernel = np.asarray(w[0], np.float32)                     # [in][out]
        bias = np.asarray(w[1], np.float32) if layer.use_bias else None
        graph.ops.append(Dense(name, shape, (int(kernel.shape[1]),),
                               weights=np.ascontiguousarray(kernel.T), bias=bias,
                               act=_KERAS_CLAMPS.get(act, _KERAS_CLAMPS["linear"])))
        if act == "softmax":
            graph.ops.append(Softmax(f"{name}/softmax", graph.ops[-1].out_shape,
                                     graph.ops[-1].out_shape))
        return
    if typ in ("ReLU", "Activation", "Softmax"):
        if typ == "ReLU":
            mv = cfg.get("max_value")
            if float(cfg.get("negative_slope", 0.0)) != 0.0 or float(cfg.get("threshold", 0.0)) != 0.0:
                raise _unsupported(name, typ, SUPPORTED_KERAS, "negative_slope and threshold must be 0")
            act, clamp = "relu", (0.0, math.inf if mv is None else float(mv))
        elif typ == "Softmax":
            act, clamp = "softmax", None
            if cfg.get("axis", -1) not in (-1, [-1]):
                raise _unsupported(name, typ, SUPPORTED_KERAS, "softmax must be over the last axis")
        else:
            act = _activation_name(layer.activation)
            clamp = _KERAS_CLAMPS.get(act)
            if clamp is None and act != "softmax":
                raise _unsupported(name, typ, SUPPORTED_KERAS, f"activation {act!r}")
        if act == "softmax":
            if len(shape) != 1:
                raise _unsupported(name, typ, SUPPORTED_KERAS, "softmax needs a flat input")
            graph.ops.append(Softmax(name, shape, shape))
            return
        if clamp == (-math.inf, math.inf):
            return
        # Fuse into the last computing op (a Reshape in between changes nothing element-wise).
        target = next((op for op in reversed(graph.ops) if not isinstance(op, Reshape)), None)
        if isinstance(target, (Conv2D, DepthwiseConv2D, Dense, MaxPool2D, AvgPool2D, Add)):
            target.act = (max(target.act[0], clamp[0]), min(target.act[1], clamp[1]))
        else:
            graph.ops.append(Clamp(name, shape, shape, act=clamp))
        return
    raise _unsupported(name, typ, SUPPORTED_KERAS)


# ---- TFLite front end -------------------------------------------------------------------------

def _schema():
    from tensorflow.lite.python import schema_py_generated as schema
    return schema


def _enum_names(cls) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


def _op_name(tensor_names: list, fallback: str) -> str:
    """The Keras layer name in TFLite tensor names: 'sequential/conv2d_1/Relu;...' -> 'conv2d_1'.

    Tries the op's weights first (a fused ReLU layer names the output tensor, and the model's
    final output tensor is just 'StatefulPartitionedCall:0'), then its output tensor.
    """
    for name in tensor_names:
        s = name.decode() if isinstance(name, bytes) else str(name)
        parts = [p for p in s.split(";")[0].split("/") if p]
        if len(parts) >= 3:
            return parts[-2]
        if len(parts) == 2:
            return parts[1] if parts[0].startswith(("sequential", "model", "functional")) else parts[0]
    return fallback


def graph_from_tflite(path: Path | str) -> Graph:
    """An int8 graph from a full-integer TFLite model (int8 input and output tensors)."""
    schema = _schema()
    raw = Path(path).read_bytes()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(raw, 0))
    if len(model.subgraphs) != 1:
        raise StageError("convert", f"{path}: {len(model.subgraphs)} subgraphs; the mcusearch "
                                    "generator takes one")
    sg = model.subgraphs[0]
    op_names = _enum_names(schema.BuiltinOperator)
    act_names = _enum_names(schema.ActivationFunctionType)
    t_int8, t_int32 = schema.TensorType.INT8, schema.TensorType.INT32

    def tensor(i):
        return sg.tensors[i]

    def data(i, dtype):
        t = tensor(i)
        buf = model.buffers[t.buffer]
        if getattr(buf, "offset", 0) and buf.offset > 1:
            b = raw[buf.offset: buf.offset + buf.size]
        elif buf.data is not None:
            b = np.asarray(buf.data, dtype=np.uint8).tobytes()
        else:
            raise StageError("convert", f"tensor {t.name!r} has no constant data")
        return np.frombuffer(b, dtype=dtype).reshape(_shape(t.shape)).copy()

    def qparams(i):
        q = tensor(i).quantization
        if q is None or q.scale is None or len(q.scale) == 0:
            raise StageError("convert", f"tensor {tensor(i).name!r} is not quantised")
        return (np.asarray(q.scale, np.float32), np.asarray(q.zeroPoint, np.int64))

    def shape_nb(i):  # shape without the batch dimension
        s = _shape(tensor(i).shape)
        if not s or s[0] != 1:
            raise StageError("convert", f"tensor {tensor(i).name!r} shape {s}: batch must be 1")
        return s[1:]

    if len(sg.inputs) != 1 or len(sg.outputs) != 1:
        raise StageError("convert", "the mcusearch generator needs a model with one input and one output")
    inp = int(sg.inputs[0])
    if tensor(inp).type != t_int8 or tensor(model.subgraphs[0].outputs[0]).type != t_int8:
        raise StageError("convert", f"{path}: input and output must be int8 (convert with "
                                    "inference_input_type/inference_output_type = tf.int8)")
    in_scale, in_zp = qparams(inp)
    in_shape = shape_nb(inp)
    if len(in_shape) not in (1, 3):
        raise StageError("convert", f"input shape {in_shape}: NHWC images or vectors only")
    graph = Graph(dtype="int8", input_shape=in_shape, input_scale=float(in_scale[0]),
                  input_zero_point=int(in_zp[0]), source=str(path))

    cur = inp
    producers: dict[int, Op | None] = {inp: None}     # tensor -> the op computing it (None: input)
    n_ops = len(sg.operators)
    for k, op in enumerate(sg.operators):
        code = model.operatorCodes[op.opcodeIndex]
        opname = op_names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
        outs = [int(o) for o in op.outputs]
        ins = [int(i) for i in op.inputs]
        weights = [tensor(ins[1]).name] if len(ins) > 1 and ins[1] >= 0 else []
        name = _op_name(weights + [tensor(o).name for o in outs[:1]], f"op{k}")
        if opname == "CUSTOM":
            opname = code.customCode.decode() if code.customCode else "CUSTOM"
        if opname not in ("CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D", "ADD",
                          "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"):
            raise _unsupported(name, opname, SUPPORTED_TFLITE)
        if opname == "ADD":    # no weights: the layer name is in the output tensor's ('.../add')
            out_name = tensor(outs[0]).name
            out_name = out_name.decode() if isinstance(out_name, bytes) else str(out_name)
            parts = [p for p in out_name.split(";") if p.lower().endswith("/add")] or [out_name]
            name = _op_name(parts, f"op{k}")
        if opname == "ADD" and len(ins) == 2 and ins[1] == cur and ins[0] != cur:
            ins = [ins[1], ins[0]]                   # the chain input first, the residual second
        if not ins or ins[0] != cur or len(outs) != 1:
            raise _unsupported(name, opname, SUPPORTED_TFLITE, "the model is not a single chain")
        out = outs[0]
        if tensor(out).type != t_int8:
            raise _unsupported(name, opname, SUPPORTED_TFLITE, "output is not int8")
        shape, oshape = shape_nb(cur), shape_nb(out)
        opts = op.builtinOptions

        def fused(opts=opts):
            a = act_names.get(getattr(opts, "fusedActivationFunction", 0), "?")
            if a not in ("NONE", "RELU", "RELU6", "RELU_N1_TO_1"):
                raise _unsupported(name, opname, SUPPORTED_TFLITE, f"fused activation {a}")
            return a

        if opname == "SOFTMAX":
            if k != n_ops - 1 or len(shape) != 1:
                raise _unsupported(name, opname, SUPPORTED_TFLITE,
                                   "int8 softmax is only taken as the last op, over a vector")
            (s_in,), _ = qparams(cur)
            (s_out,), (zp_out,) = qparams(out)
            beta = float(getattr(opts, "beta", 1.0)) if opts is not None else 1.0
            prev = next((o.name for o in reversed(graph.ops) if not isinstance(o, Reshape)), name)
            graph.ops.append(Softmax(f"{prev}/softmax", shape, oshape,         # as from Keras
                                     table=tflite_softmax_table(float(s_in), beta),
                                     output_scale=float(s_out), output_zero_point=int(zp_out)))
            graph.output_scale, graph.output_zero_point = float(s_out), int(zp_out)
            graph.output_tensor = cur = out
            producers[out] = graph.ops[-1]
            continue
        if opname == "RESHAPE":
            graph.ops.append(Reshape(name, shape, oshape))
            graph.output_tensor = cur = out
            producers[out] = graph.ops[-1]
            continue

        s_in, zp_in = qparams(cur)
        s_out, zp_out = qparams(out)
        s_in, zp_in, s_out, zp_out = float(s_in[0]), int(zp_in[0]), float(s_out[0]), int(zp_out[0])
        act = activation_range_int8(fused(), s_out, zp_out)

        if opname == "ADD":
            if len(ins) != 2 or ins[1] not in producers or isinstance(producers[ins[1]], Reshape):
                raise _unsupported(name, opname, SUPPORTED_TFLITE, "needs the previous op's output "
                                   "and an earlier tensor")
            if shape_nb(ins[1]) != shape or oshape != shape:
                raise _unsupported(name, opname, SUPPORTED_TFLITE, "inputs of different shapes")
            s2, zp2 = qparams(ins[1])
            s2, zp2 = float(s2[0]), int(zp2[0])
            q = add_quant(s_in, zp_in, s2, zp2, s_out, zp_out)
            graph.ops.append(Add(name, shape, oshape, skip=producers[ins[1]], act=act, quant=q))
            graph.output_scale, graph.output_zero_point = s_out, zp_out
            graph.output_tensor = cur = out
            producers[out] = graph.ops[-1]
            continue

        if opname in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            if len(shape) != 3:
                raise _unsupported(name, opname, SUPPORTED_TFLITE, "needs an H x W x C input")
            if (s_in, zp_in) != (s_out, zp_out):
                raise _unsupported(name, opname, SUPPORTED_TFLITE, "input and output quantisation differ")
            ph, pw, sh, sw = opts.filterHeight, opts.filterWidth, opts.strideH, opts.strideW
            pads = _tflite_padding(opts.padding, shape, (ph, pw), (sh, sw), schema)
            cls = MaxPool2D if opname == "MAX_POOL_2D" else AvgPool2D
            graph.ops.append(cls(name, shape, oshape, pool=(ph, pw), stride=(sh, sw),
                                 padding=pads[0], pad=pads[2], act=act))
            _check_shape(graph.ops[-1], pads[1])
        else:
            w_idx = ins[1]
            b_idx = ins[2] if len(ins) > 2 else -1
            if tensor(w_idx).type != t_int8:
                raise _unsupported(name, opname, SUPPORTED_TFLITE, "weights are not int8 "
                                   "(hybrid/dynamic-range models are not full-integer)")
            w = data(w_idx, np.int8)
            w_scale, w_zp = qparams(w_idx)
            if np.any(w_zp != 0):
                raise _unsupported(name, opname, SUPPORTED_TFLITE, "weights are not symmetric")
            bias = None
            if b_idx >= 0:
                if tensor(b_idx).type != t_int32:
                    raise _unsupported(name, opname, SUPPORTED_TFLITE, "bias is not int32")
                bias = data(b_idx, np.int32).reshape(-1)
            n_out = int(w.shape[0])
            if opname == "DEPTHWISE_CONV_2D":
                if len(shape) != 3:
                    raise _unsupported(name, opname, SUPPORTED_TFLITE, "needs an H x W x C input")
                if (opts.dilationHFactor, opts.dilationWFactor) != (1, 1):
                    raise _unsupported(name, opname, SUPPORTED_TFLITE, "dilation must be 1")
                if w.ndim != 4 or w.shape[0] != 1 or w.shape[3] != shape[2] or oshape[2] != shape[2]:
                    raise _unsupported(name, opname, SUPPORTED_TFLITE,
                                       f"depth_multiplier must be 1 (weights {w.shape}, input {shape})")
                n_out = int(w.shape[3])
                # PopulateConvolutionQuantizationParams, as for CONV_2D
                scales = np.broadcast_to(w_scale, (n_out,))
                mults = [quantize_multiplier(float(np.float64(s_in) * np.float64(s) / np.float64(s_out)))
                         for s in scales]
                sh, sw = opts.strideH, opts.strideW
                pads = _tflite_padding(opts.padding, shape, w.shape[1:3], (sh, sw), schema)
                graph.ops.append(DepthwiseConv2D(name, shape, oshape, weights=w, bias=bias,
                                                 stride=(sh, sw), padding=pads[0], pad=pads[2],
                                                 act=act,
                                                 requant=_requant(zp_in, zp_out, s_out, mults)))
                _check_shape(graph.ops[-1], pads[1])
            elif opname == "CONV_2D":
                if len(shape) != 3:
                    raise _unsupported(name, opname, SUPPORTED_TFLITE, "needs an H x W x C input")
                if (opts.dilationHFactor, opts.dilationWFactor) != (1, 1):
                    raise _unsupported(name, opname, SUPPORTED_TFLITE, "dilation must be 1")
                if w.shape[3] != shape[2]:
                    raise _unsupported(name, opname, SUPPORTED_TFLITE, "grouped convolution")
                # PopulateConvolutionQuantizationParams: double(s_in) * double(s_w) / double(s_out)
                scales = np.broadcast_to(w_scale, (n_out,))
                mults = [quantize_multiplier(float(np.float64(s_in) * np.float64(s) / np.float64(s_out)))
                         for s in scales]
                sh, sw = opts.strideH, opts.strideW
                pads = _tflite_padding(opts.padding, shape, w.shape[1:3], (sh, sw), schema)
                graph.ops.append(Conv2D(name, shape, oshape, weights=w, bias=bias, stride=(sh, sw),
                                        padding=pads[0], pad=pads[2], act=act,
                                        requant=_requant(zp_in, zp_out, s_out, mults)))
                _check_shape(graph.ops[-1], pads[1])
            else:  # FULLY_CONNECTED
                if getattr(opts, "weightsFormat", 0) != 0:
                    raise _unsupported(name, opname, SUPPORTED_TFLITE, "shuffled weights")
                if int(np.prod(shape)) != int(w.shape[1]):
                    raise _unsupported(name, opname, SUPPORTED_TFLITE, f"input {shape} vs weights "
                                       f"{w.shape}")
                if len(w_scale) > 1:
                    mults = [quantize_multiplier(float(np.float64(s_in) * np.float64(s) / np.float64(s_out)))
                             for s in w_scale]
                else:
                    # GetQuantizedConvolutionMultipler: the product is taken in float32 first.
                    prod = np.float32(s_in) * np.float32(w_scale[0])
                    mults = [quantize_multiplier(float(np.float64(prod) / np.float64(s_out)))]
                graph.ops.append(Dense(name, (int(np.prod(shape)),), (n_out,), weights=w, bias=bias,
                                       act=act, requant=_requant(zp_in, zp_out, s_out, mults)))
                if int(np.prod(oshape)) != n_out:
                    raise StageError("convert", f"{name} ({opname}): output shape {oshape}")
        graph.output_scale, graph.output_zero_point = s_out, zp_out
        graph.output_tensor = out
        cur = out
        producers[out] = graph.ops[-1]

    if cur != int(sg.outputs[0]):
        raise StageError("convert", f"{path}: the last op's output is not the model's output")
    if not graph.compute_ops:
        raise StageError("convert", f"{path}: the model has no op to compute")
    return graph


def _requant(zp_in: int, zp_out: int, s_out: float, mults: list[tuple[int, int]]) -> Requant:
    return Requant(input_zero_point=zp_in, output_zero_point=zp_out, output_scale=s_out,
                   multiplier=np.array([m for m, _ in mults], np.int32),
                   shift=np.array([s for _, s in mults], np.int32))


def _tflite_padding(padding: int, shape, kernel, stride, schema):
    """-> (mode, expected (out_h, out_w), (pad_top, pad_left)) as TFLite's ComputePaddingHeightWidth."""
    kh, kw = int(kernel[0]), int(kernel[1])
    sh, sw = int(stride[0]), int(stride[1])
    if padding == schema.Padding.SAME:
        oh, pt = same_padding(shape[0], kh, sh)
        ow, pl = same_padding(shape[1], kw, sw)
        return "same", (oh, ow), (pt, pl)
    return "valid", (valid_size(shape[0], kh, sh), valid_size(shape[1], kw, sw)), (0, 0)


def _check_shape(op: Op, expected_hw: tuple[int, int]) -> None:
    if tuple(op.out_shape[:2]) != tuple(expected_hw):
        raise StageError("convert", f"{op.name} ({op.kind}): output shape {op.out_shape} does not "
                                    f"match the padding/stride ({expected_hw})")
