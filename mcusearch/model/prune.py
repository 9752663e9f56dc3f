"""Channel pruning: remove the conv filters with the smallest L1 norm (the 2020 study's criterion).

The surgery is kerassurgeon's ``delete_channels``: it rebuilds the model without the chosen
filters and propagates the removal downstream (the next conv loses the matching input channels;
through Flatten the next Dense loses the matching input rows). A short re-training with a lower
learning rate then recovers most of the lost accuracy.
"""
from __future__ import annotations

import contextlib
import io
import logging
import time

import mcusearch  # noqa: F401  (selects tf-keras before TensorFlow is imported)
import numpy as np
import tensorflow as tf

from mcusearch.errors import SpecError, StageError
from mcusearch.model import Dataset, TrainConfig
from mcusearch.model.architectures import PRUNABLE, conv_groups

log = logging.getLogger("mcusearch.model")

RETRAIN_LR_FACTOR = 0.5  # fine-tuning rate = base learning rate x this

# kerassurgeon.surgeon calls logging.basicConfig(level=INFO) when it is imported, which would
# configure the root logger of whatever program imports us. Undo that side effect if it happened.
_root = logging.getLogger()
_root_handlers, _root_level = list(_root.handlers), _root.level
import kerassurgeon.utils as _ks_utils  # noqa: E402
from kerassurgeon import Surgeon  # noqa: E402

for _h in list(_root.handlers):
    if _h not in _root_handlers:
        _root.removeHandler(_h)
_root.setLevel(_root_level)


def _patch_kerassurgeon() -> None:
    """Make kerassurgeon 0.2.0 work with tf-keras (TF >= 2.4).

    Its ``utils.single_element`` and ``utils.get_one_tensor`` pass only ``tf.Tensor`` through
    and call ``len()`` on anything else. Since TF 2.4 a layer node's input/output tensors are
    symbolic KerasTensors, which do not implement ``__len__``, so every ``delete_channels``
    fails with "Keras symbolic inputs/outputs do not implement `__len__`". The helpers are
    meant to unwrap one-element sequences: the replacements unwrap a list *or tuple* of one
    element (kerassurgeon builds tuples with ``zip(*...)`` and hands them on, so tuples must
    still be unwrapped) and return anything else (a KerasTensor, a mask array) unchanged.
    ``surgeon.py`` calls them as ``utils.single_element(...)``, so replacing the module
    attributes is enough. Idempotent: a second call changes nothing.
    """
    if getattr(_ks_utils.single_element, "_mcusearch_shim", False):
        return

    def single_element(x):
        if not isinstance(x, (list, tuple)):
            return x
        return x[0] if len(x) == 1 else x

    def get_one_tensor(x):
        if not isinstance(x, (list, tuple)):
            return x
        if len(x) != 1:
            raise ValueError(f"expected one tensor, got {len(x)}")
        return x[0]

    single_element._mcusearch_shim = True
    get_one_tensor._mcusearch_shim = True
    _ks_utils.single_element = single_element
    _ks_utils.get_one_tensor = get_one_tensor


_patch_kerassurgeon()


def filter_l1_norms(layer: tf.keras.layers.Layer) -> np.ndarray:
    """L1 norm of each output filter of a conv layer (kernel is (..., in, out))."""
    kernel = layer.get_weights()[0]
    return np.abs(kernel).reshape(-1, kernel.shape[-1]).sum(axis=0)


def channels_to_keep(model: tf.keras.Model, channels) -> dict[str, int]:
    """Turn the ``channels`` knob (one count per conv group) into {conv layer: filters kept}."""
    groups = conv_groups(model)
    channels = tuple(channels)
    if len(channels) != len(groups):
        raise SpecError("knobs.channels", f"needs {len(groups)} value(s), one per conv group "
                        f"({'; '.join('+'.join(g) for g in groups) or 'the model has none'}), "
                        f"got {len(channels)}: {channels}")
    keep: dict[str, int] = {}
    for group, n in zip(groups, channels):
        for name in group:
            keep[name] = n
    validate_keep(model, keep)
    return keep


def validate_keep(model: tf.keras.Model, keep: dict[str, int]) -> None:
    for name, n in keep.items():
        try:
            layer = model.get_layer(name)
        except ValueError:
            raise SpecError("knobs.channels", f"the model has no layer {name!r}") from None
        if type(layer).__name__ not in PRUNABLE:
            raise SpecError("knobs.channels", f"layer {name!r} is a {type(layer).__name__}; "
                            f"only {', '.join(PRUNABLE)} filters can be pruned")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise SpecError("knobs.channels", f"{name}: the number of filters kept must be an "
                            f"integer, got {n!r}")
        if not 1 <= int(n) <= int(layer.filters):
            raise SpecError("knobs.channels", f"{name}: keep between 1 and {layer.filters} "
                            f"filters (it has {layer.filters}), got {n}")


def channels_to_delete(model: tf.keras.Model, keep: dict[str, int]) -> dict[str, list[int]]:
    """For every layer in ``keep``: the indices of its filters with the smallest L1 norms, so
    that ``keep[name]`` filters remain. Ties are broken by the lower index (stable sort)."""
    validate_keep(model, keep)
    out: dict[str, list[int]] = {}
    for name, n in keep.items():
        layer = model.get_layer(name)
        norms = filter_l1_norms(layer)
        n_delete = int(layer.filters) - int(n)
        if n_delete > 0:
            order = np.argsort(norms, kind="stable")
            out[name] = sorted(int(i) for i in order[:n_delete])
    return out


def prune_channels(model: tf.keras.Model, keep: dict[str, int], data: Dataset | None = None,
                   retrain_epochs: int = 0, *, train_cfg: TrainConfig | None = None,
                   lr_factor: float = RETRAIN_LR_FACTOR, report: dict | None = None
                   ) -> tf.keras.Model:
    """A new model without the lowest-L1 filters of each layer in ``keep`` ({name: n kept}).

    All deletions are made in one surgery on a copy (``model`` is left unchanged), with the
    L1 norms taken from ``model``'s weights. With ``retrain_epochs > 0`` and ``data`` the new
    model is then fine-tuned (Adam at ``lr_factor`` x the base rate, same batch size and seed).
    ``report``, if given, receives the deleted indices and the fine-tuning result.
    """
    t0 = time.perf_counter()
    delete = channels_to_delete(model, keep)
    if not delete:
        new = tf.keras.models.clone_model(model)
        new.set_weights(model.get_weights())
    else:
        chatter = io.StringIO()  # kerassurgeon print()s a line per layer: send it to the log
        try:
            with contextlib.redirect_stdout(chatter):
                surgeon = Surgeon(model, copy=True)
                for name, idx in delete.items():
                    surgeon.add_job("delete_channels", model.get_layer(name), channels=idx)
                new = surgeon.operate()
        except Exception as e:  # noqa: BLE001 - report any surgery failure as a stage failure
            raise StageError("model", f"channel pruning failed in kerassurgeon: "
                             f"{type(e).__name__}: {e}") from e
        finally:
            for line in chatter.getvalue().splitlines():
                log.debug("kerassurgeon: %s", line)
    for name, n in keep.items():
        got = int(new.get_layer(name).filters)
        if got != int(n):
            raise StageError("model", f"channel pruning left {got} filters in {name}, "
                             f"wanted {n}")
    log.info("pruned %s: %d -> %d params in %.2f s", ", ".join(f"{k}={v}" for k, v in
             keep.items()), model.count_params(), new.count_params(), time.perf_counter() - t0)
    result = None
    if retrain_epochs > 0:
        if data is None:
            raise ValueError("re-training needs the data set")
        from mcusearch.model.train import train_model
        cfg = train_cfg or TrainConfig()
        result = train_model(new, data, cfg, epochs=retrain_epochs,
                             learning_rate=cfg.learning_rate * lr_factor, label="re-train")
    if report is not None:
        report["deleted"] = delete
        report["retrain"] = result
    return new
