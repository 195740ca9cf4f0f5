"""Backends against each other (after each passed against the numpy reference)."""

from __future__ import annotations

import numpy as np
import pytest

import duofit
from duofit.backends.base import make_plan
from duofit.common.data import load_dataset

pytestmark = pytest.mark.parity

# float64, same initial weights and batches, SGD: only summation order differs, so per-epoch
# losses agree to ~1e-15 relative per step; 1e-10 leaves room for 5 epochs x 25 steps of drift.
RTOL_F64_SGD = 1e-10
# float32 Adam: rounding (~6e-8) amplified by 500 adaptive steps; the parity report's float32 tolerance is 1e-4.
RTOL_F32_ADAM = 1e-4


def _seed(seed_spec_dict: dict, **train) -> duofit.Spec:
    doc = dict(seed_spec_dict)
    doc["train"] = {**doc["train"], **train}
    return duofit.load_spec(doc)


@pytest.mark.parametrize("framework", ["tensorflow", "torch", "jax"])
def test_keras_pipeline_feeds_the_shared_batch_order(seed_spec_dict: dict, framework: str) -> None:
    """tf.data on TensorFlow, a numpy generator on torch/JAX: the same batches as the torch loop."""
    from duofit.backends.keras.native import native

    spec = _seed(seed_spec_dict, batch_size=30, epochs=2)
    plan = make_plan(spec, load_dataset(spec))
    batches = list(native(framework).batches(plan, "float64"))
    assert len(batches) == 2 * plan.steps_per_epoch
    x, t = plan.dataset.x_train, plan.t_train
    for k, (xb, tb) in enumerate(batches):
        epoch, b = divmod(k, plan.steps_per_epoch)
        idx = plan.order[epoch, b * 30 : (b + 1) * 30]
        np.testing.assert_array_equal(np.asarray(xb), x[idx])  # the last batch of each epoch has 20 samples
        np.testing.assert_array_equal(np.asarray(tb), t[idx])


def test_float64_sgd_histories_agree(seed_spec_dict: dict) -> None:
    doc = dict(seed_spec_dict, optimizer={"type": "sgd", "lr": 0.125, "momentum": 0.875})
    doc["train"] = {**doc["train"], "dtype": "float64"}
    spec = duofit.load_spec(doc)
    a, b = duofit.run(spec, "torch"), duofit.run(spec, "keras")
    for col in ("loss", "val_loss"):
        np.testing.assert_allclose(a.history[col], b.history[col], rtol=RTOL_F64_SGD)
    for name in a.weights:
        np.testing.assert_allclose(a.weights[name], b.weights[name], rtol=RTOL_F64_SGD, atol=1e-12)


def test_float32_adam_histories_agree(seed_spec_dict: dict) -> None:
    spec = _seed(seed_spec_dict, epochs=20)
    a, b = duofit.run(spec, "torch"), duofit.run(spec, "keras")
    np.testing.assert_allclose(a.history["loss"], b.history["loss"], rtol=RTOL_F32_ADAM)


def test_compare_runs_every_backend_in_its_own_process(tmp_path) -> None:
    installed = duofit.available_backends()  # torch and keras here; keras-torch/keras-jax too in the `all` env
    cmp = duofit.compare("examples/seed.toml", out=tmp_path)
    table = cmp.table()
    assert list(table.index) == installed
    assert (table["accuracy"] >= 0.85).all()
    assert cmp.results["keras"].environment["keras_backend"] == "tensorflow"
    for name in ("compare.csv", "history.csv", "loss_curves.png", "torch/weights.npz", "keras/history.csv"):
        assert (tmp_path / name).stat().st_size > 0
    hist = cmp.histories()
    assert set(hist["backend"]) == set(installed) and len(hist) == 100 * len(installed)
