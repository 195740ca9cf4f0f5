"""A streamed part read at every epoch (training, validation) written once, scaled: then read as an array over its map.

Every training batch of a streamed part is read, scaled and cast (:meth:`StreamedRows.batch`).
Where the read is a gather from a resident memory map (a file of at most
:data:`~duofit.common.data.rowfile.RESIDENT_MAP_BYTES`), the scaling and cast are most of a
batch's cost: 1,024 rows of 20 float32 features take ~45-60 µs against a ~25 µs gather from an
in-memory part, beside a ~240 µs step of the scale suite's 20-16-1 MLP (2-core AMD EPYC host).
So :func:`training_rows` writes the part once, chunk by chunk, to a temporary ``.npy``
(:func:`~duofit.common.data.tempfiles.temp_npy`) in the model's dtype and in the part's order,
holding the values ``batch`` would give (bit for bit: the same float64 quotient rounded once),
and returns that map as a plain array: the backends train on it as on an in-memory part over
:data:`~duofit.common.data.GATHER_PART_BYTES` (a batch gathered per step: torch's
``index_select``, Keras' generator), while its memory is the file's pages, which the kernel
can drop and read again (copy-on-write, so torch takes it without a copy; nothing writes).

Left as they are: parts read once into memory (:func:`~duofit.common.data.read_once`), parts
with nothing to scale or cast, and parts whose copy would exceed the resident size (their
batches are ``pread`` calls, ~1 µs a row, which the scaling hardly adds to, and a copy would
double the disk they take). A folder without room for the copy (it must keep at least as much
free) or a failed write leaves the part streaming as before: the copy is only a speed-up.

Example:
    >>> import numpy as np
    >>> from sklearn.preprocessing import StandardScaler
    >>> x = np.arange(40.0).reshape(20, 2)
    >>> part = StreamedRows(x, np.arange(19, -1, -1), (2,), StandardScaler().fit(x))
    >>> small = training_rows(part, np.float32)  # 20 rows: read into memory once
    >>> type(small).__name__, bool(np.array_equal(small, part.astype(np.float32)))
    ('ndarray', True)
"""

from __future__ import annotations

import math
import shutil
from typing import Any, BinaryIO

import numpy as np

from duofit.common.data.rowfile import RESIDENT_MAP_BYTES
from duofit.common.data.rows import READ_ONCE_BYTES, StreamedRows, read_once
from duofit.common.data.tempfiles import temp_folder, temp_npy

__all__ = ["TEMP_KIND", "training_rows"]

TEMP_KIND = "scaled"  # temporary files named duofit-scaled-<pid>-*.npy


def training_rows(part: Any, dtype: Any) -> Any:
    """A part read at every epoch: in memory when small, a pre-scaled map where that pays, else streamed.

    The training part (read per batch) and the validation part (read in chunks at every epoch
    end) both go through it; the test part, read once, does not.

    Args:
        part: A dataset's training or validation features (an array or a :class:`StreamedRows`).
        dtype: The model's float dtype.
    """
    part = read_once(part, dtype)
    if not isinstance(part, StreamedRows) or part.reads_files:
        return part
    dtype = np.dtype(dtype)
    if part.scaler is None and part.source.dtype == dtype:
        return part  # nothing to scale or cast: batches are plain gathers already
    size = len(part) * math.prod(part.sample_shape) * dtype.itemsize
    if size > RESIDENT_MAP_BYTES or 2 * size > shutil.disk_usage(temp_folder()).free:
        return part

    def fill(fh: BinaryIO) -> None:
        for chunk in part.chunks(dtype=dtype):
            fh.write(np.ascontiguousarray(chunk).data.cast("B"))  # the array's own bytes, no copy

    try:
        scaled = temp_npy(TEMP_KIND, part.shape, dtype, fill, mode="c")
    except OSError:  # the folder filled up meanwhile: stream as before
        return part
    return np.asarray(scaled)  # a plain ndarray view (memmap's own indexing is slow); it keeps the map alive


assert READ_ONCE_BYTES < RESIDENT_MAP_BYTES  # read once first, pre-scaled in between, per batch beyond
