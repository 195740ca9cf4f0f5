"""The numpy closed form of every metric: the sklearn reference's values, ~50x cheaper.

The history computes metrics after every epoch; sklearn's input validation costs a few
milliseconds per call, as much as a whole epoch of a small model. Each formula reads one
prepared input, made once per call and shared by every metric that reads it:

- :class:`Counts` (accuracy, precision, recall, f1): confusion counts at one threshold;
- :class:`Ranking` (roc_auc): probabilities and labels (Mann-Whitney ROC-AUC, exact);
- :class:`Residuals` (mse, rmse, mae, r2): regression errors.

A metric undefined on its data is ``nan``, as in the reference: binary precision without
predicted positives, recall without positives, F1 without either, ROC-AUC with one class,
r2 with a constant target. (A multiclass average keeps sklearn's ``zero_division=0`` for a
class never predicted: the average stays defined.)

``tests/common/test_metrics.py`` checks every formula against
:mod:`duofit.common.metrics.reference` to 1e-12; final test metrics always use sklearn.

Example:
    >>> import numpy as np
    >>> from duofit.common.spec import MetricEntry
    >>> counts = binary_counts(np.array([False, True, True]), np.array([False, True, False]))
    >>> f1(counts, MetricEntry("f1", "f1")), accuracy(counts, MetricEntry("accuracy", "accuracy"))
    (0.6666666666666666, 0.6666666666666666)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from duofit.common.spec import MetricEntry

__all__ = [
    "Counts",
    "FastFn",
    "Ranking",
    "Residuals",
    "accuracy",
    "auc_binary",
    "binary_counts",
    "f1",
    "mae",
    "mse",
    "multiclass_counts",
    "precision",
    "r2",
    "recall",
    "rmse",
    "roc_auc",
]

# A formula of one prepared input (Counts, Ranking or Residuals, per the metric) and the entry.
FastFn = Callable[[Any, MetricEntry], float]


@dataclass(slots=True)  # made per epoch: a plain slotted class is the cheapest
class Counts:
    """Confusion counts at one threshold.

    Attributes:
        tp: True positives per scored class: a Python int for binary tasks (class 1 only,
            sklearn's ``average="binary"``), float64 per class present in the labels or
            the predictions (as sklearn) for multiclass.
        fp: False positives, as ``tp``.
        fn: False negatives, as ``tp``.
        correct: Samples whose predicted class is right.
        total: Samples.
    """

    tp: Any
    fp: Any
    fn: Any
    correct: float
    total: float


@dataclass(slots=True)  # made per epoch: a plain slotted class is the cheapest
class Ranking:
    """What ROC-AUC reads: labels and probabilities.

    Attributes:
        y: Class indices.
        proba: Probabilities, ``[n]`` binary or ``[n, k]`` multiclass.
        positive: ``y == 1`` for binary tasks (made once per run), ``None`` for multiclass.
        n_pos: ``positive``'s count (binary tasks).
    """

    y: np.ndarray
    proba: np.ndarray
    positive: np.ndarray | None
    n_pos: int = 0


@dataclass(slots=True)  # made per epoch: a plain slotted class is the cheapest
class Residuals:
    """What the regression metrics read: targets and errors, both ``[n, outputs]`` float64."""

    y: np.ndarray
    err: np.ndarray


def binary_counts(positive: np.ndarray, predicted: np.ndarray, n_pos: int | None = None) -> Counts:
    """Counts of class 1 from the true (``positive``) and predicted (``predicted``) masks.

    Args:
        positive: ``y == 1``.
        predicted: ``proba > threshold``.
        n_pos: ``positive``'s count when already known (the per-epoch path counts it once).
    """
    n = int(positive.size)
    n_pos = int(np.count_nonzero(positive)) if n_pos is None else n_pos
    tp = int(np.count_nonzero(predicted & positive))
    fp = int(np.count_nonzero(predicted)) - tp
    fn = n_pos - tp
    return Counts(tp, fp, fn, n - fp - fn, n)


def multiclass_counts(y: np.ndarray, labels: np.ndarray, k: int) -> Counts:
    """Counts per class present in ``y`` or ``labels`` (class indices ``0..k-1``)."""
    cm = np.bincount(y * k + labels, minlength=k * k).reshape(k, k).astype(np.float64)
    tp = np.diag(cm)
    fp, fn = cm.sum(axis=0) - tp, cm.sum(axis=1) - tp
    present = (cm.sum(axis=0) + cm.sum(axis=1)) > 0  # sklearn: labels in y_true or y_pred
    return Counts(tp[present], fp[present], fn[present], float(np.trace(cm)), float(cm.sum()))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Divide, giving 0 where the denominator is 0 (sklearn's zero_division=0)."""
    out = np.zeros_like(num, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _averaged(num: Any, den: Any, counts: Counts, entry: MetricEntry) -> float:
    """The sklearn average (``entry.average``) of per-class ratios ``num / den``.

    Binary: class 1's ratio, ``nan`` when undefined (``den == 0``); multiclass: zero_division=0 per class.
    """
    if not isinstance(num, np.ndarray):  # binary: class 1's ratio
        return num / den if den else math.nan
    if entry.average == "micro":
        return float(_ratio(num.sum(keepdims=True), den.sum(keepdims=True))[0])
    if entry.average == "weighted":
        support = counts.tp + counts.fn
        return float(np.average(_ratio(num, den), weights=support)) if support.sum() > 0 else 0.0
    return float(_ratio(num, den).mean())  # macro


def accuracy(counts: Counts, entry: MetricEntry) -> float:
    """Share of correct predictions (``nan`` without samples)."""
    return counts.correct / counts.total if counts.total else float("nan")


def precision(counts: Counts, entry: MetricEntry) -> float:
    """``tp / (tp + fp)``, averaged per ``entry.average`` (binary: ``nan`` without predicted positives)."""
    return _averaged(counts.tp, counts.tp + counts.fp, counts, entry)


def recall(counts: Counts, entry: MetricEntry) -> float:
    """``tp / (tp + fn)``, averaged per ``entry.average`` (binary: ``nan`` without positives)."""
    return _averaged(counts.tp, counts.tp + counts.fn, counts, entry)


def f1(counts: Counts, entry: MetricEntry) -> float:
    """``2 tp / (2 tp + fp + fn)``, averaged per ``entry.average`` (binary: ``nan`` without either)."""
    return _averaged(2 * counts.tp, 2 * counts.tp + counts.fp + counts.fn, counts, entry)


def auc_binary(positive: np.ndarray, score: np.ndarray, n_pos: int | None = None) -> float:
    """Mann-Whitney U / (n_pos * n_neg) with average ranks for ties (= trapezoidal ROC-AUC).

    Args:
        positive: ``y == 1``.
        score: Scores of class 1 (probabilities).
        n_pos: ``positive``'s count when already known.

    Example:
        >>> auc_binary(np.array([False, True, True]), np.array([0.2, 0.9, 0.2]))
        0.75
    """
    n_pos = int(np.count_nonzero(positive)) if n_pos is None else n_pos
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    sorted_scores = score[order]
    if np.count_nonzero(sorted_scores[1:] == sorted_scores[:-1]) == 0:
        rank_sum = float(np.flatnonzero(positive[order]).sum()) + n_pos  # no ties: rank = position + 1
    else:
        _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
        avg_rank = first + (counts + 1) / 2.0  # 1-based average rank of each tie group
        ranks = np.empty(score.size)
        ranks[order] = np.repeat(avg_rank, counts)
        rank_sum = float(ranks[positive].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def roc_auc(ranking: Ranking, entry: MetricEntry) -> float:
    """Exact ROC-AUC (one-vs-rest macro for multiclass), as the reference scores absent classes."""
    if ranking.positive is not None:
        return auc_binary(ranking.positive, ranking.proba, ranking.n_pos)
    y, p = ranking.y, ranking.proba
    if y.size == 0 or y.min() == y.max():
        return float("nan")
    present = np.unique(y)
    if present.size < p.shape[1]:  # as the reference: renormalise over the present classes
        p = p[:, present] / p[:, present].sum(axis=1, keepdims=True)
        y = np.searchsorted(present, y)
        if present.size == 2:  # as the reference: binary AUC of the second class's score
            return auc_binary(y == 1, p[:, 1])
    return float(np.mean([auc_binary(y == c, p[:, c]) for c in range(p.shape[1])]))


def mse(residuals: Residuals, entry: MetricEntry) -> float:
    """Mean squared error (uniform average over outputs)."""
    return float(np.mean(residuals.err**2, axis=0).mean())


def rmse(residuals: Residuals, entry: MetricEntry) -> float:
    """Square root of :func:`mse`."""
    return float(np.sqrt(np.mean(residuals.err**2, axis=0).mean()))


def mae(residuals: Residuals, entry: MetricEntry) -> float:
    """Mean absolute error."""
    return float(np.mean(np.abs(residuals.err)))


def r2(residuals: Residuals, entry: MetricEntry) -> float:
    """Coefficient of determination, uniform average over outputs; ``nan`` if an output's target is constant."""
    y, err = residuals.y, residuals.err
    ss_tot = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    if y.size == 0 or not ss_tot.all():  # r2 compares with the target's variance: none, no r2
        return math.nan
    return float((1 - (err**2).sum(axis=0) / ss_tot).mean())
