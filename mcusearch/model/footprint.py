"""Lower bounds of the flash and RAM a model needs on any microcontroller, from its shapes.

Used to reject a candidate before any training (:func:`mcusearch.model.candidate_footprint`),
so the bounds must never exceed what a real build needs, whatever the converter:

* flash >= the kernel weights (conv, dense) that stay non-zero x the bytes of one weight of the
  format (float32: 4; int8 and int16x8: 1). Kernels start random, so a kernel weight is exactly
  zero only when magnitude pruning zeroes it: at final sparsity s a kernel of n weights keeps at
  least floor(n (1 - s)) (tfmot keeps round(n (1 - s))). Biases and normalisation parameters are
  not counted: biases start at zero and those of dead units stay zero. A converter storing
  dense weights (all current ones) needs all parameters; one with a sparse format could skip
  the zeros, so only the survivors are certain. Weights that round to an int8 zero (about 0.4 %
  of an unpruned model's) are not subtracted: a format skipping so few zeros spends more bits
  on their positions than it saves. Code, tables and the harness come on top.
* RAM >= the largest single activation tensor (a layer's output) x the bytes of one activation
  value (float32: 4; int8: 1; int16x8: 2). The model's input is not counted: the harness reads
  the probe inputs from flash. Any converter that computes layer by layer holds that tensor at
  some point; a ping-pong arena holds a layer's input and output at once
  (``pingpong_bytes``, reported but not used as the bound).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import mcusearch  # noqa: F401  (selects tf-keras before TensorFlow is imported)
import tensorflow as tf

from mcusearch.model import ACTIVATION_BYTES, WEIGHT_BYTES
from mcusearch.model.magnitude import kernel_names

# layers whose output is their input seen differently (no buffer of their own)
_ALIASES = ("InputLayer", "Flatten", "Reshape", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
            "GaussianDropout", "GaussianNoise", "AlphaDropout", "ActivityRegularization")


@dataclass(frozen=True)
class Footprint:
    format: str                  # float32 | int8 | int16x8
    sparsity: float              # the magnitude-pruning target the bound assumes (0: none)
    params: int                  # exact parameter count
    pruned_weights: int          # the kernel weights magnitude pruning acts on
    nonzero_params: int          # kernel weights surely non-zero (lower bound; a finished
                                 # model's footprint counts its actual non-zero parameters)
    flash_bytes: int             # lower bound of the model's flash
    activation_bytes: int        # lower bound of the model's RAM: the largest activation
    largest_activation: str      # the layer whose output that is
    pingpong_bytes: int          # the largest input + output of one layer (ping-pong arena)

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        return (f"{self.params:,} params ({self.nonzero_params:,} non-zero) -> flash >= "
                f"{self.flash_bytes / 1024:.2f} kB ({self.format}); largest activation "
                f"{self.largest_activation} -> RAM >= {self.activation_bytes / 1024:.2f} kB")


def _elements(shape) -> int:
    return int(math.prod(int(d) for d in shape[1:]))


def _outputs(layer) -> list:
    s = layer.output_shape
    return s if isinstance(s, list) else [s]


def footprint(model: tf.keras.Model, fmt: str, sparsity: float = 0.0,
              nonzero: int | None = None) -> Footprint:
    """The bounds of ``model`` stored in format ``fmt`` after magnitude pruning to
    ``sparsity``; ``nonzero`` (counted on a finished model) replaces the estimate."""
    wbytes, abytes = WEIGHT_BYTES[fmt], ACTIVATION_BYTES[fmt]
    params = int(model.count_params())
    pruned = survivors = 0
    for layer in model.layers:
        for w in layer.weights:
            if w.name in kernel_names(layer):
                n = int(w.shape.num_elements())
                pruned += n
                survivors += math.floor(n * (1.0 - float(sparsity)))
    nz = survivors if nonzero is None else int(nonzero)
    largest, name, pair = 0, "", 0
    model_inputs = {id(t) for t in model.inputs}
    for layer in model.layers:
        kind = type(layer).__name__
        out = sum(_elements(s) for s in _outputs(layer))
        if kind not in _ALIASES and out > largest:
            largest, name = out, layer.name
        if kind not in _ALIASES:
            ins = layer.input if isinstance(layer.input, list) else [layer.input]
            in_elems = sum(_elements(t.shape) for t in ins if id(t) not in model_inputs)
            pair = max(pair, in_elems + out)
    return Footprint(format=fmt, sparsity=float(sparsity), params=params, pruned_weights=pruned,
                     nonzero_params=nz, flash_bytes=nz * wbytes,
                     activation_bytes=largest * abytes, largest_activation=name,
                     pingpong_bytes=pair * abytes)
