"""Per-step records for Keras: the exact loss of every batch, gradient and parameter norms.

Keras logs a running mean of the loss; the per-batch value cannot be recovered exactly
from it. ``RecordingSequential.compute_loss`` (Keras' documented override point) writes
each training batch's loss (regularisation included, as optimised) into a buffer; a
recording optimizer subclass writes the global gradient norm before clipping and the
parameter norm after the update. All of it stays inside the compiled step: nothing leaves
the device until the end of ``fit``.

The buffers are Keras state, so the same code runs on every framework: the loss buffer
and its step counter are non-trainable weights of the model, the norm buffers are
optimizer variables (JAX threads both through its pure train step; TensorFlow and torch
update them in place, see ``native.put``). They are not spec weights: ``get_weights``
reads the spec's layers only.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from duofit.backends.keras.compat import SkipAllReduce, check_all_reduce
from duofit.backends.keras.native import native

__all__ = ["RecordingSequential", "record_optimizer", "step_records"]


def _nan_buffer(owner: Any, n_steps: int, dtype: str, name: str) -> Any:
    init = keras.initializers.Constant(float("nan"))
    if isinstance(owner, keras.optimizers.Optimizer):
        return owner.add_variable((n_steps,), initializer=init, dtype=dtype, name=name)
    return owner.add_weight(shape=(n_steps,), initializer=init, dtype=dtype, trainable=False, name=name)


def _global_norm(tensors: list[Any]) -> Any:
    ops = keras.ops
    return ops.sqrt(sum(ops.sum(ops.square(ops.convert_to_tensor(t))) for t in tensors))


class RecordingSequential(keras.Sequential):
    """``keras.Sequential`` that records each training batch's loss."""

    def attach(self, n_steps: int, dtype: str) -> None:
        """Start recording up to ``n_steps`` training batches (kept out of attribute tracking)."""
        # a float counter: Keras-on-torch makes every layer weight a torch Parameter, which must be float
        step = self.add_weight(shape=(), initializer="zeros", dtype="float32", trainable=False, name="duofit_step")
        self.__dict__["_duofit_step"] = step
        self.__dict__["_duofit_loss"] = _nan_buffer(self, n_steps, dtype, "duofit_step_loss")
        self.__dict__["_duofit_put"] = native().put

    def compute_loss(
        self, x: Any = None, y: Any = None, y_pred: Any = None, sample_weight: Any = None, training: bool = True
    ) -> Any:
        """Keras' loss, recorded per training batch."""
        loss = super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
        step = self.__dict__.get("_duofit_step")
        if training and step is not None:
            self.__dict__["_duofit_put"](self.__dict__["_duofit_loss"], step, loss)
            step.assign(step + 1)
        return loss

    def step_losses(self) -> np.ndarray:
        """Every recorded batch loss so far (NaN for steps not run)."""
        return keras.ops.convert_to_numpy(self.__dict__["_duofit_loss"])


def record_optimizer(optimizer: keras.optimizers.Optimizer, n_steps: int, dtype: str) -> None:
    """Make ``optimizer`` record gradient norms (before clipping) and parameter norms.

    On TensorFlow the subclass also skips Keras' all-reduce of gradients when no
    distribution strategy is active (:class:`~duofit.backends.keras.compat.SkipAllReduce`).
    """
    base = type(optimizer)
    nat = native()
    if nat.name == "tensorflow":
        check_all_reduce(base)
    put = nat.put

    class Recording(SkipAllReduce, base):  # type: ignore[misc,valid-type]
        def build(self, variables: Any) -> None:
            super().build(variables)
            self._duofit_grad_norm = _nan_buffer(self, n_steps, dtype, "duofit_grad_norm")
            self._duofit_param_norm = _nan_buffer(self, n_steps, dtype, "duofit_param_norm")

        def apply(self, grads: Any, trainable_variables: Any = None) -> Any:
            if not self.built:  # as Optimizer.apply does, before the buffers are needed
                self.build(trainable_variables if trainable_variables is not None else self._trainable_variables)
                self.built = True
            step = self.iterations + 0  # read before the update increments it
            put(self._duofit_grad_norm, step, _global_norm([g for g in grads if g is not None]))
            out = super().apply(grads, trainable_variables)
            variables = trainable_variables if trainable_variables is not None else self._trainable_variables
            put(self._duofit_param_norm, step, _global_norm([v.value for v in variables]))
            return out

    Recording.__name__ = base.__name__
    optimizer.__class__ = Recording


def step_records(model: RecordingSequential, optimizer: keras.optimizers.Optimizer, n: int) -> dict[str, np.ndarray]:
    """The first ``n`` steps of every record: ``loss``, ``grad_norm``, ``param_norm``."""
    out = {"loss": model.step_losses()[:n]}
    for key in ("grad_norm", "param_norm"):
        buf = getattr(optimizer, f"_duofit_{key}", None)
        if buf is not None:
            out[key] = keras.ops.convert_to_numpy(buf)[:n]
    return out
