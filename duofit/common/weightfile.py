"""Initial weights read from a file (``model.weights``) instead of drawn from ``train.seed``.

An imported model (``duofit import``) keeps its trained weights in a file next to its spec,
so the same start can be fine-tuned on every backend. The file holds one array per weight,
named as duofit names them (``layers.<i>.<param>``, the Keras layout: dense kernel
``[in, out]``), in an ``.npz`` (read without unpickling) or a ``.safetensors`` file (read
with safetensors' numpy API when it is installed). Every name the model needs must be there
with its exact shape, and nothing else: a file that does not fit the model is refused with
the names and shapes that differ, never padded or cut.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> np.savez(folder / "w.npz", **{"layers.0.kernel": np.ones((4, 3)), "layers.0.bias": np.zeros(3)})
    >>> expected = {"layers.0.kernel": (4, 3), "layers.0.bias": (3,)}
    >>> w = read_weight_file(folder / "w.npz", expected)
    >>> sorted(w), w["layers.0.kernel"].dtype.name
    (['layers.0.bias', 'layers.0.kernel'], 'float64')
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from duofit.common.errors import DataError
from duofit.common.io import load_npz

__all__ = ["WEIGHT_FIELD", "WEIGHT_SUFFIXES", "read_weight_file", "write_weight_file"]

WEIGHT_FIELD = "model.weights"
# The formats a weight file may have; both are read without executing code from the file
WEIGHT_SUFFIXES = (".npz", ".safetensors")
_MAX_LISTED = 6


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    suffix = path.suffix.lower()
    if suffix not in WEIGHT_SUFFIXES:
        raise DataError(
            f"{WEIGHT_FIELD}: {path.name} is not a weight file duofit reads; use one of {', '.join(WEIGHT_SUFFIXES)} "
            "(pickled .pt/.pth/.pkl files are never loaded: save a state as .npz or .safetensors)",
            path=WEIGHT_FIELD,
        )
    if not path.is_file():
        raise DataError(f"{WEIGHT_FIELD}: weight file not found: {path}", path=WEIGHT_FIELD)
    try:
        if suffix == ".npz":
            return load_npz(path)
        try:
            from safetensors.numpy import load_file
        except ImportError:
            raise DataError(
                f"{WEIGHT_FIELD}: reading {path.name} needs the safetensors package: pip install safetensors "
                "(or save the weights as .npz)",
                path=WEIGHT_FIELD,
            ) from None
        return dict(load_file(str(path)))
    except DataError:
        raise
    except Exception as exc:  # a truncated zip, a bad header, an object array
        raise DataError(f"{WEIGHT_FIELD}: cannot read {path}: {exc}", path=WEIGHT_FIELD) from None


def _listed(names: list[str]) -> str:
    more = f", ... ({len(names) - _MAX_LISTED} more)" if len(names) > _MAX_LISTED else ""
    return ", ".join(names[:_MAX_LISTED]) + more


def read_weight_file(path: str | Path, expected: Mapping[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """The weights of ``path`` as float64 arrays, in the order of ``expected``.

    Args:
        path: An ``.npz`` or ``.safetensors`` file.
        expected: Every weight name the model needs -> its shape.

    Returns:
        Name -> float64 array, ordered as ``expected``.

    Raises:
        DataError: (path ``model.weights``) the file is missing, unreadable or not a weight
            format; names are missing or extra; a shape differs; a value is not finite.
    """
    path = Path(path)
    arrays = _read_arrays(path)
    missing = [k for k in expected if k not in arrays]
    extra = [k for k in arrays if k not in expected]
    if missing or extra:
        parts = [
            f"missing {_listed(missing)}" if missing else "",
            f"not in the model {_listed(extra)}" if extra else "",
        ]
        raise DataError(
            f"{WEIGHT_FIELD}: {path.name} does not hold this model's weights: "
            + "; ".join(p for p in parts if p)
            + f" (the model has {_listed(list(expected))})",
            path=WEIGHT_FIELD,
        )
    out: dict[str, np.ndarray] = {}
    for name, shape in expected.items():
        arr = np.asarray(arrays[name])
        if tuple(arr.shape) != tuple(shape):
            raise DataError(
                f"{WEIGHT_FIELD}: {name} in {path.name} has shape {list(arr.shape)}; the model needs {list(shape)} "
                "(was the file written for another model or another data shape?)",
                path=WEIGHT_FIELD,
            )
        if arr.dtype.kind not in "fiub":
            raise DataError(f"{WEIGHT_FIELD}: {name} in {path.name} is not numeric ({arr.dtype})", path=WEIGHT_FIELD)
        arr = arr.astype(np.float64)
        if not np.isfinite(arr).all():
            raise DataError(f"{WEIGHT_FIELD}: {name} in {path.name} holds NaN or infinite values", path=WEIGHT_FIELD)
        out[name] = arr
    return out


def write_weight_file(path: str | Path, weights: Mapping[str, np.ndarray]) -> None:
    """Save duofit-layout weights as an ``.npz`` that :func:`read_weight_file` reads back."""
    from duofit.common.io import save_npz

    save_npz(path, {k: np.asarray(v) for k, v in weights.items()})
