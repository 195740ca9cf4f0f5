"""The layer graph a hand-written baseline builds from stock framework layers, and what it accepts.

The baselines (``lean-torch``, ``seed-loop``, ``keras-tuned``, ``keras-naive-fit``) build a model
the way a person writes one from the framework's own layers, with the framework's default
initialisation: ``nn.LSTM(batch_first=True)``, ``nn.MultiheadAttention(batch_first=True)``,
``nn.Conv2d`` on channels-first images... on torch; ``keras.layers.*`` in the functional API
on Keras. They are not parity twins of duofit's models (those start from shared weights and
follow the other framework's formulas); they are what duofit's speed is measured against.

This module is framework-free: it checks which spec layers the baselines can build
(:data:`STOCK_CHECKS`, one table both builders follow) and traces the graph once, so the two
builders see the same sources and shapes.

Example:
    >>> from duofit.common.loader import load_spec
    >>> spec = load_spec("examples/lstm_sunspots.toml")
    >>> graph = stock_graph(spec, (12, 1), tokens=False)
    >>> [layer.type for layer in graph.layers], graph.sources, graph.shapes[0]
    (['lstm', 'dense'], ((-1,), (0,)), ([(12, 1)], (16,)))
    >>> stock_problem(load_spec("examples/conv1d_sunspots.toml"))[:47]
    "model.layers[0] (type 'conv1d'): the baselines'"
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_args

from duofit.common.spec import (
    ActivationLayer,
    AddLayer,
    Conv2DLayer,
    DenseLayer,
    DropoutLayer,
    FlattenLayer,
    MaxPool2DLayer,
    Spec,
)
from duofit.common.spec.layers import LayerBase
from duofit.common.spec.layers_attention import MultiHeadAttentionLayer
from duofit.common.spec.layers_conv1d import GlobalAvgPool1DLayer, LayerNormLayer
from duofit.common.spec.layers_embedding import EmbeddingLayer, PositionalEmbeddingLayer
from duofit.common.spec.layers_rnn import GRULayer, LSTMLayer, SimpleRNNLayer
from duofit.common.spec.model import layer_sources
from duofit.common.spec.shapes import trace_shapes

__all__ = ["STOCK_ACTIVATIONS", "STOCK_CHECKS", "StockGraph", "stock_graph", "stock_problem"]

Shape = tuple[int, ...]
# Activations both builders name the same way (torch functional / Keras string).
STOCK_ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid")


def _activation(layer: Any) -> str | None:
    act = getattr(layer, "activation", None) or "linear"
    return None if act in STOCK_ACTIVATIONS else f"activation {act!r} (stock: {', '.join(STOCK_ACTIVATIONS)})"


def _dense(layer: DenseLayer) -> str | None:
    if layer.l1 or layer.l2:
        return "l1/l2 penalties"
    return _activation(layer)


def _conv2d(layer: Conv2DLayer) -> str | None:
    if layer.padding == "same" and tuple(layer.strides) != (1, 1):
        return "padding 'same' with strides other than 1 (torch's nn.Conv2d refuses it)"
    return _activation(layer)


def _pool2d(layer: MaxPool2DLayer) -> str | None:
    return "padding 'same'" if layer.padding == "same" else None


def _rnn(layer: SimpleRNNLayer | LSTMLayer | GRULayer) -> str | None:
    fixed = ("tanh", "relu") if isinstance(layer, SimpleRNNLayer) else ("tanh",)
    if layer.activation not in fixed or getattr(layer, "recurrent_activation", "sigmoid") != "sigmoid":
        return "activations torch's recurrent modules do not compute"
    if isinstance(layer, GRULayer) and not layer.reset_after:
        return "reset_after = false (torch's nn.GRU has only the reset-after form)"
    return None


def _layer_norm(layer: LayerNormLayer) -> str | None:
    if layer.center != layer.scale or getattr(layer, "rms_scaling", False):
        return "center != scale or rms_scaling (nn.LayerNorm's elementwise_affine sets both)"
    return None


def _attention(layer: MultiHeadAttentionLayer) -> str | None:
    if layer.value_dim not in (None, layer.key_dim):
        return "value_dim != key_dim (nn.MultiheadAttention has one head size)"
    return None


# Spec layer type -> why the stock builders cannot build it (None: they can). Both builders
# (torch_models.TORCH_STOCK, keras_models.KERAS_STOCK) have an entry for every key here.
STOCK_CHECKS: dict[type[LayerBase], Callable[[Any], str | None]] = {
    DenseLayer: _dense,
    ActivationLayer: _activation,
    DropoutLayer: lambda layer: None,
    FlattenLayer: lambda layer: None,
    Conv2DLayer: _conv2d,
    MaxPool2DLayer: _pool2d,
    AddLayer: lambda layer: None,
    LayerNormLayer: _layer_norm,
    EmbeddingLayer: lambda layer: None,
    PositionalEmbeddingLayer: lambda layer: None,
    MultiHeadAttentionLayer: _attention,
    SimpleRNNLayer: _rnn,
    LSTMLayer: _rnn,
    GRULayer: _rnn,
    GlobalAvgPool1DLayer: lambda layer: None,
}


def stock_problem(spec: Spec) -> str | None:
    """Why the stock builders cannot build ``spec``'s model (``None`` if they can).

    Example:
        >>> from duofit.common.loader import load_spec
        >>> stock_problem(load_spec("examples/resnet_digits.toml")) is None
        True
    """
    types = sorted(get_args(cls.model_fields["type"].annotation)[0] for cls in STOCK_CHECKS)
    for i, layer in enumerate(spec.model.layers):
        check = STOCK_CHECKS.get(type(layer))
        why = f"the baselines' stock layers are {', '.join(types)}" if check is None else check(layer)
        if why is not None:
            return f"model.layers[{i}] (type {layer.type!r}): {why}"
    return None


@dataclass(frozen=True)
class StockGraph:
    """A model as the stock builders read it.

    Attributes:
        layers: The spec's layers, in order.
        sources: The layers each one reads (``-1`` = the model input).
        shapes: ``(input shapes, output shape)`` per layer, channels-last as the data holds them.
        input_shape: One sample's shape.
        tokens: Whether the input holds integer token ids.
        pad_mask: Whether id 0 is padding (an ``embedding`` with ``mask_zero``): attention
            ignores those keys and the average pooling leaves those steps out.
    """

    layers: tuple[Any, ...]
    sources: tuple[tuple[int, ...], ...]
    shapes: tuple[tuple[list[Shape], Shape], ...]
    input_shape: Shape
    tokens: bool
    pad_mask: bool


def stock_graph(spec: Spec, input_shape: Shape, tokens: bool) -> StockGraph:
    """Trace ``spec``'s layer graph on ``input_shape`` (call :func:`stock_problem` first)."""
    layers = tuple(spec.model.layers)
    traced = trace_shapes(layers, input_shape)
    shapes = tuple(([s or input_shape for s in ins], out or input_shape) for ins, out in traced)
    return StockGraph(
        layers=layers,
        sources=tuple(layer_sources(layers)),
        shapes=shapes,
        input_shape=tuple(input_shape),
        tokens=tokens,
        pad_mask=any(isinstance(layer, EmbeddingLayer) and layer.mask_zero for layer in layers),
    )
