"""Train and predict on arrays you already hold (a fold, an estimator's X/y), in this process.

``duofit.run`` loads the data named by the spec; cross-validation and the scikit-learn
estimators bring their own arrays. :func:`run_on_dataset` is ``duofit.run`` with the
dataset given, and :func:`predict_outputs` runs a trained model (weights in duofit's
layout) on new inputs with the backend's own layers (its ``Backend.forward``).

Example:
    Not run as a doctest: it trains a model and needs torch installed.

    >>> from duofit.common.loader import load_spec
    >>> from duofit.common.data import load_dataset
    >>> spec = load_spec("examples/seed.toml")                         # doctest: +SKIP
    >>> res = run_on_dataset(spec, load_dataset(spec), "torch")        # doctest: +SKIP
    >>> predict_outputs("torch", spec, res.weights, x).shape           # doctest: +SKIP
    (200, 1)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from duofit.common.data import Dataset
from duofit.common.history import ProgressFn
from duofit.common.registry import get_backend
from duofit.common.result import RunResult
from duofit.common.spec import Spec

__all__ = ["model_inputs", "predict_outputs", "run_on_dataset"]


def run_on_dataset(spec: Spec, dataset: Dataset, backend: str, progress: ProgressFn | None = None) -> RunResult:
    """Train ``spec`` on a prepared :class:`~duofit.common.data.Dataset` with one backend.

    Exactly :func:`duofit.run` with ``dataset=`` (shared plan: initial weights from
    ``train.seed``, batch order; shared recorder; reference metrics on the test part).

    Args:
        spec: A validated spec; its ``data`` section is not read.
        dataset: Split and scaled arrays.
        backend: Backend name.
        progress: Optional per-epoch callback ``(epoch, epochs, history_row)``.

    Returns:
        A :class:`~duofit.RunResult` whose ``metrics`` are computed on ``dataset.x_test``.

    Example:
        Not run as a doctest: it trains a model and needs Keras installed.

        >>> res = run_on_dataset(spec, fold.dataset, "keras")   # doctest: +SKIP
        >>> res.metrics["accuracy"]                             # doctest: +SKIP
        0.95
    """
    from duofit.runner import run

    return run(spec, backend, progress=progress, dataset=dataset)


def predict_outputs(backend: str, spec: Spec, weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Raw model outputs (logits or probabilities, per the spec's loss) for inputs ``x``.

    Inference with the training backend's own layer translation (dropout off, batch norm on
    its moving statistics): :meth:`duofit.backends.base.Backend.forward`.

    Args:
        backend: The backend that trained the weights.
        spec: The spec the weights belong to.
        weights: Weights in duofit's layout (``RunResult.weights``).
        x: Inputs, already scaled as the training data was.

    Returns:
        ``[n, units of the last dense layer]`` float array.

    Example:
        Not run as a doctest: it needs trained weights and torch installed.

        >>> predict_outputs("torch", res.spec, res.weights, x_new)   # doctest: +SKIP
    """
    model = get_backend(backend)  # checks the name and the install; selects the framework first
    x = np.asarray(x)
    x = x if x.dtype.kind in "iu" else x.astype(np.float64)  # token ids stay integers: an embedding looks them up
    return np.asarray(model.forward(spec, weights, x), dtype=np.float64)


def model_inputs(spec: Spec, scaler: Any, x: np.ndarray) -> np.ndarray:
    """New inputs as the training inputs were made (token ids kept; features shaped and scaled).

    Float features take their sample shape (``data.sequence_shape`` / ``image_shape``) and the
    training part's scaler.

    The twin of :func:`duofit.common.data.features.prepare_features` for data that arrive after
    training: a ``(n, steps, features)`` array is scaled per feature over all steps (``StepScaler``),
    anything else flat, feature by feature.

    Example:
        >>> from duofit.common.loader import load_spec
        >>> spec = load_spec("examples/gru_digits_rows.toml")
        >>> model_inputs(spec, None, np.zeros((2, 64))).shape
        (2, 8, 8)
    """
    from duofit.common.data.features import shaped

    if x.dtype.kind in "iu":
        return x
    x = shaped(spec, x)
    if scaler is None:
        return x
    if x.ndim == 3:
        return np.asarray(scaler.transform(x))
    return np.asarray(scaler.transform(x.reshape(len(x), -1))).reshape(x.shape)
