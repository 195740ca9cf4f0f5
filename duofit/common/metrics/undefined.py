"""Metrics undefined on a split: reported as ``nan`` with the reason, never as 0.

A metric is undefined when its formula divides by zero on the data it is given: precision
when nothing is predicted positive, recall when the split holds no positive sample, ROC-AUC
when it holds one class, r2 when the target is constant. Reporting a 0 in its place would
state a score the model never earned (or lost), and averaging it over folds would drag the
mean down, so the value is ``nan`` and the reason is said once, with an
:class:`UndefinedMetricWarning` (the command line prints it as ``warning: ...``). The
per-epoch history may hold ``nan`` too; it warns nothing (it runs every epoch).

Example:
    >>> from duofit.common.spec import resolve_metrics
    >>> entries = resolve_metrics(["accuracy", "roc_auc"], "binary")
    >>> reasons = undefined_reasons({"accuracy": 1.0, "roc_auc": float("nan")}, entries)
    >>> reasons
    {'roc_auc': 'the split holds one class only'}
    >>> undefined_message("roc_auc", reasons["roc_auc"], "test")
    'roc_auc is undefined on the test split: the split holds one class only; reported as NaN'
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

from duofit.common.errors import DuofitWarning
from duofit.common.metrics.positive import ClassOrder
from duofit.common.spec import MetricEntry

__all__ = ["REASONS", "UndefinedMetricWarning", "undefined_message", "undefined_reasons", "warn_undefined"]


class UndefinedMetricWarning(DuofitWarning):
    """A metric is undefined on a split (reported as ``nan``); the message names the metric and why."""


# Why each metric can be undefined on finite outputs ({positive}: " ('fraud')", the positive class).
REASONS: dict[str, str] = {
    "accuracy": "the split holds no samples",
    "precision": "no sample was predicted positive{positive}",
    "recall": "the split holds no positive sample{positive}",
    "f1": "the split holds no positive sample{positive} and none was predicted positive",
    "roc_auc": "the split holds one class only",
    "mse": "the split holds no samples",
    "rmse": "the split holds no samples",
    "mae": "the split holds no samples",
    "r2": "the target is constant on the split (r2 divides by its variance)",
}


def _positive_text(entry: MetricEntry, order: ClassOrder | None) -> str:
    if order is None or entry.positive is None:
        return ""
    return f" ({order.classes[entry.positive]!r})"


def undefined_reasons(
    values: Mapping[str, float], entries: Sequence[MetricEntry], order: ClassOrder | None = None
) -> dict[str, str]:
    """``{column: why}`` for each metric whose value is ``nan`` (computed on finite outputs).

    Args:
        values: ``{column: value}`` (:func:`~duofit.common.metrics.compute_metrics`).
        entries: The resolved (and bound) entries of those columns.
        order: The run's class order, to name the positive class.
    """
    return {
        e.column: REASONS[e.name].format(positive=_positive_text(e, order))
        for e in entries
        if math.isnan(values[e.column])
    }


def undefined_message(column: str, why: str, split: str = "test") -> str:
    """The warning's text: ``<column> is undefined on the <split> split: <why>; reported as NaN``."""
    return f"{column} is undefined on the {split} split: {why}; reported as NaN"


def warn_undefined(reasons: Mapping[str, str], split: str = "test", prefix: str = "", stacklevel: int = 2) -> None:
    """One :class:`UndefinedMetricWarning` per undefined metric.

    Args:
        reasons: ``{column: why}`` (:func:`undefined_reasons`).
        split: The split's name.
        prefix: Put before each message (e.g. ``"torch: "``).
        stacklevel: As :func:`warnings.warn`'s, counted from the caller of this function.
    """
    for column, why in reasons.items():
        warnings.warn(prefix + undefined_message(column, why, split), UndefinedMetricWarning, stacklevel=stacklevel + 1)
