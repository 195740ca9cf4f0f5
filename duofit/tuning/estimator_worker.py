"""The scikit-learn estimators' training and prediction on given arrays, here or in a worker process.

Keras reads ``KERAS_BACKEND`` once per process, so an estimator whose Keras backend needs
another framework than the one Keras already runs on here (a grid over ``backend`` in
``["keras", "keras-jax"]``) trains and predicts in a worker process:
``python -m duofit.tuning.estimator_worker SPEC.json BACKEND FOLDER --task fit|predict``,
started by :func:`~duofit.common.isolated.spawn` like every duofit worker. The parent writes
the arrays into ``FOLDER`` (npz, no pickle); the worker prepares them with the same code
(:func:`estimator_dataset`) and writes back a RunResult (``fit``) or the outputs (``predict``).
The first Keras framework an estimator uses, and torch, train in this process.

Example:
    >>> import numpy as np
    >>> from duofit.common.loader import load_spec
    >>> spec = load_spec({"data": {"kind": "make_classification", "standardize": False},
    ...                   "model": {"layers": [{"type": "dense", "units": 1}]},
    ...                   "loss": {"type": "binary_crossentropy", "from_logits": True}})
    >>> parts = Parts(np.arange(4), np.arange(4), np.arange(4), True)
    >>> x, y = np.eye(4), np.array([0, 1, 0, 1])
    >>> estimator_dataset(spec, x, y, np.array([1.0, 2.0, 0.0, 1.0]), parts).w_train
    array([1., 2., 0., 1.])
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from duofit.common.data import Dataset, Parts, prepare
from duofit.common.errors import DataError
from duofit.common.io import load_npz, save_npz
from duofit.common.isolated import spawn, worker_main
from duofit.common.result import RunResult
from duofit.common.spec import Spec

__all__ = ["estimator_dataset", "fit_in_worker", "main", "needs_worker", "predict_in_worker"]

_MODULE = "duofit.tuning.estimator_worker"
_ARRAYS = "arrays.npz"  # parent -> worker: x, y, w (optional), the parts' row indices; or x to predict
_WEIGHTS = "weights.npz"  # parent -> worker (predict): the trained weights, duofit's layout
_OUTPUTS = "outputs.npz"  # worker -> parent (predict)
_RESULT = "result"  # worker -> parent (fit): the RunResult folder


def estimator_dataset(spec: Spec, x: np.ndarray, y: np.ndarray, w: np.ndarray | None, parts: Parts) -> Dataset:
    """``prepare`` on an estimator's arrays, with the training rows' sample weights attached.

    Args:
        spec: The estimator's spec.
        x: Features.
        y: Targets (labels or values).
        w: One weight per row of ``x``, or ``None``; the rows held out for validation lose theirs.
        parts: The rows of each part.

    Raises:
        DataError: the spec does not fit the data, or every training row weighs zero.
    """
    dataset = prepare(spec, x, y, parts=parts)
    if w is None:
        return dataset
    w_train = w[parts.train]
    if not np.any(w_train > 0):
        raise DataError(
            f"sample_weight: every training row has weight zero once data.val_size = {spec.data.val_size} of the "
            "rows is held out for validation; give more rows a weight > 0, or validate on the training rows "
            "(estimator parameter data__val_size=0)",
            path="sample_weight",
        )
    return replace(dataset, w_train=w_train)


def needs_worker(backend: str) -> bool:
    """Whether ``backend`` runs Keras on another framework than the one Keras already runs on here.

    Example:
        >>> needs_worker("torch")
        False
    """
    from duofit.backends.kerasenv import selected
    from duofit.common.registry import describe

    framework = getattr(describe(backend), "keras_framework", None)
    current = selected()
    return framework is not None and current is not None and framework != current


def fit_in_worker(
    spec: Spec, backend: str, x: np.ndarray, y: np.ndarray, w: np.ndarray | None, parts: Parts
) -> RunResult:
    """Train in a fresh process: :func:`estimator_dataset` there, then ``run_on_dataset``.

    ``y`` must be numeric (class indices for a classifier): the arrays travel as npz, without pickle.

    Raises:
        DuofitError: the worker's own error (same type and field path), or its crash.
    """
    arrays = {"x": x, "y": y, "train": parts.train, "val": parts.val, "test": parts.test}
    arrays["val_is_test"] = np.asarray(parts.val_is_test)
    if w is not None:
        arrays["w"] = w
    with tempfile.TemporaryDirectory(prefix="duofit-estimator-") as tmp:
        folder = Path(tmp)
        save_npz(folder / _ARRAYS, arrays)
        spawn(_MODULE, spec, backend, folder, "scikit-learn fit", ["--task", "fit"])
        return RunResult.load(folder / _RESULT)


def predict_in_worker(spec: Spec, backend: str, weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Raw outputs of the trained model for ``x`` (already scaled), computed in a fresh process."""
    with tempfile.TemporaryDirectory(prefix="duofit-estimator-") as tmp:
        folder = Path(tmp)
        save_npz(folder / _ARRAYS, {"x": x})
        save_npz(folder / _WEIGHTS, weights)
        spawn(_MODULE, spec, backend, folder, "scikit-learn predict", ["--task", "predict"])
        return load_npz(folder / _OUTPUTS)["outputs"]


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", choices=("fit", "predict"), required=True)


def _body(spec: Spec, backend: str, folder: Path, args: argparse.Namespace) -> None:
    from duofit.tuning.fitting import predict_outputs, run_on_dataset

    arrays = load_npz(folder / _ARRAYS)
    if args.task == "predict":
        outputs = predict_outputs(backend, spec, load_npz(folder / _WEIGHTS), arrays["x"])
        save_npz(folder / _OUTPUTS, {"outputs": outputs})
        return
    parts = Parts(arrays["train"], arrays["val"], arrays["test"], bool(arrays["val_is_test"]))
    dataset = estimator_dataset(spec, arrays["x"], arrays["y"], arrays.get("w"), parts)
    run_on_dataset(spec, dataset, backend).save(folder / _RESULT)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code.

    Example:
        >>> main(["spec.json", "keras-jax", "tmp", "--task", "fit"])  # doctest: +SKIP
        0
    """
    return worker_main(_MODULE, argv, _body, _options)


if __name__ == "__main__":
    sys.exit(main())
