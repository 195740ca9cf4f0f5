"""Reference metrics: one implementation (scikit-learn) used for every backend's predictions.

Metric entries may carry options (see :mod:`duofit.common.metric_options`): a binary
``threshold`` for the thresholded-label metrics and a multiclass ``average``; results are
keyed by column name (``f1_weighted``, ``precision_t0.3``; plain names for default options).

Example:
    >>> import numpy as np
    >>> out = np.array([[2.0], [-1.0], [0.5], [-3.0]])      # logits
    >>> y = np.array([1, 0, 0, 0])
    >>> compute_metrics(["accuracy", "roc_auc"], "binary", y, out, from_logits=True)
    {'accuracy': 0.75, 'roc_auc': 1.0}
    >>> compute_metrics([{"name": "accuracy", "threshold": 0.7}], "binary", y, out, from_logits=True)
    {'accuracy_t0.7': 1.0}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from duofit.common.metric_options import DEFAULT_THRESHOLD, MetricEntry, resolve_metrics
from duofit.common.spec import CLASSIFICATION_METRICS, REGRESSION_METRICS

__all__ = [
    "CLASSIFICATION_METRICS",
    "REFERENCE_METRICS",
    "REGRESSION_METRICS",
    "compute_metrics",
    "predicted_labels",
    "probabilities",
]

BINARY_THRESHOLD = DEFAULT_THRESHOLD  # probability above which a binary prediction is class 1 (seed chapter)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """Stable logistic: ``1 / (1 + e^-z)`` for z >= 0, ``e^z / (1 + e^z)`` below (no overflow)."""
    e = np.exp(-np.abs(z))  # e^-z above zero, e^z below: the same two formulas, without boolean indexing
    return np.where(z >= 0, 1.0, e) / (1.0 + e)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def probabilities(task: str, outputs: np.ndarray, from_logits: bool) -> np.ndarray:
    """Class probabilities from raw model outputs: ``[n]`` for binary, ``[n, k]`` multiclass."""
    outputs = np.asarray(outputs, dtype=np.float64)
    if task == "binary":
        flat = outputs.reshape(len(outputs))
        return _sigmoid(flat) if from_logits else np.clip(flat, 0.0, 1.0)
    if from_logits:
        return _softmax(outputs)
    total = outputs.sum(axis=1, keepdims=True)
    return outputs / np.where(total == 0, 1.0, total)


def predicted_labels(task: str, proba: np.ndarray, threshold: float = BINARY_THRESHOLD) -> np.ndarray:
    """Class indices from probabilities (``proba > threshold`` for binary, argmax otherwise).

    Example:
        >>> predicted_labels("binary", np.array([0.2, 0.4, 0.9]), threshold=0.3).tolist()
        [0, 1, 1]
    """
    if task == "binary":
        return (proba > threshold).astype(np.int64)
    return proba.argmax(axis=1).astype(np.int64)


def _classification(entry: MetricEntry) -> Callable[[np.ndarray, np.ndarray, np.ndarray, str], float]:
    import sklearn.metrics as skm

    name = entry.name

    def fn(y: np.ndarray, labels: np.ndarray, proba: np.ndarray, task: str) -> float:
        average = entry.average or ("binary" if task == "binary" else "macro")
        if name == "accuracy":
            return float(skm.accuracy_score(y, labels))
        if name == "precision":
            return float(skm.precision_score(y, labels, average=average, zero_division=0))
        if name == "recall":
            return float(skm.recall_score(y, labels, average=average, zero_division=0))
        if name == "f1":
            return float(skm.f1_score(y, labels, average=average, zero_division=0))
        # roc_auc: needs probabilities; undefined when y holds one class only
        if np.unique(y).size < 2 or not np.all(np.isfinite(proba)):
            return float("nan")
        if task == "binary":
            return float(skm.roc_auc_score(y, proba))
        k = proba.shape[1]
        present = np.unique(y)
        if present.size < k:  # some class absent from this split: score the present ones
            p = proba[:, present] / proba[:, present].sum(axis=1, keepdims=True)
            y_present = np.searchsorted(present, y)
            if present.size == 2:  # sklearn wants 1-d scores for two classes (ovr of 2 == binary)
                return float(skm.roc_auc_score(y_present, p[:, 1]))
            return float(skm.roc_auc_score(y_present, p, multi_class="ovr"))
        return float(skm.roc_auc_score(y, proba, multi_class="ovr"))

    return fn


def _regression(name: str) -> Callable[[np.ndarray, np.ndarray], float]:
    import sklearn.metrics as skm

    table: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
        "mse": lambda y, p: float(skm.mean_squared_error(y, p)),
        "rmse": lambda y, p: float(np.sqrt(skm.mean_squared_error(y, p))),
        "mae": lambda y, p: float(skm.mean_absolute_error(y, p)),
        "r2": lambda y, p: float(skm.r2_score(y, p)),
    }
    return table[name]


REFERENCE_METRICS: dict[str, str] = {
    "accuracy": "sklearn.metrics.accuracy_score (binary: proba > threshold, default 0.5)",
    "precision": "sklearn.metrics.precision_score (binary at the threshold, or multiclass `average`, default macro)",
    "recall": "sklearn.metrics.recall_score (binary at the threshold, or multiclass `average`, default macro)",
    "f1": "sklearn.metrics.f1_score (binary at the threshold, or multiclass `average`, default macro)",
    "roc_auc": "sklearn.metrics.roc_auc_score on probabilities (one-vs-rest for multiclass)",
    "mse": "sklearn.metrics.mean_squared_error",
    "rmse": "sqrt of sklearn.metrics.mean_squared_error",
    "mae": "sklearn.metrics.mean_absolute_error",
    "r2": "sklearn.metrics.r2_score",
}


def compute_metrics(
    names: Sequence[str | Any],
    task: str,
    y_true: np.ndarray,
    outputs: np.ndarray,
    from_logits: bool,
    fast: bool = False,
) -> dict[str, float]:
    """Compute metrics on raw model outputs with the reference (sklearn) code.

    Args:
        names: The spec's metric entries: names, option tables (``spec.metrics``) or resolved
            :class:`~duofit.common.metric_options.MetricEntry` objects.
        task: ``binary``, ``multiclass`` or ``regression``.
        y_true: Class indices or regression targets.
        outputs: Raw model outputs (logits or probabilities, per ``from_logits``).
        from_logits: Whether ``outputs`` are logits.
        fast: Use the numpy closed forms of :mod:`duofit.common.fastmetrics` (same values,
            for the per-epoch history) instead of calling sklearn.

    Returns:
        ``{column: value}`` (the plain name for default options); a metric that is undefined
        (e.g. ROC-AUC on one class, or any metric on non-finite outputs) is ``nan``.
    """
    entries = resolve_metrics(names, task)
    out: dict[str, float] = {}
    if task == "regression":
        pred = np.asarray(outputs, dtype=np.float64).reshape(len(y_true), -1)
        y = np.asarray(y_true, dtype=np.float64).reshape(len(y_true), -1)
        finite = bool(np.all(np.isfinite(pred)))
        if fast and finite:
            from duofit.common.fastmetrics import fast_metrics

            return fast_metrics(entries, task, y_true, pred)
        for entry in entries:
            out[entry.column] = _regression(entry.name)(y, pred) if finite else float("nan")
        return out
    proba = probabilities(task, outputs, from_logits)
    finite = bool(np.all(np.isfinite(proba)))
    if fast and finite:
        from duofit.common.fastmetrics import fast_metrics

        return fast_metrics(entries, task, y_true, proba)
    safe = np.nan_to_num(proba)
    for entry in entries:
        labels = predicted_labels(task, safe, entry.threshold)
        out[entry.column] = _classification(entry)(y_true, labels, proba, task) if finite else float("nan")
    return out
