"""The torch training loop: the tutorial's training loop, without the DataLoader overhead.

Per epoch: ``model.train()``; for each batch ``zero_grad`` -> forward -> loss (+ L1/L2
penalty) -> ``backward`` -> ``step`` (clipping and decay run first inside it); then evaluation under
``inference_mode`` in ``eval()`` mode. With sample weights (``plan.sample_weight``) a batch's
loss is Keras' weighted ``sum_over_batch_size``: ``sum(loss_i * w_i) / batch_size``. Batches
are contiguous slices of the epoch's pre-permuted tensors (no per-sample indexing, no collate), the
epoch's order drawn when the epoch starts; streamed data (kinds ``npy``, ``parquet``) are read
per batch instead (``feed.py``);
the epoch loss accumulates on the device, so there is one host sync per epoch instead of one
``.item()`` per step. Forward, loss and penalty of a training batch are one function
(``modes.py``): under ``torch.autocast(bfloat16)`` with ``train.precision = "mixed_bfloat16"``,
compiled with ``torch.compile`` with ``train.compile = true``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from duofit.backends.base import FitOutput, TrainPlan, fit_environment, fit_timings, native_epoch_metrics
from duofit.backends.torch.compat import foreach_norm
from duofit.backends.torch.feed import Inputs
from duofit.backends.torch.layers import (
    DTYPES,
    build_model,
    get_weights,
    kernel_penalty,
    set_weights,
    targets,
)
from duofit.backends.torch.losses import make_loss, weighted_loss_fn
from duofit.backends.torch.machine import device_name, resolve_device, set_threads
from duofit.backends.torch.metrics import make_metric
from duofit.backends.torch.modes import StepFn, inference, train_step
from duofit.backends.torch.optimizers import make_optimizer
from duofit.backends.torch.optstate import read_state, write_state
from duofit.common.data import BatchOrder, Part
from duofit.common.history import EpochRecorder
from duofit.common.optstate import OptimizerState, capture, ends_on_last_step

__all__ = ["fit"]


@dataclass
class _Setup:
    """The built model, its training pieces and the device-resident data of one fit."""

    model: torch.nn.Module
    heads: list[torch.nn.Module]
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    optimizer: torch.optim.Optimizer
    params: list[torch.Tensor]
    penalty: Callable[[], torch.Tensor] | None
    device: torch.device
    dtype: torch.dtype
    x: Inputs
    t: torch.Tensor
    x_val: Inputs
    t_val: torch.Tensor
    order: BatchOrder
    step_loss: StepFn  # forward (autocast under mixed precision), loss, penalty; compiled with train.compile
    forward: Callable[[torch.Tensor], torch.Tensor]  # evaluation forward in the spec's precision
    w: torch.Tensor | None = None
    weighted_loss: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None


@dataclass
class _Records:
    """Per-step and per-epoch records, kept on the device and read once per epoch / at the end.

    Attributes:
        step_loss: Every step's loss (NaN until the step runs).
        grad_norm: Every step's global gradient norm (``record_steps`` only).
        param_norm: Every step's global parameter norm after the update (``record_steps`` only).
        epoch_grad_norm: The gradient norm at each epoch's first step.
        sizes: Batch sizes of one epoch: the epoch loss is Keras' batch-size weighted mean of batch losses.
    """

    step_loss: torch.Tensor
    grad_norm: torch.Tensor | None
    param_norm: torch.Tensor | None
    epoch_grad_norm: torch.Tensor
    sizes: torch.Tensor


def fit(plan: TrainPlan, recorder: EpochRecorder) -> FitOutput:
    """Train ``plan`` and return test outputs, final weights and timings."""
    t_start = time.perf_counter()
    s = _setup(plan)
    rec = _records(plan, s)
    build_s = time.perf_counter() - t_start

    # train.epoch_metrics = "native": validation metrics from torch tensors, read with the epoch's sync
    y_val = torch.as_tensor(recorder.y_val, device=s.device) if native_epoch_metrics(plan.spec, recorder) else None
    t_fit = time.perf_counter()
    step, best, epoch_s = _epochs(plan, recorder, s, rec, y_val)
    fit_s = time.perf_counter() - t_fit
    restored = recorder.restore_best and best is not None
    if restored:
        s.model.load_state_dict(best)
    done = plan.start_epoch + len(recorder.rows)
    state = _final_state(plan, recorder, s, step) if ends_on_last_step(recorder, restored, done) else None

    t_pred = time.perf_counter()
    test_out = _predict(s, plan.dataset.x_test)
    predict_s = time.perf_counter() - t_pred
    return FitOutput(
        test_outputs=test_out,
        weights=get_weights(s.heads, plan.spec),
        timings=fit_timings(build_s, fit_s, predict_s, epoch_s),
        environment=fit_environment(
            str(s.device),
            device_name(s.device),
            plan.strict,
            fused_optimizer=bool(s.optimizer.defaults.get("fused")),
            torch_compile=plan.spec.train.compile,
            precision=plan.spec.train.precision,
        ),
        steps=_step_records(rec, plan.start_epoch * plan.steps_per_epoch, step),
        optimizer_state=state,
    )


def _epochs(
    plan: TrainPlan, recorder: EpochRecorder, s: _Setup, rec: _Records, y_val: torch.Tensor | None
) -> tuple[int, dict[str, torch.Tensor] | None, list[float]]:
    """The epoch loop, from ``plan.start_epoch`` until the last epoch or the recorder's stop.

    Each epoch sets the recorder's learning rate (with a schedule), trains (:func:`_train_epoch`),
    reads its numbers in one host sync (:func:`_epoch_sync`) and hands them to the recorder.

    Args:
        plan: The fit's plan; a resumed fit continues the shared batch order at its epoch.
        recorder: Decides the learning rate, the best epoch and when to stop.
        s: The fit's model, optimizer and data.
        rec: Device records.
        y_val: Validation targets on the device for native metrics, else ``None``.

    Returns:
        The global index after the last step run, the best epoch's state dict (``None`` if no
        epoch was the best) and each epoch's seconds.
    """
    tr = plan.spec.train
    epoch_s: list[float] = []
    best: dict[str, torch.Tensor] | None = None
    scheduled = plan.spec.optimizer.schedule is not None
    step = plan.start_epoch * plan.steps_per_epoch
    for epoch in range(plan.start_epoch, tr.epochs):
        t0 = time.perf_counter()
        if scheduled:
            for group in s.optimizer.param_groups:
                group["lr"] = recorder.lr
        first_step = step
        losses = _train_epoch(s, rec, epoch, step, tr.batch_size)
        step += len(losses)
        train_loss, val_value, gnorm, val_np, epoch_metrics = _epoch_sync(
            s, rec, recorder, y_val, losses, epoch, first_step
        )
        epoch_s.append(time.perf_counter() - t0)
        decision = recorder.end_epoch(
            epoch,
            train_loss,
            val_value,
            val_np,
            epoch_s[-1],
            grad_norm=gnorm,
            step_losses=functools.partial(_read_steps, rec.step_loss, first_step, step),
            metrics=epoch_metrics,
        )
        if decision.is_best:
            best = {k: v.detach().clone() for k, v in s.model.state_dict().items()}
        if decision.stop:
            break
    return step, best, epoch_s


def _final_state(plan: TrainPlan, recorder: EpochRecorder, s: _Setup, step: int) -> OptimizerState:
    """The optimizer state after the last step, in duofit's layout, with the schedule's position."""
    return capture(
        plan.spec,
        recorder,
        step=step,
        lr=float(s.optimizer.param_groups[0]["lr"]),
        slots=read_state(s.optimizer, s.heads, plan.spec),
        epochs_done=plan.start_epoch + len(recorder.rows),
        backend="torch",
    )


def _setup(plan: TrainPlan) -> _Setup:
    """Seed, build the model with ``plan.weights``, its loss and optimizer, and move the data to the device."""
    spec, ds = plan.spec, plan.dataset
    tr = spec.train
    if tr.threads is not None:
        set_threads(tr.threads)
    torch.manual_seed(tr.seed)  # dropout masks
    device = resolve_device(tr.device)
    dtype = DTYPES[tr.dtype]

    model, heads = build_model(spec, ds.x_train.shape[1:], tr.dtype, strict=plan.strict)
    model.to(device=device)
    set_weights(heads, spec, plan.weights)
    loss_fn = make_loss(spec.loss)
    optimizer = make_optimizer(spec.optimizer, model.parameters(), strict=plan.strict)
    if plan.optimizer_state is not None:  # resume: moments, step count
        write_state(optimizer, heads, spec, plan.optimizer_state)
    params = [p for p in model.parameters() if p.requires_grad]
    penalty = kernel_penalty(heads, spec)
    weighted = plan.sample_weight is not None
    weighted_loss = weighted_loss_fn(loss_fn) if weighted else None
    return _Setup(
        model=model,
        heads=heads,
        loss_fn=loss_fn,
        optimizer=optimizer,
        params=params,
        penalty=penalty,
        device=device,
        dtype=dtype,
        x=Inputs(ds.x_train, dtype, device, every_epoch=True),  # on the device, or streamed (kinds npy, parquet)
        t=targets(plan.t_train, dtype, device),
        x_val=Inputs(ds.x_val, dtype, device, every_epoch=True),
        t_val=targets(plan.t_val, dtype, device),
        order=plan.order,  # one epoch's order at a time
        step_loss=train_step(model, loss_fn, weighted_loss, penalty, tr, device, dtype),
        forward=inference(model, tr, device, dtype),
        w=torch.as_tensor(plan.sample_weight, dtype=dtype, device=device) if weighted else None,
        weighted_loss=weighted_loss,
    )


def _records(plan: TrainPlan, s: _Setup) -> _Records:
    """NaN-filled device buffers for every step of every epoch, and one epoch's batch sizes."""
    tr = plan.spec.train
    n, bs = s.x.n, tr.batch_size
    steps_per_epoch = -(-n // bs)
    step_loss = torch.full((tr.epochs * steps_per_epoch,), float("nan"), dtype=s.dtype, device=s.device)
    return _Records(
        step_loss=step_loss,
        grad_norm=torch.full_like(step_loss, float("nan")) if plan.record_steps else None,
        param_norm=torch.full_like(step_loss, float("nan")) if plan.record_steps else None,
        epoch_grad_norm=torch.full((tr.epochs,), float("nan"), dtype=s.dtype, device=s.device),
        sizes=torch.tensor([min(bs, n - start) for start in range(0, n, bs)], dtype=s.dtype, device=s.device),
    )


def _train_epoch(s: _Setup, rec: _Records, epoch: int, step: int, bs: int) -> list[torch.Tensor]:
    """One epoch of training steps over contiguous slices of the epoch's permuted data (no host sync).

    Args:
        s: The fit's model, optimizer and data.
        rec: Device records; the gradient and parameter norms are written at their step.
        epoch: 0-based epoch (selects the sample order).
        step: Global index of the epoch's first step.
        bs: Batch size.

    Returns:
        The detached loss of each step, in order.
    """
    model, step_loss, optimizer, params = s.model, s.step_loss, s.optimizer, s.params
    grad_norm, param_norm = rec.grad_norm, rec.param_norm
    model.train()
    perm_np = s.order.epoch(epoch)  # drawn now: the order is never held for every epoch
    perm = torch.as_tensor(perm_np, device=s.device)
    # batch b of each: rows perm[b*bs:(b+1)*bs]; split() makes every batch's view in one call
    # (torch/functional.py split: chunks of bs, each a view, the last one smaller)
    tbs = s.t.index_select(0, perm).split(bs)
    wbs = s.w.index_select(0, perm).split(bs) if s.w is not None else (None,) * len(tbs)  # weights follow rows
    losses: list[torch.Tensor] = []  # stacked once per epoch: no per-step bookkeeping kernels
    first = step
    for xb, tb, wb in zip(s.x.epoch(perm_np, perm, bs), tbs, wbs, strict=True):
        optimizer.zero_grad(set_to_none=True)
        loss = step_loss(xb, tb, wb)
        loss.backward()
        if grad_norm is not None or step == first:  # diagnostics: the norm at each epoch's first step
            norm = _global_norm([p.grad for p in params if p.grad is not None])
            if grad_norm is not None:
                grad_norm[step] = norm
            if step == first:
                rec.epoch_grad_norm[epoch] = norm
        optimizer.step()
        if param_norm is not None:
            param_norm[step] = _global_norm(params)
        losses.append(loss.detach())
        step += 1
    return losses


def _epoch_sync(
    s: _Setup,
    rec: _Records,
    recorder: EpochRecorder,
    y_val: torch.Tensor | None,
    losses: list[torch.Tensor],
    epoch: int,
    first_step: int,
) -> tuple[float, float, float, np.ndarray | None, dict[str, float] | None]:
    """Evaluate on the validation set and read the epoch's scalars in its one host sync.

    Args:
        s: The fit's model, loss and data.
        rec: Device records; the epoch's step losses are stored from ``first_step``.
        recorder: Supplies the native metrics when ``y_val`` is given.
        y_val: Validation targets on the device for native metrics, else ``None``.
        losses: The epoch's detached step losses.
        epoch: 0-based epoch.
        first_step: Global index of the epoch's first step.

    Returns:
        Train loss, validation loss, first-step gradient norm, the validation outputs as numpy
        (``None`` with native metrics) and the native metric values (``None`` without).
    """
    n, dtype = s.x.n, s.dtype
    s.model.eval()
    with torch.inference_mode():
        val_out = s.x_val.forward(s.forward)  # streamed data: in chunks
        val_loss = s.loss_fn(val_out, s.t_val)
    epoch_losses = torch.stack(losses)
    rec.step_loss[first_step : first_step + len(losses)] = epoch_losses
    total = (epoch_losses * rec.sizes).sum()
    epoch_metrics: dict[str, float] | None = None
    val_np: np.ndarray | None
    if y_val is None:
        # the epoch's one host sync: three scalars in one transfer
        scalars = torch.stack([total / n, val_loss.to(dtype), rec.epoch_grad_norm[epoch]])
        train_loss, val_value, gnorm = scalars.tolist()
        val_np = val_out.detach().cpu().numpy()
    else:  # native metrics: the same sync carries them; the validation outputs stay on the device
        columns, values = _native_epoch_metrics(recorder, val_out, y_val)
        scalars = torch.stack([total / n, val_loss.to(dtype), rec.epoch_grad_norm[epoch]]).to(torch.float64)
        train_loss, val_value, gnorm, *metric_values = torch.cat([scalars, values]).tolist()
        epoch_metrics, val_np = dict(zip(columns, metric_values, strict=True)), None
    if s.device.type == "cuda":
        torch.cuda.synchronize()
    return train_loss, val_value, gnorm, val_np, epoch_metrics


def _read_steps(step_loss: torch.Tensor, lo: int, hi: int) -> np.ndarray:
    """Steps ``lo`` to ``hi`` (exclusive) of the step losses, read to the host on demand."""
    return step_loss[lo:hi].cpu().numpy()


def _predict(s: _Setup, x_test: Part) -> np.ndarray:
    """The model's raw outputs on ``x_test`` in ``eval()`` mode (streamed data: in chunks)."""
    s.model.eval()
    with torch.inference_mode():
        return Inputs(x_test, s.dtype, s.device).forward(s.forward).cpu().numpy()


def _step_records(rec: _Records, first: int, step: int) -> dict[str, np.ndarray]:
    """Steps ``first`` to ``step`` (exclusive) as numpy: ``loss``; with ``record_steps`` the norms too."""
    steps = {"loss": rec.step_loss[first:step].cpu().numpy()}
    if rec.grad_norm is not None and rec.param_norm is not None:
        steps.update(
            grad_norm=rec.grad_norm[first:step].cpu().numpy(), param_norm=rec.param_norm[first:step].cpu().numpy()
        )
    return steps


def _native_epoch_metrics(
    recorder: EpochRecorder, val_out: torch.Tensor, y_val: torch.Tensor
) -> tuple[list[str], torch.Tensor]:
    """The recorder's metrics on the validation outputs with duofit's torch metrics (no host sync).

    Args:
        recorder: Supplies the resolved metric entries, task and ``from_logits``.
        val_out: Raw validation outputs (on the device).
        y_val: Validation class indices or regression targets (on the same device).

    Returns:
        The metric columns and a float64 vector of their values, still on the device.
    """
    task = recorder.task
    k = val_out.shape[1] if task == "multiclass" else 2
    metrics = [make_metric(e, task, recorder.from_logits, k, val_out.device) for e in recorder.metric_names]
    for m in metrics:
        m.update(val_out, y_val)
    values = torch.stack([m.compute().to(torch.float64).reshape(()) for m in metrics])
    return [e.column for e in recorder.metric_names], values


def _global_norm(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Sqrt of the sum of squares of every element (no host sync; 3 kernels, not 3 per tensor)."""
    with torch.no_grad():
        return torch.linalg.vector_norm(torch.stack(foreach_norm([t.detach() for t in tensors])))
