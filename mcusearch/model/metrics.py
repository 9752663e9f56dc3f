"""Quality metrics as plug-ins: each one a name, a direction, a unit, the tasks it applies to and
a ``compute`` on the held-out test set's targets and the model's outputs.

Tasks (``dataset.task``):

* ``classification``: integer labels; outputs are class scores (probabilities or logits), one
  column per class (a single column: a sigmoid's positive-class probability);
* ``regression``: float targets of the output's shape; outputs are the predictions;
* ``autoencoder``: regression whose targets are the inputs; with anomaly labels of the test
  samples (0 normal, 1 anomalous) the anomaly-detection AUC applies too.

Adding a metric is one subclass of :class:`Metric` and one :func:`register` call. Everything is
numpy (no TensorFlow, no scikit-learn): the spec imports this module to know the metric names.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal

import numpy as np

Direction = Literal["maximize", "minimize"]
TASKS = ("classification", "regression", "autoencoder")
RECONSTRUCTION = frozenset({"regression", "autoencoder"})


# ---------------------------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------------------------

def predicted_classes(scores: np.ndarray) -> np.ndarray:
    """Top-1 class of each row of ``scores``; one column = a positive-class probability (> 0.5)."""
    s = np.asarray(scores)
    if s.ndim == 1 or s.shape[-1] == 1:
        return (s.reshape(len(s)) > 0.5).astype(np.int64)
    return np.argmax(s.reshape(len(s), -1), axis=-1).astype(np.int64)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int | None = None
                     ) -> np.ndarray:
    """Counts: rows the true class, columns the predicted class."""
    t = np.asarray(y_true).astype(np.int64).reshape(-1)
    p = np.asarray(y_pred).astype(np.int64).reshape(-1)
    n = int(n_classes) if n_classes else int(max(t.max(initial=-1), p.max(initial=-1)) + 1)
    conf = np.zeros((n, n), np.int64)
    np.add.at(conf, (t, p), 1)
    return conf


def per_class_recall(conf: np.ndarray) -> np.ndarray:
    """Recall of every class (its accuracy); NaN for a class absent from the true labels."""
    support = conf.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(conf) / np.maximum(support, 1), np.nan)


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` against binary ``labels`` (1 = positive).

    The Mann-Whitney form: the probability that a random positive scores above a random negative,
    ties counted one half (average ranks). NaN when only one class is present.
    """
    y = np.asarray(labels).reshape(-1).astype(bool)
    s = np.asarray(scores, np.float64).reshape(-1)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), np.float64)
    sorted_s = s[order]
    # average rank (1-based) of every run of equal scores
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    ends = np.r_[starts[1:], len(s)]
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def per_sample_squared_error(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Mean squared error of each sample over its values (MLPerf Tiny's anomaly score)."""
    t = np.asarray(y_true, np.float64).reshape(len(y_true), -1)
    p = np.asarray(y_pred, np.float64).reshape(len(y_pred), -1)
    if t.shape != p.shape:
        raise ValueError(f"targets have {t.shape[1]} values per sample, outputs {p.shape[1]}")
    return np.mean((t - p) ** 2, axis=1)


# ---------------------------------------------------------------------------------------------
# the interface and the registry
# ---------------------------------------------------------------------------------------------

class Metric(ABC):
    """One quality metric. ``compute`` takes the test set's labels or targets and the model's
    outputs (scores for classification, predictions for regression) and returns one float."""

    name: str                     # the key in search.yaml (objectives, constraints.metrics)
    label: str                    # how the report names it
    unit: str                     # the unit of its value
    direction: Direction          # which way is better
    tasks: frozenset[str]         # the tasks it applies to
    description: str              # how it is computed (the figure's method)
    needs_anomaly_labels: bool = False

    def applies(self, task: str, has_anomaly_labels: bool = False) -> bool:
        """True when this metric can be computed for ``task`` (and the labels at hand)."""
        return task in self.tasks and (has_anomaly_labels or not self.needs_anomaly_labels)

    @abstractmethod
    def compute(self, y_true: np.ndarray, outputs: np.ndarray, *,
                n_classes: int | None = None, anomaly: np.ndarray | None = None) -> float:
        """The metric's value on ``(y_true, outputs)``."""


class Accuracy(Metric):
    name, label, unit, direction = "accuracy", "accuracy", "fraction", "maximize"
    tasks = frozenset({"classification"})
    description = "top-1 accuracy: fraction of test samples whose highest score is the true class"

    def compute(self, y_true, outputs, *, n_classes=None, anomaly=None) -> float:
        t = np.asarray(y_true).reshape(-1)
        return float(np.mean(predicted_classes(outputs) == t)) if len(t) else float("nan")


class BalancedAccuracy(Metric):
    name, label, unit, direction = "balanced_accuracy", "balanced accuracy", "fraction", "maximize"
    tasks = frozenset({"classification"})
    description = "balanced accuracy: mean of the per-class recalls over the classes in the test set"

    def compute(self, y_true, outputs, *, n_classes=None, anomaly=None) -> float:
        recall = per_class_recall(confusion_matrix(y_true, predicted_classes(outputs), n_classes))
        present = ~np.isnan(recall)
        return float(np.mean(recall[present])) if present.any() else float("nan")


class F1Macro(Metric):
    name, label, unit, direction = "f1_macro", "F1 (macro)", "fraction", "maximize"
    tasks = frozenset({"classification"})
    description = ("macro F1: unweighted mean over the classes present in the labels or the "
                   "predictions of 2 TP / (2 TP + FP + FN)")

    def compute(self, y_true, outputs, *, n_classes=None, anomaly=None) -> float:
        conf = confusion_matrix(y_true, predicted_classes(outputs), n_classes)
        tp = np.diag(conf).astype(np.float64)
        fp, fn = conf.sum(axis=0) - tp, conf.sum(axis=1) - tp
        seen = (tp + fp + fn) > 0
        return float(np.mean(2 * tp[seen] / (2 * tp + fp + fn)[seen])) if seen.any() else float("nan")


class BinaryAUC(Metric):
    name, label, unit, direction = "auc", "ROC AUC", "fraction", "maximize"
    tasks = frozenset({"classification"})
    description = ("ROC AUC of a two-class model: the positive class's (class 1) score ranked "
                   "against the labels, ties counted one half")

    def compute(self, y_true, outputs, *, n_classes=None, anomaly=None) -> float:
        s = np.asarray(outputs, np.float64).reshape(len(outputs), -1)
        if s.shape[1] > 2:
            raise ValueError(f"auc needs a two-class model; this one has {s.shape[1]} outputs")
        return roc_auc(np.asarray(y_true).reshape(-1) == 1, s[:, -1])


class MSE(Metric):
    name, label, unit, direction = "mse", "MSE", "target units²", "minimize"
    tasks = RECONSTRUCTION
    description = "mean squared error over every output value of every test sample"

    def compute(self, y_true, outputs, *, n_classes=None, anomaly=None) -> float:
        return float(np.mean(per_sample_squared_error(y_true, outputs)))


class MAE(Metric):
    name, label, unit, direction = "mae", "MAE", "target units", "minimize"
    tasks = RECONSTRUCTION
    description = "mean absolute error over every output value of every test sample"

    def compute(self, y_true, outputs, *, n_classes=None, anomaly=None) -> float:
        t = np.asarray(y_true, np.float64).reshape(len(y_true), -1)
        return float(np.mean(np.abs(t - np.asarray(outputs, np.float64).reshape(t.shape))))


class AnomalyAUC(Metric):
    name, label, unit, direction = "anomaly_auc", "anomaly AUC", "fraction", "maximize"
    tasks = RECONSTRUCTION
    needs_anomaly_labels = True
    description = ("anomaly-detection ROC AUC (MLPerf Tiny): each test sample's score is its mean "
                   "squared reconstruction error, ranked against its normal (0) / anomalous (1) label")

    def compute(self, y_true, outputs, *, n_classes=None, anomaly=None) -> float:
        if anomaly is None:
            raise ValueError("anomaly_auc needs the test set's anomaly labels")
        return roc_auc(anomaly, per_sample_squared_error(y_true, outputs))


REGISTRY: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    """Add ``metric`` to the registry (its name must be new)."""
    if metric.name in REGISTRY:
        raise ValueError(f"metric {metric.name!r} is registered already")
    if metric.direction not in ("maximize", "minimize") or not metric.tasks <= set(TASKS):
        raise ValueError(f"metric {metric.name!r}: bad direction or tasks")
    REGISTRY[metric.name] = metric
    return metric


for _m in (Accuracy(), BalancedAccuracy(), F1Macro(), BinaryAUC(), MSE(), MAE(), AnomalyAUC()):
    register(_m)


def get_metric(name: str) -> Metric:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown quality metric {name!r}; one of {', '.join(REGISTRY)}") from None


def metrics_for(task: str, n_outputs: int | None = None, has_anomaly_labels: bool = False
                ) -> list[Metric]:
    """The registered metrics that apply to ``task`` (``auc`` only with at most two outputs)."""
    out = [m for m in REGISTRY.values() if m.applies(task, has_anomaly_labels)]
    if n_outputs is not None and n_outputs > 2:
        out = [m for m in out if m.name != "auc"]
    return out


def compute_all(task: str, y_true: np.ndarray, outputs: np.ndarray, *,
                n_classes: int | None = None, anomaly: np.ndarray | None = None
                ) -> dict[str, float]:
    """Every metric that applies to ``task``, by name."""
    n_out = int(np.prod(np.asarray(outputs).shape[1:])) if np.asarray(outputs).ndim > 1 else 1
    return {m.name: m.compute(y_true, outputs, n_classes=n_classes, anomaly=anomaly)
            for m in metrics_for(task, n_out if task == "classification" else None,
                                 anomaly is not None)}
