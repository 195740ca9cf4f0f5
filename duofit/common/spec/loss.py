"""The ``loss`` section: one class per loss ``type``, and their discriminated union.

Which task each loss trains for is :data:`~duofit.common.spec.vocab.LOSS_TASKS`.

Example:
    >>> HuberLoss(type="huber").delta, CCELoss(type="categorical_crossentropy").labels
    (1.0, 'integer')
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field

from duofit.common.spec.base import PositiveFloat, SpecModel

__all__ = ["BCELoss", "CCELoss", "HuberLoss", "LossSpec", "MAELoss", "MSELoss"]


class MSELoss(SpecModel):
    """Mean squared error, mean over all outputs and samples."""

    type: Literal["mse"]


class MAELoss(SpecModel):
    """Mean absolute error."""

    type: Literal["mae"]


class HuberLoss(SpecModel):
    """Huber loss: 0.5 x^2 for |x| <= delta, else delta (|x| - 0.5 delta)."""

    type: Literal["huber"]
    delta: PositiveFloat = 1.0


class BCELoss(SpecModel):
    """Binary cross-entropy on one output unit.

    With ``from_logits = false`` the model must output probabilities; they are
    clipped to [1e-7, 1 - 1e-7] on every backend (Keras' formula).
    """

    type: Literal["binary_crossentropy"]
    from_logits: bool = False


class CCELoss(SpecModel):
    """Categorical cross-entropy over ``n_classes`` output units.

    ``labels = "integer"`` trains on class indices (Keras' sparse variant, torch's
    default); ``"one_hot"`` converts the labels to one-hot vectors first.
    """

    type: Literal["categorical_crossentropy"]
    from_logits: bool = False
    labels: Literal["integer", "one_hot"] = "integer"


LossSpec = Annotated[Union[MSELoss, MAELoss, HuberLoss, BCELoss, CCELoss], Field(discriminator="type")]
