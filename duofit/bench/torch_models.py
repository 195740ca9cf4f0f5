"""A spec's layer graph as a person builds it in PyTorch: stock ``torch.nn`` modules, torch's defaults.

Used by the hand-written torch baselines (:mod:`duofit.bench.torch_loops`) for models that are
not plain MLPs. Each spec layer becomes one stock module (:data:`TORCH_STOCK`):
``nn.Linear``, ``nn.Conv2d`` on channels-first images (the data is permuted once, up front),
``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` with ``batch_first=True``, ``nn.MultiheadAttention`` with
``batch_first=True`` and ``need_weights=False`` (so torch may use its fused attention kernel),
``nn.LayerNorm``, ``nn.Embedding`` (also for the learned positions). Padding ids (0, from an
``embedding`` with ``mask_zero``) become the attention's ``key_padding_mask`` and are left out
of the average pooling. Initialisation is torch's own (seeded), not duofit's shared weights.

Example:
    Builds torch modules, so it is not run as a doctest.

    >>> net = StockNet(stock_graph(spec, (40,), tokens=True))   # doctest: +SKIP
    >>> net(torch.zeros(2, 40, dtype=torch.long)).shape           # doctest: +SKIP
    torch.Size([2, 2])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from duofit.bench.stock import StockGraph
from duofit.common.spec import (
    ActivationLayer,
    AddLayer,
    Conv2DLayer,
    DenseLayer,
    DropoutLayer,
    FlattenLayer,
    MaxPool2DLayer,
)
from duofit.common.spec.layers_attention import MultiHeadAttentionLayer
from duofit.common.spec.layers_conv1d import GlobalAvgPool1DLayer, LayerNormLayer
from duofit.common.spec.layers_embedding import EmbeddingLayer, PositionalEmbeddingLayer
from duofit.common.spec.layers_rnn import GRULayer, LSTMLayer, SimpleRNNLayer

__all__ = ["TORCH_STOCK", "StockNet", "channels_first"]

Shape = tuple[int, ...]
_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "linear": lambda x: x,
    "relu": F.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
}


class _Block(nn.Module):
    """One stock module and how it reads its inputs: ``forward(inputs, pad)``."""

    def __init__(self, module: nn.Module | None, call: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.module = module
        self.call = call

    def forward(self, xs: list[torch.Tensor], pad: torch.Tensor | None) -> torch.Tensor:
        """The block's output from its inputs and the padding mask (``True`` = padding)."""
        return self.call(self.module, xs, pad)


def _dense(layer: DenseLayer, ins: list[Shape], out: Shape) -> _Block:
    act = _ACTIVATIONS[layer.activation or "linear"]
    return _Block(nn.Linear(ins[0][-1], layer.units, bias=layer.use_bias), lambda m, xs, pad: act(m(xs[0])))


def _conv2d(layer: Conv2DLayer, ins: list[Shape], out: Shape) -> _Block:
    act = _ACTIVATIONS[layer.activation or "linear"]
    conv = nn.Conv2d(
        ins[0][-1],
        layer.filters,
        tuple(layer.kernel_size),
        stride=tuple(layer.strides),
        padding=layer.padding,
        dilation=tuple(layer.dilation),
        bias=layer.use_bias,
    )
    return _Block(conv, lambda m, xs, pad: act(m(xs[0])))


def _max_pool2d(layer: MaxPool2DLayer, ins: list[Shape], out: Shape) -> _Block:
    pool = nn.MaxPool2d(tuple(layer.pool_size), stride=tuple(layer.strides or layer.pool_size))
    return _Block(pool, lambda m, xs, pad: m(xs[0]))


def _attention(layer: MultiHeadAttentionLayer, ins: list[Shape], out: Shape) -> _Block:
    embed, kv = ins[0][-1], ins[-1][-1]
    att = nn.MultiheadAttention(embed, layer.num_heads, bias=layer.use_bias, batch_first=True, kdim=kv, vdim=kv)
    causal = layer.causal

    def call(m: nn.Module, xs: list[torch.Tensor], pad: torch.Tensor | None) -> torch.Tensor:
        q, kv_in = xs[0], xs[-1]
        mask = None
        if causal:
            steps = q.shape[1]
            mask = torch.ones(steps, steps, dtype=torch.bool, device=q.device).triu(1)  # True = masked
        keys = pad if pad is not None and pad.shape[1] == kv_in.shape[1] else None
        return m(q, kv_in, kv_in, key_padding_mask=keys, attn_mask=mask, need_weights=False, is_causal=causal)[0]

    return _Block(att, call)


def _recurrent(layer: SimpleRNNLayer | LSTMLayer | GRULayer, ins: list[Shape], out: Shape) -> _Block:
    features = ins[0][-1]
    module: nn.RNNBase
    if isinstance(layer, LSTMLayer):
        module = nn.LSTM(features, layer.units, bias=layer.use_bias, batch_first=True)
    elif isinstance(layer, GRULayer):
        module = nn.GRU(features, layer.units, bias=layer.use_bias, batch_first=True)
    else:
        module = nn.RNN(features, layer.units, nonlinearity=layer.activation, bias=layer.use_bias, batch_first=True)
    every = layer.return_sequences
    return _Block(module, lambda m, xs, pad: m(xs[0])[0] if every else m(xs[0])[0][:, -1])


def _positional(layer: PositionalEmbeddingLayer, ins: list[Shape], out: Shape) -> _Block:
    def call(m: nn.Module, xs: list[torch.Tensor], pad: torch.Tensor | None) -> torch.Tensor:
        return xs[0] + m(torch.arange(xs[0].shape[1], device=xs[0].device))

    return _Block(nn.Embedding(layer.max_len, ins[0][-1]), call)


def _masked_mean(m: nn.Module | None, xs: list[torch.Tensor], pad: torch.Tensor | None) -> torch.Tensor:
    if pad is None or pad.shape[1] != xs[0].shape[1]:
        return xs[0].mean(dim=1)
    keep = (~pad).unsqueeze(-1).to(xs[0].dtype)
    return (xs[0] * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)


def _layer_norm(layer: LayerNormLayer, ins: list[Shape], out: Shape) -> _Block:
    norm = nn.LayerNorm(ins[0][-1], eps=layer.epsilon, elementwise_affine=layer.scale)
    return _Block(norm, lambda m, xs, pad: m(xs[0]))


def _first(module: nn.Module) -> Callable[..., _Block]:
    return lambda layer, ins, out: _Block(module, lambda m, xs, pad: m(xs[0]))


# Spec layer type -> its stock block; the keys are :data:`duofit.bench.stock.STOCK_CHECKS`'.
TORCH_STOCK: dict[type, Callable[[Any, list[Shape], Shape], _Block]] = {
    DenseLayer: _dense,
    ActivationLayer: lambda layer, ins, out: _Block(None, lambda m, xs, pad: _ACTIVATIONS[layer.activation](xs[0])),
    DropoutLayer: lambda layer, ins, out: _first(nn.Dropout(layer.rate))(layer, ins, out),
    FlattenLayer: lambda layer, ins, out: _first(nn.Flatten())(layer, ins, out),
    Conv2DLayer: _conv2d,
    MaxPool2DLayer: _max_pool2d,
    AddLayer: lambda layer, ins, out: _Block(None, lambda m, xs, pad: sum(xs[1:], xs[0])),
    LayerNormLayer: _layer_norm,
    EmbeddingLayer: lambda layer, ins, out: _first(nn.Embedding(layer.input_dim, layer.output_dim))(layer, ins, out),
    PositionalEmbeddingLayer: _positional,
    MultiHeadAttentionLayer: _attention,
    SimpleRNNLayer: _recurrent,
    LSTMLayer: _recurrent,
    GRULayer: _recurrent,
    GlobalAvgPool1DLayer: lambda layer, ins, out: _Block(None, _masked_mean),
}


class StockNet(nn.Module):
    """The graph of stock blocks; images come in channels-first (see :func:`channels_first`)."""

    def __init__(self, graph: StockGraph) -> None:
        super().__init__()
        self.sources = graph.sources
        self.pad_mask = graph.pad_mask
        self.blocks = nn.ModuleList(
            TORCH_STOCK[type(layer)](layer, ins, out)
            for layer, (ins, out) in zip(graph.layers, graph.shapes, strict=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the blocks in order, each on the outputs it reads."""
        pad = x == 0 if self.pad_mask else None
        outs: list[torch.Tensor] = []
        for block, src in zip(self.blocks, self.sources, strict=True):
            outs.append(block([x if j < 0 else outs[j] for j in src], pad))
        return outs[-1]


def channels_first(x: torch.Tensor) -> torch.Tensor:
    """Images ``(n, h, w, c)`` as torch's convolutions read them, ``(n, c, h, w)``; other data unchanged."""
    return x.permute(0, 3, 1, 2).contiguous() if x.dim() == 4 else x
