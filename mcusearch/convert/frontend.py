"""Front ends of the mcusearch generator: a ``.tflite`` flatbuffer (float32 or full-integer int8)
or a Keras model -> :class:`~mcusearch.convert.graph.Graph`.

A Keras model is lowered by TensorFlow's own TFLite converter first (:func:`graph_from_keras`:
batch 1, recurrent layers unrolled, no optimisation), so the graph holds what TFLite would run:
BatchNormalization folded into the convolution or dense layer before it, ZeroPadding as PAD,
GlobalAveragePooling as MEAN, Conv1D as a Conv2D over a 1 x T x C view, Dropout gone. Once the
graph is read, :func:`~mcusearch.convert.rows1d.to_columns` turns such 1 x T views into T x 1
(the same bytes), so that the row planner can stream 1-D models.

:class:`Reader` walks the operators in their execution order. The built-in ops of the generator
(convolutions, depthwise convolutions, fully connected layers, pools, same-shape ADD, reshapes,
softmax, stand-alone float clamps) are read here; every other operator goes to the rule that an
op plug-in registered for it (:mod:`mcusearch.convert.ops`). An operator that no rule takes is an
error that names the layer, the operator, the dtype and what would work instead.
"""
from __future__ import annotations

import math
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import mcusearch  # noqa: F401  (selects tf-keras before TensorFlow is imported)
from mcusearch.convert.graph import (Add, AvgPool2D, Clamp, Conv2D, Dense, DepthwiseConv2D, Graph,
                                     MaxPool2D, Op, Reshape, Requant, Softmax, Tensor,
                                     dilate_kernel)
from mcusearch.convert.ops import load_plugins
from mcusearch.convert.quant import (activation_range_int8, add_quant, quantize_multiplier,
                                     quantized_convolution_multiplier, same_padding,
                                     tflite_softmax_table, valid_size)
from mcusearch.convert.rows1d import to_columns, to_rows
from mcusearch.errors import StageError

# What to try instead, by TFLite operator, in the error for an operator no rule takes.
_INSTEAD = {
    "WHILE": "a recurrent layer that TensorFlow did not unroll: give the sequence a fixed length "
             "(the tool unrolls LSTM/GRU layers of a Keras model)",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "give the Keras model (the tool unrolls LSTM layers) instead "
                                    "of a .tflite with a fused LSTM",
    "CUSTOM": "a custom operator: replace the layer with built-in Keras layers",
    "DEQUANTIZE": "a hybrid or partly float int8 model: quantise it fully (int8 input/output, "
                  "TFLITE_BUILTINS_INT8)",
}
_DEFAULT_INSTEAD = ("replace the layer with one the generator takes (README.md lists them under "
                    "\"TFLite operators taken\"), or try the converter aidge (float32)")


def _schema():
    from tensorflow.lite.python import schema_py_generated as schema
    return schema


def _enum_names(cls) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


def _decode(name) -> str:
    return name.decode() if isinstance(name, bytes) else str(name)


# The last part of a TF operator's parameter tensor ('se/squeeze/Mean/reduction_indices'), named
# after the operator it feeds: dropped before the layer is read from the name.
_PARAM_TENSOR = re.compile(r"(reduction_indices|paddings|ExpandDims|size|shape|Const|perm|axis|"
                           r"multiples|begin|end|strides)(_\d+)?")


def _layer_name(tensor_names: list, fallback: str) -> str:
    """The Keras layer name in TFLite tensor names: 'sequential/conv2d_1/Relu;...' -> 'conv2d_1'.

    Tries the op's constant inputs first (a fused ReLU layer names the output tensor, and the
    model's final output tensor is just 'StatefulPartitionedCall:0'), then its output tensor. A
    parameter tensor's own part is dropped: 'model/pool/Max/reduction_indices' -> 'pool'.
    """
    for name in tensor_names:
        parts = [p for p in _decode(name).split(";")[0].split("/") if p]
        if len(parts) >= 3 and _PARAM_TENSOR.fullmatch(parts[-1]):
            parts = parts[:-1]
        if len(parts) >= 3:
            return parts[-2]
        if len(parts) == 2:
            return parts[1] if parts[0].startswith(("sequential", "model", "functional")) else parts[0]
    return fallback


@dataclass
class TfliteOp:
    """One TFLite operator as a rule sees it: tensor indices (-1: an absent optional input)."""

    index: int
    opname: str                     # the builtin name, e.g. "CONV_2D"
    name: str                       # the Keras layer name it came from (best effort)
    inputs: list[int]
    outputs: list[int]
    opts: object                    # the builtin options (object API), or None


class Reader:
    """Reads one ``.tflite`` model into a Graph; the API op rules use to read and add ops."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.schema = _schema()
        try:
            self.raw = self.path.read_bytes()
            self.model = self.schema.ModelT.InitFromObj(
                self.schema.Model.GetRootAsModel(self.raw, 0))
        except Exception as e:  # noqa: BLE001 - a damaged file is the user's input problem
            raise StageError("convert", f"{self.path}: not a readable .tflite model ({e})") from e
        if len(self.model.subgraphs) != 1:
            raise StageError("convert", f"{self.path}: {len(self.model.subgraphs)} subgraphs (control "
                                        "flow); the mcusearch generator takes one")
        self.sg = self.model.subgraphs[0]
        self._run_shapes: dict[int, tuple[int, ...]] | None = None
        # tensors a rule computed while reading (a FILL of a constant): read as constants
        self.folded: dict[int, np.ndarray] = {}
        t = self.schema.TensorType
        self._types = {t.FLOAT32: "float32", t.INT8: "int8", t.INT32: "int32", t.INT16: "int16",
                       t.UINT8: "uint8", t.INT64: "int64"}
        if len(self.sg.inputs) != 1 or len(self.sg.outputs) != 1:
            raise StageError("convert", "the mcusearch generator needs a model with one input and "
                                        "one output")
        inp, out = int(self.sg.inputs[0]), int(self.sg.outputs[0])
        dtype = self.type_of(inp)
        if dtype not in ("float32", "int8") or self.type_of(out) != dtype:
            raise StageError("convert", f"{self.path}: input {dtype} and output {self.type_of(out)}; "
                             "the generator takes float32 models and full-integer int8 models "
                             "(inference_input_type/inference_output_type = tf.int8)")
        in_shape = self.shape(inp)
        self.graph = Graph(dtype=dtype, input_shape=in_shape, input_id=inp, output_id=out,
                           source=str(self.path))
        if dtype == "int8":
            self.graph.input_scale, self.graph.input_zero_point = self.q(inp)
            self.graph.output_scale, self.graph.output_zero_point = self.q(out)
        self.tensor(inp)
        self.ops: list[TfliteOp] = []
        op_names = _enum_names(self.schema.BuiltinOperator)
        for k, op in enumerate(self.sg.operators or []):
            code = self.model.operatorCodes[op.opcodeIndex]
            opname = op_names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
            if opname == "CUSTOM" and code.customCode:
                opname = f"CUSTOM ({_decode(code.customCode)})"
            ins = [int(i) for i in (op.inputs if op.inputs is not None else [])]
            outs = [int(o) for o in (op.outputs if op.outputs is not None else [])]
            consts = [self.sg.tensors[i].name for i in ins[1:] if i >= 0 and self.is_const(i)]
            name = _layer_name(consts + [self.sg.tensors[o].name for o in outs[:1]], f"op{k}")
            self.ops.append(TfliteOp(k, opname, name, ins, outs, op.builtinOptions))

    # -- tensors ----------------------------------------------------------------------------------

    def type_of(self, i: int) -> str:
        return self._types.get(self.sg.tensors[i].type, f"type {self.sg.tensors[i].type}")

    def shape(self, i: int) -> tuple[int, ...]:
        """A tensor's shape without the batch (a leading 1 of a tensor of rank >= 2)."""
        s = self.full_shape(i)
        return s[1:] if len(s) >= 2 and s[0] == 1 else s

    def full_shape(self, i: int) -> tuple[int, ...]:
        """A tensor's shape, batch included (the frame TFLite's axes refer to): the file's, or
        where the file leaves dimensions unknown, the interpreter's for a batch of one
        (run_shapes: a leading unknown dimension is not always the batch, as in the int32 shape
        arithmetic of a LayerNormalization, whose rows are batch x steps); a StageError that names
        the fix where neither knows dimensions beyond the first."""
        t = self.sg.tensors[i]
        s = tuple(int(d) for d in (t.shape if t.shape is not None else []))
        sig = t.shapeSignature
        if sig is not None and any(int(d) < 0 for d in sig):
            run = self.run_shapes().get(i)
            if run is not None and min(run, default=0) >= 0:
                return run
            if any(int(d) < 0 for d in list(sig)[1:]):
                raise StageError("convert", f"tensor {_decode(t.name)!r} has unknown dimensions "
                                            f"{[int(d) for d in sig]}: give the model a fixed input "
                                            "shape and batch size (tf.keras.Input(shape, "
                                            "batch_size=1)) before converting it")
        return s

    def run_shapes(self) -> dict[int, tuple[int, ...]]:
        """Every tensor's shape as TFLite's interpreter computes it for a batch of one, in one
        inference on zeros (cached): the shapes a file leaves unknown. A Conv1DTranspose
        converted with an unknown batch computes its output shape at run time (SHAPE ->
        STRIDED_SLICE -> PACK -> TRANSPOSE_CONV), and every tensor after it is stored as
        [-1, -1, C]. Empty when the interpreter cannot run the model, or when the input's own
        dimensions beyond the batch are unknown (a sequence of any length: no one answer)."""
        if self._run_shapes is None:
            from mcusearch.model.evaluate import make_interpreter
            self._run_shapes = {}
            sig = self.sg.tensors[int(self.sg.inputs[0])].shapeSignature
            if sig is not None and any(int(d) < 0 for d in list(sig)[1:]):
                return self._run_shapes
            try:
                it = make_interpreter(self.raw)
                d = it.get_input_details()[0]
                shape = [1, *(int(x) for x in d["shape"][1:])]
                it.resize_tensor_input(d["index"], shape)
                it.allocate_tensors()
                it.set_tensor(d["index"], np.zeros(shape, d["dtype"]))
                it.invoke()
                self._run_shapes = {int(t["index"]): tuple(int(x) for x in t["shape"])
                                    for t in it.get_tensor_details()}
            except Exception:  # noqa: BLE001 - then the unknown dimensions are reported
                pass
        return self._run_shapes

    def is_const(self, i: int) -> bool:
        if i in self.folded:
            return True
        t = self.sg.tensors[i]
        buf = self.model.buffers[t.buffer]
        return bool((getattr(buf, "offset", 0) or 0) > 1 or
                    (buf.data is not None and len(buf.data) > 0))

    def const(self, i: int, dtype=None) -> np.ndarray:
        """The constant data of tensor ``i`` in its full shape (``dtype``: its own by default)."""
        if i in self.folded:
            return self.folded[i].astype(dtype or self.type_of(i))
        t = self.sg.tensors[i]
        buf = self.model.buffers[t.buffer]
        if (getattr(buf, "offset", 0) or 0) > 1:
            b = self.raw[buf.offset: buf.offset + buf.size]
        elif buf.data is not None and len(buf.data):
            b = np.asarray(buf.data, dtype=np.uint8).tobytes()
        else:
            raise StageError("convert", f"tensor {_decode(t.name)!r} has no constant data")
        dt = np.dtype(dtype or self.type_of(i))
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
        return np.frombuffer(b, dtype=dt).reshape(shape).copy()

    def q(self, i: int) -> tuple[float, int]:
        """(scale, zero point) of a per-tensor quantised tensor."""
        s, z = self.q_channels(i)
        if len(s) != 1:
            raise StageError("convert", f"tensor {_decode(self.sg.tensors[i].name)!r} is quantised "
                                        "per channel where one scale is needed")
        return float(s[0]), int(z[0])

    def q_channels(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        q = self.sg.tensors[i].quantization
        if q is None or q.scale is None or len(q.scale) == 0:
            raise StageError("convert", f"tensor {_decode(self.sg.tensors[i].name)!r} is not quantised")
        return np.asarray(q.scale, np.float32), np.asarray(q.zeroPoint, np.int64)

    def tensor(self, i: int) -> Tensor:
        """The graph's Tensor for activation ``i`` (registered on first use)."""
        g = self.graph
        if i not in g.tensors:
            t = Tensor(i, self.shape(i), _decode(self.sg.tensors[i].name))
            if g.dtype == "int8" and self.type_of(i) == "int8":
                t.scale, t.zero_point = self.q(i)
            g.tensors[i] = t
        return g.tensors[i]

    # -- ops --------------------------------------------------------------------------------------

    def add(self, op: Op, top: TfliteOp) -> Op:
        """Append ``op`` (which computes ``top``'s first output) to the graph."""
        out = top.outputs[0]
        want = self.graph.dtype
        if self.type_of(out) != want:
            raise self.unsupported(top, f"output is {self.type_of(out)} in a {want} model")
        for i in op.inputs:
            if i not in self.graph.tensors:
                raise self.unsupported(top, "reads a tensor no earlier op computes")
        self.tensor(out)
        op.output = out
        self.graph.ops.append(op)
        return op

    def act(self, top: TfliteOp, out: int | None = None) -> tuple:
        """The fused activation of ``top`` as a clamp in the graph's units."""
        names = _enum_names(self.schema.ActivationFunctionType)
        a = names.get(getattr(top.opts, "fusedActivationFunction", 0) if top.opts else 0, "?")
        if a not in ("NONE", "RELU", "RELU6", "RELU_N1_TO_1"):
            raise self.unsupported(top, f"fused activation {a}")
        if self.graph.dtype == "int8":
            s, z = self.q(top.outputs[0] if out is None else out)
            return activation_range_int8(a, s, z)
        return {"NONE": (-math.inf, math.inf), "RELU": (0.0, math.inf), "RELU6": (0.0, 6.0),
                "RELU_N1_TO_1": (-1.0, 1.0)}[a]

    def unsupported(self, top: TfliteOp, why: str = "") -> StageError:
        instead = _INSTEAD.get(top.opname.split(" ")[0], _DEFAULT_INSTEAD)
        why = f" ({why})" if why else ""
        return StageError("convert", f"layer {top.name}: TFLite op {top.opname}{why} is not supported "
                                     f"by the mcusearch generator for {self.graph.dtype}; {instead}")

    def read(self, columns: bool = True) -> Graph:
        """The graph; ``columns``: with 1-D maps seen as T x 1
        (:func:`~mcusearch.convert.rows1d.to_columns`), else as 1 x T rows, those TensorFlow
        left as columns included (:func:`~mcusearch.convert.rows1d.to_rows`), as the generators
        take it."""
        rules = load_plugins()
        for top in self.ops:
            fn = _BUILTIN.get(top.opname)
            if fn is None or not fn(self, top):
                rule = rules.get(top.opname)
                if rule is None:
                    raise self.unsupported(top)
                rule(self, top)
        graph = self.graph.finish()
        if columns:
            to_columns(graph)
        else:
            to_rows(graph)
        return graph


# ---- built-in rules: return False to pass the operator on to a plug-in rule ---------------------

def _geometry(r: Reader, top: TfliteOp, shape, kernel, stride):
    """-> (padding mode, (out_h, out_w), (pad_top, pad_left)) as TFLite's ComputePaddingHeightWidth."""
    kh, kw = int(kernel[0]), int(kernel[1])
    sh, sw = int(stride[0]), int(stride[1])
    if top.opts.padding == r.schema.Padding.SAME:
        oh, pt = same_padding(shape[0], kh, sh)
        ow, pl = same_padding(shape[1], kw, sw)
        return "same", (oh, ow), (pt, pl)
    return "valid", (valid_size(shape[0], kh, sh), valid_size(shape[1], kw, sw)), (0, 0)


def _check_hw(r: Reader, top: TfliteOp, want_hw, out_shape) -> None:
    if tuple(out_shape[:2]) != tuple(want_hw):
        raise r.unsupported(top, f"output shape {out_shape} does not match the padding/stride "
                                 f"({want_hw})")


def _hwc(r: Reader, top: TfliteOp, i: int) -> tuple[int, int, int]:
    s = r.shape(i)
    if len(s) != 3:
        raise r.unsupported(top, f"needs an H x W x C input, got {s}")
    return s


def _weights(r: Reader, top: TfliteOp, n_out: int, per_channel_dense: bool = False):
    """(weights, bias, requant or None) of a conv/dense operator in the graph's dtype.
    ``per_channel_dense``: a FULLY_CONNECTED, whose one weight scale keeps one multiplier."""
    w_idx = top.inputs[1]
    b_idx = top.inputs[2] if len(top.inputs) > 2 else -1
    if not r.is_const(w_idx):
        raise r.unsupported(top, "weights are not constant")
    if r.graph.dtype == "float32":
        if r.type_of(w_idx) != "float32":
            raise r.unsupported(top, f"{r.type_of(w_idx)} weights in a float32 model")
        w = r.const(w_idx, np.float32)
        bias = r.const(b_idx, np.float32).reshape(-1) if b_idx >= 0 else None
        if bias is not None and not np.any(bias):
            bias = None                 # TFLite adds zero biases to bias-free layers
        return w, bias, None
    if r.type_of(w_idx) != "int8":
        raise r.unsupported(top, "weights are not int8 (hybrid/dynamic-range models are not "
                                 "full-integer)")
    w = r.const(w_idx, np.int8)
    w_scale, w_zp = r.q_channels(w_idx)
    if np.any(w_zp != 0):
        raise r.unsupported(top, "weights are not symmetric")
    bias = None
    if b_idx >= 0:
        if r.type_of(b_idx) != "int32":
            raise r.unsupported(top, "bias is not int32")
        bias = r.const(b_idx, np.int32).reshape(-1)
    s_in, zp_in = r.q(top.inputs[0])
    s_out, zp_out = r.q(top.outputs[0])
    if per_channel_dense and len(w_scale) == 1:
        # FULLY_CONNECTED per tensor (GetQuantizedConvolutionMultipler): the product in float32
        mults = [quantized_convolution_multiplier(s_in, float(w_scale[0]), s_out)]
    else:
        # PopulateConvolutionQuantizationParams: double(s_in) * double(s_w) / double(s_out)
        mults = [quantize_multiplier(float(np.float64(s_in) * np.float64(s) / np.float64(s_out)))
                 for s in np.broadcast_to(w_scale, (n_out,))]
    rq = Requant(input_zero_point=zp_in, output_zero_point=zp_out, output_scale=s_out,
                 multiplier=np.array([m for m, _ in mults], np.int32),
                 shift=np.array([s for _, s in mults], np.int32))
    return w, bias, rq


def _conv(r: Reader, top: TfliteOp) -> bool:
    src = top.inputs[0]
    shape = _hwc(r, top, src)
    o = top.opts
    dilation = (int(o.dilationHFactor), int(o.dilationWFactor))
    if min(dilation) < 1:
        raise r.unsupported(top, f"dilation {dilation}")
    depthwise = top.opname == "DEPTHWISE_CONV_2D"
    wshape = r.sg.tensors[top.inputs[1]].shape
    n_out = int(wshape[3]) if depthwise else int(wshape[0])
    if not depthwise and int(wshape[3]) != shape[2]:
        raise r.unsupported(top, "grouped convolution")
    if depthwise and n_out % shape[2]:
        raise r.unsupported(top, f"depthwise weights {list(wshape)} for {shape[2]} channels")
    w, bias, rq = _weights(r, top, n_out)
    if dilation != (1, 1):                   # TFLite pads for the dilated kernel's extent too
        w = dilate_kernel(w, dilation)
    mode, hw, pad = _geometry(r, top, shape, w.shape[1:3], (o.strideH, o.strideW))
    out_shape = r.shape(top.outputs[0])
    _check_hw(r, top, hw, out_shape)
    cls = DepthwiseConv2D if depthwise else Conv2D
    r.add(cls(top.name, shape, out_shape, inputs=(src,), weights=w, bias=bias,
              stride=(o.strideH, o.strideW), padding=mode, pad=pad, act=r.act(top), requant=rq,
              dilation=dilation), top)
    return True


def _fully_connected(r: Reader, top: TfliteOp) -> bool:
    src = top.inputs[0]
    o = top.opts
    if o is not None and getattr(o, "weightsFormat", 0) != 0:
        raise r.unsupported(top, "shuffled weights")
    n_out, k = (int(d) for d in r.sg.tensors[top.inputs[1]].shape)
    in_len = int(np.prod(r.shape(src)))
    if in_len % k:
        raise r.unsupported(top, f"input {r.shape(src)} vs weights {n_out} x {k}")
    w, bias, rq = _weights(r, top, n_out, per_channel_dense=True)
    rows = in_len // k
    out_shape = r.shape(top.outputs[0])
    if int(np.prod(out_shape)) != rows * n_out:
        raise r.unsupported(top, f"output shape {out_shape}")
    if rows == 1:
        r.add(Dense(top.name, (k,), out_shape, inputs=(src,), weights=w, bias=bias, act=r.act(top),
                    requant=rq), top)
    else:   # one Dense per row: a 1 x 1 convolution over a 1 x rows x k view
        if rq is not None and len(rq.multiplier) == 1:
            rq.multiplier = np.repeat(rq.multiplier, n_out)
            rq.shift = np.repeat(rq.shift, n_out)
        r.add(Conv2D(top.name, (1, rows, k), (1, rows, n_out), inputs=(src,),
                     weights=w.reshape(n_out, 1, 1, k), bias=bias, act=r.act(top), requant=rq), top)
    return True


def _pool(r: Reader, top: TfliteOp) -> bool:
    src = top.inputs[0]
    shape = _hwc(r, top, src)
    o = top.opts
    if r.graph.dtype == "int8" and r.q(src) != r.q(top.outputs[0]):
        raise r.unsupported(top, "input and output quantisation differ")
    mode, hw, pad = _geometry(r, top, shape, (o.filterHeight, o.filterWidth), (o.strideH, o.strideW))
    out_shape = r.shape(top.outputs[0])
    _check_hw(r, top, hw, out_shape)
    cls = MaxPool2D if top.opname == "MAX_POOL_2D" else AvgPool2D
    r.add(cls(top.name, shape, out_shape, inputs=(src,), pool=(o.filterHeight, o.filterWidth),
              stride=(o.strideH, o.strideW), padding=mode, pad=pad, act=r.act(top)), top)
    return True


def _add(r: Reader, top: TfliteOp) -> bool:
    """Two computed tensors of the same shape; anything else (broadcasting, a constant operand)
    is a plug-in's."""
    a, b = top.inputs[:2]
    if r.is_const(a) or r.is_const(b) or r.shape(a) != r.shape(b) or \
            r.shape(a) != r.shape(top.outputs[0]):
        return False
    name = _layer_name([n for n in _decode(r.sg.tensors[top.outputs[0]].name).split(";")
                        if n.lower().endswith("/add")], top.name)
    shape = r.shape(a)
    q = None
    if r.graph.dtype == "int8":
        (sa, za), (sb, zb), (so, zo) = r.q(a), r.q(b), r.q(top.outputs[0])
        q = add_quant(sa, za, sb, zb, so, zo)
    r.add(Add(name, shape, shape, inputs=(a, b), act=r.act(top), quant=q), top)
    return True


def _reshape(r: Reader, top: TfliteOp) -> bool:
    """A reshape of an activation; an int32 one (shape arithmetic) or an int8 one that
    requantises is a plug-in's."""
    src = top.inputs[0]
    if r.type_of(src) == "int32":
        return False
    if r.graph.dtype == "int8" and r.q(src) != r.q(top.outputs[0]):
        return False
    r.add(Reshape(top.name, r.shape(src), r.shape(top.outputs[0]), inputs=(src,)), top)
    return True


def _softmax(r: Reader, top: TfliteOp) -> bool:
    src = top.inputs[0]
    shape = r.shape(src)
    beta = float(getattr(top.opts, "beta", 1.0)) if top.opts is not None else 1.0
    name = (r.graph.producer(src).name + "/softmax") if r.graph.producer(src) else top.name
    if r.graph.dtype == "float32":
        if beta != 1.0:
            raise r.unsupported(top, f"beta {beta}")
        r.add(Softmax(name, shape, shape, inputs=(src,)), top)
        return True
    s_in, _ = r.q(src)
    s_out, zp_out = r.q(top.outputs[0])
    r.add(Softmax(name, shape, shape, inputs=(src,), table=tflite_softmax_table(s_in, beta),
                  output_scale=s_out, output_zero_point=zp_out), top)
    return True


def _clamp(r: Reader, top: TfliteOp) -> bool:
    """A stand-alone float ReLU/ReLU6; int8 ones may requantise: a plug-in's (a look-up table)."""
    if r.graph.dtype != "float32":
        return False
    lo, hi = {"RELU": (0.0, math.inf), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0),
              "RELU_0_TO_1": (0.0, 1.0)}[top.opname]
    shape = r.shape(top.inputs[0])
    r.add(Clamp(top.name, shape, shape, inputs=(top.inputs[0],), act=(lo, hi)), top)
    return True


_BUILTIN = {
    "CONV_2D": _conv, "DEPTHWISE_CONV_2D": _conv, "FULLY_CONNECTED": _fully_connected,
    "MAX_POOL_2D": _pool, "AVERAGE_POOL_2D": _pool, "ADD": _add, "RESHAPE": _reshape,
    "SQUEEZE": _reshape, "EXPAND_DIMS": _reshape, "SOFTMAX": _softmax, "RELU": _clamp,
    "RELU6": _clamp, "RELU_N1_TO_1": _clamp, "RELU_0_TO_1": _clamp,
}


# ---- entry points -----------------------------------------------------------------------------

def graph_from_tflite(path: Path | str, columns: bool = True) -> Graph:
    """The graph of a float32 or full-integer int8 ``.tflite`` model (``columns``: see
    :meth:`Reader.read`)."""
    return Reader(path).read(columns)


def graph_from_keras(model, tflite_path: Path | str | None = None, columns: bool = True) -> Graph:
    """The float32 graph of a tf-keras model, through TensorFlow's TFLite converter (see the
    module docstring). ``tflite_path``: where to keep the float .tflite (else a temporary file);
    ``columns``: see :meth:`Reader.read`."""
    from mcusearch.model.quantize import to_float_tflite

    if tflite_path is not None:
        g = graph_from_tflite(to_float_tflite(model, tflite_path), columns)
    else:
        with tempfile.TemporaryDirectory(prefix="mcus-f32-") as d:
            g = graph_from_tflite(to_float_tflite(model, Path(d) / "model_f32.tflite"), columns)
    g.source = str(getattr(model, "name", "") or g.source)
    return g
