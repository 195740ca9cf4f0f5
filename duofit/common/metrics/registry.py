"""The metric registry: every metric's name, what it reads, and its formulas, in one table.

The spec vocabulary (:data:`duofit.common.spec.METRICS`) says which metrics exist, their
task and whether higher is better; this table adds how each one is computed: the sklearn
reference and the numpy closed form. The per-backend native metrics
(``duofit.backends.<name>.metrics``) key their tables by the same names.

Every formula is written for class 1 of a binary task. A metric that scores class 0 as
positive (``pos_label``, or the minority-class default: :mod:`~duofit.common.metrics.positive`)
reads ``(1 - y, 1 - p)`` instead: :func:`flips` is that one rule, which the reference, the
fast path and every backend's native metrics apply.

Example:
    >>> REGISTRY["f1"].reads, REGISTRY["f1"].options, REGISTRY["f1"].higher_is_better
    ('labels', ('threshold', 'average', 'pos_label'), True)
    >>> REGISTRY["mae"].task, REGISTRY["mae"].higher_is_better
    ('regression', False)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from duofit.common.metrics import fast, reference
from duofit.common.metrics.fast import FastFn
from duofit.common.metrics.reference import ReferenceFn
from duofit.common.spec import METRICS, MetricEntry, MetricName
from duofit.common.spec.vocab import MetricTask

__all__ = ["REGISTRY", "MetricDef", "Reads", "flips"]

# What a metric's formulas read: class labels (at the entry's threshold, or the argmax),
# class probabilities, or regression predictions.
Reads = Literal["labels", "probabilities", "predictions"]


@dataclass(frozen=True)
class MetricDef:
    """One metric: what it reads and its formula in the reference and the fast path.

    Attributes:
        name: Metric name, a key of the spec vocabulary.
        reads: ``labels``, ``probabilities`` or ``predictions``.
        reference: The sklearn formula, ``(y, pred, entry, task) -> float``
            (:mod:`duofit.common.metrics.reference`).
        fast: The numpy closed form of the prepared input that ``reads`` names
            (:mod:`duofit.common.metrics.fast`).
    """

    name: MetricName
    reads: Reads
    reference: ReferenceFn
    fast: FastFn

    @property
    def task(self) -> MetricTask:
        """``classification`` or ``regression`` (from the spec vocabulary)."""
        return METRICS[self.name].task

    @property
    def higher_is_better(self) -> bool:
        """Whether larger values are better (from the spec vocabulary; the tuning direction follows it)."""
        return METRICS[self.name].higher_is_better

    @property
    def options(self) -> tuple[str, ...]:
        """The entry options the metric accepts (vocabulary; ``threshold`` and ``pos_label``: binary tasks only)."""
        info = METRICS[self.name]
        classes = info.task == "classification"
        return ("threshold",) * info.thresholded + ("average",) * info.averaged + ("pos_label",) * classes


_FORMULAS: dict[str, tuple[Reads, ReferenceFn, FastFn]] = {
    "accuracy": ("labels", reference.accuracy, fast.accuracy),
    "precision": ("labels", reference.precision, fast.precision),
    "recall": ("labels", reference.recall, fast.recall),
    "f1": ("labels", reference.f1, fast.f1),
    "roc_auc": ("probabilities", reference.roc_auc, fast.roc_auc),
    "mse": ("predictions", reference.mse, fast.mse),
    "rmse": ("predictions", reference.rmse, fast.rmse),
    "mae": ("predictions", reference.mae, fast.mae),
    "r2": ("predictions", reference.r2, fast.r2),
}

# In the vocabulary's order; a vocabulary name without formulas fails here, at import.
REGISTRY: dict[str, MetricDef] = {name: MetricDef(name, *_FORMULAS[name]) for name in METRICS}


def flips(entry: MetricEntry, task: str) -> bool:
    """Whether a metric reads ``(1 - y, 1 - p)``: a binary task whose positive class is index 0.

    Raises:
        ValueError: the entry has a ``pos_label`` not yet bound to the data's classes
            (:func:`duofit.common.metrics.bind_positive`): it would silently score class 1.

    Example:
        >>> flips(MetricEntry("f1", "f1", positive=0), "binary"), flips(MetricEntry("f1", "f1"), "binary")
        (True, False)
    """
    if task != "binary":
        return False
    if entry.positive is None and entry.pos_label is not None:
        raise ValueError(
            f"metric {entry.column!r}: pos_label {entry.pos_label!r} is not bound to the data's classes; "
            "pass the run's class order (duofit.common.metrics.bind_positive)"
        )
    return entry.positive == 0
