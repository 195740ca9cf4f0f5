"""Tracking the best value of a monitored history column (early stopping, plateau schedules).

Keras' rule (``EarlyStopping._is_improvement``): a value improves on the best one when it
is better by more than ``min_delta``; non-finite values never improve.

Example:
    >>> m = Monitor("val_loss", mode="min", min_delta=0.0)
    >>> [m.update({"val_loss": v}) for v in (1.0, 0.9, 0.95)]
    [True, True, False]
    >>> m.wait
    1
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["Monitor"]


class Monitor:
    """Best value, its epoch and the number of epochs since it (``wait``).

    Args:
        column: History column, e.g. ``val_loss``.
        mode: ``min`` or ``max``.
        min_delta: Minimum change that counts as an improvement.
    """

    def __init__(self, column: str, mode: str, min_delta: float) -> None:
        self.column = column
        self.mode = mode
        self.min_delta = float(min_delta)
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch: int | None = None
        self.wait = 0

    def improved(self, value: float) -> bool:
        """Whether ``value`` beats the best by more than ``min_delta``."""
        if not math.isfinite(value):
            return False
        if self.mode == "min":
            return value + self.min_delta < self.best
        return value - self.min_delta > self.best

    def update(self, row: Mapping[str, float]) -> bool:
        """Feed one history row; returns True when it is the new best."""
        value = float(row.get(self.column, math.nan))
        if self.improved(value):
            self.best, self.best_epoch, self.wait = value, int(row.get("epoch", 0)) or None, 0
            return True
        self.wait += 1
        return False
