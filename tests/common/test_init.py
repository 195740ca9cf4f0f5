from __future__ import annotations

import math

import numpy as np
import pytest

from duofit.common.init import initial_weights
from duofit.common.loader import load_spec
from duofit.common.spec import INITIALIZERS


def _spec(init: str, units: int = 300, extra: list | None = None):
    layers = [
        {"type": "dense", "units": units, "kernel_init": init, "bias_init": init},
        *(extra or []),
        {"type": "dense", "units": 1},
    ]
    return load_spec({"data": {"kind": "make_regression"}, "model": {"layers": layers}, "loss": {"type": "mse"}})


FAN_IN, FAN_OUT = 200, 300


@pytest.mark.parametrize("init", INITIALIZERS)
def test_every_initializer_has_the_documented_distribution(init: str) -> None:
    w = initial_weights(_spec(init), FAN_IN)["layers.0.kernel"]
    assert w.shape == (FAN_IN, FAN_OUT)
    glorot = math.sqrt(2 / (FAN_IN + FAN_OUT))
    he = math.sqrt(2 / FAN_IN)
    expected_std = {
        "glorot_uniform": glorot,
        "xavier_uniform": glorot,
        "glorot_normal": glorot,
        "xavier_normal": glorot,
        "he_uniform": he,
        "kaiming_uniform": he,
        "he_normal": he,
        "kaiming_normal": he,
        "lecun_uniform": math.sqrt(1 / FAN_IN),
        "lecun_normal": math.sqrt(1 / FAN_IN),
        "torch_linear": 1 / math.sqrt(3 * FAN_IN),
        "uniform": 0.05 / math.sqrt(3),  # Keras' RandomUniform(-0.05, 0.05)
        "torch_embedding": 1.0,  # torch nn.Embedding: N(0, 1)
        "zeros": 0.0,
        "ones": 0.0,
        "constant": 0.0,
    }[init]
    assert w.std() == pytest.approx(expected_std, rel=0.03, abs=1e-12)
    if init.endswith("uniform") or init == "torch_linear":
        assert np.abs(w).max() <= expected_std * math.sqrt(3) + 1e-12
    if init in ("glorot_normal", "he_normal", "lecun_normal"):  # Keras: truncated at 2 std of the untruncated normal
        assert np.abs(w).max() <= 2 * expected_std / 0.87962566103423978 + 1e-12
    if init == "ones":
        assert np.all(w == 1)


def test_weights_are_seeded_and_per_layer_independent() -> None:
    a = initial_weights(_spec("glorot_uniform"), 4)
    b = initial_weights(_spec("glorot_uniform"), 4)
    np.testing.assert_array_equal(a["layers.0.kernel"], b["layers.0.kernel"])
    c = initial_weights(_spec("glorot_uniform", extra=[{"type": "dense", "units": 7}]), 4)
    np.testing.assert_array_equal(
        a["layers.0.kernel"], c["layers.0.kernel"]
    )  # editing a later layer changes nothing before it


def test_batch_norm_starts_at_identity() -> None:
    w = initial_weights(_spec("zeros", units=5, extra=[{"type": "batch_norm"}]), 3)
    np.testing.assert_array_equal(w["layers.1.gamma"], np.ones(5))
    np.testing.assert_array_equal(w["layers.1.moving_variance"], np.ones(5))
    np.testing.assert_array_equal(w["layers.1.beta"], np.zeros(5))
