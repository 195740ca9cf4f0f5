"""Per-step records for Keras: the exact loss of every batch, gradient and parameter norms.

Keras logs a running mean of the loss; the per-batch value cannot be recovered exactly
from it. ``RecordingSequential.compute_loss`` (Keras' documented override point) writes
each training batch's loss (regularisation included, as optimised) into a variable
indexed by ``optimizer.iterations``; a recording optimizer subclass writes the global
gradient norm before clipping and the parameter norm after the update. All of it stays
inside the compiled step: nothing leaves the device until the end of ``fit``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

import keras

__all__ = ["RecordingSequential", "StepBuffers", "record_optimizer"]


class StepBuffers:
    """Plain holder (deliberately not tracked by Keras) of the per-step variables."""

    def __init__(self, n_steps: int, dtype: str, norms: bool) -> None:
        def buf() -> tf.Variable:
            return tf.Variable(tf.fill([n_steps], tf.constant(np.nan, dtype=dtype)), trainable=False)

        self.loss = buf()
        self.grad_norm = buf() if norms else None
        self.param_norm = buf() if norms else None

    def numpy(self, n: int) -> dict[str, np.ndarray]:
        """The first ``n`` steps of every record."""
        out = {"loss": self.loss.numpy()[:n]}
        if self.grad_norm is not None and self.param_norm is not None:
            out.update(grad_norm=self.grad_norm.numpy()[:n], param_norm=self.param_norm.numpy()[:n])
        return out


def _put(var: tf.Variable, index: Any, value: Any) -> None:
    var.scatter_nd_update([[tf.cast(index, tf.int32)]], [tf.cast(value, var.dtype)])


def _global_norm(tensors: list[Any]) -> Any:
    return tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(tf.convert_to_tensor(t))) for t in tensors]))


class RecordingSequential(keras.Sequential):
    """``keras.Sequential`` that records each training batch's loss into ``StepBuffers``."""

    def attach(self, buffers: StepBuffers) -> None:
        """Start recording into ``buffers`` (kept out of Keras' attribute tracking)."""
        self.__dict__["_duofit_buffers"] = buffers

    def compute_loss(
        self, x: Any = None, y: Any = None, y_pred: Any = None, sample_weight: Any = None, training: bool = True
    ) -> Any:
        """Keras' loss, recorded per training batch."""
        loss = super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
        buffers = self.__dict__.get("_duofit_buffers")
        if training and buffers is not None:
            _put(buffers.loss, self.optimizer.iterations, loss)
        return loss


def record_optimizer(optimizer: keras.optimizers.Optimizer, buffers: StepBuffers) -> None:
    """Make ``optimizer`` record gradient norms (before clipping) and parameter norms.

    The subclass also skips Keras' all-reduce of gradients when no distribution strategy
    is active: it goes through ``tf.custom_gradient``, whose entry in TensorFlow's global
    gradient registry is never freed and kept each run's train-step graph alive (about
    4.7 MiB per ``fit``; tests/reliability/test_resource_hygiene.py).
    """
    if buffers.grad_norm is None:
        return
    base = type(optimizer)

    class Recording(base):  # type: ignore[misc,valid-type]
        def _all_reduce_sum_gradients(self, grads_and_vars: Any) -> Any:
            if not tf.distribute.has_strategy():
                return list(grads_and_vars)
            return super()._all_reduce_sum_gradients(grads_and_vars)

        def apply(self, grads: Any, trainable_variables: Any = None) -> Any:
            step = self.iterations + 0  # read before the update increments it
            _put(buffers.grad_norm, step, _global_norm([g for g in grads if g is not None]))
            out = super().apply(grads, trainable_variables)
            variables = trainable_variables if trainable_variables is not None else self._trainable_variables
            _put(buffers.param_norm, step, _global_norm([v.value for v in variables]))
            return out

    Recording.__name__ = base.__name__
    optimizer.__class__ = Recording
