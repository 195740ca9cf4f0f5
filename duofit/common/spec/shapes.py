"""Shape inference through the layer graph (channels-last), with errors that name the layer.

A shape is one sample's: ``(features,)``, or ``(height, width, channels)`` for an image.
``None`` stands for "flat, width known only from the data" (the spec alone does not know
the number of features); checks that need the width run again once the data is there.
Each layer type that changes the shape has one rule in :data:`SHAPE_RULES`; the others
keep their input's shape.

Example:
    >>> from duofit.common.spec.layers import Conv2DLayer, FlattenLayer, DenseLayer
    >>> layers = [Conv2DLayer(type="conv2d", filters=4, kernel_size=3), FlattenLayer(type="flatten"),
    ...           DenseLayer(type="dense", units=2)]
    >>> infer_shapes(layers, (8, 8, 1))
    [(6, 6, 4), (144,), (2,)]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from duofit.common.spec.base import FieldProblem
from duofit.common.spec.layers import (
    AddLayer,
    AvgPool2DLayer,
    BatchNormLayer,
    ConcatenateLayer,
    Conv2DLayer,
    DenseLayer,
    FlattenLayer,
    GlobalAvgPool2DLayer,
    LayerBase,
    MaxPool2DLayer,
    ReshapeLayer,
)
from duofit.common.spec.layers_attention import MultiHeadAttentionLayer, attention_output_shape
from duofit.common.spec.layers_conv1d import (
    AvgPool1DLayer,
    Conv1DLayer,
    GlobalAvgPool1DLayer,
    GlobalMaxPool1DLayer,
    MaxPool1DLayer,
)
from duofit.common.spec.layers_embedding import EmbeddingLayer, PositionalEmbeddingLayer
from duofit.common.spec.layers_rnn import RECURRENT_LAYERS, BidirectionalLayer, rnn_output_shape
from duofit.common.spec.masks import mask_flow
from duofit.common.spec.model import layer_sources

__all__ = [
    "SHAPE_RULES",
    "TOKEN_LAYERS",
    "conv_output",
    "infer_shapes",
    "model_input_shape",
    "same_padding",
    "same_pool_geometry",
    "trace_shapes",
]

Shape = tuple[int, ...]


def conv_output(size: int, kernel: int, stride: int, dilation: int, padding: str) -> int:
    """Output length along one axis (TensorFlow's rules for "valid" and "same")."""
    if padding == "same":
        return math.ceil(size / stride)
    return (size - dilation * (kernel - 1) - 1) // stride + 1


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's "same" padding (before, after): the odd pixel goes after.

    Example:
        >>> same_padding(8, 4, 1, 1), same_padding(7, 3, 2, 1)
        ((1, 2), (1, 1))
    """
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def same_pool_geometry(
    hw: Sequence[int], size: Sequence[int], strides: Sequence[int]
) -> tuple[list[tuple[int, int]], np.ndarray]:
    """TensorFlow's "same" pooling of an ``hw`` image: padding and real cells per window.

    Returns:
        The (before, after) padding of each spatial axis, and the number of real (not
        padded) cells in each output window, shape ``(out_h, out_w)``: the divisor of a
        "same" average.

    Example:
        >>> pads, counts = same_pool_geometry((8, 8), (3, 3), (2, 2))
        >>> pads, counts[0].tolist(), counts[-1, -1].item()
        ([(0, 1), (0, 1)], [9.0, 9.0, 9.0, 6.0], 4.0)
    """
    pads = [same_padding(n, k, s, 1) for n, k, s in zip(hw, size, strides, strict=True)]
    real = np.pad(np.ones(tuple(hw)), pads)
    windows = np.lib.stride_tricks.sliding_window_view(real, tuple(size))[:: strides[0], :: strides[1]]
    return pads, windows.sum(axis=(-2, -1))


MaybeShape = Shape | None
# A shape rule: (layer, its input shapes, path of the layer) -> output shape.
ShapeRule = Callable[[Any, list[MaybeShape], str], MaybeShape]


def _is_image(shape: MaybeShape) -> bool:
    return shape is not None and len(shape) == 3


def _needs_image(layer: LayerBase, shape: MaybeShape, where: str) -> Shape:
    if shape is None or not _is_image(shape):
        raise FieldProblem(
            f"{where}.type",
            f"{layer.type} needs image input [height, width, channels]: set data.image_shape "
            "(e.g. [8, 8, 1] for digits) or add a 'reshape' layer, and keep conv/pool layers before any flatten",
        )
    return shape


def _conv(layer: Conv2DLayer, ins: list[MaybeShape], where: str) -> MaybeShape:
    shape = _needs_image(layer, ins[0], where)
    h, w = (
        conv_output(n, k, s, d, layer.padding)
        for n, k, s, d in zip(shape[:2], layer.kernel_size, layer.strides, layer.dilation, strict=True)
    )
    return (h, w, layer.filters)


def _pool(layer: MaxPool2DLayer, ins: list[MaybeShape], where: str) -> MaybeShape:
    shape = _needs_image(layer, ins[0], where)
    strides = layer.strides or layer.pool_size
    h, w = (conv_output(n, k, s, 1, layer.padding) for n, k, s in zip(shape[:2], layer.pool_size, strides, strict=True))
    return (h, w, shape[2])


def _needs_sequence(layer: LayerBase, shape: MaybeShape, where: str) -> Shape:
    if shape is None or len(shape) != 2:
        got = "flat features of a width known only from the data" if shape is None else f"shape {list(shape)}"
        raise FieldProblem(
            f"{where}.type",
            f"{layer.type} needs sequence input [steps, channels], got {got}: set data.sequence_shape "
            "(e.g. [8, 8] for digits as rows), use series windows or an embedding, or add a 'reshape' layer "
            "with a two-entry target_shape",
        )
    return shape


def _conv1d(layer: Conv1DLayer, ins: list[MaybeShape], where: str) -> MaybeShape:
    if ins[0] is None:
        return None  # a shape only the data tells (e.g. npz sequences); checked again with the data
    steps, _ = _needs_sequence(layer, ins[0], where)
    return (conv_output(steps, layer.kernel_size, layer.strides, 1, layer.padding), layer.filters)


def _pool1d(layer: MaxPool1DLayer, ins: list[MaybeShape], where: str) -> MaybeShape:
    if ins[0] is None:
        return None
    steps, channels = _needs_sequence(layer, ins[0], where)
    return (conv_output(steps, layer.pool_size, layer.strides or layer.pool_size, 1, layer.padding), channels)


def _global_pool1d(layer: LayerBase, ins: list[MaybeShape], where: str) -> MaybeShape:
    return None if ins[0] is None else (_needs_sequence(layer, ins[0], where)[1],)


def _embedding(layer: EmbeddingLayer, ins: list[MaybeShape], where: str) -> MaybeShape:
    shape = ins[0]
    if shape is not None and len(shape) != 1:
        raise FieldProblem(
            f"{where}.type",
            f"embedding looks up integer token ids of shape [steps], got {list(shape)}: the data must be token "
            "ids (data.kind = 'csv_text', or an npz file whose x holds integers of shape (samples, steps))",
        )
    return None if shape is None else (shape[0], layer.output_dim)


def _positional(layer: PositionalEmbeddingLayer, ins: list[MaybeShape], where: str) -> MaybeShape:
    if ins[0] is None:
        return None
    steps, features = _needs_sequence(layer, ins[0], where)
    if steps > layer.max_len:
        raise FieldProblem(
            f"{where}.max_len",
            f"the sequence has {steps} steps but the table covers max_len = {layer.max_len}: set max_len >= {steps}",
        )
    return (steps, features)


def _dense(layer: DenseLayer, ins: list[MaybeShape], where: str) -> MaybeShape:
    if _is_image(ins[0]):
        raise FieldProblem(f"{where}.type", "dense on an image: add a 'flatten' or 'global_avg_pool2d' layer before it")
    return (layer.units,) if ins[0] is None else (*ins[0][:-1], layer.units)


def _names(layer: LayerBase) -> list[str]:
    return list(layer.inputs or [])


def _add(layer: AddLayer, ins: list[MaybeShape], where: str) -> MaybeShape:
    known = [(name, shape) for name, shape in zip(_names(layer), ins, strict=True) if shape is not None]
    for name, shape in known[1:]:
        if shape != known[0][1]:
            raise FieldProblem(
                f"{where}.inputs",
                f"add needs inputs of one shape; {known[0][0]!r} gives {list(known[0][1])} and {name!r} gives "
                f"{list(shape)}: make the sizes equal (e.g. a dense projection of the skip path)",
            )
    return known[0][1] if known else None


def _concatenate(layer: ConcatenateLayer, ins: list[MaybeShape], where: str) -> MaybeShape:
    ranks = {1 if shape is None else len(shape) for shape in ins}
    rank = max(ranks)
    axis = layer.axis - 1 if layer.axis > 0 else layer.axis + rank  # the axis of one sample
    if len(ranks) > 1 or not 0 <= axis < rank:
        shown = ", ".join(f"{n!r} {list(s) if s else '[features]'}" for n, s in zip(_names(layer), ins, strict=True))
        raise FieldProblem(
            f"{where}.axis" if len(ranks) == 1 else f"{where}.inputs",
            f"concatenate on axis {layer.axis} of {shown}: the inputs need one rank and the axis must be -1 or "
            f"1..{rank} (the batch is axis 0)",
        )
    if any(shape is None for shape in ins):
        return None  # flat inputs of a width only the data knows
    known = [s for s in ins if s is not None]
    first = known[0]
    for name, shape in zip(_names(layer), known, strict=True):
        if shape[:axis] + shape[axis + 1 :] != first[:axis] + first[axis + 1 :]:
            raise FieldProblem(
                f"{where}.inputs",
                f"concatenate on axis {layer.axis} needs equal sizes on every other axis; {_names(layer)[0]!r} "
                f"gives {list(first)} and {name!r} gives {list(shape)}",
            )
    return (*first[:axis], sum(s[axis] for s in known), *first[axis + 1 :])


def _reshape(layer: ReshapeLayer, ins: list[MaybeShape], where: str) -> MaybeShape:
    target = tuple(layer.target_shape)
    if ins[0] is not None and math.prod(ins[0]) != math.prod(target):
        raise FieldProblem(
            f"{where}.target_shape",
            f"cannot reshape {list(ins[0])} ({math.prod(ins[0])} values) to {list(target)} "
            f"({math.prod(target)} values): the sizes must multiply to {math.prod(ins[0])}",
        )
    return target


SHAPE_RULES: dict[type, ShapeRule] = {
    DenseLayer: _dense,
    Conv2DLayer: _conv,
    MaxPool2DLayer: _pool,
    AvgPool2DLayer: _pool,
    GlobalAvgPool2DLayer: lambda layer, ins, where: (_needs_image(layer, ins[0], where)[2],),
    FlattenLayer: lambda layer, ins, where: (math.prod(ins[0]),) if ins[0] is not None else None,
    AddLayer: _add,
    ConcatenateLayer: _concatenate,
    ReshapeLayer: _reshape,
    Conv1DLayer: _conv1d,
    MaxPool1DLayer: _pool1d,
    AvgPool1DLayer: _pool1d,
    GlobalAvgPool1DLayer: lambda layer, ins, where: _global_pool1d(layer, ins, where),
    GlobalMaxPool1DLayer: lambda layer, ins, where: _global_pool1d(layer, ins, where),
    EmbeddingLayer: _embedding,
    PositionalEmbeddingLayer: _positional,
    **dict.fromkeys((*RECURRENT_LAYERS, BidirectionalLayer), rnn_output_shape),
    MultiHeadAttentionLayer: attention_output_shape,
}
# Layers that read integer token ids: only the model input holds them.
TOKEN_LAYERS: tuple[type, ...] = (EmbeddingLayer,)


def trace_shapes(layers: Sequence[LayerBase], input_shape: MaybeShape) -> list[tuple[list[MaybeShape], MaybeShape]]:
    """``(input shapes, output shape)`` of each layer, following the layer graph.

    Args:
        layers: The layer specs, in order (their ``inputs`` make the graph).
        input_shape: One sample's shape, or ``None`` for flat data of a width not known yet.

    Raises:
        FieldProblem: a layer that cannot read its inputs (a conv/pool layer on flat input, a
            dense layer on an image, merge inputs of different shapes, a reshape to another
            size, an image that shrinks to nothing), path ``model.layers[i]...``; or a
            broken graph (see :func:`~duofit.common.spec.model.layer_sources`).

    Example:
        >>> from duofit.common.spec.layers import AddLayer, DenseLayer
        >>> trace_shapes([DenseLayer(type="dense", units=3, name="a"), AddLayer(type="add", inputs=["a", "input"])],
        ...              (3,))
        [([(3,)], (3,)), ([(3,), (3,)], (3,))]
    """
    outs: list[MaybeShape] = []
    traced: list[tuple[list[MaybeShape], MaybeShape]] = []
    for i, (layer, src) in enumerate(zip(layers, layer_sources(layers), strict=True)):
        where = f"model.layers[{i}]"
        if isinstance(layer, TOKEN_LAYERS) and src != (-1,):
            raise FieldProblem(
                f"{where}.inputs",
                f"{layer.type} looks up the model's integer token ids, so it must read the model input: "
                "set inputs = ['input'] (or list it first)",
            )
        ins = [input_shape if j < 0 else outs[j] for j in src]
        rule = SHAPE_RULES.get(type(layer))
        shape = rule(layer, ins, where) if rule is not None else ins[0]
        if shape is not None and min(shape) <= 0:
            raise FieldProblem(f"{where}", f"the image shrinks to {list(shape)}: use smaller kernels/strides or 'same'")
        outs.append(shape)
        traced.append((ins, shape))
    mask_flow(layers)  # a mask that reaches batch_norm or the output is refused here too
    return traced


def infer_shapes(layers: Sequence[LayerBase], input_shape: MaybeShape) -> list[MaybeShape]:
    """Output shape of each layer (see :func:`trace_shapes`); ``None`` = flat, width from the data.

    Raises:
        FieldProblem: as :func:`trace_shapes`.
    """
    return [out for _, out in trace_shapes(layers, input_shape)]


def model_input_shape(
    image_shape: Sequence[int] | None, weights: Mapping[str, object], layers: Sequence[LayerBase] | None = None
) -> Shape:
    """Input shape of a model: the spec's image shape, else read off the weights.

    With ``layers``, a layer that reads the model input tells its width: a ``reshape``
    (its target's size), a dense layer (its kernel's rows) or a batch norm (its ``gamma``).
    Otherwise, and as the fallback, the first dense kernel's rows.

    Example:
        >>> from duofit.common.spec.layers import DenseLayer, ReshapeLayer
        >>> w = {"layers.1.kernel": np.zeros((4, 2))}
        >>> model_input_shape(None, w), model_input_shape((8, 8, 1), w)
        ((4,), (8, 8, 1))
        >>> model_input_shape(None, w, [ReshapeLayer(type="reshape", target_shape=[3, 2]),
        ...                             DenseLayer(type="dense", units=2)])
        (6,)
    """
    if image_shape:
        return tuple(int(n) for n in image_shape)
    for i, (layer, src) in enumerate(zip(layers or [], layer_sources(layers or []), strict=True)):
        if -1 not in src:
            continue
        if isinstance(layer, ReshapeLayer):
            return (math.prod(layer.target_shape),)
        for key in (f"layers.{i}.kernel", f"layers.{i}.gamma"):
            if key in weights and isinstance(layer, (DenseLayer, BatchNormLayer)):
                return (int(weights[key].shape[0]),)  # type: ignore[attr-defined]
    first = next(k for k in sorted(weights, key=lambda k: int(k.split(".")[1])) if k.endswith(".kernel"))
    return (int(weights[first].shape[0]),)  # type: ignore[attr-defined]
