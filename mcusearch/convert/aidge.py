"""Eclipse Aidge as a third-party converter (converter name ``"aidge"``), float32.

Path: Keras (``ModelResult.keras_path``) -> ONNX (tf2onnx, opset 13) -> ``aidge_onnx.load_onnx``
-> ``aidge_core.export_utils.export`` with the ``aidge_export_cpp`` library (target ``"host"``,
``legacy=True``) -> header-only C++17 kernels, one ``forward.cpp`` and one ``.cpp`` per weight
tensor (in a ``.nn_data_dtype.float32`` section, which the boards' linker scripts put in flash).
Eclipse Aidge is EPL-2.0 (PyPI ``aidge-core``, ``aidge-onnx``, ``aidge-backend-cpu``,
``aidge-export-cpp`` 0.10.1); the generated kernels carry its licence header.

Data layout. The ONNX graph is made NCHW end to end (tf2onnx ``inputs_as_nchw``, and
``outputs_as_nchw`` for a rank-4 output) and its input is declared NCHW to Aidge; Aidge then re-lays
the whole graph out in NHWC (its C++ export's format), so ``model_forward`` reads and writes NHWC
buffers, i.e. the Keras tensors as they are in memory. Aidge re-lays out tensors but not the
operators that name axes: it applied tf2onnx's final NCHW -> NHWC Transpose to the already-NHWC
map as it stood, and a feature-map output came back as W x C x H; hence the NCHW output, which
leaves no Transpose at the end. The input's layout is declared without Aidge's ``enforce`` flag,
which asserted on a 49 x 10 x 1 input (on sizes that are not a multiple of 4 values, here). Other
combinations seen here give wrong outputs or "Wrong input channel size" errors as soon as the input
has more than one channel (the ONNX graph with tf2onnx's leading Transpose, an input left in
Aidge's ``default`` format, or ``legacy=False``). ``model_forward`` returns a pointer into its own
activation memory, which ``mcus_model_run`` (``model_wrapper.cpp``) copies to the caller's output
buffer.

Rewrites (same function, ops Aidge exports right): a sequence model (input (T, C)) is rebuilt in
Keras on a (1, T, C) input with each 1-D layer as its height-1 2-D counterpart, and a Dense on a
feature map as a 1 x 1 Conv2D (:func:`aidge_ready_model`); in the ONNX graph, Squeeze/Unsqueeze
become Reshapes and global pooling a full-size pooling (:func:`aidge_onnx_fixes`). The expected
outputs are always the original Keras model's.

What it cannot take (:data:`LIMITS`). Each is one ``StageError("convert", ...)`` line naming the
layer or op and what to use instead: refused before the export where the adapter knows the case,
else Aidge's own assertion, exception or crash turned into "the Aidge export failed: <reason>; use
converter mcusearch (log: ...)":
- int8 models (float32 only)
- more than one input or output; an input other than (H, W, C), (T, C) or (features,)
- on a sequence input: recurrent layers (LSTM, GRU), causal Conv1D, Reshape, and any layer without
  a height-1 2-D form
- Cropping, Slice and reductions over some axes (Reduce*, LayerNormalization) of a feature map
- ZeroPadding that does not feed a convolution or pooling
- AveragePooling2D with 'same' padding that pads (Aidge counts the padding in the average)
- DepthwiseConv2D with depth_multiplier > 1, Permute (Aidge asserts)

The Aidge step runs in a child Python process (``python -m mcusearch.convert.aidge``): Aidge's
export writes files into the current directory, calls ``exit()`` on fatal errors and prints
progress bars; the child keeps all that away from the search process and leaves its log in
``out_dir/aidge/export.log``. TensorFlow (for tf2onnx) is already loaded in the parent.

Expected outputs: Keras ``predict`` (softmax probabilities when the model ends in a softmax),
atol 1e-4, rtol 1e-4 - the same float check as the mcusearch generator's.

Build notes: the export includes C++ standard headers (``<complex>``, ``<limits>``, ...), so the
Arm toolchain needs ``libstdc++-arm-none-eabi-newlib``; the activation arrays (``unsigned char
mem_N[...]``) are given ``alignas(16)`` here, since they are read as ``float`` (an unaligned VLDR
faults on Cortex-M).
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np

from mcusearch.convert import Converter, ConvertResult, register
from mcusearch.errors import StageError
from mcusearch.model import ModelResult

ONNX_OPSET = 13
FLOAT_ATOL, FLOAT_RTOL = 1e-4, 1e-4
EXPORT_TIMEOUT_S = 900
AIDGE_VERSION = "0.10.1"
# import name -> PyPI name; aidge_core must be imported first (aidge_quantization fails otherwise)
AIDGE_MODULES = {"aidge_core": "aidge-core", "aidge_backend_cpu": "aidge-backend-cpu",
                 "aidge_onnx": "aidge-onnx", "aidge_export_cpp": "aidge-export-cpp"}
OTHER_MODULES = {"tf2onnx": "tf2onnx", "onnx": "onnx"}
SUMMARY_NAME = "summary.json"
# what the aidge converter cannot take, for users (module docstring, CLI help)
LIMITS: tuple[str, ...] = (
    "int8 models (float32 only)",
    "more than one input or output; an input other than (H, W, C), (T, C) or (features,)",
    "on a sequence input: recurrent layers (LSTM, GRU), causal Conv1D, Reshape, and any layer "
    "without a height-1 2-D form",
    "Cropping, Slice and reductions over some axes (Reduce*, LayerNormalization) of a feature map",
    "ZeroPadding that does not feed a convolution or pooling",
    "AveragePooling2D with 'same' padding that pads (Aidge counts the padding in the average)",
    "DepthwiseConv2D with depth_multiplier > 1, Permute (Aidge asserts)",
)
_ROOT = Path(__file__).resolve().parents[2]


def missing_packages() -> list[str]:
    """PyPI names of the packages this converter needs and cannot find (without importing them)."""
    mods = {**AIDGE_MODULES, **OTHER_MODULES}
    return [pypi for mod, pypi in mods.items() if importlib.util.find_spec(mod) is None]


# ---- Keras -> ONNX (in this process: TensorFlow is already loaded by the model stage) ------------

def keras_to_onnx(keras_model, path: Path) -> bool:
    """Write ``keras_model`` as ONNX (opset 13, batch 1). Returns whether the input was made NCHW
    (image-like, rank-4 inputs) or left as it is (e.g. a flat feature vector). A rank-4 output is
    made NCHW too, and :func:`aidge_onnx_fixes` rewrites what Aidge would get wrong."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    shape = tuple(int(d) for d in keras_model.input_shape[1:])
    nchw = len(shape) == 3
    spec = (tf.TensorSpec((1,) + shape, tf.float32, name="input"),)
    kwargs = {"inputs_as_nchw": ["input"]} if nchw else {}
    if len(keras_model.output_shape) == 4:
        kwargs["outputs_as_nchw"] = list(keras_model.output_names)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            proto, _ = tf2onnx.convert.from_keras(keras_model, input_signature=spec,
                                                  opset=ONNX_OPSET, **kwargs)
    except Exception as e:  # noqa: BLE001 - tf2onnx raises many kinds
        raise StageError("convert", f"tf2onnx could not convert the Keras model to ONNX: "
                                    f"{type(e).__name__}: {e}") from e
    onnx.save(aidge_onnx_fixes(proto), str(path))
    return nchw


def aidge_onnx_fixes(proto):
    """Rewrite operators that Aidge 0.10.1's NHWC C++ export gets wrong into equivalent ones it
    gets right (the graph computes the same function). Statically shaped tensors only:

    - Squeeze and Unsqueeze become a Reshape to the same shape. Aidge re-lays the graph out in
      NHWC but leaves their ``axes`` in NCHW terms (a Squeeze after a global pooling fails); its
      Reshape asks for the NCHW layout, so Aidge transposes back before it.
    - GlobalAveragePool and GlobalMaxPool become AveragePool / MaxPool with the whole H x W as
      kernel: Aidge's global pooling swaps kernel height and width (wrong unless H == W).
    - A scalar constant of Add/Sub/Mul/Div gets the output's rank (:func:`_scalars_to_rank`).

    Returns the (modified) ``proto``."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(proto)
    shapes = {}
    for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        dims = vi.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[vi.name] = [d.dim_value for d in dims]
    graph = proto.graph
    consumers: dict[str, list[str]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node.op_type)
    for node in graph.node:
        refused = _refusal(node, shapes, consumers)
        if refused:
            raise StageError("convert", f"{onnx_node_label(node)} is not taken by the aidge "
                                        f"converter: {refused[0]}; use {refused[1]}")
    for i, node in enumerate(list(graph.node)):
        new = _replacement(node, shapes, graph)
        if new is not None:
            graph.node.remove(node)
            graph.node.insert(i, new)
    _scalars_to_rank(graph, shapes)
    return proto


_ELEMENTWISE = frozenset({"Add", "Sub", "Mul", "Div"})


def _scalars_to_rank(graph, shapes: dict[str, list[int]]) -> None:
    """Give a scalar constant operand of an element-wise op the rank of the op's output (all
    ones): Aidge has no kernel for ``x + 3.0`` on a rank-2 tensor with a rank-0 constant (seen:
    a hard-swish built as x * ReLU6(x + 3) / 6 after a Dense)."""
    from onnx import numpy_helper

    consts = {t.name: t for t in graph.initializer}
    for node in graph.node:
        rank = len(shapes.get(node.output[0], ())) if node.output else 0
        if node.op_type not in _ELEMENTWISE or rank == 0:
            continue
        for k, name in enumerate(node.input):
            if name in consts and len(consts[name].dims) == 0:
                value = numpy_helper.to_array(consts[name]).reshape((1,) * rank)
                new_name = f"{name}__mcus_rank{rank}"
                if new_name not in consts:
                    consts[new_name] = numpy_helper.from_array(value, new_name)
                    graph.initializer.append(consts[new_name])
                node.input[k] = new_name


_GLOBAL_POOLS = {"GlobalAveragePool": "AveragePool", "GlobalMaxPool": "MaxPool"}
# ops whose axes (a list, as an input or attribute) Aidge leaves in NCHW terms after re-laying a
# rank >= 3 tensor out in NHWC: they would act on the wrong dimensions
_AXES_OPS = frozenset({"Slice", "Tile", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum",
                       "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSumExp", "ReduceSumSquare"})
# what a Pad must feed for Aidge to fuse it into the consumer's padding (a lone Pad's pads are
# read in the wrong layout)
_PAD_FUSES_INTO = frozenset({"Conv", "MaxPool", "AveragePool", "GlobalAveragePool"})


def onnx_node_label(node) -> str:
    """A node of tf2onnx's graph as a user knows it: "layer 'conv1' (ONNX Conv)" when its name
    carries the Keras layer ("model/layer/op"), else "ONNX node 'X' (Op)"."""
    parts = node.name.split("/")
    if len(parts) > 2:
        return f"layer {parts[1]!r} (ONNX {node.op_type})"
    return f"ONNX node {node.name!r} ({node.op_type})"


def _refusal(node, shapes: dict[str, list[int]],
             consumers: dict[str, list[str]]) -> tuple[str, str] | None:
    """(why Aidge's export would compute ``node`` wrongly, what to use instead), or None when it
    computes it right."""
    from onnx import helper

    rank = len(shapes.get(node.input[0], ())) if node.input else 0
    if node.op_type in _AXES_OPS and rank >= 3:
        return (f"on a rank-{rank} tensor Aidge's NHWC export applies its axes to the wrong "
                f"dimensions", "converter mcusearch")
    fed = consumers.get(node.output[0], []) if node.output else []
    if node.op_type == "Pad" and rank >= 3 and (len(fed) != 1 or fed[0] not in _PAD_FUSES_INTO):
        return ("Aidge lays out a padding wrongly unless it feeds a convolution or pooling",
                "converter mcusearch")
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type == "AveragePool" and any(attrs.get("pads", ())) \
            and not attrs.get("count_include_pad", 0):
        return ("Aidge's average pooling counts the padding in the average (Keras 'same' does "
                "not)", "padding 'valid' or converter mcusearch")
    return None


def _replacement(node, shapes: dict[str, list[int]], graph):
    """The node that replaces ``node`` in :func:`aidge_onnx_fixes`, or None to keep it."""
    from onnx import helper, numpy_helper

    if node.op_type in ("Squeeze", "Unsqueeze") and node.output[0] in shapes:
        const = f"{node.name or node.output[0]}__mcus_shape"
        graph.initializer.append(numpy_helper.from_array(
            np.asarray(shapes[node.output[0]], np.int64), const))
        return helper.make_node("Reshape", [node.input[0], const], list(node.output),
                                name=node.name)
    in_shape = shapes.get(node.input[0]) if node.input else None
    if node.op_type in _GLOBAL_POOLS and in_shape is not None and len(in_shape) == 4:
        return helper.make_node(_GLOBAL_POOLS[node.op_type], [node.input[0]], list(node.output),
                                name=node.name, kernel_shape=in_shape[2:])
    return None


# ---- Keras rewrites before ONNX: sequence models as H = 1 images, Dense on feature maps ----------

# 1-D layer -> (2-D layer, config keys that hold one length per spatial axis)
_AS_2D = {
    "Conv1D": ("Conv2D", ("kernel_size", "strides", "dilation_rate")),
    "DepthwiseConv1D": ("DepthwiseConv2D", ("kernel_size", "strides", "dilation_rate")),
    "SeparableConv1D": ("SeparableConv2D", ("kernel_size", "strides", "dilation_rate")),
    "MaxPooling1D": ("MaxPooling2D", ("pool_size", "strides")),
    "AveragePooling1D": ("AveragePooling2D", ("pool_size", "strides")),
    "GlobalAveragePooling1D": ("GlobalAveragePooling2D", ()),
    "GlobalMaxPooling1D": ("GlobalMaxPooling2D", ()),
    "UpSampling1D": ("UpSampling2D", ("size",)),
    "ZeroPadding1D": ("ZeroPadding2D", ("padding",)),
    "Cropping1D": ("Cropping2D", ("cropping",)),
    "SpatialDropout1D": ("SpatialDropout2D", ()),
}
# layers that act on the last axis or element-wise: the same layer takes the H = 1 tensor
_AXIS_FREE = frozenset({
    "InputLayer", "Dense", "Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax", "Dropout",
    "GaussianNoise", "GaussianDropout", "Add", "Subtract", "Multiply", "Average", "Maximum",
    "Minimum", "Concatenate", "Flatten", "BatchNormalization",
})
# what the aidge converter takes on a sequence input, for error messages
SEQUENCE_LAYERS = "Conv1D, DepthwiseConv1D, SeparableConv1D, 1-D pooling, Dense, activations"


def aidge_ready_model(keras_model):
    """The same function as ``keras_model`` in layers that Aidge's export takes, weights copied:

    - a sequence model (input (T, C)) runs on a (1, T, C) input, every 1-D layer replaced by its
      2-D counterpart with a height of 1 (tf2onnx's 1-D lowering - Unsqueeze, Transpose,
      rank-3 Squeeze - does not survive Aidge's NHWC re-layout);
    - a Dense layer on a feature map (input rank > 2) becomes the 1 x 1 Conv2D it is (Aidge's
      export crashes with SIGFPE on the broadcast bias Add of a rank-4 MatMul).

    Returns ``keras_model`` itself when nothing needs rewriting. Raises StageError naming the first
    layer that has no such form."""
    import tensorflow as tf

    sequence = len(keras_model.input_shape) == 3
    if not sequence and not any(_dense_on_feature_map(layer) for layer in keras_model.layers):
        return keras_model
    pairs = []

    def clone(layer):
        new = _rewritten_layer(layer, tf.keras.layers, sequence)
        pairs.append((layer, new))
        return new

    shape = tuple(int(d) for d in keras_model.input_shape[1:])
    inp = tf.keras.Input((1,) + shape if sequence else shape, name="input")
    try:
        model = tf.keras.models.clone_model(keras_model, input_tensors=inp, clone_function=clone)
    except StageError:
        raise
    except Exception as e:  # noqa: BLE001 - Keras raises many kinds
        raise StageError("convert", f"the aidge converter could not rewrite this model into layers "
                                    f"Aidge takes ({type(e).__name__}: {e}); use converter "
                                    f"mcusearch") from e
    for old, new in pairs:
        new.set_weights([np.reshape(w, np.shape(nw))
                         for w, nw in zip(old.get_weights(), new.get_weights())])
    return model


def _dense_on_feature_map(layer) -> bool:
    """Whether ``layer`` is a Dense applied to a tensor of rank > 2 (per time step or pixel)."""
    try:
        return type(layer).__name__ == "Dense" and len(layer.input_shape) > 2
    except (AttributeError, RuntimeError):          # a layer called more than once
        return False


def _rewritten_layer(layer, layers, sequence: bool):
    """A new layer doing what ``layer`` does in the rewritten model (see aidge_ready_model)."""
    kind = type(layer).__name__
    config = layer.get_config()
    if _dense_on_feature_map(layer):
        return layers.Conv2D(config["units"], 1, activation=config["activation"],
                             use_bias=config["use_bias"], name=config["name"])
    if not sequence:
        return type(layer).from_config(config)
    if kind in _AS_2D:
        kind2, per_axis = _AS_2D[kind]
        if config.get("padding") == "causal":
            raise StageError("convert", f"layer {layer.name!r} ({kind}, padding 'causal') is not "
                                        f"taken by the aidge converter; use converter mcusearch")
        for key in per_axis:
            config[key] = _with_height_1(key, config[key])
        return getattr(layers, kind2).from_config(config)
    if kind in _AXIS_FREE:
        if "axis" in config:
            config["axis"] = _axis_plus_1(config["axis"])
        return type(layer).from_config(config)
    raise StageError("convert", f"layer {layer.name!r} ({kind}) on a sequence input is not taken "
                                f"by the aidge converter (it takes {SEQUENCE_LAYERS}); use "
                                f"converter mcusearch")


def _with_height_1(key: str, value):
    """A 1-D layer's per-axis setting as the 2-D one with height 1 (padding/cropping: none)."""
    if value is None:
        return None
    if key in ("padding", "cropping"):
        return ((0, 0), tuple(value) if isinstance(value, (list, tuple)) else (value, value))
    v = value[0] if isinstance(value, (list, tuple)) else value
    return (1, int(v))


def _axis_plus_1(axis):
    """An axis of a rank-3 tensor as the same axis of the rank-4 (N, 1, T, C) tensor."""
    if isinstance(axis, (list, tuple)):
        return [_axis_plus_1(a) for a in axis]
    return axis + 1 if axis >= 1 else axis


# ---- the Aidge step (child process) -----------------------------------------------------------

def _export_child(onnx_path: str, export_dir: str, sample_path: str, nchw: str) -> int:
    """Run in the child: ONNX -> Aidge graph -> C++ export; write a summary JSON beside it."""
    import aidge_core  # noqa: I001 - first, see AIDGE_MODULES
    import aidge_backend_cpu  # noqa: F401
    import aidge_export_cpp  # noqa: F401
    import aidge_onnx
    from aidge_core.export_utils import export
    from aidge_core.export_utils.config import ExportConfig

    graph = aidge_onnx.load_onnx(onnx_path)
    _clip_bounds_to_attributes(graph)
    x = np.ascontiguousarray(np.load(sample_path), dtype=np.float32)
    t = aidge_core.Tensor(x)
    fmt = aidge_core.dformat.nchw if nchw == "1" else aidge_core.dformat.nc
    t.set_data_format(fmt, False)    # declare the layout; do not transpose the data
    art = export(graph, ExportConfig(target="host", dtype="float32", legacy=True, compile=False,
                                     cuda=False, clone_model=False, export_folder=export_dir), [t])
    nodes = [[n.name(), n.type()] for n in graph.get_ordered_nodes() if n.type() != "Producer"]
    # the same order as the manifest's outputs (both follow get_ordered_outputs)
    out_nodes = [[n.name(), n.type()] for n, _ in graph.get_ordered_outputs()]
    summary = {"inputs": art.manifest.inputs, "outputs": art.manifest.outputs, "nodes": nodes,
               "output_nodes": out_nodes}
    Path(export_dir, SUMMARY_NAME).write_text(json.dumps(summary, indent=1))
    return 0


def _clip_bounds_to_attributes(graph) -> None:
    """ONNX Clip (opset >= 11, e.g. Keras ReLU(max_value=6)) takes min/max as inputs; Aidge's
    C++ export reads only the Clip operator's min/max attributes (default +-FLT_MAX), so the
    bounds would be lost. Copy constant bound inputs into the attributes."""
    for node in graph.get_nodes():
        if node.type() != "Clip":
            continue
        attr = node.get_operator().attr
        for i, parent in enumerate(node.get_parents()):
            if i in (1, 2) and parent is not None and parent.type() == "Producer":
                value = float(np.asarray(parent.get_operator().get_output(0)).reshape(-1)[0])
                setattr(attr, "min" if i == 1 else "max", value)


def _run_child(onnx_path: Path, export_dir: Path, sample: np.ndarray, nchw: bool,
               work: Path) -> dict:
    sample_path = work / "sample.npy"
    np.save(sample_path, sample)
    log_path = work / "export.log"
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(_ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    cmd = [sys.executable, "-m", "mcusearch.convert.aidge", str(onnx_path), str(export_dir),
           str(sample_path), "1" if nchw else "0"]
    try:
        with open(log_path, "w") as log:
            r = subprocess.run(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, timeout=EXPORT_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        raise StageError("convert", f"the Aidge export did not finish in {EXPORT_TIMEOUT_S} s",
                         log=_tail(log_path)) from e
    text = _clean_log(log_path.read_text(errors="replace"))
    log_path.write_text(text)
    reason = _failure_reason(text, r.returncode)
    if reason is None and not (export_dir / SUMMARY_NAME).is_file():
        reason = f"no {SUMMARY_NAME} was written"
    if reason is not None:
        raise StageError("convert", f"the Aidge export failed: {reason}; use converter mcusearch "
                                    f"(log: {log_path})", log=_tail(log_path))
    return json.loads((export_dir / SUMMARY_NAME).read_text())


_NO_BACKEND_RE = re.compile(r"not any backend available for node (\S+) \(of type (\w+)\)")


def _failure_reason(text: str, returncode: int) -> str | None:
    """One line on why the Aidge child failed (None if it did not): the first node Aidge has no
    kernel for, else its first ERROR message, else the Python exception, else how it ended."""
    lines = _joined_messages(text)
    errors = [ln for ln in lines if ln.startswith("[ERROR]")]
    exceptions = [ln for ln in lines if re.match(r"^\w+(Error|Exception)\b", ln)]
    if returncode == 0 and not errors and not exceptions:
        return None
    no_kernel = [m for m in map(_NO_BACKEND_RE.search, lines) if m]
    if no_kernel:
        return f"Aidge has no kernel for node {no_kernel[0][1]} (op {no_kernel[0][2]})"
    if errors:
        return errors[0].removeprefix("[ERROR] - ").rstrip(".")
    if exceptions:
        return exceptions[-1]
    if returncode < 0:
        try:
            return f"it crashed ({signal.Signals(-returncode).name})"
        except ValueError:
            return f"it crashed (signal {-returncode})"
    return f"exit status {returncode}"


def _joined_messages(text: str) -> list[str]:
    """Log lines with Aidge's wrapped continuation lines ("[LEVEL]   more") joined on."""
    out: list[str] = []
    for ln in text.splitlines():
        m = re.match(r"^\[(\w+)\]\s{3}(\S.*)$", ln)
        if m and out and out[-1].startswith(f"[{m[1]}]"):
            out[-1] += " " + m[2]
        else:
            out.append(ln.strip())
    return out


_PROGRESS_RE = re.compile(r"^\s*(\d+%\||Processing node: )|^\s*$")


def _clean_log(text: str) -> str:
    """Drop colour codes and the export's progress bars."""
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)
    lines = (ln.rsplit("\r", 1)[-1] for ln in text.splitlines())
    return "\n".join(ln for ln in lines if not _PROGRESS_RE.match(ln)) + "\n"


def _tail(path: Path, n: int = 60) -> str:
    try:
        return "\n".join(_clean_log(path.read_text(errors="replace")).splitlines()[-n:])
    except OSError:
        return ""


# ---- what the export wrote --------------------------------------------------------------------

_MEM_RE = re.compile(r"^(\s*)static unsigned char (mem_\d+)\[(\d+)\];", re.M)
_FORWARD_RE = re.compile(r"void\s+model_forward\s*\(([^)]*)\)", re.S)


def _align_memory(forward_cpp: Path) -> int:
    """Give the activation arrays float alignment; return their total size (the arena)."""
    text = forward_cpp.read_text()
    sizes = [int(m.group(3)) for m in _MEM_RE.finditer(text)]
    forward_cpp.write_text(_MEM_RE.sub(r"\1alignas(16) static unsigned char \2[\3];", text))
    return sum(sizes)


def _forward_params(forward_hpp: Path) -> list[tuple[str, str]]:
    """``model_forward``'s parameters as (C type, name)."""
    m = _FORWARD_RE.search(forward_hpp.read_text())
    if not m:
        raise StageError("convert", f"no model_forward declaration in {forward_hpp}")
    params = []
    for p in m.group(1).split(","):
        p = " ".join(p.split())
        pm = re.match(r"(.*?[\s*])(\w+)$", p)
        if not pm:
            raise StageError("convert", f"cannot read model_forward parameter {p!r}")
        params.append((pm.group(1).strip(), pm.group(2)))
    return params


def _wrapper_cpp(params: list[tuple[str, str]], out_index: int) -> str:
    decls, args = [], ["input"]
    for i, (ctype, _name) in enumerate(params[1:]):
        pointee = ctype[:-1].strip()                  # "float**" -> "float*"
        decls.append(f"    {pointee} out{i} = nullptr;")
        args.append(f"&out{i}")
    body = "\n".join(decls)
    return (
        "/* Generated by mcusearch (converter \"aidge\"): the project's model contract around Eclipse\n"
        " * Aidge's exported model_forward (dnn/include/forward.hpp). Do not edit. */\n"
        "#include <string.h>\n\n#include \"model.h\"\n#include \"forward.hpp\"\n\n"
        "extern \"C\" void mcus_model_run(const mcus_input_t *input, mcus_output_t *output)\n{\n"
        f"{body}\n"
        f"    model_forward({', '.join(args)});\n"
        f"    memcpy(output, out{out_index}, sizeof(mcus_output_t) * MCUS_OUTPUT_LEN);\n"
        "}\n"
    )


def _model_h(in_len: int, out_len: int, arena: int, layers: list[str]) -> str:
    names = ", ".join('"' + s.replace("\\", "/").replace('"', "'") + '"' for s in layers)
    return (
        "/* Generated by mcusearch (converter \"aidge\", Eclipse Aidge " + AIDGE_VERSION + "). Do not edit. */\n"
        "#ifndef MCUS_MODEL_H\n#define MCUS_MODEL_H\n\n#include <stdint.h>\n\n"
        f"#define MCUS_INPUT_LEN {in_len}\n"
        f"#define MCUS_OUTPUT_LEN {out_len}\n"
        f"#define MCUS_ARENA_BYTES {arena}\n"
        f"#define MCUS_N_LAYERS {len(layers)}\n"
        f"#define MCUS_LAYER_NAMES {{ {names} }}\n\n"
        "typedef float mcus_input_t;\ntypedef float mcus_output_t;\n\n"
        "#ifdef __cplusplus\nextern \"C\" {\n#endif\n"
        "void mcus_model_run(const mcus_input_t *input, mcus_output_t *output);\n"
        "#ifdef __cplusplus\n}\n#endif\n\n"
        "#endif /* MCUS_MODEL_H */\n"
    )


# ---- the converter ----------------------------------------------------------------------------

@register
class AidgeConverter(Converter):
    """Eclipse Aidge's C++ export (aidge_export_cpp reference kernels), float32."""

    name = "aidge"
    quantizations = frozenset({"float32"})

    def convert(self, model: ModelResult, out_dir: Path) -> ConvertResult:
        out_dir = Path(out_dir).resolve()
        if model.quantization != "float32":
            raise StageError("convert", f"quantization {model.quantization!r} is not supported by "
                                        f"the aidge converter; supported: float32")
        missing = missing_packages()
        if missing:
            raise StageError("convert", "Eclipse Aidge is not installed: missing "
                             + ", ".join(missing) + f" (pip install aidge-core=={AIDGE_VERSION} "
                             f"aidge-onnx=={AIDGE_VERSION} aidge-backend-cpu=={AIDGE_VERSION} "
                             f"aidge-export-cpp=={AIDGE_VERSION} tf2onnx; see requirements/)")
        from mcusearch.convert.cgen import load_keras

        keras_model = load_keras(model.keras_path)
        if len(keras_model.inputs) != 1 or len(keras_model.outputs) != 1:
            raise StageError("convert", f"the aidge converter takes a model with one input and one "
                                        f"output; this one has {len(keras_model.inputs)} and "
                                        f"{len(keras_model.outputs)}; use converter mcusearch")
        shape = tuple(int(d) for d in keras_model.input_shape[1:])
        if len(shape) not in (1, 2, 3):
            raise StageError("convert", f"the aidge converter takes an image-like (H, W, C), a "
                                        f"sequence (T, C) or a flat (features,) input; this "
                                        f"model's input is {shape}; use converter mcusearch")
        x = np.asarray(model.probe_inputs, dtype=np.float32)
        if len(x) == 0 or x[0].size != int(np.prod(shape)):
            raise StageError("convert", f"probe inputs {x.shape} do not fit the model input {shape}")
        x = x.reshape((len(x),) + shape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = np.asarray(keras_model.predict(x, verbose=0), np.float32).reshape(len(x), -1)
        in_len, out_len = int(np.prod(shape)), int(expected.shape[1])
        keras_model = aidge_ready_model(keras_model)
        shape = tuple(int(d) for d in keras_model.input_shape[1:])   # a sequence: (1, T, C)
        x = x.reshape((len(x),) + shape)

        work = out_dir / "aidge"
        export_dir = work / "export"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        onnx_path = work / "model.onnx"
        nchw = keras_to_onnx(keras_model, onnx_path)
        sample = np.transpose(x[:1], (0, 3, 1, 2)) if nchw else x[:1]
        summary = _run_child(onnx_path, export_dir, np.ascontiguousarray(sample), nchw, work)

        inputs, outputs = summary["inputs"], summary["outputs"]
        if len(inputs) != 1 or inputs[0]["dtype"] != "float" or inputs[0]["size"] != in_len:
            raise StageError("convert", f"the Aidge export's inputs {inputs} are not one float "
                                        f"tensor of {in_len} values")
        dnn = export_dir / "dnn"
        params = _forward_params(dnn / "include" / "forward.hpp")
        if len(params) != 1 + len(outputs) or "float" not in params[0][0]:
            raise StageError("convert", f"model_forward{params} does not match the export's "
                                        f"inputs/outputs {inputs}/{outputs}")
        # The real output: the float one of the right size (a max-pooling's index output can
        # appear as an extra graph output).
        cands = [i for i, o in enumerate(outputs) if o["dtype"] == "float" and o["size"] == out_len]
        if len(cands) != 1:
            raise StageError("convert", f"cannot tell the model output among the Aidge export's "
                                        f"outputs {outputs} (Keras gives {out_len} values): Aidge "
                                        f"re-laid out an op of this model wrongly; use converter "
                                        f"mcusearch")
        arena = _align_memory(dnn / "src" / "forward.cpp")
        nodes = summary["nodes"]
        layers = [f"{name} ({kind})" for name, kind in nodes
                  if kind not in ("Transpose", "Reshape", "Identity")]
        last = summary["output_nodes"][cands[0]]
        meaning = ("softmax probabilities" if last[1] == "Softmax"
                   else f"float32 outputs of {last[0]} ({last[1]})")

        (out_dir / "model.h").write_text(_model_h(in_len, out_len, arena, layers))
        (out_dir / "model_wrapper.cpp").write_text(_wrapper_cpp(params, cands[0]))
        sources = [out_dir / "model_wrapper.cpp", dnn / "src" / "forward.cpp",
                   *sorted((dnn / "src" / "parameters").glob("*.cpp"))]
        return ConvertResult(
            converter=self.name, sources=sources, include_dirs=[out_dir, dnn / "include"],
            input_dtype="float32", output_dtype="float32",
            inputs=x.reshape(len(x), -1).astype(np.float32), expected=expected,
            atol=FLOAT_ATOL, rtol=FLOAT_RTOL, arena_bytes=arena, output_meaning=meaning,
            layers=layers)


__all__ = ["AidgeConverter", "keras_to_onnx", "missing_packages"]


if __name__ == "__main__":
    sys.exit(_export_child(*sys.argv[1:5]))
