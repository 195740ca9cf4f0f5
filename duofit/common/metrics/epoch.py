"""The fast path: every metric's numpy closed form, with the labels' derived arrays made once.

:class:`EpochMetrics` is what the history calls after every epoch (one call per epoch, so
its per-call Python overhead matters for small models): the validation labels are fixed for
a run, so ``y == 1`` and its count are made once; each call makes one prepared input per
kind (confusion counts per threshold, the ranking, the residuals) and applies each metric's
formula from the :data:`~duofit.common.metrics.registry.REGISTRY` to it. A binary metric
whose positive class is 0 (:func:`~duofit.common.metrics.registry.flips`) reads the other
label mask (made once too) and ``1 - p`` (made once per call, only when such a metric exists).
Undefined metrics are ``nan`` here, without a warning (it runs every epoch).
:func:`fast_metrics` is the one-call form on probabilities or predictions.

Example:
    >>> import numpy as np
    >>> fast_metrics(["accuracy", "f1"], "binary", np.array([0, 1, 1]), np.array([0.2, 0.9, 0.4]))
    {'accuracy': 0.6666666666666666, 'f1': 0.6666666666666666}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from duofit.common.metrics.fast import Counts, Ranking, Residuals, binary_counts, multiclass_counts
from duofit.common.metrics.outputs import predicted_labels, to_scores
from duofit.common.metrics.positive import ClassOrder, bind_positive
from duofit.common.metrics.registry import REGISTRY, flips
from duofit.common.spec import resolve_metrics

__all__ = ["EpochMetrics", "fast_metrics"]


class EpochMetrics:
    """The per-epoch metrics of one run: validation labels fixed, their derived arrays made once.

    Args:
        names: Metric names, option tables or resolved
            :class:`~duofit.common.spec.MetricEntry` objects.
        task: ``binary``, ``multiclass`` or ``regression``.
        y_true: Class indices or regression targets.
        from_logits: Whether the raw outputs passed to a call are logits.
        order: The run's class order (which class each binary metric scores); default:
            the entries' own ``positive`` (class 1 when unbound).

    Values equal :func:`duofit.common.metrics.compute_metrics`'s (the sklearn reference) to
    1e-12 (tested); non-finite outputs give ``nan`` for every metric, as the reference does.

    Example:
        >>> em = EpochMetrics(["accuracy", "roc_auc"], "binary", np.array([0, 1, 1]), from_logits=False)
        >>> em(np.array([[0.2], [0.9], [0.4]]))
        {'accuracy': 0.6666666666666666, 'roc_auc': 1.0}
    """

    def __init__(
        self, names: Sequence[Any], task: str, y_true: np.ndarray, from_logits: bool, order: ClassOrder | None = None
    ) -> None:
        self.entries = bind_positive(resolve_metrics(names, task), order)
        self.task = task
        self.from_logits = from_logits
        # (column, what the formula reads, the formula, entry, flipped): looked up once, not per epoch
        self._plan = [
            (e.column, REGISTRY[e.name].reads, REGISTRY[e.name].fast, e, flips(e, task)) for e in self.entries
        ]
        self._any_flip = any(plan[-1] for plan in self._plan)
        if task == "regression":
            self.y = np.asarray(y_true, dtype=np.float64).reshape(len(y_true), -1)
        else:
            self.y = np.asarray(y_true, dtype=np.int64)
        self.positive = self.y == 1 if task == "binary" else None
        self.n_pos = int(np.count_nonzero(self.positive)) if self.positive is not None else 0
        # class 0 as the positive class: its mask and count, for the flipped metrics
        flip = self.positive is not None and self._any_flip
        self.negative = ~self.positive if flip else None  # type: ignore[operator]
        self.y_flipped = 1 - self.y if flip else self.y
        self.n_neg = len(self.y) - self.n_pos

    def __call__(self, outputs: np.ndarray) -> dict[str, float]:
        """``{column: value}`` for these raw model outputs (validation outputs, in the history)."""
        s = to_scores(self.task, outputs, self.from_logits)
        if not np.isfinite(s).all():
            return {entry.column: float("nan") for entry in self.entries}
        return self.score(s)

    def score(self, s: np.ndarray) -> dict[str, float]:
        """``{column: value}`` from finite probabilities (``[n]`` binary, ``[n, k]``) or predictions."""
        residuals = Residuals(self.y, s.reshape(len(self.y), -1) - self.y) if self.task == "regression" else None
        s_flipped = 1.0 - s if self._any_flip else s  # P(class 0), for metrics scoring class 0
        counts: dict[tuple[float, bool], Counts] = {}
        out: dict[str, float] = {}
        for column, reads, formula, entry, flipped in self._plan:
            data: Any
            if reads == "labels":
                data = counts.get((entry.threshold, flipped))
                if data is None:
                    data = counts[entry.threshold, flipped] = self._counts(
                        s_flipped if flipped else s, entry.threshold, flipped
                    )
            elif reads == "probabilities":
                if flipped:
                    data = Ranking(self.y_flipped, s_flipped, self.negative, self.n_neg)
                else:
                    data = Ranking(self.y, s, self.positive, self.n_pos)
            else:
                data = residuals
            out[column] = formula(data, entry)
        return out

    def _counts(self, proba: np.ndarray, threshold: float, flipped: bool) -> Counts:
        if self.positive is not None:
            if flipped:
                return binary_counts(self.negative, proba > threshold, self.n_neg)  # type: ignore[arg-type]
            return binary_counts(self.positive, proba > threshold, self.n_pos)
        return multiclass_counts(self.y, predicted_labels(self.task, proba), proba.shape[1])


def fast_metrics(
    names: Sequence[Any], task: str, y_true: np.ndarray, scores: np.ndarray, order: ClassOrder | None = None
) -> dict[str, float]:
    """Metrics from finite probabilities (classification) or predictions (regression), in numpy.

    Args:
        names: Metric names, option tables or resolved
            :class:`~duofit.common.spec.MetricEntry` objects.
        task: ``binary``, ``multiclass`` or ``regression``.
        y_true: Class indices or regression targets.
        scores: Probabilities (``[n]`` binary, ``[n, k]`` multiclass) or predictions.
        order: The run's class order (which class each binary metric scores as positive).

    Returns:
        ``{column: value}``, equal to :func:`duofit.common.metrics.compute_metrics` up to rounding.
    """
    s = np.asarray(scores, dtype=np.float64)
    return EpochMetrics(names, task, y_true, from_logits=False, order=order).score(s)
