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
    """A classification data set, NHWC float32 inputs and integer labels, split by the loader."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    description: str = ""
    # Seconds between two consecutive inputs in the live stream (sets the real-time deadline).
    frame_period_s: float | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


@dataclass(frozen=True)
class ModelKnobs:
    """The knob values that change the model (everything else reuses the model stage's cache)."""

    channels: tuple[int, ...] | None = None  # filters kept per conv group; None = full width
    quantization: str = "float32"            # "float32" | "int8"
    retrain_epochs: int = 2                  # fine-tuning epochs after channel pruning


@dataclass
class ModelResult:
    keras_path: Path                 # the float model after pruning and re-training (.h5)
    tflite_path: Path | None         # the quantised model (int8), else None
    quantization: str
    accuracy: float                  # held-out test set: Keras (float32) or TFLite interpreter (int8)
    params: int
    macs: int
    input_shape: tuple[int, ...]
    class_names: tuple[str, ...]
    probe_inputs: np.ndarray         # float32 inputs the firmware runs (a few per class), NHWC
    probe_labels: np.ndarray
    cache_key: str
    channels: tuple[int, ...] = ()   # filters per conv layer, as built
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetConfig:
    name: str                                   # "watch" | "fashion_mnist" | "npz"
    path: Path | None = None                    # the .npz file for name == "npz"
    classes: tuple[str, ...] | None = None      # keep only these classes (by name), in this order
    max_train: int | None = None                # stratified subsample, for quick runs and tests
    max_test: int | None = None


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
class BaseModelConfig:
    """Everything that defines the base model (trained once, cached) and how trials evaluate."""

    dataset: DatasetConfig
    architecture: ArchitectureConfig = ArchitectureConfig()
    train: TrainConfig = TrainConfig()
    probe_per_class: int = 5                    # firmware test inputs per class (the study used 5)
    representative_samples: int = 200           # int8 calibration set size


from mcusearch.model.stage import build_model, base_model  # noqa: E402
