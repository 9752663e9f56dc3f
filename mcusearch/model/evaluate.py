"""Host-side evaluation of the Keras (float) and TFLite (int8, int16x8) models on the held-out
test set: every quality metric of :mod:`mcusearch.model.metrics` that applies to the task (and
the per-class accuracy of a classifier), params, MACs."""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import mcusearch  # noqa: F401  (selects tf-keras before TensorFlow is imported)
import numpy as np
import tensorflow as tf

from mcusearch.model.metrics import (REGISTRY, compute_all, confusion_matrix, per_class_recall,
                                     predicted_classes)

TFLITE_BATCH = 256  # interpreter batch: bounds the activation memory on large test sets


def keras_predict(model: tf.keras.Model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    return model.predict(np.asarray(x, np.float32), batch_size=batch_size, verbose=0)


def keras_accuracy(model: tf.keras.Model, x: np.ndarray, y: np.ndarray,
                   batch_size: int = 256) -> float:
    """Top-1 accuracy of a Keras model on (x, y) (argmax of the outputs)."""
    pred = keras_predict(model, x, batch_size)
    return float(np.mean(np.argmax(pred, axis=-1) == np.asarray(y)))


def make_interpreter(path: Path | str | bytes):
    """A TFLite interpreter for a file path or model bytes, on TFLite's built-in kernels.

    Not the default (XNNPACK) delegate: XNNPACK requantises in float and rounds differently, so
    the accuracy reported for an int8 model would not be that of the integer kernels the firmware
    runs bit-exactly (see mcusearch.convert.cgen.TFLITE_RESOLVER).
    """
    from mcusearch.convert.cgen import TFLITE_RESOLVER

    kw = {"model_content": path} if isinstance(path, bytes) else {"model_path": str(path)}
    resolver = getattr(tf.lite.experimental.OpResolverType, TFLITE_RESOLVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tf.lite.Interpreter(**kw, experimental_op_resolver_type=resolver)


def tflite_io(path: Path | str | bytes) -> dict:
    """Input/output dtype, shape and quantisation (scale, zero point) of a TFLite model."""
    it = make_interpreter(path)
    i, o = it.get_input_details()[0], it.get_output_details()[0]

    def q(d):
        scale, zp = d["quantization"]
        return {"dtype": np.dtype(d["dtype"]).name, "shape": [int(s) for s in d["shape"]],
                "scale": float(scale), "zero_point": int(zp)}
    return {"input": q(i), "output": q(o)}


def quantize_input(x: np.ndarray, scale: float, zero_point: int, dtype=np.int8) -> np.ndarray:
    """Float inputs -> int8 exactly as the model's QUANTIZE op (one formula, in convert.graph);
    int16 (symmetric, zero point 0) with the same formula: multiply by the float32 reciprocal of
    the scale, round half to even, saturate."""
    dtype = np.dtype(dtype)
    if dtype == np.int8:
        from mcusearch.convert.quant import quantize_input as _quantize
        return _quantize(x, scale, zero_point)
    if dtype == np.int16:
        x = np.asarray(x, dtype=np.float32)
        q = np.rint(x * (np.float32(1.0) / np.float32(scale))).astype(np.int64) + int(zero_point)
        return np.clip(q, -32768, 32767).astype(np.int16)
    raise ValueError(f"only int8 and int16 inputs are supported, not {dtype.name}")


def tflite_predict(path: Path | str | bytes, x: np.ndarray, *, dequantize: bool = True
                   ) -> np.ndarray:
    """Run a TFLite model on float inputs ``x`` (NHWC). Integer inputs are quantised with the
    model's input scale / zero point; integer outputs are dequantised unless told otherwise."""
    it = make_interpreter(path)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    in_dtype, out_dtype = np.dtype(inp["dtype"]), np.dtype(out["dtype"])
    x = np.asarray(x, np.float32)
    if np.issubdtype(in_dtype, np.integer):
        s, z = inp["quantization"]
        xq = quantize_input(x, s, z, in_dtype)
    else:
        xq = x.astype(in_dtype)
    results = []
    cur = None
    for start in range(0, len(xq), TFLITE_BATCH):
        chunk = xq[start:start + TFLITE_BATCH]
        if cur != len(chunk):
            it.resize_tensor_input(inp["index"], [len(chunk), *xq.shape[1:]])
            it.allocate_tensors()
            cur = len(chunk)
        it.set_tensor(inp["index"], chunk)
        it.invoke()
        results.append(it.get_tensor(out["index"]).copy())
    y = np.concatenate(results) if results else np.zeros((0,), out_dtype)
    if dequantize and np.issubdtype(out_dtype, np.integer):
        s, z = out["quantization"]
        y = (y.astype(np.float32) - z) * s
    return y


def tflite_accuracy(path: Path | str | bytes, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy through the TFLite interpreter (the study's loop for the int8 model)."""
    pred = tflite_predict(path, x, dequantize=False)
    return float(np.mean(np.argmax(pred, axis=-1) == np.asarray(y)))


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict:
    """Accuracy, balanced accuracy (the mean of the per-class recalls over the classes present
    in ``y_true``), per-class accuracy (recall; NaN for a class absent from the test set) and
    the confusion matrix (rows: true class, columns: predicted), from predicted classes."""
    y_true = np.asarray(y_true).astype(np.int64).reshape(-1)
    y_pred = np.asarray(y_pred).astype(np.int64).reshape(-1)
    conf = confusion_matrix(y_true, y_pred, n_classes)
    onehot = np.eye(max(n_classes, 2), dtype=np.float32)[y_pred]
    return {**{m: REGISTRY[m].compute(y_true, onehot, n_classes=n_classes)
               for m in ("accuracy", "balanced_accuracy")},
            "per_class_accuracy": [float(r) for r in per_class_recall(conf)],
            "support": [int(s) for s in conf.sum(axis=1)], "confusion": conf.tolist(),
            "n": int(len(y_true))}


def task_metrics(outputs: np.ndarray, y_true: np.ndarray, n_classes: int, *,
                 task: str = "classification", anomaly: np.ndarray | None = None) -> dict:
    """Every registered quality metric that applies to ``task`` (see
    :mod:`mcusearch.model.metrics`), computed from the model's ``outputs`` on the test set, plus
    the task (``"task"``) and, for classification, the per-class figures of
    :func:`classification_metrics`. Classification outputs are the model's scores (int8 ones
    dequantised or not: only their order counts), regression outputs its predictions.

    The model stage's bookkeeping reads ``accuracy``, ``balanced_accuracy`` and
    ``per_class_accuracy`` of every model: for a regression they are NaN and empty (no metric
    figure is made of them: :func:`mcusearch.trial.quality_figures` keeps the task's metrics)."""
    outputs = np.asarray(outputs)
    values: dict = {"task": task, "n": int(len(outputs))}
    if task == "classification":
        cm = classification_metrics(y_true, predicted_classes(outputs), n_classes)
        values.update({k: cm[k] for k in ("per_class_accuracy", "support", "confusion")})
    else:
        values.update(accuracy=math.nan, balanced_accuracy=math.nan, per_class_accuracy=[])
        outputs = outputs.reshape(np.asarray(y_true).shape)
    values.update(compute_all(task, y_true, outputs, n_classes=n_classes, anomaly=anomaly))
    return values


def keras_metrics(model: tf.keras.Model, x: np.ndarray, y: np.ndarray, n_classes: int, *,
                  task: str = "classification", anomaly: np.ndarray | None = None) -> dict:
    """:func:`task_metrics` of a Keras model (float32) on ``(x, y)``."""
    return task_metrics(keras_predict(model, x), y, n_classes, task=task, anomaly=anomaly)


def tflite_metrics(path: Path | str | bytes, x: np.ndarray, y: np.ndarray, n_classes: int, *,
                   task: str = "classification", anomaly: np.ndarray | None = None) -> dict:
    """:func:`task_metrics` through the TFLite interpreter (built-in kernels). Integer outputs
    are dequantised (errors in target units; an affine map with a positive scale keeps the
    order of class scores, so the top class is that of the stored integers)."""
    pred = tflite_predict(path, x)
    return task_metrics(pred, y, n_classes, task=task, anomaly=anomaly)


def task_args(ds) -> dict:
    """The keyword arguments of :func:`keras_metrics` / :func:`tflite_metrics` for a
    :class:`~mcusearch.model.Dataset`'s test split: its task and anomaly labels."""
    return {"task": ds.task, "anomaly": ds.anomaly_test}


def count_params(model: tf.keras.Model) -> int:
    return int(model.count_params())


def _shape(layer, attr: str):
    s = getattr(layer, attr)
    if isinstance(s, list):  # a layer with several nodes: take the first
        s = s[0]
    return tuple(s)


_GATES = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}     # gate projections of a recurrent layer


def layer_macs(layer) -> int:
    """Multiply-accumulates of one inference through ``layer`` (0 for layers without any).

    conv: out_h * out_w * out_c * k_h * k_w * in_c (/ groups); depthwise: out positions x
    k_h * k_w x out_c; separable: depthwise + pointwise; dense: in * out (x leading dims);
    transposed: in positions x in_c x k_h * k_w x out_c (every product, those the output crops
    too); LSTM/GRU/SimpleRNN: steps x gates x units x (features + units), both directions of a
    Bidirectional; MultiHeadAttention: its projections and attention products
    (:func:`_attention_macs`)."""
    kind = type(layer).__name__
    if kind in ("Conv1D", "Conv2D", "Conv3D"):
        out = _shape(layer, "output_shape")
        in_c = _shape(layer, "input_shape")[-1]
        groups = getattr(layer, "groups", 1) or 1
        return math.prod(out[1:]) * math.prod(layer.kernel_size) * (in_c // groups)
    if kind in ("DepthwiseConv1D", "DepthwiseConv2D"):
        out = _shape(layer, "output_shape")
        return math.prod(out[1:]) * math.prod(layer.kernel_size)
    if kind in ("SeparableConv1D", "SeparableConv2D"):
        out = _shape(layer, "output_shape")
        in_c = _shape(layer, "input_shape")[-1]
        positions = math.prod(out[1:-1])
        dw = positions * in_c * layer.depth_multiplier * math.prod(layer.kernel_size)
        return dw + positions * in_c * layer.depth_multiplier * out[-1]
    if kind == "Dense":
        ins = _shape(layer, "input_shape")
        return math.prod(ins[1:]) * int(layer.units)
    if kind in ("Conv1DTranspose", "Conv2DTranspose"):
        ins = _shape(layer, "input_shape")
        return math.prod(ins[1:]) * math.prod(layer.kernel_size) * int(layer.filters)
    if kind in _GATES or kind == "Bidirectional":
        steps, feats = _shape(layer, "input_shape")[1:3]
        cells = (layer.forward_layer, layer.backward_layer) if kind == "Bidirectional" else (layer,)
        # per step and gate: units x (features + units) (input and recurrent kernels)
        return sum(steps * _GATES[type(c).__name__] * int(c.units) * (feats + int(c.units))
                   for c in cells)
    if kind == "MultiHeadAttention":
        return _attention_macs(layer)
    if hasattr(layer, "layers"):  # a nested model
        return sum(layer_macs(l) for l in layer.layers)
    return 0


def _attention_macs(layer) -> int:
    """tf-keras MultiHeadAttention: the query, key, value and output projections (positions x
    kernel size) and, per head, the scores and their weighted sum of the values (query positions
    x key positions x (key_dim + value_dim)); 0 before the layer is built."""
    shapes = [getattr(layer, f"_{n}_shape", None) for n in ("query", "key", "value")]
    dense = [getattr(layer, f"_{n}_dense", None) for n in ("query", "key", "value", "output")]
    if shapes[0] is None or shapes[2] is None or \
            any(getattr(d, "kernel", None) is None for d in dense):
        return 0
    shapes[1] = shapes[1] if shapes[1] is not None else shapes[2]
    t, s, s_v = (math.prod(int(d) for d in sh[1:-1]) for sh in shapes)
    size = [math.prod(int(d) for d in d_.kernel.shape) for d_ in dense]
    heads, dk = int(layer._num_heads), int(layer._key_dim)
    dv = int(layer._value_dim or dk)
    return t * size[0] + s * size[1] + s_v * size[2] + heads * t * s * (dk + dv) + t * size[3]


def count_macs(model: tf.keras.Model) -> int:
    """Multiply-accumulates of one inference (convolutions and dense layers)."""
    return int(sum(layer_macs(l) for l in model.layers))
