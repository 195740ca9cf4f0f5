"""The numpy closed form of every metric: the sklearn reference's values, ~50x cheaper.

The history computes metrics after every epoch; sklearn's input validation costs a few
milliseconds per call, as much as a whole epoch of a small model. Each formula reads one
prepared input, made once per call and shared by every metric that reads it:

- :class:`Counts` (accuracy, precision, recall, f1): confusion counts at one threshold;
- :class:`Ranking` (roc_auc): probabilities and labels (Mann-Whitney ROC-AUC, exact);
- :class:`Residuals` (mse, rmse, mae, r2): regression errors.

A metric undefined on its data is ``nan``, as in the reference: binary precision without
predicted positives, recall without positives, F1 without either, ROC-AUC with one class,
r2 with a constant target. A macro or weighted multiclass average leaves out the classes
whose score is undefined (precision of a class never predicted, recall of a class absent
from the labels; :func:`undefined_classes` names them), as sklearn's ``zero_division=np.nan``
does; with no class left it is ``nan``.

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
    "undefined_classes",
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
        classes: Multiclass: the index of each scored class (``tp[i]`` is class
            ``classes[i]``); ``None`` for binary tasks.
    """

    tp: Any
    fp: Any
    fn: Any
    correct: float
    total: float
    classes: Any = None


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
    return Counts(tp[present], fp[present], fn[present], float(np.trace(cm)), float(cm.sum()), np.flatnonzero(present))


# Each label metric's per-class numerator and denominator (F1 = 2 tp / (2 tp + fp + fn)).
_FRACTIONS: dict[str, Callable[[Counts], tuple[Any, Any]]] = {
    "precision": lambda c: (c.tp, c.tp + c.fp),
    "recall": lambda c: (c.tp, c.tp + c.fn),
    "f1": lambda c: (2 * c.tp, 2 * c.tp + c.fp + c.fn),
}


def _averaged(name: str, counts: Counts, entry: MetricEntry) -> float:
    """The sklearn average (``entry.average``) of per-class ratios, ``zero_division=np.nan``.

    Binary: class 1's ratio, ``nan`` when undefined (``den == 0``). Multiclass ``macro`` and
    ``weighted`` leave out the classes whose ratio is undefined, as sklearn's ``_nanaverage``
    (``sklearn/utils/extmath.py``): ``nan`` when none is left; weighted by support, or
    unweighted when the classes left all have support 0.
    """
    num, den = _FRACTIONS[name](counts)
    if not isinstance(num, np.ndarray):  # binary: class 1's ratio
        return num / den if den else math.nan
    if entry.average == "micro":
        total = float(den.sum())
        return float(num.sum()) / total if total else math.nan
    defined = den != 0
    if not defined.any():
        return math.nan
    ratio = num[defined] / den[defined]
    if entry.average == "weighted":
        support = (counts.tp + counts.fn)[defined]
        total = float(support.sum())
        if total > 0:
            return float((ratio * support).sum() / total)
    return float(ratio.mean())  # macro, or weighted over classes of support 0 only


def undefined_classes(counts: Counts, entry: MetricEntry) -> np.ndarray:
    """The classes a multiclass average leaves out: their score is undefined (sorted indices).

    Precision of a class never predicted, recall of a class absent from the labels (F1 is
    defined for every scored class). A weighted average names only those with support: the
    others weigh 0 either way. Empty for binary tasks, ``micro`` and other metrics.

    Example:
        >>> counts = multiclass_counts(np.array([0, 1, 2, 2]), np.array([0, 1, 1, 1]), 3)
        >>> undefined_classes(counts, MetricEntry("precision", "precision", average="macro"))
        array([2])
    """
    if counts.classes is None or entry.average not in ("macro", "weighted") or entry.name not in _FRACTIONS:
        return np.empty(0, dtype=np.int64)
    _, den = _FRACTIONS[entry.name](counts)
    undefined = den == 0
    if entry.average == "weighted":
        undefined &= (counts.tp + counts.fn) > 0
    return np.asarray(counts.classes[undefined])


def accuracy(counts: Counts, entry: MetricEntry) -> float:
    """Share of correct predictions (``nan`` without samples)."""
    return counts.correct / counts.total if counts.total else float("nan")


def precision(counts: Counts, entry: MetricEntry) -> float:
    """``tp / (tp + fp)``, averaged per ``entry.average`` (binary: ``nan`` without predicted positives)."""
    return _averaged("precision", counts, entry)


def recall(counts: Counts, entry: MetricEntry) -> float:
    """``tp / (tp + fn)``, averaged per ``entry.average`` (binary: ``nan`` without positives)."""
    return _averaged("recall", counts, entry)


def f1(counts: Counts, entry: MetricEntry) -> float:
    """``2 tp / (2 tp + fp + fn)``, averaged per ``entry.average`` (binary: ``nan`` without either)."""
    return _averaged("f1", counts, entry)


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
