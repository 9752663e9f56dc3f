"""Model architectures: the built-in registry (the 2020 study's CNN first) and a user's model file.

Also defines the *conv groups* the channel-pruning knob acts on (:func:`conv_groups`): convs
chained through per-channel layers (a VGG-style block) and convs that share channels (residual
adds, squeeze-and-excite) form one group and keep the same number of filters. For the study's
CNN that is (conv1, conv2), (conv3, conv4), (conv5, conv6). :func:`group_lines` prints them.
"""
from __future__ import annotations

import inspect
import logging
from typing import Callable

import mcusearch  # noqa: F401  (selects tf-keras before TensorFlow is imported)
import tensorflow as tf

from mcusearch.errors import SpecError
from mcusearch.model import ArchitectureConfig
from mcusearch.model.layout import ConvLayout
from mcusearch.model.surgery import PRUNABLE, ChannelGraph, channel_graph, channel_spaces

log = logging.getLogger("mcusearch.model")


def _per_group(value, n_groups: int, name: str) -> tuple[int, ...]:
    if isinstance(value, (int,)) and not isinstance(value, bool):
        return (int(value),) * n_groups
    vals = tuple(int(v) for v in value)
    if len(vals) != n_groups:
        raise SpecError(f"architecture.params.{name}",
                        f"needs one value or {n_groups} (one per conv group), got {len(vals)}")
    return vals


def study_cnn(input_shape, n_classes: int, filters=32, dense_units: int = 100,
              dropout: float = 0.5) -> tf.keras.Model:
    """The 2020 study's CNN: 3 x (Conv2D 3x3 same ReLU, Conv2D 3x3 same ReLU, MaxPool 2x2),
    Flatten, Dense ReLU, Dropout, Dense softmax.

    ``filters`` is one int for all convs or 3 ints, one per block (as channel pruning leaves it).
    On a 30x20x1 input with 4 classes and full width it has exactly 66,264 parameters.
    """
    f = _per_group(filters, 3, "filters")
    if min(f) < 1 or dense_units < 1 or not 0.0 <= dropout < 1.0:
        raise SpecError("architecture.params", f"invalid study_cnn parameters: filters={f}, "
                        f"dense_units={dense_units}, dropout={dropout}")
    L = tf.keras.layers
    inp = tf.keras.Input(shape=tuple(input_shape), name="input")
    x = inp
    for block in range(3):
        for j in (1, 2):
            x = L.Conv2D(f[block], (3, 3), padding="same", activation="relu",
                         name=f"conv{2 * block + j}")(x)
        x = L.MaxPooling2D((2, 2), name=f"pool{block + 1}")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(dense_units, activation="relu", name="fc1")(x)
    x = L.Dropout(dropout, name="dropout")(x)
    out = L.Dense(n_classes, activation="softmax", name="fc2")(x)
    return tf.keras.Model(inp, out, name="study_cnn")


# name -> builder(input_shape, n_classes, **params)
ARCHITECTURES: dict[str, Callable[..., tf.keras.Model]] = {
    "study_cnn": study_cnn,
}


def build_architecture(cfg: ArchitectureConfig, input_shape, n_classes: int) -> tf.keras.Model:
    """A fresh (untrained) built-in model by name with its params. A user's file is loaded by
    :func:`mcusearch.model.load.load_user_model` and checked against the data by
    :func:`mcusearch.preflight.check_model_data`."""
    if cfg.path is not None:
        raise ValueError("build_architecture builds the built-ins; load a model file with "
                         "mcusearch.model.load.load_user_model")
    if cfg.name not in ARCHITECTURES:
        raise SpecError("architecture.name", f"unknown architecture {cfg.name!r}; built-ins: "
                        f"{', '.join(ARCHITECTURES)} (or give architecture.path)")
    builder = ARCHITECTURES[cfg.name]
    params = dict(cfg.params)
    allowed = [p for p in inspect.signature(builder).parameters if p not in
               ("input_shape", "n_classes")]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise SpecError("architecture.params", f"{cfg.name} has no parameter(s) "
                        f"{', '.join(unknown)}; it takes {', '.join(allowed)}")
    return builder(tuple(input_shape), n_classes, **params)


def conv_layers(model: tf.keras.Model) -> list[tf.keras.layers.Layer]:
    """The prunable conv layers (Conv1D, Conv2D), in model order."""
    return [l for l in model.layers if type(l).__name__ in PRUNABLE]


def conv_groups(model: tf.keras.Model, graph: ChannelGraph | None = None
                ) -> list[tuple[str, ...]]:
    """Conv layer names grouped into the blocks the ``per: group`` channel knob sets, in model
    order (a group by its first conv).

    Two convs are in one group when one feeds the other through per-channel and element-wise
    layers only and both have the same width (BatchNorm, activations, dropout, padding: a
    VGG-style block; a pooling, a depthwise conv, a merge or a Dense ends it) or when they
    share channels
    (:func:`mcusearch.model.surgery.channel_graph`: the branches of a residual add, with or
    without a projection shortcut, and a block with its squeeze-and-excite). For the study CNN:
    [("conv1", "conv2"), ("conv3", "conv4"), ("conv5", "conv6")]; for a ResNet, one group per
    stage; for a MobileNet, one per pointwise conv (the depthwise convs follow them).
    """
    graph = graph or channel_graph(model)
    convs = [l.name for l in conv_layers(model)]
    head = {n: n for n in convs}

    def top(n: str) -> str:
        while head[n] != n:
            n = head[n]
        return n

    def join(a: str, b: str) -> None:
        a, b = top(a), top(b)
        if a != b:
            head[max(a, b, key=convs.index)] = min(a, b, key=convs.index)

    for conv, before in graph.chained.items():
        if model.get_layer(conv).filters == model.get_layer(before).filters:
            join(before, conv)
    for unit in graph.units:
        for conv in unit.convs[1:]:
            join(unit.convs[0], conv)
    groups: dict[str, list[str]] = {}
    for n in convs:
        groups.setdefault(top(n), []).append(n)
    return [tuple(g) for g in sorted(groups.values(), key=lambda g: convs.index(g[0]))]


def group_widths(model: tf.keras.Model) -> tuple[int, ...]:
    """Full width per conv group: the largest filter count in the group."""
    return tuple(max(int(model.get_layer(n).filters) for n in g) for g in conv_groups(model))


def conv_filters(model: tf.keras.Model) -> tuple[int, ...]:
    """Filters of every prunable conv layer, in model order (ModelResult.channels)."""
    return tuple(int(l.filters) for l in conv_layers(model))


def channel_layout(model: tf.keras.Model) -> dict:
    """What the channel knob acts on, JSON-able (kept in the base model's cache entry): the
    prunable convs in order, their filters, their groups, the convs coupled by residual adds
    and the locked ones (see :func:`mcusearch.model.surgery.channel_spaces`)."""
    graph = channel_graph(model)
    spaces = channel_spaces(model, graph)
    convs = conv_layers(model)
    return {"convs": [l.name for l in convs], "filters": [int(l.filters) for l in convs],
            "groups": [list(g) for g in conv_groups(model, graph)], "coupled": spaces["coupled"],
            "locked": spaces["locked"]}


def knob_layout(model: tf.keras.Model) -> ConvLayout:
    """The :class:`~mcusearch.model.layout.ConvLayout` the channel knob's search space is made
    from, with this module's groups (the same the model stage normalises the knobs with)."""
    lay = channel_layout(model)
    return ConvLayout(tuple(lay["convs"]), tuple(lay["filters"]),
                      tuple(tuple(g) for g in lay["groups"]))


def group_lines(model: tf.keras.Model) -> list[str]:
    """The channel groups of ``model`` as printable lines (for ``mcusearch validate``): per
    group its convs and width, which of them lose the same channels and why, the layers whose
    channels follow (BatchNorm, depthwise convs, a squeeze-and-excite Dense) and what is locked.
    """
    graph = channel_graph(model)
    filters = {l.name: int(l.filters) for l in conv_layers(model)}
    lines = []
    for k, group in enumerate(conv_groups(model, graph), 1):
        widths = sorted({filters[n] for n in group})
        width = "/".join(map(str, widths))
        lines.append(f"group {k}: {' + '.join(group)} ({width} filters)")
        for unit in (u for u in graph.units if u.convs[0] in group):
            convs = "+".join(unit.convs)
            if unit.locked:
                lines.append(f"  {convs}: locked, keeps all filters ({unit.locked})")
            elif len(unit.convs) > 1:
                lines.append(f"  {' = '.join(unit.convs)}: lose the same channels (they meet "
                             "in a residual add or a channel-wise multiply)")
            follow = [f"{n} (output units)" for n in unit.followers] + list(unit.carriers)
            if follow:
                lines.append(f"  follow {convs}: {', '.join(follow)}")
    return lines or ["no prunable conv layers (Conv1D, Conv2D)"]
