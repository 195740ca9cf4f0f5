"""Safe file output: atomic writes, no pickle, paths confined to an output folder.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> atomic_write_text(d / "a.txt", "hello")
    >>> (d / "a.txt").read_text()
    'hello'
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "confined",
    "load_npz",
    "remove_dead_temps",
    "save_npz",
    "write_json",
]


def remove_dead_temps(path: str | Path) -> list[Path]:
    """Delete the temp files of ``path`` left by writers that were killed mid-write.

    Temp files are named ``.<name>.<pid>.<random>.tmp``; one whose writer process no longer
    exists can never be renamed into place, so it is removed. Temp files of live writers
    (another process writing the same file right now) are left alone.

    Returns:
        The removed paths.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (d / ".a.txt.999999999.x.tmp").write_text("half")
        >>> [p.name for p in remove_dead_temps(d / "a.txt")]
        ['.a.txt.999999999.x.tmp']
    """
    import psutil

    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file + rename: readers never see half a file.

    The temp file carries the writer's pid; temp files of this path left by killed writers
    are removed first (:func:`remove_dead_temps`), so a kill never leaves litter for long.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temps(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file ordinary permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Atomic UTF-8 text write (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and value != value:  # NaN is not JSON: write null
        return None
    return value


def write_json(path: str | Path, value: Any) -> None:
    """Atomically write ``value`` as indented JSON (NaN becomes ``null``)."""
    atomic_write_text(path, json.dumps(_jsonable(value), indent=2, sort_keys=False) + "\n")


def save_npz(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Atomically save named arrays as an uncompressed ``.npz`` (numeric arrays only)."""
    import io

    buf = io.BytesIO()
    clean = {k: np.asarray(v) for k, v in arrays.items()}
    for key, arr in clean.items():
        if arr.dtype == object:
            raise TypeError(f"array {key!r} has dtype object; only numeric arrays are saved")
    # numpy's stub matches **kwds against savez's allow_pickle (numpy >= 2.1; 1.26 has no such argument)
    np.savez(buf, **clean)  # type: ignore[arg-type]
    atomic_write_bytes(path, buf.getvalue())


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Load a ``.npz`` with ``allow_pickle=False`` (never executes code from the file)."""
    with np.load(Path(path), allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def confined(root: str | Path, relative: str | Path) -> Path:
    """Join ``relative`` under ``root``, refusing absolute paths and ``..`` escapes.

    Example:
        >>> confined("/tmp/out", "a/b.csv").as_posix()
        '/tmp/out/a/b.csv'
        >>> confined("/tmp/out", "../x")
        Traceback (most recent call last):
        ...
        ValueError: output path '../x' leaves the output folder /tmp/out
    """
    root_path = Path(root).resolve()
    rel = Path(relative)
    target = (root_path / rel).resolve()
    if rel.is_absolute() or (target != root_path and root_path not in target.parents):
        raise ValueError(f"output path {str(relative)!r} leaves the output folder {root_path}")
    return target
