"""Spec losses -> torch callables ``loss(outputs, targets) -> scalar``.

Translations: cross-entropy on probabilities (``from_logits = false``) clips to
[EPSILON, 1 - EPSILON] exactly as Keras does (torch's BCELoss clamps log(p) at -100
instead); categorical on probabilities renormalises each row first, as Keras.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from duofit.common.errors import unsupported
from duofit.common.spec import BCELoss, CCELoss, HuberLoss, MAELoss, MSELoss

__all__ = ["EPSILON", "LOSSES", "make_loss", "weighted_loss_fn"]

EPSILON = 1e-7  # keras.config.epsilon(), the clip Keras applies to probabilities

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _bce_probs(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p = out.clamp(EPSILON, 1.0 - EPSILON)
    return -(target * torch.log(p) + (1.0 - target) * torch.log(1.0 - p)).mean()


def _cce_probs_onehot(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p = (out / out.sum(dim=-1, keepdim=True)).clamp(EPSILON, 1.0 - EPSILON)
    return -(target * torch.log(p)).sum(dim=-1).mean()


def _cce_probs_integer(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # Keras: log(clip(p)) fed to sparse softmax cross-entropy, i.e. renormalised.
    logp = torch.log(out.clamp(EPSILON, 1.0 - EPSILON))
    return nn.functional.cross_entropy(logp, target)


def _bce(spec: BCELoss) -> LossFn:
    return nn.BCEWithLogitsLoss() if spec.from_logits else _bce_probs


def _cce(spec: CCELoss) -> LossFn:
    if spec.from_logits:
        return nn.CrossEntropyLoss()  # takes class indices or one-hot probabilities
    return _cce_probs_integer if spec.labels == "integer" else _cce_probs_onehot


LOSSES: dict[type, Callable[..., LossFn]] = {
    MSELoss: lambda spec: nn.MSELoss(),
    MAELoss: lambda spec: nn.L1Loss(),
    HuberLoss: lambda spec: nn.HuberLoss(delta=spec.delta),
    BCELoss: _bce,
    CCELoss: _cce,
}


def make_loss(spec: object) -> LossFn:
    """The torch loss for a loss spec (mean over the batch)."""
    factory = LOSSES.get(type(spec))
    if factory is None:
        raise unsupported("torch", "loss", spec, LOSSES)
    return factory(spec)


def weighted_loss_fn(loss_fn: LossFn) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """``loss_fn`` with per-sample weights, reduced as Keras 3 reduces a weighted loss.

    Each sample's loss is ``loss_fn`` on a batch of that one sample (``torch.func.vmap``),
    so every loss of this module is weighted by the same translation as the unweighted one,
    its mean over the outputs included (Keras' per-sample loss). Keras 3.15
    (``keras/src/losses/loss.py``, ``reduce_weighted_values`` and ``reduce_values``) multiplies
    each sample's loss by its weight and, for the default ``sum_over_batch_size``, divides the
    sum by the number of samples in the batch, not by the sum of the weights.
    """
    per_sample = torch.func.vmap(lambda out, target: loss_fn(out.unsqueeze(0), target.unsqueeze(0)))

    def weighted(out: torch.Tensor, target: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return (per_sample(out, target) * w).sum() / out.shape[0]

    return weighted
