"""The loop every backend's ``native_metrics`` runs: its own metric objects fed batch by batch.

The backends (``duofit.backends.<name>.metrics``) supply how to make, update and read their
metric objects; the batching, and the columns of the result, are the same for all.

Example:
    >>> import numpy as np
    >>> class Mean:                                           # a stand-in for a framework's metric
    ...     def __init__(self): self.total, self.n = 0.0, 0
    >>> def update(m, y, out): m.total, m.n = m.total + float(abs(out[:, 0] - y).sum()), m.n + len(y)
    >>> feed_batches(["mae"], "regression", np.array([1.0, 2.0, 3.0]), np.array([[1.0], [2.0], [5.0]]),
    ...              make=lambda entry, k: Mean(), update=update,
    ...              collect=lambda ms: {c: m.total / m.n for c, m in ms.items()}, batch_size=2)
    {'mae': 0.6666666666666666}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from duofit.common.spec import MetricEntry, resolve_metrics

__all__ = ["feed_batches"]

M = TypeVar("M")


def feed_batches(
    names: Sequence[Any],
    task: str,
    y_true: Any,
    outputs: Any,
    *,
    make: Callable[[MetricEntry, int], M],
    update: Callable[[M, Any, Any], None],
    collect: Callable[[dict[str, M]], dict[str, float]],
    batch_size: int,
) -> dict[str, float]:
    """Make one metric object per entry, feed it ``outputs`` in batches, and read the results.

    Args:
        names: Metric names, option tables or resolved entries (as
            :func:`~duofit.common.metrics.compute_metrics`).
        task: ``binary``, ``multiclass`` or ``regression``.
        y_true: Class indices or regression targets (an array of the backend's kind).
        outputs: Raw model outputs, ``[n, ...]`` (an array of the backend's kind).
        make: ``(entry, n_classes) -> metric object``.
        update: ``(metric, y_batch, outputs_batch)``: feed one batch.
        collect: ``{column: metric} -> {column: value}``.
        batch_size: Samples per ``update`` call; any size gives the same values (up to
            the backend's rounding).

    Returns:
        ``{column: value}``, the same keys as :func:`~duofit.common.metrics.compute_metrics`.
    """
    entries = resolve_metrics(names, task)
    k = outputs.shape[1] if task == "multiclass" else 2
    metrics = {e.column: make(e, k) for e in entries}
    for start in range(0, outputs.shape[0], batch_size):
        for m in metrics.values():
            update(m, y_true[start : start + batch_size], outputs[start : start + batch_size])
    return collect(metrics)
