"""Features of the three parts, ready to train on: shaped, scaled on the training part, or tokenized.

Three kinds of ``x`` reach :func:`duofit.common.data.prepare`, each handled here once the
split is known:

- **float features**, any shape: first given their sample shape (``data.image_shape`` or
  ``data.sequence_shape`` for flat rows), then standardized with statistics of the training
  part only: per column for ``(n, features)``, per pixel and channel for images
  ``(n, h, w, c)`` (as for flat rows), per feature over every step for sequences
  ``(n, steps, features)`` (:class:`StepScaler`: one mean per feature, whatever the step);
- **texts** (an object array of ``str``, kind ``csv_text``): token ids from a vocabulary
  built on the training texts only (:mod:`duofit.common.data.text`);
- **integer token ids** ``(n, steps)`` (e.g. from an ``.npz`` file): kept as they are.

Token ids stay int64, never scaled or cast to float, and need a first layer that looks ids
up (:func:`check_token_input`).

Example:
    >>> import numpy as np
    >>> scaler = StepScaler().fit(np.array([[[0.0], [2.0]], [[4.0], [6.0]]]))
    >>> scaler.mean_.tolist(), scaler.transform(np.array([[[3.0], [5.0]]]))[0, :, 0].round(3).tolist()
    ([3.0], [0.0, 0.894])
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from duofit.common.data.aligned import aligned_empty
from duofit.common.data.npyfile import release_pages
from duofit.common.data.split import Parts
from duofit.common.data.text import build_vocabulary, encode_texts
from duofit.common.errors import DataError
from duofit.common.spec import Spec
from duofit.common.spec.shapes import TOKEN_LAYERS

__all__ = [
    "TOKEN_INPUT_LAYERS",
    "Features",
    "StepScaler",
    "check_features",
    "check_float_for_tokens",
    "check_token_ids",
    "check_token_input",
    "prepare_features",
    "shaped",
]

# Bytes of float64 rows scaled at a time when a float32 run's float32 features are prepared in
# float32 (and of rows checked for NaN at a time): small beside the data, large enough that the
# per-chunk overhead vanishes.
FLOAT32_CHUNK_BYTES = 4 * 2**20

# Layer types that take integer token ids as the model's input (they look each id up).
TOKEN_INPUT_LAYERS = ("embedding",)


class Features(NamedTuple):
    """The parts' inputs and what was fitted on the training part.

    Attributes:
        train, val, test: float64 features or int64 token ids, one sample per row.
        scaler: The fitted scaler (``None``: not standardized).
        names: One name per column (per feature of a sequence, per position of token ids).
        vocabulary: The words by id (texts only), else ``None``.
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    scaler: Any
    names: tuple[str, ...]
    vocabulary: tuple[str, ...] | None


class StepScaler:
    """Standardize each feature (last axis) of sequences with one mean and scale over all steps.

    scikit-learn's ``StandardScaler`` does the work on the ``(samples * steps, features)`` view.
    """

    def __init__(self) -> None:
        from sklearn.preprocessing import StandardScaler

        self.inner = StandardScaler()

    def fit(self, x: np.ndarray) -> StepScaler:
        """Fit on ``(n, steps, features)`` (any leading axes)."""
        self.inner.fit(x.reshape(-1, x.shape[-1]))
        return self

    def partial_fit(self, x: np.ndarray) -> StepScaler:
        """Update the statistics with a chunk of ``(n, steps, features)`` (streamed data)."""
        self.inner.partial_fit(x.reshape(-1, x.shape[-1]))
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Standardized copy, same shape."""
        a = np.asarray(x, dtype=np.float64)
        return np.asarray(self.inner.transform(a.reshape(-1, a.shape[-1]))).reshape(a.shape)

    def inverse_transform(self, x: np.ndarray) -> np.ndarray:
        """Back to the original units, same shape."""
        a = np.asarray(x, dtype=np.float64)
        return np.asarray(self.inner.inverse_transform(a.reshape(-1, a.shape[-1]))).reshape(a.shape)

    @property
    def mean_(self) -> np.ndarray:
        """Mean of each feature over the training samples and steps."""
        return np.asarray(self.inner.mean_)

    @property
    def scale_(self) -> np.ndarray:
        """Standard deviation of each feature (1 where it is 0, as scikit-learn does)."""
        return np.asarray(self.inner.scale_)


def check_token_input(spec: Spec, what: str, hint: str = "") -> None:
    """Token ids need a first layer of a type in :data:`TOKEN_INPUT_LAYERS`.

    The one place this rule lives: graph models or new id-consuming layers change it here.

    Args:
        spec: The spec.
        what: What makes the ids, for the message (e.g. ``"kind 'csv_text' makes token ids"``).
        hint: Appended to the message (e.g. how to make the data float instead).

    Raises:
        DataError: on ``model.layers[0].type``, naming the fix.
    """
    first = spec.model.layers[0].type
    if first not in TOKEN_INPUT_LAYERS:
        raise DataError(
            f"model.layers[0].type: {what}; integer token ids need an `embedding` first layer, which looks each id "
            f"up (a {first!r} layer would treat the ids as measurements){hint}",
            path="model.layers[0].type",
        )


def check_features(spec: Spec, x: np.ndarray) -> None:
    """Texts as one column, token ids non-negative, float features finite.

    Raises:
        DataError: on ``data``, ``data.image_shape`` or ``data.sequence_shape``.
    """
    if x.dtype.kind in "OUS":
        if x.ndim != 1:
            raise DataError(f"data: texts must be one column, got shape {list(x.shape)}", path="data")
        return
    if x.dtype.kind in "iu":
        shape_field = "image_shape" if spec.data.image_shape else "sequence_shape" if spec.data.sequence_shape else ""
        if shape_field:
            raise DataError(
                f"data.{shape_field}: the data are integer token ids, which are not reshaped; remove {shape_field}",
                path=f"data.{shape_field}",
            )
        if x.ndim != 2:
            raise DataError(f"data: token ids must be (samples, steps), got shape {list(x.shape)}")
        if x.size and x.min() < 0:
            raise DataError(
                f"data: token ids must be >= 0 (0 pads), found {int(x.min())}: re-index the ids to 0..input_dim - 1 "
                "of the embedding"
            )
        return
    rows = max(1, FLOAT32_CHUNK_BYTES // max(1, x.itemsize * int(np.prod(x.shape[1:]))))
    for start in range(0, len(x), rows):  # chunks: no n-sized mask
        finite = np.isfinite(x[start : start + rows]).all()
        release_pages(x)  # a memory-mapped x: one chunk's pages at a time
        if not finite:
            raise DataError("data: features hold NaN or infinite values", path="data")


def check_token_ids(spec: Spec, ids: np.ndarray) -> None:
    """Every token id indexes a row of each embedding's table: ``id < input_dim``.

    A larger id would crash the torch run (``IndexError``) and read past the table in Keras.

    Args:
        spec: The spec.
        ids: Token ids, int, any shape (checked non-negative by :func:`check_features`).

    Raises:
        DataError: on ``model.layers[i].input_dim``, naming the largest id and the fix.
    """
    if not ids.size:
        return
    top = int(ids.max())
    for i, layer in enumerate(spec.model.layers):
        input_dim = getattr(layer, "input_dim", None)
        if isinstance(layer, TOKEN_LAYERS) and input_dim is not None and top >= input_dim:
            raise DataError(
                f"model.layers[{i}].input_dim: is {input_dim} (ids 0..{input_dim - 1}), but the data's token ids "
                f"go up to {top} ({int((ids >= input_dim).sum())} id(s) out of range): set input_dim >= {top + 1} "
                f"(the largest id + 1), or re-index the ids to 0..{input_dim - 1}",
                path=f"model.layers[{i}].input_dim",
            )


def check_float_for_tokens(spec: Spec, x: np.ndarray) -> None:
    """Float features cannot feed a layer that looks token ids up (any such layer reads the model input)."""
    for i, layer in enumerate(spec.model.layers):
        if not isinstance(layer, TOKEN_LAYERS):
            continue
        whole = x.size and np.array_equal(x, np.round(x))
        hint = (
            "; they are whole numbers: if they are token ids, save x as integers (x.astype('int64'))" if whole else ""
        )
        masking = " (and its mask_zero)" if getattr(layer, "mask_zero", False) else ""
        raise DataError(
            f"model.layers[{i}].type: an {layer.type} layer{masking} looks up integer token ids, but the "
            f"data hold float features of shape {list(x.shape[1:])}{hint}: use data.kind = 'csv_text', an npz file "
            "whose x holds integers (samples, steps), or a layer that reads measurements (dense, conv1d)",
            path=f"model.layers[{i}].type",
        )


def shaped(spec: Spec, x: np.ndarray) -> np.ndarray:
    """Float features in their sample shape: ``data.image_shape`` / ``data.sequence_shape``, else as given.

    Raises:
        DataError: the requested shape does not hold the sample's values, or images without
            ``data.image_shape`` (which the layers' shapes are checked against).
    """
    field = "image_shape" if spec.data.image_shape else "sequence_shape" if spec.data.sequence_shape else ""
    if not field:
        if x.ndim == 4:
            raise DataError(
                f"data.image_shape: the data are images of shape {list(x.shape[1:])}; set data.image_shape = "
                f"{list(x.shape[1:])} so the layers' shapes can be checked before the data loads",
                path="data.image_shape",
            )
        return x
    shape = tuple(getattr(spec.data, field))
    size, width = int(np.prod(shape)), int(np.prod(x.shape[1:]))
    if size != width:
        raise DataError(
            f"data.{field}: {list(shape)} holds {size} values per sample but the data has {width} features",
            path=f"data.{field}",
        )
    return x.reshape(len(x), *shape)


def prepare_features(spec: Spec, x: np.ndarray, parts: Parts, names: tuple[str, ...]) -> Features:
    """The parts' inputs: scaled on the training part, or token ids (vocabulary from the training texts).

    Raises:
        DataError: an empty vocabulary, token ids without an embedding first layer or beyond an
            embedding's ``input_dim``, float features for an embedding, values that overflow when
            standardized.
    """
    if x.dtype.kind in "OUS":
        text = spec.data.text
        max_vocab, max_len, padding = (text.max_vocab, text.max_len, text.padding) if text else (20_000, 64, "post")
        vocabulary = build_vocabulary(x[parts.train], max_vocab)
        check_token_input(spec, f"kind {spec.data.kind!r} makes token ids")
        tr, va, te = (
            encode_texts(x[rows], vocabulary, max_len, padding) for rows in (parts.train, parts.val, parts.test)
        )
        return Features(tr, va, te, None, _positions(max_len), vocabulary)
    if x.dtype.kind in "iu":
        check_token_input(spec, "x holds integers", "; if they are numeric features, save x as float")
        check_token_ids(spec, x)
        return Features(x[parts.train], x[parts.val], x[parts.test], None, _positions(x.shape[1]), None)
    check_float_for_tokens(spec, x)
    x = shaped(spec, x)
    if x.dtype == np.float32 and spec.train.dtype == "float32":
        return _float32_features(spec, x, parts, names)
    x = np.asarray(x, dtype=np.float64)
    x_tr, x_va, x_te = x[parts.train], x[parts.val], x[parts.test]
    if not spec.data.standardize:
        return Features(x_tr, x_va, x_te, None, names, None)
    scaler: Any
    if x.ndim == 3:
        scaler = StepScaler().fit(x_tr)
        x_tr, x_va, x_te = scaler.transform(x_tr), scaler.transform(x_va), scaler.transform(x_te)
    else:
        from sklearn.preprocessing import StandardScaler

        flat = [a.reshape(len(a), -1) for a in (x_tr, x_va, x_te)]
        scaler = StandardScaler().fit(flat[0])
        x_tr, x_va, x_te = (scaler.transform(f).reshape(a.shape) for f, a in zip(flat, (x_tr, x_va, x_te), strict=True))
    _check_overflow((x_tr, x_va, x_te), names)
    return Features(x_tr, x_va, x_te, scaler, names, None)


def _float32_features(spec: Spec, x: np.ndarray, parts: Parts, names: tuple[str, ...]) -> Features:
    """float32 features of a float32 run, kept in float32: the parts are the only copy besides the source.

    The training rows' statistics are gathered chunk by chunk (``partial_fit`` on float64
    copies: the statistics ``fit`` computes, bit for bit when the rows fit in one chunk, else
    to float64 rounding) and each part is scaled in float64 a chunk at a time, then stored in
    float32: the values a backend would get by casting the float64 parts, without holding them.
    ``x`` may be a memory map (an uncompressed npz, :mod:`duofit.common.data.npzfile`): each
    chunk's pages are released after it, so the source never sits whole beside the parts.
    """
    rows_per = max(1, FLOAT32_CHUNK_BYTES // (8 * max(1, int(np.prod(x.shape[1:])))))
    if not spec.data.standardize:
        return _float32_parts(x, parts, rows_per, None, names)
    from sklearn.preprocessing import StandardScaler

    scaler: Any = StepScaler() if x.ndim == 3 else StandardScaler()
    for start in range(0, len(parts.train), rows_per):
        chunk = x[parts.train[start : start + rows_per]].astype(np.float64)
        release_pages(x)  # the pages this chunk touched
        scaler.partial_fit(chunk if x.ndim == 3 else chunk.reshape(len(chunk), -1))
    shape = x.shape[-1:] if x.ndim == 3 else x.shape[1:]
    stats = (np.asarray(scaler.mean_).reshape(shape), np.asarray(scaler.scale_).reshape(shape))
    features = _float32_parts(x, parts, rows_per, stats, names)
    return features._replace(scaler=scaler)


def _float32_parts(
    x: np.ndarray, parts: Parts, rows_per: int, stats: tuple[np.ndarray, np.ndarray] | None, names: tuple[str, ...]
) -> Features:
    """The parts of ``x`` in float32, scaled by ``stats`` (mean, scale) in float64 when given.

    Rows are read in ascending order, a chunk at a time, each stored at its place in the part:
    a memory-mapped ``x`` then touches one stretch of its file per chunk (released after it),
    not pages all over it. Each value is the same whatever the order.
    """

    def part(rows: np.ndarray) -> np.ndarray:
        out = aligned_empty((len(rows), *x.shape[1:]), np.float32)  # frameworks can wrap it without a copy
        order = np.argsort(rows, kind="stable")
        for start in range(0, len(rows), rows_per):
            at = order[start : start + rows_per]
            chunk = x[rows[at]]
            release_pages(x)
            if stats is not None:
                chunk = chunk.astype(np.float64)
                chunk -= stats[0]  # StandardScaler.transform: X -= mean_; X /= scale_ (sklearn/preprocessing/_data.py)
                chunk /= stats[1]
                chunk = chunk.astype(np.float32)
                _check_overflow((chunk,), names)  # float32 can overflow where float64 did not
            out[at] = chunk
        return out

    x_tr, x_te = part(parts.train), part(parts.test)
    x_va = x_te if parts.val_is_test else part(parts.val)  # validation on the test part: one copy of it
    return Features(x_tr, x_va, x_te, None, names, None)


def _positions(n: int) -> tuple[str, ...]:
    return tuple(f"t{i}" for i in range(n))


def _check_overflow(parts: tuple[np.ndarray, ...], names: tuple[str, ...]) -> None:
    """Values near the float64 limit overflow the scaler's variance: never hand on a silent NaN/inf."""
    columns = [p.reshape(-1, p.shape[-1]) if p.ndim == 3 else p.reshape(len(p), -1) for p in parts]
    bad = np.zeros(columns[0].shape[1], dtype=bool)
    for c in columns:
        bad |= ~np.isfinite(c).all(axis=0)
    if bad.any():
        cols = [names[i] if i < len(names) else f"x{i}" for i in np.flatnonzero(bad)[:10]]
        raise DataError(
            f"data.standardize: feature(s) {', '.join(cols)} overflow when standardized (values near "
            "1e308); rescale them or set data.standardize = false",
            path="data.standardize",
        )
