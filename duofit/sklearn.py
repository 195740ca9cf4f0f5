"""scikit-learn estimators that train a duofit spec on either backend.

``DuofitClassifier`` / ``DuofitRegressor`` take a spec (file, mapping or Spec; default: a
small MLP) and a backend, and route any spec field as a nested parameter:
``optimizer__lr``, ``train__epochs``, ``model__layers__0__units`` (``__`` separates,
digits index a list). They fit on the ``X, y`` they are given: the spec's ``data``
section is not loaded, except ``standardize`` (a ``StandardScaler`` fitted in ``fit``),
``standardize_target`` (regression: train on standardized ``y``, predict in its units),
``val_size`` (held out of ``X`` for per-epoch validation; 0 validates on the training
data) and ``split_seed``. The output layer and loss follow ``y``: one logit unit with
binary cross-entropy for two classes, one unit per class with categorical cross-entropy
for more, one unit per target for regression.

``fit(X, y, sample_weight=w)`` weighs each sample's training loss on every backend the way
Keras' ``fit(sample_weight=)`` does: a batch's loss is ``sum(loss_i * w_i) / batch_size``
(Keras' ``sum_over_batch_size``). The weights follow their rows through the shared batch
order; rows held out for validation (``val_size``) drop theirs, and the validation loss
and the scalers are unweighted. Weights all 1 train exactly as no weights.

A Keras backend on another framework than the one Keras already runs on in this process
(e.g. a grid over ``backend`` in ``["keras", "keras-jax"]``) fits and predicts in a worker
process of its own (:mod:`duofit.tuning.estimator_worker`); the first Keras framework used
and torch run in this process.

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

from duofit.common.data.features import TOKEN_INPUT_LAYERS
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
    def _train(self, x: np.ndarray, y: np.ndarray, spec: Spec, sample_weight: Any = None) -> None:
        from duofit.common.data import given_parts
        from duofit.tuning.estimator_worker import estimator_dataset, fit_in_worker, needs_worker
        from duofit.tuning.fitting import run_on_dataset

        w = _checked_weights(sample_weight, len(x))
        stratify = spec.task != "regression" and spec.data.stratify
        parts = given_parts(spec, y, np.arange(len(x)), None, spec.data.split_seed, stratify)  # no test part
        dataset = estimator_dataset(spec, x, y, w, parts)  # here too: bad data fails before a worker starts
        if needs_worker(self.backend):
            codes = y if spec.task == "regression" else np.unique(y, return_inverse=True)[1]  # npz: numbers only
            result = fit_in_worker(spec, self.backend, x, codes, w, parts)
        else:
            result = run_on_dataset(spec, dataset, self.backend)
        if result.diverged:
            raise DivergenceError(result.message or "training diverged", result)
        self.spec_ = spec
        self.backend_ = self.backend  # predictions use the framework that trained, even after set_params
        self.scaler_ = dataset.scaler
        self.target_scaler_ = dataset.target_scaler
        self.weights_ = result.weights
        self.history_ = result.history
        self.n_iter_ = len(result.history)
        self.best_epoch_ = result.best_epoch

    def _outputs(self, x: Any) -> np.ndarray:
        from duofit.tuning.estimator_worker import needs_worker, predict_in_worker
        from duofit.tuning.fitting import model_inputs, predict_outputs

        check_is_fitted(self, "weights_")
        x = model_inputs(self.spec_, self.scaler_, _validated(self, self.spec_, x, reset=False))
        if needs_worker(self.backend_):
            return predict_in_worker(self.spec_, self.backend_, self.weights_, x)
        return predict_outputs(self.backend_, self.spec_, self.weights_, x)


_NO_Y = object()  # predict: no y to check (fit passes its y, even None, so sklearn says it is required)


def _validated(estimator: BaseEstimator, spec: Spec, X: Any, y: Any = _NO_Y, **checks: Any) -> Any:
    """scikit-learn's input checks; ``X`` may be 3-D (sequences) or integer token ids.

    Integers stay integers when the model's first layer looks ids up (an ``embedding``);
    everything else becomes float64, as before.
    """
    tokens = spec.model.layers[0].type in TOKEN_INPUT_LAYERS
    dtype: Any = "numeric" if tokens else np.float64
    if y is _NO_Y:
        return validate_data(estimator, X, dtype=dtype, allow_nd=True, **checks)
    return validate_data(estimator, X, y, dtype=dtype, allow_nd=True, **checks)


def _checked_weights(sample_weight: Any, n: int) -> np.ndarray | None:
    """``sample_weight`` as float64, one finite weight >= 0 per sample, not all zero; ``None`` if absent.

    Weights that are all 1 return ``None``: the unweighted training, bit for bit.

    Raises:
        DataError: (a ``ValueError``) naming ``sample_weight``, what is wrong and the fix.

    Example:
        >>> _checked_weights([1, 1, 1], 3) is None
        True
        >>> _checked_weights([1, -2, 1], 3)
        Traceback (most recent call last):
        ...
        duofit.common.errors.DataError: sample_weight: weights must be finite and >= 0; sample 1 has -2.0
    """
    if sample_weight is None:
        return None
    try:
        w = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError("sample_weight: needs numbers, one weight per sample of X", path="sample_weight") from None
    if w.shape != (n,):
        raise DataError(
            f"sample_weight: needs shape ({n},), one weight per sample of X; got shape {w.shape}", path="sample_weight"
        )
    bad = np.flatnonzero(~np.isfinite(w) | (w < 0))
    if bad.size:
        raise DataError(
            f"sample_weight: weights must be finite and >= 0; sample {bad[0]} has {w[bad[0]]}", path="sample_weight"
        )
    if not np.any(w > 0):
        raise DataError(
            "sample_weight: every weight is zero; give at least one sample a weight > 0", path="sample_weight"
        )
    return None if np.all(w == 1.0) else w


class DuofitClassifier(ClassifierMixin, _DuofitEstimator):
    """A duofit spec as a scikit-learn classifier (binary or multiclass).

    Args:
        spec: Spec file, mapping or Spec (default :data:`DEFAULT_CLASSIFIER_SPEC`: a
            32-unit ReLU layer, Adam lr 0.01, 50 epochs). Its loss must be a
            cross-entropy; the last dense layer is resized to the classes of ``y``.
        backend: ``"torch"``, ``"keras"``, ``"keras-torch"`` or ``"keras-jax"`` (a Keras framework
            other than the one this process runs Keras on fits in a worker process).
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

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> DuofitClassifier:
        """Train on ``X`` and class labels ``y``; returns ``self``.

        ``X``: (n_samples, n_features), (n_samples, steps, features) sequences, or integer token ids
        (n_samples, steps) for a spec whose first layer is an ``embedding``.
        ``sample_weight`` (n_samples,): each sample's weight in the training loss (module docstring).
        """
        spec = self._routed_spec()
        x, y = _validated(self, spec, X, y)
        check_classification_targets(y)
        classes = np.unique(y)
        if classes.size < 2:
            raise DataError(f"y has 1 class ({classes.tolist()}); a classifier needs 2 or more classes", "y")
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
        self._train(x, y, spec, sample_weight)
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
    """A duofit spec as a scikit-learn regressor, single- or multi-output.

    Args:
        spec: Spec file, mapping or Spec (default :data:`DEFAULT_REGRESSOR_SPEC`). Its loss
            must be ``mse``, ``mae`` or ``huber``; the last dense layer gets one unit per target
            (per column of a 2-D ``y``).
        backend: ``"torch"`` or ``"keras"``.
        **fields: Spec fields as ``section__field=value``; ``data__standardize_target=True``
            trains on standardized targets (predictions come back in ``y``'s units).

    Attributes:
        spec_, weights_, history_, n_iter_, scaler_: as :class:`DuofitClassifier`.
        target_scaler_: The StandardScaler fitted on ``y`` (or None).
        n_outputs_: Columns of ``y`` (1 for a 1-d ``y``).

    Example:
        >>> from sklearn.datasets import load_diabetes
        >>> X, y = load_diabetes(return_X_y=True)

        Fitting is not run as a doctest (it trains a model and needs Keras installed):

        >>> reg = DuofitRegressor(backend="keras", optimizer__lr=0.05).fit(X, y)   # doctest: +SKIP
    """

    _default_spec: ClassVar[dict[str, Any]] = DEFAULT_REGRESSOR_SPEC
    _placeholder_data: ClassVar[dict[str, Any]] = {"kind": "make_regression"}

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> DuofitRegressor:
        """Train on ``X`` and targets ``y`` (n_samples,) or (n_samples, k); returns ``self``.

        ``X`` as :meth:`DuofitClassifier.fit` takes it (2-D, 3-D sequences, or token ids).
        """
        spec = self._routed_spec()
        x, y = _validated(self, spec, X, y, y_numeric=True, multi_output=True)
        if spec.loss.type not in _REGRESSION_LOSSES:
            raise SpecError(
                f"loss.type: {type(self).__name__} needs one of {', '.join(_REGRESSION_LOSSES)} "
                f"(got {spec.loss.type!r}); use DuofitClassifier for class labels",
                path="loss.type",
            )
        y = np.asarray(y, dtype=np.float64)
        self.n_outputs_ = 1 if y.ndim == 1 else int(y.shape[1])
        self.multioutput_ = y.ndim == 2
        spec = self._adapt(spec, self.n_outputs_, spec.loss.model_dump(mode="json"), None)
        self._train(x, y, spec, sample_weight)  # sample_weight: one weight per row (module docstring)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predicted targets in ``y``'s units: ``(n_samples,)``, or ``(n_samples, k)`` for a 2-d ``y``."""
        out = self._outputs(X)
        if getattr(self, "target_scaler_", None) is not None:
            out = self.target_scaler_.inverse_transform(out)
        return out if getattr(self, "multioutput_", False) else out[:, 0]

    def __sklearn_tags__(self) -> Any:
        """scikit-learn's tags: a 2-d ``y`` (several targets) is supported."""
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
