"""Data larger than memory: the parts as row indices into a memory map, read and scaled per batch.

For the streamed kinds (:data:`STREAMED_KINDS`: ``npy``, ``parquet``) :func:`prepare_streamed`
does what :func:`duofit.common.data.prepare` does for in-memory data, without loading the
features: the targets (one value per sample) are encoded and split as usual, the split is kept
as index arrays, every row is checked for NaN in one sequential pass and the scaler is fitted
on the training rows only, chunk by chunk (scikit-learn's ``StandardScaler.partial_fit``). Each
part of the :class:`~duofit.common.data.Dataset` is then a :class:`StreamedRows`: ``rows[idx]``
reads those rows from the map and scales them, as ``scaler.transform`` scales the in-memory
arrays (same values; the scaler itself is bit-identical when the training part fits in one
chunk, else within float64 rounding: ``partial_fit`` merges the chunks' means and variances).

Backends consume either kind of part through two calls: ``part[idx]`` (a batch) and
:func:`eval_chunks` (the whole part, in chunks when streamed or large, in one piece otherwise).

Example:
    >>> import numpy as np
    >>> rows = StreamedRows(np.arange(12.0).reshape(6, 2), np.array([4, 0, 2]), (2,), None)
    >>> len(rows), rows.shape, rows[np.array([2, 0])].tolist()
    (3, (3, 2), [[4.0, 5.0], [8.0, 9.0]])
    >>> [c.shape for c in eval_chunks(rows, chunk_rows=2)]
    [(2, 2), (1, 2)]
    >>> [c.shape for c in eval_chunks(np.zeros((5, 2)), chunk_rows=2)], next(eval_chunks(np.zeros((5, 2)))).shape
    ([(2, 2), (2, 2), (1, 2)], (5, 2))
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from duofit.common.data.dataset import Dataset
from duofit.common.data.features import StepScaler, check_float_for_tokens, shaped
from duofit.common.data.npyfile import check_rows, release_pages
from duofit.common.data.rowfile import read_rows, row_reader
from duofit.common.data.rows import StreamedRows, chunk_rows_for
from duofit.common.data.split import spec_parts
from duofit.common.data.targets import check_outputs, check_training_classes, encode_targets, scaled_targets
from duofit.common.errors import DataError
from duofit.common.spec import Spec

__all__ = ["STREAMED_KINDS", "StreamedRows", "eval_chunks", "prepare_streamed"]

# The data kinds whose features stay on disk and are read per batch.
STREAMED_KINDS = ("npy", "parquet")


def eval_chunks(x: np.ndarray | StreamedRows, chunk_rows: int | None = None) -> Iterator[np.ndarray]:
    """A part for evaluation in pieces of at most ``chunk_rows`` rows (default :func:`chunk_rows_for`).

    A streamed part's chunks are read and scaled; an in-memory part's are views, and a part that
    fits in one chunk is the array itself (one piece, no copy). A large part's forward pass thus
    never holds every row's activations at once.
    """
    if isinstance(x, StreamedRows):
        yield from x.chunks(chunk_rows)
        return
    rows = chunk_rows or chunk_rows_for(x.shape[1:])
    if len(x) <= rows:
        yield x
        return
    for start in range(0, len(x), rows):
        yield x[start : start + rows]


def prepare_streamed(
    spec: Spec, x: np.ndarray, y: np.ndarray, names: Sequence[str], *, chunk_rows: int | None = None
) -> Dataset:
    """A :class:`~duofit.common.data.Dataset` whose parts stay in the memory map ``x`` (see the module docstring).

    Args:
        spec: A validated spec of a streamed kind.
        x: Float features, memory-mapped, ``(samples, ...)`` (reshaped by ``data.image_shape`` /
            ``data.sequence_shape`` as a view).
        y: Raw targets, in memory.
        names: Feature names.
        chunk_rows: Rows per streaming pass chunk (default :func:`chunk_rows_for`).

    Raises:
        DataError: as :func:`duofit.common.data.prepare`: NaN features (with the row), bad
            targets or output layer, an impossible split, a single training class, a scaler
            that overflows.
    """
    x = shaped(spec, x)
    check_float_for_tokens(spec, np.asarray(x[: min(len(x), 1000)], dtype=np.float64))
    sample = tuple(int(n) for n in x.shape[1:])
    size = chunk_rows or chunk_rows_for(sample)
    targets = encode_targets(spec, y)
    check_outputs(spec, targets)
    parts = spec_parts(spec, targets.y, spec.data.stratify and targets.task != "regression")
    check_training_classes(targets, parts.train)
    for start in range(0, len(x), size):  # every row, in file order: sequential reads
        check_rows(x[start : start + size], start)
        release_pages(x)
    scaler = _fit_scaler(x, parts.train, size) if spec.data.standardize else None
    y_of, task, n_classes, classes = targets
    y_tr, y_va, y_te, target_scaler = scaled_targets(spec, y_of, parts)
    return Dataset(
        x_train=StreamedRows(x, parts.train, sample, scaler),
        y_train=y_tr,
        x_val=StreamedRows(x, parts.val, sample, scaler),
        y_val=y_va,
        x_test=StreamedRows(x, parts.test, sample, scaler),
        y_test=y_te,
        task=task,
        n_classes=n_classes,
        classes=classes,
        feature_names=tuple(names),
        val_is_test=parts.val_is_test,
        scaler=scaler,
        target_scaler=target_scaler,
    )


def _fit_scaler(x: np.ndarray, train: np.ndarray, size: int) -> Any:
    """The scaler of the training rows, one ``partial_fit`` per chunk.

    Chunks follow the split's row order; a map read with pread (larger than
    :data:`~duofit.common.data.rowfile.RESIDENT_MAP_BYTES`) is read in file order instead, each
    chunk one block (the same statistics within float64 rounding).
    """
    from sklearn.preprocessing import StandardScaler

    scaler: Any = StepScaler() if x.ndim == 3 else StandardScaler()
    reader = row_reader(x)
    if reader is not None:  # a large map, read with pread: in file order, a block per chunk
        train = np.sort(train)
    for start in range(0, len(train), size):
        chunk = np.asarray(read_rows(x, train[start : start + size], reader), dtype=np.float64)
        scaler.partial_fit(chunk if x.ndim == 3 else chunk.reshape(len(chunk), -1))
        release_pages(x)
    bad = ~(np.isfinite(scaler.mean_) & np.isfinite(scaler.scale_))
    if bad.any():
        raise DataError(
            f"data.standardize: feature(s) {', '.join(f'x{i}' for i in np.flatnonzero(bad)[:10])} overflow when "
            "standardized (values near 1e308); rescale them or set data.standardize = false",
            path="data.standardize",
        )
    return scaler
