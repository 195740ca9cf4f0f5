"""The Keras backend objects: :class:`KerasBackend`, one per framework Keras 3 runs on.

``keras`` (TensorFlow), ``keras-torch`` and ``keras-jax`` are instances of the same class:
they run the same code in ``duofit/backends/keras/``; what differs per framework is the
typed table in ``duofit/backends/keras/native.py``. Importable without Keras: every method
that needs it first selects the instance's framework (:func:`duofit.backends.kerasenv.select`,
a clear error if this process already runs Keras on another one), then imports the twin
module. ``name``, ``framework``, :attr:`KerasBackend.export_formats` and
:meth:`KerasBackend.strict_translations` need no framework.

Example:
    >>> KerasBackend("keras-jax").framework
    'Keras 3 on JAX'
    >>> KerasBackend("keras").keras_framework
    'tensorflow'
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from duofit.backends.base import Backend, FitOutput, TrainPlan, Weights
from duofit.backends.kerasenv import KERAS_FRAMEWORKS, select
from duofit.common.errors import BackendError
from duofit.common.history import EpochRecorder
from duofit.common.spec import ActivationLayer, DenseLayer, Spec

__all__ = ["KerasBackend"]

_PACKAGES = {
    "tensorflow": "duofit.backends.keras",
    "torch": "duofit.backends.keras_torch",
    "jax": "duofit.backends.keras_jax",
}
# strict mode: the Keras optimizer each spec optimizer maps to, and its duofit exact twin (keras/exact.py)
_KERAS_OPTIMIZERS = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop"}
_EXACT_OPTIMIZERS = {"sgd": "ExactSGD", "adam": "ExactAdam", "adamw": "ExactAdam", "rmsprop": "ExactRMSprop"}


class KerasBackend(Backend):
    """Keras 3 ``compile`` + ``fit`` on one framework (``duofit/backends/keras/``).

    Args:
        name: ``keras``, ``keras-torch`` or ``keras-jax``.

    Attributes:
        keras_framework: Keras' name of the framework underneath (``tensorflow``, ``torch``, ``jax``).
    """

    export_formats: ClassVar[dict[str, str]] = {".weights.h5": "Keras weights (HDF5)", ".keras": "Keras model archive"}

    def __init__(self, name: str = "keras") -> None:
        by_name = {backend: fw for fw, backend in KERAS_FRAMEWORKS.items()}
        if name not in by_name:
            raise BackendError(f"{name!r} is not a Keras backend; Keras backends: {', '.join(by_name)}")
        self.keras_framework = by_name[name]
        super().__init__(name)

    def load(self) -> None:  # noqa: D102
        select(self.keras_framework)
        importlib.import_module(_PACKAGES[self.keras_framework])

    def _module(self, twin: str) -> ModuleType:
        """Twin module ``duofit.backends.keras.<twin>``, after selecting this backend's framework."""
        self.load()
        return importlib.import_module(f"duofit.backends.keras.{twin}")

    def fit(self, plan: TrainPlan, recorder: EpochRecorder) -> FitOutput:  # noqa: D102
        out: FitOutput = self._module("trainer").fit(plan, recorder)
        return out

    def forward(  # noqa: D102
        self, spec: Spec, weights: Weights, x: np.ndarray, training: bool = False, strict: bool = False
    ) -> np.ndarray:
        return np.asarray(self._module("probe").forward(spec, weights, x, training=training, strict=strict))

    def loss_value(self, spec: Spec, outputs: np.ndarray, targets: np.ndarray) -> float:  # noqa: D102
        return float(self._module("probe").loss_value(spec, outputs, targets))

    def gradients(  # noqa: D102
        self, spec: Spec, weights: Weights, x: np.ndarray, targets: np.ndarray, strict: bool = False
    ) -> tuple[float, Weights]:
        loss, grads = self._module("probe").gradients(spec, weights, x, targets, strict=strict)
        return float(loss), dict(grads)

    def roundtrip(self, spec: Spec, weights: Weights, strict: bool = False) -> Weights:  # noqa: D102
        return dict(self._module("probe").roundtrip(spec, weights, strict=strict))

    def save_weights(self, spec: Spec, weights: Weights, path: Path, input_shape: tuple[int, ...]) -> None:  # noqa: D102
        self._module("export").save_weights(spec, weights, path, input_shape)

    def load_weights(self, spec: Spec, path: Path, input_shape: tuple[int, ...]) -> Weights:  # noqa: D102
        return dict(self._module("export").load_weights(spec, path, input_shape))

    def devices(self) -> list[str]:  # noqa: D102
        return list(self._module("native").devices())

    def framework_environment(self, device: str) -> dict[str, Any]:  # noqa: D102
        return dict(self._module("native").framework_environment(device))

    def set_threads(self, threads: int) -> None:  # noqa: D102
        self._module("native").native().set_threads(threads)

    def init_threads(self, threads: int) -> None:  # noqa: D102
        self._module("native").native().init_threads(threads)

    def peak_device_memory_mb(self, device: str) -> float:  # noqa: D102
        if device != "cuda":
            return 0.0
        return float(self._module("native").native().peak_memory_mb())

    def tables(self) -> dict[str, Mapping[type, Any]]:  # noqa: D102
        return {
            "layers": self._module("layers").LAYERS,
            "losses": self._module("losses").LOSSES,
            "optimizers": self._module("optimizers").OPTIMIZERS,
        }

    def strict_translations(self, spec: Spec) -> list[str]:  # noqa: D102
        opt = spec.optimizer.type
        out = [
            f"keras: keras.optimizers.{_KERAS_OPTIMIZERS[opt]} -> duofit {_EXACT_OPTIMIZERS[opt]}: torch.optim's "
            "update formula, hyperparameters multiplied as Python floats (exact in float64, no float32 rounding)"
        ]
        acts = {
            getattr(layer, "activation", None)
            for layer in spec.model.layers
            if isinstance(layer, (DenseLayer, ActivationLayer))
        }
        if acts & {"gelu", "leaky_relu"}:
            out.append("keras: gelu/LeakyReLU -> duofit ExactGELU/ExactLeakyReLU (float64 constants)")
        return out
