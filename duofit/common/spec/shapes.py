"""Shape inference through the layer stack (channels-last), with errors that name the layer.

Example:
    >>> from duofit.common.spec.layers import Conv2DLayer, FlattenLayer, DenseLayer
    >>> layers = [Conv2DLayer(type="conv2d", filters=4, kernel_size=3), FlattenLayer(type="flatten"),
    ...           DenseLayer(type="dense", units=2)]
    >>> infer_shapes(layers, (8, 8, 1))
    [(6, 6, 4), (144,), (2,)]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from duofit.common.spec.base import FieldProblem
from duofit.common.spec.layers import (
    AvgPool2DLayer,
    Conv2DLayer,
    DenseLayer,
    FlattenLayer,
    GlobalAvgPool2DLayer,
    LayerBase,
    MaxPool2DLayer,
)

__all__ = ["conv_output", "infer_shapes", "model_input_shape", "same_padding", "same_pool_geometry"]

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


def infer_shapes(layers: Sequence[LayerBase], image_shape: Shape | None) -> list[Shape | None]:
    """Shape after each layer; ``None`` entries mean "flat, width known only from the data".

    Raises:
        FieldProblem: a conv/pool layer on flat input, a dense layer on an image, or an
            image that shrinks to nothing (path ``model.layers[i]...``).
    """
    shape: Shape | None = image_shape
    out: list[Shape | None] = []
    for i, layer in enumerate(layers):
        where = f"model.layers[{i}]"
        spatial = shape is not None and len(shape) == 3
        if isinstance(layer, (Conv2DLayer, MaxPool2DLayer, AvgPool2DLayer, GlobalAvgPool2DLayer)) and not spatial:
            raise FieldProblem(
                f"{where}.type",
                f"{layer.type} needs image input [height, width, channels]: set data.image_shape "
                "(e.g. [8, 8, 1] for digits) and keep conv/pool layers before any flatten",
            )
        if isinstance(layer, Conv2DLayer):
            assert shape is not None
            h, w = (
                conv_output(n, k, s, d, layer.padding)
                for n, k, s, d in zip(shape[:2], layer.kernel_size, layer.strides, layer.dilation, strict=True)
            )
            shape = (h, w, layer.filters)
        elif isinstance(layer, MaxPool2DLayer):  # AvgPool2DLayer is a subclass
            assert shape is not None
            strides = layer.strides or layer.pool_size
            h, w = (
                conv_output(n, k, s, 1, layer.padding)
                for n, k, s in zip(shape[:2], layer.pool_size, strides, strict=True)
            )
            shape = (h, w, shape[2])
        elif isinstance(layer, GlobalAvgPool2DLayer):
            assert shape is not None
            shape = (shape[2],)
        elif isinstance(layer, FlattenLayer):
            shape = (math.prod(shape),) if shape is not None else None
        elif isinstance(layer, DenseLayer):
            if spatial:
                raise FieldProblem(
                    f"{where}.type", "dense on an image: add a 'flatten' or 'global_avg_pool2d' layer before it"
                )
            shape = (layer.units,)
        if shape is not None and min(shape) <= 0:
            raise FieldProblem(f"{where}", f"the image shrinks to {list(shape)}: use smaller kernels/strides or 'same'")
        out.append(shape)
    return out


def model_input_shape(image_shape: Sequence[int] | None, weights: Mapping[str, object]) -> Shape:
    """Input shape of a model: the spec's image shape, else the first dense kernel's rows."""
    if image_shape:
        return tuple(int(n) for n in image_shape)
    first = next(k for k in sorted(weights, key=lambda k: int(k.split(".")[1])) if k.endswith(".kernel"))
    return (int(weights[first].shape[0]),)  # type: ignore[attr-defined]
