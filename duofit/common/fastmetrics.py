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

import numpy as np

from duofit.common.metrics import predicted_labels

__all__ = ["fast_metrics"]


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Divide, giving 0 where the denominator is 0 (sklearn's zero_division=0)."""
    out = np.zeros_like(num, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _auc_binary(positive: np.ndarray, score: np.ndarray) -> float:
    """Mann-Whitney U / (n_pos * n_neg) with average ranks for ties (= trapezoidal ROC-AUC)."""
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    sorted_scores = score[order]
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg_rank = first + (counts + 1) / 2.0  # 1-based average rank of each tie group
    ranks = np.empty(score.size)
    ranks[order] = np.repeat(avg_rank, counts)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _classification(names: Sequence[str], task: str, y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    labels = predicted_labels(task, proba)
    k = 2 if task == "binary" else proba.shape[1]
    cm = np.bincount(y * k + labels, minlength=k * k).reshape(k, k).astype(np.float64)
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    if task == "binary":
        tp, fp, fn = tp[1:], fp[1:], fn[1:]  # sklearn average="binary": class 1 only
    else:
        present = (cm.sum(axis=0) + cm.sum(axis=1)) > 0  # sklearn: labels in y_true or y_pred
        tp, fp, fn = tp[present], fp[present], fn[present]
    out: dict[str, float] = {}
    for name in names:
        if name == "accuracy":
            out[name] = float(np.trace(cm) / cm.sum())
        elif name == "precision":
            out[name] = float(_ratio(tp, tp + fp).mean())
        elif name == "recall":
            out[name] = float(_ratio(tp, tp + fn).mean())
        elif name == "f1":
            out[name] = float(_ratio(2 * tp, 2 * tp + fp + fn).mean())
        elif name == "roc_auc":
            out[name] = _roc_auc(task, y, proba)
    return out


def _roc_auc(task: str, y: np.ndarray, proba: np.ndarray) -> float:
    if np.unique(y).size < 2:
        return float("nan")
    if task == "binary":
        return _auc_binary(y == 1, proba)
    present = np.unique(y)
    p = proba
    if present.size < proba.shape[1]:  # as the reference: renormalise over the present classes
        p = proba[:, present] / proba[:, present].sum(axis=1, keepdims=True)
        y = np.searchsorted(present, y)
    return float(np.mean([_auc_binary(y == c, p[:, c]) for c in range(p.shape[1])]))


def _regression(names: Sequence[str], y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    err = pred - y
    mse_per = np.mean(err**2, axis=0)
    out: dict[str, float] = {}
    for name in names:
        if name == "mse":
            out[name] = float(mse_per.mean())
        elif name == "rmse":
            out[name] = float(np.sqrt(mse_per.mean()))
        elif name == "mae":
            out[name] = float(np.mean(np.abs(err)))
        elif name == "r2":
            ss_res = (err**2).sum(axis=0)
            ss_tot = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
            # sklearn force_finite: constant target -> 1.0 if perfect else 0.0
            r2 = np.where(ss_tot != 0, 1 - _ratio(ss_res, ss_tot), np.where(ss_res == 0, 1.0, 0.0))
            out[name] = float(r2.mean())
    return out


def fast_metrics(names: Sequence[str], task: str, y_true: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Metrics from probabilities (classification) or predictions (regression).

    Args:
        names: Metric names.
        task: ``binary``, ``multiclass`` or ``regression``.
        y_true: Class indices or regression targets.
        scores: Probabilities (``[n]`` binary, ``[n, k]`` multiclass) or predictions.

    Returns:
        ``{name: value}``, equal to :func:`duofit.common.metrics.compute_metrics` up to rounding.
    """
    if task == "regression":
        pred = np.asarray(scores, dtype=np.float64).reshape(len(y_true), -1)
        return _regression(names, np.asarray(y_true, dtype=np.float64).reshape(len(y_true), -1), pred)
    return _classification(names, task, np.asarray(y_true, dtype=np.int64), np.asarray(scores, dtype=np.float64))
