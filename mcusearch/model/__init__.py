"""Model stage: knobs -> a trained, shrunk (and possibly quantised) model, evaluated on the host.

Entry point: :func:`build_model`. Result: :class:`ModelResult`.
Submodules: datasets, architectures, train, prune, quantize, evaluate, cache.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Dataset:
    """A data set split by the loader: float32 inputs (NHWC for images) and, by ``task``,
    integer labels (classification) or float targets (regression; an autoencoder's are its
    inputs). ``class_names`` is empty for regression."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    description: str = ""
    # Seconds between two consecutive inputs in the live stream (sets the real-time deadline).
    frame_period_s: float | None = None
    task: str = "classification"                 # classification | regression | autoencoder
    anomaly_test: np.ndarray | None = None       # 0 normal / 1 anomalous per test sample
    x_calibration: np.ndarray | None = None      # int8 / int16x8 calibration inputs, if given

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


# Quantization knob values -> the number format of the model a converter receives. A converter's
# ``quantizations`` (mcusearch.convert.Converter) lists formats: a converter that supports int8
# takes both the post-training (int8) and the quantisation-aware (int8-qat) models.
QUANT_FORMAT = {"float32": "float32", "int8": "int8", "int8-qat": "int8", "int16x8": "int16x8"}
QUANTIZATIONS = tuple(QUANT_FORMAT)
CRITERIA = ("l1", "l2", "random", "bn")    # which filters channel pruning removes
FINETUNE_LR_FACTOR = 0.5  # every fine-tuning (re-training, magnitude, QAT): base rate x this
# bytes per stored weight and per activation value, by format (int16x8: int8 weights, int16
# activations; biases are wider in TFLite but a lower bound counts every parameter at this width)
WEIGHT_BYTES = {"float32": 4, "int8": 1, "int16x8": 1}
ACTIVATION_BYTES = {"float32": 4, "int8": 1, "int16x8": 2}


@dataclass(frozen=True)
class ModelKnobs:
    """The knob values that change the model (everything else reuses the model stage's cache).

    Channel pruning takes at most one of ``channels`` (per conv group), ``layer_channels`` (per
    conv layer, model order) and ``keep_ratio`` (one fraction of every conv's filters); none of
    them means full width. Convs whose outputs meet in a residual add keep the same filters (the
    largest count asked among them); convs that feed something the channels cannot be removed
    through keep all their filters.
    """

    channels: tuple[int, ...] | None = None   # filters kept per conv group; None = full width
    quantization: str = "float32"             # float32 | int8 | int16x8 | int8-qat
    retrain_epochs: int = 2                   # fine-tuning after channel pruning (0 = none)
    layer_channels: tuple[int, ...] | None = None  # filters kept per conv layer
    keep_ratio: float | None = None           # fraction of each conv's filters kept
    criterion: str = "l1"                     # l1 | l2 | random: which filters are removed
    sparsity: float = 0.0                     # magnitude pruning: final sparsity (0 = off)
    sparsity_epochs: int = 2                  # fine-tuning epochs under the pruning schedule

    @property
    def format(self) -> str:
        """The number format of the finished model: float32, int8 or int16x8."""
        return QUANT_FORMAT.get(self.quantization, self.quantization)


@dataclass
class ModelResult:
    keras_path: Path                 # the float model after pruning and fine-tuning (.h5)
    tflite_path: Path | None         # the quantised model (int8 or int16x8), else None
    quantization: str                # the format: float32 | int8 | int16x8 (int8-qat gives int8)
    accuracy: float                  # held-out test set: Keras (float32) or TFLite interpreter
    params: int
    macs: int
    input_shape: tuple[int, ...]
    class_names: tuple[str, ...]
    probe_inputs: np.ndarray         # float32 inputs the firmware runs (a few per class), NHWC
    probe_labels: np.ndarray
    cache_key: str
    channels: tuple[int, ...] = ()   # filters per conv layer, as built
    extra: dict = field(default_factory=dict)
    balanced_accuracy: float = float("nan")      # mean per-class recall, same test set
    per_class_accuracy: tuple[float, ...] = ()   # recall of each class (class_names order)


@dataclass(frozen=True)
class DatasetConfig:
    name: str                                   # "watch" | "fashion_mnist" | "npz"
    path: Path | None = None                    # the .npz file for name == "npz"
    classes: tuple[str, ...] | None = None      # keep only these classes (by name), in this order
    max_train: int | None = None                # stratified subsample, for quick runs and tests
    max_test: int | None = None
    task: str = "classification"                # classification | regression | autoencoder
    calibration: Path | None = None             # .npz with `x`: the int8 calibration inputs
    image_size: tuple[int, int] | None = None   # images: (height, width) every image is resized to
    color_mode: str = "grayscale"               # images: grayscale | rgb | rgba
    rescale: float = 1 / 255                    # images: pixel value x this
    shape: tuple[int, ...] | None = None        # csv: the shape of one sample (the window)
    label_column: str = "label"                 # csv: the column holding the class
    test_split: float | None = None             # images / csv without a given split: test share
    split_seed: int = 0                         # ... drawn per class with this seed


@dataclass(frozen=True)
class ArchitectureConfig:
    name: str | None = "study_cnn"              # a built-in architecture, or None with `path`
    params: tuple[tuple[str, object], ...] = () # its parameters, e.g. (("filters", 32),)
    path: Path | None = None                    # a user's .keras / .h5 model instead


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3
    seed: int = 0


@dataclass(frozen=True)
class MagnitudeSchedule:
    """tfmot PolynomialDecay settings of magnitude pruning (defaults: the 2020 study's)."""

    frequency: int = 50          # steps between two mask updates
    begin_step: int = 0
    initial_sparsity: float = 0.0


@dataclass(frozen=True)
class BaseModelConfig:
    """Everything that defines the base model (trained once, cached) and how trials evaluate."""

    dataset: DatasetConfig
    architecture: ArchitectureConfig = ArchitectureConfig()
    train: TrainConfig = TrainConfig()
    probe_per_class: int = 5                    # firmware test inputs per class (the study used 5)
    representative_samples: int = 200           # PTQ calibration set size (int8, int16x8)
    magnitude: MagnitudeSchedule = MagnitudeSchedule()
    qat_epochs: int = 2                         # quantisation-aware fine-tuning (int8-qat)
    trust_code: bool = False                    # model.trust_code: a model file may run its code


from mcusearch.model.stage import (base_model, build_model, candidate_footprint,  # noqa: E402
                                   normalise_knobs)
