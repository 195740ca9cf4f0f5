"""A CSV file as raw arrays: the file checks, the parse, the column selection and the value checks.

Every problem a shared file can have becomes a :class:`~duofit.common.errors.DataError` that
names the field to fix (``data.path``, ``data.target``, ``data.features``).

Example:
    Not run as a doctest: it needs a spec whose ``data.path`` names a CSV file on disk.

    >>> x, y, names = read_csv(spec, max_cells=10**8, max_bytes=10**9)  # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from duofit.common.errors import DataError
from duofit.common.spec import Spec

__all__ = ["COMPRESSED_SUFFIXES", "read_csv"]

# Compressed CSVs are refused: a few kilobytes of gzip can expand to gigabytes (a "zip bomb").
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".zip", ".xz", ".zst", ".tar", ".tgz")


def read_csv(spec: Spec, *, max_cells: int, max_bytes: int) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Features (float64), the raw target column and the feature names of ``data.path``.

    Args:
        spec: A validated spec with ``data.kind = 'csv'``.
        max_cells: Cap on rows x (features + 1).
        max_bytes: Cap on the file's size on disk.

    Raises:
        DataError: a missing, special, compressed, oversized, empty or unparsable file; a
            missing or repeated column; non-numeric features; missing values.
    """
    path = Path(str(spec.data.path))
    _check_file(path, max_bytes)
    frame = _parse(path)
    features = _features(spec, path, [str(c) for c in frame.columns])
    target = str(spec.data.target)
    _check_values(frame, features, target, path)
    cells = len(frame) * (len(features) + 1)
    if cells > max_cells:
        raise DataError(
            f"data.path: {path.name} has {len(frame):,} rows x {len(features) + 1} columns = {cells:,} values; "
            f"the cap is {max_cells:,} (duofit.common.data.MAX_DATA_ELEMENTS)",
            path="data.path",
        )
    return frame[features].to_numpy(dtype=np.float64), frame[target].to_numpy(), tuple(features)


def _check_file(path: Path, max_bytes: int) -> None:
    if not path.exists():
        raise DataError(f"data.path: CSV file not found: {path}", path="data.path")
    if not path.is_file():  # a folder, FIFO or device (/dev/zero) would block or never end
        raise DataError(f"data.path: {path} is not a regular file", path="data.path")
    if path.suffix.lower() in COMPRESSED_SUFFIXES:
        raise DataError(
            f"data.path: {path.name} is compressed; duofit reads plain CSV only (a small archive can "
            "expand without bound): decompress it first",
            path="data.path",
        )
    size = path.stat().st_size
    if size > max_bytes:
        raise DataError(
            f"data.path: CSV file {path} is {size:,} bytes; the cap is {max_bytes:,} "
            "(duofit.common.data.MAX_CSV_BYTES)",
            path="data.path",
        )


def _header(path: Path) -> list[str]:
    """The first row of a CSV as written (pandas renames a duplicate ``a`` to ``a.1`` silently)."""
    import csv

    with path.open(encoding="utf-8-sig", newline="") as fh:
        for row in csv.reader(fh):
            if row:  # pandas skips blank lines before the header too
                return row
    return []


def _parse(path: Path) -> Any:
    """The parsed frame (non-empty, no column named twice)."""
    import csv

    import pandas as pd

    try:
        header = _header(path)
        with warnings.catch_warnings():
            # index_col=False: a row with more fields than the header must not silently turn the
            # first column into the index (pandas' default), which shifts every feature by one.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(path, index_col=False, compression=None, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise DataError(f"data.path: CSV file {path} is empty", path="data.path") from None
    except pd.errors.ParserWarning:
        raise DataError(
            f"data.path: rows of {path.name} have more fields than its header ({len(header)} columns: "
            f"{', '.join(header[:10])}); add the missing column names or remove the extra fields",
            path="data.path",
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, csv.Error) as exc:
        raise DataError(f"data.path: cannot parse CSV file {path}: {exc}", path="data.path") from None
    if frame.empty:
        raise DataError(f"data.path: CSV file {path} has no rows", path="data.path")
    twice = sorted(name for name, n in Counter(header).items() if n > 1)
    if twice:
        raise DataError(
            f"data.path: {path.name} names a column more than once: {', '.join(twice[:10])}; "
            "give every column its own name",
            path="data.path",
        )
    return frame


def _features(spec: Spec, path: Path, columns: list[str]) -> list[str]:
    """The feature columns: ``data.features`` or every column but the target, checked."""
    d = spec.data
    if d.target not in columns:
        raise DataError(
            f"data.target: column {d.target!r} is not in {path.name}; columns are: {', '.join(columns)}",
            path="data.target",
        )
    features = list(d.features) if d.features else [c for c in columns if c != d.target]
    repeated = sorted(name for name, n in Counter(features).items() if n > 1)
    if repeated:
        raise DataError(f"data.features lists {', '.join(repeated)} more than once", path="data.features")
    missing = [c for c in features if c not in columns]
    if missing:
        raise DataError(f"data.features: columns not in {path.name}: {', '.join(missing)}", path="data.features")
    if d.target in features:
        raise DataError("data.features must not include the target column", path="data.features")
    if not features:
        raise DataError(f"data.features: {path.name} has no feature columns besides the target", path="data.features")
    return features


def _check_values(frame: Any, features: list[str], target: str, path: Path) -> None:
    """Numeric feature columns and no missing value in the features or the target."""
    import pandas as pd

    x_frame = frame[features]
    bad = [
        c for c in features if not pd.api.types.is_numeric_dtype(x_frame[c]) or pd.api.types.is_bool_dtype(x_frame[c])
    ]
    if bad:
        raise DataError(
            f"data.features: non-numeric columns {', '.join(bad)} in {path.name}; encode them as numbers "
            "or leave them out with data.features = [...]",
            path="data.features",
        )
    na_rows = x_frame.isna().any(axis=1) | frame[target].isna()
    if na_rows.any():
        first = int(np.flatnonzero(na_rows.to_numpy())[0]) + 2  # +1 header, +1 one-based
        na_cols = [c for c in [*features, target] if frame[c].isna().any()]
        raise DataError(
            f"data.path: {int(na_rows.sum())} row(s) of {path.name} have missing values (first at line {first}; "
            f"columns with gaps: {', '.join(na_cols)}); fill or drop them before training",
            path="data.path",
        )
