"""Raw arrays from the source a spec names: a generator, a bundled set, a file, a series or texts.

The kinds: a scikit-learn generator or bundled set, a CSV or ``.npz`` file, windows of a
series (:mod:`~duofit.common.data.series`) or the texts of a CSV column
(:mod:`~duofit.common.data.text`).

The size caps come in as arguments (the module constants of :mod:`duofit.common.data`).

Example:
    >>> from duofit.common.loader import load_spec
    >>> spec = load_spec({"data": {"kind": "iris"},
    ...                   "model": {"layers": [{"type": "dense", "units": 3}]},
    ...                   "loss": {"type": "categorical_crossentropy"}})
    >>> x, y, names = read_source(spec, max_cells=10**6, max_csv_bytes=10**6)
    >>> x.shape, names[0]
    ((150, 4), 'sepal length (cm)')
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from duofit.common.data.csvfile import read_csv
from duofit.common.data.npyfile import NPY_HINT, open_npy
from duofit.common.data.npzfile import read_npz
from duofit.common.data.parquetfile import open_parquet
from duofit.common.data.series import read_series
from duofit.common.data.text import read_texts
from duofit.common.errors import DataError
from duofit.common.spec import Spec

__all__ = ["BUNDLED", "FILE_READERS", "GENERATORS", "read_source"]

GENERATORS = ("make_classification", "make_regression", "make_moons", "make_blobs")
BUNDLED = {
    "iris": "load_iris",
    "breast_cancer": "load_breast_cancer",
    "digits": "load_digits",
    "wine": "load_wine",
    "diabetes": "load_diabetes",
}


def read_source(spec: Spec, *, max_cells: int, max_csv_bytes: int) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Features, raw targets and feature names of the spec's data, unsplit and unscaled.

    Features are float64 (any sample shape), int64 token ids ``(n, steps)`` (an ``.npz``
    file's integer ``x``) or an object array of texts (kind ``csv_text``, tokenized after
    the split).

    Args:
        spec: A validated spec.
        max_cells: Cap on samples x (features + targets).
        max_csv_bytes: Cap on a data file's size on disk.

    Raises:
        DataError: unknown generator parameters, too many values, an unreadable file.
    """
    if spec.data.kind in GENERATORS:
        return _generated(spec, max_cells)
    if spec.data.kind in BUNDLED:
        return _bundled(spec)
    return FILE_READERS[spec.data.kind](spec, max_cells, max_csv_bytes)


Reader = Callable[[Spec, int, int], tuple[np.ndarray, np.ndarray, tuple[str, ...]]]
# kind -> reader(spec, max_cells, max_bytes) of the kinds that read a file or a shipped series
FILE_READERS: dict[str, Reader] = {
    "csv": lambda spec, cells, size: read_csv(spec, max_cells=cells, max_bytes=size),
    "npz": lambda spec, cells, size: read_npz(spec, max_cells=cells, max_bytes=size),
    "csv_series": lambda spec, cells, size: read_series(spec, max_cells=cells, max_csv_bytes=size),
    "sunspots": lambda spec, cells, size: read_series(spec, max_cells=cells, max_csv_bytes=size),
    "co2": lambda spec, cells, size: read_series(spec, max_cells=cells, max_csv_bytes=size),
    "csv_text": lambda spec, cells, size: read_texts(spec, max_cells=cells, max_bytes=size),
    # streamed kinds: the features stay on disk (a memory map), so the in-memory caps do not apply
    "npy": lambda spec, cells, size: open_npy(spec),
    "parquet": lambda spec, cells, size: open_parquet(spec),
}


def _generated(spec: Spec, max_cells: int) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    import sklearn.datasets as skd

    d = spec.data
    fn = getattr(skd, d.kind)
    accepted = set(inspect.signature(fn).parameters)
    for key in d.params:
        if key not in accepted:
            raise DataError(
                f"data.params.{key}: {d.kind} has no parameter {key!r}; allowed: {', '.join(sorted(accepted))}",
                path=f"data.params.{key}",
            )
    _check_generator_size(d.kind, d.params, fn, max_cells)
    try:
        out = fn(**d.params)
    except (TypeError, ValueError) as exc:
        raise DataError(f"data.params: sklearn {d.kind} rejected the parameters: {exc}") from None
    x, y = np.asarray(out[0], dtype=np.float64), np.asarray(out[1])
    if len(x) == 0:
        raise DataError(f"data.params.n_samples: {d.kind} made no samples", path="data.params.n_samples")
    # sklearn squeezes y: n_samples = 1 gives a 0-d target, (1, n_targets) becomes (n_targets,)
    y = y.reshape(len(x), -1)
    if y.shape[1] == 1:
        y = y[:, 0]
    return x, y, tuple(f"x{i}" for i in range(x.shape[1]))


def _bundled(spec: Spec) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    import sklearn.datasets as skd

    d = spec.data
    if d.params:
        raise DataError(f"data.params: bundled set {d.kind!r} takes no params", path="data.params")
    bunch = getattr(skd, BUNDLED[d.kind])()
    names = tuple(str(n) for n in getattr(bunch, "feature_names", range(bunch.data.shape[1])))
    return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target), names


def _count(value: Any) -> int:
    """A size parameter as a count (a list of per-cluster sizes sums); 0 when sklearn will reject it."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, (list, tuple)):
        return sum(_count(v) for v in value if isinstance(v, int))
    return 0


def _check_generator_size(kind: str, params: Mapping[str, Any], fn: Any, max_cells: int) -> None:
    """Refuse generator parameters whose arrays would exceed ``max_cells`` (before allocating)."""
    defaults = {k: p.default for k, p in inspect.signature(fn).parameters.items()}
    values = {**defaults, **params}
    n_samples = _count(values.get("n_samples"))
    n_features = _count(values.get("n_features", 2))  # make_moons has no n_features: always 2
    n_targets = _count(values.get("n_targets", 1))
    cells = n_samples * (n_features + n_targets)
    if kind == "make_regression":
        cells += n_features * n_targets  # the coefficient matrix
    if kind == "make_blobs" and isinstance(values.get("centers"), int):
        cells += _count(values["centers"]) * n_features
    if cells > max_cells:
        key = "n_features" if n_features > n_samples else "n_samples"
        raise DataError(
            f"data.params.{key}: {kind} with n_samples = {n_samples:,} and n_features = {n_features:,} "
            f"makes {cells:,} values ({8 * cells / 1e9:.1f} GB as float64); the cap is {max_cells:,} "
            f"(duofit.common.data.MAX_DATA_ELEMENTS); {NPY_HINT}",
            path=f"data.params.{key}",
        )
