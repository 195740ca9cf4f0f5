"""The ``torch`` backend object: :class:`TorchBackend`, importable without torch.

Every method that needs torch imports ``duofit.backends.torch.<twin module>`` on first
use; ``name``, ``framework``, :attr:`TorchBackend.export_formats` and
:meth:`TorchBackend.strict_translations` need no framework (``duofit parity`` and
``convert`` read them in the parent process).

Example:
    >>> TorchBackend().export_formats
    {'.safetensors': 'safetensors', '.npz': 'numpy npz'}
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from duofit.backends.base import Backend, FitOutput, TrainPlan, Weights
from duofit.common.history import EpochRecorder
from duofit.common.spec import Spec

__all__ = ["TorchBackend"]


class TorchBackend(Backend):
    """PyTorch: an explicit training loop (``duofit/backends/torch/``)."""

    export_formats: ClassVar[dict[str, str]] = {".safetensors": "safetensors", ".npz": "numpy npz"}

    def __init__(self, name: str = "torch") -> None:
        super().__init__(name)

    def load(self) -> None:  # noqa: D102
        importlib.import_module("duofit.backends.torch")

    def fit(self, plan: TrainPlan, recorder: EpochRecorder) -> FitOutput:  # noqa: D102
        from duofit.backends.torch.trainer import fit

        return fit(plan, recorder)

    def forward(  # noqa: D102
        self, spec: Spec, weights: Weights, x: np.ndarray, training: bool = False, strict: bool = False
    ) -> np.ndarray:
        from duofit.backends.torch import probe

        return probe.forward(spec, weights, x, training=training, strict=strict)

    def loss_value(self, spec: Spec, outputs: np.ndarray, targets: np.ndarray) -> float:  # noqa: D102
        from duofit.backends.torch import probe

        return probe.loss_value(spec, outputs, targets)

    def gradients(  # noqa: D102
        self, spec: Spec, weights: Weights, x: np.ndarray, targets: np.ndarray, strict: bool = False
    ) -> tuple[float, Weights]:
        from duofit.backends.torch import probe

        return probe.gradients(spec, weights, x, targets, strict=strict)

    def roundtrip(self, spec: Spec, weights: Weights, strict: bool = False) -> Weights:  # noqa: D102
        from duofit.backends.torch import probe

        return probe.roundtrip(spec, weights, strict=strict)

    def save_weights(self, spec: Spec, weights: Weights, path: Path, input_shape: tuple[int, ...]) -> None:  # noqa: D102
        from duofit.backends.torch import export

        export.save_weights(spec, weights, path, input_shape)

    def load_weights(self, spec: Spec, path: Path, input_shape: tuple[int, ...]) -> Weights:  # noqa: D102
        from duofit.backends.torch import export

        return export.load_weights(spec, path, input_shape)

    def devices(self) -> list[str]:  # noqa: D102
        from duofit.backends.torch import machine

        return machine.devices()

    def framework_environment(self, device: str) -> dict[str, Any]:  # noqa: D102
        from duofit.backends.torch import machine

        return machine.framework_environment()

    def set_threads(self, threads: int) -> None:  # noqa: D102
        from duofit.backends.torch import machine

        machine.set_threads(threads)

    def init_threads(self, threads: int) -> None:  # noqa: D102
        from duofit.backends.torch import machine

        machine.init_threads(threads)

    def peak_device_memory_mb(self, device: str) -> float:  # noqa: D102
        if device != "cuda":
            return 0.0
        from duofit.backends.torch import machine

        return machine.peak_memory_mb()

    def tables(self) -> dict[str, Mapping[type, Any]]:  # noqa: D102
        from duofit.backends.torch import layers, losses, optimizers

        return {"layers": layers.LAYERS, "losses": losses.LOSSES, "optimizers": optimizers.OPTIMIZERS}

    def strict_translations(self, spec: Spec) -> list[str]:  # noqa: D102
        if spec.optimizer.clipnorm is None:
            return []
        return ["torch: clip_grad_norm_ -> Keras' clip_by_global_norm formula g * c * min(1/|g|, 1/c)"]
