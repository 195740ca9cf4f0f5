"""How a padding mask flows through the layer graph, as Keras propagates it.

An ``embedding`` with ``mask_zero`` makes a mask (``ids != 0``); Keras passes it on through
layers that support masking and drops it elsewhere. The torch backend masks exactly where
Keras does (the masked ``global_avg_pool1d``), following :func:`mask_flow`.

Example:
    >>> from duofit.common.spec.layers_conv1d import GlobalAvgPool1DLayer
    >>> mask_flow([EmbeddingLayer(type="embedding", input_dim=9, output_dim=2, mask_zero=True),
    ...            GlobalAvgPool1DLayer(type="global_avg_pool1d"), DenseLayer(type="dense", units=1)])
    [False, True, False]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from duofit.common.spec.base import FieldProblem
from duofit.common.spec.layers import (
    ActivationLayer,
    AddLayer,
    BatchNormLayer,
    ConcatenateLayer,
    DenseLayer,
    DropoutLayer,
    LayerBase,
)
from duofit.common.spec.layers_attention import MultiHeadAttentionLayer
from duofit.common.spec.layers_conv1d import LayerNormLayer
from duofit.common.spec.layers_embedding import EmbeddingLayer, PositionalEmbeddingLayer
from duofit.common.spec.model import layer_sources

__all__ = ["MASK_RULES", "mask_flow"]


# How a Keras mask (from an ``embedding`` with ``mask_zero``) flows: layer type -> output
# carries a mask, given which inputs carry one. Types not listed drop it, as Keras' Flatten,
# Reshape, Conv1D and the pooling layers do ("does not support masking", keras/src/layers/layer.py).
# Add keeps a mask only if every input has one, Concatenate if any does
# (keras/src/layers/merging/base_merge.py and concatenate.py, compute_mask).
MaskRule = Callable[[Any, list[bool]], bool]
MASK_RULES: dict[type, MaskRule] = {
    EmbeddingLayer: lambda layer, ins: bool(layer.mask_zero),
    PositionalEmbeddingLayer: lambda layer, ins: ins[0],
    DenseLayer: lambda layer, ins: ins[0],
    LayerNormLayer: lambda layer, ins: ins[0],
    ActivationLayer: lambda layer, ins: ins[0],
    DropoutLayer: lambda layer, ins: ins[0],
    AddLayer: lambda layer, ins: all(ins),
    ConcatenateLayer: lambda layer, ins: any(ins),
    # keras/src/layers/attention/multi_head_attention.py compute_mask: the output keeps the query's mask
    MultiHeadAttentionLayer: lambda layer, ins: _attention_mask(ins),
}


def _attention_mask(ins: list[bool]) -> bool:
    """The query's mask; a mask on only one of query and value has no torch twin yet (one shared mask)."""
    if len(ins) == 2 and ins[0] != ins[1]:
        raise FieldProblem(
            "model.layers[type='multi_head_attention'].inputs",
            "the padding mask of an embedding with mask_zero reaches only one of query and value; read both from "
            "the masked sequence, or set mask_zero = false",
        )
    return ins[0]


def mask_flow(layers: Sequence[LayerBase]) -> list[bool]:
    """Whether each layer's *input* carries a padding mask (from an ``embedding`` with ``mask_zero``).

    The torch backend masks exactly where Keras does: ``global_avg_pool1d`` averages the
    unmasked steps of an input that carries a mask.

    Raises:
        FieldProblem: a mask reaching ``batch_norm`` (Keras' masked batch moments have no torch
            twin) or the model output (Keras would re-weight the loss by it).

    Example:
        >>> from duofit.common.spec.layers_conv1d import GlobalAvgPool1DLayer
        >>> mask_flow([EmbeddingLayer(type="embedding", input_dim=9, output_dim=2, mask_zero=True),
        ...            GlobalAvgPool1DLayer(type="global_avg_pool1d"), DenseLayer(type="dense", units=1)])
        [False, True, False]
    """
    outs: list[bool] = []
    seen: list[bool] = []
    for i, (layer, src) in enumerate(zip(layers, layer_sources(layers), strict=True)):
        ins = [False if j < 0 else outs[j] for j in src]
        seen.append(ins[0])
        if any(ins) and isinstance(layer, BatchNormLayer):
            raise FieldProblem(
                f"model.layers[{i}].type",
                "the padding mask of an embedding with mask_zero reaches batch_norm, whose masked statistics "
                "torch cannot reproduce: pool first (global_avg_pool1d) or use layer_norm",
            )
        rule = MASK_RULES.get(type(layer))
        outs.append(rule(layer, ins) if rule is not None else False)
    if outs and outs[-1]:
        raise FieldProblem(
            f"model.layers[{len(layers) - 1}]",
            "the model output still carries the padding mask of an embedding with mask_zero, which Keras would "
            "use to re-weight the loss: pool over the steps first (global_avg_pool1d) or set mask_zero = false",
        )
    return seen
