"""Per-epoch bookkeeping shared by every backend: history rows, early stopping, divergence.

Backends call :meth:`EpochRecorder.end_epoch` once per epoch with the epoch's training
loss (sample-weighted mean of the batch losses, regularisation included, as Keras logs
it), the validation loss and the raw validation outputs. Because the decision logic lives
here, both backends stop at the same epoch for the same history.

Example:
    >>> rec = EpochRecorder(metric_names=[], task="regression", from_logits=False,
    ...                     y_val=None, epochs=3)
    >>> rec.end_epoch(0, train_loss=1.0, val_loss=1.1, val_outputs=None, seconds=0.1).stop
    False
    >>> rec.end_epoch(1, train_loss=float("nan"), val_loss=1.0, val_outputs=None, seconds=0.1).stop
    True
    >>> rec.diverged
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from duofit.common.metrics import compute_metrics
from duofit.common.spec import EarlyStoppingSpec, Spec

__all__ = ["EpochDecision", "EpochRecorder", "ProgressFn", "recorder_for"]

ProgressFn = Callable[[int, int, dict[str, float]], None]


@dataclass(frozen=True)
class EpochDecision:
    """What a backend does after an epoch: stop training, and/or snapshot best weights."""

    stop: bool
    is_best: bool


class EpochRecorder:
    """Collects history rows and decides early stopping / divergence.

    Args:
        metric_names: Metrics computed on the validation outputs each epoch.
        task: ``binary``, ``multiclass`` or ``regression``.
        from_logits: Whether model outputs are logits.
        y_val: Validation targets (class indices or values); ``None`` skips metrics.
        epochs: Planned number of epochs (for progress display).
        early_stopping: Early-stopping settings or ``None``.
        mode: ``min`` or ``max`` for the monitored value.
        progress: Optional callback ``(epoch, epochs, row)``.
    """

    def __init__(
        self,
        metric_names: Sequence[str],
        task: str,
        from_logits: bool,
        y_val: np.ndarray | None,
        epochs: int,
        early_stopping: EarlyStoppingSpec | None = None,
        mode: str = "min",
        progress: ProgressFn | None = None,
    ) -> None:
        self.metric_names = list(metric_names)
        self.task = task
        self.from_logits = from_logits
        self.y_val = y_val
        self.epochs = epochs
        self.early_stopping = early_stopping
        self.mode = mode
        self.progress = progress
        self.rows: list[dict[str, Any]] = []
        self.best: float = math.inf if mode == "min" else -math.inf
        self.best_epoch: int | None = None
        self.stopped_epoch: int | None = None
        self.wait = 0
        self.diverged = False
        self.message: str | None = None

    def _improved(self, value: float) -> bool:
        es = self.early_stopping
        delta = es.min_delta if es is not None else 0.0
        if not math.isfinite(value):
            return False
        # Keras EarlyStopping._is_improvement: monitor_op(current - min_delta, best) with the
        # delta's sign flipped for "min".
        if self.mode == "min":
            return value + delta < self.best
        return value - delta > self.best

    def end_epoch(
        self,
        epoch: int,
        train_loss: float,
        val_loss: float,
        val_outputs: np.ndarray | None,
        seconds: float,
    ) -> EpochDecision:
        """Record one epoch (0-based) and decide what happens next."""
        row: dict[str, Any] = {"epoch": epoch + 1, "loss": float(train_loss), "val_loss": float(val_loss)}
        if val_outputs is not None and self.y_val is not None and self.metric_names:
            vals = compute_metrics(self.metric_names, self.task, self.y_val, val_outputs, self.from_logits, fast=True)
            row.update({f"val_{k}": v for k, v in vals.items()})
        row["epoch_s"] = float(seconds)
        self.rows.append(row)
        if self.progress is not None:
            self.progress(epoch + 1, self.epochs, row)
        if not (math.isfinite(row["loss"]) and math.isfinite(row["val_loss"])):
            self.diverged = True
            self.stopped_epoch = epoch + 1
            last = next((r["loss"] for r in reversed(self.rows) if math.isfinite(r["loss"])), None)
            self.message = (
                f"training diverged at epoch {epoch + 1}: loss = {row['loss']}, val_loss = {row['val_loss']}"
                f" (last finite training loss: {last}). Lower optimizer.lr or set optimizer.clipnorm."
            )
            return EpochDecision(stop=True, is_best=False)
        es = self.early_stopping
        if es is None:
            return EpochDecision(stop=False, is_best=False)
        value = float(row.get(es.monitor, math.nan))
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch + 1, 0
            return EpochDecision(stop=False, is_best=True)
        self.wait += 1
        if self.wait >= es.patience and epoch > 0:  # Keras: never stops after the first epoch
            self.stopped_epoch = epoch + 1
            return EpochDecision(stop=True, is_best=False)
        return EpochDecision(stop=False, is_best=False)

    @property
    def restore_best(self) -> bool:
        """Whether the backend must load the best epoch's weights at the end."""
        es = self.early_stopping
        return bool(es is not None and es.restore_best and self.best_epoch is not None and not self.diverged)

    def frame(self) -> Any:
        """History as a pandas DataFrame, one row per completed epoch."""
        import pandas as pd

        return pd.DataFrame(self.rows)


def recorder_for(spec: Spec, y_val: np.ndarray, progress: ProgressFn | None = None) -> EpochRecorder:
    """The recorder a run of ``spec`` uses (metrics per the spec's ``train.history_metrics``)."""
    names = spec.metrics if spec.train.history_metrics else []
    return EpochRecorder(
        metric_names=names,
        task=spec.task,
        from_logits=bool(getattr(spec.loss, "from_logits", False)),
        y_val=y_val,
        epochs=spec.train.epochs,
        early_stopping=spec.train.early_stopping,
        mode=spec.monitor_mode(),
        progress=progress,
    )
