"""Keras optimizer state <-> duofit's neutral optimizer state (:mod:`duofit.common.optstate`).

Keras' variables already have the Keras layout of their weight (``add_variable_from_reference``),
so only their names and, for two native optimizers, their scale change. The neutral slots are
``torch.optim``'s state; how each Keras 3.15 optimizer holds it:

- strict mode (``backends/keras/exact.py``): torch's formulas, torch's quantities: ``_bufs``
  (SGD and RMSprop momentum buffers), ``_m``, ``_v``, ``_vmax`` (Adam), ``_sq``, ``_gavg``
  (RMSprop);
- ``keras/src/optimizers/sgd.py``: ``momentums`` holds ``m = momentum * m - lr * g`` and adds it to the
  weight, torch's buffer ``buf = momentum * buf + g`` is subtracted times ``lr``: ``m = -lr * buf``
  (exact while the rate stays constant; with a schedule Keras' ``m`` mixes the rates of past
  steps, so the rate of the last update is used);
- ``keras/src/optimizers/adam.py`` (and ``adamw.py``, a subclass): ``_momentums``, ``_velocities`` and
  ``_velocity_hats`` are torch's ``exp_avg``, ``exp_avg_sq`` and ``max_exp_avg_sq`` (the same
  recurrences; only the update's epsilon differs);
- ``keras/src/optimizers/rmsprop.py``: ``_velocities`` and ``_average_gradients`` are torch's
  ``square_avg`` and ``grad_avg``; ``_momentums`` accumulates ``lr * g / sqrt(v + eps)`` where torch's
  buffer accumulates ``g / (sqrt(v) + eps)``: ``momentum = lr * buf``.

The step count is ``optimizer.iterations`` (Adam's bias correction reads ``iterations + 1``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from duofit.backends.keras.exact import ExactAdam, ExactRMSprop, ExactSGD
from duofit.backends.keras.layers import present_weights
from duofit.common.errors import BackendError
from duofit.common.optstate import OptimizerState, slot_key
from duofit.common.spec import Spec

__all__ = ["SLOT_VARIABLES", "read_state", "write_state"]

Scale = Callable[[float], float] | None  # Keras' value = scale(lr) * neutral value; None: the same


def _minus_lr(lr: float) -> float:
    return -lr


def _lr(lr: float) -> float:
    return lr


# optimizer class -> {neutral slot: (attribute holding one variable per trainable weight, scale)};
# the first class the optimizer is an instance of applies (strict-mode classes first)
SLOT_VARIABLES: dict[type, dict[str, tuple[str, Scale]]] = {
    ExactSGD: {"momentum": ("_bufs", None)},
    ExactAdam: {"m": ("_m", None), "v": ("_v", None), "vmax": ("_vmax", None)},
    ExactRMSprop: {"rms": ("_sq", None), "mg": ("_gavg", None), "momentum": ("_bufs", None)},
    keras.optimizers.SGD: {"momentum": ("momentums", _minus_lr)},
    keras.optimizers.Adam: {"m": ("_momentums", None), "v": ("_velocities", None), "vmax": ("_velocity_hats", None)},
    keras.optimizers.RMSprop: {
        "rms": ("_velocities", None),
        "mg": ("_average_gradients", None),
        "momentum": ("_momentums", _lr),
    },
}


def _layout(optimizer: keras.optimizers.Optimizer) -> dict[str, tuple[str, Scale]]:
    for cls, layout in SLOT_VARIABLES.items():
        if isinstance(optimizer, cls):
            return layout
    supported = ", ".join(c.__name__ for c in SLOT_VARIABLES)
    raise BackendError(f"optimizer state: {type(optimizer).__name__} is not translated; supported: {supported}")


def _trainable(heads: list[Any], spec: Spec) -> list[tuple[Any, str]]:
    """``(variable, duofit name)`` of every trainable weight, by the names ``get_weights`` gives them."""
    out = []
    for i, layer in enumerate(spec.model.layers):
        names = present_weights(layer)
        if not names:
            continue
        for name, variable in zip(names, heads[i].weights, strict=True):
            if variable.trainable:
                out.append((variable, f"layers.{i}.{name}"))
    return out


def _slot_variables(optimizer: keras.optimizers.Optimizer, heads: list[Any], spec: Spec) -> list[Any]:
    """``(neutral key, the optimizer's variable, scale)`` for every slot the built optimizer has."""
    if not optimizer.built:
        raise BackendError("optimizer state: the optimizer is not built yet (build it on the model's variables)")
    out = []
    for slot, (attribute, scale) in _layout(optimizer).items():
        variables = getattr(optimizer, attribute, None) or []
        if not variables:
            continue  # this configuration keeps no such slot (no momentum, not centered, no amsgrad)
        for variable, name in _trainable(heads, spec):
            out.append((slot_key(slot, name), variables[optimizer._get_variable_index(variable)], scale))
    return out


def _learning_rate(optimizer: keras.optimizers.Optimizer) -> float:
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def read_state(optimizer: keras.optimizers.Optimizer, heads: list[Any], spec: Spec) -> dict[str, np.ndarray]:
    """The optimizer's slot variables as neutral slots in duofit's layout.

    Args:
        optimizer: The fit's optimizer (built, after its last step).
        heads: The model's per-layer Keras layers (``build_model``'s second value).
        spec: The spec the model was built from.

    Returns:
        ``{"<slot>/layers.<i>.<param>": array}``.
    """
    lr = _learning_rate(optimizer)
    out: dict[str, np.ndarray] = {}
    for key, variable, scale in _slot_variables(optimizer, heads, spec):
        arr = np.asarray(keras.ops.convert_to_numpy(variable))
        out[key] = (arr / scale(lr) if scale is not None else arr).copy()
    return out


def write_state(optimizer: keras.optimizers.Optimizer, heads: list[Any], spec: Spec, state: OptimizerState) -> None:
    """Load a neutral state into a built optimizer: its slot variables and ``iterations``.

    Args:
        optimizer: The fit's optimizer, built on the model's trainable variables, before its first step.
        heads: The model's per-layer Keras layers.
        spec: The spec the model was built from.
        state: The state to continue from, checked against the spec beforehand.
    """
    for key, variable, scale in _slot_variables(optimizer, heads, spec):
        arr = state.slots.get(key)
        if arr is None:
            continue
        value = arr * scale(state.lr) if scale is not None else arr
        variable.assign(np.asarray(value, dtype=variable.dtype))
    optimizer.iterations.assign(state.step)
