"""Optimizer state in duofit's layout, framework-free: what a run needs to continue training.

A run folder (``duofit run``/``compare``) and a ``duofit convert`` folder hold it as
``optimizer.npz`` (numeric arrays and one JSON string; never pickle):

- ``meta``: JSON with ``format``, ``optimizer`` (the spec's type), ``step`` (optimizer updates
  done), ``epochs_done``, ``lr`` (the learning rate of the last update), ``schedule`` (the
  learning-rate schedule's position: the coming epoch's rate, a plateau schedule's cooldown
  and monitor, the early-stopping monitor) and ``backend`` (who wrote it);
- one array per slot and trainable weight, keyed ``<slot>/layers.<i>.<param>``, in the Keras
  layout of that weight (the layout of ``weights.npz``).

The slots follow ``torch.optim``'s state, which strict mode computes on every backend
(``backends/keras/exact.py``); each backend translates its optimizer's own variables to and
from them (``backends/torch/optstate.py``, ``backends/keras/optstate.py``):

==============  =========  ==============================================================
optimizer       slot       meaning (torch.optim state key)
==============  =========  ==============================================================
sgd             momentum   ``momentum_buffer``: buf = momentum * buf + g (momentum > 0)
adam, adamw     m, v       ``exp_avg``, ``exp_avg_sq``; ``vmax`` = ``max_exp_avg_sq`` (amsgrad)
rmsprop         rms        ``square_avg``; ``mg`` = ``grad_avg`` (centered);
                           ``momentum`` = ``momentum_buffer`` (momentum > 0)
==============  =========  ==============================================================

Example:
    >>> import tempfile
    >>> state = OptimizerState("sgd", step=6, epochs_done=2, lr=0.1,
    ...                        slots={"momentum/layers.0.kernel": np.ones((4, 3))})
    >>> folder = Path(tempfile.mkdtemp())
    >>> path = save_state(folder, state)
    >>> back = load_state(folder)
    >>> back.step, back.epochs_done, back.slot_names
    (6, 2, ('momentum',))
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from duofit.common.errors import DataError
from duofit.common.history import EpochRecorder
from duofit.common.io import load_npz, save_npz
from duofit.common.monitor import Monitor
from duofit.common.spec import AdamOptimizer, AdamWOptimizer, RMSpropOptimizer, SGDOptimizer, Spec

__all__ = [
    "OPTIMIZER_FILE",
    "STATE_FORMAT",
    "OptimizerState",
    "capture",
    "ends_on_last_step",
    "expected_slots",
    "load_state",
    "restore_recorder",
    "save_state",
    "slot_key",
]

OPTIMIZER_FILE = "optimizer.npz"
STATE_FORMAT = 1  # bump when the saved layout changes
_META = "meta"


def _adam_slots(spec: Any) -> tuple[str, ...]:
    return ("m", "v", "vmax") if spec.amsgrad else ("m", "v")


def _rmsprop_slots(spec: Any) -> tuple[str, ...]:
    return ("rms", *(("mg",) if spec.centered else ()), *(("momentum",) if spec.momentum else ()))


# spec optimizer type -> the slots its state has (torch.optim keeps none for SGD without momentum)
_SLOTS: dict[type, Callable[[Any], tuple[str, ...]]] = {
    SGDOptimizer: lambda spec: ("momentum",) if spec.momentum else (),
    AdamOptimizer: _adam_slots,
    AdamWOptimizer: _adam_slots,
    RMSpropOptimizer: _rmsprop_slots,
}


def expected_slots(optimizer: Any) -> tuple[str, ...]:
    """The slots an optimizer spec's state has, in a fixed order.

    Example:
        >>> expected_slots(RMSpropOptimizer(type="rmsprop", momentum=0.9, centered=True))
        ('rms', 'mg', 'momentum')
        >>> expected_slots(SGDOptimizer(type="sgd"))
        ()
    """
    return _SLOTS[type(optimizer)](optimizer)


def slot_key(slot: str, weight: str) -> str:
    """The ``optimizer.npz`` key of one slot of one weight.

    Example:
        >>> slot_key("m", "layers.0.kernel")
        'm/layers.0.kernel'
    """
    return f"{slot}/{weight}"


@dataclass(frozen=True)
class OptimizerState:
    """One optimizer's state after ``epochs_done`` epochs (module docstring: the slots).

    Attributes:
        optimizer: The spec's optimizer type (``sgd``, ``adam``, ``adamw``, ``rmsprop``).
        step: Optimizer updates done (Adam's bias correction counts from it).
        epochs_done: Epochs trained; a resumed run starts at this 0-based epoch.
        lr: The learning rate of the last update.
        slots: ``<slot>/layers.<i>.<param>`` -> array in the weight's Keras layout.
        schedule: Learning-rate schedule and early-stopping position (:func:`capture`).
        backend: The backend that wrote it.
    """

    optimizer: str
    step: int
    epochs_done: int
    lr: float
    slots: dict[str, np.ndarray] = field(default_factory=dict)
    schedule: dict[str, Any] = field(default_factory=dict)
    backend: str = ""

    @property
    def slot_names(self) -> tuple[str, ...]:
        """The slots present, sorted."""
        return tuple(sorted({k.split("/", 1)[0] for k in self.slots}))

    def check(self, spec: Spec, weights: Mapping[str, np.ndarray], where: str = "optimizer state") -> None:
        """Refuse a state that does not belong to ``spec``'s optimizer and these weights.

        Raises:
            DataError: another optimizer type, other slots, a slot of an unknown weight or of
                another shape (each named, with ``where``).
        """
        if self.optimizer != spec.optimizer.type:
            raise DataError(
                f"{where}: written for optimizer {self.optimizer!r}, the spec trains with "
                f"{spec.optimizer.type!r}; resume with the spec the state was trained with",
                path="optimizer",
            )
        want = tuple(sorted(expected_slots(spec.optimizer)))
        if self.slot_names != want and self.step:
            raise DataError(
                f"{where}: has slots {list(self.slot_names)}, the spec's optimizer keeps {list(want)} "
                "(momentum, amsgrad and centered decide them); resume with the spec the state was trained with",
                path="optimizer",
            )
        per_slot = {slot: {k.split("/", 1)[1] for k in self.slots if k.startswith(f"{slot}/")} for slot in want}
        if len({frozenset(names) for names in per_slot.values()}) > 1:
            raise DataError(f"{where}: its slots cover different weights: {per_slot}", path="optimizer")
        for key, arr in self.slots.items():
            name = key.split("/", 1)[1]
            if name not in weights:
                raise DataError(f"{where}: {key} names no weight of the model", path="optimizer")
            if tuple(arr.shape) != tuple(np.shape(weights[name])):
                raise DataError(
                    f"{where}: {key} has shape {list(arr.shape)}, the weight {name} {list(np.shape(weights[name]))}",
                    path="optimizer",
                )


def _monitor_state(monitor: Monitor) -> dict[str, Any]:
    return {"best": monitor.best, "best_epoch": monitor.best_epoch, "wait": monitor.wait}


def _set_monitor(monitor: Monitor, state: Mapping[str, Any]) -> None:
    monitor.best, monitor.best_epoch, monitor.wait = float(state["best"]), state["best_epoch"], int(state["wait"])


def capture(
    spec: Spec,
    recorder: EpochRecorder,
    *,
    step: int,
    lr: float,
    slots: dict[str, np.ndarray],
    epochs_done: int,
    backend: str,
) -> OptimizerState:
    """The state at the end of a fit: the backend's slots plus the recorder's schedule position.

    Args:
        spec: The spec trained.
        recorder: The fit's recorder, after its last epoch (its rate is the coming epoch's).
        step: Optimizer updates done in total.
        lr: The learning rate of the last update.
        slots: The backend's slots in duofit's layout (``<slot>/layers.<i>.<param>``).
        epochs_done: Epochs trained in total.
        backend: The backend's name.
    """
    sched = recorder.schedule
    position: dict[str, Any] = {"lr": sched.lr, "cooldown": sched._cooldown}
    if sched._monitor is not None:
        position["plateau"] = _monitor_state(sched._monitor)
    if recorder.monitor is not None:
        position["early_stopping"] = _monitor_state(recorder.monitor)
    return OptimizerState(
        optimizer=spec.optimizer.type,
        step=int(step),
        epochs_done=int(epochs_done),
        lr=float(lr),
        slots=slots,
        schedule=position,
        backend=backend,
    )


def ends_on_last_step(recorder: EpochRecorder, restored: bool, epochs_done: int) -> bool:
    """Whether a fit's final weights are its last step's, so that its optimizer state continues them.

    Not after divergence, nor when early stopping restored an earlier epoch's weights.

    Example:
        >>> rec = EpochRecorder(metric_names=[], task="regression", from_logits=False, y_val=None, epochs=3)
        >>> ends_on_last_step(rec, restored=False, epochs_done=3)
        True
    """
    if recorder.diverged:
        return False
    return not restored or recorder.best_epoch == epochs_done


def restore_recorder(recorder: EpochRecorder, state: OptimizerState) -> None:
    """Put the schedule (rate, plateau cooldown and monitor) and early stopping where ``state`` left them."""
    position = state.schedule
    sched = recorder.schedule
    if "lr" in position:
        sched.lr = float(position["lr"])
        sched._cooldown = int(position.get("cooldown", 0))
    if sched._monitor is not None and "plateau" in position:
        _set_monitor(sched._monitor, position["plateau"])
    if recorder.monitor is not None and "early_stopping" in position:
        _set_monitor(recorder.monitor, position["early_stopping"])


def save_state(folder: str | Path, state: OptimizerState) -> Path:
    """Write ``state`` as ``folder/optimizer.npz`` (atomically); returns the file."""
    meta = {
        "format": STATE_FORMAT,
        "optimizer": state.optimizer,
        "step": state.step,
        "epochs_done": state.epochs_done,
        "lr": state.lr,
        "schedule": state.schedule,
        "backend": state.backend,
    }
    path = Path(folder) / OPTIMIZER_FILE
    save_npz(path, {_META: np.array(json.dumps(meta)), **state.slots})
    return path


def load_state(folder: str | Path) -> OptimizerState:
    """Read ``folder/optimizer.npz`` (written by :func:`save_state`).

    Raises:
        DataError: no such file (the folder was written without optimizer state), or one
            that is not an optimizer state of this format.
    """
    path = Path(folder) / OPTIMIZER_FILE
    if not path.exists():
        raise DataError(
            f"{folder} holds no optimizer state ({OPTIMIZER_FILE}): give a folder written by `duofit run`, "
            "`compare` or `convert` of a run that ended on its last epoch's weights (not early stopping's "
            "restored best, not diverged)",
            path="resume_from",
        )
    try:
        arrays = load_npz(path)
        meta = json.loads(str(arrays.pop(_META)[()]))
        if meta.get("format") != STATE_FORMAT:
            raise ValueError(f"format {meta.get('format')!r}, this duofit reads {STATE_FORMAT}")
        return OptimizerState(
            optimizer=str(meta["optimizer"]),
            step=int(meta["step"]),
            epochs_done=int(meta["epochs_done"]),
            lr=float(meta["lr"]),
            slots={k: np.asarray(v) for k, v in arrays.items()},
            schedule=dict(meta.get("schedule", {})),
            backend=str(meta.get("backend", "")),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a duofit optimizer state: {exc}", path="resume_from") from None
