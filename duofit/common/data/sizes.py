"""Refuse a model, an activation or a batch order too large to allocate, before anything is built.

The caps come in as arguments (the module constants of :mod:`duofit.common.data`).

Example:
    Not run as a doctest: it needs a loaded ``spec`` (see :func:`duofit.common.data.prepare`,
    whose example exercises it).

    >>> check_sizes(spec, 4, 120, 30, max_parameters=10**8, max_activation=5 * 10**8,
    ...             max_order=10**8)  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

from duofit.common.errors import DataError
from duofit.common.spec import BatchNormLayer, Conv2DLayer, DenseLayer, Spec
from duofit.common.spec.shapes import infer_shapes

__all__ = ["check_sizes"]


def check_sizes(
    spec: Spec,
    n_features: int,
    n_train: int,
    n_eval: int,
    *,
    max_parameters: int,
    max_activation: int,
    max_order: int,
) -> None:
    """Check the parameter count, every layer's largest output and the batch order against their caps.

    Args:
        spec: A validated spec.
        n_features: Input features per sample (flat).
        n_train: Training samples.
        n_eval: Samples of the largest evaluation pass (validation or test part).
        max_parameters: Cap on weights + biases.
        max_activation: Cap on one layer's output for ``max(batch_size, n_eval)`` samples.
        max_order: Cap on epochs x training samples.

    Raises:
        DataError: naming the layer (or ``train.epochs``) that goes over.
    """
    image = tuple(spec.data.image_shape) if spec.data.image_shape else None
    shapes = infer_shapes(spec.model.layers, image)
    current: tuple[int, ...] = image or (n_features,)
    total = 0
    for i, layer in enumerate(spec.model.layers):
        if isinstance(layer, DenseLayer):
            total += int(np.prod(current)) * layer.units + (layer.units if layer.use_bias else 0)
        elif isinstance(layer, Conv2DLayer):
            kh, kw = layer.kernel_size
            total += kh * kw * current[-1] * layer.filters + (layer.filters if layer.use_bias else 0)
        elif isinstance(layer, BatchNormLayer):
            total += 4 * current[-1]  # gamma, beta, running mean, running variance
        shape = shapes[i]
        if shape is not None:
            current = shape
        elif isinstance(layer, DenseLayer):
            current = (layer.units,)
        _check_activation(i, current, max(min(spec.train.batch_size, n_train), n_eval), max_activation)
        if total > max_parameters:
            where = f"model.layers[{i}].units" if isinstance(layer, DenseLayer) else f"model.layers[{i}]"
            raise DataError(
                f"{where}: the model reaches {total:,} parameters here ({n_features} input features); "
                f"the cap is {max_parameters:,} (duofit.common.data.MAX_PARAMETERS); use fewer units",
                path=where,
            )
    epochs = spec.train.epochs
    if epochs * n_train > max_order:
        raise DataError(
            f"train.epochs: {epochs:,} epochs x {n_train:,} training samples = {epochs * n_train:,} batch-order "
            f"entries; the cap is {max_order:,} (duofit.common.data.MAX_ORDER_ELEMENTS); "
            "use fewer epochs",
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
