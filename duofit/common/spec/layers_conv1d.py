"""1-D convolution and pooling over sequences ``[steps, channels]``, and layer normalization.

A sequence is channels-last, as Keras keeps it: ``(steps, features)`` per sample. The torch
backend transposes to torch's ``(N, C, L)`` inside the convolution and pooling modules only,
so every other layer sees the same ``(N, steps, features)`` tensor on every backend.

``padding = "same"`` is TensorFlow's rule, as for the 2-D layers: output length
ceil(steps / stride), the odd padded step at the end; a padded step never wins a max, and
an average is over the window's real steps only.

``layer_norm`` normalizes the last axis: ``(x - mean) / sqrt(var + epsilon) * gamma + beta``
with the biased variance on both frameworks. Its default ``epsilon`` is torch's 1e-5 (the
spec's ``batch_norm`` follows torch too); Keras' own default is 1e-3, a frequent cause of
"same model, different outputs" (cause ``layernorm_epsilon``): the spec value is passed
explicitly to both.

Example:
    >>> Conv1DLayer(type="conv1d", filters=4, kernel_size=3).padding
    'valid'
    >>> LayerNormLayer(type="layer_norm").epsilon
    1e-05
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from duofit.common.spec.base import NonNegFloat, PositiveFloat
from duofit.common.spec.layers import InitSpec, LayerBase, _coerce_init
from duofit.common.spec.vocab import ActivationName

__all__ = [
    "AvgPool1DLayer",
    "Conv1DLayer",
    "GlobalAvgPool1DLayer",
    "GlobalMaxPool1DLayer",
    "LayerNormLayer",
    "MaxPool1DLayer",
]

# Largest kernel, stride or pool window along the steps (as the 2-D layers' per-axis cap).
_MAX_WINDOW = 4096
Window = Annotated[int, Field(gt=0, le=_MAX_WINDOW)]


class Conv1DLayer(LayerBase):
    """1-D convolution (cross-correlation) over the steps of a ``[steps, channels]`` sequence.

    Kernel ``[kernel_size, in_channels, filters]`` (Keras' layout; torch's is
    ``[filters, in_channels, kernel_size]``). Initializers as for ``conv2d``: fans are
    ``kernel_size * in_channels`` and ``kernel_size * filters``.
    """

    type: Literal["conv1d"]
    filters: Annotated[int, Field(gt=0, le=65536)]
    kernel_size: Window
    strides: Window = 1
    padding: Literal["valid", "same"] = "valid"
    activation: ActivationName | None = None
    use_bias: bool = True
    kernel_init: InitSpec = InitSpec(name="glorot_uniform")
    bias_init: InitSpec = InitSpec(name="zeros")
    l1: NonNegFloat = 0.0
    l2: NonNegFloat = 0.0

    @field_validator("kernel_init", "bias_init", mode="before")
    @classmethod
    def _init_from_string(cls, value: Any) -> Any:
        return _coerce_init(value)


class MaxPool1DLayer(LayerBase):
    """Max pooling over steps (``strides`` default to ``pool_size``; ``padding`` as for ``conv1d``)."""

    type: Literal["max_pool1d"]
    pool_size: Window = 2
    strides: Window | None = None
    padding: Literal["valid", "same"] = "valid"


class AvgPool1DLayer(MaxPool1DLayer):
    """Average pooling over steps; a "same" window averages its real steps only."""

    type: Literal["avg_pool1d"]  # type: ignore[assignment]


class GlobalAvgPool1DLayer(LayerBase):
    """Mean over the steps: ``[steps, c] -> [c]``.

    After an ``embedding`` with ``mask_zero`` (and layers that keep its mask) the mean is
    over the unmasked steps only, as Keras' ``GlobalAveragePooling1D`` does with a mask.
    """

    type: Literal["global_avg_pool1d"]


class GlobalMaxPool1DLayer(LayerBase):
    """Max over the steps: ``[steps, c] -> [c]``; padded steps count (Keras ignores masks here)."""

    type: Literal["global_max_pool1d"]


class LayerNormLayer(LayerBase):
    """Layer normalization over the last axis (features or channels).

    ``scale`` learns ``gamma`` (torch's ``weight``), ``center`` learns ``beta`` (torch's
    ``bias``); both start at ones / zeros, as on both frameworks.
    """

    type: Literal["layer_norm"]
    # torch's default (nn.LayerNorm eps=1e-5); Keras' LayerNormalization defaults to 1e-3
    epsilon: PositiveFloat = 1e-5
    center: bool = True
    scale: bool = True
