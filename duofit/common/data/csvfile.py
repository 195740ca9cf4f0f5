"""A CSV file as raw arrays: the file checks, the parse, the column selection and the value checks.

Every problem a shared file can have becomes a :class:`~duofit.common.errors.DataError` that
names the field to fix (``data.path``, ``data.target``, ``data.features``). A feature column
that looks like a row id (:func:`id_columns`) draws a :class:`~duofit.common.errors.DataWarning`.

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

from duofit.common.data.npyfile import NPY_HINT
from duofit.common.errors import DataError, DataWarning
from duofit.common.spec import Spec

__all__ = [
    "COMPRESSED_SUFFIXES",
    "MIN_ID_ROWS",
    "check_file",
    "check_values",
    "id_columns",
    "parse_csv",
    "read_csv",
    "regular_file_size",
]

# Compressed CSVs are refused: a few kilobytes of gzip can expand to gigabytes (a "zip bomb").
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".zip", ".xz", ".zst", ".tar", ".tgz")
# Fewer rows than this and a column of distinct whole numbers is common by chance (the ages of
# ten people); from here on, distinct whole numbers that run consecutively or in sorted order
# are a row index or an id, which a model can only memorise.
MIN_ID_ROWS = 20
# float64 holds every whole number below 2**53 exactly; beyond it (and for inf) every value
# looks whole, so such a column says nothing about ids.
_EXACT_INTEGERS = 2.0**53


def read_csv(spec: Spec, *, max_cells: int, max_bytes: int) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Features (float64), the raw target column(s) and the feature names of ``data.path``.

    Args:
        spec: A validated spec with ``data.kind = 'csv'``.
        max_cells: Cap on rows x (features + targets).
        max_bytes: Cap on the file's size on disk.

    Returns:
        ``(x, y, names)``; ``y`` is one column ``(n,)``, or ``(n, k)`` for a list of k > 1
        target columns (multi-output regression).

    Warns:
        DataWarning: a feature column looks like a row id (:func:`id_columns`).

    Raises:
        DataError: a missing, special, compressed, oversized, empty or unparsable file; a
            missing or repeated column; non-numeric features; missing values.
    """
    path = Path(str(spec.data.path))
    check_file(path, max_bytes)
    frame = parse_csv(path)
    targets = spec.data.target_columns
    features = _features(spec, path, [str(c) for c in frame.columns])
    check_values(frame, features, targets, path)
    cells = len(frame) * (len(features) + len(targets))
    if cells > max_cells:
        raise DataError(
            f"data.path: {path.name} has {len(frame):,} rows x {len(features) + len(targets)} columns = "
            f"{cells:,} values ({8 * cells / 1e9:.1f} GB as float64); the cap is {max_cells:,} "
            f"(duofit.common.data.MAX_DATA_ELEMENTS); {NPY_HINT}",
            path="data.path",
        )
    _warn_id_columns(frame, features)
    y = frame[targets].to_numpy() if len(targets) > 1 else frame[targets[0]].to_numpy()
    return frame[features].to_numpy(dtype=np.float64), y, tuple(features)


def regular_file_size(path: Path, what: str) -> int:
    """The size of the regular file ``path``, else a DataError on ``data.path``.

    Missing, not a regular file, or not even looked at (a name too long, no permission).

    Example:
        >>> regular_file_size(Path("x" * 5000), "CSV file")
        Traceback (most recent call last):
        ...
        duofit.common.errors.DataError: data.path: cannot look at xxxxxxxxxx... (File name too long)
    """
    try:
        if not path.exists():
            raise DataError(f"data.path: {what} not found: {path}", path="data.path")
        if not path.is_file():  # a folder, FIFO or device (/dev/zero) would block or never end
            raise DataError(f"data.path: {path} is not a regular file", path="data.path")
        return path.stat().st_size
    except OSError as exc:
        shown = str(path) if len(str(path)) <= 40 else f"{str(path)[:40]}..."
        raise DataError(f"data.path: cannot look at {shown} ({exc.strerror})", path="data.path") from None


def check_file(path: Path, max_bytes: int) -> None:
    """A plain, uncompressed regular file of at most ``max_bytes`` (else a DataError on ``data.path``)."""
    size = regular_file_size(path, "CSV file")
    if path.suffix.lower() in COMPRESSED_SUFFIXES:
        raise DataError(
            f"data.path: {path.name} is compressed; duofit reads plain CSV only (a small archive can "
            "expand without bound): decompress it first",
            path="data.path",
        )
    if size > max_bytes:
        raise DataError(
            f"data.path: CSV file {path} is {size:,} bytes; the cap is {max_bytes:,} "
            f"(duofit.common.data.MAX_CSV_BYTES); {NPY_HINT}",
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


def parse_csv(path: Path) -> Any:
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
    """The feature columns: ``data.features`` or every column but the target(s), checked."""
    d = spec.data
    targets = d.target_columns
    absent = [t for t in targets if t not in columns]
    if absent:
        raise DataError(
            f"data.target: column {absent[0]!r} is not in {path.name}; columns are: {', '.join(columns)}",
            path="data.target",
        )
    features = list(d.features) if d.features else [c for c in columns if c not in targets]
    repeated = sorted(name for name, n in Counter(features).items() if n > 1)
    if repeated:
        raise DataError(f"data.features lists {', '.join(repeated)} more than once", path="data.features")
    missing = [c for c in features if c not in columns]
    if missing:
        raise DataError(f"data.features: columns not in {path.name}: {', '.join(missing)}", path="data.features")
    both = [t for t in targets if t in features]
    if both:
        raise DataError(f"data.features must not include the target column {both[0]!r}", path="data.features")
    if not features:
        raise DataError(f"data.features: {path.name} has no feature columns besides the target", path="data.features")
    return features


def check_values(frame: Any, features: list[str], targets: list[str], path: Path) -> None:
    """Numeric feature columns and no missing value in the features or the targets."""
    import pandas as pd

    x_frame = frame[features]
    bad = [
        c for c in features if not pd.api.types.is_numeric_dtype(x_frame[c]) or pd.api.types.is_bool_dtype(x_frame[c])
    ]
    if bad:
        ids = [c for c in bad if x_frame[c].nunique(dropna=False) == len(x_frame) >= MIN_ID_ROWS]
        note = f" ({', '.join(ids)}: a different value in every row, an id?)" if ids else ""
        raise DataError(
            f"data.features: non-numeric columns {', '.join(bad)} in {path.name}{note}; encode them as numbers "
            "or leave them out with data.features = [...]",
            path="data.features",
        )
    na_rows = x_frame.isna().any(axis=1) | frame[targets].isna().any(axis=1)
    if na_rows.any():
        first = int(np.flatnonzero(na_rows.to_numpy())[0]) + 2  # +1 header, +1 one-based
        na_cols = [c for c in [*features, *targets] if frame[c].isna().any()]
        raise DataError(
            f"data.path: {int(na_rows.sum())} row(s) of {path.name} have missing values (first at line {first}; "
            f"columns with gaps: {', '.join(na_cols)}); fill or drop them before training",
            path="data.path",
        )


def id_columns(frame: Any, features: list[str]) -> list[str]:
    """Feature columns that look like row ids: distinct whole numbers, consecutive or in sorted order.

    A continuous measurement is distinct in every row by nature and is not flagged; a
    column of whole numbers that differ in every row *and* either fill a consecutive range
    (``0..n-1``, ``1001..1000+n``, in any order) or rise (or fall) row by row is an index.
    Files with fewer than :data:`MIN_ID_ROWS` rows are not judged.

    Example:
        >>> import pandas as pd
        >>> frame = pd.DataFrame({"id": range(30), "x": [i * 0.37 for i in range(30)],
        ...                       "age": [20 + i % 7 for i in range(30)]})
        >>> id_columns(frame, ["id", "x", "age"])
        ['id']
    """
    n = len(frame)
    if n < MIN_ID_ROWS:
        return []
    found = []
    for name in features:
        values = frame[name].to_numpy(dtype=np.float64)
        whole = np.all(np.abs(values) < _EXACT_INTEGERS) and np.all(values == np.round(values))
        if not whole or np.unique(values).size != n:
            continue
        steps = np.diff(values)
        consecutive = values.max() - values.min() == n - 1
        if consecutive or np.all(steps > 0) or np.all(steps < 0):
            found.append(name)
    return found


def _warn_id_columns(frame: Any, features: list[str]) -> None:
    """One :class:`~duofit.common.errors.DataWarning` per feature column that looks like a row id."""
    ids = id_columns(frame, features)
    if not ids:
        return
    kept = [c for c in features if c not in ids]
    shown = ", ".join(repr(c) for c in kept[:8]) + (", ..." if len(kept) > 8 else "")
    fix = f"drop it with data.features = [{shown}]" if kept else "leave it out of data.features"
    for name in ids:
        warnings.warn(
            f"data.features: column {name!r} has a different value in every row (an id?), which a model "
            f"can only memorise; {fix}",
            DataWarning,
            stacklevel=2,
        )
