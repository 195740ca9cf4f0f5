"""The causes catalogue: complete entries, and matching that follows the spec settings."""

from __future__ import annotations

import tomllib

import duofit
from duofit.common.overrides import apply_overrides
from duofit.parity.causes import CAUSES, STAGES, matching_causes

REQUIRED = {
    "adam_epsilon_hat",
    "rmsprop_epsilon",
    "sgd_momentum_form",
    "weight_decay_coupling",
    "l2_in_logged_loss",
    "batchnorm_conventions",
    "probability_clipping",
    "epoch_loss_weighting",
    "onednn",
    "keras_float32_hyperparameters",
}


def _spec(**changes: object) -> duofit.Spec:
    doc = tomllib.loads(open("examples/seed.toml").read())
    doc.update(changes)
    return duofit.load_spec(doc)


def test_catalogue_is_complete_and_documented() -> None:
    ids = [c.id for c in CAUSES]
    assert len(ids) == len(set(ids))
    assert REQUIRED <= set(ids)
    for cause in CAUSES:
        assert cause.title and cause.math and cause.source and cause.duofit
        assert set(cause.stages) <= set(STAGES)


def test_matching_follows_settings() -> None:
    adam = _spec()
    ids = {c.id for c in matching_causes(adam, adam, strict=False, stage="trajectory")}
    assert "adam_epsilon_hat" in ids and "rmsprop_epsilon" not in ids
    assert "adam_epsilon_hat" not in {c.id for c in matching_causes(adam, adam, strict=True, stage="trajectory")}
    f64 = apply_overrides(adam, ['train.dtype="float64"', "optimizer.beta1=0.9"])
    assert "keras_float32_hyperparameters" in {c.id for c in matching_causes(f64, f64, False, "trajectory")}
    exact = apply_overrides(f64, ["optimizer.beta1=0.875", "optimizer.beta2=0.5"])
    assert "keras_float32_hyperparameters" not in {c.id for c in matching_causes(exact, exact, False, "trajectory")}
    coupled = apply_overrides(adam, ["optimizer.weight_decay=0.01"])
    decoupled = apply_overrides(coupled, ['optimizer.decay_kind="decoupled"'])
    assert "weight_decay_coupling" in {c.id for c in matching_causes(coupled, decoupled, True, "trajectory")}
    assert "weight_decay_coupling" not in {c.id for c in matching_causes(coupled, coupled, True, "trajectory")}
