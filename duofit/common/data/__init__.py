"""Arrays for a spec: read the source, split, scale (fitted on the training part only), batch order.

Both backends train on exactly the arrays and batch order made here. :func:`prepare` is the
one way raw arrays become a :class:`Dataset`: :func:`load_dataset` (the spec's source and
split), the cross-validation folds (given train/test rows) and the scikit-learn estimators
(given ``X, y``) all go through it, with the same checks and messages.

The resource caps below are read when a function runs: a shared spec fails with a clear
message instead of exhausting memory.

Example:
    >>> import numpy as np
    >>> from duofit.common.loader import load_spec
    >>> spec = load_spec({"data": {"kind": "iris", "split_seed": 1},
    ...                   "model": {"layers": [{"type": "dense", "units": 3}]},
    ...                   "loss": {"type": "categorical_crossentropy"}})
    >>> ds = load_dataset(spec)
    >>> ds.x_train.shape, ds.task, ds.n_classes
    ((120, 4), 'multiclass', 3)

    A fold of given rows (``parts``), prepared the same way:

    >>> x, y = ds.x_train[:10], np.array(["a", "b"] * 5)
    >>> spec2 = load_spec({"data": {"kind": "make_moons"},
    ...                    "model": {"layers": [{"type": "dense", "units": 1}]},
    ...                    "loss": {"type": "binary_crossentropy"}})
    >>> parts = given_parts(spec2, y, np.arange(8), np.arange(8, 10), seed=0, stratify=False)
    >>> fold = prepare(spec2, x, y, parts=parts)
    >>> fold.x_train.shape, fold.x_test.shape, fold.classes.tolist()
    ((8, 4), (2, 4), ['a', 'b'])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from duofit.common.data.dataset import Dataset, Part, targets_for_loss
from duofit.common.data.features import check_features, prepare_features
from duofit.common.data.order import BatchOrder, batch_order
from duofit.common.data.prescale import training_rows
from duofit.common.data.rows import (
    GATHER_PART_BYTES,
    READ_ONCE_BYTES,
    StreamedRows,
    chunk_rows_for,
    gathered_per_batch,
    read_once,
)
from duofit.common.data.sizes import check_sizes
from duofit.common.data.sources import read_source
from duofit.common.data.split import Parts, given_parts, spec_parts
from duofit.common.data.stream import STREAMED_KINDS, eval_chunks, prepare_streamed
from duofit.common.data.targets import check_outputs, check_training_classes, encode_targets, scaled_targets
from duofit.common.spec import Spec

__all__ = [
    "GATHER_PART_BYTES",
    "READ_ONCE_BYTES",
    "MAX_ACTIVATION_ELEMENTS",
    "MAX_CSV_BYTES",
    "MAX_DATA_ELEMENTS",
    "MAX_ORDER_ELEMENTS",
    "MAX_PARAMETERS",
    "BatchOrder",
    "Dataset",
    "Part",
    "Parts",
    "STREAMED_KINDS",
    "StreamedRows",
    "batch_order",
    "chunk_rows_for",
    "eval_chunks",
    "gathered_per_batch",
    "read_once",
    "given_parts",
    "load_dataset",
    "prepare",
    "read_arrays",
    "spec_parts",
    "training_rows",
    "targets_for_loss",
]

# Feature cells (samples x features, targets included): 800 MB as float64; the split and the
# scaled copies take about 4x that, which a 16 GB machine still survives.
MAX_DATA_ELEMENTS = 100_000_000
# CSV size on disk: MAX_DATA_ELEMENTS cells at ~10 bytes each ("0.1234567,"); pandas needs a
# few times the file size while parsing.
MAX_CSV_BYTES = 1_000_000_000
# Weights + biases of the model: 400 MB per copy in float32 (800 MB in float64), and Adam keeps
# two more copies plus the gradients.
MAX_PARAMETERS = 100_000_000
# Epochs x training samples of a materialised batch order (one int64 each, 800 MB at the cap): the
# bundle of an exported script holds every epoch's order; training draws one epoch at a time
# (duofit.common.data.order.BatchOrder), so runs have no such cap.
MAX_ORDER_ELEMENTS = 100_000_000
# Output of one layer for the largest single forward pass (a training batch, or the whole
# validation / test split, which is evaluated in one pass): 2 GB in float32, 4 GB in float64,
# and the backward pass keeps a few such tensors per layer. Convolutions reach it first
# (e.g. 10,000 images of 32x32 with 64 filters = 655 M values).
MAX_ACTIVATION_ELEMENTS = 500_000_000


def read_arrays(spec: Spec) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Features, raw targets and feature names of the spec's source, unsplit and unscaled.

    Features are float64 or int64 token ids in memory, or the read-only memory map of a
    streamed kind (``npy``, ``parquet``: its file's float dtype).

    Raises:
        DataError: see :func:`load_dataset`.
    """
    return read_source(spec, max_cells=MAX_DATA_ELEMENTS, max_csv_bytes=MAX_CSV_BYTES)


def load_dataset(spec: Spec) -> Dataset:
    """Read, split and scale the data of a spec (:func:`read_arrays`, then :func:`prepare`).

    Args:
        spec: A validated spec.

    Returns:
        A :class:`Dataset`. Features are float64 (the backend casts to the spec's dtype), or int64
        token ids.

    Raises:
        DataError: missing file or column, non-numeric features, NaNs, wrong number of classes,
            an output layer that does not match the targets, or sizes over the caps
            (``MAX_DATA_ELEMENTS``, ``MAX_CSV_BYTES``, ``MAX_PARAMETERS``, ``MAX_ACTIVATION_ELEMENTS``; the
            streamed kinds ``npy`` and ``parquet`` have no cap on the data, whose features stay on disk).
    """
    x, y, names = read_arrays(spec)
    if spec.data.kind in STREAMED_KINDS:  # the features stay on disk, read per batch
        ds = prepare_streamed(spec, x, y, names)
        _check_caps(spec, ds.input_shape, len(ds.x_train), chunk_rows_for(ds.input_shape))
        return ds
    return prepare(spec, x, y, names)


def prepare(
    spec: Spec,
    x: np.ndarray,
    y: np.ndarray,
    feature_names: Sequence[str] | None = None,
    parts: Parts | None = None,
) -> Dataset:
    """Raw arrays as a checked, split and scaled :class:`Dataset`.

    Targets are encoded for the spec's loss; the scalers (features, and regression targets
    with ``data.standardize_target``) are fitted on the training rows only.

    Args:
        spec: A validated spec (its ``data`` source is not read).
        x: Features, one row per sample: float64 of any sample shape, int64 token ids
            ``(n, steps)``, or texts (an object array of ``str``, tokenized with a vocabulary
            of the training rows); see :mod:`duofit.common.data.features`.
        y: Raw targets: labels (any values) or regression values.
        feature_names: Column names (default ``x0, x1, ...``).
        parts: The rows of each part, e.g. a cross-validation fold's
            (:func:`~duofit.common.data.split.given_parts`). Default: the spec's split
            (:func:`~duofit.common.data.split.spec_parts`: ``data.test_size``,
            ``data.val_size``, ``data.split_seed``, ``data.stratify``).

    Returns:
        The :class:`Dataset` (``scaler``: the fitted ``StandardScaler``, or a
        :class:`~duofit.common.data.features.StepScaler` for sequences; ``target_scaler``:
        the targets' one, whose units ``y_*`` are in; ``vocabulary``: the words by id, for
        texts), images and sequences in their sample shape.

    Raises:
        DataError: non-finite features, bad targets or output layer, an impossible split,
            a single class in the training part, layers that do not fit the data's sample shape,
            sizes over the caps, an empty vocabulary, token ids without an ``embedding`` first
            layer or beyond its ``input_dim``.
    """
    check_features(spec, x)
    flat = int(np.prod(x.shape[1:]))
    names = tuple(feature_names) if feature_names is not None else tuple(f"x{i}" for i in range(flat))
    targets = encode_targets(spec, y)
    check_outputs(spec, targets)
    if parts is None:
        parts = spec_parts(spec, targets.y, spec.data.stratify and targets.task != "regression")
    check_training_classes(targets, parts.train)
    feats = prepare_features(spec, x, parts, names)
    _check_caps(spec, feats.train.shape[1:], len(feats.train), max(len(feats.val), len(feats.test)))
    y_of, task, n_classes, classes = targets
    y_tr, y_va, y_te, target_scaler = scaled_targets(spec, y_of, parts)
    return Dataset(
        x_train=feats.train,
        y_train=y_tr,
        x_val=feats.val,
        y_val=y_va,
        x_test=feats.test,
        y_test=y_te,
        task=task,
        n_classes=n_classes,
        classes=classes,
        feature_names=feats.names,
        val_is_test=parts.val_is_test,
        scaler=feats.scaler,
        target_scaler=target_scaler,
        vocabulary=feats.vocabulary,
    )


def _check_caps(spec: Spec, input_shape: tuple[int, ...], n_train: int, n_eval: int) -> None:
    """:func:`~duofit.common.data.sizes.check_sizes` (shapes traced with the data's) against this module's caps."""
    check_sizes(
        spec,
        tuple(int(n) for n in input_shape),
        n_train,
        n_eval,
        max_parameters=MAX_PARAMETERS,
        max_activation=MAX_ACTIVATION_ELEMENTS,
    )
