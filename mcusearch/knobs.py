"""Knobs: the search dimensions. One small class per knob, one registry.

A knob reads its domain from ``search.yaml``, names the Optuna parameters it needs
(:meth:`Knob.space`, categorical choices, which also give the grid for the grid sampler), and turns
the sampled parameter values into one value of :class:`TrialConfig` (:meth:`Knob.value`).
Adding a knob is adding one subclass here and one field to :class:`TrialConfig`.
"""
from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from mcusearch.spec import Spec

# Conv groups per built-in architecture: the channel knob keeps the same count in a whole group.
CONV_GROUPS = {"study_cnn": ("conv1+conv2", "conv3+conv4", "conv5+conv6")}


@dataclass(frozen=True)
class TrialConfig:
    """Everything one trial builds: the knob values, one per field."""

    channels: tuple[int, ...] | None   # filters kept per conv group; None = the full model
    quantization: str
    opt_level: str
    converter: str
    board: str

    def key(self) -> str:
        """A short content hash, used in artifact folder names."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]

    def describe(self) -> str:
        ch = "full" if self.channels is None else "/".join(map(str, self.channels))
        return f"ch={ch} {self.quantization} {self.converter} {self.opt_level} {self.board}"


class Knob(ABC):
    """One search dimension. ``field`` is the :class:`TrialConfig` field it sets."""

    field: ClassVar[str]

    @abstractmethod
    def space(self) -> dict[str, list]:
        """Optuna parameter name -> its categorical choices."""

    def value(self, params: dict[str, Any]) -> Any:
        """Combine this knob's sampled parameters into the TrialConfig value."""
        (name,) = self.space()
        return params[name]


class Categorical(Knob):
    """A knob that is one categorical choice, e.g. quantization or compiler optimisation level."""

    def __init__(self, field: str, choices: list):
        self.field = field
        self.choices = list(choices)

    def space(self) -> dict[str, list]:
        return {self.field: self.choices}


class Channels(Knob):
    """Filters kept per conv group (``per: pair``) or in every conv (``per: global``).

    The full width of the model is always a valid value and means "not pruned".
    """

    field = "channels"

    def __init__(self, groups: tuple[str, ...], values: list[int], per: str, full: int):
        self.groups, self.values, self.per, self.full = groups, values, per, full

    def space(self) -> dict[str, list]:
        if self.per == "global":
            return {"channels": self.values}
        return {f"channels_{i + 1}": self.values for i in range(len(self.groups))}

    def value(self, params: dict[str, Any]) -> tuple[int, ...] | None:
        if self.per == "global":
            ch = (params["channels"],) * len(self.groups)
        else:
            ch = tuple(params[f"channels_{i + 1}"] for i in range(len(self.groups)))
        return None if all(c == self.full for c in ch) else ch


def knobs_from_spec(spec: Spec) -> list[Knob]:
    k = spec.knobs
    knobs: list[Knob] = []
    if k.channels is not None:
        arch = spec.model.architecture if spec.model.path is None else None
        groups = CONV_GROUPS.get(arch or "", ("all convs",))
        per = k.channels.per if arch in CONV_GROUPS else "global"
        knobs.append(Channels(groups, k.channels.values, per, int(spec.model.params.get("filters", 32))))
    knobs.append(Categorical("quantization", list(k.quantization)))
    knobs.append(Categorical("opt_level", list(k.opt_level)))
    knobs.append(Categorical("converter", list(k.converter)))
    knobs.append(Categorical("board", list(spec.target.boards)))
    return knobs


def search_space(knobs: list[Knob]) -> dict[str, list]:
    space: dict[str, list] = {}
    for knob in knobs:
        space.update(knob.space())
    return space


def config_from_params(knobs: list[Knob], params: dict[str, Any]) -> TrialConfig:
    values = {"channels": None}
    for knob in knobs:
        values[knob.field] = knob.value(params)
    return TrialConfig(**values)
