"""Knobs: the search dimensions. One small class per knob, one registry.

A knob reads its domain from ``search.yaml``, names the Optuna parameters it needs
(:meth:`Knob.space`, categorical choices, which also give the grid for the grid sampler), and turns
the sampled parameter values into values of :class:`TrialConfig` fields (:meth:`Knob.values`).
Adding a knob is adding one subclass here and one field to :class:`TrialConfig`.

The model knobs (see ``knobs:`` in search.yaml):

* ``channels`` - channel pruning: filters kept per conv group (``per: pair`` / ``group``), per
  conv layer (``per: layer``), one count for every conv (``per: global``) or one keep ratio for
  every conv (``per: ratio``); ``criterion`` (l1, l2, random, bn) and ``retrain_epochs`` (0 = no
  re-training) are dimensions too when they list more than one value;
* ``magnitude`` - magnitude pruning: final ``sparsity`` (0 = off) and fine-tuning ``epochs``;
* ``quantization`` - float32, int8 (post-training), int16x8 (post-training, 16-bit activations),
  int8-qat (quantisation-aware training).

A new knob whose list holds one value is a constant, not a search dimension (:class:`Fixed`).
"""
from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any, ClassVar

from mcusearch.errors import SpecError
from mcusearch.model.layout import BUILTIN_LAYOUTS, ConvLayout
from mcusearch.spec import Spec


@dataclass(frozen=True)
class TrialConfig:
    """Everything one trial builds: the knob values, one per field."""

    channels: tuple[int, ...] | None   # filters kept per conv group (or layer); None = full model
    quantization: str                  # float32 | int8 | int16x8 | int8-qat
    opt_level: str
    converter: str
    board: str
    channels_per: str = "group"        # what `channels` counts: "group" or "layer" (one per conv)
    keep_ratio: float | None = None    # instead of counts: the fraction of every conv's filters
    criterion: str = "l1"              # which filters go: l1 | l2 | random | bn
    retrain_epochs: int | None = None  # re-training after channel pruning; None: the spec's
    sparsity: float = 0.0              # magnitude pruning: final sparsity; 0 = off
    sparsity_epochs: int | None = None  # fine-tuning epochs of magnitude pruning; None: default

    def key(self) -> str:
        """A short content hash, used in artifact folder names (fields at their default value
        are left out, so adding a knob does not rename the folders of configurations without it)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)
             if f.default is MISSING or getattr(self, f.name) != f.default}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]

    def describe(self) -> str:
        if self.keep_ratio is not None:
            ch = f"keep {self.keep_ratio:g}"
        else:
            ch = "full" if self.channels is None else "/".join(map(str, self.channels))
        parts = [f"ch={ch}"]
        if self.channels is not None or self.keep_ratio is not None:
            if self.criterion != "l1":
                parts.append(self.criterion)
            if self.retrain_epochs is not None:
                parts.append(f"retrain={self.retrain_epochs}")
        if self.sparsity:
            parts.append(f"sparsity={self.sparsity:g}"
                         + (f"/{self.sparsity_epochs}ep" if self.sparsity_epochs else ""))
        parts += [self.quantization, self.converter, self.opt_level, self.board]
        return " ".join(parts)


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

    def values(self, params: dict[str, Any]) -> dict[str, Any]:
        """The TrialConfig fields this knob sets (one by default)."""
        return {self.field: self.value(params)}


class Categorical(Knob):
    """A knob that is one categorical choice, e.g. quantization or compiler optimisation level."""

    def __init__(self, field: str, choices: list):
        self.field = field
        self.choices = list(choices)

    def space(self) -> dict[str, list]:
        return {self.field: self.choices}


class Fixed(Knob):
    """A knob with a single value: a constant of every trial, not a search dimension."""

    def __init__(self, field: str, value: Any):
        self.field, self.fixed = field, value

    def space(self) -> dict[str, list]:
        return {}

    def value(self, params: dict[str, Any]) -> Any:
        return self.fixed


def categorical(field: str, choices: list) -> Knob:
    """A new knob: a dimension when it has several values, a constant when it has one."""
    return Categorical(field, choices) if len(choices) > 1 else Fixed(field, choices[0])


class Channels(Knob):
    """Filters kept per conv group (``per: pair`` / ``group``), per conv layer (``per: layer``),
    one count for every conv (``per: global``) or one keep ratio (``per: ratio``).

    The full width of the model is always a valid value and means "not pruned". A count above a
    group's (or layer's) width keeps all of it.
    """

    field = "channels"

    def __init__(self, layout: ConvLayout | None, values: list, per: str):
        if per == "pair":
            per = "group"
        if per != "ratio" and layout is None:
            raise SpecError("knobs.channels.per", "the model's conv layers are unknown: use "
                            "`per: ratio`")
        self.layout, self.values_, self.per = layout, list(values), per

    @property
    def groups(self) -> tuple[tuple[str, ...], ...]:
        return self.layout.groups if self.layout else ()

    def _units(self) -> list[tuple[str, int]]:
        """(parameter name suffix, full width) per sampled count."""
        if self.per == "layer":
            return list(zip(self.layout.convs, self.layout.filters))
        return [(str(i + 1), w) for i, w in enumerate(self.layout.group_filters())]

    def space(self) -> dict[str, list]:
        if self.per == "ratio":
            return {"keep_ratio": self.values_}
        if self.per == "global":
            return {"channels": self.values_}
        return {f"channels_{s}": self.values_ for s, _ in self._units()}

    def values(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.per == "ratio":
            r = float(params["keep_ratio"])
            return {"channels": None, "keep_ratio": None if r >= 1.0 else r}
        units = self._units()
        if self.per == "global":
            asked = [int(params["channels"])] * len(units)
        else:
            asked = [int(params[f"channels_{s}"]) for s, _ in units]
        ch = tuple(min(c, w) for c, (_, w) in zip(asked, units))
        full = all(c == w for c, (_, w) in zip(ch, units))
        return {"channels": None if full else ch,
                "channels_per": "layer" if self.per == "layer" else "group"}

    def value(self, params: dict[str, Any]):
        return self.values(params)["channels"]


def conv_layout(spec: Spec) -> ConvLayout | None:
    """The convs the channel knob acts on (None if unknown). A user's model file is loaded and
    grouped as the model stage groups it (residual adds, concatenations, depthwise chains);
    the built-in architectures need no TensorFlow."""
    if spec.model.path is not None:
        from mcusearch.model.architectures import knob_layout
        from mcusearch.model.load import load_user_model
        try:
            return knob_layout(load_user_model(spec.resolve(spec.model.path),
                                               spec.model.trust_code))
        except (ValueError, SpecError):
            return None
    builder = BUILTIN_LAYOUTS.get(spec.model.architecture or "")
    return builder(int(spec.model.params.get("filters", 32))) if builder else None


def knobs_from_spec(spec: Spec) -> list[Knob]:
    k = spec.knobs
    knobs: list[Knob] = []
    path = spec.resolve(spec.model.path) if spec.model.path else None
    if path is not None and path.suffix == ".tflite":
        # A .tflite base is used as it is: the model knobs need Keras (preflight warns of them).
        from mcusearch.model.load import describe_tflite
        knobs.append(Categorical("quantization", [describe_tflite(path).quantization]))
        knobs.append(Categorical("opt_level", list(k.opt_level)))
        knobs.append(Categorical("converter", list(k.converter)))
        knobs.append(Categorical("board", list(spec.target.boards)))
        return knobs
    if k.channels is not None:
        knobs.append(Channels(conv_layout(spec), k.channels.values, k.channels.per))
        knobs.append(categorical("criterion", list(k.channels.criterion)))
        knobs.append(categorical("retrain_epochs", list(k.channels.retrain_epochs
                                                        or [spec.model.retrain_epochs])))
    if k.magnitude is not None:
        knobs.append(categorical("sparsity", list(k.magnitude.sparsity)))
        knobs.append(categorical("sparsity_epochs", list(k.magnitude.epochs)))
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
    values: dict[str, Any] = {"channels": None}
    for knob in knobs:
        values.update(knob.values(params))
    return TrialConfig(**values)


def config_dict(config: TrialConfig) -> dict:
    """The config as JSON-able values (tuples as lists), as the study stores it."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()}
