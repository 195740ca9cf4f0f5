"""The ``optimizer`` section: optimizers and their per-epoch learning-rate schedules.

Example:
    >>> SGDOptimizer(type="sgd", momentum=0.9).lr
    0.01
    >>> StepSchedule(type="step", step_size=5).gamma
    0.1
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, field_validator, model_validator

from duofit.common.spec.base import (
    EpochCount,
    Epochs,
    FieldProblem,
    Fraction,
    NonNegFloat,
    PositiveFloat,
    SpecModel,
    UnitFloat,
)
from duofit.common.spec.vocab import check_monitor

__all__ = [
    "AdamOptimizer",
    "AdamWOptimizer",
    "CosineSchedule",
    "ExponentialSchedule",
    "OptimizerSpec",
    "PlateauSchedule",
    "RMSpropOptimizer",
    "SGDOptimizer",
    "ScheduleSpec",
    "StepSchedule",
]

LearningRate = Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)]


# --------------------------------------------------------------------------- schedules
class StepSchedule(SpecModel):
    """lr = lr0 * gamma ** (epoch // step_size) (torch StepLR, stepped once per epoch)."""

    type: Literal["step"]
    step_size: Epochs
    gamma: Fraction = 0.1


class ExponentialSchedule(SpecModel):
    """lr = lr0 * gamma ** epoch (torch ExponentialLR)."""

    type: Literal["exponential"]
    gamma: Fraction


class CosineSchedule(SpecModel):
    """lr = eta_min + (lr0 - eta_min) * (1 + cos(pi * min(epoch, t_max) / t_max)) / 2.

    torch's CosineAnnealingLR closed form up to ``t_max``; duofit then holds ``eta_min``
    (torch would climb back up: a restart is rarely what a user wants by default).
    """

    type: Literal["cosine"]
    t_max: Epochs
    eta_min: NonNegFloat = 0.0


class PlateauSchedule(SpecModel):
    """Reduce lr by ``factor`` after ``patience`` epochs without improvement of ``monitor``.

    Improvement means better by more than ``min_delta``; after a reduction wait ``cooldown``
    epochs; never below ``min_lr``. One implementation for both backends (torch's and
    Keras' ReduceLROnPlateau differ in their threshold rules).
    """

    type: Literal["plateau"]
    monitor: str = "val_loss"
    mode: Literal["auto", "min", "max"] = "auto"
    factor: Fraction = 0.1
    patience: EpochCount = 10
    min_delta: NonNegFloat = 0.0
    cooldown: EpochCount = 0
    min_lr: NonNegFloat = 0.0

    @field_validator("monitor")
    @classmethod
    def _monitor_name(cls, value: str) -> str:
        return check_monitor(value)


ScheduleSpec = Annotated[
    Union[StepSchedule, ExponentialSchedule, CosineSchedule, PlateauSchedule], Field(discriminator="type")
]


# --------------------------------------------------------------------------- optimizers
class _OptimizerBase(SpecModel):
    lr: LearningRate = 0.001
    weight_decay: NonNegFloat = 0.0
    decay_kind: Literal["l2", "decoupled"] = Field(
        default="l2",
        description=(
            "'l2': g <- g + weight_decay * w before the update (torch `weight_decay`); "
            "'decoupled': w <- w - lr * weight_decay * w (AdamW, Keras `weight_decay`)."
        ),
    )
    clipnorm: PositiveFloat | None = Field(
        default=None, description="Clip the global gradient norm (torch clip_grad_norm_)."
    )
    clipvalue: PositiveFloat | None = Field(default=None, description="Clip each gradient element.")
    schedule: ScheduleSpec | None = Field(default=None, description="Learning-rate schedule, applied per epoch.")

    @model_validator(mode="after")
    def _one_clip(self) -> _OptimizerBase:
        if self.clipnorm is not None and self.clipvalue is not None:
            raise FieldProblem("clipvalue", "set clipnorm or clipvalue, not both (Keras accepts only one)")
        return self


class SGDOptimizer(_OptimizerBase):
    """SGD with optional (Nesterov) momentum.

    torch (v = m v + g; w -= lr v) and Keras (v = m v - lr g; w += v) agree exactly
    while the learning rate is constant.
    """

    type: Literal["sgd"]
    lr: LearningRate = 0.01
    momentum: UnitFloat = 0.0
    nesterov: bool = False

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> SGDOptimizer:
        if self.nesterov and self.momentum == 0:
            raise FieldProblem("nesterov", "nesterov = true needs momentum > 0 (e.g. momentum = 0.9)")
        return self


class _AdamFamily(_OptimizerBase):
    """Adam's moment estimates, shared by ``adam`` and ``adamw`` (each subclass fixes ``type``)."""

    type: Literal["adam", "adamw"]
    beta1: Fraction = 0.9
    beta2: Fraction = 0.999
    epsilon: PositiveFloat = 1e-8
    amsgrad: bool = False


class AdamOptimizer(_AdamFamily):
    """Adam (Kingma & Ba). ``epsilon`` is added to sqrt(v_hat) as in the paper/torch."""

    type: Literal["adam"]


class AdamWOptimizer(_AdamFamily):
    """Adam with decoupled weight decay (Loshchilov & Hutter)."""

    type: Literal["adamw"]
    weight_decay: NonNegFloat = 0.01
    decay_kind: Literal["decoupled"] = Field(
        default="decoupled",
        description="AdamW is decoupled by definition; use type = 'adam' for coupled L2.",
    )


class RMSpropOptimizer(_OptimizerBase):
    """RMSprop. ``rho`` is the moving-average factor (torch calls it ``alpha``)."""

    type: Literal["rmsprop"]
    rho: Fraction = 0.9
    momentum: UnitFloat = 0.0
    centered: bool = False
    epsilon: PositiveFloat = 1e-7


OptimizerSpec = Annotated[
    Union[SGDOptimizer, AdamOptimizer, AdamWOptimizer, RMSpropOptimizer],
    Field(discriminator="type"),
]
