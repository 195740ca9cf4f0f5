"""scikit-learn's own estimator checks (``parametrize_with_checks``), both estimators, both backends.

The estimators run a tiny spec: few epochs, one thread (tiny matrices are slower with a
contended thread pool), float64 so that predicting a subset of rows gives the same rows as
predicting all of them (sklearn's ``check_methods_subset_invariance`` compares at 1e-7).
One check is an expected failure, as for scikit-learn's own stochastic-gradient estimators
(SGDClassifier, SGDRegressor): a weight of k is not k copies of a row, since the copies
change the batches and each batch's divisor (:data:`EXPECTED_FAILURES`). Every other check
passes. (sklearn itself skips its array-API check unless SCIPY_ARRAY_API=1 is set.)
tests/tuning/conftest.py tags each check with its backend's marker.
"""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from duofit.sklearn import DuofitClassifier, DuofitRegressor

TINY = {"train__epochs": 10, "train__batch_size": 64, "train__dtype": "float64", "train__threads": 1}
# 10 epochs of Adam at lr 0.05 clear sklearn's floors on its toy data (accuracy > 0.83, R^2 > 0.5).
TINY_LR = {"optimizer__lr": 0.05}

ESTIMATORS = [
    DuofitClassifier(backend="torch", **TINY, **TINY_LR),
    DuofitRegressor(backend="torch", **TINY, **TINY_LR),
    DuofitClassifier(backend="keras", **TINY, **TINY_LR),
    DuofitRegressor(backend="keras", **TINY, **TINY_LR),
]


EXPECTED_FAILURES = {
    "check_sample_weight_equivalence_on_dense_data": (
        "mini-batch training: an integer sample_weight is not the same as repeating rows (other batches)"
    ),
}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=lambda estimator: EXPECTED_FAILURES)
def test_sklearn_estimator_checks(estimator: DuofitClassifier | DuofitRegressor, check: object) -> None:
    check(estimator)  # type: ignore[operator]
