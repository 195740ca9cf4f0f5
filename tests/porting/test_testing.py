"""duofit.testing in a user's own pytest run (pytester): a pass, and a failure that names its stage and causes."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

USER_TESTS = """
from duofit.testing import ParityAssertionError, assert_parity

SPEC = {
    "data": {"kind": "make_classification", "params": {"n_samples": 120, "n_features": 4, "random_state": 0}},
    "model": {"layers": [{"type": "dense", "units": 6, "activation": "relu"}, {"type": "dense", "units": 1}]},
    "loss": {"type": "binary_crossentropy", "from_logits": True},
    "optimizer": {"type": "adam", "lr": 0.01, "weight_decay": 0.01},
    "train": {"epochs": 2, "batch_size": 32},
}


def test_my_model_trains_the_same():
    report = assert_parity(SPEC, backends=("torch", "keras"), strict=True)
    assert report.passed


def test_a_deliberate_mismatch_fails():
    mismatch = {"keras": ["optimizer.decay_kind=decoupled"]}
    assert_parity(SPEC, backends=("torch", "keras"), strict=True, overrides=mismatch)
"""


@pytest.mark.parity
def test_assert_parity_in_a_users_pytest_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*ParityAssertionError: torch and keras do not train the same: first failing stage (*) *: max relative "
            "difference * > tolerance *causes: [[]*",
        ]
    )
    result.stdout.fnmatch_lines(["*parity torch vs keras: dtype float64, strict mode*"])


BASE = {
    "data": {"kind": "make_classification", "params": {"n_samples": 120, "n_features": 4, "random_state": 0}},
    "loss": {"type": "binary_crossentropy", "from_logits": True},
    "optimizer": {"type": "adam", "lr": 0.01},
    "train": {"epochs": 2, "batch_size": 32},
}


def _pair(hidden_b: int = 6):  # type: ignore[no-untyped-def]
    """A Keras MLP and its torch port holding the same weights (torch's Linear stores the kernel transposed)."""
    import os

    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import torch

    keras.utils.set_random_seed(0)
    dense = keras.layers.Dense(6, activation="relu", kernel_initializer="he_normal")  # not the spec default
    km = keras.Sequential([keras.Input((4,)), dense, keras.layers.Dense(1)])
    tm = torch.nn.Sequential(torch.nn.Linear(4, hidden_b), torch.nn.ReLU(), torch.nn.Linear(hidden_b, 1))
    if hidden_b == 6:
        with torch.no_grad():
            for linear, layer in zip((tm[0], tm[2]), km.layers, strict=True):
                kernel, bias = layer.get_weights()
                linear.weight.copy_(torch.from_numpy(kernel.T))
                linear.bias.copy_(torch.from_numpy(bias))
    return km, tm


@pytest.mark.parity
def test_assert_same_training_on_a_keras_model_and_its_torch_port() -> None:
    from duofit.testing import assert_same_training

    km, tm = _pair()
    report = assert_same_training(km, tm, BASE)
    assert report.passed and report.backends == ("keras", "torch") and report.strict


@pytest.mark.parity
def test_assert_same_training_names_the_first_difference() -> None:
    from duofit.testing import ParityAssertionError, assert_same_training

    km, tm = _pair(hidden_b=7)
    with pytest.raises(ParityAssertionError, match=r"not the same model: model.layers\[0\].units: 6 vs 7 \(dense\)"):
        assert_same_training(km, tm, BASE)
    km, tm = _pair()
    with __import__("torch").no_grad():
        tm[2].bias.add_(1.0)
    with pytest.raises(ParityAssertionError, match="hold different weights"):
        assert_same_training(km, tm, BASE)
