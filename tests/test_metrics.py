"""Quality metrics: each plug-in against values computed by hand, and their path through the
spec (objectives, constraints), the score and the report."""
from __future__ import annotations

import math

import numpy as np
import pytest

from mcusearch.errors import SpecError
from mcusearch.figures import Figure, Provenance
from mcusearch.model.metrics import (REGISTRY, compute_all, get_metric, metrics_for,
                                     per_sample_squared_error, roc_auc)
from mcusearch.score import check_metrics_apply, resolve_limits, score
from mcusearch.spec import parse_spec

# 8 samples, 3 classes. Per class (TP, FP, FN): 0 (2, 1, 1), 1 (2, 1, 0), 2 (2, 0, 1).
Y3 = np.array([0, 0, 1, 1, 2, 2, 2, 0])
P3 = np.array([0, 1, 1, 1, 2, 0, 2, 0])
S3 = np.eye(3)[P3] * 0.8 + 0.1          # scores whose top class is P3


def _m(name, y, out, **kw):
    return get_metric(name).compute(np.asarray(y), np.asarray(out), **kw)


def test_classification_metrics_by_hand():
    assert _m("accuracy", Y3, S3) == pytest.approx(6 / 8)
    # recalls 2/3, 2/2, 2/3
    assert _m("balanced_accuracy", Y3, S3, n_classes=3) == pytest.approx((2 / 3 + 1 + 2 / 3) / 3)
    # F1 = 2TP / (2TP + FP + FN): 4/6, 4/5, 4/5
    assert _m("f1_macro", Y3, S3, n_classes=3) == pytest.approx((4 / 6 + 4 / 5 + 4 / 5) / 3)
    # a class never predicted and never true does not count; one predicted but absent does (F1 0)
    assert _m("f1_macro", [0, 0, 1], np.eye(3)[[0, 0, 2]], n_classes=3) == pytest.approx((1 + 0 + 0) / 3)


def test_binary_auc_by_hand():
    # sklearn's documented example: 3 of 4 positive-negative pairs ordered right
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    # a tie between a positive and a negative counts one half: (0.5 + 1 + 1 + 1) / 4
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9]) == pytest.approx(0.875)
    assert math.isnan(roc_auc([1, 1], [0.2, 0.3]))
    two_col = np.array([[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]])
    assert _m("auc", [0, 0, 1, 1], two_col) == pytest.approx(0.75)       # class 1's score
    assert _m("auc", [0, 0, 1, 1], two_col[:, 1:]) == pytest.approx(0.75)  # a sigmoid column
    with pytest.raises(ValueError, match="two-class"):
        _m("auc", Y3, S3)


def test_regression_and_anomaly_metrics_by_hand():
    y = np.array([[1.0, 2.0], [3.0, 4.0]])
    p = np.array([[1.0, 1.0], [1.0, 4.0]])          # errors 0, 1, 2, 0
    assert _m("mse", y, p) == pytest.approx((0 + 1 + 4 + 0) / 4)
    assert _m("mae", y, p) == pytest.approx((0 + 1 + 2 + 0) / 4)
    x = np.zeros((3, 2))
    recon = np.array([[0.0, 0.1], [1.0, 1.0], [0.5, 0.0]])
    assert per_sample_squared_error(x, recon) == pytest.approx([0.005, 1.0, 0.125])
    # anomaly score = per-sample MSE: anomalous {0.005, 1.0} vs normal {0.125}: 1 of 2 pairs
    assert _m("anomaly_auc", x, recon, anomaly=np.array([1, 1, 0])) == pytest.approx(0.5)
    assert _m("anomaly_auc", x, recon, anomaly=np.array([0, 1, 1])) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="anomaly labels"):
        _m("anomaly_auc", x, recon)


def test_registry_directions_and_tasks():
    assert {n: m.direction for n, m in REGISTRY.items()} == {
        "accuracy": "maximize", "balanced_accuracy": "maximize", "f1_macro": "maximize",
        "auc": "maximize", "mse": "minimize", "mae": "minimize", "anomaly_auc": "maximize"}
    assert [m.name for m in metrics_for("classification", 2)] == [
        "accuracy", "balanced_accuracy", "f1_macro", "auc"]
    assert "auc" not in [m.name for m in metrics_for("classification", 10)]
    assert [m.name for m in metrics_for("autoencoder")] == ["mse", "mae"]
    assert [m.name for m in metrics_for("autoencoder", has_anomaly_labels=True)] == [
        "mse", "mae", "anomaly_auc"]
    assert set(compute_all("classification", Y3, S3, n_classes=3)) == {
        "accuracy", "balanced_accuracy", "f1_macro"}


def test_task_metrics_of_outputs():
    from mcusearch.model.evaluate import task_metrics

    m = task_metrics(S3, Y3, 3)
    assert m["task"] == "classification" and m["accuracy"] == pytest.approx(0.75)
    assert m["per_class_accuracy"] == pytest.approx([2 / 3, 1.0, 2 / 3])
    x = np.zeros((3, 2))
    recon = np.array([[0.0, 0.1], [1.0, 1.0], [0.5, 0.0]])
    r = task_metrics(recon, x, 0, task="autoencoder", anomaly=np.array([0, 1, 1]))
    assert set(r) == {"task", "n", "mse", "mae", "anomaly_auc", "accuracy", "balanced_accuracy",
                      "per_class_accuracy"} and r["anomaly_auc"] == 1.0
    assert math.isnan(r["accuracy"]) and r["per_class_accuracy"] == []  # the stage's bookkeeping


# ---- spec, score, report ---------------------------------------------------------------------

def _spec(constraints=None, objectives=None):
    data = {"constraints": {"deadline_ms": None, **(constraints or {})},
            "knobs": {"quantization": ["float32"], "converter": ["mcusearch-ref"]}}
    if objectives is not None:
        data["objectives"] = objectives
    return parse_spec(data)


def _figs(**values):
    return {k: Figure(v, "x", Provenance.HOST, "test") for k, v in values.items()}


def test_constraints_on_any_metric_and_objectives_take_its_direction():
    spec = _spec({"accuracy_min": 0.5, "metrics": {"f1_macro": {"min": 0.8}, "mse": {"max": 0.02}}},
                 [{"metric": "mse"}, {"metric": "flash_kb", "direction": "minimize"}])
    assert [(o.metric, o.direction) for o in spec.objectives] == [("mse", "minimize"),
                                                                 ("flash_kb", "minimize")]
    assert resolve_limits(spec, None) == {"accuracy_min": 0.5, "f1_macro_min": 0.8, "mse_max": 0.02}
    sc = score(spec, _figs(accuracy=0.6, f1_macro=0.6, mse=0.03, flash_kb=10.0))
    assert sc.constraints["f1_macro_min"] == pytest.approx((0.8 - 0.6) / 0.8)
    assert sc.constraints["mse_max"] == pytest.approx((0.03 - 0.02) / 0.02)
    assert sc.constraints["accuracy_min"] < 0 and sc.violated() == ["f1_macro_min", "mse_max"]
    assert sc.objectives == [0.03, 10.0]
    assert score(spec, _figs(accuracy=0.6, f1_macro=float("nan"), mse=0.01,
                             flash_kb=1.0)).constraints["f1_macro_min"] == math.inf


@pytest.mark.parametrize("constraints, objectives, where, words", [
    ({"metrics": {"mse": {"min": 0.1}}}, None, "constraints.metrics", "ceiling: {max: value}"),
    ({"metrics": {"f1_macro": {"max": 0.9}}}, None, "constraints.metrics", "floor: {min: value}"),
    ({"metrics": {"f2": {"min": 0.9}}}, None, "constraints.metrics", "unknown quality metric"),
    ({"accuracy_min": 0.5, "metrics": {"accuracy": {"min": 0.6}}}, None, "constraints",
     "give the bound once"),
    (None, [{"metric": "mse", "direction": "maximize"}], "objectives[0]", "the worst model"),
    (None, [{"metric": "flash_kb"}], "objectives[0].direction", "required"),
])
def test_bad_metric_bounds_name_the_key(constraints, objectives, where, words):
    with pytest.raises(SpecError) as e:
        _spec(constraints, objectives)
    assert e.value.where == where and words in e.value.message, str(e.value)


def test_metrics_must_fit_the_task():
    hw = [{"metric": "flash_kb", "direction": "minimize"}]
    spec = _spec({"metrics": {"mse": {"max": 0.1}}}, hw)
    check_metrics_apply(spec, "autoencoder", 64, False)
    with pytest.raises(SpecError) as e:
        check_metrics_apply(spec, "classification", 4, False)
    assert e.value.where == "constraints.metrics.mse"
    with pytest.raises(SpecError) as e:  # the default objectives include accuracy
        check_metrics_apply(_spec(), "autoencoder", 64, False)
    assert e.value.where == "objectives[3]" and "accuracy" in e.value.message
    spec = _spec(objectives=[{"metric": "anomaly_auc"}])
    with pytest.raises(SpecError, match="anomaly labels"):
        check_metrics_apply(spec, "autoencoder", 64, False)
    with pytest.raises(SpecError, match="objectives.0.: auc .* two classes"):
        check_metrics_apply(_spec(objectives=[{"metric": "auc"}]), "classification", 10, False)


def test_report_names_the_metric(tmp_path):
    from mcusearch.report import columns, limits_text, pareto_table
    from mcusearch.study import StudySummary, TrialRecord

    rec = TrialRecord(number=0, state="COMPLETE", status="ok", config={},
                      figures=_figs(mse=0.0123, mae=0.1, flash_kb=3.0), constraints={"mse_max": -0.5},
                      feasible=True, values=[0.0123, 3.0])
    summary = StudySummary(tmp_path, "sqlite://", "s", [("mse", "minimize"), ("flash_kb", "minimize")],
                           {"mse_max": 0.02, "flash_kb": 64.0}, [rec])
    assert [c[1] for c in columns(summary)][-1:] == ["MSE"]
    assert limits_text(summary.limits) == "MSE <= 0.02, flash_kb 64"
    table = pareto_table(summary)
    assert "MSE" in table.splitlines()[0] and "0.0123 H" in table
