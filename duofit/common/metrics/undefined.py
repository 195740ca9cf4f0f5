"""Metrics undefined on a split: reported as ``nan`` with the reason, never as 0.

A metric is undefined when its formula divides by zero on the data it is given: precision
when nothing is predicted positive, recall when the split holds no positive sample, ROC-AUC
when it holds one class, r2 when the target is constant. Reporting a 0 in its place would
state a score the model never earned (or lost), and averaging it over folds would drag the
mean down, so the value is ``nan`` and the reason is said once, with an
:class:`UndefinedMetricWarning` (the command line prints it as ``warning: ...``). The
per-epoch history may hold ``nan`` too; it warns nothing (it runs every epoch).

A multiclass macro or weighted average is defined while some class's score is not (the
precision of a class never predicted, the recall of a class absent from the split): that
class is left out of the average, never counted as 0 (sklearn's ``zero_division=np.nan``,
:mod:`~duofit.common.metrics.reference`), and one warning names the metric and the classes
left out (:func:`left_out_reasons`, :func:`left_out_message`). With every class left out the
average is ``nan``, said as above.

Example:
    >>> import numpy as np
    >>> from duofit.common.spec import resolve_metrics
    >>> entries = resolve_metrics(["accuracy", "roc_auc"], "binary")
    >>> reasons = undefined_reasons({"accuracy": 1.0, "roc_auc": float("nan")}, entries)
    >>> reasons
    {'roc_auc': 'the split holds one class only'}
    >>> undefined_message("roc_auc", reasons["roc_auc"], "test")
    'roc_auc is undefined on the test split: the split holds one class only; reported as NaN'
    >>> entries = resolve_metrics(["precision"], "multiclass")
    >>> y, labels = np.array([0, 1, 2, 2]), np.array([0, 1, 1, 1])   # class 2 is never predicted
    >>> print(left_out_reasons(y, labels, 3, {"precision": 0.67}, entries)["precision"])
    class 2 was never predicted, so its precision is undefined and left out of the macro average
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from duofit.common.errors import DuofitWarning
from duofit.common.metrics.fast import multiclass_counts, undefined_classes
from duofit.common.metrics.positive import MAX_CLASSES_SHOWN, ClassOrder
from duofit.common.spec import MetricEntry

__all__ = [
    "AVERAGE_REASON",
    "LEFT_OUT",
    "REASONS",
    "UndefinedMetricWarning",
    "left_out_message",
    "left_out_reasons",
    "undefined_message",
    "undefined_reasons",
    "warn_undefined",
]


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
# Why a multiclass average (macro, micro, weighted) is undefined: every class's score is, which
# takes a split without samples (some class is always predicted, and some class is in the split).
AVERAGE_REASON = "the split holds no samples: no class has a defined score"
# Why one class's score is undefined, so a multiclass average leaves it out (F1: listed for
# completeness; every class sklearn scores is in the split or predicted, so its F1 is defined).
LEFT_OUT: dict[str, str] = {
    "precision": "never predicted",
    "recall": "absent from the split",
    "f1": "neither in the split nor predicted",
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
        e.column: AVERAGE_REASON if _averaged(e) else REASONS[e.name].format(positive=_positive_text(e, order))
        for e in entries
        if math.isnan(values[e.column])
    }


def _averaged(entry: MetricEntry) -> bool:
    """Whether an entry is a multiclass average (its ``average`` is not ``None`` nor ``binary``)."""
    return entry.average not in (None, "binary")


def _class_names(classes: np.ndarray, order: ClassOrder | None) -> str:
    """``'setosa', 'virginica'`` (the labels, per ``order``) or ``2, 3`` (indices), at most a line's worth."""
    names = [repr(order.classes[c]) if order is not None else str(c) for c in classes[:MAX_CLASSES_SHOWN].tolist()]
    if len(classes) > MAX_CLASSES_SHOWN:
        names.append(f"... ({len(classes)} classes)")
    return ", ".join(names)


def left_out_reasons(
    y: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    values: Mapping[str, float],
    entries: Sequence[MetricEntry],
    order: ClassOrder | None = None,
) -> dict[str, str]:
    """``{column: which classes and why}`` for each defined multiclass average that left classes out.

    Args:
        y: Class indices of the split.
        labels: Predicted class indices (the argmax).
        n_classes: Number of classes (output units).
        values: ``{column: value}``; a ``nan`` average is :func:`undefined_reasons`' to explain.
        entries: The resolved entries of those columns.
        order: The run's class order, to name the classes by their labels.
    """
    counts = multiclass_counts(np.asarray(y, dtype=np.int64), np.asarray(labels, dtype=np.int64), n_classes)
    reasons = {}
    for e in entries:
        classes = undefined_classes(counts, e)
        if classes.size and not math.isnan(values[e.column]):
            one = classes.size == 1
            reasons[e.column] = (
                f"{'class' if one else 'classes'} {_class_names(classes, order)} {'was' if one else 'were'} "
                f"{LEFT_OUT[e.name]}, so {'its' if one else 'their'} {e.name} is undefined and left out "
                f"of the {e.average} average"
            )
    return reasons


def left_out_message(column: str, why: str, split: str = "test") -> str:
    """The warning's text: ``<column> on the <split> split: <why> (not counted as 0)``."""
    return f"{column} on the {split} split: {why} (not counted as 0)"


def undefined_message(column: str, why: str, split: str = "test") -> str:
    """The warning's text: ``<column> is undefined on the <split> split: <why>; reported as NaN``."""
    return f"{column} is undefined on the {split} split: {why}; reported as NaN"


def warn_undefined(
    reasons: Mapping[str, str],
    split: str = "test",
    prefix: str = "",
    stacklevel: int = 2,
    left_out: Mapping[str, str] | None = None,
) -> None:
    """One :class:`UndefinedMetricWarning` per undefined metric, and per average that left classes out.

    Args:
        reasons: ``{column: why}`` (:func:`undefined_reasons`).
        split: The split's name.
        prefix: Put before each message (e.g. ``"torch: "``).
        stacklevel: As :func:`warnings.warn`'s, counted from the caller of this function.
        left_out: ``{column: which classes and why}`` (:func:`left_out_reasons`).
    """
    messages = [undefined_message(column, why, split) for column, why in reasons.items()]
    messages += [left_out_message(column, why, split) for column, why in (left_out or {}).items()]
    for message in messages:
        warnings.warn(prefix + message, UndefinedMetricWarning, stacklevel=stacklevel + 1)
