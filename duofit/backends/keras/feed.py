"""The Keras input pipeline: the shared batch order over the training part, per framework Keras runs on.

- TensorFlow (:func:`tf_batches`): a ``tf.data`` pipeline built once (one compiled step per
  epoch with ``steps_per_execution``); the training part sits in the pipeline as a tensor over
  its own buffer (:func:`tf_resident`, no copy) and each epoch's order enters when the pipeline
  reaches that epoch. A streamed or large part goes through a prefetched generator of batches
  (:func:`tf_generated`).
- torch and JAX (:func:`generator_batches`): a generator over the shared batch order
  (Keras-on-torch requires ``steps_per_execution = 1``; on JAX a partial last batch cannot share
  an execution with full ones).

With sample weights each batch is ``(x, t, w)``, the weights gathered by the same indices
(Keras' ``fit`` reads the third element as ``sample_weight``).

Example (skipped: it builds TensorFlow tensors):
    >>> tf_resident(np.ones((4, 3), np.float32)).shape   # doctest: +SKIP
    TensorShape([4, 3])
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from duofit.backends.base import TrainPlan
from duofit.backends.keras.losses import loss_targets
from duofit.common.data import Part, StreamedRows, eval_chunks, gathered_per_batch, training_rows
from duofit.common.data.aligned import aligned, aligned_copy, is_aligned

__all__ = [
    "GENERATOR_PREFETCH_BATCHES",
    "generator_batches",
    "held_inputs",
    "model_input",
    "model_inputs",
    "no_conversion",
    "training_part",
    "tf_batches",
    "tf_generated",
    "tf_resident",
]


def training_part(plan: TrainPlan, dtype: str) -> Part:
    """The training features as :func:`~duofit.common.data.training_rows` makes them.

    A small streamed part read into memory once, in the model's dtype (the same scaled values),
    and fed as an in-memory part of its size; a larger one on a resident map pre-scaled once.
    """
    return training_rows(plan.dataset.x_train, dtype)


def generator_batches(plan: TrainPlan, dtype: str, part: Part | None = None) -> Iterator[tuple[np.ndarray, ...]]:
    """Every epoch's batches in the shared order from ``plan.start_epoch``, as numpy (Keras moves them to the device).

    Each epoch's order is drawn when the generator reaches it; streamed features (kinds ``npy``,
    ``parquet``) are read from their memory map per batch. ``part``: the training features
    (default: :func:`training_part`).
    """
    bs = plan.spec.train.batch_size
    part = training_part(plan, dtype) if part is None else part
    take: Callable[[np.ndarray], np.ndarray]
    if isinstance(part, StreamedRows):
        take = functools.partial(part.batch, dtype=dtype)  # scaled and cast in one pass
    else:
        take = model_input(part, dtype).__getitem__
    t = loss_targets(plan.t_train, dtype)
    w = plan.sample_weight.astype(dtype) if plan.sample_weight is not None else None
    steps = math.ceil(len(part) / bs)

    def epoch(order: np.ndarray) -> Iterator[tuple[np.ndarray, ...]]:
        for b in range(steps):
            idx = order[b * bs : (b + 1) * bs]
            yield (take(idx), t[idx]) if w is None else (take(idx), t[idx], w[idx])

    # One epoch's generator at a time: its order (64 MB at 1e7 samples) is freed when the epoch
    # ends, before the next one is drawn.
    for e in range(plan.start_epoch, plan.order.epochs):
        yield from epoch(plan.order.epoch(e))


def model_input(x: np.ndarray, dtype: str) -> np.ndarray:
    """Features as ``dtype``; integer token ids stay int64 (an embedding looks them up).

    No copy when the features already have that dtype (float32 data of a float32 run): callers
    only read them (:func:`tf_resident` wraps the array itself, Keras copies what it keeps).
    Otherwise one copy, 64-byte aligned, so :func:`tf_resident` needs no second one.
    """
    target = np.dtype(np.int64 if x.dtype.kind in "iu" else dtype)
    return np.asarray(x) if x.dtype == target else aligned(x, target)


def model_inputs(part: Part, dtype: str) -> Iterator[np.ndarray]:
    """A part for evaluation as model inputs: the whole array in one piece, a streamed one chunk by chunk."""
    for chunk in eval_chunks(part):
        yield model_input(chunk, dtype)


def held_inputs(part: np.ndarray, dtype: str, resident: Callable[[np.ndarray], Any]) -> list[Any]:
    """An in-memory part's evaluation pieces, kept for every epoch: wrapped by ``resident`` where that takes no copy.

    A piece that is aligned and writeable becomes the framework's tensor over it (TensorFlow:
    :func:`tf_resident`); any other piece (after the first chunk of a part, a chunk rarely starts
    on a 64-byte boundary) stays numpy and is converted per call, as a kept copy would double it.
    """
    return [resident(p) if _wraps_in_place(p) else p for p in model_inputs(part, dtype)]


def tf_batches(plan: TrainPlan, dtype: str) -> Any:
    """Training batches in the shared order: epoch e, batch b = ``order.epoch(e)[b*bs:(b+1)*bs]``.

    The data sit in the pipeline as tensors over their own buffers (:func:`tf_resident`) and
    each epoch's order enters the pipeline when the pipeline reaches that epoch (one Python
    call per epoch, none per step; ``prefetch`` draws the next epoch's order while this one
    trains). Streamed or large features: :func:`tf_generated`.
    """
    import tensorflow as tf

    part = training_part(plan, dtype)
    if isinstance(part, StreamedRows) or gathered_per_batch(part):  # large: no epoch-sized gather
        return tf_generated(plan, dtype, part)
    bs = plan.spec.train.batch_size
    x = tf_resident(model_input(part, dtype))
    t = tf_resident(loss_targets(plan.t_train, dtype))
    order = tf.data.Dataset.from_generator(
        lambda: (perm.astype(np.int32) for perm in plan.order.epochs_from(plan.start_epoch)),
        output_signature=tf.TensorSpec((len(part),), tf.int32),
    )
    batches = order.flat_map(lambda idx: tf.data.Dataset.from_tensor_slices(idx).batch(bs))
    if plan.sample_weight is None:
        return batches.map(lambda i: (tf.gather(x, i), tf.gather(t, i))).prefetch(tf.data.AUTOTUNE)
    w = tf_resident(aligned(plan.sample_weight, dtype))
    return batches.map(lambda i: (tf.gather(x, i), tf.gather(t, i), tf.gather(w, i))).prefetch(tf.data.AUTOTUNE)


# Batches the generator pipeline reads ahead: a fixed number. With tf.data.AUTOTUNE the buffer
# kept growing with the steps run (1e6 streamed rows, 60 epochs: peak RSS +17-25 MiB against +6
# MiB with 32; a 1e7 Keras run grew 1410 -> 1562 MiB over 40 epochs), at no measurable speed gain.
GENERATOR_PREFETCH_BATCHES = 32


def tf_generated(plan: TrainPlan, dtype: str, part: Part) -> Any:
    """Training batches of ``part`` gathered one at a time by :func:`generator_batches` (streamed: from the map)."""
    import tensorflow as tf

    t = loss_targets(plan.t_train[:1], dtype)
    signature = [
        tf.TensorSpec((None, *plan.dataset.input_shape), tf.as_dtype(dtype)),
        tf.TensorSpec((None, *t.shape[1:]), tf.as_dtype(t.dtype)),
    ]
    if plan.sample_weight is not None:
        signature.append(tf.TensorSpec((None,), tf.as_dtype(dtype)))
    batches = tf.data.Dataset.from_generator(
        lambda: generator_batches(plan, dtype, part), output_signature=tuple(signature)
    )
    return batches.prefetch(GENERATOR_PREFETCH_BATCHES)


def tf_resident(a: np.ndarray) -> Any:
    """``a`` as a TensorFlow tensor over its own buffer (DLPack): no copy when ``a`` is aligned.

    ``tf.constant`` of a numpy array keeps twice the array resident (see
    :mod:`duofit.common.data.aligned`); this keeps the array itself, copied once first when it is
    not 64-byte aligned, not C-contiguous or read-only (DLPack cannot mark a buffer read-only).
    Features in float32 from the file kinds are aligned when prepared (no copy at all).
    """
    import tensorflow as tf

    arr = a if _wraps_in_place(a) else aligned_copy(a)
    return tf.experimental.dlpack.from_dlpack(arr.__dlpack__())


def _wraps_in_place(a: np.ndarray) -> bool:
    """Whether DLPack can hand ``a``'s own buffer to TensorFlow: aligned and writeable."""
    return is_aligned(a) and bool(a.flags.writeable)


def no_conversion(a: np.ndarray) -> np.ndarray:
    """The array itself: Keras on torch and JAX convert numpy inputs per call."""
    return a
