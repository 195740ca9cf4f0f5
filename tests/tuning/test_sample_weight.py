"""``fit(X, y, sample_weight=w)``: one weighted loss on every backend, Keras' reduction, checked inputs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.model_selection import GridSearchCV

import duofit
from duofit.backends.base import make_plan
from duofit.common.data import Parts, given_parts
from duofit.common.errors import DataError
from duofit.common.init import initial_weights
from duofit.sklearn import DuofitClassifier, DuofitRegressor
from duofit.tuning.estimator_worker import estimator_dataset

FAST = {"train__epochs": 5, "train__threads": 1}
F64 = {**FAST, "train__dtype": "float64"}
# float64, same weights, batches and (strict) update formula: only summation order differs between
# torch and Keras, ~1e-16 relative per step; 1e-10 leaves room for 5 epochs of drift.
RTOL_F64 = 1e-10
# float64 Keras on TensorFlow vs on JAX, not strict: the frameworks' own kernels and rounding of
# the optimizer's hyperparameters differ (measured 2e-6 relative on the log loss after 3 epochs);
# the JAX fits in a worker equal the same fits in a JAX process bit for bit.
RTOL_KERAS_FRAMEWORKS = 1e-4

LINEAR_MSE = {
    "name": "weighted-linear",
    "data": {"kind": "make_regression", "standardize": False},
    "model": {"layers": [{"type": "dense", "units": 1}]},
    "loss": {"type": "mse"},
    "optimizer": {"type": "sgd", "lr": 0.1},
    "train": {"epochs": 1, "batch_size": 6, "dtype": "float64", "threads": 1},
}


def _weights(n: int, seed: int = 0) -> np.ndarray:
    w = np.random.default_rng(seed).uniform(0.0, 3.0, n)
    w[::4] = 0.0  # some rows weigh nothing
    return w


def _dataset(spec: duofit.Spec, x: np.ndarray, y: np.ndarray, w: np.ndarray | None, split: bool = False):
    """The estimator's dataset; without ``split`` every row trains and validates (no held-out rows)."""
    rows = np.arange(len(x))
    parts = given_parts(spec, y, rows, None, spec.data.split_seed, False) if split else Parts(rows, rows, rows, True)
    return estimator_dataset(spec, x, y, w, parts), parts


# ---- bad weights: before any training, no framework needed ----------------------------------


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        (-np.ones(40), "finite and >= 0; sample 0 has -1.0"),
        (np.r_[np.ones(39), np.nan], "finite and >= 0; sample 39 has nan"),
        (np.r_[np.ones(39), np.inf], "finite and >= 0"),
        (np.ones(41), r"needs shape \(40,\)"),
        (np.ones((40, 2)), r"got shape \(40, 2\)"),
        (["a"] * 40, "needs numbers"),
        (np.zeros(40), "every weight is zero"),
    ],
)
def test_bad_weights_are_rejected_naming_sample_weight(weights: object, match: str) -> None:
    x, y = make_classification(40, n_features=4, random_state=0)
    with pytest.raises(DataError, match=match) as info:
        DuofitClassifier(**FAST).fit(x, y, sample_weight=weights)
    assert info.value.path == "sample_weight" and isinstance(info.value, ValueError)  # sklearn expects ValueError


def test_validation_rows_drop_their_weights() -> None:
    spec = duofit.load_spec({**LINEAR_MSE, "data": {"kind": "make_regression", "val_size": 0.25}})
    x, y = make_regression(40, 3, random_state=0)
    w = np.arange(1.0, 41.0)
    dataset, parts = _dataset(spec, x, y, w, split=True)
    assert len(dataset.w_train) == 30 and np.array_equal(dataset.w_train, w[parts.train])
    assert make_plan(spec, dataset).sample_weight is not None
    only_val = np.zeros(40)
    only_val[parts.val] = 1.0
    with pytest.raises(DataError, match="every training row has weight zero") as info:
        _dataset(spec, x, y, only_val, split=True)
    assert info.value.path == "sample_weight"


# ---- torch: the numpy reference, ones, zeros ------------------------------------------------


@pytest.mark.torch
def test_torch_weighted_steps_match_a_numpy_reference() -> None:
    """Two SGD steps (batches of 6 and 4, in the shared order): grad of sum(w_i * l_i) / batch size."""
    spec = duofit.load_spec(LINEAR_MSE)
    x, y = make_regression(10, 3, noise=1.0, random_state=0)
    w = _weights(10)
    dataset, _ = _dataset(spec, x, y, w)
    plan = make_plan(spec, dataset)
    kernel, bias = (initial_weights(spec, (3,))[k].copy() for k in ("layers.0.kernel", "layers.0.bias"))
    losses, sizes = [], []
    for idx in np.array_split(plan.order[0], [6]):
        residual = x[idx] @ kernel + bias - y[idx, None]  # (b, 1)
        b = len(idx)
        losses.append(float(np.sum(w[idx] * residual[:, 0] ** 2) / b))  # Keras: / batch size, not / sum(w)
        sizes.append(b)
        grad = 2.0 * w[idx, None] * residual / b
        kernel = kernel - 0.1 * x[idx].T @ grad
        bias = bias - 0.1 * grad.sum(axis=0)
    res = duofit.run(spec, "torch", dataset=dataset)
    np.testing.assert_allclose(res.weights["layers.0.kernel"], kernel, rtol=1e-12)
    np.testing.assert_allclose(res.weights["layers.0.bias"], bias, rtol=1e-12)
    np.testing.assert_allclose(res.steps["loss"], losses, rtol=1e-12)
    # the epoch's loss is Keras' logged loss: the batch-size weighted mean of the batch losses
    np.testing.assert_allclose(res.history["loss"].iloc[0], np.dot(losses, sizes) / 10, rtol=1e-12)
    # validation stays unweighted (Keras weighs it only with validation weights)
    final = x @ kernel + bias - y[:, None]
    np.testing.assert_allclose(res.history["val_loss"].iloc[0], np.mean(final**2), rtol=1e-12)


@pytest.mark.torch
def test_weights_all_one_train_exactly_as_no_weights() -> None:
    x, y = make_classification(60, n_features=4, random_state=0)
    plain = DuofitClassifier(**FAST).fit(x, y)
    ones = DuofitClassifier(**FAST).fit(x, y, sample_weight=np.ones(60))
    for name, value in plain.weights_.items():
        assert np.array_equal(value, ones.weights_[name]), name  # bit for bit
    assert plain.history_["loss"].equals(ones.history_["loss"])
    # the weighted code path itself, fed weights of 1, agrees to rounding
    spec = duofit.load_spec({**LINEAR_MSE, "train": {**LINEAR_MSE["train"], "epochs": 3}})
    xr, yr = make_regression(30, 3, random_state=0)
    a = duofit.run(spec, "torch", dataset=_dataset(spec, xr, yr, None)[0])
    b = duofit.run(spec, "torch", dataset=_dataset(spec, xr, yr, np.ones(30))[0])
    np.testing.assert_allclose(a.history["loss"], b.history["loss"], rtol=1e-13)


@pytest.mark.torch
def test_zero_weight_rows_contribute_nothing() -> None:
    """Rows of weight 0 may hold any target: the training is bit for bit the same."""
    x, y = make_classification(60, n_features=4, random_state=1)
    w = _weights(60)
    flipped = np.where(w == 0, 1 - y, y)
    a = DuofitClassifier(**FAST, data__val_size=0).fit(x, y, sample_weight=w)
    b = DuofitClassifier(**FAST, data__val_size=0).fit(x, flipped, sample_weight=w)
    for name, value in a.weights_.items():
        assert np.array_equal(value, b.weights_[name]), name
    assert a.history_["loss"].equals(b.history_["loss"])
    reg = DuofitRegressor(**FAST).fit(*make_regression(60, 3, random_state=0), sample_weight=w)
    assert reg.n_iter_ == 5 and np.isfinite(reg.history_["loss"]).all()


# ---- torch against Keras: the same numbers ---------------------------------------------------


@pytest.mark.parity
@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_float64_strict_weighted_parity_torch_keras(seed_spec_dict: dict, task: str) -> None:
    doc = dict(seed_spec_dict)
    doc["train"] = {**doc["train"], "dtype": "float64", "threads": 1}
    if task == "multiclass":
        doc["model"] = {"layers": [*doc["model"]["layers"][:-1], {"type": "dense", "units": 3}]}
        doc["loss"] = {"type": "categorical_crossentropy", "from_logits": True}
    spec = duofit.load_spec(doc)
    n_classes = 2 if task == "binary" else 3
    x, y = make_classification(
        120, n_features=2, n_informative=2, n_redundant=0, n_clusters_per_class=1, n_classes=n_classes, random_state=0
    )
    dataset, _ = _dataset(spec, x, y, _weights(120))
    a = duofit.run(spec, "torch", dataset=dataset, strict=True)
    b = duofit.run(spec, "keras", dataset=dataset, strict=True)
    for col in ("loss", "val_loss"):
        np.testing.assert_allclose(a.history[col], b.history[col], rtol=RTOL_F64)
    np.testing.assert_allclose(a.steps["loss"], b.steps["loss"], rtol=RTOL_F64)
    for name in a.weights:
        np.testing.assert_allclose(a.weights[name], b.weights[name], rtol=RTOL_F64, atol=1e-12)
    unweighted = duofit.run(spec, "torch", dataset=_dataset(spec, x, y, None)[0])
    assert not np.allclose(a.history["loss"], unweighted.history["loss"])  # the weights did something


# ---- two Keras frameworks in one process -----------------------------------------------------


@pytest.mark.slow  # Keras on JAX starts 4 worker processes
@pytest.mark.keras
@pytest.mark.keras_jax
def test_grid_over_keras_frameworks_fits_the_second_in_a_worker() -> None:
    """Keras on TensorFlow here, Keras on JAX in worker processes: same scores, weights included."""
    from duofit.backends.kerasenv import selected

    x, y = make_classification(80, n_features=4, random_state=0)
    clf = DuofitClassifier(**{**F64, "train__epochs": 3})
    search = GridSearchCV(
        clf, {"backend": ["keras", "keras-jax"]}, cv=2, scoring="neg_log_loss", refit=False, error_score="raise"
    )
    search.fit(x, y, sample_weight=_weights(80))
    assert selected() in ("tensorflow", "jax")  # one framework here; the other one ran in its workers
    for split in ("split0_test_score", "split1_test_score"):
        keras_tf, keras_jax = search.cv_results_[split]
        np.testing.assert_allclose(keras_tf, keras_jax, rtol=RTOL_KERAS_FRAMEWORKS)
