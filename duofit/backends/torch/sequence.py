"""torch modules for sequences ``(N, steps, features)``: 1-D conv/pooling, layer norm, embeddings.

Sequences stay channels-last ``(N, L, C)`` between layers, as in Keras; only the convolution
and pooling modules transpose to torch's ``(N, C, L)`` and back, so a dense or layer_norm
layer after them sees the same tensor on every backend.

Translations:
- conv1d kernel ``[k, in, out]`` (Keras) <-> ``nn.Conv1d.weight`` ``[out, in, k]`` (cause
  ``conv1d_layout``); "same" is TensorFlow's padding (odd step at the end), padded explicitly.
- "same" pooling: -inf padding for max, the sum divided by the real steps for average
  (TensorFlow's rule; torch's ``count_include_pad=True`` default would count the zeros).
- layer_norm: ``F.layer_norm`` with the spec's epsilon; ``gamma``/``beta`` are optional
  independently (``nn.LayerNorm`` has no flag for a bias without a weight).
- embedding with ``mask_zero``: the ids ``!= 0`` become a mask (:class:`TokenMask`) that the
  masked ``global_avg_pool1d`` reads, where Keras passes its mask; row 0 stays trainable
  (no ``padding_idx``: cause ``embedding_padding_idx``).
- positional_embedding: ``x + table[:steps]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from duofit.common.spec.layers import LayerBase
from duofit.common.spec.layers_attention import MultiHeadAttentionLayer
from duofit.common.spec.layers_conv1d import (
    AvgPool1DLayer,
    Conv1DLayer,
    GlobalAvgPool1DLayer,
    LayerNormLayer,
    MaxPool1DLayer,
)
from duofit.common.spec.layers_embedding import EmbeddingLayer, PositionalEmbeddingLayer
from duofit.common.spec.masks import mask_flow
from duofit.common.spec.shapes import same_padding

__all__ = [
    "CONV1D_PERM",
    "Conv1D",
    "Embedding",
    "GlobalPool1D",
    "LayerNorm",
    "Pool1D",
    "PositionalEmbedding",
    "TokenMask",
    "attach_masks",
    "conv1d",
    "layer_norm",
    "pool1d",
]

Shape = tuple[int, ...]
# duofit conv1d kernel [k, in, out] -> torch [out, in, k]
CONV1D_PERM = (2, 1, 0)


class TokenMask:
    """The padding mask (``ids != 0``) of the current batch, written by a masking :class:`Embedding`."""

    def __init__(self) -> None:
        self.mask: torch.Tensor | None = None


class Conv1D(nn.Module):
    """``nn.Conv1d`` on channels-last sequences, with explicit (possibly asymmetric) padding."""

    def __init__(self, conv: nn.Conv1d, pad: tuple[int, int]) -> None:
        super().__init__()
        self.conv, self.pad = conv, pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        h = x.transpose(1, 2)
        if any(self.pad):
            h = F.pad(h, self.pad)
        return self.conv(h).transpose(1, 2)


def conv1d(layer: Conv1DLayer, shape: Shape) -> Conv1D:
    """The conv1d module for ``shape = (steps, channels)`` (activation added by the caller)."""
    conv = nn.Conv1d(shape[-1], layer.filters, layer.kernel_size, stride=layer.strides, bias=layer.use_bias)
    pad = same_padding(shape[0], layer.kernel_size, layer.strides, 1) if layer.padding == "same" else (0, 0)
    return Conv1D(conv, pad)


class Pool1D(nn.Module):
    """Max or average pooling over steps; "same" as TensorFlow (real steps only)."""

    def __init__(self, average: bool, size: int, stride: int, pad: tuple[int, int], counts: np.ndarray | None) -> None:
        super().__init__()
        self.average, self.size, self.stride, self.pad = average, size, stride, pad
        if counts is not None:  # cast with the model's dtype
            self.register_buffer("counts", torch.as_tensor(counts)[None, None], persistent=False)
        self.same = counts is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        h = x.transpose(1, 2)
        if not self.average:
            if self.same:
                h = F.pad(h, self.pad, value=-math.inf)
            return F.max_pool1d(h, self.size, self.stride).transpose(1, 2)
        if not self.same:
            return F.avg_pool1d(h, self.size, self.stride).transpose(1, 2)
        total = F.pad(h, self.pad).unfold(2, self.size, self.stride).sum(dim=-1)
        return (total / self.counts).transpose(1, 2)


def pool1d(layer: MaxPool1DLayer, shape: Shape) -> Pool1D:
    """The pooling module for ``shape = (steps, channels)``."""
    stride = layer.strides or layer.pool_size
    average = isinstance(layer, AvgPool1DLayer)
    if layer.padding == "valid":
        return Pool1D(average, layer.pool_size, stride, (0, 0), None)
    pad = same_padding(shape[0], layer.pool_size, stride, 1)
    real = np.pad(np.ones(shape[0]), pad)
    counts = np.lib.stride_tricks.sliding_window_view(real, layer.pool_size)[::stride].sum(axis=-1)
    return Pool1D(average, layer.pool_size, stride, pad, counts)


class GlobalPool1D(nn.Module):
    """Mean or max over steps; a masked mean divides by the unmasked steps (Keras' formula)."""

    def __init__(self, average: bool) -> None:
        super().__init__()
        self.average = average
        self.tokens: TokenMask | None = None  # set by attach_masks where Keras sees a mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if not self.average:
            return x.amax(dim=1)
        if self.tokens is None or self.tokens.mask is None:
            return x.mean(dim=1)
        # keras/src/layers/pooling/global_average_pooling1d.py: where(mask, x, 0).sum / mask.sum
        m = self.tokens.mask[..., None]
        return torch.where(m, x, 0.0).sum(dim=1) / m.to(x.dtype).sum(dim=1)


class LayerNorm(nn.Module):
    """``F.layer_norm`` over the last axis with optional ``weight`` (gamma) and ``bias`` (beta)."""

    def __init__(self, width: int, epsilon: float, scale: bool, center: bool) -> None:
        super().__init__()
        self.width, self.epsilon = width, epsilon
        self.weight = nn.Parameter(torch.ones(width)) if scale else None
        self.bias = nn.Parameter(torch.zeros(width)) if center else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return F.layer_norm(x, (self.width,), self.weight, self.bias, self.epsilon)


def layer_norm(layer: LayerNormLayer, shape: Shape) -> LayerNorm:
    """The layer_norm module for inputs of last axis ``shape[-1]``."""
    return LayerNorm(shape[-1], layer.epsilon, layer.scale, layer.center)


class Embedding(nn.Embedding):
    """``nn.Embedding`` that, with ``mask_zero``, records ``ids != 0`` for the mask consumers."""

    tokens: TokenMask | None = None

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if self.tokens is not None:
            self.tokens.mask = ids != 0
        return super().forward(ids)


class PositionalEmbedding(nn.Module):
    """A learned table ``(max_len, features)`` added to the input's first ``steps`` rows."""

    def __init__(self, max_len: int, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(max_len, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x + self.weight[: x.shape[1]]


def embedding(layer: EmbeddingLayer, shape: Shape) -> Embedding:
    """The embedding module (the table is loaded from the shared initial weights)."""
    return Embedding(layer.input_dim, layer.output_dim)


def positional(layer: PositionalEmbeddingLayer, shape: Shape) -> PositionalEmbedding:
    """The positional embedding module for ``shape = (steps, features)``."""
    return PositionalEmbedding(layer.max_len, shape[-1])


def attach_masks(modules: Sequence[nn.Module], layers: Sequence[LayerBase]) -> None:
    """Share one :class:`TokenMask` between the masking embeddings and the layers Keras masks.

    Which layers see a mask follows :func:`~duofit.common.spec.shapes.mask_flow`, Keras'
    propagation rules.
    """
    tokens = TokenMask()
    for module, layer, masked in zip(modules, layers, mask_flow(layers), strict=True):
        if isinstance(layer, EmbeddingLayer) and layer.mask_zero:
            assert isinstance(module, Embedding)
            module.tokens = tokens
        elif masked and isinstance(layer, GlobalAvgPool1DLayer):
            assert isinstance(module, GlobalPool1D)
            module.tokens = tokens
        elif masked and isinstance(layer, MultiHeadAttentionLayer):  # padded queries and keys (attention.py)
            module.tokens = tokens
