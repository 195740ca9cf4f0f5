"""Train and predict on arrays you already hold (a fold, an estimator's X/y), in this process.

``duofit.run`` loads the data named by the spec; cross-validation and the scikit-learn
estimators bring their own arrays. :func:`run_on_dataset` is ``duofit.run`` with the
dataset given (same plan, recorder, backend ``fit`` and reference metrics), and
:func:`predict_outputs` runs a trained model (weights in duofit's layout) on new inputs
with the backend's own layers.

Example:
    >>> from duofit.common.loader import load_spec
    >>> from duofit.common.data import load_dataset
    >>> spec = load_spec("examples/seed.toml")                         # doctest: +SKIP
    >>> res = run_on_dataset(spec, load_dataset(spec), "torch")        # doctest: +SKIP
    >>> predict_outputs("torch", spec, res.weights, x).shape           # doctest: +SKIP
    (200, 1)
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from duofit.backends.base import make_plan
from duofit.common.data import Dataset
from duofit.common.envinfo import base_environment
from duofit.common.errors import BackendError
from duofit.common.history import ProgressFn, recorder_for
from duofit.common.metrics import compute_metrics
from duofit.common.registry import get_backend
from duofit.common.result import RunResult
from duofit.common.spec import Spec

__all__ = ["predict_outputs", "run_on_dataset"]


def _timings(fit_timings: dict[str, Any], total_s: float) -> dict[str, float]:
    epochs = [float(s) for s in fit_timings.get("epoch_s", [])]
    return {
        "total_s": total_s,
        "build_s": float(fit_timings["build_s"]),
        "fit_s": float(fit_timings["fit_s"]),
        "predict_s": float(fit_timings["predict_s"]),
        "first_epoch_s": epochs[0] if epochs else float("nan"),
        "steady_epoch_s": float(np.median(epochs[1:])) if len(epochs) > 1 else float("nan"),
    }


def run_on_dataset(spec: Spec, dataset: Dataset, backend: str, progress: ProgressFn | None = None) -> RunResult:
    """Train ``spec`` on a prepared :class:`~duofit.common.data.Dataset` with one backend.

    The same steps as :func:`duofit.run` (shared plan: initial weights from
    ``train.seed``, batch order; shared recorder; reference metrics on the test part).

    Args:
        spec: A validated spec; its ``data`` section is not read.
        dataset: Split and scaled arrays.
        backend: ``"torch"`` or ``"keras"``.
        progress: Optional per-epoch callback ``(epoch, epochs, history_row)``.

    Returns:
        A :class:`~duofit.RunResult` whose ``metrics`` are computed on ``dataset.x_test``.

    Example:
        >>> res = run_on_dataset(spec, fold.dataset, "keras")   # doctest: +SKIP
        >>> res.metrics["accuracy"]                             # doctest: +SKIP
        0.95
    """
    t0 = time.perf_counter()
    module = get_backend(backend)
    plan = make_plan(spec, dataset)
    recorder = recorder_for(spec, dataset.y_val, progress)
    fitted = module.fit(plan, recorder)
    from_logits = bool(getattr(spec.loss, "from_logits", False))
    metrics = compute_metrics(spec.metrics, spec.task, dataset.y_test, fitted.test_outputs, from_logits)
    env = {**base_environment(), **module.environment(spec.train.device), **fitted.environment}
    env.update({"backend": backend, "dtype": spec.train.dtype, "batch_size": spec.train.batch_size})
    return RunResult(
        backend=backend,
        spec=spec,
        history=recorder.frame(),
        metrics=metrics,
        predictions=np.asarray(fitted.test_outputs),
        y_test=dataset.y_test,
        timings=_timings(fitted.timings, time.perf_counter() - t0),
        environment=env,
        weights=fitted.weights,
        best_epoch=recorder.best_epoch,
        stopped_epoch=recorder.stopped_epoch,
        diverged=recorder.diverged,
        message=recorder.message,
    )


def _predict_torch(spec: Spec, weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    import torch

    from duofit.backends.torch.layers import build_model, set_weights

    dtype = {"float32": torch.float32, "float64": torch.float64}[spec.train.dtype]
    model = build_model(spec, x.shape[1]).to(dtype=dtype)
    set_weights(model, spec, weights)
    model.eval()
    with torch.inference_mode():
        return model(torch.as_tensor(x, dtype=dtype)).numpy()


def _predict_keras(spec: Spec, weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    from duofit.backends.keras.layers import build_model, floatx, set_weights

    dtype = spec.train.dtype
    with floatx(dtype):
        model, heads = build_model(spec, x.shape[1], dtype)
        set_weights(heads, spec, weights)
        return np.asarray(model(x.astype(dtype), training=False))


# Inference with each backend's own layer translation (dropout off, batch norm on its
# moving statistics), so predictions on new data come from the framework that trained.
_PREDICTORS = {"torch": _predict_torch, "keras": _predict_keras}


def predict_outputs(backend: str, spec: Spec, weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Raw model outputs (logits or probabilities, per the spec's loss) for inputs ``x``.

    Args:
        backend: The backend that trained the weights.
        spec: The spec the weights belong to.
        weights: Weights in duofit's layout (``RunResult.weights``).
        x: ``[n, n_features]`` inputs, already scaled as the training data was.

    Returns:
        ``[n, units of the last dense layer]`` float array.

    Example:
        >>> predict_outputs("torch", res.spec, res.weights, x_new)   # doctest: +SKIP
    """
    get_backend(backend)  # checks the name and the install; sets KERAS_BACKEND before keras loads
    predictor = _PREDICTORS.get(backend)
    if predictor is None:
        raise BackendError(f"backend {backend!r} has no predictor here yet; known: {', '.join(_PREDICTORS)}")
    return np.asarray(predictor(spec, weights, np.asarray(x, dtype=np.float64)), dtype=np.float64)
