"""Quantisation to TFLite: full-integer int8 post-training (PTQ), int16x8 (16-bit activations,
8-bit weights) PTQ, and int8 quantisation-aware training (QAT) with tfmot.

Weights are quantised per output channel for convolutions and per tensor for dense layers
(TFLite's default scheme), symmetric (zero point 0), so an exact zero weight stays an exact
zero: :func:`tflite_weight_zeros` checks that a magnitude-pruned model's sparsity survived.
"""
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


def _convert(conv, path: Path, what: str) -> Path:
    try:
        with warnings.catch_warnings():
            # TF warns that no input statistics were given: they are not needed with a
            # representative data set (the input scale comes from it).
            warnings.filterwarnings("ignore", "Statistics for quantized inputs")
            data = conv.convert()
    except Exception as e:  # noqa: BLE001 - converter errors are this stage's failure
        raise StageError("model", f"{what} conversion failed: {type(e).__name__}: "
                         f"{str(e)[:500]}") from e
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, data)
    return path


def _representative(representative_x: np.ndarray):
    rep = np.asarray(representative_x, np.float32)
    if len(rep) == 0:
        raise StageError("model", "post-training quantisation needs representative samples")

    def representative_dataset():
        for i in range(len(rep)):
            yield [rep[i:i + 1]]
    return representative_dataset


# Keras recurrent layers that TensorFlow turns into a WHILE loop (GRU, SimpleRNN) or a fused
# UNIDIRECTIONAL_SEQUENCE_LSTM unless they are unrolled; unrolled, they become plain
# FULLY_CONNECTED / ADD / MUL / LOGISTIC / TANH / SPLIT operators that every converter here takes.
RECURRENT = ("LSTM", "GRU", "SimpleRNN")


def _unroll_config(node) -> bool:
    """Set ``unroll`` in every LSTM/GRU/SimpleRNN layer config under ``node`` (a model's config:
    its layers, and the layers a Bidirectional or TimeDistributed wrapper holds); whether any."""
    found = False
    if isinstance(node, dict):
        if node.get("class_name") in RECURRENT and isinstance(node.get("config"), dict):
            node["config"]["unroll"] = True
            found = True
        for v in node.values():
            found = _unroll_config(v) or found
    elif isinstance(node, list):
        for v in node:
            found = _unroll_config(v) or found
    return found


def unrolled(model: tf.keras.Model) -> tf.keras.Model:
    """``model`` with every LSTM/GRU/SimpleRNN layer unrolled over its (fixed) sequence length,
    wrapped ones (Bidirectional) included, same weights (the model itself when it has none)."""
    cfg = model.get_config()
    if not _unroll_config(cfg.get("layers", [])):
        return model
    try:
        clone = model.__class__.from_config(cfg)
    except Exception as e:  # noqa: BLE001 - e.g. an unknown sequence length
        raise StageError("model", f"cannot unroll the recurrent layers (a fixed sequence length is "
                         f"needed): {type(e).__name__}: {str(e)[:300]}") from e
    clone.set_weights(model.get_weights())
    return clone


def tflite_converter(model: tf.keras.Model) -> "tf.lite.TFLiteConverter":
    """TensorFlow's TFLite converter for ``model`` at batch size 1 with its recurrent layers
    unrolled: a fixed batch avoids the SHAPE / STRIDED_SLICE / PACK operators that a Reshape of
    an unknown batch produces, and unrolling avoids WHILE loops."""
    src = unrolled(model)
    shape = [1] + [int(d) if d is not None else -1 for d in src.input_shape[1:]]
    if isinstance(src.input_shape, list) or any(d < 0 for d in shape):
        return tf.lite.TFLiteConverter.from_keras_model(src)   # let TFLite report the problem
    fn = tf.function(lambda x: src(x, training=False)).get_concrete_function(
        tf.TensorSpec(shape, tf.float32))
    return tf.lite.TFLiteConverter.from_concrete_functions([fn], src)


def to_int16x8_tflite(model: tf.keras.Model, representative_x: np.ndarray, path) -> Path:
    """Post-training quantisation with 16-bit activations and 8-bit weights (TFLite's
    ``EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8``): int16 input and output,
    int64 biases. Calibrated on ``representative_x`` like the int8 model."""
    t0 = time.perf_counter()
    conv = tflite_converter(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = _representative(representative_x)
    conv.target_spec.supported_ops = [
        tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    conv.inference_input_type = tf.int16
    conv.inference_output_type = tf.int16
    path = _convert(conv, path, "int16x8")
    log.info("int16x8 TFLite model: %d bytes, %d calibration samples, %.1f s",
             path.stat().st_size, len(representative_x), time.perf_counter() - t0)
    return path


def qat_int8_tflite(model: tf.keras.Model, data, epochs: int, train_cfg, path, *,
                    preserve_sparsity: bool = False, lr_factor: float = 0.5,
                    report: dict | None = None) -> Path:
    """Quantisation-aware training (tfmot) of a copy of ``model`` for ``epochs``, then a
    full-integer int8 TFLite model (int8 input and output) from the trained fake-quant ranges.

    ``preserve_sparsity`` uses tfmot's prune-preserving scheme
    (``Default8BitPrunePreserveQuantizeScheme``), so the zeros of a magnitude-pruned model stay
    zeros through the fine-tuning. ``report`` receives the fine-tuning result (its accuracy is
    the fake-quantised Keras model's).
    """
    import tensorflow_model_optimization as tfmot

    from mcusearch.model.train import outputs_logits, set_seeds, train_model

    t0 = time.perf_counter()
    set_seeds(train_cfg.seed)
    src = tf.keras.models.clone_model(model)
    src.set_weights(model.get_weights())
    logits = outputs_logits(src)
    try:
        annotated = tfmot.quantization.keras.quantize_annotate_model(src)
        if preserve_sparsity:
            scheme = tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
        else:
            scheme = tfmot.quantization.keras.default_8bit.Default8BitQuantizeScheme()
        qat = tfmot.quantization.keras.quantize_apply(annotated, scheme)
    except Exception as e:  # noqa: BLE001 - a layer tfmot cannot quantise
        raise StageError("model", f"quantisation-aware training cannot wrap the model: "
                         f"{type(e).__name__}: {str(e)[:300]}") from e
    result = train_model(qat, data, train_cfg, epochs=int(epochs),
                         learning_rate=train_cfg.learning_rate * lr_factor, label="QAT",
                         from_logits=logits)
    conv = tflite_converter(qat)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    path = _convert(conv, path, "int8 (QAT)")
    log.info("int8 QAT TFLite model: %d bytes, %d epochs, %.1f s", path.stat().st_size,
             epochs, time.perf_counter() - t0)
    if report is not None:
        report.update(train=result, scheme=type(scheme).__name__)
    return path


def tflite_weight_zeros(path) -> dict:
    """Exact zeros of the weight tensors (input 1 of CONV_2D, DEPTHWISE_CONV_2D,
    FULLY_CONNECTED) of a TFLite model, per op and in total, and whether each is quantised per
    channel."""
    from mcusearch.model.evaluate import make_interpreter

    it = make_interpreter(Path(path))
    it.allocate_tensors()
    details = {d["index"]: d for d in it.get_tensor_details()}
    layers = []
    zeros = size = 0
    for op in it._get_ops_details():
        if op["op_name"] not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED",
                                 "TRANSPOSE_CONV"):
            continue
        idx = int(op["inputs"][1])
        w = it.get_tensor(idx)
        d = details[idx]
        z = int(np.count_nonzero(w == 0))
        scales = d.get("quantization_parameters", {}).get("scales", np.zeros(0))
        parts = d["name"].split(";")[0].split("/")
        name = parts[1] if len(parts) > 2 else parts[0]
        name = name[len("quant_"):] if name.startswith("quant_") else name
        layers.append({"op": op["op_name"], "layer": name, "tensor": d["name"],
                       "dtype": np.dtype(w.dtype).name,
                       "zeros": z, "size": int(w.size), "zero_fraction": z / w.size,
                       "per_channel": bool(len(scales) > 1)})
        zeros, size = zeros + z, size + int(w.size)
    return {"layers": layers, "zeros": zeros, "size": size,
            "zero_fraction": zeros / size if size else 0.0}


def to_int8_tflite(model: tf.keras.Model, representative_x: np.ndarray, path) -> Path:
    """Full-integer post-training quantisation: int8 weights, activations, input and output.

    ``representative_x`` (float inputs, typically a few hundred training samples) calibrates the
    activation ranges. Writes the .tflite file to ``path`` (atomically) and returns the path.
    """
    t0 = time.perf_counter()
    conv = tflite_converter(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = _representative(representative_x)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    path = _convert(conv, path, "int8")
    log.info("int8 TFLite model: %d bytes, %d calibration samples, %.1f s", path.stat().st_size,
             len(representative_x), time.perf_counter() - t0)
    return path


def to_float_tflite(model: tf.keras.Model, path) -> Path:
    """A plain float32 TFLite model (no optimisation), for converters that read .tflite."""
    path = Path(path)
    try:
        data = tflite_converter(model).convert()
    except Exception as e:  # noqa: BLE001
        raise StageError("model", f"TFLite conversion failed: {type(e).__name__}: "
                         f"{str(e)[:500]}") from e
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, data)
    return path
