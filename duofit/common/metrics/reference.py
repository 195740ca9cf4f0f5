"""The reference formula of every metric: scikit-learn, applied to every backend's predictions.

Each function takes ``(y, pred, entry, task)``: the targets, what the metric reads (class
labels at the entry's threshold, probabilities, or regression predictions ``[n, outputs]``;
see :class:`~duofit.common.metrics.registry.MetricDef`), the resolved entry and the task.
Binary tasks score class 1 (the caller turns ``(y, p)`` around for a metric whose positive
class is 0: :func:`~duofit.common.metrics.registry.flips`). Precision, recall and F1 use
sklearn's ``zero_division=np.nan``: a binary score whose denominator is 0 is ``nan``, and a
multiclass macro or weighted average leaves out each class whose score is undefined (a class
never predicted, for precision; absent from ``y``, for recall; F1 is defined for every class
in ``y`` or the predictions, the classes sklearn scores) instead of counting it as 0 —
``sklearn/metrics/_classification.py`` documents it ("If set to `np.nan`, such values will be
excluded from the average"), and its ``precision_recall_fscore_support`` averages with
``_nanaverage`` (``sklearn/utils/extmath.py``), which drops the ``nan`` classes and their
weights (``nan`` when every class is). ``micro`` sums the counts first, so it is unaffected.
r2 of a constant target is ``nan`` (``force_finite=False``).

Example:
    >>> import numpy as np
    >>> from duofit.common.spec import MetricEntry
    >>> f1(np.array([1, 0, 1]), np.array([1, 1, 1]), MetricEntry("f1", "f1", average="binary"), "binary")
    0.8
    >>> macro = MetricEntry("precision", "precision", average="macro")   # class 2 is never predicted
    >>> precision(np.array([0, 1, 2, 2]), np.array([0, 1, 1, 1]), macro, "multiclass")   # (1 + 1/3) / 2
    0.6666666666666666
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from types import ModuleType

import numpy as np

from duofit.common.spec import MetricEntry

__all__ = [
    "ZERO_DIVISION",
    "ReferenceFn",
    "accuracy",
    "f1",
    "mae",
    "mse",
    "precision",
    "r2",
    "recall",
    "rmse",
    "roc_auc",
]

ReferenceFn = Callable[[np.ndarray, np.ndarray, MetricEntry, str], float]


@cache
def _skm() -> ModuleType:
    """``sklearn.metrics``, imported on first use: importing sklearn takes about a second."""
    import sklearn.metrics

    return sklearn.metrics


def _average(entry: MetricEntry, task: str) -> str:
    return entry.average or ("binary" if task == "binary" else "macro")


# sklearn's `zero_division`: an undefined score is nan (binary), or is left out of the average (multiclass).
ZERO_DIVISION = np.nan


def accuracy(y: np.ndarray, labels: np.ndarray, entry: MetricEntry, task: str) -> float:
    """``sklearn.metrics.accuracy_score`` (binary: ``proba > threshold``, default 0.5)."""
    return float(_skm().accuracy_score(y, labels))


def precision(y: np.ndarray, labels: np.ndarray, entry: MetricEntry, task: str) -> float:
    """``sklearn.metrics.precision_score`` (binary at the threshold, or multiclass ``average``)."""
    return float(_skm().precision_score(y, labels, average=_average(entry, task), zero_division=ZERO_DIVISION))


def recall(y: np.ndarray, labels: np.ndarray, entry: MetricEntry, task: str) -> float:
    """``sklearn.metrics.recall_score`` (binary at the threshold, or multiclass ``average``)."""
    return float(_skm().recall_score(y, labels, average=_average(entry, task), zero_division=ZERO_DIVISION))


def f1(y: np.ndarray, labels: np.ndarray, entry: MetricEntry, task: str) -> float:
    """``sklearn.metrics.f1_score`` (binary at the threshold, or multiclass ``average``)."""
    return float(_skm().f1_score(y, labels, average=_average(entry, task), zero_division=ZERO_DIVISION))


def roc_auc(y: np.ndarray, proba: np.ndarray, entry: MetricEntry, task: str) -> float:
    """``sklearn.metrics.roc_auc_score`` on probabilities (one-vs-rest macro for multiclass).

    Undefined (``nan``) when ``y`` holds one class only; classes absent from ``y`` are
    dropped and the remaining probabilities renormalised.
    """
    skm = _skm()
    if np.unique(y).size < 2 or not np.all(np.isfinite(proba)):
        return float("nan")
    if task == "binary":
        return float(skm.roc_auc_score(y, proba))
    present = np.unique(y)
    if present.size < proba.shape[1]:  # some class absent from this split: score the present ones
        p = proba[:, present] / proba[:, present].sum(axis=1, keepdims=True)
        y_present = np.searchsorted(present, y)
        if present.size == 2:  # sklearn wants 1-d scores for two classes (ovr of 2 == binary)
            return float(skm.roc_auc_score(y_present, p[:, 1]))
        return float(skm.roc_auc_score(y_present, p, multi_class="ovr"))
    return float(skm.roc_auc_score(y, proba, multi_class="ovr"))


def mse(y: np.ndarray, pred: np.ndarray, entry: MetricEntry, task: str) -> float:
    """``sklearn.metrics.mean_squared_error`` (uniform average over outputs)."""
    return float(_skm().mean_squared_error(y, pred))


def rmse(y: np.ndarray, pred: np.ndarray, entry: MetricEntry, task: str) -> float:
    """Square root of ``sklearn.metrics.mean_squared_error``."""
    return float(np.sqrt(_skm().mean_squared_error(y, pred)))


def mae(y: np.ndarray, pred: np.ndarray, entry: MetricEntry, task: str) -> float:
    """``sklearn.metrics.mean_absolute_error``."""
    return float(_skm().mean_absolute_error(y, pred))


def r2(y: np.ndarray, pred: np.ndarray, entry: MetricEntry, task: str) -> float:
    """``sklearn.metrics.r2_score(force_finite=False)``; ``nan`` when an output's target is constant."""
    with np.errstate(divide="ignore", invalid="ignore"):  # the 0 / 0 of a constant target: nan, said by the caller
        value = float(_skm().r2_score(y, pred, force_finite=False))
    return value if np.isfinite(value) else float("nan")
