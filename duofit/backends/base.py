"""The backend contract, framework-free: :class:`Backend`, what ``fit`` receives and returns.

Every backend is a :class:`Backend` subclass (``TorchBackend`` in
:mod:`duofit.backends.torchbackend`, ``KerasBackend`` in :mod:`duofit.backends.kerasbackend`);
it receives a :class:`TrainPlan` and returns a :class:`FitOutput`. The twin modules of
``duofit/backends/torch/`` and ``duofit/backends/keras/`` (``layers``, ``losses``,
``optimizers``, ``probe``, ``export``, ``trainer``) keep the same names and shapes; what both
trainers decide alike (native epoch metrics, the timings and environment keys) is here, once.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from duofit.common.data import BatchOrder, Dataset, targets_for_loss
from duofit.common.errors import DataError
from duofit.common.history import EpochRecorder
from duofit.common.init import initial_weights
from duofit.common.optstate import OptimizerState
from duofit.common.registry import BACKENDS
from duofit.common.spec import Spec

__all__ = [
    "Backend",
    "FitOutput",
    "TrainPlan",
    "Weights",
    "compile_seconds",
    "fit_environment",
    "fit_timings",
    "make_plan",
    "native_epoch_metrics",
]

Weights = dict[str, np.ndarray]  # duofit's layout: ``layers.<i>.<name>`` -> array (Keras' axis order)


@dataclass(frozen=True)
class TrainPlan:
    """Everything a backend needs, prepared once in numpy so both backends see the same.

    Attributes:
        spec: The spec.
        dataset: Split, scaled data.
        t_train: Training targets in the form the loss consumes.
        t_val: Validation targets for the loss.
        order: The shared sample order, drawn one epoch at a time (memory ``O(n_train)``, not
            ``O(epochs x n_train)``); batch ``b`` of epoch ``e`` is ``order.epoch(e)[b*bs:(b+1)*bs]``.
            A trainer asks for epoch ``e`` when epoch ``e`` starts.
        weights: Initial weights (Keras layout, float64).
        record_steps: Also record every step's loss, global gradient norm (before clipping)
            and parameter norm (after the update) into ``FitOutput.steps``.
        strict: Parity mode: where the frameworks' formulas differ, both backends compute
            the same math (see ``duofit/parity/strict.py``), at some cost in idiom and speed.
        sample_weight: Per-sample loss weights of the training rows (``Dataset.w_train``),
            ``None`` for none. Every backend reduces a batch as Keras' ``sum_over_batch_size``
            does: ``sum(loss_i * w_i) / batch_size`` (not divided by the sum of the weights);
            the validation loss stays unweighted.
        start_epoch: Resume: the 0-based epoch training starts at (``weights`` are then the
            weights after ``start_epoch`` epochs); epochs ``start_epoch`` to ``train.epochs - 1``
            run over the same epochs of ``order`` as an uninterrupted run.
        optimizer_state: Resume: the optimizer state to continue from (duofit's layout,
            :mod:`duofit.common.optstate`), ``None`` for a fresh optimizer.
    """

    spec: Spec
    dataset: Dataset
    t_train: np.ndarray
    t_val: np.ndarray
    order: BatchOrder
    weights: dict[str, np.ndarray]
    record_steps: bool = False
    strict: bool = False
    sample_weight: np.ndarray | None = None
    start_epoch: int = 0
    optimizer_state: OptimizerState | None = None

    @property
    def steps_per_epoch(self) -> int:
        """Batches per epoch, the last one possibly partial."""
        return math.ceil(len(self.dataset.x_train) / self.spec.train.batch_size)


@dataclass
class FitOutput:
    """What a backend's ``fit`` returns; the runner turns it into a RunResult.

    ``steps`` holds the steps this fit ran (a resumed fit's only); ``optimizer_state`` the state
    to continue from, ``None`` when the final weights are not the last step's (early stopping
    restored the best epoch, or training diverged).
    """

    test_outputs: np.ndarray
    weights: dict[str, np.ndarray]
    timings: dict[str, Any]
    environment: dict[str, Any] = field(default_factory=dict)
    steps: dict[str, np.ndarray] = field(default_factory=dict)
    optimizer_state: OptimizerState | None = None


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
        >>> plan.order.epoch(9)[:3].tolist()
        [6, 98, 86]
    """
    n_classes = dataset.n_classes
    return TrainPlan(
        spec=spec,
        dataset=dataset,
        t_train=targets_for_loss(spec, dataset.y_train, n_classes),
        t_val=targets_for_loss(spec, dataset.y_val, n_classes),
        order=BatchOrder(len(dataset.x_train), spec.train.epochs, spec.train.seed, spec.train.shuffle),
        weights=initial_weights(spec, dataset.input_shape),
        record_steps=record_steps,
        strict=strict,
        sample_weight=_training_weights(dataset),
    )


def _training_weights(dataset: Dataset) -> np.ndarray | None:
    """``dataset.w_train`` as float64, checked against the training rows (``None``: unweighted).

    Raises:
        DataError: not one finite, non-negative weight per training row, or all of them zero.
    """
    if dataset.w_train is None:
        return None
    w = np.asarray(dataset.w_train, dtype=np.float64)
    n = len(dataset.x_train)
    if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
        raise DataError(
            f"sample_weight: need one finite weight >= 0 per training row ({n}), not all zero; "
            f"got shape {w.shape}, min {np.min(w, initial=np.inf)}, max {np.max(w, initial=-np.inf)}",
            path="sample_weight",
        )
    return w


def native_epoch_metrics(spec: Spec, recorder: EpochRecorder) -> bool:
    """Whether a trainer computes the per-epoch validation metrics with the framework's own metrics.

    ``train.epoch_metrics = "native"`` asks for it; it applies only when the recorder has
    metrics to compute and validation targets to compute them on.
    """
    return spec.train.epoch_metrics == "native" and bool(recorder.metric_names) and recorder.y_val is not None


def fit_timings(build_s: float, fit_s: float, predict_s: float, epoch_s: list[float]) -> dict[str, Any]:
    """``FitOutput.timings``: the same keys from every backend (``compile_s``: :func:`compile_seconds`)."""
    return {
        "build_s": build_s,
        "fit_s": fit_s,
        "predict_s": predict_s,
        "epoch_s": epoch_s,
        "compile_s": compile_seconds(epoch_s),
    }


def compile_seconds(epoch_s: list[float]) -> float:
    """One-time cost of the first epoch: its seconds minus the median of the later epochs (>= 0).

    What the first epoch does once: tracing, graph building, XLA or ``torch.compile``
    compilation (``train.compile``), the first allocations. NaN with fewer than two epochs.

    Example:
        >>> compile_seconds([3.5, 0.5, 0.6, 0.4]), compile_seconds([1.0])
        (3.0, nan)
    """
    if len(epoch_s) < 2:
        return math.nan
    later = sorted(epoch_s[1:])
    mid = len(later) // 2
    median = later[mid] if len(later) % 2 else (later[mid - 1] + later[mid]) / 2
    return max(epoch_s[0] - median, 0.0)


def fit_environment(device: str, device_name: str, strict: bool, **extra: Any) -> dict[str, Any]:
    """``FitOutput.environment``: where the run trained (same keys everywhere) plus backend extras."""
    return {"device": device, "device_name": device_name, "strict": strict, **extra}


class Backend(ABC):
    """One duofit backend: what the runner, parity, tuning, convert and the bench call.

    An instance is framework-free to create and to hold: ``name``, ``framework``,
    :attr:`export_formats` and :meth:`strict_translations` need no framework; every other
    method imports its framework on first use (a Keras backend selects its framework first,
    see :mod:`duofit.backends.kerasenv`). Obtain one with
    :func:`duofit.common.registry.get_backend`.

    Attributes:
        name: Registry name (``torch``, ``keras``, ``keras-torch``, ``keras-jax``).
        framework: Human name of the framework, e.g. ``PyTorch``.
        export_formats: Weight-file suffix -> description, the default format first.
    """

    export_formats: ClassVar[dict[str, str]] = {}

    def __init__(self, name: str) -> None:
        self.name = name
        self.framework = BACKENDS[name].framework  # the registry's name, so `duofit backends` needs no import

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    @abstractmethod
    def load(self) -> None:
        """Import the framework now (a Keras backend selects its framework first).

        Raises:
            BackendError: Keras already runs on another framework in this process.
        """

    # ---- training ------------------------------------------------------------------------

    @abstractmethod
    def fit(self, plan: TrainPlan, recorder: EpochRecorder) -> FitOutput:
        """Train ``plan``; per-epoch numbers go to ``recorder``; return outputs, weights, timings."""

    # ---- single-shot probes (parity, tuning, tests); numpy in duofit's layout ------------

    @abstractmethod
    def forward(
        self, spec: Spec, weights: Weights, x: np.ndarray, training: bool = False, strict: bool = False
    ) -> np.ndarray:
        """Model outputs for ``x`` with ``weights`` (inference mode unless ``training``)."""

    @abstractmethod
    def loss_value(self, spec: Spec, outputs: np.ndarray, targets: np.ndarray) -> float:
        """The spec's loss of ``outputs`` against loss-ready ``targets``."""

    @abstractmethod
    def gradients(
        self, spec: Spec, weights: Weights, x: np.ndarray, targets: np.ndarray, strict: bool = False
    ) -> tuple[float, Weights]:
        """Training-mode loss (regularisation included) and its gradient per trainable weight."""

    @abstractmethod
    def roundtrip(self, spec: Spec, weights: Weights, strict: bool = False) -> Weights:
        """Load ``weights`` into the framework's model and read them back."""

    # ---- weight files in the framework's own format --------------------------------------

    @abstractmethod
    def save_weights(self, spec: Spec, weights: Weights, path: Path, input_shape: tuple[int, ...]) -> None:
        """Write duofit-layout ``weights`` to ``path`` (one of :attr:`export_formats`)."""

    @abstractmethod
    def load_weights(self, spec: Spec, path: Path, input_shape: tuple[int, ...]) -> Weights:
        """Read a weight file written in one of :attr:`export_formats` back into duofit's layout.

        Raises:
            DataError: the file does not match the spec's model.
        """

    # ---- the machine ---------------------------------------------------------------------

    @abstractmethod
    def devices(self) -> list[str]:
        """Devices this backend can train on (``cpu`` first)."""

    def environment(self, device: str = "cpu") -> dict[str, Any]:
        """Versions and numeric flags recorded with every run (same flag names on every backend)."""
        return {"framework": self.framework, **self.framework_environment(device)}

    @abstractmethod
    def framework_environment(self, device: str) -> dict[str, Any]:
        """The framework's versions and flags: ``threads``, ``tf32_matmul``, ``onednn``, ..."""

    @abstractmethod
    def set_threads(self, threads: int) -> None:
        """Intra-op threads for this process (``train.threads``)."""

    @abstractmethod
    def init_threads(self, threads: int) -> None:
        """Intra- and inter-op threads of a fresh process, before the framework runs anything (bench)."""

    @abstractmethod
    def peak_device_memory_mb(self, device: str) -> float:
        """Peak accelerator memory of this process in MiB; 0 on ``cpu``."""

    # ---- what the backend supports and translates ----------------------------------------

    @abstractmethod
    def tables(self) -> dict[str, Mapping[type, Any]]:
        """Spec type -> translation, per kind: ``layers``, ``losses``, ``optimizers``."""

    @abstractmethod
    def strict_translations(self, spec: Spec) -> list[str]:
        """What this backend computes differently in strict mode for ``spec`` (no framework import)."""
