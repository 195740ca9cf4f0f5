"""Spec optimizers -> Keras optimizers.

Order of one update, identical on every backend: clip gradients (global norm or value)
-> add coupled L2 decay ``g += wd * w`` -> decoupled decay ``w -= lr * wd * w`` ->
optimizer update.

Translations: the spec's ``clipnorm`` is a *global* norm (torch's ``clip_grad_norm_``), so
it becomes Keras' ``global_clipnorm`` (Keras' ``clipnorm`` clips each tensor on its own).
Keras' ``weight_decay`` is always decoupled; coupled L2 (torch's ``weight_decay``) is added
to the clipped gradients by a subclass (:func:`_with_coupled_l2`), so it does not show
up in the logged loss (as in torch).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

from duofit.common.errors import unsupported
from duofit.common.spec import AdamOptimizer, AdamWOptimizer, RMSpropOptimizer, SGDOptimizer

__all__ = ["OPTIMIZERS", "make_optimizer"]


def _common(spec: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"learning_rate": spec.lr}
    if spec.clipnorm is not None:
        kwargs["global_clipnorm"] = spec.clipnorm
    if spec.clipvalue is not None:
        kwargs["clipvalue"] = spec.clipvalue
    if spec.decay_kind == "decoupled" and spec.weight_decay:
        kwargs["weight_decay"] = spec.weight_decay
    return kwargs


def _sgd(spec: SGDOptimizer) -> tuple[type, dict[str, Any]]:
    return keras.optimizers.SGD, {"momentum": spec.momentum, "nesterov": spec.nesterov}


def _adam(spec: AdamOptimizer | AdamWOptimizer) -> tuple[type, dict[str, Any]]:
    cls = keras.optimizers.AdamW if isinstance(spec, AdamWOptimizer) else keras.optimizers.Adam
    return cls, {"beta_1": spec.beta1, "beta_2": spec.beta2, "epsilon": spec.epsilon, "amsgrad": spec.amsgrad}


def _rmsprop(spec: RMSpropOptimizer) -> tuple[type, dict[str, Any]]:
    return keras.optimizers.RMSprop, {
        "rho": spec.rho,
        "momentum": spec.momentum,
        "epsilon": spec.epsilon,
        "centered": spec.centered,
    }


OPTIMIZERS: dict[type, Callable[[Any], tuple[type, dict[str, Any]]]] = {
    SGDOptimizer: _sgd,
    AdamOptimizer: _adam,
    AdamWOptimizer: _adam,
    RMSpropOptimizer: _rmsprop,
}


def _with_coupled_l2(cls: type, decay: float) -> type:
    """Subclass of a Keras optimizer that adds ``decay * w`` to each (clipped) gradient."""

    class CoupledL2(cls):
        def _backend_update_step(self, grads: list[Any], trainable_variables: list[Any], learning_rate: Any) -> Any:
            grads = [
                keras.ops.add(g, keras.ops.multiply(keras.ops.cast(decay, g.dtype), v.value))
                for g, v in zip(grads, trainable_variables, strict=True)
            ]
            return super()._backend_update_step(grads, trainable_variables, learning_rate)

    CoupledL2.__name__ = f"{cls.__name__}CoupledL2"
    return CoupledL2


def make_optimizer(spec: object, strict: bool = False) -> keras.optimizers.Optimizer:
    """Build the Keras optimizer for an optimizer spec (torch's formulas when ``strict``)."""
    factory = OPTIMIZERS.get(type(spec))
    if factory is None:
        raise unsupported("keras", "optimizer", spec, OPTIMIZERS)
    if strict:
        from duofit.backends.keras.exact import exact_optimizer

        clip = {k: v for k, v in _common(spec).items() if k in ("global_clipnorm", "clipvalue")}
        return exact_optimizer(spec, **clip)
    cls, kwargs = factory(spec)
    wd = float(spec.weight_decay)  # type: ignore[attr-defined]
    if spec.decay_kind == "l2" and wd:  # type: ignore[attr-defined]
        cls = _with_coupled_l2(cls, wd)
    return cls(**_common(spec), **kwargs)
