"""The discriminated union of every layer spec: :data:`LayerSpec` and :data:`LAYER_TYPES`.

Layer classes live in :mod:`.layers` and in family modules (``layers_<family>.py``); this
module only joins them, so a family module can build on :class:`~.layers.LayerBase` without
an import cycle. Adding a layer type: its class, one member here, one entry per backend table.

Example:
    >>> [cls.__name__ for cls in LAYER_TYPES][:2]
    ['DenseLayer', 'ActivationLayer']
"""

from __future__ import annotations

from typing import Annotated, Union, get_args

from pydantic import Field

from duofit.common.spec.layers import (
    ActivationLayer,
    AddLayer,
    AvgPool2DLayer,
    BatchNormLayer,
    ConcatenateLayer,
    Conv2DLayer,
    DenseLayer,
    DropoutLayer,
    FlattenLayer,
    GlobalAvgPool2DLayer,
    LayerBase,
    MaxPool2DLayer,
    ReshapeLayer,
)
from duofit.common.spec.layers_attention import MultiHeadAttentionLayer
from duofit.common.spec.layers_conv1d import (
    AvgPool1DLayer,
    Conv1DLayer,
    GlobalAvgPool1DLayer,
    GlobalMaxPool1DLayer,
    LayerNormLayer,
    MaxPool1DLayer,
)
from duofit.common.spec.layers_embedding import EmbeddingLayer, PositionalEmbeddingLayer
from duofit.common.spec.layers_rnn import BidirectionalLayer, GRULayer, LSTMLayer, SimpleRNNLayer

__all__ = ["LAYER_TYPES", "LayerSpec"]

LayerSpec = Annotated[
    Union[
        DenseLayer,
        ActivationLayer,
        DropoutLayer,
        BatchNormLayer,
        FlattenLayer,
        Conv2DLayer,
        MaxPool2DLayer,
        AvgPool2DLayer,
        GlobalAvgPool2DLayer,
        AddLayer,
        ConcatenateLayer,
        ReshapeLayer,
        Conv1DLayer,
        MaxPool1DLayer,
        AvgPool1DLayer,
        GlobalAvgPool1DLayer,
        GlobalMaxPool1DLayer,
        LayerNormLayer,
        EmbeddingLayer,
        PositionalEmbeddingLayer,
        SimpleRNNLayer,
        LSTMLayer,
        GRULayer,
        BidirectionalLayer,
        # recurrent layers (layers_rnn)
        # attention (layers_attention)
        MultiHeadAttentionLayer,
    ],
    Field(discriminator="type"),
]
# Every layer class, in the union's order (the registry backends and checks iterate).
LAYER_TYPES: tuple[type[LayerBase], ...] = get_args(get_args(LayerSpec)[0])
