"""Numpy reference forward of ``multi_head_attention`` (Keras' explicit path), and a model forward using it.

The formulas follow ``keras/src/layers/attention/multi_head_attention.py`` (``call``,
``_compute_attention``, ``_compute_attention_mask``, ``_compute_causal_mask``) and
``keras/src/layers/activations/softmax.py`` (masked scores set to -1e9, masked probabilities
to 0), on duofit's (Keras) weight layout.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import softmax

from duofit.common.spec import Spec
from duofit.common.spec.layers_attention import MultiHeadAttentionLayer
from duofit.common.spec.masks import mask_flow
from tests import reference


def _project(x: np.ndarray, w: dict[str, np.ndarray], part: str) -> np.ndarray:
    out = np.einsum("btf,fnd->btnd", x, w[f"{part}_kernel"])
    return out + w[f"{part}_bias"] if f"{part}_bias" in w else out


def attention(
    layer: MultiHeadAttentionLayer,
    w: dict[str, np.ndarray],
    query: np.ndarray,
    value: np.ndarray,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """One layer: ``query (B, T, E)``, ``value (B, S, E)``; ``valid (B, T)``: the shared padding mask."""
    q = _project(query, w, "query") * (1.0 / math.sqrt(float(layer.key_dim)))
    k, v = _project(value, w, "key"), _project(value, w, "value")
    scores = np.einsum("bsnd,btnd->bnts", k, q)
    t, s = query.shape[1], value.shape[1]
    mask = np.ones((1, t, s), dtype=bool)
    if valid is not None:
        mask = mask & valid[:, :t, None].astype(bool) & valid[:, None, :s].astype(bool)
    if layer.causal:
        mask = mask & np.tril(np.ones((t, s), dtype=bool))[None]
    m = mask[:, None]
    probs = np.where(m, softmax(np.where(m, scores, -1e9), axis=-1), 0.0)
    out = np.einsum("bnts,bsnd->btnd", probs, v)
    out = np.einsum("btnd,nde->bte", out, w["output_kernel"])
    return out + w["output_bias"] if "output_bias" in w else out


def forward(spec: Spec, weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Inference forward of a model with attention layers (the others through ``tests.reference``)."""
    h0 = x if x.dtype.kind in "iu" else x.astype(np.float64)
    ids_mask = (x != 0).astype(np.float64) if x.dtype.kind in "iu" else None
    flow = mask_flow(spec.model.layers)
    outs: list[np.ndarray] = []
    for i, (layer, src) in enumerate(zip(spec.model.layers, spec.model.sources, strict=True)):
        hs = [h0 if j < 0 else outs[j] for j in src]
        mask = ids_mask if flow[i] else None
        if isinstance(layer, MultiHeadAttentionLayer):
            own = {k.split(".", 2)[2]: v for k, v in weights.items() if k.startswith(f"layers.{i}.")}
            outs.append(attention(layer, own, hs[0], hs[-1], mask))
            continue
        out = reference._sequence_layer(layer, i, weights, hs[0], mask)
        outs.append(out if out is not None else reference._layer(layer, i, weights, hs))
    return outs[-1]
