from __future__ import annotations

import math
import tomllib

import numpy as np
import pytest
import sklearn.metrics as skm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from duofit.common.loader import load_spec
from duofit.common.metrics import REGISTRY, EpochMetrics, compute_metrics, fast_metrics, probabilities
from duofit.common.spec import CLASSIFICATION_METRICS, METRICS, REGRESSION_METRICS, Spec
from duofit.tuning.search import objective_column
from tests.conftest import EXAMPLES


def test_every_vocabulary_metric_has_a_reference_and_a_fast_formula() -> None:
    assert list(REGISTRY) == list(METRICS)  # the vocabulary's names, in its order
    for name, metric in REGISTRY.items():
        assert metric.name == name
        assert metric.reference.__module__ == "duofit.common.metrics.reference", name
        assert metric.fast.__module__ == "duofit.common.metrics.fast", name
        assert metric.reference.__name__ == metric.fast.__name__ == name
        info = METRICS[name]
        assert (metric.task, metric.higher_is_better) == (info.task, info.higher_is_better)
        classes = ("pos_label",) * (info.task == "classification")  # the positive class: binary tasks
        assert metric.options == ("threshold",) * info.thresholded + ("average",) * info.averaged + classes
        assert (metric.reads == "predictions") == (info.task == "regression"), name
        assert (metric.reads == "labels") == info.thresholded, name  # labels at a threshold
    assert REGISTRY["roc_auc"].reads == "probabilities"


def _spec_monitoring(name: str) -> Spec:
    """The seed (or regression) example with ``name`` as its only metric, monitored by early stopping."""
    example = "regression.toml" if METRICS[name].task == "regression" else "seed.toml"
    doc = tomllib.loads((EXAMPLES / example).read_text(encoding="utf-8"))
    doc["metrics"] = [name]
    doc["train"].update(history_metrics=True, early_stopping={"monitor": f"val_{name}", "patience": 2})
    return load_spec(doc)


@pytest.mark.parametrize("name", list(METRICS))
def test_higher_is_better_drives_early_stopping_mode_and_tuning_direction(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Flipping a metric's ``higher_is_better`` in the vocabulary flips both decisions."""
    spec = _spec_monitoring(name)
    assert spec.train.early_stopping is not None and spec.train.early_stopping.mode == "auto"
    original = METRICS[name].higher_is_better
    assert original == (name not in ("mse", "rmse", "mae"))  # errors are minimised, scores maximised
    for better in (original, not original):
        monkeypatch.setitem(METRICS, name, METRICS[name]._replace(higher_is_better=better))
        assert REGISTRY[name].higher_is_better == better
        assert spec.monitor_mode() == ("max" if better else "min"), name
        assert objective_column(spec, f"val_{name}") == (f"val_{name}", "maximize" if better else "minimize")
        assert objective_column(spec, "val_loss")[1] == "minimize"  # losses are always minimised


def test_binary_metrics_match_sklearn_on_probabilities() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(200, 1))
    y = (logits[:, 0] + rng.normal(size=200) > 0).astype(int)
    got = compute_metrics(list(CLASSIFICATION_METRICS), "binary", y, logits, from_logits=True)
    p = 1 / (1 + np.exp(-logits[:, 0]))
    labels = (p > 0.5).astype(int)
    assert got["accuracy"] == skm.accuracy_score(y, labels)
    assert got["f1"] == skm.f1_score(y, labels)
    assert got["roc_auc"] == skm.roc_auc_score(y, p)  # probabilities, not thresholded labels
    assert got["roc_auc"] != skm.roc_auc_score(y, labels)


def test_multiclass_metrics_macro_and_ovr() -> None:
    rng = np.random.default_rng(1)
    out = rng.normal(size=(150, 3))
    y = rng.integers(0, 3, size=150)
    got = compute_metrics(["precision", "roc_auc"], "multiclass", y, out, from_logits=True)
    proba = probabilities("multiclass", out, True)
    assert got["precision"] == skm.precision_score(y, proba.argmax(1), average="macro", zero_division=np.nan)
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"))


def test_regression_metrics() -> None:
    y = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([[1.5], [2.0], [2.0], [5.0]])
    got = compute_metrics(list(REGRESSION_METRICS), "regression", y, p, from_logits=False)
    assert got["mse"] == pytest.approx(0.5625)
    assert got["rmse"] == pytest.approx(0.75)
    assert got["mae"] == pytest.approx(0.625)
    assert got["r2"] == pytest.approx(skm.r2_score(y, p[:, 0]))


def test_non_finite_outputs_give_nan_not_a_crash() -> None:
    got = compute_metrics(["accuracy", "roc_auc"], "binary", np.array([0, 1]), np.array([[np.nan], [1.0]]), True)
    assert all(math.isnan(v) for v in got.values())


# The numpy closed forms only reorder sums: agreement to 1e-12 (a few ulps of 1).
FAST_RTOL = 1e-12


@pytest.mark.parametrize("trial", range(25))
@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_fast_per_epoch_metrics_equal_the_sklearn_reference(task: str, trial: int) -> None:
    rng = np.random.default_rng(trial)
    n = int(rng.integers(5, 300))
    if task == "regression":
        names, y = list(REGRESSION_METRICS), rng.normal(size=n)
        out = (y + rng.normal(size=n) * rng.uniform(0.1, 3)).reshape(-1, 1)
        if trial == 0:
            y = np.ones(n)  # constant target: r2 special case
    elif task == "binary":
        names, y = list(CLASSIFICATION_METRICS), rng.integers(0, 2, size=n)
        out = rng.normal(size=(n, 1)) + y[:, None] * rng.uniform(0, 2)
        if trial % 5 == 0:
            out = np.round(out)  # ties in the scores
        if trial == 1:
            y = np.zeros(n, dtype=int)  # one class only: roc_auc undefined
    else:
        k = int(rng.integers(3, 6))
        names, y = list(CLASSIFICATION_METRICS), rng.integers(0, k, size=n)
        out = rng.normal(size=(n, k)) + np.eye(k)[y] * rng.uniform(0, 2)
        if trial == 2:
            y = np.where(y == k - 1, 0, y)  # a class absent from y_true
    slow = compute_metrics(names, task, y, out, from_logits=True)
    fast = compute_metrics(names, task, y, out, from_logits=True, fast=True)
    assert set(slow) == set(fast)
    for name in names:
        if math.isnan(slow[name]):
            assert math.isnan(fast[name]), name
        else:
            assert fast[name] == pytest.approx(slow[name], rel=FAST_RTOL, abs=1e-14), name


# --------------------------------------------------------------------------- metric options
def _entries(task: str, threshold: float) -> list[dict[str, object]]:
    """Every metric with every option that fits ``task`` (one entry per distinct column)."""
    if task == "binary":
        names = ("accuracy", "precision", "recall", "f1")
        return [{"name": n, "threshold": threshold} for n in names] + [{"name": "roc_auc"}]
    return [{"name": "accuracy"}, {"name": "roc_auc"}] + [
        {"name": n, "average": a} for n in ("precision", "recall", "f1") for a in ("macro", "micro", "weighted")
    ]


def test_options_follow_sklearn() -> None:
    rng = np.random.default_rng(3)
    out = rng.normal(size=(120, 4))
    y = rng.integers(0, 4, size=120)
    labels = out.argmax(1)
    got = compute_metrics(_entries("multiclass", 0.5), "multiclass", y, out, from_logits=True)
    for name, fn in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
        assert got[name] == fn(y, labels, average="macro", zero_division=np.nan)  # macro keeps the plain name
        for average in ("micro", "weighted"):
            assert got[f"{name}_{average}"] == fn(y, labels, average=average, zero_division=np.nan)
    logits = rng.normal(size=(120, 1))
    yb = (logits[:, 0] + rng.normal(size=120) > 0).astype(int)
    p = 1 / (1 + np.exp(-logits[:, 0]))
    got = compute_metrics(_entries("binary", 0.3), "binary", yb, logits, from_logits=True)
    assert got["precision_t0.3"] == skm.precision_score(yb, (p > 0.3).astype(int), zero_division=0)
    assert got["accuracy_t0.3"] == skm.accuracy_score(yb, (p > 0.3).astype(int))
    assert got["roc_auc"] == skm.roc_auc_score(yb, p)  # no threshold: probabilities


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(
    task=st.sampled_from(["binary", "multiclass"]),
    n=st.integers(1, 200),
    k=st.integers(3, 6),
    threshold=st.floats(0.01, 0.99),
    seed=st.integers(0, 2**32 - 1),
    rounded=st.booleans(),
)
def test_fast_metrics_with_options_equal_the_sklearn_reference(
    task: str, n: int, k: int, threshold: float, seed: int, rounded: bool
) -> None:
    """Thresholds and averages: closed forms == sklearn on random data (ties, absent classes included)."""
    rng = np.random.default_rng(seed)
    if task == "binary":
        y = rng.integers(0, 2, size=n)
        out = rng.normal(size=(n, 1)) + y[:, None] * rng.uniform(0, 2)
    else:
        y = rng.integers(0, int(rng.integers(1, k + 1)), size=n)  # some classes may be absent
        out = rng.normal(size=(n, k)) + np.eye(k)[y] * rng.uniform(0, 2)
    if rounded:
        out = np.round(out)  # ties, and probabilities exactly at the threshold
    entries = _entries(task, round(threshold, 3))
    slow = compute_metrics(entries, task, y, out, from_logits=True)
    fast = compute_metrics(entries, task, y, out, from_logits=True, fast=True)
    assert list(slow) == list(fast)
    for column, value in slow.items():
        if math.isnan(value):
            assert math.isnan(fast[column]), column
        else:
            assert fast[column] == pytest.approx(value, rel=FAST_RTOL, abs=1e-14), column


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 60),
    seed=st.integers(0, 10_000),
    ties=st.booleans(),
    threshold=st.sampled_from([None, 0.3, 0.5, 0.9]),
    logits=st.booleans(),
)
def test_epoch_metrics_equal_the_reference(
    n: int, seed: int, ties: bool, threshold: float | None, logits: bool
) -> None:
    """The per-epoch evaluator (labels fixed once per run) gives the sklearn reference's values."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    raw = rng.normal(size=(n, 1)) * 3
    if ties:
        raw = np.round(raw)  # tied scores: average ranks in ROC-AUC, ties at the threshold
    if not logits:
        raw = 1 / (1 + np.exp(-raw))
    names: list = ["accuracy", "precision", "recall", "f1", "roc_auc"]
    if threshold is not None:
        names += [{"name": m, "threshold": threshold} for m in ("accuracy", "precision", "recall", "f1")]
        if threshold == 0.5:
            names = names[:5]  # the same columns as the defaults
    got = EpochMetrics(names, "binary", y, from_logits=logits)(raw)
    want = compute_metrics(names, "binary", y, raw, from_logits=logits)
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert (math.isnan(value) and math.isnan(got[key])) or got[key] == pytest.approx(value, rel=FAST_RTOL), key


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_epoch_metrics_equal_fast_metrics_and_give_nan_on_non_finite_outputs(task: str) -> None:
    """Both fast entry points (raw outputs per epoch, or probabilities) agree with each other and the reference."""
    rng = np.random.default_rng(11)
    if task == "regression":
        names: list = list(REGRESSION_METRICS)
        y, out = rng.normal(size=80), rng.normal(size=(80, 1))
    elif task == "binary":
        names = [*CLASSIFICATION_METRICS, {"name": "f1", "threshold": 0.3}]
        y, out = rng.integers(0, 2, size=80), rng.normal(size=(80, 1))
    else:
        names = [*CLASSIFICATION_METRICS, {"name": "f1", "average": "weighted"}]
        y, out = rng.integers(0, 4, size=80), rng.normal(size=(80, 4))
    epoch = EpochMetrics(names, task, y, from_logits=True)
    got = epoch(out)
    scores = out if task == "regression" else probabilities(task, out, True)
    assert got == fast_metrics(names, task, y, scores)
    ref = compute_metrics(names, task, y, out, from_logits=True)
    assert list(got) == list(ref)
    assert got == pytest.approx(ref, rel=FAST_RTOL, abs=1e-14)
    bad = out.copy()
    bad[3] = np.nan
    assert all(math.isnan(v) for v in epoch(bad).values())
    assert all(math.isnan(v) for v in compute_metrics(names, task, y, bad, from_logits=True).values())
