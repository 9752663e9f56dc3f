"""Eclipse Aidge as a third-party converter (converter name ``"aidge"``), float32.

Path: Keras (``ModelResult.keras_path``) -> ONNX (tf2onnx, opset 13) -> ``aidge_onnx.load_onnx``
-> ``aidge_core.export_utils.export`` with the ``aidge_export_cpp`` library (target ``"host"``,
``legacy=True``) -> header-only C++17 kernels, one ``forward.cpp`` and one ``.cpp`` per weight
tensor (in a ``.nn_data_dtype.float32`` section, which the boards' linker scripts put in flash).
Eclipse Aidge is EPL-2.0 (PyPI ``aidge-core``, ``aidge-onnx``, ``aidge-backend-cpu``,
``aidge-export-cpp`` 0.10.1); the generated kernels carry its licence header.

Data layout. The ONNX graph is made NCHW end to end (tf2onnx ``inputs_as_nchw``) and its input is
declared NCHW to Aidge; Aidge then re-lays the whole graph out in NHWC (its C++ export's format)
and its ``model_forward`` reads an NHWC buffer, i.e. the Keras input as it is in memory. Other
combinations seen here give wrong outputs or "Wrong input channel size" errors as soon as the input
has more than one channel (the ONNX graph with tf2onnx's leading Transpose, an input left in
Aidge's ``default`` format, or ``legacy=False``); the converter treats any Aidge ERROR line as a
failed conversion. ``model_forward`` returns a pointer into its own activation memory, which
``mcus_model_run`` (``model_wrapper.cpp``) copies to the caller's output buffer.

The Aidge step runs in a child Python process (``python -m mcusearch.convert.aidge``): Aidge's
export writes files into the current directory, calls ``exit()`` on fatal errors and prints
progress bars; the child keeps all that away from the search process and leaves its log in
``out_dir/aidge/export.log``. TensorFlow (for tf2onnx) is already loaded in the parent.

Expected outputs: Keras ``predict`` (softmax probabilities when the model ends in a softmax),
atol 1e-5, rtol 1e-4 - the same float check as the mcusearch generator's.

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
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np

from mcusearch.convert import Converter, ConvertResult, register
from mcusearch.errors import StageError
from mcusearch.model import ModelResult

ONNX_OPSET = 13
FLOAT_ATOL, FLOAT_RTOL = 1e-5, 1e-4
EXPORT_TIMEOUT_S = 900
AIDGE_VERSION = "0.10.1"
# import name -> PyPI name; aidge_core must be imported first (aidge_quantization fails otherwise)
AIDGE_MODULES = {"aidge_core": "aidge-core", "aidge_backend_cpu": "aidge-backend-cpu",
                 "aidge_onnx": "aidge-onnx", "aidge_export_cpp": "aidge-export-cpp"}
OTHER_MODULES = {"tf2onnx": "tf2onnx", "onnx": "onnx"}
SUMMARY_NAME = "summary.json"
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

    Returns the (modified) ``proto``."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(proto)
    shapes = {}
    for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        dims = vi.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[vi.name] = [d.dim_value for d in dims]
    graph = proto.graph
    for i, node in enumerate(list(graph.node)):
        new = _replacement(node, shapes, graph)
        if new is not None:
            graph.node.remove(node)
            graph.node.insert(i, new)
    return proto


_GLOBAL_POOLS = {"GlobalAveragePool": "AveragePool", "GlobalMaxPool": "MaxPool"}


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
    errors = [ln for ln in text.splitlines() if re.search(r"\bERROR\b|Traceback|Error:", ln)]
    if r.returncode != 0 or errors or not (export_dir / SUMMARY_NAME).is_file():
        first = errors[0].strip() if errors else f"exit status {r.returncode}"
        raise StageError("convert", f"the Aidge export failed: {first} (log: {log_path})",
                         log=_tail(log_path))
    return json.loads((export_dir / SUMMARY_NAME).read_text())


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
        shape = tuple(int(d) for d in keras_model.input_shape[1:])
        if len(shape) not in (1, 3):
            raise StageError("convert", f"the aidge converter takes an image-like (H, W, C) or a flat "
                                        f"(features,) input; this model's input is {shape}")
        x = np.asarray(model.probe_inputs, dtype=np.float32)
        if len(x) == 0 or x[0].size != int(np.prod(shape)):
            raise StageError("convert", f"probe inputs {x.shape} do not fit the model input {shape}")
        x = x.reshape((len(x),) + shape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = np.asarray(keras_model.predict(x, verbose=0), np.float32).reshape(len(x), -1)
        in_len, out_len = int(np.prod(shape)), int(expected.shape[1])

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
                                        f"outputs {outputs} (Keras gives {out_len} values)")
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
