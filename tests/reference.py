"""Numpy reference implementations every backend is tested against first."""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf, log_softmax

from duofit.common.spec import (
    ActivationLayer,
    AvgPool2DLayer,
    BatchNormLayer,
    Conv2DLayer,
    DenseLayer,
    FlattenLayer,
    GlobalAvgPool2DLayer,
    MaxPool2DLayer,
    Spec,
)
from duofit.common.spec.layers import AddLayer, ConcatenateLayer, ReshapeLayer
from duofit.common.spec.layers_conv1d import (
    AvgPool1DLayer,
    Conv1DLayer,
    GlobalAvgPool1DLayer,
    GlobalMaxPool1DLayer,
    LayerNormLayer,
    MaxPool1DLayer,
)
from duofit.common.spec.layers_embedding import EmbeddingLayer, PositionalEmbeddingLayer
from duofit.common.spec.masks import mask_flow
from duofit.common.spec.shapes import same_padding

EPS = 1e-7  # Keras' probability clip, adopted by the spec


def activation(name: str, z: np.ndarray, slope: float = 0.01) -> np.ndarray:
    if name == "relu":
        return np.maximum(z, 0)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "softmax":
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    if name == "gelu":
        return 0.5 * z * (1 + erf(z / math.sqrt(2)))
    if name == "leaky_relu":
        return np.where(z >= 0, z, slope * z)
    if name == "linear":
        return z
    raise KeyError(name)


def conv2d(x: np.ndarray, k: np.ndarray, strides: list[int], dilation: list[int], padding: str) -> np.ndarray:
    """NHWC convolution (cross-correlation) with TensorFlow's "same" padding."""
    kh, kw = k.shape[:2]
    if padding == "same":
        axes = zip(x.shape[1:3], (kh, kw), strides, dilation, strict=True)
        (top, bottom), (left, right) = (same_padding(n, kk, s, d) for n, kk, s, d in axes)
        x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    sh, sw = strides
    dh, dw = dilation
    oh = (x.shape[1] - dh * (kh - 1) - 1) // sh + 1
    ow = (x.shape[2] - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((x.shape[0], oh, ow, k.shape[3]))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i * dh : i * dh + sh * (oh - 1) + 1 : sh, j * dw : j * dw + sw * (ow - 1) + 1 : sw, :]
            out += patch @ k[i, j]
    return out


def pool2d(x: np.ndarray, size: list[int], strides: list[int], op: str, padding: str = "valid") -> np.ndarray:
    """NHWC pooling; "same" pads with NaN, which nanmax / nanmean leave out (TensorFlow's rule)."""
    ph, pw = size
    sh, sw = strides
    if padding == "same":
        axes = zip(x.shape[1:3], size, strides, strict=True)
        (top, bottom), (left, right) = (same_padding(n, k, s, 1) for n, k, s in axes)
        x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=np.nan)
    oh, ow = (x.shape[1] - ph) // sh + 1, (x.shape[2] - pw) // sw + 1
    windows = np.stack(
        [x[:, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw, :] for i in range(ph) for j in range(pw)]
    )
    return np.nanmax(windows, axis=0) if op == "max" else np.nanmean(windows, axis=0)


def conv1d(x: np.ndarray, k: np.ndarray, stride: int, padding: str) -> np.ndarray:
    """Channels-last 1-D convolution (cross-correlation), kernel ``[k, in, out]``, TensorFlow's "same"."""
    return conv2d(x[:, None], k[None], [1, stride], [1, 1], padding)[:, 0]


def pool1d(x: np.ndarray, size: int, stride: int, op: str, padding: str) -> np.ndarray:
    """Channels-last 1-D pooling ("same": real steps only)."""
    return pool2d(x[:, None], [1, size], [1, stride], op, padding)[:, 0]


def layer_norm(x: np.ndarray, epsilon: float, gamma: np.ndarray | None, beta: np.ndarray | None) -> np.ndarray:
    """``(x - mean) / sqrt(biased var + epsilon) * gamma + beta`` over the last axis."""
    mean = x.mean(axis=-1, keepdims=True)
    h = (x - mean) / np.sqrt(((x - mean) ** 2).mean(axis=-1, keepdims=True) + epsilon)
    h = h * gamma if gamma is not None else h
    return h + beta if beta is not None else h


def _sequence_layer(layer: object, i: int, weights: dict[str, np.ndarray], h: np.ndarray, mask: np.ndarray | None):
    """The 1-D, normalization and embedding layers; ``mask``: the padding mask this layer sees, if any."""
    w = {k.split(".")[-1]: v for k, v in weights.items() if k.startswith(f"layers.{i}.")}
    if isinstance(layer, Conv1DLayer):
        h = conv1d(h, w["kernel"], layer.strides, layer.padding) + w.get("bias", 0.0)
        return activation(layer.activation, h) if layer.activation else h
    if isinstance(layer, MaxPool1DLayer):
        op = "avg" if isinstance(layer, AvgPool1DLayer) else "max"
        return pool1d(h, layer.pool_size, layer.strides or layer.pool_size, op, layer.padding)
    if isinstance(layer, GlobalAvgPool1DLayer):
        if mask is None:
            return h.mean(axis=1)
        return (h * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
    if isinstance(layer, GlobalMaxPool1DLayer):
        return h.max(axis=1)
    if isinstance(layer, LayerNormLayer):
        return layer_norm(h, layer.epsilon, w.get("gamma"), w.get("beta"))
    if isinstance(layer, EmbeddingLayer):
        return w["embeddings"][h.astype(np.int64)]
    if isinstance(layer, PositionalEmbeddingLayer):
        return h + w["embeddings"][: h.shape[1]]
    return None


def _layer(layer: object, i: int, weights: dict[str, np.ndarray], hs: list[np.ndarray]) -> np.ndarray:
    """One layer's inference-mode output for its inputs ``hs`` (NHWC images)."""
    h = hs[0]
    if isinstance(layer, DenseLayer):
        h = h @ weights[f"layers.{i}.kernel"]
        if layer.use_bias:
            h = h + weights[f"layers.{i}.bias"]
        if layer.activation:
            h = activation(layer.activation, h)
    elif isinstance(layer, Conv2DLayer):
        h = conv2d(h, weights[f"layers.{i}.kernel"], layer.strides, layer.dilation, layer.padding)
        if layer.use_bias:
            h = h + weights[f"layers.{i}.bias"]
        if layer.activation:
            h = activation(layer.activation, h)
    elif isinstance(layer, MaxPool2DLayer):
        h = pool2d(
            h,
            layer.pool_size,
            layer.strides or layer.pool_size,
            "avg" if isinstance(layer, AvgPool2DLayer) else "max",
            layer.padding,
        )
    elif isinstance(layer, GlobalAvgPool2DLayer):
        h = h.mean(axis=(1, 2))
    elif isinstance(layer, ActivationLayer):
        h = activation(layer.activation, h, layer.negative_slope)
    elif isinstance(layer, BatchNormLayer):
        mean, var = weights[f"layers.{i}.moving_mean"], weights[f"layers.{i}.moving_variance"]
        h = (h - mean) / np.sqrt(var + layer.epsilon) * weights[f"layers.{i}.gamma"] + weights[f"layers.{i}.beta"]
    elif isinstance(layer, FlattenLayer):
        h = h.reshape(len(h), -1)
    elif isinstance(layer, AddLayer):
        h = sum(hs[1:], start=hs[0])
    elif isinstance(layer, ConcatenateLayer):
        h = np.concatenate(hs, axis=layer.axis)
    elif isinstance(layer, ReshapeLayer):
        h = h.reshape(len(h), *layer.target_shape)
    return h


def forward(spec: Spec, weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Inference-mode forward pass (dropout off, batch norm on moving statistics) through the layer graph.

    Each layer reads the outputs its ``inputs`` name (the previous layer by default, ``"input"``
    the model input); the output is the last layer's.
    """
    h = x if x.dtype.kind in "iu" else x.astype(np.float64)
    ids_mask = (x != 0).astype(np.float64) if x.dtype.kind in "iu" else None
    outs: list[np.ndarray] = []
    flow = mask_flow(spec.model.layers)
    for i, (layer, src) in enumerate(zip(spec.model.layers, spec.model.sources, strict=True)):
        hs = [h if j < 0 else outs[j] for j in src]
        out = _sequence_layer(layer, i, weights, hs[0], ids_mask if flow[i] else None)
        outs.append(out if out is not None else _layer(layer, i, weights, hs))
    return outs[-1]


def loss(spec: Spec, out: np.ndarray, target: np.ndarray) -> float:
    """The spec's loss in numpy (batch mean)."""
    ls = spec.loss
    out = out.astype(np.float64)
    if ls.type == "mse":
        return float(np.mean((out - target) ** 2))
    if ls.type == "mae":
        return float(np.mean(np.abs(out - target)))
    if ls.type == "huber":
        d = np.abs(out - target)
        return float(np.mean(np.where(d <= ls.delta, 0.5 * d**2, ls.delta * (d - 0.5 * ls.delta))))
    if ls.type == "binary_crossentropy":
        if ls.from_logits:
            return float(np.mean(np.maximum(out, 0) - out * target + np.log1p(np.exp(-np.abs(out)))))
        p = np.clip(out, EPS, 1 - EPS)
        return float(-np.mean(target * np.log(p) + (1 - target) * np.log(1 - p)))
    # categorical
    if ls.from_logits:
        logp = log_softmax(out, axis=1)
    elif ls.labels == "integer":
        logp = log_softmax(np.log(np.clip(out, EPS, 1 - EPS)), axis=1)
    else:
        logp = np.log(np.clip(out / out.sum(axis=1, keepdims=True), EPS, 1 - EPS))
    onehot = np.eye(out.shape[1])[target] if target.ndim == 1 else target
    return float(-np.mean((onehot * logp).sum(axis=1)))
