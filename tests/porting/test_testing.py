"""duofit.testing in a user's own pytest run (pytester): a pass, and a failure that names its stage and causes."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

USER_TESTS = '''
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
'''


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
