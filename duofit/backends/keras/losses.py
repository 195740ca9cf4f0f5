"""Spec losses -> Keras loss objects (``sum_over_batch_size`` reduction = batch mean).

Each loss gets the run's dtype: Keras casts predictions to the loss' dtype, which
defaults to ``floatx`` (float32) even for a float64 model.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np

from duofit.common.errors import unsupported
from duofit.common.spec import BCELoss, CCELoss, HuberLoss, MAELoss, MSELoss

__all__ = ["LOSSES", "loss_targets", "make_loss"]


def _cce(spec: CCELoss, dtype: str) -> keras.losses.Loss:
    if spec.labels == "integer":
        return keras.losses.SparseCategoricalCrossentropy(from_logits=spec.from_logits, dtype=dtype)
    return keras.losses.CategoricalCrossentropy(from_logits=spec.from_logits, dtype=dtype)


LOSSES: dict[type, Callable[..., keras.losses.Loss]] = {
    MSELoss: lambda spec, dtype: keras.losses.MeanSquaredError(dtype=dtype),
    MAELoss: lambda spec, dtype: keras.losses.MeanAbsoluteError(dtype=dtype),
    HuberLoss: lambda spec, dtype: keras.losses.Huber(delta=spec.delta, dtype=dtype),
    BCELoss: lambda spec, dtype: keras.losses.BinaryCrossentropy(from_logits=spec.from_logits, dtype=dtype),
    CCELoss: _cce,
}


def make_loss(spec: object, dtype: str) -> keras.losses.Loss:
    """The Keras loss for a loss spec."""
    factory = LOSSES.get(type(spec))
    if factory is None:
        raise unsupported("keras", "loss", spec, LOSSES)
    return factory(spec, dtype)


def loss_targets(t: np.ndarray, dtype: str) -> np.ndarray:
    """Targets as the loss consumes them: class indices stay integer, the rest takes ``dtype``."""
    return t if t.dtype.kind in "iu" else t.astype(dtype)
