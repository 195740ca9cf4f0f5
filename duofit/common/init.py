"""Initial weights, generated once in numpy and loaded into every backend.

Weights are named ``layers.<i>.<param>`` and stored in the Keras layout (dense kernel
``[in, out]``); each backend translates the layout when it loads them.

Example:
    >>> from duofit.common.loader import load_spec
    >>> spec = load_spec({"data": {"kind": "iris"},
    ...                   "model": {"layers": [{"type": "dense", "units": 3}]},
    ...                   "loss": {"type": "categorical_crossentropy"}})
    >>> w = initial_weights(spec, n_features=4)
    >>> {k: v.shape for k, v in w.items()}
    {'layers.0.kernel': (4, 3), 'layers.0.bias': (3,)}
"""

from __future__ import annotations

import math

import numpy as np

from duofit.common.spec import INITIALIZERS, BatchNormLayer, DenseLayer, InitSpec, Spec

__all__ = ["INITIALIZERS", "initial_weights", "layer_shapes"]

# Keras divides the std of its truncated normals by this constant: the std of a unit
# normal truncated to [-2, 2] (keras/src/initializers/random_initializers.py, VarianceScaling).
_TRUNC_STD = 0.87962566103423978


def _truncated_normal(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> np.ndarray:
    """Normal(0, std) resampled until inside [-2 std, 2 std] (as tf/keras truncated_normal)."""
    out = rng.normal(0.0, std, size=shape)
    bad = np.abs(out) > 2 * std
    while bad.any():
        out[bad] = rng.normal(0.0, std, size=int(bad.sum()))
        bad = np.abs(out) > 2 * std
    return out


def _sample(init: InitSpec, rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int) -> np.ndarray:
    """Draw one tensor; fans follow Keras/torch (dense: fan_in = inputs, fan_out = units)."""
    name = init.name
    if name == "zeros":
        return np.zeros(shape)
    if name == "ones":
        return np.ones(shape)
    if name == "constant":
        return np.full(shape, float(init.value))
    if name in ("glorot_uniform", "xavier_uniform"):
        return rng.uniform(-1, 1, size=shape) * math.sqrt(6.0 / (fan_in + fan_out))
    if name == "glorot_normal":
        return _truncated_normal(rng, shape, math.sqrt(2.0 / (fan_in + fan_out)) / _TRUNC_STD)
    if name == "xavier_normal":
        return rng.normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)), size=shape)
    if name in ("he_uniform", "kaiming_uniform"):
        return rng.uniform(-1, 1, size=shape) * math.sqrt(6.0 / fan_in)
    if name == "he_normal":
        return _truncated_normal(rng, shape, math.sqrt(2.0 / fan_in) / _TRUNC_STD)
    if name == "kaiming_normal":
        return rng.normal(0.0, math.sqrt(2.0 / fan_in), size=shape)
    if name == "lecun_uniform":
        return rng.uniform(-1, 1, size=shape) * math.sqrt(3.0 / fan_in)
    if name == "lecun_normal":
        return _truncated_normal(rng, shape, math.sqrt(1.0 / fan_in) / _TRUNC_STD)
    if name == "torch_linear":
        # nn.Linear.reset_parameters: kaiming_uniform_(a=sqrt(5)) == U(+-1/sqrt(fan_in)),
        # bias U(+-1/sqrt(fan_in)) as well.
        return rng.uniform(-1, 1, size=shape) / math.sqrt(fan_in)
    raise ValueError(f"unknown initializer {name!r}")  # unreachable: the spec validates names


def layer_shapes(spec: Spec, n_features: int) -> list[int]:
    """Feature width after each layer (inputs are flat ``[batch, n_features]``)."""
    width = n_features
    out: list[int] = []
    for layer in spec.model.layers:
        if isinstance(layer, DenseLayer):
            width = layer.units
        out.append(width)
    return out


def initial_weights(spec: Spec, n_features: int) -> dict[str, np.ndarray]:
    """Generate every layer's initial weights (float64) from ``train.seed``.

    Each layer draws from its own stream ``default_rng([seed, layer_index])`` so that
    editing one layer leaves the others' weights unchanged.

    Args:
        spec: The spec.
        n_features: Input width.

    Returns:
        Ordered mapping ``layers.<i>.<name>`` -> array, in the Keras layout.
    """
    weights: dict[str, np.ndarray] = {}
    width = n_features
    for i, layer in enumerate(spec.model.layers):
        rng = np.random.default_rng([spec.train.seed, i])
        if isinstance(layer, DenseLayer):
            fan_in, fan_out = width, layer.units
            weights[f"layers.{i}.kernel"] = _sample(layer.kernel_init, rng, (fan_in, fan_out), fan_in, fan_out)
            if layer.use_bias:
                bias_init = layer.bias_init
                weights[f"layers.{i}.bias"] = _sample(bias_init, rng, (fan_out,), fan_in, fan_out)
            width = layer.units
        elif isinstance(layer, BatchNormLayer):
            weights[f"layers.{i}.gamma"] = np.ones(width)
            weights[f"layers.{i}.beta"] = np.zeros(width)
            weights[f"layers.{i}.moving_mean"] = np.zeros(width)
            weights[f"layers.{i}.moving_variance"] = np.ones(width)
    return weights
