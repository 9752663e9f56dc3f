"""Checks made once before anything runs: the data set and the model a spec names, together.

``mcusearch validate`` and ``mcusearch run`` call :func:`preflight` right after the spec is
read and before anything is written (no run folder, no cache entry, no study): it loads the data
set and the user's model file once and checks that they fit each other. Every failure is a
:class:`~mcusearch.errors.SpecError` naming the user's key (``model.path``, ``dataset.path``,
``dataset.classes``, ...), which the CLI prints as one line with exit status 2.

Checked:

* data: inputs float32 and finite; labels integers in ``[0, classes)``; at least two classes
  present in the training split and in the test split (a classification data set); targets
  finite (a regression / autoencoder data set, whose ``y`` are arrays);
* model: one input and one output; its input shape is the data's sample shape (a ``None``
  dimension takes any size); a float32 input (Keras); its output size is the class count, or
  equals its input (an autoencoder), or the targets' shape (regression);
* a ``.tflite`` base model: the same shapes, and which knobs the spec sets that do not apply to
  it (channel and magnitude pruning and quantization need a Keras model): each is reported as a
  warning line, and the search goes on over the knobs that apply (converter, compiler flags,
  board); a converter list without a converter for the file's format is an error (so is a
  float32 .tflite until a converter reads float models from .tflite).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mcusearch.errors import SpecError

log = logging.getLogger("mcusearch.preflight")


# Converters that read a float32 model from a .tflite file (Aidge takes float32 models from Keras
# only).
FLOAT_TFLITE_CONVERTERS: frozenset[str] = frozenset({"mcusearch", "mcusearch-lowmem",
                                                               "mcusearch-dense", "mcusearch-ref"})


@dataclass
class PreflightReport:
    """What was loaded and checked: one line per item (``lines``), and ``warnings``."""

    lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------

def dataset_key(dataset_spec) -> str:
    """The spec key a data problem is reported at: the user's file, else the class selection,
    else the built-in data set's name."""
    if getattr(dataset_spec, "path", None) is not None:
        return "dataset.path"
    if getattr(dataset_spec, "classes", None):
        return "dataset.classes"
    return "dataset.name"


def _is_classification(ds) -> bool:
    return getattr(ds, "task", "classification") == "classification"


def check_data(ds, key: str, source: str | None = None) -> None:
    """The data set alone: dtypes, finite values, labels in range, two classes per split."""
    for split in ("train", "test"):
        x = getattr(ds, f"x_{split}")
        y = np.asarray(getattr(ds, f"y_{split}"))
        if np.asarray(x).dtype != np.float32:
            raise SpecError(key, f"x_{split} must be float32 after loading, got "
                                 f"{np.asarray(x).dtype}", source)
        if len(x) == 0:
            raise SpecError(key, f"x_{split} is empty", source)
        if len(x) != len(y):
            raise SpecError(key, f"x_{split} has {len(x)} samples but y_{split} has {len(y)}",
                            source)
        if not np.isfinite(x).all():
            raise SpecError(key, f"x_{split} contains NaN or infinite values", source)
        if not _is_classification(ds):
            if y.dtype.kind == "f" and not np.isfinite(y).all():
                raise SpecError(key, f"y_{split} contains NaN or infinite values", source)
            continue
        if y.ndim != 1 or y.dtype.kind not in "iu":
            raise SpecError(key, f"y_{split} must hold integer class labels, got dtype "
                                 f"{y.dtype} shape {y.shape}", source)
        bad = y[(y < 0) | (y >= ds.n_classes)]
        if bad.size:
            raise SpecError(key, f"y_{split} has label {int(bad[0])} outside 0..{ds.n_classes - 1} "
                                 f"({ds.n_classes} classes)", source)
        present = np.unique(y)
        if len(present) < 2:
            raise SpecError(key, f"the {split} split holds only class "
                                 f"{ds.class_names[int(present[0])]!r}: at least two classes are "
                                 "needed", source)


# ---------------------------------------------------------------------------------------------
# model against data
# ---------------------------------------------------------------------------------------------

def _fits(got: tuple, want: tuple) -> bool:
    return len(got) == len(want) and all(g is None or int(g) == int(w)
                                         for g, w in zip(got, want))


def check_model_data(io: dict, ds, source: str, key: str = "model.path") -> None:
    """A model (``io``: ``inputs`` / ``outputs`` shapes of one sample, ``input_dtypes``) must
    take the data's samples and give one output per class (or its own input back, or the
    targets' shape)."""
    ins, outs = io["inputs"], io["outputs"]
    if len(ins) != 1 or len(outs) != 1:
        raise SpecError(key, f"the model must have exactly one input and one output, it has "
                             f"{len(ins)} and {len(outs)}", source)
    got, out = tuple(ins[0]), tuple(outs[0])
    want = tuple(ds.input_shape)
    if not _fits(got, want):
        raise SpecError(key, f"the model takes inputs of shape {_fmt(got)}, the data set's "
                             f"samples are {_fmt(want)}", source)
    dtype = io.get("input_dtypes", ["float32"])[0]
    if dtype not in ("float32", "int8", "int16"):
        raise SpecError(key, f"the model's input is {dtype}; mcusearch feeds float32 (int8 / "
                             "int16 for a quantised .tflite)", source)
    if _fits(out, want):
        return  # an autoencoder: output == input
    if _is_classification(ds):
        if not _fits(out, (ds.n_classes,)):
            raise SpecError(key, f"the model's output shape is {_fmt(out)}, the data set has "
                                 f"{ds.n_classes} classes (an output per class expected)",
                            source)
        return
    target = tuple(np.asarray(ds.y_train).shape[1:])
    if not _fits(out, target):
        raise SpecError(key, f"the model's output shape is {_fmt(out)}, the data set's targets "
                             f"are {_fmt(target)}", source)


def _fmt(shape: tuple) -> str:
    return "(" + ", ".join("?" if d is None else str(int(d)) for d in shape) + ")"


# ---------------------------------------------------------------------------------------------
# a .tflite base: which knobs apply
# ---------------------------------------------------------------------------------------------

def tflite_knobs(spec, base) -> list[str]:
    """Warnings for the knobs a ``.tflite`` base model drops (channels, magnitude, quantization:
    they need a Keras model); SpecError when no converter in knobs.converter takes the file."""
    from mcusearch.convert import available_converters
    k = spec.knobs
    fmt = base.quantization
    why = f"{base.path.name} is a .tflite model, used as it is (pruning needs a Keras model)"
    warnings = []
    if k.channels is not None:
        warnings.append(f"knobs.channels is dropped: {why}")
    if k.magnitude is not None:
        warnings.append(f"knobs.magnitude is dropped: {why}")
    if list(k.quantization) != [fmt]:
        warnings.append(f"knobs.quantization is dropped: {base.path.name} is stored as {fmt} "
                        "and used as it is")
    known = available_converters()
    if not any(fmt in known.get(c, ()) for c in k.converter):
        raise SpecError("knobs.converter", f"no converter in knobs.converter takes a {fmt} "
                        f"model ({', '.join(k.converter)})")
    if fmt == "float32" and not set(k.converter) & FLOAT_TFLITE_CONVERTERS:
        raise SpecError("model.path", f"a float32 .tflite model cannot be converted: the "
                        f"converters ({', '.join(k.converter)}) take float32 models as Keras "
                        "files; give the .keras / .h5 model (an int8 .tflite is used as it is)",
                        str(base.path))
    return warnings


# ---------------------------------------------------------------------------------------------
# a built-in architecture, the run folder, the cache and the storage
# ---------------------------------------------------------------------------------------------

MAX_PARAM = 1_000_000        # a built-in architecture's numeric parameter (filters, units, ...)
MAX_MODEL_PARAMS = 50_000_000  # weights of a model built for a microcontroller search


def check_architecture(spec, ds) -> str:
    """Build the built-in architecture once on the data's shape (in memory, nothing written), so
    unknown or impossible ``model.params`` stop the run here instead of failing every trial."""
    for name, value in spec.model.params.items():
        if not (isinstance(value, (int, float)) and np.isfinite(value) and abs(value) <= MAX_PARAM):
            raise SpecError(f"model.params.{name}", f"{value!r} is not a number from "
                                                    f"-{MAX_PARAM:,} to {MAX_PARAM:,}")
    from mcusearch.model.architectures import build_architecture

    arch = spec.base_model_config().architecture
    try:
        model = build_architecture(arch, ds.input_shape, ds.n_classes)
    except SpecError as e:  # the builder names its own config keys: say the user's
        where = e.where.replace("architecture.name", "model.architecture")
        raise SpecError(where.replace("architecture.params", "model.params"), e.message) from None
    except (ValueError, TypeError) as e:
        raise SpecError("model.params", f"{spec.model.architecture} cannot be built on samples of "
                                        f"shape {_fmt(ds.input_shape)} with these parameters: "
                                        f"{str(e).splitlines()[0]}") from None
    n = model.count_params()
    if n > MAX_MODEL_PARAMS:
        raise SpecError("model.params", f"the model would have {n:,} parameters (at most "
                                        f"{MAX_MODEL_PARAMS:,})")
    return f"model: built-in {spec.model.architecture}, {n:,} parameters"


def check_folder(path: Path, key: str) -> None:
    """``path`` is a folder, or can be made one: its nearest existing ancestor is a writable
    folder (nothing is created here)."""
    if path.exists():
        if not path.is_dir():
            raise SpecError(key, f"{path} is a file, not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise SpecError(key, f"{path} is not writable")
        return
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise SpecError(key, f"{path} cannot be created: {parent} is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SpecError(key, f"{path} cannot be created: {parent} is not writable")


def check_storage(url: str, run_dir: Path) -> None:
    """``search.storage`` is a URL of a database SQLAlchemy has a driver for; an SQLite file's
    folder exists or is the run folder (which `run` creates)."""
    import sqlalchemy
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = sqlalchemy.engine.make_url(url)
        parsed.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError):
        raise SpecError("search.storage", f"{url!r} is not a database URL SQLAlchemy can open "
                        "(e.g. sqlite:///path/study.db, postgresql+psycopg://user@host/db)") from None
    except ImportError as e:
        raise SpecError("search.storage", f"the driver for {parsed.drivername} is not installed "
                                          f"({e.name})") from None
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise SpecError("search.storage", "an SQLite storage needs a file (sqlite:///path/study.db)")
        folder = Path(parsed.database).resolve().parent
        if folder != run_dir.resolve():
            if not folder.is_dir():
                raise SpecError("search.storage", f"the SQLite file's folder {folder} does not exist")
            check_folder(Path(parsed.database), "search.storage")


def check_places(spec) -> None:
    """The run folder, the model cache and the storage can be written (before anything is)."""
    check_folder(spec.run_dir, "search.run_dir")
    check_folder(spec.cache_dir, "search.cache_dir")
    check_storage(spec.storage_url, spec.run_dir)
    from mcusearch.calibrate import load_corrections

    load_corrections()  # a bad saved correction (`mcusearch calibrate --save`) names its file here


# ---------------------------------------------------------------------------------------------
# the entry point
# ---------------------------------------------------------------------------------------------

def preflight(spec) -> PreflightReport:
    """Load the spec's data set and model once and check them together (writes nothing)."""
    from mcusearch.model.stage import load_data

    report = PreflightReport()
    check_places(spec)
    cfg = spec.base_model_config()
    dkey = dataset_key(spec.dataset)
    dsource = str(cfg.dataset.path) if cfg.dataset.path else None
    ds = load_data(cfg)  # memoised: `run` does not load it again for the first trial
    check_data(ds, dkey, dsource)
    from mcusearch.score import check_metrics_apply
    check_metrics_apply(spec, ds.task, ds.n_classes, ds.anomaly_test is not None)
    report.lines.append(f"data: {ds.name}, {len(ds.y_train)} train / {len(ds.y_test)} test "
                        f"samples of shape {_fmt(ds.input_shape)}, {ds.n_classes} classes")
    # The model checks need TensorFlow (2 s to import); the places and the data are checked without
    # it, so their errors come at once. Its C++ start-up lines are kept off the terminal.
    from mcusearch.log import import_tensorflow_quietly
    import_tensorflow_quietly()
    if spec.model.path is None:
        report.lines.append(f"{check_architecture(spec, ds)}, trained "
                            f"{spec.model.train.epochs} epochs on the data")
        return report
    path = spec.resolve(Path(spec.model.path))
    from mcusearch.model.load import TfliteBase, load_base, model_format

    kind = model_format(path)
    base = load_base(path, spec.model.trust_code)
    if isinstance(base, TfliteBase):
        io = {"inputs": [base.input_shape], "outputs": [base.output_shape],
              "input_dtypes": [base.input_dtype]}
        check_model_data(io, ds, str(path))
        report.warnings.extend(tflite_knobs(spec, base))
        report.lines.append(f"model: {path.name}, a {base.quantization} .tflite model, used as "
                            "it is")
        return report
    from mcusearch.model.stage import model_io

    check_model_data(model_io(base), ds, str(path))
    epochs = spec.model.train.epochs
    use = (f"fine-tuned {epochs} epochs first (model.train.epochs)" if epochs
           else "used as trained")
    report.lines.append(f"model: {path.name} ({_FORMATS[kind]}), {base.count_params():,} "
                        f"parameters, {use}")
    if spec.knobs.channels is not None:       # what channel pruning will remove together
        from mcusearch.model.architectures import group_lines
        report.lines += [f"channels {line}" for line in group_lines(base)]
    return report


_FORMATS = {"keras3": "written by Keras 3, rebuilt in tf-keras", "keras2": "tf-keras .keras",
            "h5": "tf-keras .h5", "savedmodel": "tf-keras SavedModel"}
