"""The scikit-learn estimators in Pipeline, GridSearchCV and cross_val_score; parameter routing."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_iris, make_classification, make_regression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from duofit.common.errors import SpecError
from duofit.sklearn import DuofitClassifier, DuofitRegressor

FAST = {"train__epochs": 5, "train__threads": 1}
# The same spec, weights and batches on both backends: probabilities agree to float32 drift.
PROBA_PARITY = 1e-4


def test_params_route_to_spec_fields_and_clone() -> None:
    clf = DuofitClassifier(spec="examples/seed.toml", optimizer__lr=0.1)
    assert clf.get_params() == {"spec": "examples/seed.toml", "backend": "torch", "optimizer__lr": 0.1}
    clf.set_params(train__epochs=3, model__layers__0__units=4)
    twin = clone(clf)
    assert twin.get_params() == clf.get_params() and twin is not clf
    spec = twin._routed_spec()
    assert (spec.optimizer.lr, spec.train.epochs, spec.model.layers[0].units) == (0.1, 3, 4)
    assert not hasattr(twin, "spec_")  # nothing learned before fit


def test_unknown_fields_are_reported_at_fit() -> None:
    x, y = make_classification(40, random_state=0)
    with pytest.raises(SpecError, match=r"optimizer\.lrr"):
        DuofitClassifier(optimizer__lrr=0.1).fit(x, y)
    with pytest.raises(SpecError, match="unknown parameter 'lr'"):
        DuofitClassifier(lr=0.1).fit(x, y)
    with pytest.raises(SpecError, match="DuofitRegressor"):
        DuofitClassifier(spec={"model": {"layers": [{"type": "dense", "units": 1}]}, "loss": {"type": "mse"}}).fit(x, y)


@pytest.mark.torch
def test_output_layer_follows_the_classes() -> None:
    x, y = load_iris(return_X_y=True)
    clf = DuofitClassifier(spec="examples/seed.toml", **FAST).fit(x, y)
    assert clf.spec_.loss.type == "categorical_crossentropy" and clf.spec_.model.layers[-1].units == 3
    proba = clf.predict_proba(x)
    assert proba.shape == (150, 3) and np.allclose(proba.sum(axis=1), 1)
    labels = np.array(["no", "yes"])[(y > 0).astype(int)]
    binary = DuofitClassifier(**FAST).fit(x, labels)
    assert binary.spec_.loss.type == "binary_crossentropy" and set(binary.predict(x)) <= {"no", "yes"}
    assert binary.n_iter_ == 5 and len(binary.history_) == 5


@pytest.mark.torch
def test_pipeline_grid_search_and_cross_val_score() -> None:
    x, y = make_classification(160, n_features=4, random_state=0)
    pipe = make_pipeline(StandardScaler(), DuofitClassifier(spec="examples/seed.toml", **FAST))
    search = GridSearchCV(pipe, {"duofitclassifier__optimizer__lr": [0.1, 0.001]}, cv=3, error_score="raise")
    search.fit(x, y)
    assert search.best_params_ == {"duofitclassifier__optimizer__lr": 0.1}
    assert search.best_estimator_[-1].spec_.optimizer.lr == 0.1
    scores = cross_val_score(DuofitRegressor(**FAST, optimizer__lr=0.05), *make_regression(90, 3, random_state=0), cv=3)
    assert scores.shape == (3,) and np.all(np.isfinite(scores))


@pytest.mark.parity
def test_both_backends_predict_the_same() -> None:
    x, y = make_classification(120, n_features=4, random_state=1)
    torch_clf = DuofitClassifier(backend="torch", **FAST).fit(x, y)
    keras_clf = DuofitClassifier(backend="keras", **FAST).fit(x, y)
    np.testing.assert_allclose(torch_clf.predict_proba(x), keras_clf.predict_proba(x), atol=PROBA_PARITY)
