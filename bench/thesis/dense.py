"""``mcusearch-dense``: our optimised generator with its sparse kernels switched off.

The 2020 study compared a dense convolution (every weight stored and multiplied, zeros too, as
X-CUBE-AI and Keras2C did) with a sparse one on magnitude-pruned models. ``mcusearch`` picks
sparse kernels by itself where they pay (``FastConverter.sparse = "auto"``); this converter is the
same generator forced dense (``sparse = "never"``), so the two differ in the weight storage only.

Importing this module registers the converter in this process (the package's converter registry,
its plug-in point); the magnitude study therefore runs its trials in-process
(``search.isolate: false``). If the package registers ``mcusearch-dense`` itself, that one is kept.
"""
from __future__ import annotations

from mcusearch.convert import CONVERTERS, register
from mcusearch.convert.fast import FastConverter

NAME = "mcusearch-dense"


class DenseConverter(FastConverter):
    """The project's optimised generator, dense weights in every layer."""

    name = NAME
    sparse = "never"


def ensure_registered() -> None:
    """Register :class:`DenseConverter` unless a converter of that name exists already."""
    from mcusearch.convert import available_converters

    available_converters()  # loads the package's own plug-ins first
    if NAME not in CONVERTERS:
        register(DenseConverter)
