"""The Keras training run: ``compile`` + ``fit`` with an input pipeline built once.

On TensorFlow the batches come from a ``tf.data`` pipeline built from the shared batch
order (one ``flat_map`` per epoch, so a partial last batch stays in its epoch exactly as in
the torch loop) and ``fit`` runs a whole epoch per execution (``steps_per_execution``), so
Python is entered once per epoch. On torch and JAX (backends ``keras-torch`` and
``keras-jax``) a generator yields the same batches, one step per execution (see
``native.py``). A callback evaluates the validation split at each epoch end and hands the
numbers to the shared :class:`EpochRecorder` (early stopping and divergence are decided
there, identically for every backend).

With sample weights (``plan.sample_weight``) each batch carries its rows' weights and Keras
weighs the training loss itself (``sum_over_batch_size``); the logged epoch loss is that
weighted loss. The validation loss stays unweighted: Keras weighs it only when given
validation sample weights, and duofit's validation has none (the torch loop does the same).
"""

from __future__ import annotations

import time
from typing import Any

import keras
import numpy as np

from duofit.backends.base import FitOutput, TrainPlan, fit_environment, fit_timings, native_epoch_metrics
from duofit.backends.keras.feed import held_inputs, model_inputs
from duofit.backends.keras.layers import build_model, floatx, get_weights, set_weights
from duofit.backends.keras.losses import loss_targets, make_loss
from duofit.backends.keras.metrics import collect, make_metric
from duofit.backends.keras.modes import jit_compile_setting, run_dtype_outputs
from duofit.backends.keras.native import device_name, native, on_device, resolve_device
from duofit.backends.keras.optimizers import make_optimizer
from duofit.backends.keras.optstate import read_state, write_state
from duofit.backends.keras.recording import RecordingSequential, record_optimizer, step_records
from duofit.common.data import Part, training_rows
from duofit.common.history import EpochRecorder
from duofit.common.optstate import OptimizerState, capture, ends_on_last_step

__all__ = ["fit", "resolve_device"]


class _EpochEnd(keras.callbacks.Callback):
    """Validation, history and stop decisions at each epoch end."""

    def __init__(self, recorder: EpochRecorder, plan: TrainPlan, heads: list[Any], loss: Any, dtype: str) -> None:
        super().__init__()
        self.steps = plan.steps_per_epoch
        self.scheduled = plan.spec.optimizer.schedule is not None
        self.recorder = recorder
        self.spec = plan.spec
        self.heads = heads
        self.loss = loss
        # as torch's loop does: a small streamed part read once, a larger one pre-scaled once where that
        # pays (duofit.common.data.training_rows), else read chunk by chunk at every epoch
        x_val = training_rows(plan.dataset.x_val, dtype)
        # held as the framework's input once (TensorFlow: a tensor over the array, not a conversion per epoch)
        self.x_val = held_inputs(x_val, dtype, native().resident) if isinstance(x_val, np.ndarray) else x_val
        self.t_val = loss_targets(plan.t_val, dtype)
        self.best: dict[str, np.ndarray] | None = None
        # train.epoch_metrics = "native": keras.metrics objects, built at the first epoch end
        self.native = native_epoch_metrics(plan.spec, recorder)
        self.metric_objects: dict[str, keras.metrics.Metric] | None = None
        self.epoch_s: list[float] = []
        self._t0 = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._t0 = time.perf_counter()
        if self.scheduled:
            self.model.optimizer.learning_rate = self.recorder.lr

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        # numpy (no autograd graph on torch), in the run's dtype (a mixed policy's bfloat16 -> float32)
        val_out = _predict(self.model, self.x_val, self.spec.train.dtype)
        val_loss = float(keras.ops.convert_to_numpy(self.loss(self.t_val, val_out)))
        train_loss = float(logs.get("loss", float("nan")))  # batch-size weighted mean (Keras)
        self.epoch_s.append(time.perf_counter() - self._t0)
        first = epoch * self.steps
        native = self._native_metrics(val_out) if self.native else None
        decision = self.recorder.end_epoch(
            epoch,
            train_loss,
            val_loss,
            np.asarray(val_out),
            self.epoch_s[-1],
            grad_norm=float(keras.ops.convert_to_numpy(self.model.optimizer._duofit_grad_norm[first])),
            step_losses=lambda: self.model.step_losses()[first : first + self.steps],
            metrics=native,
        )
        if decision.is_best:
            self.best = get_weights(self.heads, self.spec)
        if decision.stop:
            self.model.stop_training = True

    def _native_metrics(self, val_out: np.ndarray) -> dict[str, float]:
        """The recorder's metrics on the validation outputs with Keras metric objects (``keras.metrics``)."""
        rec = self.recorder
        if self.metric_objects is None:
            k = val_out.shape[1] if rec.task == "multiclass" else 2
            self.metric_objects = {e.column: make_metric(e, rec.task, rec.from_logits, k) for e in rec.metric_names}
        for m in self.metric_objects.values():
            m.reset_state()
            m.update_state(rec.y_val, val_out)
        return collect(self.metric_objects)


def fit(plan: TrainPlan, recorder: EpochRecorder) -> FitOutput:
    """Train ``plan`` with ``model.fit`` and return test outputs, final weights and timings."""
    t_start = time.perf_counter()
    spec, ds = plan.spec, plan.dataset
    tr = spec.train
    nat = native()
    if tr.threads is not None:
        nat.set_threads(tr.threads)
    device = resolve_device(tr.device)
    dtype = tr.dtype
    per_execution = nat.steps_per_execution(plan.steps_per_epoch)
    with floatx(dtype):  # the logged loss and regularisation losses follow floatx
        keras.backend.clear_session()  # free the previous run's graphs (many runs per process: tuning)
        keras.utils.set_random_seed(tr.seed)  # dropout masks
        with on_device(device):
            model, heads, loss, optimizer = _compiled(plan, per_execution, jit_compile_setting(tr, nat.name))
            start = plan.start_epoch
            data = nat.batches(plan, dtype)  # a resumed fit continues the shared batch order at plan.start_epoch
            callback = _EpochEnd(recorder, plan, heads, loss, dtype)
            build_s = time.perf_counter() - t_start
            t_fit = time.perf_counter()
            model.fit(
                data,
                epochs=tr.epochs,
                initial_epoch=start,
                steps_per_epoch=plan.steps_per_epoch,
                callbacks=[callback],
                verbose=0,
                shuffle=False,
            )
            fit_s = time.perf_counter() - t_fit
            state = _finish(plan, recorder, callback.best, optimizer, heads, nat.name)
            t_pred = time.perf_counter()
            test_out = _predict(model, ds.x_test, dtype)
            predict_s = time.perf_counter() - t_pred
            records = _step_records(plan, model, optimizer)
    return FitOutput(
        test_outputs=test_out,
        weights=get_weights(heads, spec),
        timings=fit_timings(build_s, fit_s, predict_s, callback.epoch_s),
        environment=fit_environment(
            device,
            device_name(device),
            plan.strict,
            keras_backend=nat.name,
            steps_per_execution=per_execution,
            jit_compile=bool(getattr(model, "jit_compile", False)),
            precision=tr.precision,
        ),
        steps=records,
        optimizer_state=state,
    )


def _predict(model: Any, part: Part | list[Any], dtype: str) -> np.ndarray:
    """Raw outputs in the run's dtype for a part: in one piece when in memory, chunk by chunk when streamed.

    ``part``: a part's features, or their model inputs already made (a list of pieces).
    """
    pieces = part if isinstance(part, list) else model_inputs(part, dtype)
    outs = [run_dtype_outputs(model.predict_on_batch(x), dtype) for x in pieces]
    return outs[0] if len(outs) == 1 else np.concatenate(outs)


def _compiled(plan: TrainPlan, per_execution: int, jit_compile: bool | str) -> tuple[Any, list[Any], Any, Any]:
    """The model with ``plan.weights``, compiled with its loss and optimizer; a resumed plan's state loaded.

    ``jit_compile``: ``True`` with ``train.compile`` (XLA / ``torch.compile``), else Keras' ``"auto"``.

    Both the model (each batch's loss) and the optimizer (gradient and parameter norms) get
    per-step record buffers for every step of every epoch (in-graph records: nearly free in Keras).

    Returns:
        The model, its spec layers (``heads``), the loss and the optimizer.
    """
    spec, dtype = plan.spec, plan.spec.train.dtype
    model, heads = build_model(
        spec, plan.dataset.x_train.shape[1:], dtype, strict=plan.strict, model_cls=RecordingSequential
    )
    set_weights(heads, spec, plan.weights)
    loss = make_loss(spec.loss, dtype)
    n_steps = spec.train.epochs * plan.steps_per_epoch
    model.attach(n_steps, dtype)
    optimizer = make_optimizer(spec.optimizer, strict=plan.strict)
    record_optimizer(optimizer, n_steps, dtype)
    model.compile(optimizer=optimizer, loss=loss, steps_per_execution=per_execution, jit_compile=jit_compile)
    if plan.optimizer_state is not None:
        _resume(model, optimizer, heads, plan, plan.optimizer_state)
    return model, heads, loss, optimizer


def _finish(
    plan: TrainPlan,
    recorder: EpochRecorder,
    best: dict[str, np.ndarray] | None,
    optimizer: Any,
    heads: list[Any],
    framework: str,
) -> OptimizerState | None:
    """Load the best epoch's weights when early stopping restores them; the state that fits the final weights.

    Returns:
        The optimizer state after the last step when the final weights are that step's
        (:func:`~duofit.common.optstate.ends_on_last_step`), else ``None``.
    """
    best = best if recorder.restore_best else None
    if best is not None:
        set_weights(heads, plan.spec, best)
    restored = best is not None
    done = plan.start_epoch + len(recorder.rows)
    keep = ends_on_last_step(recorder, restored, done)
    return _final_state(plan, recorder, optimizer, heads, framework) if keep else None


def _step_records(plan: TrainPlan, model: Any, optimizer: Any) -> dict[str, np.ndarray]:
    """This fit's steps (from the resumed step on): ``loss``; with ``record_steps`` the norms too."""
    n_done = int(keras.ops.convert_to_numpy(optimizer.iterations))
    first = plan.start_epoch * plan.steps_per_epoch
    records = {k: v[first:] for k, v in step_records(model, optimizer, n_done).items()}
    return records if plan.record_steps else {"loss": records["loss"]}


def _resume(model: Any, optimizer: Any, heads: list[Any], plan: TrainPlan, state: OptimizerState) -> None:
    """Build the optimizer now and load ``state`` into it; the step records continue at the resumed step.

    ``model.fit`` builds an unbuilt optimizer only (``keras/src/trainers/trainer.py``
    ``_symbolic_build``), so the state loaded here is the one training starts from.
    """
    optimizer.build(model.trainable_variables)
    write_state(optimizer, heads, plan.spec, state)
    model.__dict__["_duofit_step"].assign(float(plan.start_epoch * plan.steps_per_epoch))


def _final_state(
    plan: TrainPlan, recorder: EpochRecorder, optimizer: Any, heads: list[Any], framework: str
) -> OptimizerState:
    """The optimizer state after the last step, in duofit's layout, with the schedule's position."""
    return capture(
        plan.spec,
        recorder,
        step=int(keras.ops.convert_to_numpy(optimizer.iterations)),
        lr=float(keras.ops.convert_to_numpy(optimizer.learning_rate)),
        slots=read_state(optimizer, heads, plan.spec),
        epochs_done=plan.start_epoch + len(recorder.rows),
        backend=f"keras ({framework})",
    )
