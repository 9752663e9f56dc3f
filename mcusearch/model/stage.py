"""The model stage: knobs -> a trained, shrunk, possibly quantised model, evaluated on the host.

The knobs apply in the study's order: channel pruning (L1 / L2 / random filter selection, then
re-training), magnitude pruning (tfmot, fine-tuned under a PolynomialDecay schedule, stripped),
quantisation (int8 or int16x8 post-training, or int8 quantisation-aware training). Every variant
is evaluated on the same held-out test split: Keras for float32, the TFLite interpreter on its
built-in kernels for the quantised models, with accuracy, balanced accuracy and per-class
accuracy.

Cache levels (see :mod:`mcusearch.model.cache`), so a trial only pays for what is new:

* ``base``: the architecture trained on the data set (once per base configuration);
* ``pruned``: the base with fewer filters, re-trained (shared by every quantisation and
  magnitude-pruning variant of the same channels);
* ``sparse``: a (pruned or base) model after magnitude pruning (shared by its quantisations);
* ``variant``: the finished :class:`ModelResult` (model files, accuracy, params, MACs, probes).
  A hit needs neither TensorFlow nor the data set;
* ``footprint``: the exact size of a candidate before any training, for early rejection.

Keys chain: a ``pruned`` key holds the base key and the sha256 of the base model's weights
file, a ``sparse`` key its parent's key, a ``variant`` key the base key, the weights hash and
every normalised knob and setting; all hold the library versions and the code version. Trials
that differ only in converter, compiler flags or board reuse the variant.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import time
from pathlib import Path

import numpy as np

from mcusearch.errors import SpecError
from mcusearch.figures import Figure, Provenance
from mcusearch.model import (CRITERIA, FINETUNE_LR_FACTOR, QUANT_FORMAT, QUANTIZATIONS,
                             BaseModelConfig, Dataset, ModelKnobs, ModelResult)
from mcusearch.model.cache import (COMPLETE, ModelCache, cache_key, canonical_json, file_sha256)
from mcusearch.model.datasets import calibration_inputs, load_dataset, watch_data_path

log = logging.getLogger("mcusearch.model")

KERAS_FILE = "model.h5"
TFLITE_FILES = {"int8": "model_int8.tflite", "int16x8": "model_int16x8.tflite"}
TFLITE_FILE = TFLITE_FILES["int8"]
PROBES_FILE = "probes.npz"


# ---------------------------------------------------------------------------------------------
# keys
# ---------------------------------------------------------------------------------------------

def _dataset_source(cfg: BaseModelConfig) -> dict:
    """What identifies the data beyond the config: the built-in file's contents."""
    if cfg.dataset.name == "watch":
        return {"watch_dataset.npy": file_sha256(watch_data_path())}
    return {}


def _model_source(cfg: BaseModelConfig) -> dict:
    """What identifies a user's SavedModel folder beyond its path: its files' contents (a
    model file is keyed by its contents already, see :func:`mcusearch.model.cache.canonical`)."""
    path = cfg.architecture.path
    if path is None or not Path(path).is_dir():
        return {}
    return {"savedmodel": {str(p.relative_to(path)): file_sha256(p)
                           for p in sorted(Path(path).rglob("*")) if p.is_file()}}


def base_key(cfg: BaseModelConfig) -> str:
    """Key of the base model: data set, architecture and training (not probes/calibration)."""
    return cache_key("base", cfg.dataset, _dataset_source(cfg), cfg.architecture, cfg.train,
                     *([_model_source(cfg)] if _model_source(cfg) else []))


def _pruned_key(bkey: str, bsha: str, nk: dict) -> str:
    return cache_key("pruned", bkey, bsha, nk["keep"], nk["criterion"], nk["retrain_epochs"],
                     FINETUNE_LR_FACTOR)


def _sparse_key(parent: str, nk: dict, cfg: BaseModelConfig) -> str:
    return cache_key("sparse", parent, nk["sparsity"], nk["sparsity_epochs"], cfg.magnitude,
                     FINETUNE_LR_FACTOR)


def _settings(nk: dict, cfg: BaseModelConfig) -> dict:
    """The settings a variant depends on, and only those (so more variants share entries)."""
    q = nk["quantization"]
    return {"probe_per_class": cfg.probe_per_class,
            "representative_samples": cfg.representative_samples if q in ("int8", "int16x8")
            else None,
            "qat_epochs": cfg.qat_epochs if q == "int8-qat" else None,
            "magnitude": dataclasses.asdict(cfg.magnitude) if nk["sparsity"] > 0 else None,
            "lr_factor": FINETUNE_LR_FACTOR}


def _variant_key(bkey: str, bsha: str, nk: dict, cfg: BaseModelConfig) -> str:
    return cache_key("variant", bkey, bsha, nk, _settings(nk, cfg))


# ---------------------------------------------------------------------------------------------
# data (one data set memoised per process: trials load it once)
# ---------------------------------------------------------------------------------------------

_DATA_MEMO: dict[str, Dataset] = {}


def load_data(cfg: BaseModelConfig) -> Dataset:
    """The config's data set, loaded once per process (the last one asked is kept)."""
    key = canonical_json([cfg.dataset, _dataset_source(cfg)])
    if key not in _DATA_MEMO:
        _DATA_MEMO.clear()
        _DATA_MEMO[key] = load_dataset(cfg.dataset)
    return _DATA_MEMO[key]


# ---------------------------------------------------------------------------------------------
# base model
# ---------------------------------------------------------------------------------------------

def save_keras(model, path: Path) -> None:
    """Save a tf-keras model as .h5 without its optimizer (the format the stage caches)."""
    import warnings
    with warnings.catch_warnings():  # tf-keras warns that HDF5 is a legacy format: we want .h5
        warnings.simplefilter("ignore", UserWarning)
        model.save(path, include_optimizer=False, save_format="h5")


def _load_keras(path: Path):
    import mcusearch  # noqa: F401
    import tensorflow as tf
    return tf.keras.models.load_model(path, compile=False)


def base_model(cfg: BaseModelConfig, cache_dir: Path):
    """The trained base model, its data set and its cache key: ``(tf.keras.Model, Dataset, key)``.

    Trained once per base configuration (data set, architecture, training) and cached as .h5.
    A user's model file (``model.path``) is used as trained: it is trained further only for the
    ``train.epochs`` the spec gives explicitly (the spec makes it 0 otherwise, see
    :class:`mcusearch.spec.ModelSpec`).
    """
    ds = load_data(cfg)
    model, key = _base_model(cfg, ds, ModelCache(cache_dir))
    return model, ds, key


def _base_model(cfg: BaseModelConfig, ds: Dataset, cache: ModelCache):
    key = base_key(cfg)
    entry = cache.get("base", key)
    if entry is None:
        with cache.lock("base", key):
            entry = cache.get("base", key)  # another process may have built it meanwhile
            if entry is None:
                return _train_base(cfg, ds, cache, key), key
    t0 = time.perf_counter()
    model = _load_keras(entry / KERAS_FILE)
    log.info("base model: cache hit %s (%.1f s)", key[:12], time.perf_counter() - t0)
    return model, key


def _initial_model(cfg: BaseModelConfig, ds: Dataset):
    """The untrained built-in architecture, or the user's model file as it was saved."""
    from mcusearch.model.architectures import build_architecture

    if cfg.architecture.path is None:
        return build_architecture(cfg.architecture, ds.input_shape, ds.n_classes)
    from mcusearch.model.load import load_user_model
    from mcusearch.preflight import check_model_data

    model = load_user_model(cfg.architecture.path, cfg.trust_code)
    check_model_data(model_io(model), ds, str(cfg.architecture.path))
    return model


def model_io(model) -> dict:
    """Input and output shapes (one sample) and dtypes of a tf-keras model, for the checks of
    :mod:`mcusearch.preflight`."""
    return {"inputs": [tuple(t.shape[1:]) for t in model.inputs],
            "outputs": [tuple(t.shape[1:]) for t in model.outputs],
            "input_dtypes": [t.dtype.name for t in model.inputs]}


def _train_base(cfg: BaseModelConfig, ds: Dataset, cache: ModelCache, key: str):
    from mcusearch.model.architectures import channel_layout, conv_filters, conv_groups, group_widths
    from mcusearch.model.evaluate import count_macs, keras_metrics, task_args
    from mcusearch.model.train import set_seeds, train_model

    given = cfg.architecture.path is not None
    set_seeds(cfg.train.seed)  # weight initialisation is seeded too
    model = _initial_model(cfg, ds)
    if given and cfg.train.epochs == 0:
        log.info("base model: %s used as given (%d test samples of %s)", cfg.architecture.path,
                 len(ds.y_test), ds.name)
        t0 = time.perf_counter()
        metrics = keras_metrics(model, ds.x_test, ds.y_test, ds.n_classes, **task_args(ds))
        accuracy, history, seconds = metrics["accuracy"], {}, 0.0
        how = (f"the model file as given, Keras predict (float32) on the {len(ds.y_test)} test "
               f"samples of {ds.name} ({time.perf_counter() - t0:.1f} s)")
    else:
        log.info("base model: training %s on %s (%d samples, %d epochs)",
                 cfg.architecture.name or cfg.architecture.path, ds.name, len(ds.y_train),
                 cfg.train.epochs)
        result = train_model(model, ds, cfg.train, label="base")
        metrics = keras_metrics(model, ds.x_test, ds.y_test, ds.n_classes, **task_args(ds))
        accuracy, history, seconds = result.test_accuracy, result.history, result.seconds
        how = (f"{'the model file fine-tuned' if given else 'trained'} {cfg.train.epochs} "
               f"epochs, Keras evaluate (float32) on the {len(ds.y_test)} test samples of "
               f"{ds.name}")
    meta = {
        "accuracy": accuracy, "balanced_accuracy": metrics["balanced_accuracy"],
        "per_class_accuracy": metrics["per_class_accuracy"], "history": history,
        "train_seconds": seconds, "params": int(model.count_params()),
        "macs": count_macs(model), "conv_groups": [list(g) for g in conv_groups(model)],
        "group_widths": list(group_widths(model)),
        "conv_filters": {l: int(model.get_layer(l).filters) for g in conv_groups(model)
                         for l in g},
        "channels": list(conv_filters(model)), "layout": channel_layout(model),
        "input_shape": list(ds.input_shape),
        "class_names": list(ds.class_names), "n_train": len(ds.y_train),
        "n_test": len(ds.y_test), "dataset_description": ds.description,
        "frame_period_s": ds.frame_period_s,
        "source": "file" if given else "architecture", "trained_epochs": int(cfg.train.epochs),
        "metrics": metrics,
        "accuracy_figure": Figure(accuracy, "fraction", Provenance.HOST, how).to_dict(),
    }
    with cache.put("base", key, meta) as tmp:
        save_keras(model, tmp / KERAS_FILE)
        meta["weights_sha256"] = file_sha256(tmp / KERAS_FILE)
    log.info("base model: %d params, test accuracy %.4f, cached as %s", meta["params"],
             accuracy, key[:12])
    return model


# ---------------------------------------------------------------------------------------------
# knobs
# ---------------------------------------------------------------------------------------------

def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _check_knobs(knobs: ModelKnobs) -> None:
    """The checks that need no model (made before any training)."""
    if knobs.quantization not in QUANTIZATIONS:
        raise SpecError("knobs.quantization", f"must be one of {', '.join(QUANTIZATIONS)}, got "
                        f"{knobs.quantization!r}")
    if not _is_int(knobs.retrain_epochs) or int(knobs.retrain_epochs) < 0:
        raise SpecError("knobs.channels.retrain_epochs", f"must be an integer >= 0, got "
                        f"{knobs.retrain_epochs!r}")
    given = [n for n in ("channels", "layer_channels", "keep_ratio")
             if getattr(knobs, n) is not None]
    if len(given) > 1:
        raise SpecError("knobs.channels", f"give one of channels (per group), layer_channels "
                        f"(per layer) or keep_ratio, not {' and '.join(given)}")
    for name in ("channels", "layer_channels"):
        vals = getattr(knobs, name)
        if vals is not None:
            try:
                bad = any(not _is_int(c) or int(c) < 1 for c in vals)
            except TypeError:
                bad = True
            if bad:
                raise SpecError("knobs.channels", f"must be a list of integers >= 1, got "
                                f"{vals!r}")
    r = knobs.keep_ratio
    if r is not None and (isinstance(r, bool) or not isinstance(r, (int, float))
                          or not 0.0 < float(r) <= 1.0):
        raise SpecError("knobs.channels.values", f"a keep ratio must be in (0, 1], got {r!r}")
    if knobs.criterion not in CRITERIA:
        raise SpecError("knobs.channels.criterion", f"must be one of {', '.join(CRITERIA)}, "
                        f"got {knobs.criterion!r}")
    s = knobs.sparsity
    if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0.0 <= float(s) < 1.0:
        raise SpecError("knobs.magnitude.sparsity", f"must be in [0, 1), got {s!r}")
    if not _is_int(knobs.sparsity_epochs) or int(knobs.sparsity_epochs) < 1:
        raise SpecError("knobs.magnitude.epochs", f"must be an integer >= 1, got "
                        f"{knobs.sparsity_epochs!r}")


def normalise_knobs(knobs: ModelKnobs, layout: dict) -> tuple[dict, list[str]]:
    """Validated knobs in canonical form, and what was adjusted.

    ``layout``: :func:`mcusearch.model.architectures.channel_layout` of the base model. The
    filters kept are spelled out per conv (``keep``); convs coupled by a residual add keep the
    largest count asked among them, locked convs keep all filters (both noted in the second
    value). Settings that do not apply are normalised away (no criterion nor re-training at full
    width, no fine-tuning epochs without magnitude pruning), so equal models share cache entries.
    """
    _check_knobs(knobs)
    convs = list(layout["convs"])
    filters = dict(zip(convs, (int(f) for f in layout["filters"])))
    groups = [tuple(g) for g in layout["groups"]]
    if knobs.layer_channels is not None:
        vals = tuple(int(c) for c in knobs.layer_channels)
        if len(vals) != len(convs):
            raise SpecError("knobs.channels", f"needs {len(convs)} value(s), one per conv layer "
                            f"({', '.join(convs) or 'none'}), got {len(vals)}: {vals}")
        for n, c in zip(convs, vals):
            if not 1 <= c <= filters[n]:
                raise SpecError("knobs.channels", f"{n}: keep between 1 and {filters[n]} "
                                f"filters, got {c}")
        keep = dict(zip(convs, vals))
    elif knobs.channels is not None:
        vals = tuple(int(c) for c in knobs.channels)
        if len(vals) != len(groups):
            raise SpecError("knobs.channels", f"needs {len(groups)} value(s), one per conv "
                            f"group ({'; '.join('+'.join(g) for g in groups) or 'none'}), got "
                            f"{len(vals)}: {vals}")
        keep = dict(filters)
        for g, c in zip(groups, vals):
            most = min(filters[n] for n in g)
            if not 1 <= c <= most:
                raise SpecError("knobs.channels", f"group {'+'.join(g)}: keep between 1 and "
                                f"{most} filters, got {c}")
            keep.update({n: c for n in g})
    elif knobs.keep_ratio is not None:
        r = float(knobs.keep_ratio)
        keep = {n: max(1, math.floor(r * f + 0.5)) for n, f in filters.items()}
    else:
        keep = dict(filters)
    adjusted = []
    for c in layout.get("coupled", []):
        most = max(keep[n] for n in c)
        if any(keep[n] != most for n in c):
            adjusted.append(f"{'+'.join(c)} meet in a residual add: each keeps {most}")
            keep.update({n: most for n in c})
    for n in layout.get("locked", []):
        if keep[n] != filters[n]:
            adjusted.append(f"{n} keeps all {filters[n]} filters (its channels reach a layer "
                            "they cannot be removed through)")
            keep[n] = filters[n]
    full = all(keep[n] == filters[n] for n in convs)
    sparsity = round(float(knobs.sparsity), 6)
    nk = {"keep": [[n, keep[n]] for n in convs], "channels": [keep[n] for n in convs],
          "full_width": full, "criterion": None if full else knobs.criterion,
          "retrain_epochs": 0 if full else int(knobs.retrain_epochs),
          "sparsity": sparsity, "sparsity_epochs": int(knobs.sparsity_epochs) if sparsity else 0,
          "quantization": knobs.quantization, "format": QUANT_FORMAT[knobs.quantization]}
    return nk, adjusted


# ---------------------------------------------------------------------------------------------
# the chain of float models: base -> pruned -> sparse
# ---------------------------------------------------------------------------------------------

class _Chain:
    """Builds (or loads from the cache) the float model of the knobs, lazily."""

    def __init__(self, cfg: BaseModelConfig, cache: ModelCache, bkey: str, bmeta: dict,
                 nk: dict, adjusted: list[str], ds: Dataset, base=None):
        self.cfg, self.cache, self.bkey, self.bmeta = cfg, cache, bkey, bmeta
        self.nk, self.adjusted, self.ds, self._base = nk, adjusted, ds, base
        self.timings: dict[str, float] = {}
        self.info: dict = {}

    def base(self):
        if self._base is None:
            self._base, _ = _base_model(self.cfg, self.ds, self.cache)
        return self._base

    def pruned(self):
        """(model, its cache key) after channel pruning; the base model at full width."""
        if self.nk["full_width"]:
            self.info["pruning"] = {"pruned": False}
            return self.base(), self.bkey
        pkey = _pruned_key(self.bkey, self.bmeta["weights_sha256"], self.nk)
        with self.cache.lock("pruned", pkey):
            entry = self.cache.get("pruned", pkey)
            if entry is not None:
                log.info("pruned model %s: cache hit %s", self.nk["channels"], pkey[:12])
                self._pruned_info(pkey)
                return _load_keras(entry / KERAS_FILE), pkey
            return self._prune(pkey), pkey

    def _pruned_info(self, pkey: str) -> None:
        meta = self.cache.meta("pruned", pkey) or {}
        self.info["pruning"] = {"pruned": True, "cache": "hit", **{
            k: meta.get(k) for k in ("deleted", "engine", "criterion", "retrain_history",
                                     "accuracy", "adjusted")}}

    def _prune(self, pkey: str):
        from mcusearch.model.evaluate import keras_accuracy
        from mcusearch.model.prune import prune_channels

        keep = {n: int(c) for n, c in self.nk["keep"]}
        report: dict = {}
        t0 = time.perf_counter()
        model = prune_channels(self.base(), keep, self.ds, self.nk["retrain_epochs"],
                               train_cfg=self.cfg.train, lr_factor=FINETUNE_LR_FACTOR,
                               report=report, criterion=self.nk["criterion"])
        self.timings["prune_and_retrain"] = time.perf_counter() - t0
        retrain = report.get("retrain")
        acc = (retrain.test_accuracy if retrain is not None
               else keras_accuracy(model, self.ds.x_test, self.ds.y_test))
        meta = {"accuracy": acc, "keep": self.nk["keep"], "channels": self.nk["channels"],
                "criterion": self.nk["criterion"], "retrain_epochs": self.nk["retrain_epochs"],
                "retrain_lr_factor": FINETUNE_LR_FACTOR, "deleted": report.get("deleted", {}),
                "engine": report.get("engine"),
                "kerassurgeon_error": report.get("kerassurgeon_error"),
                "retrain_history": retrain.history if retrain else {}, "base_key": self.bkey,
                "adjusted": self.adjusted}
        with self.cache.put("pruned", pkey, meta) as tmp:
            save_keras(model, tmp / KERAS_FILE)
        self.info["pruning"] = {"pruned": True, "cache": "miss", **{
            k: meta[k] for k in ("deleted", "engine", "criterion", "retrain_history", "accuracy",
                                 "adjusted")}}
        return model

    def final(self):
        """The float model after channel and magnitude pruning."""
        if not self.nk["sparsity"]:
            self.info["magnitude"] = None
            return self.pruned()[0]
        parent_key = (self.bkey if self.nk["full_width"]
                      else _pruned_key(self.bkey, self.bmeta["weights_sha256"], self.nk))
        skey = _sparse_key(parent_key, self.nk, self.cfg)
        with self.cache.lock("sparse", skey):
            entry = self.cache.get("sparse", skey)
            if entry is not None:
                meta = self.cache.meta("sparse", skey)
                log.info("magnitude-pruned model %.3g: cache hit %s", self.nk["sparsity"],
                         skey[:12])
                self.info["magnitude"] = {"cache": "hit", **meta["magnitude"]}
                if self.nk["full_width"]:
                    self.info["pruning"] = {"pruned": False}
                else:
                    self._pruned_info(parent_key)
                return _load_keras(entry / KERAS_FILE)
            parent_model, _ = self.pruned()
            from mcusearch.model.magnitude import magnitude_prune

            report: dict = {}
            t0 = time.perf_counter()
            model = magnitude_prune(parent_model, self.ds, self.nk["sparsity"],
                                    self.nk["sparsity_epochs"], self.cfg.train,
                                    self.cfg.magnitude, FINETUNE_LR_FACTOR, report)
            self.timings["magnitude_prune"] = time.perf_counter() - t0
            mag = {"target": self.nk["sparsity"], "epochs": self.nk["sparsity_epochs"],
                   "schedule": report["schedule"], "accuracy": report["train"].test_accuracy,
                   "history": report["train"].history, "real": report["real"]}
            with self.cache.put("sparse", skey, {"magnitude": mag, "parent": parent_key}) as tmp:
                save_keras(model, tmp / KERAS_FILE)
            self.info["magnitude"] = {"cache": "miss", **mag}
            return model


def probe_indices(y: np.ndarray, n_classes: int, per_class: int) -> np.ndarray:
    """The first ``per_class`` samples of every class in ``y``, class by class (deterministic);
    without classes (regression, ``n_classes`` 0) the first ``per_class`` samples."""
    if n_classes == 0:
        return np.arange(min(per_class, len(y)), dtype=np.int64)
    idx = []
    for c in range(n_classes):
        found = np.flatnonzero(np.asarray(y) == c)[:per_class]
        if len(found) < per_class:
            log.warning("probe inputs: class %d has only %d test samples", c, len(found))
        idx.append(found)
    return np.concatenate(idx).astype(np.int64) if idx else np.zeros(0, np.int64)


# ---------------------------------------------------------------------------------------------
# the stage
# ---------------------------------------------------------------------------------------------

def _base_meta(cfg: BaseModelConfig, cache: ModelCache):
    """(base key, base meta, data set or None, base model or None), training it if needed."""
    bkey = base_key(cfg)
    bmeta = cache.meta("base", bkey)
    if bmeta is not None:
        return bkey, bmeta, None, None
    ds = load_data(cfg)
    base, bkey = _base_model(cfg, ds, cache)
    return bkey, cache.meta("base", bkey), ds, base


def build_model(cfg: BaseModelConfig, knobs: ModelKnobs, cache_dir: Path,
                out_dir: Path | None = None) -> ModelResult:
    """Turn ``knobs`` into a finished model and its host-side figures (cached).

    Channel-prunes the base model and re-trains it, magnitude-prunes it, quantises it as the
    knobs say, evaluates it on the test split (Keras for float32, the TFLite interpreter for
    the quantised formats: accuracy, balanced accuracy, per-class accuracy), records the real
    sparsity per layer (float kernels, and the quantised weights' zero fraction), counts
    parameters and MACs and picks the probe inputs the firmware runs. With ``out_dir`` the
    model files are copied there and the result points at the copies; otherwise it points
    into the cache.

    A ``.tflite`` base model (``model.path``) is used as it is: the model knobs do not apply to it
    (see :mod:`mcusearch.preflight`); it is evaluated once with the TFLite interpreter.
    """
    t_start = time.perf_counter()
    _check_knobs(knobs)
    cache = ModelCache(Path(cache_dir))
    given = tflite_base(cfg)
    if given is not None:
        return _publish(_tflite_variant(cfg, given, cache, t_start), out_dir)
    bkey, bmeta, ds, base = _base_meta(cfg, cache)
    nk, adjusted = normalise_knobs(knobs, bmeta["layout"])
    vkey = _variant_key(bkey, bmeta["weights_sha256"], nk, cfg)

    entry = cache.get("variant", vkey)
    if entry is None:
        with cache.lock("variant", vkey):
            if cache.get("variant", vkey) is None:
                if ds is None:
                    ds = load_data(cfg)
                chain = _Chain(cfg, cache, bkey, bmeta, nk, adjusted, ds, base)
                result = _build_variant(cfg, chain, cache, vkey)
                result.extra["seconds"]["total"] = time.perf_counter() - t_start
                return _publish(result, out_dir)
            entry = cache.get("variant", vkey)
    result = _read_variant(entry, vkey)
    result.extra["cache"] = "hit"
    result.extra["seconds"] = {"total": time.perf_counter() - t_start}
    log.info("model %s %s sparsity %g: cache hit %s, accuracy %.4f", nk["channels"],
             nk["quantization"], nk["sparsity"], vkey[:12], result.accuracy)
    return _publish(result, out_dir)


def _build_variant(cfg: BaseModelConfig, chain: _Chain, cache: ModelCache,
                   vkey: str) -> ModelResult:
    t_start = time.perf_counter()
    ds, nk, timings = chain.ds, chain.nk, chain.timings

    from mcusearch.model.architectures import conv_filters
    from mcusearch.model.evaluate import (count_macs, count_params, keras_metrics,
                                          keras_predict, task_args, tflite_io, tflite_metrics,
                                          tflite_predict)
    from mcusearch.model.footprint import footprint
    from mcusearch.model.magnitude import weight_sparsity
    from mcusearch.model.quantize import (qat_int8_tflite, tflite_weight_zeros,
                                          to_int8_tflite, to_int16x8_tflite)

    model = chain.final()
    t0 = time.perf_counter()
    fmetrics = keras_metrics(model, ds.x_test, ds.y_test, ds.n_classes, **task_args(ds))
    timings["evaluate_float"] = time.perf_counter() - t0
    pidx = probe_indices(ds.y_test, ds.n_classes, cfg.probe_per_class)
    probe_x, probe_y = ds.x_test[pidx].astype(np.float32), ds.y_test[pidx].astype(np.int64)
    sparsity = weight_sparsity(model)
    fmt = nk["format"]
    meta = {
        "knobs": nk, "adjusted": chain.adjusted, "base_key": chain.bkey,
        "settings": _settings(nk, cfg), "float_accuracy": fmetrics["accuracy"],
        "float_metrics": fmetrics, "base_accuracy": float(chain.bmeta["accuracy"]),
        "params": count_params(model), "macs": count_macs(model),
        "channels": list(conv_filters(model)), "input_shape": list(ds.input_shape),
        "class_names": list(ds.class_names), "n_test": len(ds.y_test),
        "n_train": len(ds.y_train), "dataset": ds.name,
        "dataset_description": ds.description, "frame_period_s": ds.frame_period_s,
        "probe_test_indices": pidx.tolist(), "pruning": chain.info.get("pruning"),
        "magnitude": chain.info.get("magnitude"), "weight_sparsity": sparsity,
        "footprint": footprint(model, fmt, nk["sparsity"],
                               nonzero=sparsity["nonzero_params"]).to_dict(),
    }
    with cache.put("variant", vkey, meta) as tmp:
        save_keras(model, tmp / KERAS_FILE)
        arrays = {"inputs": probe_x, "labels": probe_y,
                  "keras_outputs": keras_predict(model, probe_x).astype(np.float32)}
        if fmt == "float32":
            metrics = fmetrics
            method = f"Keras predict (float32) on the {len(ds.y_test)} test samples of {ds.name}"
        else:
            tfl = tmp / TFLITE_FILES[fmt]
            t0 = time.perf_counter()
            if nk["quantization"] == "int8-qat":
                report: dict = {}
                qat_int8_tflite(model, ds, cfg.qat_epochs, cfg.train, tfl,
                                preserve_sparsity=nk["sparsity"] > 0,
                                lr_factor=FINETUNE_LR_FACTOR, report=report)
                meta["qat"] = {"epochs": cfg.qat_epochs, "scheme": report["scheme"],
                               "keras_accuracy": report["train"].test_accuracy,
                               "history": report["train"].history}
                how = f"int8 quantisation-aware training ({cfg.qat_epochs} epochs)"
            else:
                rep_x, rep_how = calibration_inputs(ds, cfg.representative_samples)
                (to_int8_tflite if fmt == "int8" else to_int16x8_tflite)(model, rep_x, tfl)
                meta["representative_samples"] = len(rep_x)
                how = f"{fmt} post-training quantisation (calibrated on {rep_how})"
            timings["quantize"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            metrics = tflite_metrics(tfl, ds.x_test, ds.y_test, ds.n_classes, **task_args(ds))
            timings[f"evaluate_{fmt}"] = time.perf_counter() - t0
            arrays["tflite_outputs"] = tflite_predict(tfl, probe_x, dequantize=False)
            meta["tflite_io"] = tflite_io(tfl)
            meta["tflite_weights"] = tflite_weight_zeros(tfl)
            meta["quantization_method"] = how
            method = (f"TFLite interpreter, built-in kernels ({fmt} in/out; {how}) on the "
                      f"{len(ds.y_test)} test samples of {ds.name}")
        meta["metrics"] = metrics
        meta["accuracy"] = metrics["accuracy"]
        meta["accuracy_figure"] = Figure(metrics["accuracy"], "fraction", Provenance.HOST,
                                         method).to_dict()
        meta["timings"] = timings
        np.savez(tmp / PROBES_FILE, **arrays)
    entry = cache.get("variant", vkey)
    result = _read_variant(entry, vkey)
    result.extra["cache"] = "miss"
    timings["total"] = time.perf_counter() - t_start
    result.extra["seconds"] = timings
    log.info("model %s %s sparsity %g: %d params, %d MACs, accuracy %.4f (balanced %.4f, float "
             "%.4f) in %.1f s", nk["channels"], nk["quantization"], nk["sparsity"],
             result.params, result.macs, result.accuracy, result.balanced_accuracy,
             fmetrics["accuracy"], timings["total"])
    return result


def tflite_base(cfg: BaseModelConfig):
    """The :class:`~mcusearch.model.load.TfliteBase` the config's ``.tflite`` model file is, or
    None for a Keras model or a built-in architecture."""
    path = cfg.architecture.path
    if path is None or Path(path).suffix.lower() != ".tflite":
        return None
    from mcusearch.model.load import describe_tflite
    return describe_tflite(path)


def _tflite_variant(cfg: BaseModelConfig, given, cache: ModelCache, t_start: float
                    ) -> ModelResult:
    """The finished model of a ``.tflite`` base: the file as it is, evaluated once (cached)."""
    vkey = cache_key("variant", "tflite", cfg.dataset, _dataset_source(cfg), cfg.architecture,
                     cfg.probe_per_class)
    with cache.lock("variant", vkey):
        if cache.get("variant", vkey) is None:
            _evaluate_tflite(cfg, given, cache, vkey)
    result = _read_variant(cache.get("variant", vkey), vkey)
    result.extra["seconds"] = {"total": time.perf_counter() - t_start}
    return result


def _evaluate_tflite(cfg: BaseModelConfig, given, cache: ModelCache, vkey: str) -> None:
    from mcusearch.model.evaluate import task_args, tflite_io, tflite_metrics, tflite_predict
    from mcusearch.preflight import check_model_data

    ds = load_data(cfg)
    check_model_data({"inputs": [given.input_shape], "outputs": [given.output_shape],
                      "input_dtypes": [given.input_dtype]}, ds, str(given.path))
    fmt = given.quantization
    metrics = tflite_metrics(given.path, ds.x_test, ds.y_test, ds.n_classes, **task_args(ds))
    pidx = probe_indices(ds.y_test, ds.n_classes, cfg.probe_per_class)
    probe_x, probe_y = ds.x_test[pidx].astype(np.float32), ds.y_test[pidx].astype(np.int64)
    how = (f"TFLite interpreter, built-in kernels, on the {fmt} .tflite file as given "
           f"({given.path.name}), {len(ds.y_test)} test samples of {ds.name}")
    nk = {"keep": [], "channels": [], "full_width": True, "criterion": None, "retrain_epochs": 0,
          "sparsity": 0.0, "sparsity_epochs": 0, "quantization": fmt, "format": fmt}
    meta = {"knobs": nk, "adjusted": [], "source": "tflite", "tflite_file": given.path.name,
            "metrics": metrics, "accuracy": metrics["accuracy"],
            "base_accuracy": metrics["accuracy"],
            "accuracy_figure": Figure(metrics["accuracy"], "fraction", Provenance.HOST,
                                      how).to_dict(),
            "params": given.params, "macs": given.macs, "channels": [],
            "input_shape": list(ds.input_shape), "class_names": list(ds.class_names),
            "n_test": len(ds.y_test), "n_train": len(ds.y_train), "dataset": ds.name,
            "dataset_description": ds.description, "frame_period_s": ds.frame_period_s,
            "probe_test_indices": pidx.tolist(), "tflite_io": tflite_io(given.path),
            "quantization_method": f"none: the {fmt} .tflite file as given"}
    with cache.put("variant", vkey, meta) as tmp:
        shutil.copyfile(given.path, tmp / given.path.name)
        np.savez(tmp / PROBES_FILE, inputs=probe_x, labels=probe_y,
                 tflite_outputs=tflite_predict(given.path, probe_x, dequantize=False))
    log.info("model: %s used as given, accuracy %.4f", given.path.name, metrics["accuracy"])


def _read_variant(entry: Path, vkey: str) -> ModelResult:
    meta = json.loads((entry / COMPLETE).read_text())
    with np.load(entry / PROBES_FILE) as z:
        arrays = {k: z[k] for k in z.files}
    fmt = meta["knobs"]["format"]
    extra = {k: meta[k] for k in (
        "float_accuracy", "float_metrics", "base_accuracy", "base_key", "n_test", "n_train",
        "dataset", "dataset_description", "frame_period_s", "probe_test_indices", "pruning",
        "magnitude", "weight_sparsity", "footprint", "accuracy_figure", "timings", "metrics",
        "adjusted", "settings", "qat", "tflite_weights", "quantization_method") if k in meta}
    extra["knobs"] = meta["knobs"]
    extra["quantization_knob"] = meta["knobs"]["quantization"]
    if "keras_outputs" in arrays:
        extra["probe_keras_outputs"] = arrays["keras_outputs"]
    if "tflite_outputs" in arrays:
        extra["probe_tflite_outputs"] = arrays["tflite_outputs"]
        extra["tflite_io"] = meta["tflite_io"]
        if "representative_samples" in meta:
            extra["representative_samples"] = meta["representative_samples"]
    m = meta["metrics"]
    tflite = meta.get("tflite_file") or TFLITE_FILES.get(fmt)
    return ModelResult(
        keras_path=(entry / KERAS_FILE) if (entry / KERAS_FILE).is_file() else None,
        tflite_path=(entry / tflite) if tflite else None,
        quantization=fmt, accuracy=float(meta["accuracy"]), params=int(meta["params"]),
        macs=int(meta["macs"]), input_shape=tuple(meta["input_shape"]),
        class_names=tuple(meta["class_names"]), probe_inputs=arrays["inputs"],
        probe_labels=arrays["labels"], cache_key=vkey, channels=tuple(meta["channels"]),
        extra=extra, balanced_accuracy=float(m["balanced_accuracy"]),
        per_class_accuracy=tuple(float(v) for v in m["per_class_accuracy"]),
    )


def _publish(result: ModelResult, out_dir: Path | None) -> ModelResult:
    """Copy the model files to ``out_dir`` (a trial's folder) and point the result at them."""
    if out_dir is None:
        return result
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if result.keras_path is not None:
        dst = out_dir / KERAS_FILE
        shutil.copyfile(result.keras_path, dst)
        result.keras_path = dst
    if result.tflite_path is not None:
        dst = out_dir / result.tflite_path.name
        shutil.copyfile(result.tflite_path, dst)
        result.tflite_path = dst
    return result


# ---------------------------------------------------------------------------------------------
# early rejection: the candidate's exact size before any training
# ---------------------------------------------------------------------------------------------

def candidate_footprint(cfg: BaseModelConfig, knobs: ModelKnobs, cache_dir: Path):
    """The :class:`~mcusearch.model.footprint.Footprint` of the model ``knobs`` describe, from
    its shapes alone: the architecture (untrained, or the user's file) shrunk by the channel
    knobs, stored in the knobs' format, magnitude-pruned to the knobs' sparsity.

    Needs no training (the base model's layout is taken from the cache when it is there, else
    from the architecture built on the data set's shapes) and is cached itself, so a trial that
    is later a cache hit pays nothing for it.
    """
    from mcusearch.model.footprint import Footprint

    _check_knobs(knobs)
    given = tflite_base(cfg)
    if given is not None:
        return Footprint(format=given.quantization, sparsity=0.0, params=given.params,
                         pruned_weights=0, nonzero_params=given.params,
                         flash_bytes=given.weight_bytes,
                         activation_bytes=given.largest_activation_bytes,
                         largest_activation="the largest tensor of the .tflite model",
                         pingpong_bytes=given.largest_activation_bytes)
    cache = ModelCache(Path(cache_dir))
    bkey = base_key(cfg)
    bmeta = cache.meta("base", bkey)
    model = layout = None
    if bmeta is not None:
        shape, n_classes, layout = bmeta["input_shape"], len(bmeta["class_names"]), bmeta["layout"]
    else:
        ds = load_data(cfg)
        shape, n_classes = ds.input_shape, ds.n_classes
    if layout is None:
        model = _architecture(cfg, shape, n_classes)
        from mcusearch.model.architectures import channel_layout
        layout = channel_layout(model)
    nk, _ = normalise_knobs(knobs, layout)
    fkey = cache_key("footprint", cfg.dataset, _dataset_source(cfg), cfg.architecture,
                     list(shape), n_classes, nk["keep"], nk["format"], nk["sparsity"])
    meta = cache.meta("footprint", fkey)
    if meta is not None:
        return Footprint(**meta["footprint"])
    from mcusearch.model.footprint import footprint
    from mcusearch.model.prune import remove_channels

    if model is None:
        model = _architecture(cfg, shape, n_classes)
    filters = dict(zip(layout["convs"], layout["filters"]))
    # which filters go does not change any size: drop the last ones (the same in coupled convs)
    delete = {n: list(range(c, filters[n])) for n, c in nk["keep"] if c < filters[n]}
    shrunk = remove_channels(model, delete) if delete else model
    fp = footprint(shrunk, nk["format"], nk["sparsity"])
    with cache.put("footprint", fkey, {"footprint": fp.to_dict(), "knobs": nk}):
        pass
    return fp


def _architecture(cfg: BaseModelConfig, shape, n_classes: int):
    """The built-in architecture on these shapes, or the user's model file."""
    if cfg.architecture.path is not None:
        from mcusearch.model.load import load_user_model
        return load_user_model(cfg.architecture.path, cfg.trust_code)
    from mcusearch.model.architectures import build_architecture
    return build_architecture(cfg.architecture, tuple(shape), int(n_classes))
