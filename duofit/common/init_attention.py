"""Initial weights of ``multi_head_attention``, in Keras' layout, drawn once in numpy.

The spec's default is Keras': ``glorot_uniform`` per projection with the fans Keras'
``EinsumDense.build`` computes (``keras/src/layers/core/einsum_dense.py``,
``_update_kernel_initializer``): query/key/value kernels ``(E, heads, dim)`` have fan_in ``E``
and fan_out ``heads * dim``; the output kernel ``(heads, value_dim, E)`` fan_in
``heads * value_dim``, fan_out ``E``; biases zero. torch's ``nn.MultiheadAttention`` instead runs
``xavier_uniform_`` on the *packed* ``in_proj_weight (3E, E)`` (fan_out ``3E``: bound
``sqrt(1.5 / E)``) and keeps ``Linear``'s ``kaiming_uniform_(a=sqrt(5))`` (``U(+-1/sqrt(E))``)
for ``out_proj`` (``torch/nn/modules/activation.py`` ``_reset_parameters``): a port that keeps
both defaults starts from different weights (cause ``mha_initializers``); duofit loads this one
draw into every backend.

Example:
    >>> from duofit.common.spec.layers_attention import MultiHeadAttentionLayer
    >>> layer = MultiHeadAttentionLayer(type="multi_head_attention", num_heads=2, key_dim=3)
    >>> w = attention_weights(layer, np.random.default_rng(0), 4, _uniform_glorot)
    >>> {k: v.shape for k, v in w.items()}["output_kernel"]
    (2, 3, 4)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from duofit.common.spec.layers import InitSpec
from duofit.common.spec.layers_attention import MultiHeadAttentionLayer

__all__ = ["attention_inits", "attention_weights"]

Sampler = Callable[[Any, np.random.Generator, tuple[int, ...], int, int], np.ndarray]
Shape = tuple[int, ...]
_GLOROT = InitSpec(name="glorot_uniform")
_ZEROS = InitSpec(name="zeros")


def _uniform_glorot(init: Any, rng: np.random.Generator, shape: Shape, fan_in: int, fan_out: int) -> np.ndarray:
    """A stand-in sampler for the doctest (the real one is :mod:`duofit.common.init`'s)."""
    return rng.uniform(-1, 1, size=shape) * math.sqrt(6.0 / (fan_in + fan_out))


def attention_weights(
    layer: MultiHeadAttentionLayer, rng: np.random.Generator, features: int, sample: Sampler
) -> dict[str, np.ndarray]:
    """The layer's weights (Keras layout, Keras' glorot fans per projection) from ``rng``."""
    n, dk, dv = layer.num_heads, layer.key_dim, layer.head_value_dim
    out: dict[str, np.ndarray] = {}
    for part, dim in (("query", dk), ("key", dk), ("value", dv)):
        out[f"{part}_kernel"] = sample(_GLOROT, rng, (features, n, dim), features, n * dim)
        if layer.use_bias:
            out[f"{part}_bias"] = sample(_ZEROS, rng, (n, dim), features, n * dim)
    out["output_kernel"] = sample(_GLOROT, rng, (n, dv, features), n * dv, features)
    if layer.use_bias:
        out["output_bias"] = sample(_ZEROS, rng, (features,), n * dv, features)
    return out


def attention_inits(sample: Sampler) -> dict[type, Callable[[Any, np.random.Generator, Shape], dict[str, np.ndarray]]]:
    """``WEIGHT_INITS`` entries for the attention layers, drawing through ``sample``."""

    def make(layer: MultiHeadAttentionLayer, rng: np.random.Generator, shape: Shape) -> dict[str, np.ndarray]:
        return attention_weights(layer, rng, shape[-1], sample)

    return {MultiHeadAttentionLayer: make}
