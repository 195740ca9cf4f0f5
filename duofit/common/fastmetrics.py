"""Per-epoch metrics in plain numpy: the same values as the sklearn reference, ~50x cheaper.

The history computes metrics after every epoch; sklearn's input validation costs a few
milliseconds per call, as much as a whole epoch of a small model. These closed forms
(confusion counts, Mann-Whitney ROC-AUC) are tested against :mod:`duofit.common.metrics`
to 1e-12 (``tests/common/test_metrics.py``); final test metrics always use sklearn.

Example:
    >>> import numpy as np
    >>> fast_metrics(["accuracy", "f1"], "binary", np.array([0, 1, 1]), np.array([0.2, 0.9, 0.4]))
    {'accuracy': 0.6666666666666666, 'f1': 0.6666666666666666}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from duofit.common.metric_options import MetricEntry, resolve_metrics
from duofit.common.metrics import compute_metrics, predicted_labels, probabilities

__all__ = ["EpochMetrics", "fast_metrics"]


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Divide, giving 0 where the denominator is 0 (sklearn's zero_division=0)."""
    out = np.zeros_like(num, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _auc_binary(positive: np.ndarray, score: np.ndarray) -> float:
    """Mann-Whitney U / (n_pos * n_neg) with average ranks for ties (= trapezoidal ROC-AUC)."""
    n_pos = int(np.count_nonzero(positive))
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    sorted_scores = score[order]
    if sorted_scores.size < 2 or bool((sorted_scores[1:] != sorted_scores[:-1]).all()):
        rank_sum = float(np.flatnonzero(positive[order]).sum()) + n_pos  # no ties: rank = position + 1
    else:
        _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
        avg_rank = first + (counts + 1) / 2.0  # 1-based average rank of each tie group
        ranks = np.empty(score.size)
        ranks[order] = np.repeat(avg_rank, counts)
        rank_sum = float(ranks[positive].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def _averaged(num: np.ndarray, den: np.ndarray, support: np.ndarray, average: str) -> float:
    """The sklearn averages of per-class ratios ``num / den`` (zero_division=0)."""
    if average == "micro":
        return float(_ratio(num.sum(keepdims=True), den.sum(keepdims=True))[0])
    if average == "weighted":
        return float(np.average(_ratio(num, den), weights=support)) if support.sum() > 0 else 0.0
    return float(_ratio(num, den).mean())  # binary (one class) and macro


def _classification(entries: Sequence[MetricEntry], task: str, y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    k = 2 if task == "binary" else proba.shape[1]
    counts: dict[float, tuple[np.ndarray, ...]] = {}  # per threshold: cm, tp, fp, fn
    out: dict[str, float] = {}
    for entry in entries:
        if entry.name == "roc_auc":
            out[entry.column] = _roc_auc(task, y, proba)
            continue
        if entry.threshold not in counts:
            labels = predicted_labels(task, proba, entry.threshold)
            cm = np.bincount(y * k + labels, minlength=k * k).reshape(k, k).astype(np.float64)
            tp = np.diag(cm)
            fp, fn = cm.sum(axis=0) - tp, cm.sum(axis=1) - tp
            if task == "binary":
                tp, fp, fn = tp[1:], fp[1:], fn[1:]  # sklearn average="binary": class 1 only
            else:
                present = (cm.sum(axis=0) + cm.sum(axis=1)) > 0  # sklearn: labels in y_true or y_pred
                tp, fp, fn = tp[present], fp[present], fn[present]
            counts[entry.threshold] = (cm, tp, fp, fn)
        cm, tp, fp, fn = counts[entry.threshold]
        average, support = entry.average or "macro", tp + fn
        if entry.name == "accuracy":
            out[entry.column] = float(np.trace(cm) / cm.sum())
        elif entry.name == "precision":
            out[entry.column] = _averaged(tp, tp + fp, support, average)
        elif entry.name == "recall":
            out[entry.column] = _averaged(tp, tp + fn, support, average)
        elif entry.name == "f1":
            out[entry.column] = _averaged(2 * tp, 2 * tp + fp + fn, support, average)
    return out


def _roc_auc(task: str, y: np.ndarray, proba: np.ndarray) -> float:
    if y.size == 0 or y.min() == y.max():
        return float("nan")
    if task == "binary":
        return _auc_binary(y == 1, proba)
    present = np.unique(y)
    p = proba
    if present.size < proba.shape[1]:  # as the reference: renormalise over the present classes
        p = proba[:, present] / proba[:, present].sum(axis=1, keepdims=True)
        y = np.searchsorted(present, y)
        if present.size == 2:  # as the reference: binary AUC of the second class's score
            return _auc_binary(y == 1, p[:, 1])
    return float(np.mean([_auc_binary(y == c, p[:, c]) for c in range(p.shape[1])]))


def _regression(entries: Sequence[MetricEntry], y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    err = pred - y
    mse_per = np.mean(err**2, axis=0)
    out: dict[str, float] = {}
    for entry in entries:
        name = entry.name
        if name == "mse":
            out[entry.column] = float(mse_per.mean())
        elif name == "rmse":
            out[entry.column] = float(np.sqrt(mse_per.mean()))
        elif name == "mae":
            out[entry.column] = float(np.mean(np.abs(err)))
        elif name == "r2":
            ss_res = (err**2).sum(axis=0)
            ss_tot = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
            # sklearn force_finite: constant target -> 1.0 if perfect else 0.0
            r2 = np.where(ss_tot != 0, 1 - _ratio(ss_res, ss_tot), np.where(ss_res == 0, 1.0, 0.0))
            out[entry.column] = float(r2.mean())
    return out


def fast_metrics(names: Sequence[str | Any], task: str, y_true: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Metrics from probabilities (classification) or predictions (regression).

    Args:
        names: Metric names, option tables or resolved
            :class:`~duofit.common.metric_options.MetricEntry` objects.
        task: ``binary``, ``multiclass`` or ``regression``.
        y_true: Class indices or regression targets.
        scores: Probabilities (``[n]`` binary, ``[n, k]`` multiclass) or predictions.

    Returns:
        ``{column: value}``, equal to :func:`duofit.common.metrics.compute_metrics` up to rounding.
    """
    entries = resolve_metrics(names, task)
    if task == "regression":
        pred = np.asarray(scores, dtype=np.float64).reshape(len(y_true), -1)
        return _regression(entries, np.asarray(y_true, dtype=np.float64).reshape(len(y_true), -1), pred)
    y = np.asarray(y_true, dtype=np.int64)
    return _classification(entries, task, y, np.asarray(scores, dtype=np.float64))


class EpochMetrics:
    """The per-epoch metrics of one run: validation labels fixed, their derived arrays made once.

    Called after every epoch with the validation outputs; binary tasks (the common case and the
    one where per-epoch Python overhead matters most, for small models) take a path of about a
    dozen numpy calls: confusion counts from one comparison per threshold, ROC-AUC from one
    argsort. Other tasks use :func:`duofit.common.metrics.compute_metrics` (``fast=True``).
    Values equal :func:`fast_metrics` (tested).

    Example:
        >>> em = EpochMetrics(["accuracy", "roc_auc"], "binary", np.array([0, 1, 1]), from_logits=False)
        >>> em(np.array([[0.2], [0.9], [0.4]]))
        {'accuracy': 0.6666666666666666, 'roc_auc': 1.0}
    """

    def __init__(self, names: Sequence[str | Any], task: str, y_true: np.ndarray, from_logits: bool) -> None:
        self.entries = resolve_metrics(names, task)
        self.task = task
        self.from_logits = from_logits
        self.y = np.asarray(y_true)
        self.binary = task == "binary"
        if self.binary:
            self.positive = self.y == 1
            self.n = int(self.y.size)
            self.n_pos = int(np.count_nonzero(self.positive))

    def __call__(self, outputs: np.ndarray) -> dict[str, float]:
        """``{column: value}`` for these validation outputs (raw model outputs)."""
        if not self.binary:
            return compute_metrics(self.entries, self.task, self.y, outputs, self.from_logits, fast=True)
        proba = probabilities("binary", outputs, self.from_logits)
        if not np.isfinite(proba).all():
            return compute_metrics(self.entries, self.task, self.y, outputs, self.from_logits, fast=True)
        out: dict[str, float] = {}
        counts: dict[float, tuple[int, int, int, int]] = {}
        for entry in self.entries:
            if entry.name == "roc_auc":
                both = 0 < self.n_pos < self.n
                out[entry.column] = _auc_binary(self.positive, proba) if both else float("nan")
                continue
            if entry.threshold not in counts:
                predicted = proba > entry.threshold
                tp = int(np.count_nonzero(predicted & self.positive))
                fp = int(np.count_nonzero(predicted)) - tp
                fn = self.n_pos - tp
                counts[entry.threshold] = (tp, fp, fn, self.n - tp - fp - fn)
            tp, fp, fn, tn = counts[entry.threshold]
            if entry.name == "accuracy":
                out[entry.column] = (tp + tn) / self.n if self.n else float("nan")
            elif entry.name == "precision":
                out[entry.column] = tp / (tp + fp) if tp + fp else 0.0
            elif entry.name == "recall":
                out[entry.column] = tp / (tp + fn) if tp + fn else 0.0
            elif entry.name == "f1":
                out[entry.column] = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
        return out
