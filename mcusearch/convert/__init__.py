"""Convert stage: a model -> C sources that the firmware harness compiles.

One interface (:class:`Converter`), one registry (:data:`CONVERTERS`); adding a converter is adding
one module that subclasses Converter and one entry in the registry. Entry point: :func:`convert`.

The generated code's contract with firmware/harness (model.h):

    #define MCUS_INPUT_LEN  <elements per input>
    #define MCUS_OUTPUT_LEN <elements per output>
    typedef float|int8_t mcus_input_t;
    typedef float|int8_t mcus_output_t;
    void mcus_model_run(const mcus_input_t *input, mcus_output_t *output);
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from mcusearch.model import ModelResult


@dataclass
class ConvertResult:
    converter: str
    sources: list[Path]            # .c files to compile: generated model + the kernels it calls
    include_dirs: list[Path]       # must contain model.h
    input_dtype: str               # "float32" | "int8"
    output_dtype: str
    inputs: np.ndarray             # (N, MCUS_INPUT_LEN) probe inputs in input_dtype (quantised for int8)
    expected: np.ndarray           # (N, MCUS_OUTPUT_LEN) the host model's outputs for them
    atol: float                    # allowed |firmware - host| (0 for bit-exact int8)
    rtol: float
    arena_bytes: int               # activation memory the generated code reserves
    output_meaning: str            # e.g. "softmax probabilities" or "int8 softmax probabilities"
    layers: list[str] = field(default_factory=list)
    probe_note: str = ""           # non-empty: why an output match on the probe inputs proves little


class Converter(ABC):
    """A way to turn a trained model into C. Subclasses set ``name`` and ``quantizations``."""

    name: ClassVar[str]
    quantizations: ClassVar[frozenset[str]]

    @abstractmethod
    def convert(self, model: ModelResult, out_dir: Path) -> ConvertResult:
        """Write C sources for ``model`` under ``out_dir`` and describe them."""


CONVERTERS: dict[str, type[Converter]] = {}


def register(cls: type[Converter]) -> type[Converter]:
    CONVERTERS[cls.name] = cls
    return cls


def _load_plugins() -> None:
    # Importing a plugin module registers it. Plugins import heavy libraries lazily.
    # cgen: "mcusearch-ref" (the reference kernels); fast: "mcusearch" (the optimised kernels) and
    # "mcusearch-lowmem" (the same with 1-D maps as columns)
    from mcusearch.convert import aidge, cgen, fast  # noqa: F401


def available_converters() -> dict[str, frozenset[str]]:
    """Converter name -> the quantizations it supports."""
    _load_plugins()
    return {name: cls.quantizations for name, cls in CONVERTERS.items()}


def convert(model: ModelResult, converter: str, out_dir: Path) -> ConvertResult:
    _load_plugins()
    return CONVERTERS[converter]().convert(model, Path(out_dir))
