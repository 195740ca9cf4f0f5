"""Reading rows of a large memory-mapped ``.npy`` file without mapping its pages into the process.

A read-only file mapping counts every page it touched in the process' resident set (RSS). For
a map that fits comfortably that is what we want: the rows stay mapped, like an in-memory
array, and a random batch is one fancy-indexing gather. For a large one a random batch touches
pages all over the file: with large page-cache folios (Linux 6.x) the kernel maps up to a whole
folio per row read, so 1,024 random rows of a 1e7 x 20 float32 file (800 MB) mapped 580 MB at
once on Linux 6.18, and releasing the pages afterwards (``madvise(MADV_DONTNEED)``) cannot bound
that peak. Above :data:`RESIDENT_MAP_BYTES` the rows are therefore read with ``os.pread``, one
call per run of consecutive rows, into a fresh buffer: the page cache still serves the reads
(no disk I/O once the file is cached) but nothing is mapped, so the process' RSS holds only
the batch. It costs about 0.9 us per random row (1,024 rows of 80 bytes: 0.9 ms) against
0.2 us for a gather from a resident map: the price of a bounded peak.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "x.npy"
    >>> np.save(path, np.arange(12, dtype=np.float32).reshape(6, 2))
    >>> x = np.load(path, mmap_mode="r")
    >>> RowFile.of(x).read(np.array([5, 0, 1, 2])).tolist()
    [[10.0, 11.0], [0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    >>> row_reader(x) is None  # a small map: read by indexing it
    True
"""

from __future__ import annotations

import mmap
import os
import threading
from typing import Any

import numpy as np

__all__ = ["RESIDENT_MAP_BYTES", "SPAN_FACTOR", "RowFile", "read_rows", "row_reader"]

# Memory maps up to this size are read by indexing them (their pages may all become resident,
# as an in-memory array's would); larger ones through RowFile (nothing mapped). 256 MiB keeps a
# 1e7 x 20 float32 file (800 MB) under the 1.5 GB peak a streamed run is allowed on a backend
# whose empty process already takes 800 MB (Keras on TensorFlow), while 1e6 rows (80 MB) stay
# mapped (a training part on such a map is pre-scaled once, duofit.common.data.prescale, and its
# batches are gathers at nearly in-memory speed).
RESIDENT_MAP_BYTES = 256 * 2**20
# A set of rows spanning at most this many times its own size is read as one block (the rows in
# between are read and dropped): one call instead of one per run.
SPAN_FACTOR = 4


class RowFile:
    """Rows of a C-ordered memory map, read from its file with ``os.pread`` (see the module docstring).

    Args:
        source: A ``numpy.memmap`` (or a view of one sharing its start, e.g. a reshape),
            C-contiguous, ``(samples, ...)``.
    """

    def __init__(self, source: Any) -> None:
        self.path = str(source.filename)
        self.dtype = source.dtype
        self.sample_shape = tuple(int(n) for n in source.shape[1:])
        self.row_bytes = int(source.strides[0])
        # Where row 0 is in the file: numpy maps from the allocation-granularity boundary below
        # the array's offset (numpy/_core/memmap.py), so row 0 sits that far into the mapping.
        mapping = np.frombuffer(source._mmap, dtype=np.uint8)
        into_map = source.__array_interface__["data"][0] - mapping.__array_interface__["data"][0]
        self.start = into_map + int(source.offset) - int(source.offset) % mmap.ALLOCATIONGRANULARITY
        self._fd: int | None = None
        self._pid = -1
        self._lock = threading.Lock()  # the torch feed reads the next batch in a thread while this one trains

    @classmethod
    def of(cls, source: Any) -> RowFile | None:
        """A reader of ``source``, or None where pread cannot serve it (not a C-ordered memory map, no ``os.pread``)."""
        usable = (
            hasattr(os, "pread")
            and isinstance(source, np.memmap)
            and getattr(source, "_mmap", None) is not None
            and source.filename is not None
            and source.ndim >= 1
            and source.flags.c_contiguous
        )
        return cls(source) if usable else None

    def _file(self) -> int:
        """The file descriptor, opened once per process (a forked child opens its own)."""
        fd = self._fd
        if fd is not None and self._pid == os.getpid():
            return fd
        with self._lock:  # two threads asking at once open the file once
            if self._fd is None or self._pid != os.getpid():
                self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
            return self._fd

    def read(self, rows: np.ndarray) -> np.ndarray:
        """Rows ``rows`` (int indices, any order, repeats allowed) as a new array of the file's dtype.

        The rows are read in file order and put back in the order asked for: a dense set of rows
        (its span at most :data:`SPAN_FACTOR` times its size, e.g. a sorted chunk of the training
        rows) in one call for the whole span, a sparse one (a random batch) one call per run of
        consecutive rows.
        """
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        out = np.empty((len(rows), *self.sample_shape), dtype=self.dtype)
        if len(rows) == 0:
            return out
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        first, span = int(ordered[0]), int(ordered[-1] - ordered[0]) + 1
        if span <= SPAN_FACTOR * len(rows):
            out[order] = self._rows(first, span)[ordered - first]
            return out
        starts = np.flatnonzero(np.diff(ordered, prepend=ordered[0] - 2) != 1)  # first index of each run
        counts = np.diff(np.append(starts, len(rows))).tolist()
        fd, size, base = self._file(), self.row_bytes, self.start
        data = b"".join(
            [os.pread(fd, size * n, base + size * r) for r, n in zip(ordered[starts].tolist(), counts, strict=True)]
        )
        out[order] = np.frombuffer(data, dtype=self.dtype).reshape(len(rows), *self.sample_shape)
        return out

    def _rows(self, first: int, count: int) -> np.ndarray:
        """``count`` consecutive rows from row ``first`` (read-only, over the bytes read)."""
        data = os.pread(self._file(), self.row_bytes * count, self.start + self.row_bytes * first)
        return np.frombuffer(data, dtype=self.dtype).reshape(count, *self.sample_shape)

    def __getstate__(self) -> dict[str, Any]:
        state = {**self.__dict__, "_fd": None, "_pid": -1}
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __del__(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)


def row_reader(source: Any) -> RowFile | None:
    """The pread reader for a memory map larger than :data:`RESIDENT_MAP_BYTES`; None: index the array itself."""
    return RowFile.of(source) if getattr(source, "nbytes", 0) > RESIDENT_MAP_BYTES else None


def read_rows(source: Any, rows: np.ndarray, reader: RowFile | None) -> np.ndarray:
    """Rows ``rows`` of ``source``: through ``reader`` when given, else by indexing (in the source's dtype).

    Example:
        >>> read_rows(np.arange(6.0).reshape(3, 2), np.array([2, 0]), None).tolist()
        [[4.0, 5.0], [0.0, 1.0]]
    """
    if reader is not None:
        return reader.read(rows)
    # np.take on the plain-ndarray view: the same rows as source[rows], without numpy.memmap's
    # __getitem__ and subclass bookkeeping (1,024 rows of 20 float32: ~60-120 us against ~250-330)
    return np.take(np.asarray(source), np.asarray(rows, dtype=np.int64), axis=0)
