"""The reference mcusearch C generator (converter ``"mcusearch-ref"``): graph -> plan memory -> C.

The optimised generator (converter ``"mcusearch"``, :mod:`mcusearch.convert.fast`) shares its front
end (:func:`prepare`) and host references; this one calls the reference kernels, the correctness
oracle.

float32 models come from ``ModelResult.keras_path`` (lowered through TFLite's converter, see
:mod:`mcusearch.convert.frontend`), int8 ones from ``ModelResult.tflite_path`` (full-integer, int8
input and output). Op plug-ins (:mod:`mcusearch.convert.ops`) emit their own kernel calls. The generated ``model.c`` holds:

* weights, biases, multipliers and kernel parameters as ``static const`` data (flash);
* one statically sized activation arena (RAM, ``.bss``): every intermediate tensor is live from
  the op that computes it to its last reader, and the buffers (word aligned) go largest first at
  the lowest offset that overlaps no buffer live at the same time (so an op's inputs and output
  never share bytes). The model input and output stay in the caller's buffers;
* ``mcus_model_run``: one reference-kernel call per computing op, each wrapped in the hooks
  ``MCUS_LAYER_BEGIN(i)`` / ``MCUS_LAYER_END(i)`` (empty unless the harness defines them).

Expected outputs: float32 - Keras ``predict`` (softmax probabilities when the model ends in a
softmax), atol 1e-4, rtol 1e-4. int8 - the TFLite model's output (int8 softmax probabilities
when it ends in a softmax), compared bit-exactly with the TFLite interpreter's built-in kernels
(see :data:`TFLITE_RESOLVER`).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcusearch.convert import Converter, ConvertResult, register
from mcusearch.convert.ctext import (c_array, c_float, comment, dedupe_constants, ident, init,
                                     shape_str)
from mcusearch.convert.frontend import graph_from_keras, graph_from_tflite
from mcusearch.convert.graph import (Add, AvgPool2D, Clamp, Conv2D, Dense, DepthwiseConv2D, Graph,
                                     MaxPool2D, Op, Softmax)
from mcusearch.convert.ops import RefContext
from mcusearch.convert.quant import quantize_input, tflite_depthwise_vector_channels
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

FLOAT_ATOL, FLOAT_RTOL = 1e-4, 1e-4   # issue 9: float within 1e-4 of Keras
# Probe inputs whose host outputs differ by less than this (relative to their magnitude) across
# all inputs prove little when firmware and host agree on them (see Prepared.probe_note).
PROBE_SPREAD_MIN = 1e-3

_KERNEL_OF = {Conv2D: "conv2d", DepthwiseConv2D: "depthwise_conv2d", MaxPool2D: "maxpool2d",
              AvgPool2D: "avgpool2d", Dense: "dense", Softmax: "softmax", Clamp: "clamp", Add: "add"}


@dataclass
class MemoryPlan:
    arena_bytes: int
    offsets: dict[int, int]     # tensor id -> byte offset in the arena (-1: the caller's output)
    sizes: dict[int, int]       # tensor id -> bytes (unpadded)


def _pad4(n: int) -> int:
    return (n + 3) & ~3


def lifetimes(graph: Graph) -> dict[int, tuple[int, int]]:
    """Tensor id -> (index of the computing op that writes it, index of its last reader), over
    :attr:`Graph.compute_ops`; reshaped views count as reads of the tensor they alias."""
    ops = graph.compute_ops
    life = {op.output: (j, j) for j, op in enumerate(ops)}
    for k, op in enumerate(ops):
        for i in op.inputs:
            s = graph.storage(i)
            if s in life:
                life[s] = (life[s][0], max(life[s][1], k))
    return life


def plan_memory(graph: Graph) -> MemoryPlan:
    """Place the intermediate tensors in one arena by lifetime (see the module docstring)."""
    elem = 4 if graph.dtype == "float32" else 1
    size = {op.output: graph.tensors[op.output].size * elem for op in graph.compute_ops}
    life = lifetimes(graph)
    out = graph.output_storage
    offsets: dict[int, int] = {out: -1}
    placed: list[tuple[int, int, int, int]] = []      # (offset, size, first, last)
    for t in sorted((t for t in size if t != out), key=lambda t: (-_pad4(size[t]), life[t][0])):
        sz, (a, b) = _pad4(size[t]), life[t]
        off = 0
        for o, s, pa, pb in sorted(p for p in placed if not (p[3] < a or b < p[2])):
            if off + sz <= o:
                break
            off = max(off, o + s)
        offsets[t] = off
        placed.append((off, sz, a, b))
    arena = max((o + s for o, s, _, _ in placed), default=0)
    return MemoryPlan(arena_bytes=arena, offsets=offsets, sizes=size)


# ---- emission ---------------------------------------------------------------------------------

@dataclass
class Emitted:
    sources: list[Path]
    include_dirs: list[Path]
    arena_bytes: int
    layers: list[str]


def layer_prefix(j: int, op: Op) -> str:
    return f"l{j:02d}_{ident(op.name)}"


def ref_call(graph: Graph, op: Op, pfx: str, srcs: list[str], dst: str, data: list[str],
             kernels: list[str]) -> str:
    """The reference-kernel call of ``op`` reading ``srcs`` and writing ``dst`` (C pointer
    expressions); its constants and parameters go to ``data``, kernel files to ``kernels``."""
    f32 = graph.dtype == "float32"
    ctype, sfx = ("float", "f32") if f32 else ("int8_t", "s8")
    if type(op) not in _KERNEL_OF:                      # an op plug-in
        ctx = RefContext(graph.dtype, pfx, srcs, dst)
        call = op.emit_ref(ctx)
        data.extend(ctx.data)
        kernels.extend(k for k in ctx.kernels if k not in kernels)
        return call
    kname = f"{_KERNEL_OF[type(op)]}_{sfx}"
    if kname not in kernels:
        kernels.append(kname)
    src = srcs[0]
    amin, amax = (c_float(float(a)) if f32 else str(int(a)) for a in getattr(op, "act", (0, 0)))
    ptype = f"mcus_{kname}_params_t"
    fields: dict[str, object] = {}
    if isinstance(op, (Conv2D, DepthwiseConv2D, Dense)):
        data.append(c_array(ctype, f"{pfx}_w", op.weights, 12 if f32 else 24))
        bias = "0"
        if op.bias is not None:
            data.append(c_array("float" if f32 else "int32_t", f"{pfx}_b", op.bias, 8))
            bias = f"{pfx}_b"
        if isinstance(op, (Conv2D, DepthwiseConv2D)):
            kh, kw = op.kernel
            (ih, iw, ic), (oh, ow, oc) = op.in_shape, op.out_shape
            fields["g"] = dict(in_h=ih, in_w=iw, in_c=ic, out_h=oh, out_w=ow, out_c=oc,
                               kernel_h=kh, kernel_w=kw, stride_h=op.stride[0],
                               stride_w=op.stride[1], pad_top=op.pad[0], pad_left=op.pad[1])
            if isinstance(op, DepthwiseConv2D):
                fields["depth_multiplier"] = op.depth_multiplier
        else:
            n_out, n_in = op.weights.shape
            fields.update(in_features=n_in, out_features=n_out)
        if f32:
            fields.update(act_min=amin, act_max=amax)
        else:
            rq = op.requant
            data.append(c_array("int32_t", f"{pfx}_mult", rq.multiplier, 8))
            data.append(c_array("int32_t", f"{pfx}_shift", rq.shift, 16))
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
        if f32:
            fields.update(act_min=amin, act_max=amax)
        else:
            fields.update(op.quant.c_fields(), act_min=amin, act_max=amax)
        call = f"mcus_{kname}(&{pfx}_p, {src}, {srcs[1]}, {dst});"
    elif isinstance(op, Softmax):
        n = int(op.out_shape[-1])
        fields["len"] = n
        if not f32:
            data.append(c_array("float", f"{pfx}_t", op.table, 6))
            fields.update(softmax_s8_fields(op, f"{pfx}_t"))
        call = f"mcus_{kname}(&{pfx}_p, {src}, {dst});"
        if op.rows > 1:
            call = (f"for (uint32_t r = 0; r < {op.rows}u; ++r) {{ mcus_{kname}(&{pfx}_p, "
                    f"{src} + r * {n}u, {dst} + r * {n}u); }}")
    elif isinstance(op, Clamp) and f32:
        fields.update(len=op.out_len, act_min=amin, act_max=amax)
        call = f"mcus_{kname}(&{pfx}_p, {src}, {dst});"
    else:
        raise StageError("convert", f"{op.name} ({op.kind}) has no {graph.dtype} kernel")
    data.append(f"static const {ptype} {pfx}_p = {init(fields)};\n")
    return call


def softmax_s8_fields(op: Softmax, table: str) -> dict:
    """mcus_softmax_s8_params_t's fields other than len (both generators)."""
    return dict(table=table, output_scale=c_float(op.output_scale), zero_point=op.output_zero_point)


def op_comment(j: int, op: Op) -> str:
    return (f"\n/* layer {j}: {comment(op.name)} ({op.kind}) {shape_str(op.in_shape)} -> "
            f"{shape_str(op.out_shape)}, {op.macs} MACs */\n")


def emit_c(graph: Graph, out_dir: Path, origin: str = "") -> Emitted:
    """Write ``out_dir/model.h`` and ``out_dir/model.c`` for ``graph``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    f32 = graph.dtype == "float32"
    plan = plan_memory(graph)
    ops = graph.compute_ops
    layers = [f"{op.name} ({op.kind})" for op in ops]
    data: list[str] = []
    calls: list[str] = []
    kernels: list[str] = []

    def buf(tid: int) -> str:
        """C pointer to tensor ``tid``'s memory."""
        s = graph.storage(tid)
        if s == graph.input_id:
            return "input"
        if plan.offsets[s] < 0:
            return "output"
        return f"mcus_arena + {plan.offsets[s] // 4}" if f32 else f"mcus_arena.b + {plan.offsets[s]}"

    for j, op in enumerate(ops):
        data.append(op_comment(j, op))
        calls.append(ref_call(graph, op, layer_prefix(j, op), [buf(i) for i in op.inputs],
                              buf(op.output), data, kernels))

    (out_dir / "model.h").write_text(model_h(graph, plan.arena_bytes, layers, "mcusearch-ref"))
    arena = ""
    if plan.arena_bytes:
        arena = (f"static float mcus_arena[{plan.arena_bytes // 4}];\n" if f32 else
                 f"static union {{\n    int32_t align_;\n    int8_t b[{plan.arena_bytes}];\n}} mcus_arena;\n")
    body = "\n".join(f"    MCUS_LAYER_BEGIN({j});\n    {c}\n    MCUS_LAYER_END({j});"
                     for j, c in enumerate(calls))
    text = (
        f"/* Generated by mcusearch (converter \"mcusearch-ref\"), {graph.dtype}, from "
        f"{comment(origin or graph.source)}.\n"
        f" * {len(ops)} kernel calls, {graph.macs} MACs, {graph.params} parameters, "
        f"activation arena {plan.arena_bytes} bytes. Do not edit. */\n"
        "#include <float.h>\n#include <stdint.h>\n\n#include \"mcus_kernels.h\"\n#include \"model.h\"\n\n"
        "#if defined(__has_include)\n#if __has_include(\"mcus_profile.h\")\n"
        "#include \"mcus_profile.h\"\n#endif\n#endif\n"
        "#ifndef MCUS_LAYER_BEGIN\n#define MCUS_LAYER_BEGIN(i)\n#endif\n"
        "#ifndef MCUS_LAYER_END\n#define MCUS_LAYER_END(i)\n#endif\n\n"
        + "".join(data) + "\n"
        + (f"/* activations: tensors placed by lifetime in one arena */\n{arena}\n" if arena else "")
        + "void mcus_model_run(const mcus_input_t *input, mcus_output_t *output)\n{\n"
        + body + "\n}\n"
    )
    (out_dir / "model.c").write_text(dedupe_constants(text))
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
             f"#define MCUS_INPUT_SCALE {c_float(graph.input_scale)}\n"
             f"#define MCUS_INPUT_ZERO_POINT ({graph.input_zero_point})\n"
             f"#define MCUS_OUTPUT_SCALE {c_float(graph.output_scale)}\n"
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
    probe_note: str = ""     # non-empty: why an output match on these inputs proves little


def prepare(model: ModelResult, work_dir: Path | None = None, columns: bool = False) -> Prepared:
    """The graph of ``model``, its probe inputs (quantised for int8) and the host model's outputs.
    ``work_dir``: where a float model's lowered .tflite is kept (``model_f32.tflite``).
    ``columns``: 1-D maps as T x 1 columns (:mod:`mcusearch.convert.rows1d`), which the fast
    generator's row planner streams (less RAM, more instructions: one pixel per row call)."""
    x = np.asarray(model.probe_inputs, dtype=np.float32)
    if model.quantization == "float32" and model.keras_path is None and model.tflite_path:
        graph = graph_from_tflite(model.tflite_path, columns)  # a user's float .tflite
        x = _shaped(x, graph)
        inputs = x.reshape(len(x), -1).astype(np.float32)
        expected = tflite_tensor(model.tflite_path, inputs, graph.output_id).astype(np.float32)
        atol, rtol = FLOAT_ATOL, FLOAT_RTOL
        origin = str(model.tflite_path)
    elif model.quantization == "float32":
        keras_model = load_keras(model.keras_path)
        graph = graph_from_keras(keras_model, None if work_dir is None
                                 else Path(work_dir) / "model_f32.tflite", columns)
        x = _shaped(x, graph)
        inputs = x.reshape(len(x), -1).astype(np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = np.asarray(keras_model.predict(x, verbose=0), np.float32)
        expected = expected.reshape(len(x), -1)
        atol, rtol = FLOAT_ATOL, FLOAT_RTOL
        origin = str(model.keras_path)
    elif model.quantization == "int8":
        if model.tflite_path is None:
            raise StageError("convert", "int8 model without a .tflite file")
        graph = graph_from_tflite(model.tflite_path, columns)
        x = _shaped(x, graph)
        inputs = quantize_input(x, graph.input_scale, graph.input_zero_point).reshape(len(x), -1)
        expected = tflite_tensor(model.tflite_path, inputs, graph.output_id).astype(np.int8)
        atol, rtol = 0.0, 0.0
        origin = str(model.tflite_path)
    else:
        raise StageError("convert", f"quantization {model.quantization!r} is not supported by "
                                    f"the mcusearch generator; supported: float32, int8")
    if expected.shape[1] != graph.output_len:
        raise StageError("convert", f"host output has {expected.shape[1]} values, the graph "
                                    f"{graph.output_len}")
    last = graph.producer(graph.output_id)
    dt = "int8 " if graph.dtype == "int8" else ""
    meaning = (f"{dt}softmax probabilities" if isinstance(last, Softmax)
               else f"{graph.dtype} outputs of {last.name} ({last.kind})")
    return Prepared(graph, inputs, expected, atol, rtol, meaning, origin,
                    probe_spread_note(expected, graph.dtype))


def probe_spread_note(expected: np.ndarray, dtype: str) -> str:
    """Why a firmware/host match on these probe outputs proves little, or "" when it proves
    something: one probe input only, or (nearly) the same output for every input."""
    e = np.asarray(expected, np.float64).reshape(len(expected), -1)
    if len(e) < 2:
        return "one probe input only: the output check covers a single input"
    spread = float(np.max(np.ptp(e, axis=0)))
    scale = float(np.max(np.abs(e))) or 1.0
    if (dtype == "int8" and spread < 1) or (dtype != "int8" and spread < PROBE_SPREAD_MIN * scale):
        return (f"the host model gives (nearly) the same output for all {len(e)} probe inputs "
                f"(largest spread {spread:.3g}): the output check proves little; use real data "
                "samples or a trained model")
    return ""


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
        pre = prepare(model, out_dir)
        em = emit_c(pre.graph, out_dir, origin=pre.origin)
        return ConvertResult(
            converter=self.name, sources=em.sources, include_dirs=em.include_dirs,
            input_dtype=pre.graph.dtype, output_dtype=pre.graph.dtype, inputs=pre.inputs,
            expected=pre.expected, atol=pre.atol, rtol=pre.rtol, arena_bytes=em.arena_bytes,
            output_meaning=pre.meaning, layers=em.layers, probe_note=pre.probe_note)

    @staticmethod
    def _shaped(x: np.ndarray, graph: Graph) -> np.ndarray:
        return _shaped(x, graph)


McusearchRefConverter = McusearchConverter


__all__ = ["McusearchConverter", "McusearchRefConverter", "Prepared", "prepare", "MemoryPlan",
           "emit_c", "plan_memory", "ref_call", "tflite_tensor", "tflite_interpreter", "load_keras",
           "KERNELS_DIR", "TFLITE_RESOLVER"]
