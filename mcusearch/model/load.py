"""A user's model file in: Keras 3 ``.keras``, tf-keras ``.h5`` / ``.keras``, a SavedModel
folder, or a ``.tflite`` flatbuffer.

Entry point: :func:`load_user_model` (path -> uncompiled ``tf.keras.Model``, the tool's Keras)
and :func:`load_base` (the same, or a :class:`TfliteBase` for a ``.tflite`` file).

* **Keras 3** ``.keras`` (the default format since TensorFlow 2.16: a zip with ``config.json``,
  ``metadata.json`` and ``model.weights.h5``; also an ``.h5`` Keras 3 wrote) is loaded by Keras 3 itself (``safe_mode=True``)
  and rebuilt in tf-keras layer by layer: every layer's Keras 3 config is translated (dtype
  policies become their names, nested initializer / regularizer / constraint dicts keep only
  the arguments tf-keras takes), the graph is re-wired node by node, the weights are copied layer
  by layer, and the rebuilt model's outputs are compared with Keras 3's on seeded random inputs
  (:data:`MATCH_TOL`); a difference is an error, never a silent change of the user's model.
* **tf-keras** ``.h5``, ``.keras`` (written by Keras 2) and SavedModel folders are loaded by
  tf-keras.
* **No code from a file runs** unless the spec says ``model.trust_code: true``: before any Keras
  loader sees the file, the layer classes stored in it (``config.json``, the ``.h5``'s
  ``model_config``, the SavedModel's ``keras_metadata.pb``) are checked. A ``Lambda`` layer,
  a serialised Python function or a TF op that reaches outside the graph (file I/O, ``py_func``)
  is refused; a class that is not a Keras layer is refused (its code is not in the file, so no
  setting can load it).
* A ``.tflite`` file is described (:class:`TfliteBase`), not loaded into Keras: only the knobs
  that need no Keras model apply to it (see :data:`TFLITE_KNOBS`).

Every user error is a :class:`~mcusearch.errors.SpecError` at ``model.path`` naming the file.
"""
from __future__ import annotations

import inspect
import json
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from mcusearch.errors import SpecError

log = logging.getLogger("mcusearch.model")

KEY = "model.path"
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
TFLITE_SUFFIX = ".tflite"
# Rebuilt vs original outputs: |a - b| <= MATCH_TOL * (1 + |b|) for every output value.
MATCH_TOL = 1e-5
MATCH_SAMPLES = 4          # seeded random inputs the rebuild is checked on
# The knobs a .tflite base model keeps: they act on the C code, the firmware and the board.
TFLITE_KNOBS = ("converter", "opt_level", "target.boards")
# Keras base-layer arguments every tf-keras layer takes (besides its own __init__ parameters).
_BASE_LAYER_ARGS = frozenset({"name", "trainable", "dtype", "dynamic", "activity_regularizer",
                              "input_shape", "batch_input_shape", "batch_size", "input_dim"})
_MODEL_CLASSES = frozenset({"Functional", "Sequential", "Model"})
# TF functions a TFOpLambda layer may not call: they reach outside the model (files, Python).
_UNSAFE_TF_OPS = ("io.", "py_func", "numpy_function", "print", "debugging.", "summary.",
                  "saved_model.", "data.", "raw_ops.", "compat.v1.py_func", "compat.v1.io")


@dataclass(frozen=True)
class TfliteBase:
    """A ``.tflite`` file given as the base model: used as it is (no Keras model behind it).

    ``quantization`` is the format of its tensors: ``int8`` (integer input and output),
    ``int16x8`` (int16 activations) or ``float32``.
    """

    path: Path
    quantization: str
    input_shape: tuple[int, ...]       # one sample, without the batch dimension
    output_shape: tuple[int, ...]
    input_dtype: str
    output_dtype: str
    params: int = 0                    # values of the constant tensors the file stores
    macs: int = 0                      # multiply-accumulates of its conv / depthwise / dense ops
    weight_bytes: int = 0              # bytes of those constant tensors
    largest_activation_bytes: int = 0  # the largest tensor an op computes (or the input)


def _bad(path: Path, message: str) -> SpecError:
    return SpecError(KEY, message, source=str(path))


def _trust_hint(what: str) -> str:
    return (f"{what}: loading it would run Python code stored in the file; set "
            "`model.trust_code: true` in the spec if you trust the file")


# ---------------------------------------------------------------------------------------------
# the entry points
# ---------------------------------------------------------------------------------------------

def load_base(path: Path | str, trust_code: bool = False):
    """The base model a spec names: a ``tf.keras.Model``, or a :class:`TfliteBase` for .tflite."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() == TFLITE_SUFFIX:
        return describe_tflite(path)
    return load_user_model(path, trust_code)


def load_user_model(path: Path | str, trust_code: bool = False):
    """A user's Keras model as an uncompiled tf-keras model (see the module docstring).

    Raises :class:`SpecError` at ``model.path`` for a missing, unreadable or unsafe file.
    """
    path = Path(path)
    kind = model_format(path)
    if kind == "tflite":
        raise _bad(path, "a .tflite file is not a Keras model (it is used as the base model as "
                         "it is; knobs that need Keras do not apply)")
    check_safe(path, trust_code)
    if kind == "keras3":
        model = _load_keras3(path, trust_code)
    else:
        model = _load_tf_keras(path, trust_code)
    import tensorflow as tf
    if not isinstance(model, tf.keras.Model):
        raise _bad(path, "the file does not hold a Keras model")
    return model


def model_format(path: Path) -> str:
    """``keras3`` (a .keras or .h5 written by Keras 3) | ``keras2`` (a tf-keras .keras) | ``h5``
    (tf-keras / Keras 2) | ``savedmodel`` | ``tflite``."""
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise _bad(path, "a folder must be a SavedModel (saved_model.pb not found in it)")
        return "savedmodel"
    if not path.is_file():
        raise _bad(path, "file not found")
    suffix = path.suffix.lower()
    if suffix == TFLITE_SUFFIX:
        return "tflite"
    if suffix in (".h5", ".hdf5"):
        return "keras3" if _h5_keras_version(path).startswith("3.") else "h5"
    if suffix != ".keras":
        raise _bad(path, f"expected a .keras, .h5 or .tflite file or a SavedModel folder, got "
                         f"{path.name}")
    meta = _zip_json(path, "metadata.json", required=False) or {}
    version = str(meta.get("keras_version", "3"))
    return "keras2" if version.startswith("2.") else "keras3"


# ---------------------------------------------------------------------------------------------
# what a file holds, read without Keras: the safety check
# ---------------------------------------------------------------------------------------------

def _zip_json(path: Path, member: str, required: bool = True) -> dict | None:
    try:
        with zipfile.ZipFile(path) as z:
            if member not in z.namelist():
                if required:
                    raise _bad(path, f"not a Keras model file: the archive has no {member}")
                return None
            return json.loads(z.read(member))
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise _bad(path, f"not a readable .keras file (a zip archive): {type(e).__name__}: "
                         f"{e}") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise _bad(path, f"{member} in the archive is not valid JSON: {e}") from None


def _h5_keras_version(path: Path) -> str:
    """The Keras version that wrote an HDF5 model file ('' when it does not say)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            v = f.attrs.get("keras_version", "")
    except (OSError, ValueError) as e:
        raise _bad(path, f"not a readable HDF5 model file: {str(e).splitlines()[0]}") from None
    return v.decode() if isinstance(v, bytes) else str(v)


def _h5_config(path: Path) -> dict:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
    except (OSError, ValueError) as e:
        raise _bad(path, f"not a readable HDF5 model file: {str(e).splitlines()[0]}") from None
    if raw is None:
        raise _bad(path, "the HDF5 file holds no model (no model_config: weights only? save the "
                         "whole model with model.save)")
    try:
        return json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except ValueError as e:
        raise _bad(path, f"the model_config in the file is not valid JSON: {e}") from None


def _savedmodel_classes(path: Path) -> list[tuple[str, str, dict]]:
    """(layer name, class name, config) of every object in a Keras SavedModel's metadata."""
    meta_file = path / "keras_metadata.pb"
    if not meta_file.is_file():
        raise _bad(path, "not a Keras SavedModel (no keras_metadata.pb): save it with tf-keras "
                         "(model.save(folder)) or give a .keras / .h5 file")
    from tf_keras.protobuf import saved_metadata_pb2

    proto = saved_metadata_pb2.SavedMetadata()
    try:
        proto.ParseFromString(meta_file.read_bytes())
        out = []
        for node in proto.nodes:
            if "metric" in node.identifier:  # compiled metrics: not part of the model
                continue
            m = json.loads(node.metadata) if node.metadata else {}
            cfg = m.get("config") if isinstance(m.get("config"), dict) else {}
            out.append((str(m.get("name", node.node_path)), str(m.get("class_name", "")), cfg))
    except Exception as e:  # noqa: BLE001 - a damaged protobuf raises DecodeError and others
        raise _bad(path, f"keras_metadata.pb is not readable: {type(e).__name__}: {e}") from None
    return out


def _layer_entries(cfg: Any) -> Iterator[tuple[str, str, dict, dict]]:
    """(layer name, class name, layer config, the whole entry) of every layer in a stored model
    config, nested models included."""
    if not isinstance(cfg, dict):
        return
    inner = cfg.get("config")
    if isinstance(inner, dict) and isinstance(inner.get("layers"), list):
        for entry in inner["layers"]:
            if not isinstance(entry, dict):
                continue
            lc = entry.get("config") if isinstance(entry.get("config"), dict) else {}
            yield (str(lc.get("name", entry.get("name", "?"))), str(entry.get("class_name")),
                   lc, entry)
            yield from _layer_entries(entry)


def _code_objects(obj: Any) -> Iterator[tuple[bool, str]]:
    """Serialised Python objects nested anywhere in ``obj``: ``(True, name)`` for code stored
    in the file (a lambda), ``(False, name)`` for a function or object from outside Keras that
    is named only (its code is not in the file)."""
    if isinstance(obj, dict):
        cls, module = obj.get("class_name"), obj.get("module")
        cfg = obj.get("config")
        if cls == "__lambda__":
            yield True, "a lambda"
        elif cls == "function" and module not in ("keras.activations", "keras.src.activations"):
            yield False, repr(cfg if isinstance(cfg, str) else obj.get("registered_name"))
        elif (isinstance(module, str) and cls is not None
              and not module.startswith(("keras", "tf_keras", "builtins"))):
            yield False, f"{cls!r} from module {module}"
        for v in obj.values():
            yield from _code_objects(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _code_objects(v)


def _known_layer_classes() -> frozenset[str]:
    import mcusearch  # noqa: F401  (tf-keras)
    import tensorflow as tf

    names = {n for n in dir(tf.keras.layers)
             if isinstance(getattr(tf.keras.layers, n), type)
             and issubclass(getattr(tf.keras.layers, n), tf.keras.layers.Layer)}
    return frozenset(names | _MODEL_CLASSES | {"TFOpLambda", "SlicingOpLambda"})


def check_safe(path: Path, trust_code: bool = False) -> None:
    """Refuse a file whose loading would run code from it (unless ``trust_code``) or that uses a
    layer class Keras does not have; reads the stored config only, runs no Keras loader."""
    kind = model_format(path)
    if kind == "savedmodel":
        entries = [(n, c, cfg, {"config": cfg}) for n, c, cfg in _savedmodel_classes(path)
                   if c]
    else:
        zipped = path.suffix.lower() == ".keras"
        cfg = _zip_json(path, "config.json") if zipped else _h5_config(path)
        top = str(cfg.get("class_name", ""))
        if top not in _MODEL_CLASSES:
            raise _bad(path, f"the file holds a {top or 'non-model object'}, not a Keras "
                             "Functional or Sequential model (subclassed models cannot be "
                             "rebuilt from a file)")
        entries = list(_layer_entries(cfg))
    known = _known_layer_classes()
    for name, cls, lcfg, entry in entries:
        if cls == "Lambda":
            if not trust_code:
                raise _bad(path, _trust_hint(f"layer {name!r} is a Lambda layer"))
            continue
        if cls in ("TFOpLambda", "SlicingOpLambda"):
            fn = str(lcfg.get("function", ""))
            if any(fn.startswith(p) or p in fn for p in _UNSAFE_TF_OPS) and not trust_code:
                raise _bad(path, _trust_hint(f"layer {name!r} calls tf.{fn}"))
            continue
        if cls not in known or str(entry.get("registered_name") or cls) not in (cls, "None"):
            raise _bad(path, f"layer {name!r} has class {cls!r}, which is not a Keras layer "
                             "(a custom class: its code is not in the file, so mcusearch cannot "
                             "load it; rebuild the model with built-in layers)")
        for stored, what in _code_objects(lcfg):
            if stored and not trust_code:
                raise _bad(path, _trust_hint(f"layer {name!r} uses {what}"))
            if not stored:
                raise _bad(path, f"layer {name!r} uses {what}, which is not part of Keras: its "
                                 "code is not in the file, so mcusearch cannot load it; use "
                                 "built-in activations and layers")


# ---------------------------------------------------------------------------------------------
# tf-keras files
# ---------------------------------------------------------------------------------------------

def _load_tf_keras(path: Path, trust_code: bool):
    import mcusearch  # noqa: F401
    import tensorflow as tf

    kw = {"compile": False}
    if path.suffix.lower() == ".keras":
        kw["safe_mode"] = not trust_code
    try:
        return tf.keras.models.load_model(path, **kw)
    except Exception as e:  # noqa: BLE001 - any loader failure is about the user's file
        raise _bad(path, f"tf-keras cannot load it: {type(e).__name__}: "
                         f"{_first_line(e)}") from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else "")[:300]


# ---------------------------------------------------------------------------------------------
# Keras 3 files: load with Keras 3, rebuild in tf-keras
# ---------------------------------------------------------------------------------------------

def _load_keras3(path: Path, trust_code: bool):
    import mcusearch  # noqa: F401  (tf-keras for tf.keras; `import keras` stays Keras 3)
    import keras

    if not keras.__version__.startswith("3."):
        raise _bad(path, f"a Keras 3 file needs Keras 3 installed (found {keras.__version__})")
    try:
        k3 = keras.saving.load_model(path, compile=False, safe_mode=not trust_code)
    except Exception as e:  # noqa: BLE001 - any loader failure is about the user's file
        raise _bad(path, f"Keras {keras.__version__} cannot load it: {type(e).__name__}: "
                         f"{_first_line(e)}") from None
    if not isinstance(k3, keras.Model) or type(k3).__name__ not in _MODEL_CLASSES:
        raise _bad(path, f"the file holds a {type(k3).__name__}, not a Functional or "
                         "Sequential model")
    model = _Rebuild(path, trust_code).model(k3)
    check_same_outputs(path, k3, model)
    log.info("model: %s (Keras %s) rebuilt in tf-keras, %d layers, %d parameters", path.name,
             keras.__version__, len(model.layers), model.count_params())
    return model


class _Rebuild:
    """Keras 3 model -> the same model in tf-keras: layer configs translated, graph re-wired,
    weights copied."""

    def __init__(self, path: Path, trust_code: bool):
        import mcusearch  # noqa: F401
        import tensorflow as tf

        self.tf, self.path, self.trust_code = tf, path, trust_code

    def model(self, k3):
        """A tf-keras Functional or Sequential model equal to the Keras 3 model ``k3``."""
        if type(k3).__name__ == "Sequential":
            return self._sequential(k3)
        return self._functional(k3)

    def _sequential(self, k3):
        tf = self.tf
        layers = [self._layer(l) for l in k3.layers]
        shape = tuple(k3.inputs[0].shape) if k3.inputs else None
        if shape is None:
            raise _bad(self.path, f"Sequential model {k3.name!r} has no input shape (it was "
                                  "never built)")
        inp = tf.keras.Input(batch_shape=shape, dtype=k3.inputs[0].dtype)
        m = tf.keras.Sequential([inp, *layers], name=k3.name)
        for l3, l2 in zip(k3.layers, layers):
            self._copy_weights(l3, l2)
        return m

    def _functional(self, k3):
        import keras

        tf = self.tf
        tensors: dict[tuple[int, int, int], Any] = {}
        layers: dict[int, tuple[Any, Any]] = {}

        def history(t) -> tuple[int, int, int]:
            op, node_index, tensor_index = t._keras_history
            return id(op), int(node_index), int(tensor_index)

        inputs = []
        for t in k3.inputs:
            op = t._keras_history[0]
            x = tf.keras.Input(batch_shape=tuple(t.shape), dtype=t.dtype, name=op.name)
            tensors[history(t)] = x
            inputs.append(x)

        def convert(t):
            key = history(t)
            if key in tensors:
                return tensors[key]
            op, node_index, _ = t._keras_history
            node = op._inbound_nodes[node_index]
            args = keras.tree.map_structure(
                lambda v: convert(v) if isinstance(v, keras.KerasTensor) else v,
                node.arguments.args)
            kwargs = keras.tree.map_structure(
                lambda v: convert(v) if isinstance(v, keras.KerasTensor) else v,
                node.arguments.kwargs)
            if id(op) not in layers:
                layers[id(op)] = (op, self._layer(op))
            out = layers[id(op)][1](*args, **kwargs)
            for j, o in enumerate(tf.nest.flatten(out)):
                tensors[(id(op), node_index, j)] = o
            return tensors[key]

        outputs = [convert(t) for t in k3.outputs]
        m = tf.keras.Model(inputs[0] if len(inputs) == 1 else inputs,
                           outputs[0] if len(outputs) == 1 else outputs, name=k3.name)
        for l3, l2 in layers.values():
            self._copy_weights(l3, l2)
        return m

    def _layer(self, l3):
        """The tf-keras layer for one Keras 3 layer (a nested model is rebuilt whole)."""
        import keras

        tf = self.tf
        cls = type(l3).__name__
        if isinstance(l3, keras.Model):
            return self.model(l3)
        if not isinstance(l3, keras.layers.Layer):
            raise _bad(self.path, f"{l3.name!r} is a Keras 3 operation ({cls}), not a layer "
                                  "(e.g. a + b on tensors): tf-keras cannot rebuild it; use "
                                  "layers such as Add")
        if cls == "Lambda":
            if not self.trust_code:  # check_safe refused it already; never reached untrusted
                raise _bad(self.path, _trust_hint(f"layer {l3.name!r} is a Lambda layer"))
            return tf.keras.layers.Lambda(l3.function, arguments=dict(l3.arguments or {}),
                                          name=l3.name)
        target = getattr(tf.keras.layers, cls, None)
        if not (isinstance(target, type) and issubclass(target, tf.keras.layers.Layer)):
            raise _bad(self.path, f"layer {l3.name!r} has class {cls!r}, which tf-keras does "
                                  "not have")
        cfg = translate_config(l3.get_config(), target)
        try:
            if cls == "Bidirectional":     # the wrapped layers rebuilt as layers of their own
                return target(self._layer(l3.forward_layer), merge_mode=l3.merge_mode,
                              backward_layer=self._layer(l3.backward_layer), name=l3.name)
            if cls == "TimeDistributed":
                return target(self._layer(l3.layer), name=l3.name)
            if cls == "MultiHeadAttention":   # tf-keras builds it on its first call
                cfg.update(query_shape=None, key_shape=None, value_shape=None)
            return target.from_config(cfg)
        except Exception as e:  # noqa: BLE001 - a config tf-keras cannot take
            raise _bad(self.path, f"layer {l3.name!r} ({cls}): its Keras 3 settings have no "
                                  f"tf-keras equivalent: {type(e).__name__}: {_first_line(e)}"
                       ) from None

    def _copy_weights(self, l3, l2) -> None:
        import keras

        if isinstance(l3, keras.Model):
            return  # copied layer by layer by its own rebuild
        w3 = l3.get_weights()
        w2 = l2.get_weights()
        if [np.shape(a) for a in w3] != [np.shape(a) for a in w2]:
            raise _bad(self.path, f"layer {l3.name!r} ({type(l3).__name__}): Keras 3 weights "
                                  f"{[np.shape(a) for a in w3]} do not fit the tf-keras layer "
                                  f"{[np.shape(a) for a in w2]}")
        if w3:
            l2.set_weights(w3)


def _accepted(cls: type) -> tuple[set[str], bool]:
    """The keyword arguments ``cls.__init__`` names, and whether it takes ``**kwargs``."""
    sig = inspect.signature(cls.__init__)
    names = {p.name for p in sig.parameters.values()
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self"}
    var_kw = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
    return names, var_kw


def _translate_object(value: Any) -> Any:
    """A nested Keras 3 serialised object (initializer, regularizer, constraint, dtype policy)
    in the form tf-keras reads; anything else unchanged."""
    if not (isinstance(value, dict) and "class_name" in value and "config" in value):
        return value
    cls, cfg = value["class_name"], value.get("config") or {}
    if cls in ("DTypePolicy", "FloatDTypePolicy"):
        return cfg.get("name", "float32")
    import mcusearch  # noqa: F401
    import tensorflow as tf

    module = str(value.get("module") or "")
    for family in ("initializers", "regularizers", "constraints"):
        if module.endswith(family):
            target = getattr(getattr(tf.keras, family), cls, None)
            if isinstance(target, type):
                names, var_kw = _accepted(target)
                cfg = {k: v for k, v in cfg.items() if var_kw or k in names}
            return {"class_name": cls, "config": cfg}
    return {"class_name": cls, "config": cfg}


def translate_config(cfg: dict, target: type) -> dict:
    """A Keras 3 layer config as ``target`` (a tf-keras layer class) takes it: dtype policies
    become their names, nested objects their tf-keras form, and arguments tf-keras does not
    have are dropped (the rebuilt model's outputs are checked against Keras 3's afterwards)."""
    names, _ = _accepted(target)
    allowed = names | _BASE_LAYER_ARGS
    out = {}
    for k, v in cfg.items():
        if k == "batch_shape":
            k = "batch_input_shape"
        if k not in allowed:
            if v not in (None, False, 0, {}, []):
                log.debug("model: %s argument %s=%r has no tf-keras equivalent; dropped",
                          target.__name__, k, v)
            continue
        out[k] = _translate_object(v)
    return out


def check_same_outputs(path: Path, k3, model) -> None:
    """The rebuilt model's outputs must equal Keras 3's on seeded random inputs."""
    rng = np.random.default_rng(0)
    xs = []
    for t in k3.inputs:
        shape = [MATCH_SAMPLES] + [d if d is not None else 8 for d in t.shape[1:]]
        xs.append(rng.standard_normal(shape).astype(np.float32))
    feed = xs[0] if len(xs) == 1 else xs
    ref = [np.asarray(a) for a in _flat(k3(feed, training=False))]
    got = [np.asarray(a) for a in _flat(model(feed, training=False))]
    worst = max((float(np.max(np.abs(a - b) / (1.0 + np.abs(b)))) for a, b in zip(got, ref)
                 if a.size), default=0.0)
    if len(ref) != len(got) or any(a.shape != b.shape for a, b in zip(got, ref)) \
            or not worst <= MATCH_TOL:
        raise _bad(path, f"the tf-keras rebuild of this Keras 3 model does not compute the same "
                         f"outputs (relative difference {worst:.3g} > {MATCH_TOL:g}); save the "
                         "model as .h5 with tf-keras, or report the layers it uses")
    log.debug("model: rebuild matches Keras 3 (max relative difference %.3g)", worst)


def _flat(out) -> list:
    return list(out) if isinstance(out, (list, tuple)) else [out]


# ---------------------------------------------------------------------------------------------
# .tflite
# ---------------------------------------------------------------------------------------------

def describe_tflite(path: Path | str) -> TfliteBase:
    """What a ``.tflite`` base model is: its number format and its input / output shapes."""
    path = Path(path)
    from mcusearch.model.evaluate import make_interpreter

    if path.stat().st_size == 0:
        raise _bad(path, "not a readable .tflite model: the file is empty")
    try:
        it = make_interpreter(path)
        ins, outs = it.get_input_details(), it.get_output_details()
    except Exception as e:  # noqa: BLE001 - a damaged flatbuffer raises ValueError / RuntimeError
        raise _bad(path, f"not a readable .tflite model: {_first_line(e)}") from None
    if len(ins) != 1 or len(outs) != 1:
        raise _bad(path, f"the model must have one input and one output, it has {len(ins)} and "
                         f"{len(outs)}")
    i, o = ins[0], outs[0]
    idt, odt = np.dtype(i["dtype"]).name, np.dtype(o["dtype"]).name
    quant = {"int8": "int8", "int16": "int16x8", "float32": "float32"}.get(idt)
    if quant is None or odt != idt:
        raise _bad(path, f"input {idt} / output {odt}: mcusearch takes float32, int8 or int16 "
                         "models with the same input and output type")
    sizes = _tflite_sizes(it)
    return TfliteBase(path=path, quantization=quant,
                      input_shape=tuple(int(d) for d in i["shape"][1:]),
                      output_shape=tuple(int(d) for d in o["shape"][1:]),
                      input_dtype=idt, output_dtype=odt, **sizes)


# MACs per output value of an op, from its weight tensor's shape (TFLite layouts: conv
# [out, kh, kw, in], depthwise [1, kh, kw, out], fully connected [out, in]).
_MACS_PER_OUTPUT = {"CONV_2D": lambda w: int(np.prod(w[1:])),
                    "DEPTHWISE_CONV_2D": lambda w: int(w[1] * w[2]),
                    "FULLY_CONNECTED": lambda w: int(w[-1])}


def _tflite_sizes(it) -> dict:
    """Stored constants (count, bytes), MACs and the largest computed tensor of a TFLite model,
    from its ops and tensor shapes (the interpreter's op list; nothing is run)."""
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    ops = it._get_ops_details()  # noqa: SLF001 - the only public-enough view of the op list
    computed = {int(i) for op in ops for i in op["outputs"]}
    computed |= {int(d["index"]) for d in it.get_input_details()}
    consts = {int(i) for op in ops for i in op["inputs"] if i >= 0} - computed

    def nbytes(t) -> int:
        return int(np.prod(t["shape"])) * np.dtype(t["dtype"]).itemsize

    macs = 0
    for op in ops:
        per = _MACS_PER_OUTPUT.get(op["op_name"])
        if per is not None and len(op["inputs"]) > 1 and op["inputs"][1] >= 0:
            out = tensors[int(op["outputs"][0])]["shape"]
            macs += int(np.prod(out[1:])) * per(tensors[int(op["inputs"][1])]["shape"])
    return {"params": sum(int(np.prod(tensors[i]["shape"])) for i in consts),
            "macs": macs, "weight_bytes": sum(nbytes(tensors[i]) for i in consts),
            "largest_activation_bytes": max((nbytes(tensors[i]) for i in computed), default=0)}
