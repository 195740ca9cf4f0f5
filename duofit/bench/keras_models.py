"""A spec's layer graph as a person builds it in Keras: the functional API, stock layers, Keras' defaults.

Used by the hand-written Keras baselines (:mod:`duofit.bench.keras_loops`) for models that are
not plain MLPs. Each spec layer becomes one stock layer (:data:`KERAS_STOCK`): ``Dense``,
``Conv2D``, ``MaxPooling2D``, ``LSTM`` / ``GRU`` / ``SimpleRNN``, ``MultiHeadAttention``,
``LayerNormalization``, ``Embedding`` (with ``mask_zero``, so Keras' masking carries the padding
to the attention and the average pooling), ``GlobalAveragePooling1D``, ``Add``. Keras has no
stock learned positional embedding (it lives in KerasHub), so :class:`Positions` is the few
lines a person writes for it. Initialisation is Keras' own (seeded), not duofit's shared weights.

Example:
    Builds Keras layers, so it is not run as a doctest.

    >>> model = stock_model(stock_graph(spec, (40,), tokens=True), "float32")   # doctest: +SKIP
    >>> model.output_shape                                                       # doctest: +SKIP
    (None, 2)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
from keras import ops

from duofit.bench.stock import StockGraph
from duofit.common.spec import (
    ActivationLayer,
    AddLayer,
    Conv2DLayer,
    DenseLayer,
    DropoutLayer,
    FlattenLayer,
    MaxPool2DLayer,
)
from duofit.common.spec.layers_attention import MultiHeadAttentionLayer
from duofit.common.spec.layers_conv1d import GlobalAvgPool1DLayer, LayerNormLayer
from duofit.common.spec.layers_embedding import EmbeddingLayer, PositionalEmbeddingLayer
from duofit.common.spec.layers_rnn import GRULayer, LSTMLayer, SimpleRNNLayer

__all__ = ["KERAS_STOCK", "Positions", "stock_model"]


class Positions(keras.layers.Layer):
    """A learned position table added to the input (``x + table[:steps]``); passes the mask on."""

    def __init__(self, max_len: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_len = max_len
        self.supports_masking = True

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        """The table, drawn like a Keras ``Embedding``'s (uniform +-0.05)."""
        self.table = self.add_weight(shape=(self.max_len, int(input_shape[-1] or 0)), initializer="uniform")

    def call(self, x: Any) -> Any:
        """``x + table[:steps]``."""
        return x + self.table[: ops.shape(x)[1]]


def _act(layer: Any) -> str | None:
    act = getattr(layer, "activation", None)
    return None if act in (None, "linear") else str(act)


def _one(make: Callable[[Any], Any]) -> Callable[[Any, list[Any]], Any]:
    return lambda layer, xs: make(layer)(xs[0])


def _attention(layer: MultiHeadAttentionLayer, xs: list[Any]) -> Any:
    att = keras.layers.MultiHeadAttention(layer.num_heads, layer.key_dim, layer.value_dim, use_bias=layer.use_bias)
    return att(xs[0], xs[-1], use_causal_mask=layer.causal)


def _recurrent(layer: SimpleRNNLayer | LSTMLayer | GRULayer, xs: list[Any]) -> Any:
    common = {"units": layer.units, "return_sequences": layer.return_sequences, "use_bias": layer.use_bias}
    if isinstance(layer, LSTMLayer):
        return keras.layers.LSTM(**common, unit_forget_bias=layer.unit_forget_bias)(xs[0])
    if isinstance(layer, GRULayer):
        return keras.layers.GRU(**common, reset_after=layer.reset_after)(xs[0])
    return keras.layers.SimpleRNN(**common, activation=layer.activation)(xs[0])


# Spec layer type -> how the stock layer is applied to its inputs; the keys are
# :data:`duofit.bench.stock.STOCK_CHECKS`'.
KERAS_STOCK: dict[type, Callable[[Any, list[Any]], Any]] = {
    DenseLayer: _one(lambda ly: keras.layers.Dense(ly.units, activation=_act(ly), use_bias=ly.use_bias)),
    ActivationLayer: _one(lambda ly: keras.layers.Activation(ly.activation)),
    DropoutLayer: _one(lambda ly: keras.layers.Dropout(ly.rate)),
    FlattenLayer: _one(lambda ly: keras.layers.Flatten()),
    Conv2DLayer: _one(
        lambda ly: keras.layers.Conv2D(
            ly.filters,
            tuple(ly.kernel_size),
            strides=tuple(ly.strides),
            padding=ly.padding,
            dilation_rate=tuple(ly.dilation),
            activation=_act(ly),
            use_bias=ly.use_bias,
        )
    ),
    MaxPool2DLayer: _one(lambda ly: keras.layers.MaxPooling2D(tuple(ly.pool_size), strides=ly.strides)),
    AddLayer: lambda layer, xs: keras.layers.Add()(xs),
    LayerNormLayer: _one(
        lambda ly: keras.layers.LayerNormalization(epsilon=ly.epsilon, center=ly.center, scale=ly.scale)
    ),
    EmbeddingLayer: _one(lambda ly: keras.layers.Embedding(ly.input_dim, ly.output_dim, mask_zero=ly.mask_zero)),
    PositionalEmbeddingLayer: _one(lambda ly: Positions(ly.max_len)),
    MultiHeadAttentionLayer: _attention,
    SimpleRNNLayer: _recurrent,
    LSTMLayer: _recurrent,
    GRULayer: _recurrent,
    GlobalAvgPool1DLayer: _one(lambda ly: keras.layers.GlobalAveragePooling1D()),
}


def stock_model(graph: StockGraph, dtype: str) -> keras.Model:
    """The functional model of ``graph`` (call after seeding and setting ``floatx``)."""
    inp = keras.Input(shape=graph.input_shape, dtype="int32" if graph.tokens else dtype)
    outs: list[Any] = []
    for layer, src in zip(graph.layers, graph.sources, strict=True):
        outs.append(KERAS_STOCK[type(layer)](layer, [inp if j < 0 else outs[j] for j in src]))
    return keras.Model(inp, outs[-1])
