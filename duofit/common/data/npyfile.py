"""Features and targets in two ``.npy`` files (``data.kind = "npy"``), memory-mapped, never loaded whole.

``data.x`` holds float features ``(samples, features)``, sequences ``(samples, steps,
features)`` or images ``(samples, height, width, channels)`` in float16/32/64; ``data.y`` one
label or value per sample ``(samples,)`` or several regression targets ``(samples, k)``. The
features stay on disk: :func:`open_npy` maps them read-only (``numpy.load(mmap_mode="r")``)
and the training split is read per batch (:mod:`duofit.common.data.stream`); the targets are
small (one value per sample) and are read into memory.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> from duofit.common.loader import load_spec
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> np.save(folder / "x.npy", np.ones((4, 3), dtype=np.float32))
    >>> np.save(folder / "y.npy", np.array([0, 1, 0, 1]))
    >>> spec = load_spec({"data": {"kind": "npy", "x": str(folder / "x.npy"), "y": str(folder / "y.npy")},
    ...                   "model": {"layers": [{"type": "dense", "units": 1}]},
    ...                   "loss": {"type": "binary_crossentropy"}})
    >>> x, y, names = open_npy(spec)
    >>> type(x).__name__, x.dtype.name, y.tolist(), names
    ('memmap', 'float32', [0, 1, 0, 1], ('x0', 'x1', 'x2'))
"""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np

from duofit.common.data.rowfile import RESIDENT_MAP_BYTES
from duofit.common.errors import DataError
from duofit.common.spec import Spec

__all__ = ["FEATURE_DTYPES", "NPY_HINT", "check_rows", "open_npy", "release_pages"]

# Appended to every "too large for memory" refusal of an in-memory kind.
NPY_HINT = (
    "for data larger than memory save the features and targets with numpy.save and use data.kind = 'npy' "
    "(x = 'features.npy', y = 'targets.npy': memory-mapped, read per batch)"
)

# Feature dtypes a memory map may hold: floats, cast to float64 per batch (exactly).
FEATURE_DTYPES = ("float16", "float32", "float64")
_SAVE_HINT = "save it with numpy.save(path, array)"


def open_npy(spec: Spec) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """The memory-mapped features, the targets (in memory) and the feature names of ``data.x`` / ``data.y``.

    Args:
        spec: A validated spec with ``data.kind = 'npy'``.

    Returns:
        ``(x, y, names)``: ``x`` a read-only ``numpy.memmap`` of the file's dtype, ``y`` as
        stored (a single target column squeezed to ``(samples,)``), names ``x0, x1, ...`` (per
        feature of a sequence, per flat value otherwise).

    Raises:
        DataError: (path ``data.x`` or ``data.y``) a missing or unreadable file, not an
            ``.npy`` array, object or integer features, a shape duofit cannot train on, row
            counts that differ between the two files, non-numeric or non-finite targets.
    """
    x = _mapped(Path(str(spec.data.x)), "x")
    y = _mapped(Path(str(spec.data.y)), "y")
    _check_x(x, Path(str(spec.data.x)))
    y = _checked_y(np.asarray(y), len(x), Path(str(spec.data.y)), Path(str(spec.data.x)))
    width = x.shape[-1] if x.ndim == 3 else int(np.prod(x.shape[1:]))
    return x, y, tuple(f"x{i}" for i in range(width))


def _mapped(path: Path, field: str) -> np.ndarray:
    """``path`` mapped read-only, or a DataError on ``data.<field>``."""
    where = f"data.{field}"
    try:
        if not path.is_file():
            what = "not found" if not path.exists() else "is not a regular file"
            raise DataError(f"{where}: {path} {what}; give a .npy file ({_SAVE_HINT})", path=where)
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except DataError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        objects = "allow_pickle" in str(exc) or "Python objects" in str(exc)
        hint = "it holds Python objects (dtype object); save float numbers" if objects else exc
        raise DataError(
            f"{where}: cannot read {path.name} as a .npy array ({hint}); {_SAVE_HINT}", path=where
        ) from None
    if not isinstance(arr, np.ndarray) or isinstance(arr, np.lib.npyio.NpzFile):
        raise DataError(f"{where}: {path.name} is an .npz archive; use data.kind = 'npz' for it", path=where)
    return arr


def _check_x(x: np.ndarray, path: Path) -> None:
    """Float features of a shape duofit trains on (their values are checked while streaming)."""
    if x.dtype.name not in FEATURE_DTYPES:
        kind = {"i": "integers", "u": "integers", "b": "booleans", "O": "Python objects"}.get(x.dtype.kind, "")
        raise DataError(
            f"data.x: {path.name} holds {kind or x.dtype.name} (dtype {x.dtype}); memory-mapped features must be "
            f"one of {', '.join(FEATURE_DTYPES)}: save x.astype('float32') (token ids: use data.kind = 'npz')",
            path="data.x",
        )
    if not 2 <= x.ndim <= 4 or len(x) == 0:
        raise DataError(
            f"data.x: {path.name} has shape {list(x.shape)}; use (samples, features), (samples, steps, features) or "
            "(samples, height, width, channels) with at least one sample"
            + (" - e.g. x[:, None] for one feature" * (x.ndim == 1)),
            path="data.x",
        )
    if not x.flags.c_contiguous and x.nbytes > RESIDENT_MAP_BYTES:
        # Column-major on disk: each row's values lie a column apart, so every batch would touch
        # pages all over the file, and pread cannot serve a row in one read. A map up to
        # RESIDENT_MAP_BYTES may be resident anyway and is read as it is.
        raise DataError(
            f"data.x: {path.name} ({x.nbytes:,} bytes) is stored in column-major (Fortran) order, so every row "
            "read touches the whole file; save it row-major once: numpy.save(path, numpy.ascontiguousarray(x))",
            path="data.x",
        )


def _checked_y(y: np.ndarray, n: int, path: Path, x_path: Path) -> np.ndarray:
    """One finite target row per sample, numbers or strings."""
    if y.ndim not in (1, 2) or len(y) != n:
        raise DataError(
            f"data.y: {path.name} has shape {list(y.shape)} but {x_path.name} (data.x) has {n:,} rows; y must be "
            f"({n},) (one label or value per sample) or ({n}, targets), in the same row order as x",
            path="data.y",
        )
    if y.dtype.kind not in "fiubU":
        raise DataError(f"data.y: {path.name} has dtype {y.dtype}; use numbers or strings", path="data.y")
    y = np.array(y)  # in memory: one value per sample, read once
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise DataError(f"data.y: {path.name} holds NaN or infinite values", path="data.y")
    return y[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y


def check_rows(chunk: np.ndarray, first: int, where: str = "data.x") -> None:
    """Raise when a chunk of feature rows holds NaN or infinite values (``first``: the chunk's first row's number).

    Example:
        >>> check_rows(np.array([[1.0], [np.nan]]), 10)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        duofit.common.errors.DataError: data.x: NaN or infinite values in 1 sample(s) (first: row 11); fill ...
    """
    bad = ~np.isfinite(chunk.reshape(len(chunk), -1)).all(axis=1)
    if bad.any():
        raise DataError(
            f"{where}: NaN or infinite values in {int(bad.sum())} sample(s) (first: row "
            f"{first + int(np.flatnonzero(bad)[0])}); fill or drop them before saving",
            path=where,
        )


def release_pages(arr: np.ndarray) -> None:
    """Drop a memory map's pages from this process' resident set (the page cache keeps them: re-reads stay cheap).

    A read-only file mapping counts every page it touched in the process' RSS; releasing them
    after each pass keeps the peak at what one chunk or one batch touches. No-op for an array
    that is not a memory map, or where ``madvise`` is missing.
    """
    raw = getattr(arr, "_mmap", None)
    if raw is None:
        base = getattr(arr, "base", None)
        raw = base if isinstance(base, mmap.mmap) else getattr(base, "_mmap", None)
    if isinstance(raw, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
        raw.madvise(mmap.MADV_DONTNEED)
