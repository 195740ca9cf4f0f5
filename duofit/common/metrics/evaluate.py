"""Final metrics: every metric's reference formula (sklearn) on raw model outputs.

Metric entries may carry options (see :mod:`duofit.common.spec.metrics`): a binary
``threshold`` for the thresholded-label metrics, a binary ``pos_label`` and a multiclass
``average``; results are keyed by column name (``f1_weighted``, ``precision_t0.3``; plain
names for default options). With the run's :class:`~duofit.common.metrics.positive.ClassOrder`
(``order``) a binary metric scores the class its ``pos_label`` (or the default rule) names;
without it, class 1. A metric undefined on the data is ``nan``, with an
:class:`~duofit.common.metrics.undefined.UndefinedMetricWarning` naming the reason; a
multiclass average that leaves out a class whose score is undefined warns too, naming it.

Example:
    >>> import numpy as np
    >>> out = np.array([[2.0], [-1.0], [0.5], [-3.0]])      # logits
    >>> y = np.array([1, 0, 0, 0])
    >>> compute_metrics(["accuracy", "roc_auc"], "binary", y, out, from_logits=True)
    {'accuracy': 0.75, 'roc_auc': 1.0}
    >>> compute_metrics([{"name": "accuracy", "threshold": 0.7}], "binary", y, out, from_logits=True)
    {'accuracy_t0.7': 1.0}
    >>> order = ClassOrder(("fraud", "legit"), positive=0, reason="the minority class")
    >>> compute_metrics(["recall"], "binary", y, out, from_logits=True, order=order)   # recall of 'fraud'
    {'recall': 0.6666666666666666}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from duofit.common.metrics.epoch import EpochMetrics
from duofit.common.metrics.outputs import predicted_labels, to_scores
from duofit.common.metrics.positive import ClassOrder, bind_positive
from duofit.common.metrics.registry import REGISTRY, flips
from duofit.common.metrics.undefined import left_out_reasons, undefined_reasons, warn_undefined
from duofit.common.spec import resolve_metrics

__all__ = ["Scores", "compute_metrics", "score_outputs"]


@dataclass(frozen=True)
class Scores:
    """Reference metrics of one split.

    Attributes:
        values: ``{column: value}``; ``nan`` where undefined.
        undefined: ``{column: why}`` for the metrics undefined on finite outputs (every
            metric is ``nan`` on non-finite outputs: the run diverged, which it reports).
        left_out: ``{column: which classes and why}`` for the multiclass averages (defined)
            that left out classes whose score is undefined.
    """

    values: dict[str, float]
    undefined: dict[str, str]
    left_out: dict[str, str] = field(default_factory=dict)


def score_outputs(
    names: Sequence[Any],
    task: str,
    y_true: np.ndarray,
    outputs: np.ndarray,
    from_logits: bool,
    *,
    order: ClassOrder | None = None,
) -> Scores:
    """The reference metrics and why any is undefined, without warning (see :func:`compute_metrics`).

    Raises:
        DataError: a ``pos_label`` that is not one of ``order``'s classes.
    """
    entries = bind_positive(resolve_metrics(names, task), order)
    s = to_scores(task, outputs, from_logits)
    if not np.isfinite(s).all():
        return Scores({entry.column: float("nan") for entry in entries}, {})
    y = np.asarray(y_true, dtype=np.float64).reshape(len(s), -1) if task == "regression" else np.asarray(y_true)
    values: dict[str, float] = {}
    for entry in entries:
        metric = REGISTRY[entry.name]
        y_e, s_e = (1 - y, 1.0 - s) if flips(entry, task) else (y, s)  # positive class 0: score it as class 1
        pred = predicted_labels(task, s_e, entry.threshold) if metric.reads == "labels" else s_e
        values[entry.column] = metric.reference(y_e, pred, entry, task)
    left_out = {}
    if task == "multiclass":
        left_out = left_out_reasons(y, predicted_labels(task, s), s.shape[1], values, entries, order)
    return Scores(values, undefined_reasons(values, entries, order), left_out)


def compute_metrics(
    names: Sequence[Any],
    task: str,
    y_true: np.ndarray,
    outputs: np.ndarray,
    from_logits: bool,
    fast: bool = False,
    *,
    order: ClassOrder | None = None,
    split: str = "test",
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
            the same values, for the per-epoch history; no warnings) instead of calling sklearn.
        order: The run's class order: which class each binary metric scores as positive
            (default: class 1).
        split: The split's name in warnings.

    Returns:
        ``{column: value}`` (the plain name for default options); a metric that is undefined
        (e.g. ROC-AUC on one class, or any metric on non-finite outputs) is ``nan``, and an
        ``UndefinedMetricWarning`` says why (finite outputs); so does one for each multiclass
        average that left out classes whose score is undefined, naming them.

    Raises:
        DataError: a ``pos_label`` that is not one of ``order``'s classes.
    """
    if fast:
        return EpochMetrics(names, task, y_true, from_logits, order=order)(outputs)
    scores = score_outputs(names, task, y_true, outputs, from_logits, order=order)
    warn_undefined(scores.undefined, split, left_out=scores.left_out)
    return scores.values
