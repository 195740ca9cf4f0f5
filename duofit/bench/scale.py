"""Generated data sets for the scale suite: n samples x 20 float32 features, written once, reused.

A data set is generated in fixed chunks of :data:`CHUNK_ROWS` rows straight into a
memory-mapped ``.npy`` file, so generating 1e7 samples (800 MB) needs about one chunk of
memory, and the same seed gives the same bytes at any size's common prefix. The problem is
make_classification-like (binary labels from a linear teacher on :data:`INFORMATIVE` of the
features, plus label noise), so a model learns it and the test metric tells a broken run
from a working one. The in-memory copy (``data.npz``, kind ``npz``) is written from the
``.npy`` files in bounded chunks, only for the sizes whose in-memory rows run.

Files are written to a temporary name and renamed, with ``meta.json`` last: a generation
killed at any moment leaves no folder that looks complete, and the next run starts it again.

Example:
    >>> import tempfile
    >>> data = ScaleData(samples=1000, folder=Path(tempfile.mkdtemp()))
    >>> data.ensure("npy")
    >>> x = np.load(data.x_path, mmap_mode="r"); x.shape, x.dtype.name
    ((1000, 20), 'float32')
    >>> data.spec_data("npy") == {"kind": "npy", "x": str(data.x_path), "y": str(data.y_path)}
    True
    >>> data.identity("npz")
    {'kind': 'npz', 'samples': 1000, 'features': 20, 'generator': 1}
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from duofit.common.errors import SpecError
from duofit.common.io import atomic_write_text

__all__ = [
    "CHUNK_ROWS",
    "FEATURES",
    "GENERATOR_VERSION",
    "INFORMATIVE",
    "ScaleData",
    "data_bytes",
    "default_cache",
    "samples_label",
]

FEATURES = 20  # the measurement: make_classification with 20 features
INFORMATIVE = 10  # features the labels depend on; the other 10 are noise
CHUNK_ROWS = 250_000  # rows generated at a time: 20 MB of float32, whatever the data set's size
LABEL_NOISE = 0.5  # std of the noise added to the teacher's logit: ~0.9 accuracy is reachable
GENERATOR_VERSION = 1  # bump when the generated values change (old cache folders are then regenerated)
SEED = 0


def default_cache() -> Path:
    """Folder of the generated data sets: ``$DUOFIT_BENCH_DATA``, else ``~/.cache/duofit/bench-data``."""
    env = os.environ.get("DUOFIT_BENCH_DATA")
    return Path(env) if env else Path.home() / ".cache" / "duofit" / "bench-data"


def data_bytes(samples: int, features: int = FEATURES) -> int:
    """Size of the data set in float32: features plus the target column.

    Example:
        >>> data_bytes(10**7)  # 1e7 x (20 + 1) x 4 bytes
        840000000
    """
    return samples * (features + 1) * 4


def samples_label(samples: int) -> str:
    """Short label of a sample count for cell ids: ``1e4``, ``1e7``, ``25000``.

    Example:
        >>> samples_label(10**6), samples_label(25_000)
        ('1e6', '25000')
    """
    exponent = len(str(samples)) - 1
    return f"1e{exponent}" if samples == 10**exponent else str(samples)


def _teacher() -> np.ndarray:
    return np.random.default_rng([SEED, 2**31]).standard_normal(INFORMATIVE).astype(np.float32)


def _chunk(index: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``index * CHUNK_ROWS ...`` of the data set: features and 0/1 labels (float32)."""
    rng = np.random.default_rng([SEED, index])
    x = rng.standard_normal((rows, FEATURES), dtype=np.float32)
    logit = x[:, :INFORMATIVE] @ _teacher() / np.float32(np.sqrt(INFORMATIVE)) * np.float32(3.0)
    logit += rng.standard_normal(rows, dtype=np.float32) * np.float32(LABEL_NOISE * 3.0)
    return x, (logit > 0).astype(np.float32)


@dataclass(frozen=True)
class ScaleData:
    """One generated data set in the cache: ``samples`` rows of :data:`FEATURES` float32 features."""

    samples: int
    folder: Path

    @property
    def path(self) -> Path:
        """This data set's folder (one per size and generator version)."""
        return Path(self.folder) / f"scale-v{GENERATOR_VERSION}-n{self.samples}-f{FEATURES}-s{SEED}"

    @property
    def x_path(self) -> Path:
        """The features, ``(samples, 20)`` float32."""
        return self.path / "features.npy"

    @property
    def y_path(self) -> Path:
        """The 0/1 labels, ``(samples,)`` float32."""
        return self.path / "targets.npy"

    @property
    def npz_path(self) -> Path:
        """The same arrays in one ``.npz`` (``x``, ``y``), for the in-memory rows."""
        return self.path / "data.npz"

    def identity(self, kind: str) -> dict[str, object]:
        """What the data is, without paths: hashed into the cell's ``spec_hash``."""
        return {"kind": kind, "samples": self.samples, "features": FEATURES, "generator": GENERATOR_VERSION}

    def spec_data(self, kind: str) -> dict[str, object]:
        """The ``[data]`` fields that read this data set as ``kind`` (``npz`` or ``npy``)."""
        if kind == "npz":
            return {"kind": "npz", "path": str(self.npz_path)}
        if kind == "npy":
            return {"kind": "npy", "x": str(self.x_path), "y": str(self.y_path)}
        raise SpecError(f"unknown scale data kind {kind!r}; allowed: npz, npy", path="data_kinds")

    def ready(self, kind: str) -> bool:
        """Whether the files ``kind`` reads exist and match this generator."""
        meta = self.path / "meta.json"
        if not meta.is_file():
            return False
        try:
            stamp = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        if stamp != self.identity("npy"):
            return False
        return self.npz_path.is_file() if kind == "npz" else (self.x_path.is_file() and self.y_path.is_file())

    def ensure(self, kind: str) -> None:
        """Generate the files ``kind`` reads, unless the cache has them already."""
        if self.ready(kind):
            return
        self.path.mkdir(parents=True, exist_ok=True)
        if not self.ready("npy"):
            (self.path / "meta.json").unlink(missing_ok=True)
            self._write_npy()
            atomic_write_text(self.path / "meta.json", json.dumps(self.identity("npy"), sort_keys=True))
        if kind == "npz" and not self.npz_path.is_file():
            self._write_npz()

    def _write_npy(self) -> None:
        tmp_x, tmp_y = self.x_path.with_suffix(".tmp.npy"), self.y_path.with_suffix(".tmp.npy")
        x = np.lib.format.open_memmap(tmp_x, mode="w+", dtype=np.float32, shape=(self.samples, FEATURES))
        y = np.lib.format.open_memmap(tmp_y, mode="w+", dtype=np.float32, shape=(self.samples,))
        for index, start in enumerate(range(0, self.samples, CHUNK_ROWS)):
            rows = min(CHUNK_ROWS, self.samples - start)
            x[start : start + rows], y[start : start + rows] = _chunk(index, rows)
        x.flush()
        y.flush()
        del x, y
        os.replace(tmp_x, self.x_path)
        os.replace(tmp_y, self.y_path)

    def _write_npz(self) -> None:
        """``np.savez`` streams a memory map into the archive in 16 MB pieces (numpy.lib.format.write_array)."""
        tmp = self.npz_path.with_suffix(".tmp.npz")
        x, y = np.load(self.x_path, mmap_mode="r"), np.load(self.y_path, mmap_mode="r")
        np.savez(tmp, x=x, y=y)
        del x, y
        os.replace(tmp, self.npz_path)
