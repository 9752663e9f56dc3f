"""The model stage: knobs -> a trained, channel-pruned, possibly int8 model, evaluated on the host.

Three cache levels (see :mod:`mcusearch.model.cache`), so a trial only pays for what is new:

* ``base``: the architecture trained on the data set (once per base configuration);
* ``pruned``: the base with fewer filters per conv group, re-trained (shared by the float32
  and int8 trials of the same channel counts);
* ``variant``: the finished :class:`ModelResult` (model files, accuracy, params, MACs, probes).
  A hit needs neither TensorFlow nor the data set.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np

from mcusearch.errors import SpecError
from mcusearch.figures import Figure, Provenance
from mcusearch.model import BaseModelConfig, Dataset, ModelKnobs, ModelResult
from mcusearch.model.cache import COMPLETE, ModelCache, cache_key, file_sha256
from mcusearch.model.datasets import load_dataset, stratified_indices, watch_data_path

log = logging.getLogger("mcusearch.model")

QUANTIZATIONS = ("float32", "int8")
KERAS_FILE = "model.h5"
TFLITE_FILE = "model_int8.tflite"
PROBES_FILE = "probes.npz"


# ---------------------------------------------------------------------------------------------
# keys
# ---------------------------------------------------------------------------------------------

def _dataset_source(cfg: BaseModelConfig) -> dict:
    """What identifies the data beyond the config: the built-in file's contents."""
    if cfg.dataset.name == "watch":
        return {"watch_dataset.npy": file_sha256(watch_data_path())}
    return {}


def base_key(cfg: BaseModelConfig) -> str:
    """Key of the base model: data set, architecture and training (not probes/calibration)."""
    return cache_key("base", cfg.dataset, _dataset_source(cfg), cfg.architecture, cfg.train)


def _pruned_key(bkey: str, channels: tuple[int, ...], retrain_epochs: int) -> str:
    from mcusearch.model.prune import RETRAIN_LR_FACTOR
    return cache_key("pruned", bkey, list(channels), retrain_epochs, RETRAIN_LR_FACTOR)


def _variant_key(bkey: str, knobs: dict, cfg: BaseModelConfig) -> str:
    return cache_key("variant", bkey, knobs, cfg.probe_per_class, cfg.representative_samples)


# ---------------------------------------------------------------------------------------------
# base model
# ---------------------------------------------------------------------------------------------

def _save_keras(model, path: Path) -> None:
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
    A user's model (``architecture.path``) is trained from the weights it was saved with for
    ``train.epochs`` epochs (0 keeps it as it is).
    """
    ds = load_dataset(cfg.dataset)
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


def _train_base(cfg: BaseModelConfig, ds: Dataset, cache: ModelCache, key: str):
    from mcusearch.model.architectures import (build_architecture, conv_filters, conv_groups,
                                               group_widths)
    from mcusearch.model.evaluate import count_macs
    from mcusearch.model.train import set_seeds, train_model

    log.info("base model: training %s on %s (%d samples, %d epochs)",
             cfg.architecture.name or cfg.architecture.path, ds.name, len(ds.y_train),
             cfg.train.epochs)
    set_seeds(cfg.train.seed)  # weight initialisation is seeded too
    model = build_architecture(cfg.architecture, ds.input_shape, ds.n_classes)
    result = train_model(model, ds, cfg.train, label="base")
    meta = {
        "accuracy": result.test_accuracy, "history": result.history,
        "train_seconds": result.seconds, "params": int(model.count_params()),
        "macs": count_macs(model), "conv_groups": [list(g) for g in conv_groups(model)],
        "group_widths": list(group_widths(model)),
        "conv_filters": {l: int(model.get_layer(l).filters) for g in conv_groups(model)
                         for l in g},
        "channels": list(conv_filters(model)), "input_shape": list(ds.input_shape),
        "class_names": list(ds.class_names), "n_train": len(ds.y_train),
        "n_test": len(ds.y_test), "dataset_description": ds.description,
        "frame_period_s": ds.frame_period_s,
    }
    with cache.put("base", key, meta) as tmp:
        _save_keras(model, tmp / KERAS_FILE)
    log.info("base model: %d params, test accuracy %.4f, cached as %s", meta["params"],
             result.test_accuracy, key[:12])
    return model


# ---------------------------------------------------------------------------------------------
# knobs
# ---------------------------------------------------------------------------------------------

def _check_knobs(knobs: ModelKnobs) -> None:
    """The checks that need no model (made before any training)."""
    if knobs.quantization not in QUANTIZATIONS:
        raise SpecError("knobs.quantization", f"must be one of {', '.join(QUANTIZATIONS)}, got "
                        f"{knobs.quantization!r}")
    if isinstance(knobs.retrain_epochs, bool) or int(knobs.retrain_epochs) < 0:
        raise SpecError("knobs.retrain_epochs", f"must be an integer >= 0, got "
                        f"{knobs.retrain_epochs!r}")
    if knobs.channels is not None:
        try:
            bad = any(int(c) < 1 for c in knobs.channels)
        except (TypeError, ValueError):
            bad = True
        if bad:
            raise SpecError("knobs.channels", f"must be a list of integers >= 1, one per conv "
                            f"group, got {knobs.channels!r}")


def _normalise_knobs(knobs: ModelKnobs, meta: dict) -> dict:
    """Validated knobs in canonical form: channels spelled out, re-training only when pruned."""
    _check_knobs(knobs)
    groups = [tuple(g) for g in meta["conv_groups"]]
    widths = tuple(int(w) for w in meta["group_widths"])
    if knobs.channels is None:
        channels = widths
    else:
        try:
            channels = tuple(int(c) for c in knobs.channels)
        except (TypeError, ValueError):
            raise SpecError("knobs.channels", f"must be a list of integers, one per conv group, "
                            f"got {knobs.channels!r}") from None
        if len(channels) != len(groups):
            raise SpecError("knobs.channels", f"needs {len(groups)} value(s), one per conv "
                            f"group ({'; '.join('+'.join(g) for g in groups) or 'none'}), got "
                            f"{len(channels)}: {channels}")
        for g, n in zip(groups, channels):
            most = min(int(meta["conv_filters"][l]) for l in g)
            if not 1 <= n <= most:
                raise SpecError("knobs.channels", f"group {'+'.join(g)}: keep between 1 and "
                                f"{most} filters, got {n}")
    full = channels == widths
    retrain = int(knobs.retrain_epochs)
    return {"channels": list(channels), "quantization": knobs.quantization,
            "retrain_epochs": 0 if full else retrain, "full_width": full}


def _pruned_model(get_base, ds: Dataset, cfg: BaseModelConfig, bkey: str, nk: dict,
                  cache: ModelCache, timings: dict):
    """(model, float test accuracy, info) for the knobs' channel counts (the base if full).
    ``get_base()`` returns the base model; it is only called when needed."""
    if nk["full_width"]:
        return get_base(), float(cache.meta("base", bkey)["accuracy"]), {"pruned": False}

    pkey = _pruned_key(bkey, tuple(nk["channels"]), nk["retrain_epochs"])
    with cache.lock("pruned", pkey):
        return _pruned_locked(get_base, ds, cfg, bkey, nk, cache, timings, pkey)


def _pruned_locked(get_base, ds, cfg, bkey, nk, cache, timings, pkey):
    from mcusearch.model.evaluate import keras_accuracy
    entry = cache.get("pruned", pkey)
    if entry is not None:
        meta = cache.meta("pruned", pkey)
        model = _load_keras(entry / KERAS_FILE)
        log.info("pruned model %s: cache hit %s", nk["channels"], pkey[:12])
        return model, float(meta["accuracy"]), {"pruned": True, "cache": "hit",
                                                 **{k: meta[k] for k in ("retrain_history",
                                                                         "deleted")}}

    from mcusearch.model.prune import RETRAIN_LR_FACTOR, channels_to_keep, prune_channels
    base = get_base()
    keep = channels_to_keep(base, tuple(nk["channels"]))
    report: dict = {}
    t0 = time.perf_counter()
    model = prune_channels(base, keep, ds, nk["retrain_epochs"], train_cfg=cfg.train,
                           report=report)
    timings["prune_and_retrain"] = time.perf_counter() - t0
    retrain = report.get("retrain")
    if retrain is not None:
        acc = retrain.test_accuracy
    else:
        t0 = time.perf_counter()
        acc = keras_accuracy(model, ds.x_test, ds.y_test)
        timings["evaluate_float"] = time.perf_counter() - t0
    meta = {"accuracy": acc, "channels": nk["channels"], "retrain_epochs": nk["retrain_epochs"],
            "retrain_lr_factor": RETRAIN_LR_FACTOR, "deleted": report.get("deleted", {}),
            "retrain_history": retrain.history if retrain else {}, "base_key": bkey}
    with cache.put("pruned", pkey, meta) as tmp:
        _save_keras(model, tmp / KERAS_FILE)
    return model, acc, {"pruned": True, "cache": "miss", "retrain_history": meta[
        "retrain_history"], "deleted": meta["deleted"]}


def probe_indices(y: np.ndarray, n_classes: int, per_class: int) -> np.ndarray:
    """The first ``per_class`` samples of every class in ``y``, class by class (deterministic)."""
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

def build_model(cfg: BaseModelConfig, knobs: ModelKnobs, cache_dir: Path,
                out_dir: Path | None = None) -> ModelResult:
    """Turn ``knobs`` into a finished model and its host-side figures (cached).

    Channel-prunes the base model (lowest L1 filters) and re-trains it when ``knobs.channels``
    is not the full width, quantises it to int8 when asked, evaluates accuracy on the test
    split (Keras for float32, the TFLite interpreter for int8), counts parameters and MACs
    and picks the probe inputs the firmware runs. With ``out_dir`` the model files are copied
    there and the result points at the copies; otherwise it points into the cache.
    """
    t_start = time.perf_counter()
    _check_knobs(knobs)
    cache_dir = Path(cache_dir)
    cache = ModelCache(cache_dir)
    bkey = base_key(cfg)
    base = ds = None
    bmeta = cache.meta("base", bkey)
    if bmeta is None:
        ds = load_dataset(cfg.dataset)
        base, bkey = _base_model(cfg, ds, cache)
        bmeta = cache.meta("base", bkey)
    nk = _normalise_knobs(knobs, bmeta)
    vkey = _variant_key(bkey, nk, cfg)

    entry = cache.get("variant", vkey)
    if entry is None:
        with cache.lock("variant", vkey):
            if cache.get("variant", vkey) is None:
                result = _build_variant(cfg, nk, cache, bkey, bmeta, vkey, ds, base)
                result.extra["seconds"]["total"] = time.perf_counter() - t_start
                return _publish(result, out_dir)
            entry = cache.get("variant", vkey)
    result = _read_variant(entry, vkey)
    result.extra["cache"] = "hit"
    result.extra["seconds"] = {"total": time.perf_counter() - t_start}
    log.info("model %s %s: cache hit %s, accuracy %.4f", nk["channels"],
             nk["quantization"], vkey[:12], result.accuracy)
    return _publish(result, out_dir)


def _build_variant(cfg: BaseModelConfig, nk: dict, cache: ModelCache, bkey: str, bmeta: dict,
                   vkey: str, ds: Dataset | None, base) -> ModelResult:
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    if ds is None:
        ds = load_dataset(cfg.dataset)

    def get_base():
        nonlocal base
        if base is None:
            base, _ = _base_model(cfg, ds, cache)
        return base

    from mcusearch.model.architectures import conv_filters
    from mcusearch.model.evaluate import (count_macs, count_params, keras_predict,
                                          tflite_accuracy, tflite_io, tflite_predict)
    from mcusearch.model.quantize import to_int8_tflite

    model, float_acc, pinfo = _pruned_model(get_base, ds, cfg, bkey, nk, cache, timings)
    pidx = probe_indices(ds.y_test, ds.n_classes, cfg.probe_per_class)
    probe_x, probe_y = ds.x_test[pidx].astype(np.float32), ds.y_test[pidx].astype(np.int64)
    meta = {
        "knobs": nk, "base_key": bkey, "float_accuracy": float_acc,
        "base_accuracy": float(bmeta["accuracy"]), "params": count_params(model),
        "macs": count_macs(model), "channels": list(conv_filters(model)),
        "input_shape": list(ds.input_shape), "class_names": list(ds.class_names),
        "n_test": len(ds.y_test), "n_train": len(ds.y_train), "dataset": ds.name,
        "dataset_description": ds.description, "frame_period_s": ds.frame_period_s,
        "probe_test_indices": pidx.tolist(), "pruning": pinfo,
    }
    with cache.put("variant", vkey, meta) as tmp:
        _save_keras(model, tmp / KERAS_FILE)
        arrays = {"inputs": probe_x, "labels": probe_y,
                  "keras_outputs": keras_predict(model, probe_x).astype(np.float32)}
        if nk["quantization"] == "int8":
            rep_idx = stratified_indices(ds.y_train, cfg.representative_samples)
            t0 = time.perf_counter()
            to_int8_tflite(model, ds.x_train[rep_idx], tmp / TFLITE_FILE)
            timings["quantize"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            acc = tflite_accuracy(tmp / TFLITE_FILE, ds.x_test, ds.y_test)
            timings["evaluate_int8"] = time.perf_counter() - t0
            arrays["tflite_outputs"] = tflite_predict(tmp / TFLITE_FILE, probe_x,
                                                      dequantize=False)
            meta["tflite_io"] = tflite_io(tmp / TFLITE_FILE)
            meta["representative_samples"] = len(rep_idx)
            method = (f"TFLite interpreter (int8 in/out) on the {len(ds.y_test)} test samples "
                      f"of {ds.name}")
        else:
            acc = float_acc
            method = f"Keras predict (float32) on the {len(ds.y_test)} test samples of {ds.name}"
        meta["accuracy"] = acc
        meta["accuracy_figure"] = Figure(acc, "fraction", Provenance.HOST, method).to_dict()
        meta["timings"] = timings
        np.savez(tmp / PROBES_FILE, **arrays)
    entry = cache.get("variant", vkey)
    result = _read_variant(entry, vkey)
    result.extra["cache"] = "miss"
    timings["total"] = time.perf_counter() - t_start
    result.extra["seconds"] = timings
    log.info("model %s %s: %d params, %d MACs, accuracy %.4f (float %.4f) in %.1f s",
             nk["channels"], nk["quantization"], result.params, result.macs, result.accuracy,
             float_acc, timings["total"])
    return result


def _read_variant(entry: Path, vkey: str) -> ModelResult:
    meta = json.loads((entry / COMPLETE).read_text())
    with np.load(entry / PROBES_FILE) as z:
        arrays = {k: z[k] for k in z.files}
    q = meta["knobs"]["quantization"]
    extra = {k: meta[k] for k in ("float_accuracy", "base_accuracy", "base_key", "n_test",
                                  "n_train", "dataset", "dataset_description", "frame_period_s",
                                  "probe_test_indices", "pruning", "accuracy_figure", "timings")
             if k in meta}
    extra["knobs"] = meta["knobs"]
    extra["probe_keras_outputs"] = arrays["keras_outputs"]
    if "tflite_outputs" in arrays:
        extra["probe_tflite_outputs"] = arrays["tflite_outputs"]
        extra["tflite_io"] = meta["tflite_io"]
        extra["representative_samples"] = meta["representative_samples"]
    return ModelResult(
        keras_path=entry / KERAS_FILE,
        tflite_path=(entry / TFLITE_FILE) if q == "int8" else None,
        quantization=q, accuracy=float(meta["accuracy"]), params=int(meta["params"]),
        macs=int(meta["macs"]), input_shape=tuple(meta["input_shape"]),
        class_names=tuple(meta["class_names"]), probe_inputs=arrays["inputs"],
        probe_labels=arrays["labels"], cache_key=vkey, channels=tuple(meta["channels"]),
        extra=extra,
    )


def _publish(result: ModelResult, out_dir: Path | None) -> ModelResult:
    """Copy the model files to ``out_dir`` (a trial's folder) and point the result at them."""
    if out_dir is None:
        return result
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dst = out_dir / KERAS_FILE
    shutil.copyfile(result.keras_path, dst)
    result.keras_path = dst
    if result.tflite_path is not None:
        dst = out_dir / TFLITE_FILE
        shutil.copyfile(result.tflite_path, dst)
        result.tflite_path = dst
    return result
