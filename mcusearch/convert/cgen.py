"""The reference mcusearch C generator (converter ``"mcusearch-ref"``): graph -> plan memory -> C.

The optimised generator (converter ``"mcusearch"``, :mod:`mcusearch.convert.fast`) shares its front
end (:func:`prepare`) and host references; this one calls the reference kernels, the correctness
oracle.

float32 models come from ``ModelResult.keras_path``, int8 ones from ``ModelResult.tflite_path``
(full-integer, int8 input and output). The generated ``model.c`` holds:

* weights, biases, multipliers and kernel parameters as ``static const`` data (flash);
* one statically sized activation arena (RAM, ``.bss``), used as two ping-pong buffers placed at
  its two ends: the output of computing op *j* goes at the start of the arena for even *j* and at
  its end for odd *j*, so an op's input and output never overlap. The model input and output stay
  in the caller's buffers, so

      arena_bytes = max over consecutive intermediate activations (a_j, a_j+1) of
                    pad4(bytes(a_j)) + pad4(bytes(a_j+1))      (or pad4(bytes(a_0)) if only one)

  where pad4 rounds up to a multiple of 4 bytes (word alignment for every buffer);
  a graph with residual Adds instead keeps every activation live from its op to its last reader
  (the next op or an Add) and places the buffers largest first at the lowest free offset;
* ``mcus_model_run``: one reference-kernel call per computing op, each wrapped in the hooks
  ``MCUS_LAYER_BEGIN(i)`` / ``MCUS_LAYER_END(i)`` (empty unless the harness defines them).

Expected outputs: float32 - Keras ``predict`` (softmax probabilities when the model ends in a
softmax), atol 1e-5, rtol 1e-4. int8 - the TFLite model's output (int8 softmax probabilities
when it ends in a softmax), compared bit-exactly with the TFLite interpreter's built-in kernels
(see :data:`TFLITE_RESOLVER`).
"""
from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcusearch.convert import Converter, ConvertResult, register
from mcusearch.convert.graph import (
    Add, AvgPool2D, Clamp, Conv2D, Dense, DepthwiseConv2D, Graph, MaxPool2D, Softmax,
    graph_from_keras, graph_from_tflite, quantize_input, tflite_depthwise_vector_channels,
)
from mcusearch.errors import StageError
from mcusearch.model import ModelResult

KERNELS_DIR = Path(__file__).resolve().parents[2] / "firmware" / "kernels"

# The int8 oracle: TFLite's built-in (optimised) kernels. Their requantisation - integer multiplier,
# SaturatingRoundingDoublingHighMul, rounding right shift with ties up - is MCUS_REQUANT_MODE 0 of
# the reference kernels (checked bit-exact on conv and dense layers with and without ReLU, TF 2.21).
# The default resolver would hand CONV_2D / FULLY_CONNECTED to XNNPACK, which requantises in
# float32 (round half to even) and differs by 1 LSB now and then; TFLite Micro / CMSIS-NN round
# ties of the final shift away from zero (MCUS_REQUANT_MODE 1). See firmware/kernels/mcus_kernels.h.
TFLITE_RESOLVER = "BUILTIN_WITHOUT_DEFAULT_DELEGATES"

FLOAT_ATOL, FLOAT_RTOL = 1e-5, 1e-4

_KERNEL_OF = {Conv2D: "conv2d", DepthwiseConv2D: "depthwise_conv2d", MaxPool2D: "maxpool2d",
              AvgPool2D: "avgpool2d", Dense: "dense", Softmax: "softmax", Clamp: "clamp", Add: "add"}


@dataclass
class MemoryPlan:
    arena_bytes: int
    offsets: list[int]          # byte offset in the arena of each computing op's output (-1: output)
    sizes: list[int]            # bytes of each computing op's output (unpadded)


def _pad4(n: int) -> int:
    return (n + 3) & ~3


def plan_memory(graph: Graph) -> MemoryPlan:
    """Place the intermediate activations at the two ends of one arena (see module docstring)."""
    elem = 4 if graph.dtype == "float32" else 1
    ops = graph.compute_ops
    sizes = [op.out_len * elem for op in ops]
    if any(isinstance(op, Add) for op in ops):
        return _plan_memory_residual(ops, sizes, [graph.skip_index(op) if isinstance(op, Add) else -1
                                                  for op in ops])
    inter = [_pad4(s) for s in sizes[:-1]]          # the last op writes the caller's output
    arena = max(inter, default=0)
    for a, b in zip(inter, inter[1:]):
        arena = max(arena, a + b)
    offsets = [0 if j % 2 == 0 else arena - inter[j] for j in range(len(inter))] + [-1]
    return MemoryPlan(arena_bytes=arena, offsets=offsets, sizes=sizes)


def _plan_memory_residual(ops, sizes: list[int], skips: list[int]) -> MemoryPlan:
    """A graph with residual Adds: op j's output is live from op j to its last reader (op j + 1,
    or an Add that takes it as its residual); buffers go largest first at the lowest offset that
    does not overlap a buffer live at the same time (an op's inputs and output never share bytes)."""
    n = len(ops)
    last = [j + 1 for j in range(n)]
    for k, s in enumerate(skips):
        if s >= 0:
            last[s] = max(last[s], k)
    placed: list[tuple[int, int, int, int]] = []      # (offset, size, first, last)
    offsets = [-1] * n
    for j in sorted(range(n - 1), key=lambda j: (-_pad4(sizes[j]), j)):
        size = _pad4(sizes[j])
        off = 0
        for o, sz, a, b in sorted(p for p in placed if not (p[3] < j or last[j] < p[2])):
            if off + size <= o:
                break
            off = max(off, o + sz)
        offsets[j] = off
        placed.append((off, size, j, last[j]))
    arena = max((o + sz for o, sz, _, _ in placed), default=0)
    return MemoryPlan(arena_bytes=arena, offsets=offsets, sizes=sizes)


# ---- C text helpers ---------------------------------------------------------------------------

def _c_float(v: float) -> str:
    if math.isinf(v):
        return "FLT_MAX" if v > 0 else "-FLT_MAX"
    if math.isnan(v):
        raise StageError("convert", "a weight or parameter is NaN")
    s = "%.9g" % v
    if "." not in s and "e" not in s:
        s += ".0"
    return s + "f"


def _c_array(ctype: str, name: str, values: np.ndarray, per_line: int) -> str:
    flat = np.asarray(values).reshape(-1)
    if ctype == "float":
        items = [_c_float(v) for v in flat.astype(np.float32).tolist()]
    else:
        items = [str(int(v)) for v in flat.tolist()]
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    body = ",\n    ".join(lines)
    return f"static const {ctype} {name}[{len(items)}] = {{\n    {body}\n}};\n"


def softmax_s8_fields(op: Softmax, table: str) -> dict:
    """mcus_softmax_s8_params_t's fields other than len (both generators)."""
    return dict(table=table, output_scale=_c_float(op.output_scale), zero_point=op.output_zero_point)


def _ident(name: str) -> str:
    return re.sub(r"\W", "_", name).strip("_") or "op"


def _act(graph: Graph, act) -> tuple[str, str]:
    if graph.dtype == "float32":
        return _c_float(float(act[0])), _c_float(float(act[1]))
    return str(int(act[0])), str(int(act[1]))


def _init(fields: dict, indent: str = "") -> str:
    """A C99 designated initializer: {"a": 1, "g": {"b": 2}} -> { .a = 1, .g = { .b = 2 } },
    wrapped at about 96 columns."""
    inner = indent + "    "
    parts = [f".{k} = {_init(v, inner) if isinstance(v, dict) else v}" for k, v in fields.items()]
    one_line = "{ " + ", ".join(parts) + " }"
    if len(one_line) + len(indent) <= 96 and "\n" not in one_line:
        return one_line
    lines, cur = [], ""
    for p in parts:
        if cur and ("\n" in p or len(inner) + len(cur) + len(p) + 2 > 96):
            lines.append(cur)
            cur = ""
        cur = f"{cur}, {p}" if cur else p
    lines.append(cur)
    return "{\n" + ",\n".join(inner + ln for ln in lines) + "\n" + indent + "}"


def _comment(text: str) -> str:
    return text.replace("*/", "* /")


def _shape_str(s) -> str:
    return "x".join(str(d) for d in s)


# ---- emission ---------------------------------------------------------------------------------

@dataclass
class Emitted:
    sources: list[Path]
    include_dirs: list[Path]
    arena_bytes: int
    layers: list[str]


def emit_c(graph: Graph, out_dir: Path, origin: str = "") -> Emitted:
    """Write ``out_dir/model.h`` and ``out_dir/model.c`` for ``graph``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    f32 = graph.dtype == "float32"
    ctype, sfx = ("float", "f32") if f32 else ("int8_t", "s8")
    plan = plan_memory(graph)
    ops = graph.compute_ops
    layers = [f"{op.name} ({op.kind})" for op in ops]

    data: list[str] = []
    calls: list[str] = []
    kernels: list[str] = []

    def buf(j: int) -> str:
        """Pointer to computing op j's output (j = -1: the model input)."""
        if j < 0:
            return "input"
        if plan.offsets[j] < 0:
            return "output"
        return (f"mcus_arena + {plan.offsets[j] // 4}" if f32
                else f"mcus_arena.b + {plan.offsets[j]}")

    for j, op in enumerate(ops):
        kname = f"{_KERNEL_OF[type(op)]}_{sfx}"
        if kname not in kernels:
            kernels.append(kname)
        pfx = f"l{j:02d}_{_ident(op.name)}"
        src, dst = buf(j - 1), buf(j)
        data.append(f"\n/* layer {j}: {_comment(op.name)} ({op.kind}) {_shape_str(op.in_shape)} -> "
                    f"{_shape_str(op.out_shape)}, {op.macs} MACs */\n")
        amin, amax = _act(graph, getattr(op, "act", (0, 0)))
        ptype = f"mcus_{kname}_params_t"
        fields: dict[str, object] = {}
        if isinstance(op, (Conv2D, DepthwiseConv2D, Dense)):
            data.append(_c_array(ctype, f"{pfx}_w", op.weights, 12 if f32 else 24))
            bias = "0"
            if op.bias is not None:
                data.append(_c_array("float" if f32 else "int32_t", f"{pfx}_b", op.bias, 8))
                bias = f"{pfx}_b"
            if isinstance(op, (Conv2D, DepthwiseConv2D)):
                kh, kw = op.kernel
                (ih, iw, ic), (oh, ow, oc) = op.in_shape, op.out_shape
                fields["g"] = dict(in_h=ih, in_w=iw, in_c=ic, out_h=oh, out_w=ow, out_c=oc,
                                   kernel_h=kh, kernel_w=kw, stride_h=op.stride[0],
                                   stride_w=op.stride[1], pad_top=op.pad[0], pad_left=op.pad[1])
            else:
                n_out, n_in = op.weights.shape
                fields.update(in_features=n_in, out_features=n_out)
            if f32:
                fields.update(act_min=amin, act_max=amax)
            else:
                rq = op.requant
                data.append(_c_array("int32_t", f"{pfx}_mult", rq.multiplier, 8))
                data.append(_c_array("int32_t", f"{pfx}_shift", rq.shift, 16))
                fields.update(input_offset=-rq.input_zero_point, output_offset=rq.output_zero_point,
                              act_min=amin, act_max=amax)
                if isinstance(op, Dense):
                    fields["per_channel"] = int(rq.per_channel)
                fields.update(multiplier=f"{pfx}_mult", shift=f"{pfx}_shift")
                if isinstance(op, DepthwiseConv2D):
                    fields["vector_channels"] = tflite_depthwise_vector_channels(op.out_shape[-1])
            call = f"mcus_{kname}(&{pfx}_p, {src}, {pfx}_w, {bias}, {dst});"
        elif isinstance(op, (MaxPool2D, AvgPool2D)):
            (ih, iw, c), (oh, ow, _) = op.in_shape, op.out_shape
            fields["g"] = dict(in_h=ih, in_w=iw, channels=c, out_h=oh, out_w=ow, pool_h=op.pool[0],
                               pool_w=op.pool[1], stride_h=op.stride[0], stride_w=op.stride[1],
                               pad_top=op.pad[0], pad_left=op.pad[1])
            fields.update(act_min=amin, act_max=amax)
            call = f"mcus_{kname}(&{pfx}_p, {src}, {dst});"
        elif isinstance(op, Add):
            fields["len"] = op.out_len
            skip = buf(graph.skip_index(op))
            if f32:
                fields.update(act_min=amin, act_max=amax)
            else:
                q = op.quant
                fields.update(input_offset=q.prev_offset, skip_offset=q.skip_offset,
                              output_offset=q.output_offset, left_shift=q.left_shift,
                              input_multiplier=q.prev_multiplier, input_shift=q.prev_shift,
                              skip_multiplier=q.skip_multiplier, skip_shift=q.skip_shift,
                              output_multiplier=q.output_multiplier, output_shift=q.output_shift,
                              act_min=amin, act_max=amax)
            call = f"mcus_{kname}(&{pfx}_p, {src}, {skip}, {dst});"
        elif isinstance(op, Softmax):
            fields["len"] = op.out_len
            if not f32:
                data.append(_c_array("float", f"{pfx}_t", op.table, 6))
                fields.update(softmax_s8_fields(op, f"{pfx}_t"))
            call = f"mcus_{kname}(&{pfx}_p, {src}, {dst});"
        elif isinstance(op, Clamp) and f32:
            fields.update(len=op.out_len, act_min=amin, act_max=amax)
            call = f"mcus_{kname}(&{pfx}_p, {src}, {dst});"
        else:
            raise StageError("convert", f"{op.name} ({op.kind}) has no {graph.dtype} kernel")
        data.append(f"static const {ptype} {pfx}_p = {_init(fields)};\n")
        calls.append(call)

    (out_dir / "model.h").write_text(model_h(graph, plan.arena_bytes, layers, "mcusearch-ref"))
    arena = ""
    if plan.arena_bytes:
        arena = (f"static float mcus_arena[{plan.arena_bytes // 4}];\n" if f32 else
                 f"static union {{\n    int32_t align_;\n    int8_t b[{plan.arena_bytes}];\n}} mcus_arena;\n")
    body = "\n".join(f"    MCUS_LAYER_BEGIN({j});\n    {c}\n    MCUS_LAYER_END({j});"
                     for j, c in enumerate(calls))
    text = (
        f"/* Generated by mcusearch (converter \"mcusearch-ref\"), {graph.dtype}, from "
        f"{_comment(origin or graph.source)}.\n"
        f" * {len(ops)} kernel calls, {graph.macs} MACs, {graph.params} parameters, "
        f"activation arena {plan.arena_bytes} bytes. Do not edit. */\n"
        "#include <float.h>\n#include <stdint.h>\n\n#include \"mcus_kernels.h\"\n#include \"model.h\"\n\n"
        "#if defined(__has_include)\n#if __has_include(\"mcus_profile.h\")\n"
        "#include \"mcus_profile.h\"\n#endif\n#endif\n"
        "#ifndef MCUS_LAYER_BEGIN\n#define MCUS_LAYER_BEGIN(i)\n#endif\n"
        "#ifndef MCUS_LAYER_END\n#define MCUS_LAYER_END(i)\n#endif\n\n"
        + "".join(data) + "\n"
        + (f"/* activations: two ping-pong buffers at the two ends of one arena */\n{arena}\n"
           if arena else "")
        + "void mcus_model_run(const mcus_input_t *input, mcus_output_t *output)\n{\n"
        + body + "\n}\n"
    )
    (out_dir / "model.c").write_text(text)
    sources = [out_dir / "model.c"] + [KERNELS_DIR / f"{k}.c" for k in kernels]
    return Emitted(sources=sources, include_dirs=[out_dir, KERNELS_DIR],
                   arena_bytes=plan.arena_bytes, layers=layers)


def model_h(graph: Graph, arena_bytes: int, layers: list[str], converter: str) -> str:
    """The generated model.h: the harness contract plus arena size, layer names and int8 scales."""
    ctype = "float" if graph.dtype == "float32" else "int8_t"
    names = ", ".join('"' + s.replace("\\", "/").replace('"', "'") + '"' for s in layers)
    q = ""
    if graph.dtype == "int8":
        q = (f"/* real = scale * (q - zero_point) */\n"
             f"#define MCUS_INPUT_SCALE {_c_float(graph.input_scale)}\n"
             f"#define MCUS_INPUT_ZERO_POINT ({graph.input_zero_point})\n"
             f"#define MCUS_OUTPUT_SCALE {_c_float(graph.output_scale)}\n"
             f"#define MCUS_OUTPUT_ZERO_POINT ({graph.output_zero_point})\n")
    return (
        f"/* Generated by mcusearch (converter \"{converter}\"). Do not edit. */\n"
        "#ifndef MCUS_MODEL_H\n#define MCUS_MODEL_H\n\n#include <stdint.h>\n\n"
        f"#define MCUS_INPUT_LEN {graph.input_len}\n"
        f"#define MCUS_OUTPUT_LEN {graph.output_len}\n"
        f"#define MCUS_ARENA_BYTES {arena_bytes}\n"
        f"#define MCUS_N_LAYERS {len(layers)}\n"
        f"#define MCUS_LAYER_NAMES {{ {names} }}\n"
        + q +
        f"\ntypedef {ctype} mcus_input_t;\ntypedef {ctype} mcus_output_t;\n\n"
        "void mcus_model_run(const mcus_input_t *input, mcus_output_t *output);\n\n"
        "#endif /* MCUS_MODEL_H */\n"
    )


# ---- host references --------------------------------------------------------------------------

def load_keras(path: Path):
    import tensorflow as tf

    try:
        return tf.keras.models.load_model(str(path), compile=False)
    except Exception as e:  # noqa: BLE001 - any loader failure is the user's model problem
        raise StageError("convert", f"cannot load the Keras model {path}: {e}") from e


def tflite_interpreter(path: Path, resolver: str = TFLITE_RESOLVER):
    """A TFLite interpreter that keeps every tensor, on the kernels the firmware matches."""
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        it = tf.lite.Interpreter(
            model_path=str(path), experimental_preserve_all_tensors=True,
            experimental_op_resolver_type=getattr(tf.lite.experimental.OpResolverType, resolver))
    it.allocate_tensors()
    return it


def tflite_tensor(path: Path, inputs: np.ndarray, tensor: int,
                  resolver: str = TFLITE_RESOLVER) -> np.ndarray:
    """Run ``inputs`` (N, input_len), one at a time, and return tensor ``tensor``, (N, len)."""
    it = tflite_interpreter(path, resolver)
    d = it.get_input_details()[0]
    rows = []
    for row in inputs:
        it.set_tensor(d["index"], np.asarray(row, dtype=d["dtype"]).reshape(d["shape"]))
        it.invoke()
        rows.append(np.array(it.get_tensor(tensor)).reshape(-1))
    return np.stack(rows)


# ---- the converter ----------------------------------------------------------------------------

@dataclass
class Prepared:
    """What every mcusearch generator needs before emitting C: the graph and the host reference."""

    graph: Graph
    inputs: np.ndarray
    expected: np.ndarray
    atol: float
    rtol: float
    meaning: str
    origin: str


def prepare(model: ModelResult) -> Prepared:
    """The graph of ``model``, its probe inputs (quantised for int8) and the host model's outputs."""
    x = np.asarray(model.probe_inputs, dtype=np.float32)
    if model.quantization == "float32":
        keras_model = load_keras(model.keras_path)
        graph = graph_from_keras(keras_model)
        x = _shaped(x, graph)
        inputs = x.reshape(len(x), -1).astype(np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = np.asarray(keras_model.predict(x, verbose=0), np.float32)
        expected = expected.reshape(len(x), -1)
        atol, rtol = FLOAT_ATOL, FLOAT_RTOL
        last = graph.compute_ops[-1]
        meaning = ("softmax probabilities" if isinstance(last, Softmax)
                   else f"float32 outputs of {last.name} ({last.kind})")
        origin = str(model.keras_path)
    elif model.quantization == "int8":
        if model.tflite_path is None:
            raise StageError("convert", "int8 model without a .tflite file")
        graph = graph_from_tflite(model.tflite_path)
        x = _shaped(x, graph)
        inputs = quantize_input(x, graph.input_scale, graph.input_zero_point).reshape(len(x), -1)
        expected = tflite_tensor(model.tflite_path, inputs, graph.output_tensor).astype(np.int8)
        atol, rtol = 0.0, 0.0
        last = graph.compute_ops[-1]
        meaning = ("int8 softmax probabilities" if isinstance(last, Softmax)
                   else f"int8 outputs of {last.name} ({last.kind})")
        origin = str(model.tflite_path)
    else:
        raise StageError("convert", f"quantization {model.quantization!r} is not supported by "
                                    f"the mcusearch generator; supported: float32, int8")
    if expected.shape[1] != graph.output_len:
        raise StageError("convert", f"host output has {expected.shape[1]} values, the graph "
                                    f"{graph.output_len}")
    return Prepared(graph, inputs, expected, atol, rtol, meaning, origin)


def _shaped(x: np.ndarray, graph: Graph) -> np.ndarray:
    n = len(x)
    if n == 0 or x[0].size != graph.input_len:
        raise StageError("convert", f"probe inputs {x.shape} do not fit the model input "
                                    f"{graph.input_shape}")
    return x.reshape((n,) + tuple(graph.input_shape))


@register
class McusearchConverter(Converter):
    """The reference generator: reference C kernels (the correctness oracle), static weights, one
    ping-pong arena. The optimised generator is converter "mcusearch" (mcusearch.convert.fast)."""

    name = "mcusearch-ref"
    quantizations = frozenset({"float32", "int8"})

    def convert(self, model: ModelResult, out_dir: Path) -> ConvertResult:
        out_dir = Path(out_dir)
        pre = prepare(model)
        em = emit_c(pre.graph, out_dir, origin=pre.origin)
        return ConvertResult(
            converter=self.name, sources=em.sources, include_dirs=em.include_dirs,
            input_dtype=pre.graph.dtype, output_dtype=pre.graph.dtype, inputs=pre.inputs,
            expected=pre.expected, atol=pre.atol, rtol=pre.rtol, arena_bytes=em.arena_bytes,
            output_meaning=pre.meaning, layers=em.layers)

    @staticmethod
    def _shaped(x: np.ndarray, graph: Graph) -> np.ndarray:
        return _shaped(x, graph)


McusearchRefConverter = McusearchConverter


__all__ = ["McusearchConverter", "McusearchRefConverter", "Prepared", "prepare", "MemoryPlan", "emit_c", "plan_memory", "tflite_tensor",
           "tflite_interpreter", "load_keras", "KERNELS_DIR", "TFLITE_RESOLVER"]
