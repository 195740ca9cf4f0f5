"""Weight transfer between backends, verified before anything is written.

``convert(src, to="keras")`` reads a trained model from ``src`` — a run folder written by
``duofit run/compare`` (``weights.npz``) or a folder written by a previous ``convert``
(its framework file) — writes it in the target framework's own format, reloads that file
with the target framework, predicts the test split and checks the predictions against the
source's within a named tolerance. Only then is the output folder moved into place.
The source's optimizer state (``optimizer.npz``, duofit's framework-free layout, see
:mod:`duofit.common.optstate`) is checked against the spec and the weights and travels with
them, so ``duofit run --resume-from`` can continue training on the target backend; each
backend translates it to its own optimizer's variables when it resumes.
No pickle anywhere: ``.safetensors``/``.npz`` for torch, ``.weights.h5``/``.keras``
(loaded with ``safe_mode=True``) for Keras.

Example:
    Not run as a doctest: it needs a trained run folder and both backends installed.

    >>> info = convert("results/seed/torch", to="keras", out="results/seed/torch-as-keras")  # doctest: +SKIP
    >>> info["max_rel_diff"] < 1e-6  # doctest: +SKIP
    True
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from duofit.common.data import load_dataset
from duofit.common.errors import DataError, SpecError
from duofit.common.io import load_npz, save_npz, write_json
from duofit.common.optstate import OPTIMIZER_FILE, OptimizerState, load_state, save_state
from duofit.common.registry import BACKENDS, describe, get_backend
from duofit.common.resume import MODEL_FILE_STEM as _FILE_STEM
from duofit.common.resume import model_file as _model_file
from duofit.common.resume import read_trained as read_model
from duofit.common.spec import Spec

__all__ = ["CONVERTED_DIR", "CONVERT_RTOL", "convert", "default_out", "read_model"]

# Predictions after a round trip through a framework file. float32: the file stores the
# same float32 values, so only the forward pass' summation order differs (~1e-7); the
# documented target for torch -> keras -> torch is 1e-6. float64: ~1e-15, checked at 1e-12.
CONVERT_RTOL = {"float32": 1e-6, "float64": 1e-12}
# Default conversions go into <results>/converted/<src>-to-<dst>: a name no backend's
# result folder (<results>/<backend>) can have
CONVERTED_DIR = "converted"


def _formats(backend: str) -> tuple[str, ...]:
    """The backend's weight-file suffixes, its default first (no framework is imported)."""
    return tuple(describe(backend).export_formats)


def _predictions(folder: Path, spec: Spec, weights: dict[str, np.ndarray], backend: str | None) -> np.ndarray:
    if (folder / "predictions.npz").exists():
        return load_npz(folder / "predictions.npz")["predictions"]
    dataset = load_dataset(spec)  # predictions are saved in the target's units: compare in them
    return dataset.in_target_units(get_backend(backend or "torch").forward(spec, weights, np.asarray(dataset.x_test)))


def _optimizer_state(src: Path, spec: Spec, weights: dict[str, np.ndarray]) -> OptimizerState | None:
    """The source's optimizer state, checked against its spec and weights; ``None`` without one."""
    if not (src / OPTIMIZER_FILE).exists():
        return None
    state = load_state(src)
    state.check(spec, weights, where=str(src / OPTIMIZER_FILE))
    return state


def _state_note(state: OptimizerState | None) -> dict[str, Any] | None:
    """What the manifest says about the carried optimizer state."""
    if state is None:
        return None
    return {
        "file": OPTIMIZER_FILE,
        "optimizer": state.optimizer,
        "step": state.step,
        "epochs_done": state.epochs_done,
        "slots": list(state.slot_names),
    }


def default_out(src: str | Path, to: str) -> Path:
    """Where ``convert`` writes when no output folder is given: ``<results>/converted/<src>-to-<to>``.

    A conversion of a conversion stays in the same ``converted`` folder.

    Example:
        >>> default_out("results/seed/keras", "torch").as_posix()
        'results/seed/converted/keras-to-torch'
        >>> default_out("results/seed/converted/keras-to-torch", "keras").as_posix()
        'results/seed/converted/keras-to-torch-to-keras'
    """
    src = Path(src)
    parent = src.parent if src.parent.name == CONVERTED_DIR else src.parent / CONVERTED_DIR
    return parent / f"{src.name}-to-{to}"


def _checked_target(src: Path, to: str, out: str | Path | None, fmt: str | None) -> tuple[str, Path]:
    """The file format and output folder of a conversion to ``to``, checked before any work.

    Raises:
        SpecError: unknown target backend or a format it cannot write.
        DataError: the output folder exists and is not empty.
    """
    if to not in BACKENDS:
        raise SpecError(f"--to {to!r}: unknown backend; choose one of {', '.join(BACKENDS)}", path="to")
    formats = _formats(to)
    fmt = fmt or formats[0]
    if fmt not in formats:
        raise SpecError(f"--format {fmt!r} is not a {to} format; choose one of {', '.join(formats)}")
    folder = Path(out) if out is not None else default_out(src, to)
    if folder.exists() and any(folder.iterdir()):
        raise DataError(f"output folder {folder} exists and is not empty; choose another --out", path="out")
    return fmt, folder


def _checked_agreement(got: np.ndarray, expected: np.ndarray, to: str, dtype: str) -> tuple[float, float]:
    """The converted model's max relative prediction difference and its tolerance (:data:`CONVERT_RTOL`).

    Raises:
        DataError: the difference exceeds the tolerance (or is NaN).

    Example:
        >>> _checked_agreement(np.array([1.0, 2.0]), np.array([1.0, 2.0]), "keras", "float64")
        (0.0, 1e-12)
    """
    diff = float(np.max(np.abs(got - expected))) / max(float(np.max(np.abs(expected))), 1e-300)
    tol = CONVERT_RTOL[dtype]
    if not diff <= tol:
        raise DataError(
            f"converted {to} model disagrees with the source: max relative prediction difference {diff:.2e} "
            f"> {tol:.0e}; nothing was written"
        )
    return diff, tol


def _write_stage(
    stage: Path, spec: Spec, got: np.ndarray, state: OptimizerState | None, manifest: dict[str, Any]
) -> None:
    """Write the conversion's files next to its model file: spec, predictions, optimizer state, manifest."""
    (stage / "spec.json").write_text(spec.model_dump_json(indent=2), encoding="utf-8")
    save_npz(stage / "predictions.npz", {"predictions": got})
    if state is not None:
        save_state(stage, state)
    write_json(stage / "convert.json", manifest)


def _move_into_place(stage: Path, out: Path) -> None:
    """Move the finished ``stage`` folder to ``out`` (an empty ``out`` is replaced; its parents are made)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        out.rmdir()
    shutil.move(str(stage), str(out))


def convert(src: str | Path, to: str, out: str | Path | None = None, fmt: str | None = None) -> dict[str, Any]:
    """Convert a trained model to backend ``to``; verify predictions; write ``out``.

    Args:
        src: A run folder (``weights.npz``) or a previous convert folder (``model.<ext>``).
        to: Target backend name.
        out: Output folder (default :func:`default_out`: ``<results>/converted/<src>-to-<to>``);
            refused if it exists and is not empty.
        fmt: File format: ``.safetensors``/``.npz`` (torch), ``.weights.h5``/``.keras`` (Keras).

    Returns:
        The manifest written as ``convert.json`` (source, target, file, max_rel_diff, tolerance,
        ``optimizer_state``: the carried state's file, step, epochs done and slots, or ``None``
        when the source has none), and ``out``: the folder written.

    Raises:
        DataError: the predictions disagree beyond the tolerance (nothing is written), or the
            source is unreadable, or its optimizer state does not fit the spec and weights.
            SpecError: unknown target or format.
    """
    src = Path(src)
    fmt, out = _checked_target(src, to, out, fmt)
    spec, weights, origin = read_model(src)
    state = _optimizer_state(src, spec, weights)
    found = _model_file(src)
    expected = _predictions(src, spec, weights, found[0] if found else None)
    dataset = load_dataset(spec)
    x_test = np.asarray(dataset.x_test)  # a streamed part (kinds npy, parquet) is loaded: convert checks on it whole
    target = get_backend(to)
    with tempfile.TemporaryDirectory(prefix=".convert-", dir=out.parent if out.parent.exists() else None) as tmp:
        stage = Path(tmp) / "out"
        stage.mkdir()
        model_path = stage / f"{_FILE_STEM}{fmt}"
        target.save_weights(spec, weights, model_path, x_test.shape[1:])
        reloaded = target.load_weights(spec, model_path, x_test.shape[1:])  # read back with the target framework
        got = dataset.in_target_units(target.forward(spec, reloaded, x_test))  # as predictions.npz holds them
        diff, tol = _checked_agreement(got, expected, to, spec.train.dtype)
        manifest = {
            "source": str(src),
            "read_from": origin,
            "target": to,
            "file": model_path.name,
            "max_rel_diff": diff,
            "tolerance": tol,
            "test_samples": len(x_test),
            "optimizer_state": _state_note(state),
        }
        _write_stage(stage, spec, got, state, manifest)
        _move_into_place(stage, out)
    return {**manifest, "out": str(out)}
