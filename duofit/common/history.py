"""Per-epoch bookkeeping shared by every backend: history rows, early stopping, divergence.

Training diverges when an epoch's training or validation loss is non-finite or above the
divergence limit (``train.divergence_threshold`` times the loss of a model that learned
nothing, see :func:`duofit.common.diagnostics.divergence_limit`): the recorder stops
training and names the first step whose loss crossed it, the same on every backend.

Backends call :meth:`EpochRecorder.end_epoch` once per epoch with the epoch's training
loss (sample-weighted mean of the batch losses, regularisation included, as Keras logs
it), the validation loss and the raw validation outputs. Because the decision logic lives
here, both backends stop at the same epoch for the same history. Each epoch end also hands
freed heap memory back to the system (:class:`~duofit.common.heap.HeapTrimmer`), so a run's
resident memory does not creep up with its epochs.

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

from duofit.common.heap import HeapTrimmer
from duofit.common.metrics import EpochMetrics
from duofit.common.monitor import Monitor
from duofit.common.schedules import LRSchedule
from duofit.common.spec import EarlyStoppingSpec, PlateauSchedule, Spec

__all__ = ["EpochDecision", "EpochRecorder", "ProgressFn", "recorder_for"]

ProgressFn = Callable[[int, int, dict[str, float]], None]
StepLossFn = Callable[[], np.ndarray]


@dataclass(frozen=True)
class EpochDecision:
    """What a backend does after an epoch.

    Attributes:
        stop: Stop training now.
        is_best: Snapshot the weights (early stopping's best so far).

    The learning rate for the next epoch is :attr:`EpochRecorder.lr`.
    """

    stop: bool
    is_best: bool


class EpochRecorder:
    """Collects history rows; decides early stopping, divergence and the next learning rate.

    Args:
        metric_names: Metrics computed on the validation outputs each epoch.
        task: ``binary``, ``multiclass`` or ``regression``.
        from_logits: Whether model outputs are logits.
        y_val: Validation targets (class indices or values); ``None`` skips metrics.
        epochs: Planned number of epochs (for progress display).
        early_stopping: Early-stopping settings or ``None``.
        mode: ``min`` or ``max`` for the early-stopping monitor.
        progress: Optional callback ``(epoch, epochs, row)``.
        schedule: Learning-rate schedule (default: constant ``lr`` of 0.001).
        steps_per_epoch: Batches per epoch (to name the step where training diverged).
        divergence_limit: A training or validation epoch loss above this stops training as
            diverged (default: only non-finite losses do).
        reference_loss: The loss of a model that learned nothing (quoted in the message).
    """

    def __init__(
        self,
        metric_names: Sequence[Any],
        task: str,
        from_logits: bool,
        y_val: np.ndarray | None,
        epochs: int,
        early_stopping: EarlyStoppingSpec | None = None,
        mode: str = "min",
        progress: ProgressFn | None = None,
        schedule: LRSchedule | None = None,
        steps_per_epoch: int = 1,
        divergence_limit: float = math.inf,
        reference_loss: float = math.nan,
    ) -> None:
        self.metric_names = list(metric_names)
        self._epoch_metrics: EpochMetrics | None = None
        self.task = task
        self.from_logits = from_logits
        self.y_val = y_val
        self.epochs = epochs
        self.early_stopping = early_stopping
        self.progress = progress
        self.schedule = schedule if schedule is not None else LRSchedule(1e-3, None)
        self.steps_per_epoch = steps_per_epoch
        self.divergence_limit = float(divergence_limit)
        self.reference_loss = float(reference_loss)
        self.rows: list[dict[str, Any]] = []
        self.monitor = Monitor(early_stopping.monitor, mode, early_stopping.min_delta) if early_stopping else None
        self.stopped_epoch: int | None = None
        self.diverged = False
        self.diverged_step: int | None = None
        self.message: str | None = None
        self._trim_heap = HeapTrimmer()  # freed memory back to the system between epochs

    @property
    def lr(self) -> float:
        """The learning rate of the coming epoch."""
        return self.schedule.lr

    @property
    def best_epoch(self) -> int | None:
        """Epoch (1-based) with the best monitored value, if early stopping is on."""
        return self.monitor.best_epoch if self.monitor is not None else None

    def _is_bad(self, value: float | np.ndarray) -> Any:
        """Non-finite or above the divergence limit (element-wise for arrays)."""
        return ~np.isfinite(value) | (np.asarray(value) > self.divergence_limit)

    def _why(self, row: dict[str, Any]) -> str:
        if math.isfinite(row["loss"]) and math.isfinite(row["val_loss"]):
            ratio = self.divergence_limit / self.reference_loss
            return (
                f"the loss passed {self.divergence_limit:.4g} = {ratio:g} x the loss of a model that learned "
                f"nothing ({self.reference_loss:.4g}; the factor is train.divergence_threshold)"
            )
        return "the loss is not finite"

    def _diverged(self, epoch: int, row: dict[str, Any], step_losses: StepLossFn | None) -> EpochDecision:
        self.diverged = True
        self.stopped_epoch = epoch + 1
        where, last = f"epoch {epoch + 1}", None
        losses = np.asarray(step_losses(), dtype=np.float64) if step_losses is not None else np.array([])
        bad = np.flatnonzero(self._is_bad(losses))
        if bad.size:
            i = int(bad[0])
            self.diverged_step = epoch * self.steps_per_epoch + i + 1
            where += f", step {self.diverged_step} (batch {i + 1} of {self.steps_per_epoch})"
            if i > 0:
                last = float(losses[i - 1])
        if last is None:
            good = (r["loss"] for r in reversed(self.rows[:-1]) if not self._is_bad(r["loss"]))
            last = next(good, None)
        self.message = (
            f"training diverged at {where}: {self._why(row)}. Epoch loss = {row['loss']:.4g}, "
            f"val_loss = {row['val_loss']:.4g}; last acceptable training loss: "
            f"{'none' if last is None else f'{last:.4g}'}. Lower optimizer.lr (now {row['lr']:g}) or set "
            "optimizer.clipnorm (e.g. 1.0)."
        )
        return EpochDecision(stop=True, is_best=False)

    def end_epoch(
        self,
        epoch: int,
        train_loss: float,
        val_loss: float,
        val_outputs: np.ndarray | None,
        seconds: float,
        grad_norm: float = math.nan,
        step_losses: StepLossFn | None = None,
        metrics: dict[str, float] | None = None,
    ) -> EpochDecision:
        """Record one epoch (0-based) and decide what happens next.

        Args:
            epoch: 0-based epoch index.
            train_loss: Sample-weighted mean of the epoch's batch losses.
            val_loss: Loss on the validation split.
            val_outputs: Raw validation outputs (for metrics).
            seconds: Wall time of the epoch.
            grad_norm: Global gradient norm (before clipping) at the epoch's first step.
            step_losses: Returns this epoch's per-step losses; called only if training diverged.
            metrics: Validation metrics the backend computed itself (``train.epoch_metrics =
                "native"``), ``{column: value}``; recorded as ``val_<column>`` instead of the
                shared metrics computed from ``val_outputs``.
        """
        row: dict[str, Any] = {"epoch": epoch + 1, "loss": float(train_loss), "val_loss": float(val_loss)}
        if metrics is not None:
            row.update({f"val_{k}": float(v) for k, v in metrics.items()})
        elif val_outputs is not None and self.y_val is not None and self.metric_names:
            if self._epoch_metrics is None:  # label-derived arrays made once per run
                self._epoch_metrics = EpochMetrics(self.metric_names, self.task, self.y_val, self.from_logits)
            vals = self._epoch_metrics(val_outputs)
            row.update({f"val_{k}": v for k, v in vals.items()})
        row.update(lr=self.lr, grad_norm=float(grad_norm), epoch_s=float(seconds))
        self.rows.append(row)
        if self.progress is not None:
            self.progress(epoch + 1, self.epochs, row)
        decision = self._decide(epoch, row, step_losses)
        self._trim_heap(force=decision.stop or epoch + 1 >= self.epochs)
        return decision

    def _decide(self, epoch: int, row: dict[str, Any], step_losses: StepLossFn | None) -> EpochDecision:
        """Divergence, the schedule's next learning rate, early stopping: what follows ``row``'s epoch."""
        if self._is_bad(row["loss"]) or self._is_bad(row["val_loss"]):
            return self._diverged(epoch, row, step_losses)
        self.schedule.end_epoch(epoch, row)  # sets the next epoch's lr (EpochRecorder.lr)
        if self.monitor is None or self.early_stopping is None:
            return EpochDecision(stop=False, is_best=False)
        if self.monitor.update(row):
            return EpochDecision(stop=False, is_best=True)
        if self.monitor.wait >= self.early_stopping.patience and epoch > 0:  # Keras: never after the first epoch
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


def recorder_for(
    spec: Spec,
    y_val: np.ndarray,
    progress: ProgressFn | None = None,
    steps_per_epoch: int = 1,
    y_train: np.ndarray | None = None,
    n_classes: int | None = None,
    w_train: np.ndarray | None = None,
) -> EpochRecorder:
    """The recorder a run of ``spec`` uses.

    Metrics per the spec's ``train.history_metrics``; the divergence limit from the training
    targets ``y_train`` (without them, only non-finite losses count as divergence). With
    per-sample weights ``w_train`` the training loss scales with their mean, and so does the limit
    (never below the unweighted one).
    """
    from duofit.common.diagnostics import divergence_limit, reference_loss

    limit, ref = math.inf, math.nan
    if y_train is not None and len(y_train):
        limit, ref = divergence_limit(spec, y_train, n_classes), reference_loss(spec, y_train, n_classes)
        if w_train is not None and len(w_train):
            limit *= max(1.0, float(np.mean(w_train)))
    names = spec.metric_entries if spec.train.history_metrics else []  # resolved once, not per epoch
    sched = spec.optimizer.schedule
    return EpochRecorder(
        metric_names=names,
        task=spec.task,
        from_logits=bool(getattr(spec.loss, "from_logits", False)),
        y_val=y_val,
        epochs=spec.train.epochs,
        early_stopping=spec.train.early_stopping,
        mode=spec.monitor_mode(),
        progress=progress,
        schedule=LRSchedule(
            spec.optimizer.lr, sched, spec.monitor_mode(sched) if isinstance(sched, PlateauSchedule) else "min"
        ),
        steps_per_epoch=steps_per_epoch,
        divergence_limit=limit,
        reference_loss=ref,
    )
