"""Refuse a model that does not fit the data's shape, or one too large to allocate, before anything is built.

The layers' shapes are traced again with the data's real sample shape: the spec alone does
not know the width of flat data or npz sequences, so some shape errors (an ``add`` of a dense
output and the model input, a recurrent layer on flat data) only show here; ``validate``,
``run``, ``cv`` and the scikit-learn estimators all meet them at the same point, with the
spec-time check's path and message. The caps come in as arguments (the module constants of
:mod:`duofit.common.data`).

Example:
    Not run as a doctest: it needs a loaded ``spec`` (see :func:`duofit.common.data.prepare`,
    whose example exercises it).

    >>> check_sizes(spec, (4,), 120, 30, max_parameters=10**8, max_activation=5 * 10**8)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from duofit.common.errors import DataError
from duofit.common.spec import BatchNormLayer, Conv2DLayer, DenseLayer, FieldProblem, Spec
from duofit.common.spec.layers_attention import MultiHeadAttentionLayer, attention_parameters
from duofit.common.spec.layers_conv1d import Conv1DLayer, LayerNormLayer
from duofit.common.spec.layers_embedding import EmbeddingLayer, PositionalEmbeddingLayer
from duofit.common.spec.layers_rnn import RECURRENT_LAYERS, BidirectionalLayer, rnn_parameters
from duofit.common.spec.shapes import trace_shapes

__all__ = ["PARAMETER_COUNTS", "check_sizes", "traced_with_data"]

Shape = tuple[int, ...]


def _dense(layer: DenseLayer, shape: Shape) -> int:
    return shape[-1] * layer.units + (layer.units if layer.use_bias else 0)


def _conv2d(layer: Conv2DLayer, shape: Shape) -> int:
    kh, kw = layer.kernel_size
    return kh * kw * shape[-1] * layer.filters + (layer.filters if layer.use_bias else 0)


def _conv1d(layer: Conv1DLayer, shape: Shape) -> int:
    return layer.kernel_size * shape[-1] * layer.filters + (layer.filters if layer.use_bias else 0)


# Layer type -> its number of weights (trainable or not) given its input shape; no entry: none.
PARAMETER_COUNTS: dict[type, Callable[[Any, Shape], int]] = {
    DenseLayer: _dense,
    Conv2DLayer: _conv2d,
    BatchNormLayer: lambda layer, shape: 4 * shape[-1],  # gamma, beta, running mean, running variance
    Conv1DLayer: _conv1d,
    LayerNormLayer: lambda layer, shape: (int(layer.scale) + int(layer.center)) * shape[-1],
    EmbeddingLayer: lambda layer, shape: layer.input_dim * layer.output_dim,
    PositionalEmbeddingLayer: lambda layer, shape: layer.max_len * shape[-1],
    **dict.fromkeys((*RECURRENT_LAYERS, BidirectionalLayer), lambda layer, shape: rnn_parameters(layer, shape[-1])),
    MultiHeadAttentionLayer: lambda layer, shape: attention_parameters(layer, shape[-1]),
}


def traced_with_data(spec: Spec, input_shape: Shape) -> list[tuple[list[Shape | None], Shape | None]]:
    """The layers' ``(input shapes, output shape)`` for one sample of the data's shape.

    Args:
        spec: A validated spec.
        input_shape: One sample's shape as the data hold it (``Dataset.input_shape``).

    Raises:
        DataError: the layers do not fit the data, with the spec-time check's path
            (``model.layers[i]...``) and message, and the data's shape.
    """
    try:
        return trace_shapes(spec.model.layers, input_shape)
    except FieldProblem as exc:  # a width known only now, with the data (initial_weights says the same)
        raise DataError(f"{exc.path}: {exc} (data: {list(input_shape)} per sample)", path=exc.path) from None


def check_sizes(
    spec: Spec,
    input_shape: Shape,
    n_train: int,
    n_eval: int,
    *,
    max_parameters: int,
    max_activation: int,
    max_order: int | None = None,
) -> None:
    """Check the parameter count, every layer's largest output and the batch order against their caps.

    Args:
        spec: A validated spec.
        input_shape: One sample's shape as the data hold it.
        n_train: Training samples.
        n_eval: Samples of the largest evaluation pass (validation or test part).
        max_parameters: Cap on weights + biases.
        max_activation: Cap on one layer's output for ``max(batch_size, n_eval)`` samples.
        max_order: Cap on epochs x training samples, for a materialised batch order (an exported
            script's bundle); ``None`` (training: one epoch's order at a time) checks none.

    Raises:
        DataError: naming the layer (or ``train.epochs``) that goes over, or a layer that does
            not fit the data's shape (:func:`traced_with_data`).
    """
    traced = traced_with_data(spec, input_shape)
    n_features = int(np.prod(input_shape))
    current: Shape = input_shape
    total = 0
    for i, (layer, (ins, out)) in enumerate(zip(spec.model.layers, traced, strict=True)):
        count = PARAMETER_COUNTS.get(type(layer))
        if count is not None:
            total += count(layer, ins[0] or current)
        current = out or current  # every shape is known with the data's
        _check_activation(i, current, max(min(spec.train.batch_size, n_train), n_eval), max_activation)
        if total > max_parameters:
            where = f"model.layers[{i}].units" if isinstance(layer, DenseLayer) else f"model.layers[{i}]"
            raise DataError(
                f"{where}: the model reaches {total:,} parameters here ({n_features} input features); "
                f"the cap is {max_parameters:,} (duofit.common.data.MAX_PARAMETERS); use fewer units",
                path=where,
            )
    epochs = spec.train.epochs
    if max_order is not None and epochs * n_train > max_order:
        raise DataError(
            f"train.epochs: {epochs:,} epochs x {n_train:,} training samples = {epochs * n_train:,} batch-order "
            f"entries; the cap is {max_order:,} (duofit.common.data.MAX_ORDER_ELEMENTS); "
            "use fewer epochs for an exported script (duofit run has no such cap)",
            path="train.epochs",
        )


def _check_activation(i: int, shape: tuple[int, ...], rows: int, cap: int) -> None:
    size = rows * int(np.prod(shape))
    if size > cap:
        raise DataError(
            f"model.layers[{i}]: its output holds {size:,} values for one forward pass of {rows:,} samples "
            f"(shape {list(shape)} per sample; evaluation runs the whole validation/test split at once); the cap "
            f"is {cap:,} (duofit.common.data.MAX_ACTIVATION_ELEMENTS): use fewer "
            "filters or units, a smaller image, a smaller train.batch_size or fewer samples",
            path=f"model.layers[{i}]",
        )
