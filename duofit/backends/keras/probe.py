"""Single-shot evaluations used by tests and parity checks: forward, loss, gradients.

Twin of ``duofit/backends/torch/probe.py``; arrays in and out are numpy in duofit's layout.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

import keras
from duofit.backends.keras.layers import build_model, floatx, get_weights, set_weights
from duofit.backends.keras.losses import make_loss
from duofit.common.shapes import model_input_shape
from duofit.common.spec import BatchNormLayer, Conv2DLayer, DenseLayer, Spec

__all__ = ["forward", "gradients", "loss_value", "roundtrip"]


def _model(
    spec: Spec, weights: dict[str, np.ndarray], input_shape: tuple[int, ...], strict: bool = False
) -> tuple[keras.Model, list]:
    model, heads = build_model(spec, input_shape, spec.train.dtype, strict=strict)
    set_weights(heads, spec, weights)
    return model, heads


def roundtrip(spec: Spec, weights: dict[str, np.ndarray], strict: bool = False) -> dict[str, np.ndarray]:
    """Load ``weights`` into a Keras model and read them back (duofit layout, run dtype)."""
    _, heads = _model(spec, weights, model_input_shape(spec.data.image_shape, weights), strict)
    return get_weights(heads, spec)


def _targets(targets: np.ndarray, dtype: str) -> tf.Tensor:
    return tf.constant(targets if targets.dtype.kind in "iu" else targets.astype(dtype))


def forward(
    spec: Spec, weights: dict[str, np.ndarray], x: np.ndarray, training: bool = False, strict: bool = False
) -> np.ndarray:
    """Model outputs for ``x`` with the given weights (inference mode unless ``training``)."""
    model, _ = _model(spec, weights, x.shape[1:], strict)
    return np.asarray(model(tf.constant(x.astype(spec.train.dtype)), training=training))


def loss_value(spec: Spec, outputs: np.ndarray, targets: np.ndarray) -> float:
    """The spec's loss of ``outputs`` against loss-ready ``targets``."""
    dtype = spec.train.dtype
    return float(make_loss(spec.loss, dtype)(_targets(targets, dtype), tf.constant(outputs.astype(dtype))))


def gradients(
    spec: Spec, weights: dict[str, np.ndarray], x: np.ndarray, targets: np.ndarray, strict: bool = False
) -> tuple[float, dict[str, np.ndarray]]:
    """Training-mode loss (with regularisation losses) and its gradient per weight, duofit layout."""
    dtype = spec.train.dtype
    model, heads = _model(spec, weights, x.shape[1:], strict)
    with floatx(dtype), tf.GradientTape() as tape:
        out = model(tf.constant(x.astype(dtype)), training=True)
        loss = make_loss(spec.loss, dtype)(_targets(targets, dtype), out)
        if model.losses:
            loss = loss + tf.add_n(model.losses)
    slots = []
    for i, layer in enumerate(spec.model.layers):
        if isinstance(layer, (DenseLayer, Conv2DLayer)):
            names = ["kernel", "bias"] if layer.use_bias else ["kernel"]
        elif isinstance(layer, BatchNormLayer):
            names = ["gamma", "beta"]
        else:
            continue
        slots += [(f"layers.{i}.{n}", v) for n, v in zip(names, heads[i].trainable_weights, strict=True)]
    grads = tape.gradient(loss, [v for _, v in slots])
    return float(loss), {name: np.asarray(g) for (name, _), g in zip(slots, grads, strict=True)}
