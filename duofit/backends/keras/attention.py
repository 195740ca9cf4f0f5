"""``multi_head_attention`` on Keras: ``keras.layers.MultiHeadAttention``, weights without translation.

duofit's layout is Keras' own (``query_kernel (E, heads, key_dim)`` ...; see
:mod:`duofit.common.spec.layers_attention`). :class:`SpecAttention` takes one input as
self-attention (``mha(x, x)``) and two as ``call(query, value)``; ``causal`` becomes
``use_causal_mask``; the inputs' Keras masks (an ``embedding`` with ``mask_zero``) are passed
by ``Layer.__call__`` as ``query_mask`` / ``value_mask``.

Strict mode always takes Keras' *explicit* attention path (scale the query, einsum, masked
``Softmax``, einsum), which the torch backend reproduces op for op. With dropout 0 Keras
otherwise calls ``ops.dot_product_attention`` (``_compute_attention``: ``use_dot_product_attention``),
and on JAX that is ``jax.nn.dot_product_attention``, whose softmax always runs in float32
(``jax/_src/nn/functions.py`` ``_dot_product_attention_core``) even for float64 models: about
1e-7 relative error (cause ``keras_jax_attention_float32``). Asking for the attention scores
selects the explicit path without changing the math.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from duofit.backends.keras.compat import keep_input_masks
from duofit.common.spec.layers_attention import ATTENTION_WEIGHTS, MultiHeadAttentionLayer

__all__ = ["ATTENTION_KERAS_LAYERS", "ATTENTION_WEIGHT_NAMES", "ExactAttention", "SpecAttention"]


@keras.saving.register_keras_serializable(package="duofit")
class SpecAttention(keras.layers.MultiHeadAttention):
    """``MultiHeadAttention`` called as ``layer(query)`` (self-attention) or ``layer(query, value)``."""

    def __init__(self, *args: Any, causal: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.duofit_causal = causal

    def __call__(self, query: Any, value: Any = None, **kwargs: Any) -> Any:  # noqa: D102
        kwargs.setdefault("use_causal_mask", self.duofit_causal)
        return super().__call__(query, query if value is None else value, **kwargs)

    def call(  # the full signature: Layer.__call__ fills query_mask / value_mask / key_mask by name
        self,
        query: Any,
        value: Any,
        key: Any = None,
        query_mask: Any = None,
        value_mask: Any = None,
        key_mask: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Keras' ``call``, then the inputs' padding masks put back (:func:`.compat.keep_input_masks`).

        ``MultiHeadAttention.call`` clears the Keras mask of the tensors it reads, so at run time a
        residual ``add`` reading the same tensor would drop the mask and a second attention block
        would attend to the padding (cause ``keras_mha_clears_input_mask``).
        """
        return keep_input_masks(
            lambda: super(SpecAttention, self).call(query, value, key, query_mask, value_mask, key_mask, **kwargs),
            query,
            value,
            key,
        )

    def get_config(self) -> dict[str, Any]:  # noqa: D102
        return {**super().get_config(), "causal": self.duofit_causal}


@keras.saving.register_keras_serializable(package="duofit")
class ExactAttention(SpecAttention):
    """:class:`SpecAttention` that always takes Keras' explicit path, scaling by the exact float64 constant.

    Keras' explicit path scales with ``ops.cast(self._inverse_sqrt_key_dim, query.dtype)``; on
    TensorFlow and JAX that makes a float32 constant of the Python float first (TensorFlow:
    ``tf.cast`` in ``keras/src/backend/tensorflow/core.py``), so a float64 model scales by
    ``float32(1 / sqrt(key_dim))``: 1.7e-8 relative for key_dim = 2 (cause
    ``keras_mha_scale_float32``). Here the query is scaled by a constant of the query's own dtype
    and Keras' factor is set to 1.0, which every dtype holds exactly.
    """

    def __init__(self, *args: Any, key_dim: int, **kwargs: Any) -> None:
        super().__init__(*args, key_dim=key_dim, **kwargs)
        self.exact_scale = 1.0 / math.sqrt(float(key_dim))  # Keras' _inverse_sqrt_key_dim
        self._inverse_sqrt_key_dim = 1.0

    def _compute_attention(
        self,
        query: Any,
        key: Any,
        value: Any,
        attention_mask: Any = None,
        training: Any = None,
        return_attention_scores: bool = False,
        **kwargs: Any,
    ) -> Any:
        dtype = keras.backend.standardize_dtype(query.dtype)
        scaled = keras.ops.multiply(query, keras.ops.convert_to_tensor(np.asarray(self.exact_scale, dtype=dtype)))
        return super()._compute_attention(scaled, key, value, attention_mask, training, True, **kwargs)


def _attention(layer: MultiHeadAttentionLayer, dtype: str, seed: int, strict: bool) -> list[keras.layers.Layer]:
    cls = ExactAttention if strict else SpecAttention
    return [
        cls(
            num_heads=layer.num_heads,
            key_dim=layer.key_dim,
            value_dim=layer.head_value_dim,
            use_bias=layer.use_bias,
            causal=layer.causal,
            dtype=dtype,
        )
    ]


# Entries of the Keras LAYERS table and of the weight-name table (``get_weights()`` order).
ATTENTION_KERAS_LAYERS: dict[type, Callable[..., list[keras.layers.Layer]]] = {MultiHeadAttentionLayer: _attention}
ATTENTION_WEIGHT_NAMES: dict[type, tuple[str, ...]] = {MultiHeadAttentionLayer: ATTENTION_WEIGHTS}
