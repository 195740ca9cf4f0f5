"""``multi_head_attention`` on torch: Keras' math in an explicit module, weights in Keras' layout.

Why not ``nn.MultiheadAttention`` (``torch/nn/modules/activation.py``):

- it needs ``num_heads * head_dim == embed_dim`` and ``value_dim == key_dim``; Keras' ``key_dim``
  is per head and free (cause ``mha_key_dim``), so most Keras configurations have no twin;
- its packed ``in_proj_weight (3E, E)`` would need a translation at every step (cause
  ``mha_projection_layout``; :func:`keras_to_torch` gives it for ``convert`` and the tests);
- it scales by ``math.sqrt(1.0 / head_dim)`` and Keras by ``1.0 / math.sqrt(key_dim)``, one ulp
  apart for many sizes (cause ``mha_scale_constant``), and it masks with ``True`` = masked while
  Keras' ``1`` = attend (cause ``mha_mask_polarity``); it also leaves padded queries unmasked;
- ``need_weights=False`` and the eval fast path (``torch._native_multi_head_attention``) run
  fused kernels (CPU flash attention) that sum in another order than training does (cause
  ``torch_sdpa_kernels``), so stage-by-stage comparison would mix kernels.

So this module computes exactly Keras' explicit path (``keras/src/layers/attention/
multi_head_attention.py`` ``_compute_attention``; ``keras/src/layers/activations/softmax.py``):
``q = (x_q Wq + bq) * (1 / sqrt(key_dim))``, scores ``q . k`` per head, masked positions set to
``-1e9`` before the softmax and to 0 after it (a fully masked row, a padded query, gives 0),
``p . v``, then the output projection. The mask is Keras': padded queries and padded keys
(``ids != 0`` of a masking embedding), and with ``causal`` key step <= query step.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from duofit.backends.torch.sequence import TokenMask
from duofit.common.spec.layers_attention import ATTENTION_WEIGHTS, MultiHeadAttentionLayer

__all__ = ["ATTENTION_LAYERS", "ATTENTION_SLOTS", "MultiHeadAttention", "keras_to_torch", "torch_to_keras"]

# Keras' masked softmax fills masked scores with this (``_large_negative_number`` for float32/64).
_MASKED_SCORE = -1e9
Shape = tuple[int, ...]
Slot = tuple[str, torch.Tensor, tuple[int, ...] | None]


class MultiHeadAttention(nn.Module):
    """Keras' ``MultiHeadAttention`` (explicit path); parameters named and shaped as duofit stores them."""

    tokens: TokenMask | None = None  # set by attach_masks where Keras sees a padding mask

    def __init__(self, layer: MultiHeadAttentionLayer, width: int) -> None:
        super().__init__()
        n, dk, dv = layer.num_heads, layer.key_dim, layer.head_value_dim
        shapes = {
            "query_kernel": (width, n, dk),
            "query_bias": (n, dk),
            "key_kernel": (width, n, dk),
            "key_bias": (n, dk),
            "value_kernel": (width, n, dv),
            "value_bias": (n, dv),
            "output_kernel": (n, dv, width),
            "output_bias": (width,),
        }
        for name in ATTENTION_WEIGHTS:
            if layer.use_bias or not name.endswith("_bias"):
                self.register_parameter(name, nn.Parameter(torch.zeros(shapes[name])))
        self.use_bias, self.causal = layer.use_bias, layer.causal
        self.scale = 1.0 / math.sqrt(float(dk))  # Keras' _inverse_sqrt_key_dim, not sqrt(1 / dk)

    def _project(self, x: torch.Tensor, part: str) -> torch.Tensor:
        out = torch.einsum("abc,cde->abde", x, getattr(self, f"{part}_kernel"))
        return out + getattr(self, f"{part}_bias") if self.use_bias else out

    def _mask(self, steps_q: int, steps_v: int, device: torch.device) -> torch.Tensor | None:
        """``(B or 1, T, S)`` bool, ``True`` = attend (Keras' polarity), or ``None``."""
        mask = None
        if self.tokens is not None and self.tokens.mask is not None:
            valid = self.tokens.mask  # the query and value carry the same padding mask
            mask = valid[:, :steps_q, None] & valid[:, None, :steps_v]
        if self.causal:  # keras _compute_causal_mask: row_index >= col_index, top-left aligned
            tri = torch.ones(steps_q, steps_v, dtype=torch.bool, device=device).tril()[None]
            mask = tri if mask is None else mask & tri
        return mask

    def forward(self, query: torch.Tensor, value: torch.Tensor | None = None) -> torch.Tensor:  # noqa: D102
        value = query if value is None else value
        q = self._project(query, "query") * self.scale
        k = self._project(value, "key")
        v = self._project(value, "value")
        scores = torch.einsum("aecd,abcd->acbe", k, q)  # (B, heads, T, S)
        mask = self._mask(query.shape[1], value.shape[1], query.device)
        if mask is None:
            probs = torch.softmax(scores, dim=-1)
        else:
            m = mask[:, None]
            probs = torch.softmax(torch.where(m, scores, _MASKED_SCORE), dim=-1)
            probs = torch.where(m, probs, 0.0)
        out = torch.einsum("acbe,aecd->abcd", probs, v)  # (B, T, heads, value_dim)
        out = torch.einsum("abcd,cde->abe", out, self.output_kernel)
        return out + self.output_bias if self.use_bias else out


def _attention(layer: MultiHeadAttentionLayer, shape: Shape, out: Shape) -> nn.Module:
    return MultiHeadAttention(layer, shape[-1])


def _slots(i: int, block: nn.Module) -> list[Slot]:
    assert isinstance(block, MultiHeadAttention)
    return [(f"layers.{i}.{name}", p, None) for name, p in block.named_parameters(recurse=False)]


# Entries of the torch LAYERS table and of the weight slots (Keras layout kept: no permutation).
ATTENTION_LAYERS: dict[type, Callable[..., nn.Module]] = {MultiHeadAttentionLayer: _attention}
ATTENTION_SLOTS: dict[type, Callable[[int, nn.Module], list[Slot]]] = {MultiHeadAttentionLayer: _slots}


def keras_to_torch(layer: MultiHeadAttentionLayer, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Keras-layout weights -> an ``nn.MultiheadAttention(E, heads, batch_first=True)`` ``state_dict``.

    Only when torch's module can hold the layer: ``heads * key_dim == E`` and ``value_dim ==
    key_dim`` (cause ``mha_key_dim``). Rows ``[0:E]``, ``[E:2E]``, ``[2E:3E]`` of ``in_proj_weight``
    are q, k, v (``torch/nn/functional.py`` ``_in_projection_packed``), applied as ``x @ W.T``;
    head ``h`` is features ``[h*key_dim:(h+1)*key_dim]``, which a row-major reshape keeps.

    Example:
        >>> layer = MultiHeadAttentionLayer(type="multi_head_attention", num_heads=2, key_dim=1, use_bias=False)
        >>> w = {n: np.arange(4.0).reshape(2, 2, 1) for n in ("query_kernel", "key_kernel", "value_kernel")}
        >>> w["output_kernel"] = np.arange(4.0).reshape(2, 1, 2)
        >>> keras_to_torch(layer, w)["in_proj_weight"].shape
        (6, 2)
    """
    width = weights["query_kernel"].shape[0]
    if layer.num_heads * layer.key_dim != width or layer.head_value_dim != layer.key_dim:
        raise ValueError(
            f"nn.MultiheadAttention needs num_heads * key_dim == {width} (the model width) and value_dim == "
            f"key_dim; got num_heads={layer.num_heads}, key_dim={layer.key_dim}, value_dim={layer.head_value_dim}"
        )
    out = {
        "in_proj_weight": np.concatenate(
            [weights[f"{p}_kernel"].reshape(width, width).T for p in ("query", "key", "value")]
        ),
        "out_proj.weight": weights["output_kernel"].reshape(width, width).T.copy(),
    }
    if "query_bias" in weights:
        out["in_proj_bias"] = np.concatenate([weights[f"{p}_bias"].reshape(width) for p in ("query", "key", "value")])
        out["out_proj.bias"] = weights["output_bias"].copy()
    return out


def torch_to_keras(layer: MultiHeadAttentionLayer, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """An ``nn.MultiheadAttention`` ``state_dict`` -> Keras-layout weights (the reverse of :func:`keras_to_torch`)."""
    width = state["in_proj_weight"].shape[1]
    n, dk = layer.num_heads, layer.key_dim
    out: dict[str, np.ndarray] = {}
    for k, part in enumerate(("query", "key", "value")):
        out[f"{part}_kernel"] = state["in_proj_weight"][k * width : (k + 1) * width].T.reshape(width, n, dk)
        if "in_proj_bias" in state:
            out[f"{part}_bias"] = state["in_proj_bias"][k * width : (k + 1) * width].reshape(n, dk)
    out["output_kernel"] = state["out_proj.weight"].T.reshape(n, dk, width)
    if "out_proj.bias" in state:
        out["output_bias"] = state["out_proj.bias"].copy()
    return {name: out[name] for name in ATTENTION_WEIGHTS if name in out}
