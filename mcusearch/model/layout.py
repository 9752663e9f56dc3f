"""Conv layers and conv groups of a model, without TensorFlow.

The channel knob needs, when the spec is read, the names of the conv layers it acts on and how
they group into blocks: for the built-in architectures that follows from their parameters; for a
user's Keras file it is read from the configuration stored in the file (``model_config`` of an
.h5, ``config.json`` of a .keras zip) with h5py / zipfile. The grouping rule is the one
:func:`mcusearch.model.architectures.conv_groups` applies to a built model: consecutive
prunable convs between two pooling, reshaping, dense or merging layers form one group.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

PRUNABLE = ("Conv1D", "Conv2D")  # layer classes whose filters channel pruning removes
# Layers that end a conv group (a block): pooling, reshaping, dense and merging layers.
BLOCK_END = ("MaxPooling2D", "AveragePooling2D", "GlobalMaxPooling2D", "GlobalAveragePooling2D",
             "Flatten", "Reshape", "Dense", "Add", "Subtract", "Multiply", "Average", "Maximum",
             "Minimum", "Concatenate")


def group_convs(layers: Iterable[tuple[str, str]]) -> list[tuple[str, ...]]:
    """Conv layer names grouped into blocks, from ``(class name, layer name)`` in model order."""
    groups: list[list[str]] = []
    current: list[str] = []
    for kind, name in layers:
        if kind in PRUNABLE:
            current.append(name)
        elif kind in BLOCK_END and current:
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    return [tuple(g) for g in groups]


@dataclass(frozen=True)
class ConvLayout:
    """The prunable convs of a model in order, their filter counts and their groups."""

    convs: tuple[str, ...]
    filters: tuple[int, ...]
    groups: tuple[tuple[str, ...], ...]

    def group_filters(self) -> tuple[int, ...]:
        """Filters a whole group can keep: the smallest count in the group."""
        f = dict(zip(self.convs, self.filters))
        return tuple(min(f[n] for n in g) for g in self.groups)


def study_cnn_layout(filters: int = 32) -> ConvLayout:
    convs = tuple(f"conv{i}" for i in range(1, 7))
    return ConvLayout(convs, (int(filters),) * 6,
                      (("conv1", "conv2"), ("conv3", "conv4"), ("conv5", "conv6")))


BUILTIN_LAYOUTS = {"study_cnn": study_cnn_layout}


def _stored_config(path: Path) -> dict:
    if path.suffix.lower() == ".keras":
        with zipfile.ZipFile(path) as z:
            return json.loads(z.read("config.json"))
    import h5py

    with h5py.File(path, "r") as f:
        raw = f.attrs.get("model_config")
        if raw is None:
            raise ValueError("no model_config in the file")
        return json.loads(raw.decode() if isinstance(raw, bytes) else raw)


def file_layout(path: Path | str) -> ConvLayout:
    """The conv layout of a saved Keras 2 model (raises ValueError if it cannot be read)."""
    try:
        cfg = _stored_config(Path(path))
        layers = cfg["config"]["layers"]
        rows = [(l["class_name"], l["config"]["name"]) for l in layers]
        filters = {l["config"]["name"]: int(l["config"]["filters"]) for l in layers
                   if l["class_name"] in PRUNABLE}
    except (OSError, KeyError, TypeError, ValueError, zipfile.BadZipFile) as e:
        raise ValueError(f"cannot read the layers of {path}: {type(e).__name__}: {e}") from None
    convs = tuple(n for k, n in rows if k in PRUNABLE)
    return ConvLayout(convs, tuple(filters[n] for n in convs), tuple(group_convs(rows)))
