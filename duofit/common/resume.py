"""Where a resumed run starts: a run or ``duofit convert`` folder's spec, weights and optimizer state.

A run folder (``duofit run``/``compare``) holds ``weights.npz``; a convert folder the target
framework's file (``model.safetensors``, ``model.weights.h5``, ...); both hold ``spec.json`` and,
when the run ended on its last step's weights, ``optimizer.npz`` (:mod:`duofit.common.optstate`).

Example:
    >>> import tempfile
    >>> read_trained(tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    duofit.common.errors.DataError: /tmp/... has no spec.json: give a folder written by `duofit run`, ...
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from duofit.common.data import load_dataset
from duofit.common.errors import DataError, SpecError
from duofit.common.io import load_npz
from duofit.common.optstate import OPTIMIZER_FILE, OptimizerState, load_state
from duofit.common.registry import describe, get_backend
from duofit.common.spec import Spec

__all__ = ["MODEL_FILE_STEM", "check_same_training", "model_file", "read_trained", "resume_point"]

MODEL_FILE_STEM = "model"  # a convert folder's framework file: model.safetensors, model.weights.h5, ...


def model_file(folder: Path) -> tuple[str, Path] | None:
    """The framework file of a ``duofit convert`` folder and the backend that reads it, if there is one."""
    for backend in ("torch", "keras"):  # the Keras backends share one file format
        for suffix in describe(backend).export_formats:
            path = folder / f"{MODEL_FILE_STEM}{suffix}"
            if path.exists():
                return backend, path
    return None


def read_trained(folder: str | Path) -> tuple[Spec, dict[str, np.ndarray], str]:
    """Spec, duofit-layout weights and where they came from, for a run or convert folder.

    A convert folder's framework file is read with its framework (imported then); a run
    folder's ``weights.npz`` needs none.

    Raises:
        DataError: no ``spec.json`` or no weights in ``folder``, or a file that does not fit the spec.
    """
    folder = Path(folder)
    spec_file = folder / "spec.json"
    if not spec_file.exists():
        raise DataError(f"{folder} has no spec.json: give a folder written by `duofit run`, `compare` or `convert`")
    spec = Spec.model_validate_json(spec_file.read_text(encoding="utf-8"))
    found = model_file(folder)
    if found is not None:
        backend, path = found
        shape = load_dataset(spec).x_train.shape[1:]
        return spec, get_backend(backend).load_weights(spec, path, shape), f"{backend} file {path.name}"
    if (folder / "weights.npz").exists():
        return spec, load_npz(folder / "weights.npz"), "weights.npz"
    raise DataError(f"{folder} holds no weights (weights.npz, model.safetensors, model.weights.h5 ...)")


def check_same_training(spec: Spec, theirs: Spec, folder: Path) -> None:
    """Refuse to resume a folder trained with another model, optimizer or batch size.

    The model's initial-weights file (``model.weights``) is not compared: a resumed run starts
    from the folder's weights.

    Raises:
        SpecError: names the first section that differs (its field path), with both values.
    """
    sections = {
        "model": (spec.model.model_dump(exclude={"weights"}), theirs.model.model_dump(exclude={"weights"})),
        "optimizer": (spec.optimizer.model_dump(), theirs.optimizer.model_dump()),
        "train.batch_size": (spec.train.batch_size, theirs.train.batch_size),
    }
    for path, (mine, other) in sections.items():
        if mine != other:
            raise SpecError(
                f"{path}: differs from the spec {folder} was trained with ({folder / 'spec.json'}); resuming "
                f"continues that training, so it needs the same {path} (this spec: {mine}; there: {other})",
                path=path,
            )


def resume_point(
    folder: str | Path, spec: Spec, expected: Mapping[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], OptimizerState]:
    """The weights and optimizer state ``spec``'s training continues from, all checked.

    Args:
        folder: A run or convert folder.
        spec: The spec to continue; ``train.epochs`` counts the epochs of the whole training.
        expected: The model's weights by name (any values: their names and shapes are checked).

    Raises:
        SpecError: another model, optimizer or batch size than the folder's; no epochs left.
        DataError: no spec, weights or optimizer state there, or ones that do not fit the model.
    """
    folder = Path(folder)
    theirs, weights, origin = read_trained(folder)
    check_same_training(spec, theirs, folder)
    state = load_state(folder)
    if state.epochs_done >= spec.train.epochs:
        raise SpecError(
            f"train.epochs: {folder} trained {state.epochs_done} epochs already and train.epochs is "
            f"{spec.train.epochs}: nothing left to train; set train.epochs above {state.epochs_done}",
            path="train.epochs",
        )
    for name, arr in expected.items():
        if name not in weights or np.shape(weights[name]) != np.shape(arr):
            got = "missing" if name not in weights else f"shape {list(np.shape(weights[name]))}"
            raise DataError(f"{folder} ({origin}): weight {name} is {got}, the model needs {list(np.shape(arr))}")
    state.check(spec, weights, where=str(folder / OPTIMIZER_FILE))
    return weights, state
