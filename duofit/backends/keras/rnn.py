"""Recurrent layers on Keras: ``SimpleRNN``, ``LSTM``, ``GRU`` and ``Bidirectional``.

duofit's layout is Keras' own (``kernel``, ``recurrent_kernel``, ``bias``; a GRU with
``reset_after`` has a ``(2, 3*units)`` bias), so weights load without translation. A
bidirectional layer's weights are the forward layer's then the backward layer's
(``keras/src/layers/rnn/bidirectional.py``: ``forward_layer`` is built before
``backward_layer``), stored as ``forward_*`` and ``backward_*``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

from duofit.common.spec.layers_rnn import BidirectionalLayer, GRULayer, LSTMLayer, RecurrentBase, SimpleRNNLayer

__all__ = ["RNN_LAYERS", "RNN_WEIGHT_NAMES", "recurrent"]

_CLASSES: dict[type, str] = {SimpleRNNLayer: "SimpleRNN", LSTMLayer: "LSTM", GRULayer: "GRU"}


def recurrent(layer: RecurrentBase, dtype: str) -> keras.layers.Layer:
    """The Keras layer of one recurrent spec (initializers unused: duofit loads the weights)."""
    kwargs: dict[str, Any] = {}
    if isinstance(layer, (LSTMLayer, GRULayer)):
        kwargs["recurrent_activation"] = layer.recurrent_activation
    if isinstance(layer, GRULayer):
        kwargs["reset_after"] = layer.reset_after
    cls = getattr(keras.layers, _CLASSES[type(layer)])
    return cls(
        layer.units,
        activation=layer.activation,
        use_bias=layer.use_bias,
        return_sequences=layer.return_sequences,
        dtype=dtype,
        **kwargs,
    )


def _recurrent(layer: RecurrentBase, dtype: str, seed: int, strict: bool) -> list[keras.layers.Layer]:
    return [recurrent(layer, dtype)]


def _bidirectional(layer: BidirectionalLayer, dtype: str, seed: int, strict: bool) -> list[keras.layers.Layer]:
    return [keras.layers.Bidirectional(recurrent(layer.layer, dtype), merge_mode=layer.merge, dtype=dtype)]


# Entries of the Keras LAYERS table: spec type -> (layer, dtype, seed, strict) -> Keras layers.
RNN_LAYERS: dict[type, Callable[..., list[keras.layers.Layer]]] = {
    SimpleRNNLayer: _recurrent,
    LSTMLayer: _recurrent,
    GRULayer: _recurrent,
    BidirectionalLayer: _bidirectional,
}
_ONE = ("kernel", "recurrent_kernel", "bias")
# Entries of the Keras weight-name table, in ``get_weights()`` order.
RNN_WEIGHT_NAMES: dict[type, tuple[str, ...]] = {
    SimpleRNNLayer: _ONE,
    LSTMLayer: _ONE,
    GRULayer: _ONE,
    BidirectionalLayer: tuple(f"{side}_{n}" for side in ("forward", "backward") for n in _ONE),
}
