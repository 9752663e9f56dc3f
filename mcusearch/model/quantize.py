"""Post-training quantisation to a full-integer (int8) TFLite model."""
from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path

import mcusearch  # noqa: F401  (selects tf-keras before TensorFlow is imported)
import numpy as np
import tensorflow as tf

from mcusearch.errors import StageError

log = logging.getLogger("mcusearch.model")


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def to_int8_tflite(model: tf.keras.Model, representative_x: np.ndarray, path) -> Path:
    """Full-integer post-training quantisation: int8 weights, activations, input and output.

    ``representative_x`` (float inputs, typically a few hundred training samples) calibrates the
    activation ranges. Writes the .tflite file to ``path`` (atomically) and returns the path.
    """
    path = Path(path)
    rep = np.asarray(representative_x, np.float32)
    if len(rep) == 0:
        raise StageError("model", "int8 quantisation needs representative samples")
    t0 = time.perf_counter()

    def representative_dataset():
        for i in range(len(rep)):
            yield [rep[i:i + 1]]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative_dataset
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    try:
        with warnings.catch_warnings():
            # TF warns that no input statistics were given: they are not needed with a
            # representative data set (the input scale comes from it).
            warnings.filterwarnings("ignore", "Statistics for quantized inputs")
            data = conv.convert()
    except Exception as e:  # noqa: BLE001 - converter errors are this stage's failure
        raise StageError("model", f"int8 conversion failed: {type(e).__name__}: "
                         f"{str(e)[:500]}") from e
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, data)
    log.info("int8 TFLite model: %d bytes, %d calibration samples, %.1f s", len(data), len(rep),
             time.perf_counter() - t0)
    return path


def to_float_tflite(model: tf.keras.Model, path) -> Path:
    """A plain float32 TFLite model (no optimisation), for converters that read .tflite."""
    path = Path(path)
    try:
        data = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    except Exception as e:  # noqa: BLE001
        raise StageError("model", f"TFLite conversion failed: {type(e).__name__}: "
                         f"{str(e)[:500]}") from e
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, data)
    return path
