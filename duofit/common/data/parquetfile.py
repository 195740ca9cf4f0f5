"""A Parquet file's columns (``data.kind = "parquet"``), read in row groups and streamed like ``npy``.

``data.path`` names the file, ``data.target`` the target column(s), ``data.features`` the
feature columns (default: every other column); features must be numeric (ints, floats,
booleans), targets numbers or strings. Parquet has no random row access, so the features are
written once, row group by row group, to a temporary ``.npy`` file next to nothing of the
user's (the system's temporary folder, ``TMPDIR``; removed when the data is freed) and
memory-mapped from there: from then on the data stream exactly as kind ``npy``
(:mod:`duofit.common.data.stream`). The file's name carries its process' id: one left by a
killed run is removed by the next run that converts a Parquet file, and a folder without room
for it is a clear error before anything is written.
Peak memory is one row group, whatever the file's size. pyarrow is optional
(``pip install 'duofit[parquet]'``).

Example (skipped without pyarrow):
    >>> import tempfile, pathlib                                          # doctest: +SKIP
    >>> import pyarrow as pa, pyarrow.parquet as pq                       # doctest: +SKIP
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "d.parquet"             # doctest: +SKIP
    >>> pq.write_table(pa.table({"a": [1.0, 2.0], "b": [3, 4], "y": [0, 1]}), path)  # doctest: +SKIP
    >>> from duofit.common.loader import load_spec                        # doctest: +SKIP
    >>> spec = load_spec({"data": {"kind": "parquet", "path": str(path), "target": "y"},
    ...     "model": {"layers": [{"type": "dense", "units": 1}]},
    ...     "loss": {"type": "binary_crossentropy"}})                     # doctest: +SKIP
    >>> x, y, names = open_parquet(spec)                                  # doctest: +SKIP
    >>> x.tolist(), y.tolist(), names                                     # doctest: +SKIP
    ([[1.0, 3.0], [2.0, 4.0]], [0, 1], ('a', 'b'))
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from duofit.common.data.csvfile import regular_file_size
from duofit.common.data.tempfiles import temp_folder, temp_npy
from duofit.common.errors import DataError
from duofit.common.spec import Spec

__all__ = ["PARQUET_HINT", "TEMP_KIND", "open_parquet"]

PARQUET_HINT = "pip install 'duofit[parquet]' (or pip install pyarrow)"


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(
            f"data.kind: kind 'parquet' reads the file with pyarrow; install it with {PARQUET_HINT}", path="data.kind"
        ) from None
    return pa, pq


def open_parquet(spec: Spec) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Features (memory-mapped float64 or float32), targets (in memory) and feature names of ``data.path``.

    Raises:
        DataError: pyarrow missing (path ``data.kind``); a missing or unreadable file (``data.path``);
            an unknown or non-numeric column (``data.target`` / ``data.features``).
    """
    pa, pq = _pyarrow()
    path = Path(str(spec.data.path))
    regular_file_size(path, "Parquet file")
    try:
        pfile = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"data.path: cannot read {path.name} as Parquet ({exc})", path="data.path") from None
    schema = pfile.schema_arrow
    targets = spec.data.target_columns
    features = _feature_columns(spec, schema, targets, path, pa)
    y = _targets(pfile, targets, path, pa)
    x = _features_to_npy(pfile, features, schema, path)
    return x, y, tuple(features)


def _feature_columns(spec: Spec, schema: Any, targets: list[str], path: Path, pa: Any) -> list[str]:
    """The feature columns: ``data.features`` or every non-target column, all numeric."""
    names = list(schema.names)
    for t in targets:
        if t not in names:
            raise DataError(
                f"data.target: {path.name} has no column {t!r}; its columns: {', '.join(names[:20])}",
                path="data.target",
            )
    chosen = list(spec.data.features) if spec.data.features else [n for n in names if n not in targets]
    for name in chosen:
        if name not in names:
            raise DataError(
                f"data.features: {path.name} has no column {name!r}; its columns: {', '.join(names[:20])}",
                path="data.features",
            )
        typ = schema.field(name).type
        if not (pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_boolean(typ)):
            raise DataError(
                f"data.features: column {name!r} of {path.name} is {typ}, not numeric; list numeric columns in "
                "data.features, or encode it as numbers before saving",
                path="data.features",
            )
    if not chosen:
        raise DataError(f"data.features: {path.name} has no feature column besides the target", path="data.features")
    return chosen


def _targets(pfile: Any, targets: list[str], path: Path, pa: Any) -> np.ndarray:
    """The target column(s), read whole (one value per sample)."""
    try:
        table = pfile.read(columns=targets)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"data.path: cannot read {path.name} ({exc})", path="data.path") from None
    cols = []
    for name in targets:
        col = table.column(name)
        if col.null_count:
            raise DataError(
                f"data.target: column {name!r} of {path.name} has {col.null_count} missing values", path="data.target"
            )
        arr = col.to_numpy()
        if arr.dtype.kind == "O":
            arr = arr.astype(str)
        if arr.dtype.kind not in "fiubU":
            raise DataError(
                f"data.target: column {name!r} of {path.name} is {col.type}; use numbers or strings", path="data.target"
            )
        cols.append(arr)
    return cols[0] if len(cols) == 1 else np.stack(cols, axis=1)


TEMP_KIND = "parquet"  # temporary files named duofit-parquet-<pid>-*.npy (duofit.common.data.tempfiles)


def _features_to_npy(pfile: Any, features: list[str], schema: Any, path: Path) -> np.ndarray:
    """The feature columns written row group by row group to a temporary ``.npy`` file, then memory-mapped."""
    all_f32 = all(str(schema.field(n).type) in ("float", "halffloat") for n in features)
    dtype = np.dtype(np.float32 if all_f32 else np.float64)
    n = pfile.metadata.num_rows
    folder = temp_folder()
    _check_room(folder, n * len(features) * dtype.itemsize, path)

    def fill(fh: BinaryIO) -> None:
        for g in range(pfile.num_row_groups):
            table = pfile.read_row_group(g, columns=features)
            block = np.empty((table.num_rows, len(features)), dtype=dtype)
            for j, name in enumerate(features):
                col = table.column(name)
                if col.null_count:
                    raise DataError(
                        f"data.features: column {name!r} of {path.name} has missing values (row group {g}); "
                        "fill or drop them before saving",
                        path="data.features",
                    )
                block[:, j] = col.to_numpy()
            fh.write(block.data.cast("B"))  # the block's own bytes, no copy

    try:
        return temp_npy(TEMP_KIND, (n, len(features)), dtype, fill)
    except OSError as exc:  # the folder filled up meanwhile, or a row group could not be read
        raise DataError(
            f"data.path: cannot convert {path.name}'s features into {folder} ({exc}); {_ROOM_HINT}", path="data.path"
        ) from None


_ROOM_HINT = "point TMPDIR at a folder with room, or convert the file to .npy files once (data.kind = 'npy')"


def _check_room(folder: Path, size: int, path: Path) -> None:
    """Raise before writing when ``folder`` has less than ``size`` bytes free."""
    free = shutil.disk_usage(folder).free
    if size > free:
        raise DataError(
            f"data.path: the features of {path.name} take {size:,} bytes as a temporary .npy file in {folder}, "
            f"which has {free:,} bytes free; {_ROOM_HINT}",
            path="data.path",
        )
