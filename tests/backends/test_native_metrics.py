"""Native per-backend metrics agree with the sklearn reference on the same predictions.

Every metric and every option (binary thresholds, multiclass averages) on random outputs
fed in batches to ``duofit.backends.<backend>.metrics``; the reference is
:func:`duofit.common.metrics.compute_metrics` on the same outputs.
"""

from __future__ import annotations

import importlib
import math
from typing import Any

import numpy as np
import pytest

from duofit.common.errors import BackendError
from duofit.common.metrics import REGISTRY, compute_metrics, probabilities
from duofit.common.spec import METRICS, MetricEntry, resolve_metrics

BACKENDS = [pytest.param("torch", marks=pytest.mark.torch), pytest.param("keras", marks=pytest.mark.keras)]

# torch: float64 state and int64 counts; only the order of float64 sums differs from sklearn.
TORCH_RTOL = 1e-12
TORCH_ATOL = 1e-14
# Keras counts are exact in float32 (integers below 2**24); the ratio is one float32 division
# of a value <= 1: a few units of float32 roundoff (2**-24 = 6e-8).
KERAS_COUNT_ATOL = 2.5e-7
# keras.metrics.F1Score adds epsilon() = 1e-7 to three denominators (each moves F1 by at most
# ~1e-7) on top of float32 roundoff; measured 1.3e-7.
KERAS_F1_ATOL = 1e-6
# MeanSquaredError / RootMeanSquaredError / MeanAbsoluteError: float32 running sums over
# n <= 600 samples in batches of >= 16: (log2(batch) + n / batch) roundings of 6e-8 each.
KERAS_MEAN_RTOL = 1e-5
# R2Score: float32 sums; ss_tot = sum(y**2) - sum(y) * mean loses sum(y**2) / ss_tot (< 2 for
# the test targets, mean ~0 and variance ~1) times that relative accuracy.
KERAS_R2_ATOL = 1e-4
# keras.metrics.AUC is exact on float32 counts; its error is the Riemann sum's, bounded by
# _auc_bucket_bound (computed from the data) plus float32 roundoff of the trapezoid sum.
KERAS_AUC_SLACK = 1e-6


def _entries(task: str) -> list[object]:
    if task == "binary":
        names = ("accuracy", "precision", "recall", "f1")
        return [*names, "roc_auc"] + [{"name": n, "threshold": t} for n in names for t in (0.2, 0.65)]
    if task == "multiclass":
        return ["accuracy", "roc_auc"] + [
            {"name": n, "average": a} for n in ("precision", "recall", "f1") for a in ("macro", "micro", "weighted")
        ]
    return ["mse", "rmse", "mae", "r2"]


def _data(task: str, seed: int, from_logits: bool) -> tuple[np.ndarray, np.ndarray]:
    """float32 outputs (as a float32 model gives them); every class present in y."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(200, 600))
    if task == "regression":
        y = rng.normal(size=(n, int(rng.integers(1, 3))))
        return y, (y + rng.normal(size=y.shape) * rng.uniform(0.1, 1.0)).astype(np.float32)
    k = 1 if task == "binary" else int(rng.integers(3, 6))
    y = rng.integers(0, 2 if task == "binary" else k, size=n)
    y[: max(k, 2)] = np.arange(max(k, 2)) % (2 if task == "binary" else k)
    signal = y[:, None] if task == "binary" else np.eye(k)[y]
    out = rng.normal(size=(n, k)) * 2 + signal * rng.uniform(0.5, 2.0)
    if not from_logits:  # probabilities, as a sigmoid/softmax output layer gives them
        out = probabilities(task, out, True).reshape(n, k)
    return y, out.astype(np.float32)


def _auc_bucket_bound(task: str, y: np.ndarray, outputs: np.ndarray, from_logits: bool, num_thresholds: int) -> float:
    """Largest |Riemann sum - exact ROC-AUC| for keras.metrics.AUC on these scores.

    Keras evaluates the ROC at fixed thresholds and joins the points by straight lines.
    Between two neighbouring thresholds the exact ROC is a monotone path inside a box of
    (negatives in the bucket / N) x (positives in the bucket / P); the chord differs from
    it by at most half the box. Scores are put in buckets from float64 probabilities;
    Keras' float32 probabilities may land one bucket over, so pairs in neighbouring
    buckets count too.
    """
    p = probabilities(task, outputs, from_logits).reshape(len(y), -1)
    classes = [(y == 1, p[:, 0])] if task == "binary" else [(y == c, p[:, c]) for c in range(p.shape[1])]
    bounds = []
    for positive, score in classes:
        bucket = np.clip(np.ceil(score * (num_thresholds - 1)) - 1, 0, None).astype(int)
        pos = np.bincount(bucket[positive], minlength=num_thresholds + 1).astype(float)
        neg = np.bincount(bucket[~positive], minlength=num_thresholds + 1).astype(float)
        near = neg + np.roll(neg, 1) + np.roll(neg, -1)
        bounds.append(0.5 * (pos * near).sum() / (positive.sum() * (~positive).sum()))
    return float(np.mean(bounds))


def _keras_tolerance(name: str, expected: float) -> float:
    if name in ("accuracy", "precision", "recall"):
        return KERAS_COUNT_ATOL
    if name == "f1":
        return KERAS_F1_ATOL
    if name == "r2":
        return KERAS_R2_ATOL
    return KERAS_MEAN_RTOL * abs(expected)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("task", "from_logits"),
    [("binary", True), ("binary", False), ("multiclass", True), ("multiclass", False), ("regression", False)],
)
@pytest.mark.parametrize("seed", range(3))
def test_native_metrics_agree_with_the_reference(backend: str, task: str, from_logits: bool, seed: int) -> None:
    mod = importlib.import_module(f"duofit.backends.{backend}.metrics")
    y, out = _data(task, seed, from_logits)
    entries = resolve_metrics(_entries(task), task)
    ref = compute_metrics(entries, task, y, out, from_logits)
    batch = [16, 64, 10_000][seed]  # many batches, and all in one
    got = mod.native_metrics(entries, task, y, out, from_logits, batch_size=batch)
    assert list(got) == list(ref) == [e.column for e in entries]
    for entry in entries:
        column, expected = entry.column, ref[entry.column]
        assert math.isfinite(got[column]), column
        if backend == "torch":
            assert got[column] == pytest.approx(expected, rel=TORCH_RTOL, abs=TORCH_ATOL), column
        elif entry.name == "roc_auc":
            bound = _auc_bucket_bound(task, y, out, from_logits, mod.AUC_THRESHOLDS)
            assert bound < 0.02, "the bound is too loose to test anything"
            assert abs(got[column] - expected) <= bound + KERAS_AUC_SLACK, (column, bound)
        else:
            assert abs(got[column] - expected) <= _keras_tolerance(entry.name, expected), column


@pytest.mark.parametrize("backend", BACKENDS)
def test_thresholds_and_averages_change_the_native_value(backend: str) -> None:
    """The options reach the native metric (not only the column name)."""
    mod = importlib.import_module(f"duofit.backends.{backend}.metrics")
    y, out = _data("binary", 7, True)
    got = mod.native_metrics(["recall", {"name": "recall", "threshold": 0.2}], "binary", y, out, True)
    assert got["recall_t0.2"] > got["recall"]  # a lower threshold predicts class 1 more often
    y, out = _data("multiclass", 7, True)
    y = np.where(np.arange(len(y)) % 3 == 0, 0, y)  # unbalanced classes: averages differ
    got = mod.native_metrics(
        [{"name": "precision", "average": a} for a in ("macro", "micro", "weighted")], "multiclass", y, out, True
    )
    assert len({round(v, 5) for v in got.values()}) == 3, got


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_finite_outputs_give_nan(backend: str) -> None:
    mod = importlib.import_module(f"duofit.backends.{backend}.metrics")
    out = np.array([[np.nan], [1.0], [0.5], [-1.0]], dtype=np.float32)
    got = mod.native_metrics(["accuracy", "f1", "roc_auc"], "binary", np.array([0, 1, 1, 0]), out, True)
    assert all(math.isnan(v) for v in got.values()), got


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_registry_metric_has_a_native_implementation(backend: str) -> None:
    """Each backend's table is keyed by the registry's names (no backend marks a metric unsupported)."""
    mod = importlib.import_module(f"duofit.backends.{backend}.metrics")
    assert list(mod.METRICS) == list(REGISTRY) == list(METRICS)
    y, out = np.array([0, 1, 1, 0]), np.array([[-1.0], [2.0], [0.5], [0.2]], dtype=np.float32)
    for name, metric in REGISTRY.items():
        task = "regression" if metric.task == "regression" else "binary"
        got = mod.native_metrics([name], task, y, out, task == "binary")
        assert math.isfinite(got[name]), name


@pytest.mark.parametrize("backend", BACKENDS)
def test_unknown_metric_names_backend_item_and_supported(backend: str) -> None:
    mod = importlib.import_module(f"duofit.backends.{backend}.metrics")
    with pytest.raises(BackendError) as info:
        mod.make_metric(MetricEntry("log_loss", "log_loss"), "binary", True)
    msg = str(info.value)
    assert f"the {backend} backend has no 'log_loss'" in msg
    assert "supported: accuracy, precision, recall, f1, roc_auc" in msg


def _update_without_sync(metrics: dict[str, Any], y: np.ndarray, out: np.ndarray) -> None:
    """Feed the data in batches of 32 with torch's CUDA sync debug mode set to raise on a host sync."""
    import torch

    yt, ot = torch.as_tensor(y, device="cuda"), torch.as_tensor(out, device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for start in range(0, len(y), 32):
            for m in metrics.values():
                m.update(ot[start : start + 32], yt[start : start + 32])
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.torch
@pytest.mark.gpu
def test_torch_update_never_syncs_with_the_host() -> None:
    """On CUDA, any host sync inside update() raises (torch's sync debug mode)."""
    import torch

    from duofit.backends.torch.metrics import collect, make_metric

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    for task, entries in (("binary", _entries("binary")), ("multiclass", _entries("multiclass"))):
        y, out = _data(task, 0, True)
        k = out.shape[1] if task == "multiclass" else 2
        metrics = {e.column: make_metric(e, task, True, k, "cuda") for e in resolve_metrics(entries, task)}
        _update_without_sync(metrics, y, out)
        got = collect(metrics)
        ref = compute_metrics(entries, task, y, out, True)
        assert got == pytest.approx(ref, rel=1e-9)
    y, out = _data("regression", 0, True)
    metrics = {
        e.column: make_metric(e, "regression", False, 2, "cuda") for e in resolve_metrics(["mse", "r2"], "regression")
    }
    _update_without_sync(metrics, y, out)
    assert collect(metrics) == pytest.approx(compute_metrics(["mse", "r2"], "regression", y, out, False), rel=1e-9)


@pytest.mark.keras
def test_keras_metric_works_inside_compile_and_evaluate() -> None:
    """The Keras objects run in the compiled step on raw logits and integer labels."""
    import keras

    from duofit.backends.keras.metrics import AUC_THRESHOLDS, make_metric

    entries = resolve_metrics(["accuracy", {"name": "precision", "threshold": 0.3}, "roc_auc"], "binary")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 3)).astype(np.float32)
    y = (x[:, 0] + rng.normal(size=256) > 0).astype(np.int64)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[make_metric(e, "binary", True) for e in entries],
    )
    logs = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    out = model.predict(x, verbose=0)
    ref = compute_metrics(entries, "binary", y, out, True)
    assert logs["accuracy"] == pytest.approx(ref["accuracy"], abs=KERAS_COUNT_ATOL)
    assert logs["precision_t0.3"] == pytest.approx(ref["precision_t0.3"], abs=KERAS_COUNT_ATOL)
    bound = _auc_bucket_bound("binary", y, out, True, AUC_THRESHOLDS)
    assert abs(logs["roc_auc"] - ref["roc_auc"]) <= bound + KERAS_AUC_SLACK
