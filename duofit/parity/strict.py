"""Strict mode: the spec changes and backend translations behind ``duofit parity --strict``.

Strict mode runs in float64 and makes both backends compute the same math wherever the
frameworks' formulas differ (see :mod:`duofit.parity.causes`). It says what it changed.

Example:
    >>> from duofit.common.loader import load_spec
    >>> spec, changes = strict_spec(load_spec("examples/seed.toml"))  # doctest: +SKIP
    >>> spec.train.dtype, changes[0]  # doctest: +SKIP
    ('float64', 'train.dtype: float32 -> float64 (strict parity is defined in float64)')
"""

from __future__ import annotations

from duofit.common.spec import ActivationLayer, DenseLayer, Spec

__all__ = ["strict_spec", "strict_translations"]

_KERAS_NAMES = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop"}
_EXACT = {"sgd": "ExactSGD", "adam": "ExactAdam", "adamw": "ExactAdam", "rmsprop": "ExactRMSprop"}


def strict_spec(spec: Spec) -> tuple[Spec, list[str]]:
    """Return the spec strict mode runs (float64) and the list of spec changes made."""
    changes: list[str] = []
    if spec.train.dtype != "float64":
        train = spec.train.model_copy(update={"dtype": "float64"})
        spec = spec.model_copy(update={"train": train})
        changes.append("train.dtype: float32 -> float64 (strict parity is defined in float64)")
    return spec, changes


def strict_translations(spec: Spec) -> list[str]:
    """What the backends do differently in strict mode for this spec."""
    opt = spec.optimizer.type
    out = [
        f"keras: keras.optimizers.{_KERAS_NAMES[opt]} -> duofit {_EXACT[opt]}: torch.optim's update formula, "
        "hyperparameters multiplied as Python floats (exact in float64, no float32 rounding)"
    ]
    if spec.optimizer.clipnorm is not None:
        out.append("torch: clip_grad_norm_ -> Keras' clip_by_global_norm formula g * c * min(1/|g|, 1/c)")
    acts = {
        getattr(layer, "activation", None)
        for layer in spec.model.layers
        if isinstance(layer, (DenseLayer, ActivationLayer))
    }
    if acts & {"gelu", "leaky_relu"}:
        out.append("keras: gelu/LeakyReLU -> duofit ExactGELU/ExactLeakyReLU (float64 constants)")
    return out
