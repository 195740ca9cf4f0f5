"""What every backend receives (a TrainPlan) and returns (a FitOutput). Framework-free.

A backend package (``duofit/backends/<name>/``) exposes ``fit(plan, recorder) -> FitOutput``
and ``environment(device) -> dict``; the twin modules ``layers``, ``losses``,
``optimizers`` and ``trainer`` keep the same names in every backend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from duofit.common.data import Dataset, batch_order, targets_for_loss
from duofit.common.history import EpochRecorder
from duofit.common.init import initial_weights
from duofit.common.spec import Spec

__all__ = ["BackendModule", "FitOutput", "TrainPlan", "make_plan"]


@dataclass(frozen=True)
class TrainPlan:
    """Everything a backend needs, prepared once in numpy so both backends see the same.

    Attributes:
        spec: The spec.
        dataset: Split, scaled data.
        t_train: Training targets in the form the loss consumes.
        t_val: Validation targets for the loss.
        order: ``(epochs, n_train)`` sample order; batch ``b`` of epoch ``e`` is
            ``order[e, b*bs:(b+1)*bs]``.
        weights: Initial weights (Keras layout, float64).
        record_steps: Also record every step's loss, global gradient norm (before clipping)
            and parameter norm (after the update) into ``FitOutput.steps``.
        strict: Parity mode: where the frameworks' formulas differ, both backends compute
            the same math (see ``duofit/parity/strict.py``), at some cost in idiom and speed.
    """

    spec: Spec
    dataset: Dataset
    t_train: np.ndarray
    t_val: np.ndarray
    order: np.ndarray
    weights: dict[str, np.ndarray]
    record_steps: bool = False
    strict: bool = False

    @property
    def steps_per_epoch(self) -> int:
        """Batches per epoch, the last one possibly partial."""
        return math.ceil(len(self.dataset.x_train) / self.spec.train.batch_size)


@dataclass
class FitOutput:
    """What a backend's ``fit`` returns; the runner turns it into a RunResult."""

    test_outputs: np.ndarray
    weights: dict[str, np.ndarray]
    timings: dict[str, float]
    environment: dict[str, Any] = field(default_factory=dict)
    steps: dict[str, np.ndarray] = field(default_factory=dict)


class BackendModule(Protocol):
    """The interface of ``duofit.backends.<name>``."""

    def fit(self, plan: TrainPlan, recorder: EpochRecorder) -> FitOutput: ...  # noqa: D102

    def environment(self, device: str) -> dict[str, Any]: ...  # noqa: D102

    def devices(self) -> list[str]: ...  # noqa: D102


def make_plan(spec: Spec, dataset: Dataset, *, record_steps: bool = False, strict: bool = False) -> TrainPlan:
    """Build the shared plan: loss targets, batch order and initial weights.

    Example:
        >>> from duofit.common.loader import load_spec
        >>> from duofit.common.data import load_dataset
        >>> spec = load_spec({"data": {"kind": "iris"}, "train": {"batch_size": 50},
        ...                   "model": {"layers": [{"type": "dense", "units": 3}]},
        ...                   "loss": {"type": "categorical_crossentropy"}})
        >>> plan = make_plan(spec, load_dataset(spec))
        >>> plan.order.shape, plan.steps_per_epoch
        ((10, 120), 3)
    """
    n_classes = dataset.n_classes
    return TrainPlan(
        spec=spec,
        dataset=dataset,
        t_train=targets_for_loss(spec, dataset.y_train, n_classes),
        t_val=targets_for_loss(spec, dataset.y_val, n_classes),
        order=batch_order(len(dataset.x_train), spec.train.epochs, spec.train.seed, spec.train.shuffle),
        weights=initial_weights(spec, dataset.input_shape),
        record_steps=record_steps,
        strict=strict,
    )
