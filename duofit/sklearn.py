"""scikit-learn estimators that train a duofit spec on either backend.

``DuofitClassifier`` / ``DuofitRegressor`` take a spec (file, mapping or Spec; default: a
small MLP) and a backend, and route any spec field as a nested parameter:
``optimizer__lr``, ``train__epochs``, ``model__layers__0__units`` (``__`` separates,
digits index a list). They fit on the ``X, y`` they are given: the spec's ``data``
section is not loaded, except ``standardize`` (a ``StandardScaler`` fitted in ``fit``),
``val_size`` (held out of ``X`` for per-epoch validation; 0 validates on the training
data) and ``split_seed``. The output layer and loss follow ``y``: one logit unit with
binary cross-entropy for two classes, one unit per class with categorical cross-entropy
for more, one unit per target for regression.

Example:
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> clf = DuofitClassifier(spec="examples/seed.toml", backend="torch", optimizer__lr=0.01)
    >>> clf.get_params()["optimizer__lr"]
    0.01
    >>> search = GridSearchCV(make_pipeline(StandardScaler(), clf),
    ...                       {"duofitclassifier__optimizer__lr": [0.1, 0.01]})
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from duofit.common.errors import DataError, DivergenceError, SpecError
from duofit.common.loader import load_spec
from duofit.common.paths import path_from_param, with_values
from duofit.common.spec import LOSS_TASKS, DenseLayer, Spec

__all__ = ["DEFAULT_CLASSIFIER_SPEC", "DEFAULT_REGRESSOR_SPEC", "DuofitClassifier", "DuofitRegressor"]

_HIDDEN = {"type": "dense", "units": 32, "activation": "relu"}
DEFAULT_CLASSIFIER_SPEC: dict[str, Any] = {
    "name": "duofit-classifier",
    "data": {"kind": "make_classification"},
    "model": {"layers": [_HIDDEN, {"type": "dense", "units": 1}]},
    "loss": {"type": "binary_crossentropy", "from_logits": True},
    "optimizer": {"type": "adam", "lr": 0.01},
    "train": {"epochs": 50, "batch_size": 32},
}
DEFAULT_REGRESSOR_SPEC: dict[str, Any] = {
    "name": "duofit-regressor",
    "data": {"kind": "make_regression"},
    "model": {"layers": [_HIDDEN, {"type": "dense", "units": 1}]},
    "loss": {"type": "mse"},
    "optimizer": {"type": "adam", "lr": 0.01},
    "train": {"epochs": 50, "batch_size": 32},
}
_SPEC_FIELDS = tuple(Spec.model_fields)
_REGRESSION_LOSSES = tuple(name for name, task in LOSS_TASKS.items() if task == "regression")


class _DuofitEstimator(BaseEstimator):
    """Shared parameter handling, spec resolution and training of both estimators."""

    _default_spec: ClassVar[dict[str, Any]]
    _placeholder_data: ClassVar[dict[str, Any]]

    def __init__(
        self, spec: str | Path | Mapping[str, Any] | Spec | None = None, backend: str = "torch", **fields: Any
    ) -> None:
        self.spec = spec
        self.backend = backend
        self._fields = dict(fields)  # spec fields routed as section__field (private: not an attribute name)

    # ------------------------------------------------------------------ parameters
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """``spec``, ``backend`` and every routed spec field (``optimizer__lr``, ...)."""
        params = super().get_params(deep=deep)
        params.update(self._fields)
        return params

    def set_params(self, **params: Any) -> _DuofitEstimator:
        """Set ``spec``, ``backend`` or any spec field as ``section__field`` (e.g. ``train__epochs``).

        Like scikit-learn's own estimators, nothing is checked here; ``fit`` reports an
        unknown field or a bad value as a :class:`~duofit.SpecError` naming it.
        """
        for key, value in params.items():
            if key in ("spec", "backend"):
                setattr(self, key, value)
            else:
                self._fields[key] = value
        return self

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("_fields", {})
        super().__setstate__(state)

    # ------------------------------------------------------------------ spec
    def _base_spec(self) -> Spec:
        if self.spec is None:
            return load_spec(self._default_spec)
        if isinstance(self.spec, Mapping) and "data" not in self.spec:
            return load_spec({**self.spec, "data": self._placeholder_data})
        return load_spec(self.spec)

    def _routed_spec(self) -> Spec:
        bad = [k for k in self._fields if k.split("__", 1)[0] not in _SPEC_FIELDS]
        if bad:
            raise SpecError(
                f"{type(self).__name__}: unknown parameter {bad[0]!r}. Valid parameters are 'spec', 'backend', "
                f"and spec fields as section__field with section one of {', '.join(_SPEC_FIELDS)} "
                "(e.g. optimizer__lr, train__epochs, model__layers__0__units)",
                path=bad[0],
            )
        values = {path_from_param(k): v for k, v in self._fields.items()}
        return with_values(self._base_spec(), values, source=f"{type(self).__name__} parameters")

    def _adapt(self, spec: Spec, units: int, loss: dict[str, Any], activation: str | None) -> Spec:
        idx = max(i for i, layer in enumerate(spec.model.layers) if isinstance(layer, DenseLayer))
        values: dict[str, Any] = {f"model.layers[{idx}].units": units, "loss": loss}
        if activation is not None:
            values[f"model.layers[{idx}].activation"] = activation
        return with_values(spec, values, source=f"{type(self).__name__} output layer")

    # ------------------------------------------------------------------ training
    def _train(self, x: np.ndarray, y: np.ndarray, spec: Spec) -> None:
        from duofit.common.data import given_parts, prepare
        from duofit.tuning.fitting import run_on_dataset

        stratify = spec.task != "regression" and spec.data.stratify
        parts = given_parts(spec, y, np.arange(len(x)), None, spec.data.split_seed, stratify)  # no test part
        dataset = prepare(spec, x, y, parts=parts)
        result = run_on_dataset(spec, dataset, self.backend)
        if result.diverged:
            raise DivergenceError(result.message or "training diverged", result)
        self.spec_ = spec
        self.backend_ = self.backend  # predictions use the framework that trained, even after set_params
        self.scaler_ = dataset.scaler
        self.weights_ = result.weights
        self.history_ = result.history
        self.n_iter_ = len(result.history)
        self.best_epoch_ = result.best_epoch

    def _outputs(self, x: Any) -> np.ndarray:
        from duofit.tuning.fitting import predict_outputs

        check_is_fitted(self, "weights_")
        x = validate_data(self, x, reset=False, dtype=np.float64)
        if self.scaler_ is not None:
            x = self.scaler_.transform(x)
        return predict_outputs(self.backend_, self.spec_, self.weights_, x)


class DuofitClassifier(ClassifierMixin, _DuofitEstimator):
    """A duofit spec as a scikit-learn classifier (binary or multiclass).

    Args:
        spec: Spec file, mapping or Spec (default :data:`DEFAULT_CLASSIFIER_SPEC`: a
            32-unit ReLU layer, Adam lr 0.01, 50 epochs). Its loss must be a
            cross-entropy; the last dense layer is resized to the classes of ``y``.
        backend: ``"torch"`` or ``"keras"``.
        **fields: Spec fields as ``section__field=value``.

    Attributes:
        classes_: The class labels.
        spec_: The spec that was trained (routing and output layer applied).
        weights_: Trained weights (duofit layout, numpy).
        history_: Per-epoch history (DataFrame).
        n_iter_: Epochs run.
        scaler_: The fitted StandardScaler (or None).
        backend_: The backend that trained (and predicts).

    Example:
        >>> from sklearn.datasets import load_iris
        >>> X, y = load_iris(return_X_y=True)

        Fitting is not run as a doctest (it trains a model and needs torch installed):

        >>> clf = DuofitClassifier(train__epochs=30).fit(X, y)        # doctest: +SKIP
        >>> clf.score(X, y) > 0.9                                     # doctest: +SKIP
        True
    """

    _default_spec: ClassVar[dict[str, Any]] = DEFAULT_CLASSIFIER_SPEC
    _placeholder_data: ClassVar[dict[str, Any]] = {"kind": "make_classification"}

    def fit(self, X: Any, y: Any) -> DuofitClassifier:
        """Train on ``X`` (n_samples, n_features) and class labels ``y``; returns ``self``."""
        x, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        classes = np.unique(y)
        if classes.size < 2:
            raise DataError(f"y has 1 class ({classes.tolist()}); a classifier needs 2 or more classes", "y")
        spec = self._routed_spec()
        if spec.loss.type not in ("binary_crossentropy", "categorical_crossentropy"):
            raise SpecError(
                f"loss.type: {type(self).__name__} needs 'binary_crossentropy' or 'categorical_crossentropy' "
                f"(got {spec.loss.type!r}); use DuofitRegressor for {spec.loss.type!r}",
                path="loss.type",
            )
        from_logits = bool(getattr(spec.loss, "from_logits", False))
        binary = classes.size == 2
        loss: dict[str, Any] = {"type": "binary_crossentropy" if binary else "categorical_crossentropy"}
        loss["from_logits"] = from_logits
        if not binary and spec.loss.type == "categorical_crossentropy":
            loss["labels"] = spec.loss.labels
        activation = None if from_logits else ("sigmoid" if binary else "softmax")
        spec = self._adapt(spec, 1 if binary else int(classes.size), loss, activation)
        self.classes_ = classes
        self._train(x, y, spec)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, one column per class of ``classes_``."""
        from duofit.common.metrics import probabilities

        check_is_fitted(self, "weights_")
        out = self._outputs(X)
        from_logits = bool(getattr(self.spec_.loss, "from_logits", False))
        if len(self.classes_) == 2:
            p = probabilities("binary", out, from_logits)
            return np.column_stack([1.0 - p, p])
        return probabilities("multiclass", out, from_logits)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class label per sample (threshold 0.5 for two classes)."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


class DuofitRegressor(RegressorMixin, _DuofitEstimator):
    """A duofit spec as a scikit-learn regressor.

    Args:
        spec: Spec file, mapping or Spec (default :data:`DEFAULT_REGRESSOR_SPEC`). Its loss
            must be ``mse``, ``mae`` or ``huber``; the last dense layer gets one unit per target.
        backend: ``"torch"`` or ``"keras"``.
        **fields: Spec fields as ``section__field=value``.

    Attributes:
        spec_, weights_, history_, n_iter_, scaler_: as :class:`DuofitClassifier`.

    Example:
        >>> from sklearn.datasets import load_diabetes
        >>> X, y = load_diabetes(return_X_y=True)

        Fitting is not run as a doctest (it trains a model and needs Keras installed):

        >>> reg = DuofitRegressor(backend="keras", optimizer__lr=0.05).fit(X, y)   # doctest: +SKIP
    """

    _default_spec: ClassVar[dict[str, Any]] = DEFAULT_REGRESSOR_SPEC
    _placeholder_data: ClassVar[dict[str, Any]] = {"kind": "make_regression"}

    def fit(self, X: Any, y: Any) -> DuofitRegressor:
        """Train on ``X`` (n_samples, n_features) and targets ``y`` (n_samples,); returns ``self``."""
        x, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        spec = self._routed_spec()
        if spec.loss.type not in _REGRESSION_LOSSES:
            raise SpecError(
                f"loss.type: {type(self).__name__} needs one of {', '.join(_REGRESSION_LOSSES)} "
                f"(got {spec.loss.type!r}); use DuofitClassifier for class labels",
                path="loss.type",
            )
        spec = self._adapt(spec, 1, spec.loss.model_dump(mode="json"), None)
        self._train(x, np.asarray(y, dtype=np.float64), spec)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predicted targets, shape ``(n_samples,)``."""
        return self._outputs(X)[:, 0]
