"""Deterministic training: fixed seeds, deterministic ops, Adam, sparse categorical
cross-entropy."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import mcusearch  # noqa: F401  (selects tf-keras before TensorFlow is imported)
import tensorflow as tf

from mcusearch.model import Dataset, TrainConfig
from mcusearch.model.evaluate import keras_accuracy

log = logging.getLogger("mcusearch.model")


@dataclass
class TrainResult:
    test_accuracy: float                 # Keras evaluate() on the data set's test split
    history: dict[str, list[float]] = field(default_factory=dict)  # per-epoch loss / accuracy
    epochs: int = 0
    learning_rate: float = 0.0
    seconds: float = 0.0


def set_seeds(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and make TensorFlow's ops deterministic.

    Op determinism is process-wide and stays on (TensorFlow cannot switch it off again); on the
    CPU it costs little and makes a (config, seed) always give the same weights.
    """
    tf.keras.utils.set_random_seed(int(seed))
    try:
        tf.config.experimental.enable_op_determinism()
    except Exception:  # noqa: BLE001 - older TF without the switch: seeds alone still help
        pass


def outputs_logits(model: tf.keras.Model) -> bool:
    """True when the model's last layer does not apply a softmax (it outputs logits)."""
    last = model.layers[-1]
    while isinstance(getattr(last, "layer", None), tf.keras.layers.Layer):  # a tfmot wrapper
        last = last.layer
    act = getattr(last, "activation", None)
    if act is not None and getattr(act, "__name__", "") == "softmax":
        return False
    return type(last).__name__ != "Softmax"


def compile_model(model: tf.keras.Model, learning_rate: float,
                  from_logits: bool | None = None, task: str = "classification") -> None:
    """Adam and sparse categorical cross-entropy (mean squared error for a regression or an
    autoencoder ``task``); ``from_logits`` defaults to what the last layer says (give it for a
    model whose last layer a wrapper hides, e.g. under QAT)."""
    if task != "classification":
        model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=learning_rate),
                      loss=tf.keras.losses.MeanSquaredError(), metrics=["mae"])
        return
    logits = outputs_logits(model) if from_logits is None else bool(from_logits)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate=learning_rate),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=logits),
        metrics=["accuracy"],
    )


class _EpochLog(tf.keras.callbacks.Callback):
    def __init__(self, label: str, epochs: int):
        super().__init__()
        self.label, self.epochs, self.t0 = label, epochs, time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        log.info("%s: epoch %d/%d loss %.4f accuracy %.4f (%.1f s)", self.label, epoch + 1,
                 self.epochs, logs.get("loss", float("nan")), logs.get("accuracy", float("nan")),
                 time.perf_counter() - self.t0)


def train_model(model: tf.keras.Model, data: Dataset, cfg: TrainConfig, *,
                epochs: int | None = None, learning_rate: float | None = None,
                label: str = "train", from_logits: bool | None = None,
                callbacks: list | None = None) -> TrainResult:
    """Train ``model`` in place on ``data``'s training split and evaluate it on the test split.

    ``epochs`` / ``learning_rate`` override ``cfg`` (fine-tuning after pruning uses fewer epochs
    and a lower rate). Batch size and seed come from ``cfg``; the seeds are set again here, so
    a fine-tuning step gives the same weights whatever ran before it in the process.
    """
    epochs = cfg.epochs if epochs is None else int(epochs)
    lr = cfg.learning_rate if learning_rate is None else float(learning_rate)
    t0 = time.perf_counter()
    set_seeds(cfg.seed)
    compile_model(model, lr, from_logits, data.task)
    history: dict[str, list[float]] = {}
    t_fit = time.perf_counter()
    if epochs > 0:
        h = model.fit(data.x_train, data.y_train, batch_size=cfg.batch_size, epochs=epochs,
                      shuffle=True, verbose=0,
                      callbacks=[_EpochLog(label, epochs), *(callbacks or [])])
        history = {k: [float(v) for v in vals] for k, vals in h.history.items()}
    t_eval = time.perf_counter()
    acc = (keras_accuracy(model, data.x_test, data.y_test) if data.task == "classification"
           else float("nan"))  # a regression's figures: evaluate.keras_metrics
    seconds = time.perf_counter() - t0
    log.info("%s: %d epochs (lr %g) in %.1f s (fit %.1f s, test %.1f s), test accuracy %.4f",
             label, epochs, lr, seconds, t_eval - t_fit, time.perf_counter() - t_eval, acc)
    return TrainResult(test_accuracy=acc, history=history, epochs=epochs, learning_rate=lr,
                       seconds=seconds)

