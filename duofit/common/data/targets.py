"""Targets as the loss needs them: class indices or float values, checked against the model's output layer.

Example:
    >>> import numpy as np
    >>> from duofit.common.loader import load_spec
    >>> spec = load_spec({"data": {"kind": "iris"},
    ...                   "model": {"layers": [{"type": "dense", "units": 3}]},
    ...                   "loss": {"type": "categorical_crossentropy"}})
    >>> t = encode_targets(spec, np.array(["b", "a", "c", "a"]))
    >>> t.y.tolist(), t.task, t.classes.tolist()
    ([1, 0, 2, 0], 'multiclass', ['a', 'b', 'c'])
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from duofit.common.errors import DataError
from duofit.common.spec import DenseLayer, Spec

__all__ = [
    "scaled_targets",
    "MIN_CLASS_SAMPLES",
    "MIN_REGRESSION_SAMPLES",
    "Targets",
    "check_outputs",
    "check_training_classes",
    "encode_targets",
    "split_warnings",
]

# Fewest samples of each class a split scored by metrics should hold: with none, recall and
# ROC-AUC are undefined there; with one, recall is 0 or 1 and a per-class score rests on one
# sample.
MIN_CLASS_SAMPLES = 2
# Fewest samples of a regression split: r2 divides by the target's variance, 0 for one sample.
MIN_REGRESSION_SAMPLES = 2


class Targets(NamedTuple):
    """Encoded targets.

    Attributes:
        y: Class indices (int64) or float targets.
        task: ``binary``, ``multiclass`` or ``regression``.
        n_classes: Number of classes (``None`` for regression).
        classes: Original label values, index i is class i (``None`` for regression).
    """

    y: np.ndarray
    task: str
    n_classes: int | None
    classes: np.ndarray | None

    @property
    def n_targets(self) -> int:
        """Target columns (1 for class labels)."""
        return 1 if self.y.ndim == 1 else int(self.y.shape[1])


def encode_targets(spec: Spec, y: np.ndarray) -> Targets:
    """Encode raw labels or values for the spec's task (its loss).

    Raises:
        DataError: a non-numeric or non-finite regression target, continuous values for a
            classifier, a single class, or not exactly 2 classes for binary cross-entropy.
    """
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
        return Targets(yf, task, None, None)
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
    return Targets(encoded.astype(np.int64), task, n_classes, classes)


def check_outputs(spec: Spec, targets: Targets) -> None:
    """The last dense layer has one unit per class (multiclass), one (binary) or one per target.

    Raises:
        DataError: naming ``model.layers[i].units`` and the value to set.
    """
    idx = max(i for i, layer in enumerate(spec.model.layers) if isinstance(layer, DenseLayer))
    units = spec.model.layers[idx].units  # type: ignore[union-attr]
    task, n_classes, n_targets = targets.task, targets.n_classes, targets.n_targets
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


def check_training_classes(targets: Targets, train: np.ndarray) -> None:
    """A classifier's training rows hold two classes or more.

    Raises:
        DataError: pointing at ``data.stratify``.
    """
    if targets.task != "regression" and np.unique(targets.y[train]).size < 2:
        raise DataError(
            f"data: the training split holds a single class ({np.unique(targets.y[train]).tolist()[:1]}); "
            "set data.stratify = true or provide more samples of every class",
            path="data.stratify",
        )


def _scored_splits(spec: Spec, y_val: np.ndarray, y_test: np.ndarray, val_is_test: bool) -> list[tuple[str, str, Any]]:
    """(split, the field that sizes it, its targets) for every split metrics are computed on."""
    test = ("test split" + (" (also the validation split)" if val_is_test else ""), "test_size", y_test)
    return [test] if val_is_test else [("validation split", "val_size", y_val), test]


def split_warnings(
    spec: Spec, y_val: np.ndarray, y_test: np.ndarray, val_is_test: bool, classes: np.ndarray | None
) -> list[str]:
    """Splits too small to score: fewer than :data:`MIN_CLASS_SAMPLES` of a class, or of samples.

    Args:
        spec: The spec (its ``data.test_size`` and ``data.val_size`` are named in the fix).
        y_val: Validation class indices or targets.
        y_test: Test class indices or targets.
        val_is_test: The test split is also the validation split.
        classes: Original labels by index (``None`` for regression).

    Returns:
        One message per split too small: the split, its counts, and the field to raise.

    Example:
        >>> from duofit.common.loader import load_spec
        >>> spec = load_spec({"data": {"kind": "make_moons"}, "loss": {"type": "binary_crossentropy"},
        ...                   "model": {"layers": [{"type": "dense", "units": 1}]}})
        >>> [msg] = split_warnings(spec, np.array([0, 1]), np.array([0, 0, 0, 1]), True, np.array(["a", "b"]))
        >>> msg[: msg.index(":")]
        "the test split (also the validation split) holds fewer than 2 samples of a class ('a'"
    """
    out = []
    for split, size_field, y in _scored_splits(spec, y_val, y_test, val_is_test):
        fix = f"raise data.{size_field} (now {getattr(spec.data, size_field)}) or add data"
        if classes is None:
            if len(y) < MIN_REGRESSION_SAMPLES:
                out.append(f"the {split} holds {len(y)} sample(s): r2 is undefined (NaN) on it; {fix}")
            continue
        counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=len(classes))
        if counts.min() < MIN_CLASS_SAMPLES:
            listed = ", ".join(
                f"{c!r}: {n}" for c, n in zip(np.asarray(classes).tolist(), counts.tolist(), strict=True)
            )
            out.append(
                f"the {split} holds fewer than {MIN_CLASS_SAMPLES} samples of a class ({listed}): its scores rest "
                f"on too few samples or are undefined (NaN); {fix}"
            )
    return out


def scaled_targets(spec: Spec, y: np.ndarray, parts: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, object]:
    """The targets of each part, standardized (``data.standardize_target``) on the training rows only.

    ``parts`` is a :class:`~duofit.common.data.split.Parts`.

    Returns:
        ``(y_train, y_val, y_test, scaler)``; ``scaler`` is None without standardization.
    """
    y_tr, y_va, y_te = y[parts.train], y[parts.val], y[parts.test]
    if not spec.data.standardize_target:
        return y_tr, y_va, y_te, None
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(y_tr.reshape(len(y_tr), -1))
    scaled = [scaler.transform(part.reshape(len(part), -1)).reshape(part.shape) for part in (y_tr, y_va, y_te)]
    if not all(np.isfinite(part).all() for part in scaled):
        raise DataError(
            "data.standardize_target: the target overflows when standardized (values near 1e308); rescale it "
            "or set data.standardize_target = false",
            path="data.standardize_target",
        )
    return scaled[0], scaled[1], scaled[2], scaler
