"""Keras layers for sequences ``(N, steps, features)``: 1-D pooling, layer norm, embeddings.

Translations (spec -> Keras; the torch twin is ``backends/torch/sequence.py``):
- layer_norm: ``LayerNormalization(axis=-1)`` with the spec's ``epsilon`` always passed
  (Keras' default 1e-3, the spec's 1e-5: cause ``layernorm_epsilon``), never ``rms_scaling``.
- embedding: ``Embedding(mask_zero=...)``, table ``embeddings`` ``[input_dim, output_dim]``;
  the mask it makes is honoured by ``GlobalAveragePooling1D`` and passed on by the layers
  that support masking (cause ``global_pool_masks``).
- positional_embedding: :class:`PositionalEmbedding` adds its table inside the layer and
  keeps the mask (``keras.layers.Add`` would drop it: cause ``keras_mask_propagation``).
- "same" average pooling where Keras' own layer counts padded steps (Keras on torch):
  :class:`SameAvgPool1D`.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from duofit.backends.keras.native import native
from duofit.common.spec.layers_conv1d import AvgPool1DLayer, LayerNormLayer, MaxPool1DLayer
from duofit.common.spec.layers_embedding import EmbeddingLayer, PositionalEmbeddingLayer
from duofit.common.spec.shapes import same_padding

__all__ = ["PositionalEmbedding", "SameAvgPool1D", "embedding", "layer_norm", "pool1d", "positional"]


@keras.saving.register_keras_serializable(package="duofit")
class PositionalEmbedding(keras.layers.Layer):
    """A learned table ``embeddings (max_len, features)``; ``call(x) = x + embeddings[:steps]``."""

    def __init__(self, max_len: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_len = int(max_len)
        self.supports_masking = True  # the padding mask passes through unchanged

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        """The table; its values come from the shared initial weights."""
        width = input_shape[-1]
        assert width is not None  # the features are known when the model is built
        self.embeddings = self.add_weight(name="embeddings", shape=(self.max_len, int(width)), initializer="zeros")

    def call(self, x: Any) -> Any:
        """``x + embeddings[:steps]`` (one addition, as on torch)."""
        return x + self.embeddings[: ops.shape(x)[1]]

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        """Unchanged."""
        return input_shape

    def get_config(self) -> dict[str, Any]:
        """Serialisable config (Keras)."""
        return {**super().get_config(), "max_len": self.max_len}


@keras.saving.register_keras_serializable(package="duofit")
class SameAvgPool1D(keras.layers.Layer):
    """Average pooling over steps with TensorFlow's "same" padding, on any framework.

    The window sum over the zero-padded input divided by the window's real steps. Keras 3 on
    torch pads an asymmetric "same" average by replicating the edge (keras 3.15.1
    ``backend/torch/nn.py`` ``_apply_same_padding``, cause ``same_avg_pool``).
    """

    def __init__(self, pool_size: int, strides: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pool_size, self.strides = int(pool_size), int(strides)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        """Padding and the real-step count of every window, from the number of steps."""
        import numpy as np

        steps = int(input_shape[1])  # type: ignore[arg-type]
        self._pad = same_padding(steps, self.pool_size, self.strides, 1)
        real = np.pad(np.ones(steps), self._pad)
        windows = np.lib.stride_tricks.sliding_window_view(real, self.pool_size)[:: self.strides]
        self._counts = windows.sum(axis=-1)[None, :, None]

    def call(self, x: Any) -> Any:
        """Sum over the real steps of each window / their number."""
        padded = ops.pad(x, [[0, 0], list(self._pad), [0, 0]])
        total = ops.average_pool(padded, self.pool_size, self.strides, padding="valid") * self.pool_size
        return total / ops.cast(self._counts, x.dtype)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        """ceil(steps / stride) steps."""
        n = input_shape[1]
        return (input_shape[0], None if n is None else -(-int(n) // self.strides), input_shape[2])

    def get_config(self) -> dict[str, Any]:
        """Serialisable config (Keras)."""
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides}


def pool1d(layer: MaxPool1DLayer, dtype: str, seed: int, strict: bool) -> list[keras.layers.Layer]:
    """``MaxPooling1D`` / ``AveragePooling1D`` (or :class:`SameAvgPool1D` where Keras' is not TensorFlow's)."""
    strides = layer.strides or layer.pool_size
    if isinstance(layer, AvgPool1DLayer):
        if layer.padding == "same" and not native().same_avg_pool_ok:
            return [SameAvgPool1D(layer.pool_size, strides, dtype=dtype)]
        return [keras.layers.AveragePooling1D(layer.pool_size, strides, padding=layer.padding, dtype=dtype)]
    return [keras.layers.MaxPooling1D(layer.pool_size, strides, padding=layer.padding, dtype=dtype)]


def layer_norm(layer: LayerNormLayer, dtype: str, seed: int, strict: bool) -> list[keras.layers.Layer]:
    """``LayerNormalization`` over the last axis with the spec's epsilon, center and scale."""
    return [
        keras.layers.LayerNormalization(
            axis=-1, epsilon=layer.epsilon, center=layer.center, scale=layer.scale, dtype=dtype
        )
    ]


def embedding(layer: EmbeddingLayer, dtype: str, seed: int, strict: bool) -> list[keras.layers.Layer]:
    """``Embedding`` (the table comes from the shared initial weights)."""
    return [keras.layers.Embedding(layer.input_dim, layer.output_dim, mask_zero=layer.mask_zero, dtype=dtype)]


def positional(layer: PositionalEmbeddingLayer, dtype: str, seed: int, strict: bool) -> list[keras.layers.Layer]:
    """:class:`PositionalEmbedding`."""
    return [PositionalEmbedding(layer.max_len, dtype=dtype)]
