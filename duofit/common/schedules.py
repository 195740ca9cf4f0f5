"""Learning-rate schedules, computed once here for every backend (applied per epoch).

Each backend sets the optimizer's learning rate to :meth:`LRSchedule.lr` before every
epoch (torch: ``param_group["lr"]``; Keras: ``optimizer.learning_rate``), so both follow
the same numbers even where torch's and Keras' own schedulers differ.

Example:
    >>> from duofit.common.spec import StepSchedule
    >>> s = LRSchedule(0.1, StepSchedule(type="step", step_size=2, gamma=0.5), mode="min")
    >>> [round(s.lr_for(e), 4) for e in range(5)]
    [0.1, 0.1, 0.05, 0.05, 0.025]
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from duofit.common.monitor import Monitor
from duofit.common.spec import CosineSchedule, ExponentialSchedule, PlateauSchedule, ScheduleSpec, StepSchedule

__all__ = ["LRSchedule"]


class LRSchedule:
    """The learning rate of every epoch.

    Args:
        lr0: The optimizer's base learning rate.
        spec: The schedule spec, or ``None`` for a constant rate.
        mode: ``min``/``max`` for a plateau schedule's monitor.
    """

    def __init__(self, lr0: float, spec: ScheduleSpec | None, mode: str = "min") -> None:
        self.lr0 = float(lr0)
        self.spec = spec
        self.lr = self.lr0
        self._cooldown = 0
        self._monitor = Monitor(spec.monitor, mode, spec.min_delta) if isinstance(spec, PlateauSchedule) else None

    def lr_for(self, epoch: int) -> float:
        """Closed-form rate of epoch ``epoch`` (0-based); plateau: the current rate."""
        s = self.spec
        if isinstance(s, StepSchedule):
            return self.lr0 * s.gamma ** (epoch // s.step_size)
        if isinstance(s, ExponentialSchedule):
            return self.lr0 * s.gamma**epoch
        if isinstance(s, CosineSchedule):
            t = min(epoch, s.t_max)
            return s.eta_min + (self.lr0 - s.eta_min) * (1 + math.cos(math.pi * t / s.t_max)) / 2
        return self.lr

    def end_epoch(self, epoch: int, row: Mapping[str, float]) -> float:
        """Update after epoch ``epoch`` (0-based) and return the rate of the next epoch."""
        s = self.spec
        if isinstance(s, PlateauSchedule) and self._monitor is not None:
            improved = self._monitor.update(row)
            if self._cooldown > 0:
                self._cooldown -= 1
                self._monitor.wait = 0
            elif not improved and self._monitor.wait >= s.patience:
                self.lr = max(self.lr * s.factor, s.min_lr)
                self._cooldown = s.cooldown
                self._monitor.wait = 0
            return self.lr
        self.lr = self.lr_for(epoch + 1)
        return self.lr
