"""Channel pruning: remove the conv filters with the lowest scores - the smallest L1 norm (the
2020 study's criterion), the smallest L2 norm, the smallest BatchNorm scale |gamma| (network
slimming), or at random (a control).

The surgery is kerassurgeon's ``delete_channels`` where it works: it rebuilds the model without
the chosen filters and propagates the removal downstream (the next conv loses the matching input
channels; through Flatten the next Dense loses the matching input rows; BatchNormalization loses
the matching parameters). On other graphs (depthwise chains, concatenations, squeeze-and-excite,
Conv1D) and where kerassurgeon fails, :mod:`mcusearch.model.surgery` does the same (tested
against it). Convs joined by a residual add or a channel-wise multiply lose the same channels.
A short re-training with a lower learning rate then recovers most of the lost accuracy.
"""
from __future__ import annotations

import contextlib
import io
import logging
import time
import zlib

import mcusearch  # noqa: F401  (selects tf-keras before TensorFlow is imported)
import numpy as np
import tensorflow as tf

from mcusearch.errors import SpecError, StageError
from mcusearch.model import CRITERIA, FINETUNE_LR_FACTOR, Dataset, TrainConfig
from mcusearch.model.architectures import PRUNABLE, conv_groups
from mcusearch.model.surgery import ChannelGraph, channel_graph, delete_channels

log = logging.getLogger("mcusearch.model")

RETRAIN_LR_FACTOR = FINETUNE_LR_FACTOR  # fine-tuning rate = base learning rate x this

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


def filter_scores(model: tf.keras.Model, names: list[str] | tuple[str, ...], criterion: str,
                  seed: int = 0, graph: ChannelGraph | None = None,
                  index: dict[str, tuple[int, ...]] | None = None) -> np.ndarray:
    """One score per channel class of the convs ``names`` (which lose the same channels: class
    ``k`` is filter ``index[name][k]`` of each, the identity by default); the lowest scores are
    removed first.

    ``l1``: the sum of the filters' L1 norms (the 2020 study's criterion); ``l2``: the Euclidean
    norm of all the filters' weights of that channel; ``random``: a seeded random score (a
    control: what any criterion must beat), the same for the same seed and layer names; ``bn``:
    see :func:`bn_scores`.
    """
    if criterion not in CRITERIA:
        raise SpecError("knobs.channels.criterion", f"must be one of {', '.join(CRITERIA)}, got "
                        f"{criterion!r}")
    flat = []
    for n in names:
        k = model.get_layer(n).get_weights()[0]
        k = k.reshape(-1, k.shape[-1]).astype(np.float64)
        flat.append(k if index is None else k[:, list(index[n])])
    if criterion == "l1":
        return sum(np.abs(f).sum(axis=0) for f in flat)
    if criterion == "l2":
        return np.sqrt(sum((f ** 2).sum(axis=0) for f in flat))
    if criterion == "bn":
        return bn_scores(model, names, graph or channel_graph(model), index)
    rng = np.random.default_rng([int(seed), zlib.crc32("+".join(names).encode())])
    return rng.random(flat[0].shape[1])


def bn_scores(model: tf.keras.Model, names, graph: ChannelGraph,
              index: dict[str, tuple[int, ...]] | None = None) -> np.ndarray:
    """The ``bn`` criterion: per channel, the sum over the convs ``names`` of |gamma| of the
    BatchNormalization right after each conv (network slimming, Liu et al. 2017).

    Why |gamma| and not |gamma| / sigma or |gamma| / sigma x the filter's norm: BatchNorm divides
    the conv's output by its running standard deviation sigma, so the scale of the filter
    cancels: after BatchNorm the channel has standard deviation |gamma| on the data the
    statistics were taken on, whatever the filter's norm. That spread is what the next layers
    see of the channel (the rest is the constant beta). |gamma| / sigma x the filter's L1 norm
    is the L1 norm of the BN-folded filter: it grows with the filter's *input* scale too, and
    |gamma| / sigma alone ranks channels by how small their pre-BN output was, which says
    nothing about their use downstream. A conv without a BatchNorm after it (gamma unknown)
    makes the whole unit fall back to ``l1`` (logged).
    """
    missing = [n for n in names if n not in graph.batchnorm]
    if missing:
        log.info("criterion bn: %s has no BatchNormalization after it; using l1 for %s",
                 ", ".join(missing), "+".join(names))
        return filter_scores(model, names, "l1", index=index)
    total = 0.0
    for n in names:
        bn = model.get_layer(graph.batchnorm[n])
        gamma = (np.abs(bn.gamma.numpy()).astype(np.float64) if bn.scale
                 else np.ones(int(bn.moving_mean.shape[-1])))
        total = total + (gamma if index is None else gamma[list(index[n])])
    return total


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


def channels_to_delete(model: tf.keras.Model, keep: dict[str, int], criterion: str = "l1",
                       seed: int = 0, graph: ChannelGraph | None = None
                       ) -> dict[str, list[int]]:
    """For every conv in ``keep``: the indices of its filters with the lowest scores (see
    :func:`filter_scores`), so that ``keep[name]`` filters remain. Ties go to the lower index.

    The convs of one channel unit (:func:`mcusearch.model.surgery.channel_graph`: coupled by a
    residual add or a channel-wise multiply) are scored together and lose the same channels, so
    they must keep the same count; the Dense layers tied to them (a squeeze-and-excite
    excitation) lose the matching output units. A locked conv must keep all its filters.
    ``graph`` saves recomputing the analysis.
    """
    validate_keep(model, keep)
    graph = graph or channel_graph(model)
    out: dict[str, list[int]] = {}
    for unit in graph.units:
        asked = {int(keep.get(n, model.get_layer(n).filters)) for n in unit.convs}
        if unit.locked and min(asked) < unit.width:
            raise SpecError("knobs.channels", f"{', '.join(unit.convs)}: their channels cannot "
                            f"be removed ({unit.locked}): keep all {unit.width} filters")
        if len(asked) > 1:
            raise SpecError("knobs.channels", f"{' and '.join(unit.convs)} share their channels "
                            "(they meet in a residual add or a channel-wise multiply) and must "
                            f"keep the same number of filters, got {sorted(asked)}")
        n_delete = unit.width - asked.pop()
        if n_delete > 0:
            scores = filter_scores(model, unit.convs, criterion, seed, graph, unit.index)
            gone = np.argsort(scores, kind="stable")[:n_delete]
            for name, idx in unit.index.items():
                out[name] = sorted(int(idx[k]) for k in gone)
    order = [l.name for l in model.layers]
    return {n: out[n] for n in sorted(out, key=order.index)}


def with_followers(model: tf.keras.Model, delete: dict[str, list[int]],
                   graph: ChannelGraph | None = None) -> dict[str, list[int]]:
    """``delete`` plus the output units of the Dense layers tied to the convs in it (the
    excitation of a squeeze-and-excite block), so a caller may name the convs only."""
    graph = graph or channel_graph(model)
    out = {n: sorted(int(i) for i in idx) for n, idx in delete.items()}
    for unit in graph.units:
        named = [c for c in unit.convs if c in delete]
        if not unit.followers or not named:
            continue
        position = {int(i): k for k, i in enumerate(unit.index[named[0]])}
        gone = [position[int(i)] for i in delete[named[0]]]
        for name in unit.followers:
            out.setdefault(name, sorted(int(unit.index[name][k]) for k in gone))
    return out


def _kerassurgeon(model: tf.keras.Model, delete: dict[str, list[int]]) -> tf.keras.Model:
    chatter = io.StringIO()  # kerassurgeon print()s a line per layer: send it to the log
    try:
        with contextlib.redirect_stdout(chatter):
            surgeon = Surgeon(model, copy=True)
            for name, idx in delete.items():
                surgeon.add_job("delete_channels", model.get_layer(name), channels=idx)
            return surgeon.operate()
    finally:
        for line in chatter.getvalue().splitlines():
            log.debug("kerassurgeon: %s", line)


# The layer classes the tests compare kerassurgeon's models on (it builds wrong models silently
# where it is wrong, e.g. an add of branches that lost different channels): ``auto`` uses it
# only on models made of these.
KERASSURGEON_CHECKED = frozenset({
    "InputLayer", "Conv2D", "Dense", "BatchNormalization", "Activation", "MaxPooling2D",
    "AveragePooling2D", "Flatten", "Dropout", "Add", "GlobalAveragePooling2D",
    "GlobalMaxPooling2D"})


def remove_channels(model: tf.keras.Model, delete: dict[str, list[int]], engine: str = "auto",
                    report: dict | None = None) -> tf.keras.Model:
    """A new model without the filters ``delete`` ({conv: indices}); ``model`` is unchanged.

    Dense layers tied to the convs (:func:`with_followers`) lose the matching output units.
    ``engine``: ``kerassurgeon`` (with the shim above), ``own``
    (:func:`mcusearch.model.surgery.delete_channels`), or ``auto``: kerassurgeon on models made
    of the layers it is checked on (:data:`KERASSURGEON_CHECKED`), and our own surgery
    elsewhere or where kerassurgeon fails (``report["engine"]`` says which ran and why).
    """
    if engine not in ("auto", "kerassurgeon", "own"):
        raise ValueError(f"unknown surgery engine {engine!r}")
    info = {"engine": "none"}
    delete = with_followers(model, delete) if delete else delete
    unchecked = sorted({type(l).__name__ for l in model.layers} - KERASSURGEON_CHECKED)
    if not delete:
        new = tf.keras.models.clone_model(model)
        new.set_weights(model.get_weights())
    elif engine == "own" or (engine == "auto" and unchecked):
        new = delete_channels(model, delete)
        info["engine"] = "own"
        if engine == "auto":
            info["kerassurgeon_skipped"] = f"not checked on {', '.join(unchecked)} layers"
    else:
        try:
            new = _kerassurgeon(model, delete)
            info["engine"] = "kerassurgeon"
        except Exception as e:  # noqa: BLE001 - any failure of the unmaintained library
            why = f"{type(e).__name__}: {str(e)[:200]}"
            if engine == "kerassurgeon":
                raise StageError("model", f"channel pruning failed in kerassurgeon: {why}") from e
            log.info("kerassurgeon failed (%s); using mcusearch's own channel surgery", why)
            new = delete_channels(model, delete)
            info = {"engine": "own", "kerassurgeon_error": why}
    if report is not None:
        report.update(info)
    return new


def recalibrate_batchnorm(model: tf.keras.Model, x: np.ndarray, batch_size: int = 256) -> int:
    """Re-estimate the moving mean and variance of every BatchNorm (on the channel axis) from
    its inputs on ``x``, in model order (inference-mode passes, no weight changes); returns how
    many were updated.

    After channel removal a BatchNorm whose conv lost input channels no longer sees the
    statistics it stored, and normalises with stale ones: ``bench/model_knobs.py --criteria``
    measures that this, more than which channels went, is what costs the accuracy before
    re-training.
    """
    bns = [l for l in model.layers if type(l).__name__ == "BatchNormalization"
           and l.axis in ([-1], [len(l.input_shape) - 1])]
    for bn in bns:
        probe = tf.keras.Model(model.inputs, bn.input)
        n, total, squares = 0, 0.0, 0.0
        for i in range(0, len(x), batch_size):
            a = probe(x[i:i + batch_size], training=False).numpy().astype(np.float64)
            a = a.reshape(-1, a.shape[-1])
            n, total, squares = n + len(a), total + a.sum(0), squares + (a ** 2).sum(0)
        mean = total / n
        bn.moving_mean.assign(mean.astype(np.float32))
        bn.moving_variance.assign(np.maximum(squares / n - mean ** 2, 0.0).astype(np.float32))
    return len(bns)


def prune_channels(model: tf.keras.Model, keep: dict[str, int], data: Dataset | None = None,
                   retrain_epochs: int = 0, *, train_cfg: TrainConfig | None = None,
                   lr_factor: float = RETRAIN_LR_FACTOR, report: dict | None = None,
                   criterion: str = "l1", engine: str = "auto",
                   recalibrate: int = 0) -> tf.keras.Model:
    """A new model without the lowest-scoring filters of each layer in ``keep`` ({name: n kept}).

    All deletions are made in one surgery on a copy (``model`` is left unchanged), with the
    scores (``criterion``: l1, l2, random seeded by ``train_cfg.seed``, or bn) taken from
    ``model``'s weights. With ``retrain_epochs > 0`` and ``data`` the new model is then
    fine-tuned (Adam at ``lr_factor`` x the base rate, same batch size and seed). With
    ``recalibrate`` > 0 and ``data``, the BatchNorm statistics are first re-estimated on that
    many training samples (:func:`recalibrate_batchnorm`, a seeded stratified subset).
    ``report``, if given, receives the deleted indices, the surgery engine and the fine-tuning
    result.
    """
    t0 = time.perf_counter()
    cfg = train_cfg or TrainConfig()
    delete = channels_to_delete(model, keep, criterion, cfg.seed)
    info: dict = {}
    new = remove_channels(model, delete, engine, info)
    for name, n in keep.items():
        got = int(new.get_layer(name).filters)
        if got != int(n):
            raise StageError("model", f"channel pruning left {got} filters in {name}, "
                             f"wanted {n}")
    log.info("pruned (%s, %s) %s: %d -> %d params in %.2f s", criterion, info["engine"],
             ", ".join(f"{k}={v}" for k, v in keep.items()), model.count_params(),
             new.count_params(), time.perf_counter() - t0)
    if recalibrate > 0:
        if data is None:
            raise ValueError("re-estimating BatchNorm statistics needs the data set")
        from mcusearch.model.datasets import stratified_indices
        idx = stratified_indices(data.y_train, min(int(recalibrate), len(data.y_train)),
                                 cfg.seed)
        info["recalibrated_batchnorms"] = recalibrate_batchnorm(new, data.x_train[idx])
    result = None
    if retrain_epochs > 0:
        if data is None:
            raise ValueError("re-training needs the data set")
        from mcusearch.model.train import train_model
        result = train_model(new, data, cfg, epochs=retrain_epochs,
                             learning_rate=cfg.learning_rate * lr_factor, label="re-train")
    if report is not None:
        report["deleted"] = delete
        report["retrain"] = result
        report.update(info)
    return new
