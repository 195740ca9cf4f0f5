"""The prepared arrays every backend trains on and the targets a loss consumes.

The shared batch order is :mod:`duofit.common.data.order`; streamed parts (kinds ``npy`` and
``parquet``) are :class:`~duofit.common.data.stream.StreamedRows`.

Example:
    >>> import numpy as np
    >>> ds = Dataset(np.zeros((4, 2)), np.zeros(4), np.zeros((1, 2)), np.zeros(1), np.zeros((1, 2)),
    ...              np.zeros(1), "regression", None, None, ("a", "b"), True)
    >>> ds.input_shape, ds.streamed
    ((2,), False)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from duofit.common.data.rows import StreamedRows
from duofit.common.spec import Spec

__all__ = ["Dataset", "Part", "targets_for_loss"]

# A part's features: in memory, or streamed from a memory map (kinds npy, parquet).
Part = np.ndarray | StreamedRows


@dataclass(frozen=True)
class Dataset:
    """Split and scaled arrays. ``y_*`` hold class indices (int64) or float targets.

    ``x_*`` are numpy arrays, or for the streamed kinds (``npy``, ``parquet``)
    :class:`~duofit.common.data.rows.StreamedRows`: index them per batch (``x[idx]``) and
    evaluate them in chunks (:func:`duofit.common.data.stream.eval_chunks`); ``np.asarray``
    loads a whole part (small data only).

    Attributes:
        task: ``binary``, ``multiclass`` or ``regression``.
        n_classes: number of classes (``None`` for regression).
        classes: original label values, index i is class i (``None`` for regression).
        val_is_test: True when per-epoch validation uses the test split (val_size = 0).
        scaler: The ``StandardScaler`` fitted on the training part (``None`` without
            ``data.standardize``); new inputs go through it before prediction.
        w_train: Per-sample loss weights of the training rows, in their order (the
            scikit-learn estimators' ``sample_weight``); ``None``: every row weighs 1.
        target_scaler: The ``StandardScaler`` fitted on the training part's regression
            targets (``data.standardize_target``; else ``None``). The ``y_*`` arrays and
            the model's outputs are in its scaled units; :meth:`in_target_units` maps
            them back.
        vocabulary: For texts (kind ``csv_text``): the words by token id, built on the
            training part (id 0 ``<pad>``, 1 ``<oov>``); else ``None``.
    """

    x_train: Part
    y_train: np.ndarray
    x_val: Part
    y_val: np.ndarray
    x_test: Part
    y_test: np.ndarray
    task: str
    n_classes: int | None
    classes: np.ndarray | None
    feature_names: tuple[str, ...]
    val_is_test: bool
    scaler: Any = None
    w_train: np.ndarray | None = None
    target_scaler: Any = None
    vocabulary: tuple[str, ...] | None = None

    @property
    def streamed(self) -> bool:
        """Whether the features stay on disk (:class:`~duofit.common.data.rows.StreamedRows` parts, read per batch)."""
        return isinstance(self.x_train, StreamedRows)

    @property
    def n_features(self) -> int:
        """Number of input features (height * width * channels for images)."""
        return int(np.prod(self.x_train.shape[1:]))

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample: ``(features,)``, ``(steps, features)``, ``(height, width, channels)``, ``(steps,)``."""
        return tuple(int(n) for n in self.x_train.shape[1:])

    def in_target_units(self, values: np.ndarray) -> np.ndarray:
        """Targets or model outputs in the original target units (unchanged without ``target_scaler``).

        Args:
            values: ``(n,)`` or ``(n, targets)`` values in the units the model trains on.

        Returns:
            float64 values of the same shape, ``target_scaler.inverse_transform``-ed.
        """
        if self.target_scaler is None:
            return values
        flat = np.asarray(values, dtype=np.float64)
        return np.asarray(self.target_scaler.inverse_transform(flat.reshape(len(flat), -1))).reshape(flat.shape)


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
