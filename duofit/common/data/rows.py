"""One part of streamed data: row indices into a memory map, read, cast and scaled when indexed.

See :mod:`duofit.common.data.stream` for how the parts are made and consumed.

Example:
    >>> import numpy as np
    >>> part = StreamedRows(np.arange(12.0).reshape(6, 2), np.array([4, 0, 2]), (2,), None)
    >>> len(part), part.shape, part[np.array([2, 0])].tolist()
    (3, (3, 2), [[4.0, 5.0], [8.0, 9.0]])
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from duofit.common.data.features import StepScaler
from duofit.common.data.npyfile import release_pages
from duofit.common.data.rowfile import read_rows, row_reader

__all__ = [
    "GATHER_PART_BYTES",
    "READ_ONCE_BYTES",
    "STREAM_CHUNK_BYTES",
    "TILED_BYTES",
    "StreamedRows",
    "chunk_rows_for",
    "gathered_per_batch",
    "read_once",
]

# Bytes of float64 rows read at once by a streaming pass (scaler fit, NaN check) and by the
# chunked evaluation of a streamed part: large enough that per-chunk overhead vanishes, small
# beside the 1.5 GB peak a 10-million-row npy run is allowed.
STREAM_CHUNK_BYTES = 16 * 2**20
# An in-memory training part larger than this is fed as a streamed one is: each training batch
# gathered when the loop reaches it, so no epoch-sized permuted copy (torch) sits beside the data
# (Keras on TensorFlow now wraps a small part without a copy, duofit.backends.keras.feed.tf_resident,
# where a tf.constant held two); evaluation runs in chunks of
# STREAM_CHUNK_BYTES at any size. Smaller parts keep the one-gather-per-epoch form, the faster
# one for small data. With it an in-memory run peaks near the data's own size plus the empty
# process (the scale suite's in-memory bound: at 1e5 x 20 float32, a 6.4 MB training part, the
# epoch copy took torch 5 MiB and a tf.constant Keras 8.6 MiB over it).
GATHER_PART_BYTES = 4 * 2**20
# A streamed part that would take at most this in memory (float64) is read into memory once by
# both backends (chunk by chunk, in the model's dtype) and trained on as an in-memory part:
# for a small model the per-batch reads cost more than its steps (1e5 x 20 float32: steady
# epochs 0.76 x the in-memory speed read per batch, ~0.95 read once).
READ_ONCE_BYTES = 16 * 2**20
# A batch of up to this many bytes (float64) is scaled against statistics repeated per row
# (StreamedRows._tiled): 1,024 rows of up to 128 features, two such arrays kept per part.
TILED_BYTES = 2**20


def chunk_rows_for(sample_shape: Sequence[int], chunk_bytes: int | None = None) -> int:
    """Rows of ``sample_shape`` (as float64) in ``chunk_bytes`` (default :data:`STREAM_CHUNK_BYTES`), at least 1.

    Example:
        >>> chunk_rows_for((20,), 1600)
        10
    """
    row = 8 * int(np.prod(sample_shape))
    return max(1, (STREAM_CHUNK_BYTES if chunk_bytes is None else chunk_bytes) // max(row, 1))


def gathered_per_batch(part: Any) -> bool:
    """Whether a training part is larger in memory than :data:`GATHER_PART_BYTES` (then fed one batch at a time).

    Streamed parts count as what they would take in memory (float64).

    Example:
        >>> gathered_per_batch(np.zeros((10, 2))), gathered_per_batch(np.zeros((GATHER_PART_BYTES // 8 + 1,)))
        (False, True)
    """
    return int(part.nbytes) > GATHER_PART_BYTES


def read_once(part: Any, dtype: Any) -> Any:
    """A streamed part small enough (:data:`READ_ONCE_BYTES`) read into memory as ``dtype``; any other part as it is.

    Both backends train on the result: a small streamed part then runs as an in-memory one.

    Example:
        >>> read_once(StreamedRows(np.arange(6.0).reshape(3, 2), np.array([2, 0]), (2,), None), np.float32)
        array([[4., 5.],
               [0., 1.]], dtype=float32)
    """
    return part.astype(dtype) if isinstance(part, StreamedRows) and part.nbytes <= READ_ONCE_BYTES else part


class StreamedRows:
    """Rows ``rows`` of a memory-mapped array, read, cast to float64 and scaled when indexed.

    Array-like where the backends need it: ``len``, ``shape``, ``ndim``, ``dtype`` (float64),
    ``part[idx]`` (int, slice or index array: a float64 ndarray), ``np.asarray(part)`` (the
    whole part, in memory: small data only).

    Args:
        source: The memory map, ``(samples, *sample_shape)`` (any float dtype).
        rows: int64 indices of this part's rows in ``source``, in the part's order.
        sample_shape: One sample's shape.
        scaler: A fitted ``StandardScaler`` / :class:`~duofit.common.data.features.StepScaler`, or ``None``.
    """

    def __init__(self, source: np.ndarray, rows: np.ndarray, sample_shape: tuple[int, ...], scaler: Any) -> None:
        self.source = source
        self.rows = np.asarray(rows, dtype=np.int64)
        self.sample_shape = tuple(int(n) for n in sample_shape)
        self.scaler = scaler
        self.dtype = np.dtype(np.float64)
        # A map too large to keep resident is read with pread (duofit.common.data.rowfile).
        self._reader = row_reader(source)
        # The scaler's statistics in the sample's shape (a StepScaler's per feature, the last axis):
        # ``(x - mean) / scale`` per batch is what StandardScaler.transform computes on dense input
        # (``X -= mean_; X /= scale_``, sklearn/preprocessing/_data.py), element by element, without
        # its per-call input validation.
        self._stats: tuple[np.ndarray, np.ndarray] | None = None
        if scaler is not None:
            shape = self.sample_shape[-1:] if isinstance(scaler, StepScaler) else self.sample_shape
            self._stats = (np.asarray(scaler.mean_).reshape(shape), np.asarray(scaler.scale_).reshape(shape))
        self._tiles: tuple[np.ndarray, np.ndarray] | None = None

    def __repr__(self) -> str:
        return f"StreamedRows(shape={self.shape}, source dtype={self.source.dtype})"

    @property
    def reads_files(self) -> bool:
        """Whether batches are read from the file with pread (a large map) rather than gathered from the map."""
        return self._reader is not None

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        """``(rows, *sample_shape)``."""
        return (len(self.rows), *self.sample_shape)

    @property
    def ndim(self) -> int:
        """Number of axes, as the materialised array's."""
        return 1 + len(self.sample_shape)

    @property
    def nbytes(self) -> int:
        """Bytes of the part in memory (float64), as ``np.asarray(part).nbytes`` would be."""
        return 8 * int(np.prod(self.shape))

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self.take(np.atleast_1d(self.rows[key]))[0]
        return self.take(self.rows[key])

    def batch(self, idx: np.ndarray, dtype: Any = np.float64) -> np.ndarray:
        """Rows ``idx`` of the part (a training batch) as ``dtype``: ``part[idx].astype(dtype)`` in one pass."""
        return self.take(self.rows[idx], dtype, tiled=True)

    def take(self, source_rows: np.ndarray, dtype: Any = np.float64, *, tiled: bool = False) -> np.ndarray:
        """Rows ``source_rows`` of the source (indices into the map, not into the part), scaled, as ``dtype``.

        The values are the float64 ``(x - mean) / scale`` for every ``dtype``: a float32 result is
        that float64 quotient rounded once (the division writes into the float32 array), the same
        numbers as scaling in float64 and casting afterwards, without a float64 copy to keep.
        ``tiled``: scale against statistics repeated per row (:meth:`_tiled`, for batches).
        """
        raw = read_rows(self.source, source_rows, self._reader)
        raw = raw.reshape(len(raw), *self.sample_shape)
        if self._stats is None:
            return raw.astype(dtype, copy=False)  # read_rows returns a new array, never a view of the map
        mean, scale = self._tiled(len(raw)) if tiled else self._stats
        centred = np.subtract(raw, mean, dtype=np.float64)
        out = centred if np.dtype(dtype) == np.float64 else np.empty(raw.shape, dtype=dtype)
        return np.divide(centred, scale, out=out, casting="unsafe")

    def _tiled(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The statistics repeated for ``n`` rows when that is at most :data:`TILED_BYTES` each; beyond, broadcast.

        numpy runs ``(n, 20) - (20,)`` as ``n`` inner loops of 20 elements; two contiguous
        ``(n, 20)`` operands run as one loop over every element, about twice as fast for a batch
        of 1,024 rows of 20 features (element by element the same arithmetic). Evaluation chunks
        broadcast: their loops are long enough already.
        """
        assert self._stats is not None
        cap = TILED_BYTES // (8 * max(1, int(np.prod(self.sample_shape))))
        if n > cap:
            return self._stats
        if self._tiles is None or len(self._tiles[0]) < n:
            shape = (min(cap, max(n, 1024)), *self.sample_shape)
            mean, scale = (np.ascontiguousarray(np.broadcast_to(a, shape)) for a in self._stats)
            self._tiles = (mean, scale)
        return self._tiles[0][:n], self._tiles[1][:n]

    def chunks(self, chunk_rows: int | None = None, dtype: Any = np.float64) -> Iterator[np.ndarray]:
        """The part in order as ``dtype``, ``chunk_rows`` rows at a time (default: :func:`chunk_rows_for`)."""
        size = chunk_rows or chunk_rows_for(self.sample_shape)
        for start in range(0, len(self.rows), size):
            yield self.take(self.rows[start : start + size], dtype)
            release_pages(self.source)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        dtype = np.float64 if dtype is None else dtype
        return np.concatenate(list(self.chunks(dtype=dtype))) if len(self.rows) else np.empty(self.shape, dtype)

    def astype(self, dtype: Any) -> np.ndarray:
        """The whole part in memory as ``dtype`` (small data only)."""
        return np.asarray(self, dtype=dtype)
