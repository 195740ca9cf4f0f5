"""Arrays for a spec: load, split, scale (fit on train only) and the shared batch order.

Both backends train on exactly the arrays and batch order made here.

Example:
    >>> from duofit.common.loader import load_spec
    >>> spec = load_spec({"data": {"kind": "iris", "split_seed": 1},
    ...                   "model": {"layers": [{"type": "dense", "units": 3}]},
    ...                   "loss": {"type": "categorical_crossentropy"}})
    >>> ds = load_dataset(spec)
    >>> ds.x_train.shape, ds.task, ds.n_classes
    ((120, 4), 'multiclass', 3)
"""

from __future__ import annotations

import inspect
import warnings
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from duofit.common.errors import DataError
from duofit.common.spec import BatchNormLayer, Conv2DLayer, DenseLayer, Spec

__all__ = [
    "MAX_CSV_BYTES",
    "MAX_ACTIVATION_ELEMENTS",
    "MAX_DATA_ELEMENTS",
    "MAX_ORDER_ELEMENTS",
    "MAX_PARAMETERS",
    "Dataset",
    "batch_order",
    "load_dataset",
    "targets_for_loss",
]

# Resource caps: a shared spec must fail with a clear message instead of exhausting memory.
# Feature cells (samples x features, targets included): 800 MB as float64; the split and the
# scaled copies take about 4x that, which a 16 GB machine still survives.
MAX_DATA_ELEMENTS = 100_000_000
# CSV size on disk: MAX_DATA_ELEMENTS cells at ~10 bytes each ("0.1234567,"); pandas needs a
# few times the file size while parsing.
MAX_CSV_BYTES = 1_000_000_000
# Weights + biases of the model: 400 MB per copy in float32 (800 MB in float64), and Adam keeps
# two more copies plus the gradients.
MAX_PARAMETERS = 100_000_000
# Epochs x training samples: the shared batch order is one int64 per entry (800 MB at the cap).
MAX_ORDER_ELEMENTS = 100_000_000
# Output of one layer for the largest single forward pass (a training batch, or the whole
# validation / test split, which is evaluated in one pass): 2 GB in float32, 4 GB in float64,
# and the backward pass keeps a few such tensors per layer. Convolutions reach it first
# (e.g. 10,000 images of 32x32 with 64 filters = 655 M values).
MAX_ACTIVATION_ELEMENTS = 500_000_000
# Compressed CSVs are refused: a few kilobytes of gzip can expand to gigabytes (a "zip bomb").
_COMPRESSED_SUFFIXES = (".gz", ".bz2", ".zip", ".xz", ".zst", ".tar", ".tgz")

_GENERATORS = ("make_classification", "make_regression", "make_moons", "make_blobs")
_BUNDLED = {
    "iris": "load_iris",
    "breast_cancer": "load_breast_cancer",
    "digits": "load_digits",
    "wine": "load_wine",
    "diabetes": "load_diabetes",
}


@dataclass(frozen=True)
class Dataset:
    """Split and scaled arrays. ``y_*`` hold class indices (int64) or float targets.

    Attributes:
        task: ``binary``, ``multiclass`` or ``regression``.
        n_classes: number of classes (``None`` for regression).
        classes: original label values, index i is class i (``None`` for regression).
        val_is_test: True when per-epoch validation uses the test split (val_size = 0).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    task: str
    n_classes: int | None
    classes: np.ndarray | None
    feature_names: tuple[str, ...]
    val_is_test: bool

    @property
    def n_features(self) -> int:
        """Number of input features (height * width * channels for images)."""
        return int(np.prod(self.x_train.shape[1:]))

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample: ``(features,)`` or ``(height, width, channels)``."""
        return tuple(int(n) for n in self.x_train.shape[1:])


def _raw_arrays(spec: Spec) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    import sklearn.datasets as skd

    d = spec.data
    if d.kind in _GENERATORS:
        fn = getattr(skd, d.kind)
        accepted = set(inspect.signature(fn).parameters)
        for key in d.params:
            if key not in accepted:
                raise DataError(
                    f"data.params.{key}: {d.kind} has no parameter {key!r}; allowed: {', '.join(sorted(accepted))}",
                    path=f"data.params.{key}",
                )
        _check_generator_size(d.kind, d.params, fn)
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
        names = tuple(f"x{i}" for i in range(x.shape[1]))
        return x, y, names
    if d.kind in _BUNDLED:
        if d.params:
            raise DataError(f"data.params: bundled set {d.kind!r} takes no params", path="data.params")
        bunch = getattr(skd, _BUNDLED[d.kind])()
        names = tuple(str(n) for n in getattr(bunch, "feature_names", range(bunch.data.shape[1])))
        return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target), names
    return _read_csv(spec)


def _count(value: Any) -> int:
    """A size parameter as a count (a list of per-cluster sizes sums); 0 when sklearn will reject it."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, (list, tuple)):
        return sum(_count(v) for v in value if isinstance(v, int))
    return 0


def _check_generator_size(kind: str, params: Mapping[str, Any], fn: Any) -> None:
    """Refuse generator parameters whose arrays would exceed :data:`MAX_DATA_ELEMENTS` (before allocating)."""
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
    if cells > MAX_DATA_ELEMENTS:
        key = "n_features" if n_features > n_samples else "n_samples"
        raise DataError(
            f"data.params.{key}: {kind} with n_samples = {n_samples:,} and n_features = {n_features:,} "
            f"makes {cells:,} values; the cap is {MAX_DATA_ELEMENTS:,} (duofit/common/data.py MAX_DATA_ELEMENTS)",
            path=f"data.params.{key}",
        )


def _csv_header(path: Path) -> list[str]:
    """The first row of a CSV as written (pandas renames a duplicate ``a`` to ``a.1`` silently)."""
    import csv

    with path.open(encoding="utf-8-sig", newline="") as fh:
        for row in csv.reader(fh):
            if row:  # pandas skips blank lines before the header too
                return row
    return []


def _read_csv(spec: Spec) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    import csv

    import pandas as pd

    d = spec.data
    path = Path(str(d.path))
    if not path.exists():
        raise DataError(f"data.path: CSV file not found: {path}", path="data.path")
    if not path.is_file():  # a folder, FIFO or device (/dev/zero) would block or never end
        raise DataError(f"data.path: {path} is not a regular file", path="data.path")
    if path.suffix.lower() in _COMPRESSED_SUFFIXES:
        raise DataError(
            f"data.path: {path.name} is compressed; duofit reads plain CSV only (a small archive can "
            "expand without bound): decompress it first",
            path="data.path",
        )
    size = path.stat().st_size
    if size > MAX_CSV_BYTES:
        raise DataError(
            f"data.path: CSV file {path} is {size:,} bytes; the cap is {MAX_CSV_BYTES:,} "
            "(duofit/common/data.py MAX_CSV_BYTES)",
            path="data.path",
        )
    try:
        header = _csv_header(path)
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
    columns = [str(c) for c in frame.columns]
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
    na_rows = x_frame.isna().any(axis=1) | frame[d.target].isna()
    if na_rows.any():
        first = int(np.flatnonzero(na_rows.to_numpy())[0]) + 2  # +1 header, +1 one-based
        na_cols = [c for c in [*features, str(d.target)] if frame[c].isna().any()]
        raise DataError(
            f"data.path: {int(na_rows.sum())} row(s) of {path.name} have missing values (first at line {first}; "
            f"columns with gaps: {', '.join(na_cols)}); fill or drop them before training",
            path="data.path",
        )
    cells = len(frame) * (len(features) + 1)
    if cells > MAX_DATA_ELEMENTS:
        raise DataError(
            f"data.path: {path.name} has {len(frame):,} rows x {len(features) + 1} columns = {cells:,} values; "
            f"the cap is {MAX_DATA_ELEMENTS:,} (duofit/common/data.py MAX_DATA_ELEMENTS)",
            path="data.path",
        )
    target = frame[d.target].to_numpy()
    return x_frame.to_numpy(dtype=np.float64), target, tuple(features)


def _encode_target(spec: Spec, y: np.ndarray) -> tuple[np.ndarray, str, int | None, np.ndarray | None]:
    task = spec.task
    if task == "regression":
        try:
            yf = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(
                f"data.target: loss {spec.loss.type!r} needs a numeric target, got values like {y[:3].tolist()}",
                path="data.target",
            ) from None
        if not np.all(np.isfinite(yf)):
            raise DataError("data.target holds NaN or infinite values", path="data.target")
        return yf, task, None, None
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)):
            raise DataError("data.target holds NaN or infinite values", path="data.target")
        if not np.all(y == np.round(y)):
            raise DataError(
                f"loss.type: loss {spec.loss.type!r} needs class labels, but the target column is continuous "
                f"(e.g. {y[~(y == np.round(y))][:3].tolist()}); use loss 'mse', 'mae' or 'huber'",
                path="loss.type",
            )
    classes, encoded = np.unique(y, return_inverse=True)
    n_classes = int(classes.size)
    if n_classes < 2:
        raise DataError(
            f"data.target has a single class ({classes.tolist()}); a classifier needs two or more", path="data.target"
        )
    if task == "binary" and n_classes != 2:
        raise DataError(
            f"loss.type: binary_crossentropy needs exactly 2 classes, the target has {n_classes}; "
            "use categorical_crossentropy with one output unit per class",
            path="loss.type",
        )
    return encoded.astype(np.int64), task, n_classes, classes


def _check_outputs(spec: Spec, task: str, n_classes: int | None, n_targets: int) -> None:
    idx = max(i for i, layer in enumerate(spec.model.layers) if isinstance(layer, DenseLayer))
    units = spec.model.layers[idx].units  # type: ignore[union-attr]
    expected = n_classes if task == "multiclass" else (1 if task == "binary" else n_targets)
    if units != expected:
        what = {
            "multiclass": f"{n_classes} classes",
            "binary": "binary labels",
            "regression": f"{n_targets} target(s)",
        }[task]
        raise DataError(
            f"model.layers[{idx}].units = {units}, but the data has {what}; set units = {expected}",
            path=f"model.layers[{idx}].units",
        )


def _check_finite_after_scaling(names: tuple[str, ...], *arrays: np.ndarray) -> None:
    """Values near the float64 limit overflow the scaler's variance: never hand on a silent NaN/inf."""
    bad = np.zeros(arrays[0].shape[1], dtype=bool)
    for arr in arrays:
        bad |= ~np.isfinite(arr).all(axis=0)
    if bad.any():
        cols = [names[i] if i < len(names) else f"x{i}" for i in np.flatnonzero(bad)[:10]]
        raise DataError(
            f"data.standardize: feature(s) {', '.join(cols)} overflow when standardized (values near "
            "1e308); rescale them or set data.standardize = false",
            path="data.standardize",
        )


def _check_sizes(spec: Spec, n_features: int, n_train: int, n_eval: int = 0) -> None:
    """Refuse a model, activation or batch order too large to allocate.

    Caps: :data:`MAX_PARAMETERS`, :data:`MAX_ACTIVATION_ELEMENTS` (per layer, for the largest
    forward pass: ``max(batch_size, n_eval)`` samples) and :data:`MAX_ORDER_ELEMENTS`.
    """
    from duofit.common.shapes import infer_shapes

    image = tuple(spec.data.image_shape) if spec.data.image_shape else None
    shapes = infer_shapes(spec.model.layers, image)
    current: tuple[int, ...] = image or (n_features,)
    total = 0
    for i, layer in enumerate(spec.model.layers):
        if isinstance(layer, DenseLayer):
            total += int(np.prod(current)) * layer.units + (layer.units if layer.use_bias else 0)
        elif isinstance(layer, Conv2DLayer):
            kh, kw = layer.kernel_size
            total += kh * kw * current[-1] * layer.filters + (layer.filters if layer.use_bias else 0)
        elif isinstance(layer, BatchNormLayer):
            total += 4 * current[-1]  # gamma, beta, running mean, running variance
        if shapes[i] is not None:
            current = shapes[i]
        elif isinstance(layer, DenseLayer):
            current = (layer.units,)
        _check_activation(spec, i, current, max(min(spec.train.batch_size, n_train), n_eval))
        if total > MAX_PARAMETERS:
            where = f"model.layers[{i}].units" if isinstance(layer, DenseLayer) else f"model.layers[{i}]"
            raise DataError(
                f"{where}: the model reaches {total:,} parameters here ({n_features} input features); "
                f"the cap is {MAX_PARAMETERS:,} (duofit/common/data.py MAX_PARAMETERS); use fewer units",
                path=where,
            )
    epochs = spec.train.epochs
    if epochs * n_train > MAX_ORDER_ELEMENTS:
        raise DataError(
            f"train.epochs: {epochs:,} epochs x {n_train:,} training samples = {epochs * n_train:,} batch-order "
            f"entries; the cap is {MAX_ORDER_ELEMENTS:,} (duofit/common/data.py MAX_ORDER_ELEMENTS); "
            "use fewer epochs",
            path="train.epochs",
        )


def _check_activation(spec: Spec, i: int, shape: tuple[int, ...], rows: int) -> None:
    size = rows * int(np.prod(shape))
    if size > MAX_ACTIVATION_ELEMENTS:
        raise DataError(
            f"model.layers[{i}]: its output holds {size:,} values for one forward pass of {rows:,} samples "
            f"(shape {list(shape)} per sample; evaluation runs the whole validation/test split at once); the cap "
            f"is {MAX_ACTIVATION_ELEMENTS:,} (duofit/common/data.py MAX_ACTIVATION_ELEMENTS): use fewer "
            "filters or units, a smaller image, a smaller train.batch_size or fewer samples",
            path=f"model.layers[{i}]",
        )


def load_dataset(spec: Spec) -> Dataset:
    """Load, split and scale the data of a spec.

    Args:
        spec: A validated spec.

    Returns:
        A :class:`Dataset`. Features are float64; the backend casts to the spec's dtype.

    Raises:
        DataError: missing file or column, non-numeric features, NaNs, wrong number of classes,
            an output layer that does not match the targets, or sizes over the caps
            (``MAX_DATA_ELEMENTS``, ``MAX_CSV_BYTES``, ``MAX_PARAMETERS``, ``MAX_ORDER_ELEMENTS``).
    """
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y_raw, names = _raw_arrays(spec)
    if x.ndim != 2:
        x = x.reshape(len(x), -1)
    if not np.all(np.isfinite(x)):
        raise DataError("data: features hold NaN or infinite values", path="data")
    y, task, n_classes, classes = _encode_target(spec, y_raw)
    n_targets = 1 if y.ndim == 1 else int(y.shape[1])
    _check_outputs(spec, task, n_classes, n_targets)
    d = spec.data
    strat = y if (d.stratify and task != "regression") else None
    try:
        x_tr, x_te, y_tr, y_te = train_test_split(
            x, y, test_size=d.test_size, random_state=d.split_seed, stratify=strat
        )
        if d.val_size > 0:
            frac = d.val_size / (1 - d.test_size)
            strat_tr = y_tr if strat is not None else None
            x_tr, x_va, y_tr, y_va = train_test_split(
                x_tr, y_tr, test_size=frac, random_state=d.split_seed, stratify=strat_tr
            )
        else:
            x_va, y_va = x_te, y_te
    except ValueError as exc:
        raise DataError(
            f"data: cannot split {len(x)} samples (test_size={d.test_size}, val_size={d.val_size}): {exc}"
        ) from None
    if task != "regression" and np.unique(y_tr).size < 2:
        raise DataError(
            f"data: the training split holds a single class ({np.unique(y_tr).tolist()[:1]}); "
            "set data.stratify = true or provide more samples of every class",
            path="data.stratify",
        )
    if d.standardize:
        scaler = StandardScaler().fit(x_tr)  # fit on the training part only: no leakage
        x_tr, x_va, x_te = scaler.transform(x_tr), scaler.transform(x_va), scaler.transform(x_te)
        _check_finite_after_scaling(names, x_tr, x_va, x_te)
    _check_sizes(spec, x.shape[1], len(x_tr), max(len(x_va), len(x_te)))
    if d.image_shape:  # after scaling: the scaler works per pixel on flat rows
        shape = tuple(d.image_shape)
        if int(np.prod(shape)) != x.shape[1]:
            raise DataError(
                f"data.image_shape: {list(shape)} holds {int(np.prod(shape))} values per sample but the data has "
                f"{x.shape[1]} features",
                path="data.image_shape",
            )
        x_tr, x_va, x_te = (a.reshape(len(a), *shape) for a in (x_tr, x_va, x_te))
    return Dataset(
        x_train=x_tr,
        y_train=y_tr,
        x_val=x_va,
        y_val=y_va,
        x_test=x_te,
        y_test=y_te,
        task=task,
        n_classes=n_classes,
        classes=classes,
        feature_names=names,
        val_is_test=d.val_size == 0,
    )


def targets_for_loss(spec: Spec, y: np.ndarray, n_classes: int | None) -> np.ndarray:
    """The array a backend's loss consumes.

    A float column for binary/regression, int64 class indices, or float one-hot rows.

    Example:
        >>> import numpy as np
        >>> from duofit.common.loader import load_spec
        >>> spec = load_spec({"data": {"kind": "iris"},
        ...                   "model": {"layers": [{"type": "dense", "units": 3}]},
        ...                   "loss": {"type": "categorical_crossentropy", "labels": "one_hot"}})
        >>> targets_for_loss(spec, np.array([0, 2]), 3)
        array([[1., 0., 0.],
               [0., 0., 1.]])
    """
    task = spec.task
    if task == "multiclass":
        if getattr(spec.loss, "labels", "integer") == "one_hot":
            return np.eye(int(n_classes or 0), dtype=np.float64)[y]
        return y.astype(np.int64)
    return y.astype(np.float64).reshape(len(y), -1)


def batch_order(n: int, epochs: int, seed: int, shuffle: bool = True) -> np.ndarray:
    """One sample order per epoch, shared by every backend.

    Each epoch is split into ``ceil(n / batch_size)`` consecutive batches of this order,
    the last one possibly smaller, identically on every backend.

    Args:
        n: Number of training samples.
        epochs: Number of epochs.
        seed: Seed of the numpy Generator (``train.seed``).
        shuffle: If False every epoch is ``0..n-1``.

    Returns:
        int64 array of shape ``(epochs, n)``.

    Example:
        >>> batch_order(4, 2, seed=0, shuffle=False).tolist()
        [[0, 1, 2, 3], [0, 1, 2, 3]]
    """
    if not shuffle:
        return np.tile(np.arange(n, dtype=np.int64), (epochs, 1))
    rng = np.random.default_rng([seed, 0x0DE7])  # a stream of its own, separate from init
    return np.stack([rng.permutation(n) for _ in range(epochs)]).astype(np.int64)
