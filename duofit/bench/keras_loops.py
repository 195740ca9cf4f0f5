"""Hand-written Keras (TensorFlow) baselines: a newcomer's ``fit`` and a tuned one.

* ``keras-naive-fit``: ``model.fit(X, y, validation_data=(X_val, y_val), batch_size=...,
  epochs=...)`` with ``metrics=["accuracy"]``, as a newcomer writes it (numpy arrays in,
  Keras shuffles them, ``steps_per_execution`` 1). Only ``verbose=0`` differs from the
  defaults, so that the progress bar's terminal output is not part of the measurement.
* ``keras-tuned``: a ``tf.data`` pipeline built once (``shuffle`` each epoch, ``batch``, then
  ``repeat``), ``steps_per_epoch`` and ``steps_per_execution`` = one epoch, and the validation
  loss from one direct model call per epoch in a callback.

Both use Keras' default initialisation (seeded) and only read sizes, loss and Adam settings
from the spec; a model that is not a plain MLP is built from stock Keras layers
(:mod:`duofit.bench.keras_models`). Run inside a cell process whose TensorFlow threads are already set.

Example:
    Trains a model inside a cell process, so it is not run as a doctest.

    >>> m = keras_tuned(mlp, dataset, "cpu")       # doctest: +SKIP
    >>> len(m.epoch_ends) == mlp.epochs            # doctest: +SKIP
    True
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from duofit.bench.keras_models import stock_model
from duofit.bench.measure import MLP, Measurement
from duofit.common.data import Dataset, Part
from duofit.common.envinfo import cpu_model

__all__ = ["device_sync", "keras_flags", "keras_naive_fit", "keras_tuned"]


def keras_flags(model: Any = None, steps_per_execution: int = 1) -> dict[str, Any]:
    """Numeric/speed flags of this TensorFlow process (for the CSV)."""
    return {
        "jit_compile": bool(getattr(model, "jit_compile", False)),
        "steps_per_execution": steps_per_execution,
        "torch_compile": False,
        "tf32_matmul": bool(tf.config.experimental.tensor_float_32_execution_enabled()),
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
    }


def device_sync() -> None:
    """Wait for every op queued on TensorFlow's devices (the cell's epoch clock on a GPU).

    ``tf.test.experimental.sync_devices`` (tensorflow/python/framework/test_util.py) exists for
    exactly this: GPU ops run asynchronously, and a clock read without it can stop too early.
    """
    tf.test.experimental.sync_devices()


def _model(mlp: MLP) -> keras.Model:
    keras.utils.set_random_seed(mlp.seed)
    keras.config.set_floatx(mlp.dtype)
    if mlp.graph is not None:
        return stock_model(mlp.graph, mlp.dtype)
    layers: list[Any] = [keras.Input(shape=(mlp.n_features,))]
    for units, act in mlp.layers:
        layers.append(keras.layers.Dense(units, activation=None if act == "linear" else act))
    return keras.Sequential(layers)


def _x(mlp: MLP, x: Part) -> np.ndarray:
    """Inputs as the model reads them: token ids as int32, everything else in the run's float dtype."""
    return x.astype("int32") if mlp.graph is not None and mlp.graph.tokens else x.astype(mlp.dtype)


def _loss(mlp: MLP) -> keras.losses.Loss:
    if mlp.loss == "bce_logits":
        return keras.losses.BinaryCrossentropy(from_logits=True)
    if mlp.loss == "cce_logits":
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return keras.losses.MeanSquaredError()


def _adam(mlp: MLP) -> keras.optimizers.Optimizer:
    return keras.optimizers.Adam(learning_rate=mlp.lr, beta_1=mlp.beta1, beta_2=mlp.beta2, epsilon=mlp.eps)


def _gpu_name() -> str:
    details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
    return str(details.get("device_name", "GPU"))


def _device(name: str) -> str:
    return "/GPU:0" if name == "cuda" else "/CPU:0"


class _EpochClock(keras.callbacks.Callback):
    """Reads the epoch's numbers (forcing them to be computed), then the clock."""

    def __init__(self, val: tuple[Any, Any, Any] | None = None) -> None:
        super().__init__()
        self.val = val
        self.ends: list[float] = []
        self.losses = (float("nan"), float("nan"))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = {k: float(v) for k, v in (logs or {}).items()}
        if self.val is not None:
            x_val, y_val, loss = self.val
            logs["val_loss"] = float(loss(y_val, self.model(x_val, training=False)))
        self.losses = (logs.get("loss", float("nan")), logs.get("val_loss", float("nan")))
        self.ends.append(time.perf_counter())


def _finish(model: Any, device: str, start: float, clock: _EpochClock, spe: int, test: Any) -> Measurement:
    gpu = device == "cuda"
    return Measurement(
        fit_start=start,
        epoch_ends=clock.ends,
        final_train_loss=clock.losses[0],
        final_val_loss=clock.losses[1],
        test_outputs=np.asarray(test),
        versions=f"keras {keras.__version__}; tensorflow {tf.__version__}",
        flags=keras_flags(model, spe),
        interop_threads=tf.config.threading.get_inter_op_parallelism_threads() or os.cpu_count(),
        device_name=_gpu_name() if gpu else cpu_model(),
    )


def keras_naive_fit(mlp: MLP, ds: Dataset, device_name: str) -> Measurement:
    """A newcomer's ``compile`` + ``fit`` on numpy arrays (see the module docstring)."""
    x, y = _x(mlp, ds.x_train), mlp.targets(ds.y_train)
    x_val, y_val = _x(mlp, ds.x_val), mlp.targets(ds.y_val)
    with tf.device(_device(device_name)):
        model = _model(mlp)
        metrics = [] if mlp.loss == "mse" else ["accuracy"]
        model.compile(optimizer=_adam(mlp), loss=_loss(mlp), metrics=metrics)
        clock = _EpochClock()
        start = time.perf_counter()
        model.fit(
            x,
            y,
            validation_data=(x_val, y_val),
            batch_size=mlp.batch_size,
            epochs=mlp.epochs,
            verbose=0,
            callbacks=[clock],
        )
        test = model.predict(_x(mlp, ds.x_test), verbose=0)
    return _finish(model, device_name, start, clock, 1, test)


def keras_tuned(mlp: MLP, ds: Dataset, device_name: str) -> Measurement:
    """Hand-tuned Keras: repeated ``tf.data`` pipeline + ``steps_per_execution`` (see the module docstring)."""
    n, bs = len(ds.x_train), mlp.batch_size
    steps = math.ceil(n / bs)
    with tf.device(_device(device_name)):
        model = _model(mlp)
        loss = _loss(mlp)
        model.compile(optimizer=_adam(mlp), loss=loss, steps_per_execution=steps)
        data = (
            tf.data.Dataset.from_tensor_slices((_x(mlp, ds.x_train), mlp.targets(ds.y_train)))
            .shuffle(n, seed=mlp.seed, reshuffle_each_iteration=True)
            .batch(bs)  # before repeat: the last partial batch stays in its epoch
            .repeat()
            .prefetch(tf.data.AUTOTUNE)
        )
        x_val = tf.constant(_x(mlp, ds.x_val))
        y_val = tf.constant(mlp.targets(ds.y_val))
        clock = _EpochClock(val=(x_val, y_val, loss))
        start = time.perf_counter()
        model.fit(data, epochs=mlp.epochs, steps_per_epoch=steps, shuffle=False, verbose=0, callbacks=[clock])
        test = model(tf.constant(_x(mlp, ds.x_test)), training=False)
    return _finish(model, device_name, start, clock, steps, test)
