"""Final metrics: every metric's reference formula (sklearn) on raw model outputs.

Metric entries may carry options (see :mod:`duofit.common.spec.metrics`): a binary
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

from collections.abc import Sequence
from typing import Any

import numpy as np

from duofit.common.metrics.epoch import EpochMetrics
from duofit.common.metrics.outputs import predicted_labels, to_scores
from duofit.common.metrics.registry import REGISTRY
from duofit.common.spec import resolve_metrics

__all__ = ["compute_metrics"]


def compute_metrics(
    names: Sequence[Any],
    task: str,
    y_true: np.ndarray,
    outputs: np.ndarray,
    from_logits: bool,
    fast: bool = False,
) -> dict[str, float]:
    """Compute metrics on raw model outputs with the reference (sklearn) formulas.

    Args:
        names: The spec's metric entries: names, option tables (``spec.metrics``) or resolved
            :class:`~duofit.common.spec.MetricEntry` objects.
        task: ``binary``, ``multiclass`` or ``regression``.
        y_true: Class indices or regression targets.
        outputs: Raw model outputs (logits or probabilities, per ``from_logits``).
        from_logits: Whether ``outputs`` are logits.
        fast: Use the numpy closed forms (:class:`~duofit.common.metrics.epoch.EpochMetrics`,
            the same values, for the per-epoch history) instead of calling sklearn.

    Returns:
        ``{column: value}`` (the plain name for default options); a metric that is undefined
        (e.g. ROC-AUC on one class, or any metric on non-finite outputs) is ``nan``.
    """
    entries = resolve_metrics(names, task)
    if fast:
        return EpochMetrics(entries, task, y_true, from_logits)(outputs)
    s = to_scores(task, outputs, from_logits)
    if not np.isfinite(s).all():
        return {entry.column: float("nan") for entry in entries}
    y = np.asarray(y_true, dtype=np.float64).reshape(len(s), -1) if task == "regression" else np.asarray(y_true)
    out: dict[str, float] = {}
    for entry in entries:
        metric = REGISTRY[entry.name]
        pred = predicted_labels(task, s, entry.threshold) if metric.reads == "labels" else s
        out[entry.column] = metric.reference(y, pred, entry, task)
    return out
