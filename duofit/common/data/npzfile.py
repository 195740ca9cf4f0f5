"""Arrays ``x`` and ``y`` of one ``.npz`` file (``data.kind = "npz"``), read without unpickling.

``x`` may be float features ``(n, features)``, sequences ``(n, steps, features)``, images
``(n, height, width, channels)`` or integer token ids ``(n, steps)``; ``y`` holds one label or
value per sample ``(n,)``, or several regression targets ``(n, k)``. Booleans count as numbers.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> from duofit.common.loader import load_spec
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> np.savez(folder / "d.npz", x=np.ones((4, 3, 2)), y=np.array([0, 1, 0, 1]))
    >>> spec = load_spec({"data": {"kind": "npz", "path": str(folder / "d.npz")},
    ...                   "model": {"layers": [{"type": "flatten"}, {"type": "dense", "units": 1}]},
    ...                   "loss": {"type": "binary_crossentropy"}})
    >>> x, y, names = read_npz(spec, max_cells=10**6, max_bytes=10**6)
    >>> x.shape, x.dtype.name, names
    ((4, 3, 2), 'float64', ('x0', 'x1'))
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np

from duofit.common.data.csvfile import regular_file_size
from duofit.common.data.npyfile import NPY_HINT, release_pages
from duofit.common.errors import DataError
from duofit.common.spec import Spec

__all__ = ["NPZ_ARRAYS", "read_npz"]

# The two arrays a duofit .npz file holds; other arrays in it are ignored.
NPZ_ARRAYS = ("x", "y")
_SAVE_HINT = "save it with numpy.savez(path, x=x, y=y)"


def read_npz(spec: Spec, *, max_cells: int, max_bytes: int) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """``x`` (float64, or int64 token ids), ``y`` and feature names of ``data.path``.

    Args:
        spec: A validated spec with ``data.kind = 'npz'``.
        max_cells: Cap on the values of ``x`` and ``y`` together.
        max_bytes: Cap on the file's size on disk.

    Returns:
        ``(x, y, names)``; the names are ``x0, x1, ...`` for the last axis of a sequence
        and for the flat values of any other shape.

    Raises:
        DataError: (path ``data.path``) a missing or unreadable file, a missing array (the
            message lists the file's arrays), arrays pickled as objects, a shape duofit
            cannot train on, rows that do not match, NaN or infinite values.
    """
    path = Path(str(spec.data.path))
    _check_file(path, max_bytes)
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise DataError(
                f"data.path: {path.name} holds one array, not an .npz archive; {_SAVE_HINT}", path="data.path"
            )
        with archive:
            _check_members(archive, path, max_cells)
            mapped = _mapped_x(path, archive) if spec.train.dtype == "float32" else None
            x = mapped if mapped is not None else _array(archive, "x", path)
            y = _array(archive, "y", path)
    except DataError:  # a ValueError too: raised above on purpose, with its own message
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, AttributeError) as exc:
        raise DataError(
            f"data.path: cannot read {path.name} as an .npz archive ({exc}); {_SAVE_HINT}", path="data.path"
        ) from None
    x = _checked_x(x, path)
    y = _checked_y(y, len(x), path)
    width = x.shape[-1] if x.ndim == 3 else int(np.prod(x.shape[1:]))
    return x, y, tuple(f"x{i}" for i in range(width))


def _check_file(path: Path, max_bytes: int) -> None:
    size = regular_file_size(path, ".npz file")
    if size > max_bytes:
        raise DataError(
            f"data.path: {path} is {size:,} bytes; the cap is {max_bytes:,} (duofit.common.data.MAX_CSV_BYTES); "
            f"{NPY_HINT}",
            path="data.path",
        )


def _check_members(archive: np.lib.npyio.NpzFile, path: Path, max_cells: int) -> None:
    """Both arrays present, and their unpacked size within the cap (checked before anything unpacks)."""
    missing = [name for name in NPZ_ARRAYS if name not in archive.files]
    if missing:
        held = ", ".join(archive.files[:20]) or "no arrays"
        raise DataError(
            f"data.path: {path.name} has no array {missing[0]!r} (it holds: {held}); {_SAVE_HINT}",
            path="data.path",
        )
    # A compressed archive (numpy.savez_compressed) can unpack to far more than its size on disk.
    members = archive.zip
    unpacked = sum(int(members.getinfo(f"{name}.npy").file_size) for name in NPZ_ARRAYS) if members else 0
    if unpacked > 8 * max_cells:
        raise DataError(
            f"data.path: arrays x and y of {path.name} unpack to {unpacked:,} bytes, more than "
            f"{max_cells:,} float64 values (duofit.common.data.MAX_DATA_ELEMENTS); {NPY_HINT}",
            path="data.path",
        )


def _mapped_x(path: Path, archive: np.lib.npyio.NpzFile) -> np.ndarray | None:
    """``x`` as a read-only memory map of the archive, where it is stored float32, uncompressed and C-ordered.

    ``numpy.savez`` stores each array uncompressed (``ZIP_STORED``) as an ``.npy`` file inside
    the zip, so its values sit at a fixed offset: after the member's local header (30 bytes, its
    name and its extra field; the zip format's "local file header") and the ``.npy`` header. A
    float32 run prepares such data chunk by chunk (:mod:`duofit.common.data.features`), so the
    whole array is never held besides the prepared parts. Anything else (compressed, another
    dtype, Fortran order, an ``.npy`` format version other than 1.0/2.0): None, read as usual.
    """
    zipped = archive.zip
    info = zipped.getinfo("x.npy") if zipped is not None else None
    if info is None or info.compress_type != zipfile.ZIP_STORED:
        return None
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        local = fh.read(30)
        if len(local) < 30 or local[:4] != b"PK\x03\x04":
            return None
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        fh.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(fh)
        if version not in ((1, 0), (2, 0)):
            return None
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(fh)
        offset = fh.tell()
    if fortran or dtype != np.float32 or not 2 <= len(shape) <= 4 or 0 in shape:
        return None
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)


def _array(archive: np.lib.npyio.NpzFile, name: str, path: Path) -> np.ndarray:
    try:
        return np.asarray(archive[name])
    except ValueError as exc:
        if "allow_pickle" not in str(exc):
            raise
        raise DataError(
            f"data.path: array {name!r} of {path.name} holds Python objects (dtype object), which duofit does not "
            f"unpickle; save numbers instead ({name}.astype('float64'), or int64 token ids)",
            path="data.path",
        ) from None


def _checked_x(x: np.ndarray, path: Path) -> np.ndarray:
    """float64 (float32 kept as it is) features or int64 token ids, of a shape duofit trains on, with no NaN."""
    if x.dtype.kind not in "fiub":
        raise DataError(
            f"data.path: x of {path.name} has dtype {x.dtype}; duofit reads numbers (float features or int "
            "token ids)" + ("; for raw texts use data.kind = 'csv_text'" if x.dtype.kind in "US" else ""),
            path="data.path",
        )
    if x.dtype.kind in "iu":
        if x.ndim != 2:
            raise DataError(
                f"data.path: x of {path.name} holds integers of shape {list(x.shape)}: integer arrays are token ids of "
                "shape (samples, steps); if they are numeric features, save x as float (x.astype('float64'))",
                path="data.path",
            )
        if x.size and x.min() < 0:
            raise DataError(
                f"data.path: x of {path.name} holds negative token ids (min {x.min()}); ids are 0 (padding) and up",
                path="data.path",
            )
        return x.astype(np.int64)
    if not 2 <= x.ndim <= 4:
        raise DataError(
            f"data.path: x of {path.name} has shape {list(x.shape)}; use (samples, features), (samples, steps, "
            "features) or (samples, height, width, channels)" + (" - e.g. x[:, None] for one feature" * (x.ndim == 1)),
            path="data.path",
        )
    # float32 stays float32 (no copy: a float32 run prepares it in float32); others become float64
    x = x if x.dtype == np.float32 else x.astype(np.float64)
    width = int(np.prod(x.shape[1:]))
    step = max(1, 2**22 // max(1, width * x.itemsize))  # 4 MiB of rows at a time: no n-sized mask
    flags = [np.zeros(0, dtype=bool)]
    for i in range(0, len(x), step):
        flags.append(~np.isfinite(x[i : i + step].reshape(-1, width)).all(axis=1))
        release_pages(x)  # a memory-mapped x: only one chunk's pages resident at a time
    bad = np.concatenate(flags)
    if bad.any():
        raise DataError(
            f"data.path: x of {path.name} holds NaN or infinite values in {int(bad.sum())} sample(s) (first: sample "
            f"{int(np.flatnonzero(bad)[0])}); fill or drop them before saving",
            path="data.path",
        )
    return x


def _checked_y(y: np.ndarray, n: int, path: Path) -> np.ndarray:
    """One target row per sample, labels or finite values."""
    if y.ndim not in (1, 2) or len(y) != n:
        raise DataError(
            f"data.path: y of {path.name} has shape {list(y.shape)} but x has {n} samples; y must be ({n},) "
            f"(one label or value per sample) or ({n}, targets)",
            path="data.path",
        )
    if n == 0:
        raise DataError(f"data.path: x and y of {path.name} hold no samples", path="data.path")
    if y.dtype.kind not in "fiubU":
        raise DataError(f"data.path: y of {path.name} has dtype {y.dtype}; use numbers or strings", path="data.path")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise DataError(f"data.path: y of {path.name} holds NaN or infinite values", path="data.path")
    return y[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y
