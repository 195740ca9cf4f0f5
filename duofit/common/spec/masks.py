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

__all__ = ["MASK_RULES", "attention_mask_flow", "mask_flow"]


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


def attention_mask_flow(layers: Sequence[LayerBase]) -> list[bool]:
    """Whether each ``multi_head_attention`` layer masks padding when Keras *runs* the model.

    Keras passes masks two ways. A layer whose ``call`` takes ``mask`` (the pooling and
    recurrent layers) gets the mask recorded when the functional model was built: the flow of
    :func:`mask_flow`. ``MultiHeadAttention.call`` instead reads the mask attached to its query
    tensor at run time, and then deletes the masks of its inputs
    (``keras/src/layers/attention/multi_head_attention.py``: ``backend.set_keras_mask(query, None)``).
    A residual ``add`` of an attention layer's input and output then sees one input without a
    mask and returns none (``keras/src/layers/merging/base_merge.py`` ``compute_mask``: any
    ``None`` gives ``None``), so every attention layer after the first residual block attends to
    the padding steps, while the final pooling still leaves them out. The torch backend masks
    attention exactly where this returns ``True`` (cause ``keras_attention_mask_dropped``).

    Layers run in spec order (a topological order of the graph, the order Keras builds them in).

    Raises:
        FieldProblem: a cross-attention layer whose query and value differ in carrying the mask at
            run time (path ``model.layers[i].inputs``).

    Example:
        >>> from duofit.common.spec.layers import AddLayer
        >>> emb = EmbeddingLayer(type="embedding", input_dim=9, output_dim=4, mask_zero=True, name="e")
        >>> def att(name):
        ...     return MultiHeadAttentionLayer(type="multi_head_attention", num_heads=1, key_dim=4, name=name)
        >>> attention_mask_flow([emb, att("a1"), AddLayer(type="add", inputs=["e", "a1"]), att("a2")])
        [False, True, False, False]
    """
    outs: list[bool] = []  # the mask each output carries at run time, before any deletion
    stripped: set[int] = set()  # outputs whose mask an attention layer has deleted
    seen: list[bool] = []
    for i, (layer, src) in enumerate(zip(layers, layer_sources(layers), strict=True)):
        ins = [False if j < 0 else outs[j] and j not in stripped for j in src]
        if isinstance(layer, MultiHeadAttentionLayer):
            if ins[0] != ins[-1]:
                raise FieldProblem(
                    f"model.layers[{i}].inputs",
                    "when Keras runs the model, the padding mask reaches only one of query and value here (an "
                    "earlier attention layer deleted the other's), which the torch backend cannot reproduce: read "
                    "query and value from tensors no earlier attention layer read, or set mask_zero = false",
                )
            seen.append(ins[0])
            stripped.update(j for j in src if j >= 0)
            outs.append(ins[0])  # the output carries the query's mask
            continue
        seen.append(False)
        rule = MASK_RULES.get(type(layer))
        outs.append(rule(layer, ins) if rule is not None else False)
    return seen
