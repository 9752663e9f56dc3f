"""Channel surgery of our own, and the analysis of which convs may lose which channels.

kerassurgeon 0.2.0 (unmaintained) stays the engine of channel pruning where it works (see
:mod:`mcusearch.model.prune`). It fails in two ways this module covers:

* it refuses layer classes it does not list - ``ReLU``, ``Softmax``, ``PReLU``, ``ELU`` layers
  ("... layers are currently unsupported"), common in models written since;
* when the inputs of an ``Add`` lost *different* channels it builds a model anyway (its error is
  created but never raised) whose add sums mismatched channels.

:func:`delete_channels` rebuilds a functional (or Sequential) tf-keras model without the given
filters, slicing every downstream weight: the next conv's input channels, BatchNormalization and
PReLU parameters, depthwise kernels, the rows of a Dense layer after Flatten or global pooling,
and it passes the removal through residual adds and concatenations. The tests check that it
gives the same outputs as kerassurgeon wherever kerassurgeon works.

:func:`channel_spaces` finds, before any surgery, the convs whose outputs meet in a merge (an
``Add`` of a residual connection): they must lose the same channel indices (*coupled*), and the
convs whose channels reach something channels cannot be removed through (a model input added
to them, a Reshape, an unknown layer): those keep all their filters (*locked*).
"""
from __future__ import annotations

import logging

import mcusearch  # noqa: F401  (selects tf-keras before TensorFlow is imported)
import numpy as np
import tensorflow as tf

from mcusearch.errors import StageError
from mcusearch.model.layout import PRUNABLE

log = logging.getLogger("mcusearch.model")

# Layers that change neither the number nor the order of channels and hold no per-channel weights.
PASS_THROUGH = frozenset({
    "Activation", "ReLU", "LeakyReLU", "ELU", "ThresholdedReLU", "Softmax", "Dropout",
    "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout",
    "GaussianNoise", "AlphaDropout", "ActivityRegularization", "MaxPooling1D", "MaxPooling2D",
    "MaxPooling3D", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D", "GlobalAveragePooling1D",
    "GlobalAveragePooling2D", "GlobalAveragePooling3D", "ZeroPadding1D", "ZeroPadding2D",
    "ZeroPadding3D", "Cropping1D", "Cropping2D", "Cropping3D", "UpSampling1D", "UpSampling2D",
    "UpSampling3D",
})
PER_CHANNEL = frozenset({"BatchNormalization", "PReLU"})  # weights indexed by channel (last axis)
MERGE_SAME = frozenset({"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"})
CONVS = frozenset({"Conv1D", "Conv2D", "Conv3D"})


# ---------------------------------------------------------------------------------------------
# graph walking
# ---------------------------------------------------------------------------------------------

def _node(model: tf.keras.Model, layer):
    """The one node of ``layer`` inside ``model`` (shared layers are not supported)."""
    nodes = [n for i, n in enumerate(layer._inbound_nodes)
             if f"{layer.name}_ib-{i}" in model._network_nodes]
    if len(nodes) != 1:
        raise StageError("model", f"channel pruning: layer {layer.name!r} is used {len(nodes)} "
                         "times in the model (shared layers are not supported)")
    return nodes[0]


def _flat(x) -> list:
    return list(tf.nest.flatten(x))


def _channels_last(layer) -> bool:
    return getattr(layer, "data_format", "channels_last") in (None, "channels_last")


def _last_axis(layer, rank: int) -> bool:
    axis = getattr(layer, "axis", -1)
    axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
    return isinstance(axis, (int, np.integer)) and axis in (-1, rank - 1)


def _layers(model: tf.keras.Model) -> list:
    if not getattr(model, "_is_graph_network", False):
        raise StageError("model", "channel pruning needs a functional or Sequential Keras model "
                         "(a subclassed model has no layer graph)")
    return [l for l in model.layers if type(l).__name__ != "InputLayer"]


# ---------------------------------------------------------------------------------------------
# which convs may lose which channels
# ---------------------------------------------------------------------------------------------

def channel_spaces(model: tf.keras.Model) -> dict:
    """Coupled and locked convs of ``model`` (see the module docstring).

    Returns ``{"coupled": [[conv, ...], ...], "locked": [conv, ...]}`` in model order: every
    coupled list holds >= 2 convs that must lose the same channels; a locked conv keeps all of
    its filters.
    """
    parent: dict[int, int] = {}
    locked: dict[int, bool] = {}
    owner: dict[int, list[str]] = {}

    def new(is_locked: bool, conv: str | None = None) -> int:
        s = len(parent)
        parent[s], locked[s], owner[s] = s, is_locked, ([conv] if conv else [])
        return s

    def find(s: int) -> int:
        while parent[s] != s:
            parent[s] = parent[parent[s]]
            s = parent[s]
        return s

    def union(a: int, b: int) -> int:
        a, b = find(a), find(b)
        if a != b:
            parent[b] = a
            locked[a] = locked[a] or locked[b]
            owner[a] = owner[a] + owner[b]
        return a

    space: dict[int, int] = {id(t): new(True) for t in model.inputs}
    for layer in _layers(model):
        node = _node(model, layer)
        ins = [space[id(t)] for t in node.keras_inputs]
        outs = _flat(node.outputs)
        kind = type(layer).__name__
        rank = len(outs[0].shape) if outs else 0
        if kind in PRUNABLE and _channels_last(layer) and getattr(layer, "groups", 1) == 1:
            out = new(False, layer.name)
        elif kind in CONVS or kind in ("Dense", "SeparableConv1D", "SeparableConv2D"):
            if kind in CONVS and (not _channels_last(layer) or getattr(layer, "groups", 1) != 1):
                for s in ins:
                    locked[find(s)] = True
            out = new(True)
        elif kind == "Flatten":
            out = new(True)
        elif kind in PASS_THROUGH or (kind == "BatchNormalization" and _last_axis(layer, rank)) \
                or kind == "PReLU":
            out = ins[0]
        elif kind in ("DepthwiseConv1D", "DepthwiseConv2D") and layer.depth_multiplier == 1:
            out = ins[0]
        elif kind in MERGE_SAME:
            out = ins[0]
            for s in ins[1:]:
                out = union(out, s)
        elif kind == "Concatenate" and _last_axis(layer, rank):
            out = new(True)
        else:  # unknown: the channels must reach it untouched
            for s in ins:
                locked[find(s)] = True
            out = new(True)
        for t in outs:
            space[id(t)] = out

    owned = {c for names in owner.values() for c in names}
    convs = [l.name for l in _layers(model) if l.name in owned]
    order = {n: i for i, n in enumerate(convs)}
    roots: dict[int, list[str]] = {}
    for s in list(parent):
        r = find(s)
        if s == r:
            roots[r] = sorted(owner[r], key=order.get)
    coupled = sorted((names for names in roots.values() if len(names) > 1),
                     key=lambda names: order[names[0]])
    lock = sorted((n for r, names in roots.items() if locked[r] for n in names), key=order.get)
    return {"coupled": coupled, "locked": lock}


# ---------------------------------------------------------------------------------------------
# the surgery
# ---------------------------------------------------------------------------------------------

def _slice(w: np.ndarray, axis: int, mask: np.ndarray | None) -> np.ndarray:
    return w if mask is None else np.compress(mask, w, axis=axis)


def _rebuild(layer, config_changes: dict, weights: list[np.ndarray], inputs):
    cfg = layer.get_config()
    cfg.update(config_changes)
    new = type(layer).from_config(cfg)
    out = new(inputs)
    new.set_weights(weights)
    return new, out


def delete_channels(model: tf.keras.Model, delete: dict[str, list[int]]) -> tf.keras.Model:
    """A new model without the filters ``delete[conv]`` (indices) of each named conv.

    ``model`` is not changed. Every mask is carried as "which of the original channels remain"
    on each tensor, and each layer's weights are sliced by the masks of its inputs.
    """
    layers = {l.name: l for l in _layers(model)}
    for name, idx in delete.items():
        if name not in layers or type(layers[name]).__name__ not in PRUNABLE:
            raise StageError("model", f"channel pruning: {name!r} is not a prunable conv layer")
        n = int(layers[name].filters)
        if len(set(idx)) >= n or any(not 0 <= int(i) < n for i in idx):
            raise StageError("model", f"channel pruning: invalid channels to delete from {name} "
                             f"({n} filters): {sorted(idx)}")

    tensors: dict[int, tuple] = {}   # id(old tensor) -> (new tensor, kept-channel mask or None)
    new_inputs = []
    for t, in_name in zip(model.inputs, model.input_names):
        x = tf.keras.Input(shape=tuple(t.shape[1:]), dtype=t.dtype, name=in_name)
        new_inputs.append(x)
        tensors[id(t)] = (x, None)

    for layer in _layers(model):
        node = _node(model, layer)
        got = [tensors[id(t)] for t in node.keras_inputs]
        xs = [g[0] for g in got]
        masks = [g[1] for g in got]
        inputs = xs[0] if len(xs) == 1 else xs
        out_mask = _apply(layer, node, inputs, masks, delete)
        outs_old = _flat(node.outputs)
        new_out, mask = out_mask
        for t_old, t_new in zip(outs_old, _flat(new_out)):
            tensors[id(t_old)] = (t_new, mask)

    outputs = [tensors[id(t)][0] for t in model.outputs]
    return tf.keras.Model(new_inputs, outputs if len(outputs) > 1 else outputs[0],
                          name=model.name)


def _apply(layer, node, inputs, masks: list, delete: dict[str, list[int]]):
    """Rebuild one layer on the new inputs: ``(new output, mask of the output's channels)``."""
    kind = type(layer).__name__
    name = layer.name
    mask = masks[0] if masks else None
    weights = layer.get_weights()

    def unsupported(why: str):
        return StageError("model", f"channel pruning cannot pass removed channels through "
                          f"{name} ({kind}): {why}")

    if all(m is None for m in masks) and name not in delete:
        # untouched: a copy with the same weights
        new = type(layer).from_config(layer.get_config())
        out = new(inputs)
        new.set_weights(weights)
        return out, None

    if kind in CONVS:
        if not _channels_last(layer) or getattr(layer, "groups", 1) != 1:
            raise unsupported("needs channels_last and groups=1")
        n = int(layer.filters)
        keep_out = None
        if delete.get(name):
            keep_out = np.ones(n, bool)
            keep_out[list(delete[name])] = False
        kernel = _slice(_slice(weights[0], -2, mask), -1, keep_out)
        new_w = [kernel] + ([_slice(weights[1], 0, keep_out)] if layer.use_bias else [])
        filters = n if keep_out is None else int(keep_out.sum())
        return _rebuild(layer, {"filters": filters}, new_w, inputs)[1], keep_out

    if kind == "Dense":
        kernel = _slice(weights[0], 0, mask)
        return _rebuild(layer, {}, [kernel] + weights[1:], inputs)[1], None

    if kind in ("DepthwiseConv1D", "DepthwiseConv2D"):
        if not _channels_last(layer):
            raise unsupported("needs channels_last")
        mult = int(layer.depth_multiplier)
        kernel = _slice(weights[0], -2, mask)
        new_w = [kernel]
        out_mask = None if mask is None else np.repeat(mask, mult)
        if layer.use_bias:
            new_w.append(_slice(weights[1], 0, out_mask))
        return _rebuild(layer, {}, new_w, inputs)[1], out_mask

    if kind in ("SeparableConv1D", "SeparableConv2D"):
        if not _channels_last(layer):
            raise unsupported("needs channels_last")
        mult = int(layer.depth_multiplier)
        dw = _slice(weights[0], -2, mask)
        pw = _slice(weights[1], -2, None if mask is None else np.repeat(mask, mult))
        return _rebuild(layer, {}, [dw, pw] + weights[2:], inputs)[1], None

    if kind == "BatchNormalization":
        if not _last_axis(layer, len(layer.input_shape)):
            raise unsupported("normalises an axis other than the channels")
        return _rebuild(layer, {}, [_slice(w, -1, mask) for w in weights], inputs)[1], mask

    if kind == "PReLU":
        alpha = weights[0]
        if alpha.shape[-1] == 1:
            return _rebuild(layer, {}, weights, inputs)[1], mask
        return _rebuild(layer, {}, [_slice(alpha, -1, mask)], inputs)[1], mask

    if kind in PASS_THROUGH:
        return _rebuild(layer, {}, weights, inputs)[1], mask

    if kind == "Flatten":
        shape = tuple(int(d) for d in layer.input_shape[1:])
        if mask is None:
            return _rebuild(layer, {}, weights, inputs)[1], None
        if not _channels_last(layer):
            raise unsupported("needs channels_last")
        flat = np.broadcast_to(mask, shape).reshape(-1)
        return _rebuild(layer, {}, weights, inputs)[1], flat

    if kind in MERGE_SAME:
        widths = [int(s[-1]) for s in (layer.input_shape if isinstance(layer.input_shape, list)
                                       else [layer.input_shape])]
        full = [np.ones(w, bool) if m is None else m for m, w in zip(masks, widths)]
        if any(not np.array_equal(full[0], f) for f in full[1:]):
            raise unsupported("its inputs lost different channels (residual connections need "
                              "the same channels removed from every branch)")
        return _rebuild(layer, {}, weights, inputs)[1], (None if full[0].all() else full[0])

    if kind == "Concatenate":
        shapes = layer.input_shape
        if not _last_axis(layer, len(shapes[0])):
            raise unsupported("concatenates along an axis other than the channels")
        full = [np.ones(int(s[-1]), bool) if m is None else m for m, s in zip(masks, shapes)]
        return _rebuild(layer, {}, weights, inputs)[1], np.concatenate(full)

    raise unsupported("this layer class is not supported")
