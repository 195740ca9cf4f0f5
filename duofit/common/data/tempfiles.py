"""Temporary ``.npy`` files in the system's temporary folder (``TMPDIR``), removed with their memory map.

Kind ``parquet`` writes its features to one (Parquet has no random row access) and a streamed
training part can be written once scaled in the model's dtype (:mod:`duofit.common.data.prescale`).
A file's name carries its kind and its writer's process id: one left by a killed run is removed
by the next run that writes a file of that kind (:func:`remove_stale_files`).

Example:
    >>> import numpy as np
    >>> x = temp_npy("doc", (2, 3), np.float32, lambda fh: fh.write(np.ones((2, 3), np.float32).tobytes()))
    >>> x.shape, x.dtype.name, float(x.sum()), Path(x.filename).name.startswith("duofit-doc-")
    ((2, 3), 'float32', 6.0, True)
"""

from __future__ import annotations

import os
import tempfile
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np

__all__ = ["TEMP_PREFIX", "remove_stale_files", "temp_folder", "temp_npy"]

TEMP_PREFIX = "duofit-"  # + kind + "-" + the writing process' id + "-" + a random part + ".npy"


def temp_folder() -> Path:
    """The folder temporary files go to (``TMPDIR``, else the system's default)."""
    return Path(tempfile.gettempdir())


def temp_npy(
    kind: str, shape: tuple[int, ...], dtype: Any, fill: Callable[[BinaryIO], Any], mode: Literal["r", "c"] = "r"
) -> np.memmap:
    """A new ``.npy`` of ``shape`` and ``dtype`` whose data ``fill`` writes, memory-mapped with ``mode``.

    ``mode``: ``"r"`` (read-only) or ``"c"`` (copy-on-write: a writable array whose writes stay
    in the process, for consumers that refuse read-only arrays; nothing here writes). The file
    is removed when the map is freed (every view shares the map object), and at once when
    ``fill`` or the write fails (the exception propagates). Stale files of ``kind`` are removed first.
    """
    folder = temp_folder()
    remove_stale_files(folder, kind)
    fd, tmp = tempfile.mkstemp(suffix=".npy", prefix=f"{TEMP_PREFIX}{kind}-{os.getpid()}-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            header = {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": tuple(shape)}
            np.lib.format.write_array_header_1_0(fh, header)
            fill(fh)
        x = np.load(tmp, mmap_mode=mode)
    except BaseException:
        _remove(tmp)
        raise
    # A map larger than duofit.common.data.rowfile.RESIDENT_MAP_BYTES is read with pread, by
    # the file's name: the file lives as long as its map.
    weakref.finalize(x._mmap, _remove, tmp)
    return x


def remove_stale_files(folder: Path, kind: str) -> list[Path]:
    """Remove the temporary files of ``kind`` in ``folder`` whose writing process no longer runs.

    Returns:
        The files removed.
    """
    removed = []
    prefix = f"{TEMP_PREFIX}{kind}-"
    for file in folder.glob(f"{prefix}*-*.npy"):
        pid = file.name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            _remove(str(file))
            removed.append(file)
    return removed


def _running(pid: int) -> bool:
    if os.name != "posix":  # os.kill(pid, 0) is a check on POSIX only (on Windows it would end the process)
        return True
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else (or no such check here): leave its files alone
        return True
    return True


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
