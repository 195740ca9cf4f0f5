"""The Keras training run: ``compile`` + ``fit`` with an input pipeline built once.

The batches come from a ``tf.data`` pipeline built from the shared batch order (one
``flat_map`` per epoch, so a partial last batch stays in its epoch exactly as in the torch
loop); ``fit`` runs ``steps_per_epoch`` steps per epoch with ``steps_per_execution`` set to
a whole epoch, so Python is entered once per epoch. A callback evaluates the validation
split at each epoch end and hands the numbers to the shared :class:`EpochRecorder`
(early stopping and divergence are decided there, identically for both backends).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import tensorflow as tf

import keras
from duofit.backends.base import FitOutput, TrainPlan
from duofit.backends.keras.layers import build_model, floatx, get_weights, set_weights
from duofit.backends.keras.losses import make_loss
from duofit.backends.keras.optimizers import make_optimizer
from duofit.backends.keras.recording import RecordingSequential, StepBuffers, record_optimizer
from duofit.common.errors import BackendError
from duofit.common.history import EpochRecorder

__all__ = ["fit", "make_dataset", "resolve_device"]


def resolve_device(name: str) -> str:
    """TensorFlow device string for ``cpu``, ``cuda`` (error if absent) or ``auto``."""
    gpus = tf.config.list_physical_devices("GPU")
    if name == "cuda" and not gpus:
        raise BackendError(
            "train.device = 'cuda' but TensorFlow sees no GPU (the tensorflow-cpu build has none); "
            "use 'cpu' or 'auto', or install tensorflow[and-cuda]"
        )
    if name == "cpu" or not gpus:
        return "/CPU:0"
    return "/GPU:0"


def make_dataset(plan: TrainPlan, dtype: str) -> tf.data.Dataset:
    """Training batches in the shared order: epoch e, batch b = ``order[e, b*bs:(b+1)*bs]``."""
    bs = plan.spec.train.batch_size
    x = tf.constant(plan.dataset.x_train.astype(dtype))
    t_np = plan.t_train if plan.t_train.dtype.kind in "iu" else plan.t_train.astype(dtype)
    t = tf.constant(t_np)
    order = tf.data.Dataset.from_tensor_slices(plan.order.astype(np.int32))
    batches = order.flat_map(lambda idx: tf.data.Dataset.from_tensor_slices(idx).batch(bs))
    return batches.map(lambda i: (tf.gather(x, i), tf.gather(t, i))).prefetch(tf.data.AUTOTUNE)


class _EpochEnd(keras.callbacks.Callback):
    """Validation, history and stop decisions at each epoch end."""

    def __init__(
        self, recorder: EpochRecorder, plan: TrainPlan, heads: list[Any], loss: Any, dtype: str, buffers: StepBuffers
    ) -> None:
        super().__init__()
        self.buffers = buffers
        self.steps = plan.steps_per_epoch
        self.scheduled = plan.spec.optimizer.schedule is not None
        self.recorder = recorder
        self.spec = plan.spec
        self.heads = heads
        self.loss = loss
        self.x_val = tf.constant(plan.dataset.x_val.astype(dtype))
        t_val = plan.t_val if plan.t_val.dtype.kind in "iu" else plan.t_val.astype(dtype)
        self.t_val = tf.constant(t_val)
        self.best: dict[str, np.ndarray] | None = None
        self.epoch_s: list[float] = []
        self._t0 = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._t0 = time.perf_counter()
        if self.scheduled:
            self.model.optimizer.learning_rate = self.recorder.lr

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        val_out = self.model(self.x_val, training=False)
        val_loss = float(self.loss(self.t_val, val_out))
        train_loss = float(logs.get("loss", float("nan")))  # batch-size weighted mean (Keras)
        self.epoch_s.append(time.perf_counter() - self._t0)
        first = epoch * self.steps
        assert self.buffers.grad_norm is not None
        decision = self.recorder.end_epoch(
            epoch,
            train_loss,
            val_loss,
            np.asarray(val_out),
            self.epoch_s[-1],
            grad_norm=float(self.buffers.grad_norm[first].numpy()),
            step_losses=lambda: self.buffers.loss.numpy()[first : first + self.steps],
        )
        if decision.is_best:
            self.best = get_weights(self.heads, self.spec)
        if decision.stop:
            self.model.stop_training = True


def _threads(n: int | None) -> None:
    if n is None:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    except RuntimeError:  # TF already initialised in this process: keep its setting
        pass


def fit(plan: TrainPlan, recorder: EpochRecorder) -> FitOutput:
    """Train ``plan`` with ``model.fit`` and return test outputs, final weights and timings."""
    t_start = time.perf_counter()
    spec, ds = plan.spec, plan.dataset
    tr = spec.train
    _threads(tr.threads)
    device = resolve_device(tr.device)
    dtype = tr.dtype
    with floatx(dtype):  # the logged loss and regularisation losses follow floatx
        keras.backend.clear_session()  # free the previous run's graphs (many runs per process: tuning)
        keras.utils.set_random_seed(tr.seed)  # dropout masks
        with tf.device(device):
            model, heads = build_model(
                spec, ds.x_train.shape[1:], dtype, strict=plan.strict, model_cls=RecordingSequential
            )
            set_weights(heads, spec, plan.weights)
            loss = make_loss(spec.loss, dtype)
            steps = plan.steps_per_epoch
            buffers = StepBuffers(tr.epochs * steps, dtype, norms=True)  # in-graph: nearly free in Keras
            model.attach(buffers)
            optimizer = make_optimizer(spec.optimizer, strict=plan.strict)
            record_optimizer(optimizer, buffers)
            model.compile(optimizer=optimizer, loss=loss, steps_per_execution=steps)
            data = make_dataset(plan, dtype)
            callback = _EpochEnd(recorder, plan, heads, loss, dtype, buffers)
            build_s = time.perf_counter() - t_start
            t_fit = time.perf_counter()
            model.fit(data, epochs=tr.epochs, steps_per_epoch=steps, callbacks=[callback], verbose=0, shuffle=False)
            fit_s = time.perf_counter() - t_fit
            if recorder.restore_best and callback.best is not None:
                set_weights(heads, spec, callback.best)
            t_pred = time.perf_counter()
            test_out = np.asarray(model(tf.constant(ds.x_test.astype(dtype)), training=False))
            predict_s = time.perf_counter() - t_pred
            n_done = int(optimizer.iterations.numpy())
    return FitOutput(
        test_outputs=test_out,
        weights=get_weights(heads, spec),
        timings={"build_s": build_s, "fit_s": fit_s, "predict_s": predict_s, "epoch_s": callback.epoch_s},  # type: ignore[dict-item]
        environment={
            "device": device,
            "device_name": _device_name(device),
            "steps_per_execution": steps,
            "jit_compile": bool(getattr(model, "jit_compile", False)),
            "strict": plan.strict,
        },
        steps=buffers.numpy(n_done) if plan.record_steps else {"loss": buffers.loss.numpy()[:n_done]},
    )


def _device_name(device: str) -> str:
    if "GPU" in device:
        details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
        return str(details.get("device_name", "GPU"))
    from duofit.common.envinfo import cpu_model

    return cpu_model()
