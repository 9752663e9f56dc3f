"""Channel surgery of our own, and the analysis of which convs may lose which channels.

kerassurgeon 0.2.0 (unmaintained) stays the engine of channel pruning where it works (see
:mod:`mcusearch.model.prune`). It fails in two ways this module covers:

* it refuses layer classes it does not list - ``ReLU``, ``Softmax``, ``PReLU``, ``ELU`` layers
  ("... layers are currently unsupported"), common in models written since;
* when the inputs of an ``Add`` lost *different* channels it builds a model anyway (its error is
  created but never raised) whose add sums mismatched channels.

:func:`delete_channels` rebuilds a functional (or Sequential) tf-keras model without the given
filters, slicing every downstream weight: the next conv's input channels, BatchNormalization and
PReLU parameters, depthwise kernels (a depthwise conv is never pruned itself: its channels follow
the conv before it), the rows of a Dense layer after Flatten or global pooling, the output units
of a Dense layer tied to the channels (a squeeze-and-excite excitation), and it passes the removal
through residual adds, channel-wise multiplies, concatenations (each input owns a slice of the
output) and a Reshape that keeps the channel axis. The tests check that it gives the same outputs
as kerassurgeon wherever kerassurgeon works, and the same outputs as the original model with the
removed channels masked to zero on every graph shape the zoo has.

:func:`channel_graph` finds, before any surgery, which output channels are removed together: it
follows every channel id through the graph (:class:`ChannelUnit`). Convs whose outputs meet in
an element-wise merge (the two branches of a residual add, with or without a projection
shortcut; a block and its squeeze-and-excite scale) must lose the same channel indices
(*coupled*), and the convs whose channels reach something channels cannot be removed through (a
model input or output, a Reshape of the channel axis, an unknown layer) keep all their filters
(*locked*). :func:`channel_spaces` is the short summary of both.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import mcusearch  # noqa: F401  (selects tf-keras before TensorFlow is imported)
import numpy as np
import tensorflow as tf

from mcusearch.errors import StageError

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
PRUNABLE = ("Conv1D", "Conv2D")  # layer classes whose filters channel pruning removes


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

@dataclass(frozen=True)
class ChannelUnit:
    """Producers (convs, and Dense layers tied to them) whose output channels are removed
    together: channel class ``k`` is channel ``index[name][k]`` of every member.

    ``convs`` are the prunable convs among the members (model order), ``followers`` the Dense
    layers that lose output units with them (the excitation of a squeeze-and-excite block),
    ``carriers`` the layers whose per-channel weights follow (BatchNorm, depthwise convs,
    PReLU). ``locked`` says why the unit keeps all its channels ("" when it can be pruned).
    """

    convs: tuple[str, ...]
    followers: tuple[str, ...]
    index: dict[str, tuple[int, ...]]
    carriers: tuple[str, ...] = ()
    locked: str = ""

    @property
    def width(self) -> int:
        """Number of channel classes (the filters of each conv in the unit)."""
        return len(self.index[self.convs[0]])


@dataclass
class _Classes:
    """Union-find over channel ids; each id is a channel of a producer (or of nothing)."""

    parent: list[int] = field(default_factory=list)
    owner: list[tuple[str, int] | None] = field(default_factory=list)
    locked: dict[int, str] = field(default_factory=dict)   # root -> why

    def new(self, n: int, owner: str | None = None, why: str = "") -> np.ndarray:
        ids = np.arange(len(self.parent), len(self.parent) + n)
        for i in range(n):
            self.parent.append(int(ids[i]))
            self.owner.append((owner, i) if owner else None)
            if why:
                self.locked[int(ids[i])] = why
        return ids

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        a, b = self.find(int(a)), self.find(int(b))
        if a != b:
            self.parent[b] = a
            why = self.locked.pop(b, "")
            if why and a not in self.locked:
                self.locked[a] = why

    def lock(self, ids, why: str) -> None:
        for i in ids:
            self.locked.setdefault(self.find(int(i)), why)


# Layers through which two convs form one block of the ``per: group`` knob (conv -> conv with
# only these between them): per-channel and element-wise layers. Pooling ends a block.
CHAIN = frozenset({
    "BatchNormalization", "PReLU", "Activation", "ReLU", "LeakyReLU", "ELU", "ThresholdedReLU",
    "Softmax", "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
    "GaussianDropout", "GaussianNoise", "AlphaDropout", "ActivityRegularization",
    "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D"})


@dataclass
class ChannelGraph:
    """What :func:`channel_graph` found: the units, each conv's first BatchNorm and its block."""

    units: list[ChannelUnit]
    batchnorm: dict[str, str]      # conv -> the BatchNormalization right after it
    chained: dict[str, str]        # conv -> the conv before it in the same block

    def unit_of(self, name: str) -> ChannelUnit | None:
        return next((u for u in self.units if name in u.index), None)


def _width(t) -> int | None:
    d = t.shape[-1] if len(t.shape) else None
    return None if d is None else int(d)


def channel_graph(model: tf.keras.Model) -> ChannelGraph:
    """Follow every output channel of every prunable conv through ``model``.

    Each tensor's last axis is a vector of channel ids. A prunable conv (and a Dense layer)
    makes new ids; BatchNorm, PReLU, depthwise convs (depth multiplier 1), activations,
    pooling and a Reshape that keeps the last axis pass them on; Concatenate (on the channels)
    joins the vectors of its inputs, so each input owns a slice of the output; an element-wise
    merge (Add, Multiply, ...) ties the channels it combines; Flatten repeats the vector once
    per position. Tied ids form a class that is removed as a whole. Channels that meet the
    model's input or output, or a layer they cannot be removed through, are locked.
    """
    cls = _Classes()
    ids: dict[int, np.ndarray] = {}
    src: dict[int, str] = {}          # tensor -> the conv it comes from through CHAIN layers
    batchnorm: dict[str, str] = {}
    chained: dict[str, str] = {}
    carriers: list[tuple[str, np.ndarray]] = []
    for t in model.inputs:
        ids[id(t)] = cls.new(_width(t) or 0, why="tied to the model input")
    for layer in _layers(model):
        node = _node(model, layer)
        ins = list(node.keras_inputs)
        outs = _flat(node.outputs)
        vec = [ids[id(t)] for t in ins]
        kind = type(layer).__name__
        width = _width(outs[0]) if outs else None
        rank = len(outs[0].shape) if outs else 0

        def fresh(owner: str | None = None, why: str = "") -> np.ndarray:
            return cls.new(width or 0, owner, why)

        def refuse(why: str) -> np.ndarray:
            for v in vec:
                cls.lock(v, why)
            return fresh(why=why)

        prunable = kind in PRUNABLE and _channels_last(layer) and getattr(layer, "groups", 1) == 1
        if prunable:
            out = fresh(layer.name)
            if ins and id(ins[0]) in src:
                chained[layer.name] = src[id(ins[0])]
        elif kind in CONVS:
            why = f"{layer.name} ({kind}) is channels_first or grouped"
            out = refuse(why)
            if kind in PRUNABLE:
                out = cls.new(width or 0, layer.name, why)
        elif kind == "Dense":
            out = fresh(layer.name)
        elif kind in ("SeparableConv1D", "SeparableConv2D"):
            out = fresh(why=f"{layer.name} ({kind}) cannot lose filters")
        elif kind in ("DepthwiseConv1D", "DepthwiseConv2D") and _channels_last(layer) \
                and int(layer.depth_multiplier) == 1:
            out = vec[0]
            carriers.append((layer.name, out))
        elif kind in PER_CHANNEL and (kind == "PReLU" or _last_axis(layer, rank)):
            out = vec[0]
            carriers.append((layer.name, out))
            if kind == "BatchNormalization" and id(ins[0]) in src:
                batchnorm.setdefault(src[id(ins[0])], layer.name)
        elif kind in PASS_THROUGH:
            out = vec[0]
        elif kind == "Reshape" and width is not None and width == _width(ins[0]):
            out = vec[0]
        elif kind == "Flatten" and _channels_last(layer) and None not in ins[0].shape[1:]:
            out = np.tile(vec[0], int(np.prod(ins[0].shape[1:-1], dtype=np.int64)))
        elif kind in MERGE_SAME:
            full = [v for v in vec if len(v) == width]
            if len(full) + sum(len(v) == 1 for v in vec) != len(vec) or not full:
                out = refuse(f"{layer.name} ({kind}) combines tensors of other widths")
            else:
                out = full[0]
                for v in full[1:]:
                    for a, b in zip(out, v):
                        cls.union(a, b)
        elif kind == "Concatenate" and _last_axis(layer, rank):
            out = np.concatenate(vec)
        else:
            out = refuse(f"{layer.name} ({kind}) cannot pass removed channels")
        for t in outs:
            ids[id(t)] = out
            if prunable:
                src[id(t)] = layer.name
            elif kind in CHAIN and ins and id(ins[0]) in src:
                src[id(t)] = src[id(ins[0])]
    for t in model.outputs:
        cls.lock(ids[id(t)], "reaches the model output")
    return ChannelGraph(_units(model, cls, carriers), batchnorm, chained)


def _units(model: tf.keras.Model, cls: _Classes, carriers) -> list[ChannelUnit]:
    """Group the classes into units: producers joined by any class are one unit."""
    members: dict[int, list[tuple[str, int]]] = {}
    for i, own in enumerate(cls.owner):
        if own is not None:
            members.setdefault(cls.find(i), []).append(own)
    # producers tied by a class belong to one unit (a small union-find over layer names)
    link: dict[str, str] = {}

    def top(n: str) -> str:
        while link.get(n, n) != n:
            n = link[n]
        return n

    for m in members.values():
        for name, _ in m[1:]:
            a, b = top(m[0][0]), top(name)
            if a != b:
                link[b] = a
    layers = {l.name: l for l in _layers(model)}
    order = {n: i for i, n in enumerate(layers)}
    by_unit: dict[str, list[int]] = {}
    for root, m in members.items():
        by_unit.setdefault(top(m[0][0]), []).append(root)
    units = []
    for roots in by_unit.values():
        names = sorted({n for r in roots for n, _ in members[r]}, key=order.get)
        convs = tuple(n for n in names if type(layers[n]).__name__ in PRUNABLE)
        if not convs:
            continue                     # Dense layers alone are not pruned
        why = next((cls.locked[r] for r in roots if r in cls.locked), "")
        index = {n: [] for n in names}
        regular = True
        for r in roots:
            if sorted(n for n, _ in members[r]) != sorted(names):
                regular = False
                break
            for n, i in members[r]:
                index[n].append(i)
        if regular and any(len(index[n]) != _width(layers[n].output) for n in names):
            regular = False
        if not regular:
            why = why or (f"{', '.join(names)} are tied channel by channel in unequal "
                          "numbers (e.g. a concatenation added to a conv)")
            index = {n: list(range(_width(layers[n].output) or 0)) for n in names}
        else:
            first = np.argsort(index[convs[0]], kind="stable")
            index = {n: [int(v[k]) for k in first] for n, v in index.items()}
        rootset = set(roots)
        carried = tuple(sorted({c for c, v in carriers
                                if any(cls.find(int(i)) in rootset for i in v)},
                               key=order.get))
        units.append(ChannelUnit(convs, tuple(n for n in names if n not in convs),
                                 {n: tuple(v) for n, v in index.items()}, carried, why))
    return sorted(units, key=lambda u: order[u.convs[0]])


def channel_spaces(model: tf.keras.Model, graph: ChannelGraph | None = None) -> dict:
    """Coupled and locked convs of ``model`` (see the module docstring).

    Returns ``{"coupled": [[conv, ...], ...], "locked": [conv, ...]}`` in model order: every
    coupled list holds >= 2 convs that must lose the same channels; a locked conv keeps all of
    its filters.
    """
    graph = graph or channel_graph(model)
    order = {l.name: i for i, l in enumerate(model.layers)}
    coupled = [list(u.convs) for u in graph.units if len(u.convs) > 1 and not u.locked]
    locked = sorted((c for u in graph.units if u.locked for c in u.convs), key=order.get)
    return {"coupled": coupled, "locked": locked}


# ---------------------------------------------------------------------------------------------
# the surgery
# ---------------------------------------------------------------------------------------------

def _slice(w: np.ndarray, axis: int, mask: np.ndarray | None) -> np.ndarray:
    return w if mask is None else np.compress(mask, w, axis=axis)


def _kept(n: int, deleted) -> np.ndarray | None:
    """The mask of the ``n`` channels that remain when ``deleted`` go (None: all remain)."""
    if not deleted:
        return None
    keep = np.ones(n, bool)
    keep[list(deleted)] = False
    return keep


def _rebuild(layer, config_changes: dict, weights: list[np.ndarray], inputs):
    cfg = layer.get_config()
    cfg.update(config_changes)
    new = type(layer).from_config(cfg)
    out = new(inputs)
    new.set_weights(weights)
    return new, out


def delete_channels(model: tf.keras.Model, delete: dict[str, list[int]]) -> tf.keras.Model:
    """A new model without the filters ``delete[conv]`` (indices) of each named conv (or the
    output units of a named Dense layer, e.g. the excitation of a squeeze-and-excite block).

    ``model`` is not changed. Every mask is carried as "which of the original channels remain"
    on each tensor, and each layer's weights are sliced by the masks of its inputs.
    """
    layers = {l.name: l for l in _layers(model)}
    for name, idx in delete.items():
        kind = type(layers[name]).__name__ if name in layers else ""
        if kind not in PRUNABLE and kind != "Dense":
            raise StageError("model", f"channel pruning: {name!r} is not a prunable conv layer")
        n = int(layers[name].filters if kind != "Dense" else layers[name].units)
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
        keep_out = _kept(int(layer.filters), delete.get(name))
        kernel = _slice(_slice(weights[0], -2, mask), -1, keep_out)
        new_w = [kernel] + ([_slice(weights[1], 0, keep_out)] if layer.use_bias else [])
        filters = int(layer.filters) if keep_out is None else int(keep_out.sum())
        return _rebuild(layer, {"filters": filters}, new_w, inputs)[1], keep_out

    if kind == "Dense":
        keep_out = _kept(int(layer.units), delete.get(name))
        kernel = _slice(_slice(weights[0], 0, mask), -1, keep_out)
        new_w = [kernel] + ([_slice(weights[1], 0, keep_out)] if layer.use_bias else [])
        units = int(layer.units) if keep_out is None else int(keep_out.sum())
        return _rebuild(layer, {"units": units}, new_w, inputs)[1], keep_out

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

    if kind == "Reshape":
        target = tuple(layer.target_shape)
        if mask is None or int(layer.input_shape[-1]) != int(target[-1]):
            raise unsupported("it changes the channel axis")
        return _rebuild(layer, {"target_shape": target[:-1] + (int(mask.sum()),)}, weights,
                        inputs)[1], mask

    if kind in MERGE_SAME:
        widths = [int(s[-1]) for s in (layer.input_shape if isinstance(layer.input_shape, list)
                                       else [layer.input_shape])]
        # an input of one channel is broadcast over the others' channels
        full = [np.ones(w, bool) if m is None else m for m, w in zip(masks, widths)
                if w != 1 or max(widths) == 1]
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
