"""Op plug-ins of the mcusearch generator: one module per op family, one registry.

An op plug-in is

* an :class:`~mcusearch.convert.graph.Op` subclass (shapes, MACs, constants) whose
  :meth:`~mcusearch.convert.graph.Op.emit_ref` writes its constants and parameters through a
  :class:`RefContext` and returns the C call of its reference kernel (``firmware/kernels/NAME.c``,
  one operator per file and dtype, declared in a header that ``mcus_kernels.h`` includes);
* a front-end rule: a function registered with :func:`tflite_rule` for one or more TFLite builtin
  operators, which reads the operator through the :class:`~mcusearch.convert.frontend.Reader`
  and adds the op to the graph.

Both generators take every plug-in op: the reference generator calls its kernel, the optimised
generator calls the same kernel on whole tensors (a per-layer fallback) until the op has a row
kernel of its own. Adding an op is adding one module here (listed in :data:`PLUGIN_MODULES`),
its kernels, and their declarations.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np

from mcusearch.convert.ctext import c_array, c_float, init

if TYPE_CHECKING:
    from mcusearch.convert.frontend import Reader, TfliteOp

# Modules of op plug-ins (mcusearch.convert.ops.<name>); importing one registers its rules.
PLUGIN_MODULES: tuple[str, ...] = ("shape", "elementwise", "transpose_conv", "batch_matmul")

TfliteRule = Callable[["Reader", "TfliteOp"], None]
TFLITE_RULES: dict[str, TfliteRule] = {}


def tflite_rule(*builtins: str) -> Callable[[TfliteRule], TfliteRule]:
    """Register ``fn(reader, op)`` as the front-end rule of the TFLite builtin ``builtins``."""
    def deco(fn: TfliteRule) -> TfliteRule:
        for b in builtins:
            TFLITE_RULES[b] = fn
        return fn
    return deco


def load_plugins() -> dict[str, TfliteRule]:
    for m in PLUGIN_MODULES:
        importlib.import_module(f"mcusearch.convert.ops.{m}")
    return TFLITE_RULES


@dataclass
class RefContext:
    """What an op's :meth:`emit_ref` writes through: C identifiers, buffers, constants."""

    dtype: str                       # "float32" | "int8"
    pfx: str                         # a unique C identifier prefix for this op's symbols
    inputs: list[str]                # C pointer expressions of op.inputs, in order
    output: str                      # C pointer expression of the op's output
    data: list[str] = field(default_factory=list)      # C declarations (constants, params)
    kernels: list[str] = field(default_factory=list)   # reference kernel files (no .c) to build

    @property
    def f32(self) -> bool:
        return self.dtype == "float32"

    @property
    def ctype(self) -> str:
        """The C element type of activations."""
        return "float" if self.f32 else "int8_t"

    @property
    def sfx(self) -> str:
        """The kernel name suffix of this dtype: f32 or s8."""
        return "f32" if self.f32 else "s8"

    def array(self, ctype: str, suffix: str, values: np.ndarray, per_line: int = 12) -> str:
        """A ``static const`` array in flash; returns its name."""
        name = f"{self.pfx}_{suffix}"
        self.data.append(c_array(ctype, name, values, per_line))
        return name

    def params(self, ptype: str, fields: dict, suffix: str = "p") -> str:
        """A ``static const ptype`` parameter block (a designated initializer); returns its name."""
        name = f"{self.pfx}_{suffix}"
        self.data.append(f"static const {ptype} {name} = {init(fields)};\n")
        return name

    def kernel(self, name: str) -> None:
        """Build ``firmware/kernels/<name>.c`` into the firmware."""
        if name not in self.kernels:
            self.kernels.append(name)

    @staticmethod
    def c_float(v: float) -> str:
        return c_float(v)
