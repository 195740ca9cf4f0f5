"""Single-shot evaluations used by tests and parity checks: forward, loss, gradients.

Twin of ``duofit/backends/torch/probe.py``; arrays in and out are numpy in duofit's layout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from duofit.backends.keras.attention import ATTENTION_WEIGHT_NAMES
from duofit.backends.keras.layers import (
    SEQUENCE_WEIGHT_NAMES,
    build_model,
    floatx,
    get_weights,
    present_weights,
    set_weights,
)
from duofit.backends.keras.losses import loss_targets, make_loss
from duofit.backends.keras.modes import run_dtype_outputs
from duofit.backends.keras.native import native
from duofit.backends.keras.rnn import RNN_WEIGHT_NAMES
from duofit.common.spec import BatchNormLayer, Conv2DLayer, DenseLayer, Spec
from duofit.common.spec.shapes import model_input_shape

__all__ = ["TRAINABLE_NAMES", "forward", "gradients", "loss_value", "roundtrip"]


def _recurrent_names(layer: Any) -> list[str]:
    """A recurrent layer's weights; a bidirectional's biases follow its wrapped layer's ``use_bias``."""
    return present_weights(layer)


# spec layer type -> the names of its trainable weights, in the order of Keras' ``trainable_weights``
TRAINABLE_NAMES: dict[type, Callable[[Any], list[str]]] = {
    DenseLayer: present_weights,  # kernel, and bias unless use_bias = false
    Conv2DLayer: present_weights,
    BatchNormLayer: lambda layer: ["gamma", "beta"],  # the moving statistics are not trainable
    **dict.fromkeys(RNN_WEIGHT_NAMES, _recurrent_names),
    **dict.fromkeys(SEQUENCE_WEIGHT_NAMES, present_weights),  # conv1d, norms, embeddings
    **dict.fromkeys(ATTENTION_WEIGHT_NAMES, present_weights),
}


def _model(
    spec: Spec, weights: dict[str, np.ndarray], input_shape: tuple[int, ...], strict: bool = False
) -> tuple[keras.Model, list]:
    model, heads = build_model(spec, input_shape, spec.train.dtype, strict=strict)
    set_weights(heads, spec, weights)
    return model, heads


def roundtrip(spec: Spec, weights: dict[str, np.ndarray], strict: bool = False) -> dict[str, np.ndarray]:
    """Load ``weights`` into a Keras model and read them back (duofit layout, run dtype)."""
    _, heads = _model(spec, weights, model_input_shape(spec.data.sample_shape, weights, spec.model.layers), strict)
    return get_weights(heads, spec)


def _targets(targets: np.ndarray, dtype: str) -> Any:
    return keras.ops.convert_to_tensor(loss_targets(targets, dtype))


def forward(
    spec: Spec, weights: dict[str, np.ndarray], x: np.ndarray, training: bool = False, strict: bool = False
) -> np.ndarray:
    """Model outputs for ``x`` with the given weights (inference mode unless ``training``), in the run's dtype."""
    model, _ = _model(spec, weights, x.shape[1:], strict)
    dtype = spec.train.dtype
    if not training:
        return run_dtype_outputs(model.predict_on_batch(x.astype(dtype)), dtype)
    out = model(keras.ops.convert_to_tensor(x.astype(dtype)), training=True)
    return np.array(run_dtype_outputs(keras.ops.convert_to_numpy(keras.ops.stop_gradient(out)), dtype))


def loss_value(spec: Spec, outputs: np.ndarray, targets: np.ndarray) -> float:
    """The spec's loss of ``outputs`` against loss-ready ``targets``."""
    dtype = spec.train.dtype
    value = make_loss(spec.loss, dtype)(_targets(targets, dtype), keras.ops.convert_to_tensor(outputs.astype(dtype)))
    return float(keras.ops.convert_to_numpy(value))


def gradients(
    spec: Spec, weights: dict[str, np.ndarray], x: np.ndarray, targets: np.ndarray, strict: bool = False
) -> tuple[float, dict[str, np.ndarray]]:
    """Training-mode loss (with regularisation losses) and its gradient per weight, duofit layout."""
    dtype = spec.train.dtype
    model, heads = _model(spec, weights, x.shape[1:], strict)
    inputs = keras.ops.convert_to_tensor(x.astype(dtype))
    t = _targets(targets, dtype)
    loss_obj = make_loss(spec.loss, dtype)

    def loss_fn(m: keras.Model) -> Any:
        out = m(inputs, training=True)
        loss = loss_obj(t, out)
        for extra in m.losses:  # regularisation losses, as fit adds them
            loss = loss + extra
        return loss

    with floatx(dtype):
        loss, grads_all = native().value_and_grads(model, loss_fn)
    by_id = {id(v): g for v, g in zip(model.trainable_variables, grads_all, strict=True)}
    slots = []
    for i, layer in enumerate(spec.model.layers):
        names = TRAINABLE_NAMES.get(type(layer))
        if names is not None:
            slots += [(f"layers.{i}.{n}", v) for n, v in zip(names(layer), heads[i].trainable_weights, strict=True)]
    loss_np = float(keras.ops.convert_to_numpy(loss))
    return loss_np, {name: np.array(keras.ops.convert_to_numpy(by_id[id(v)])) for name, v in slots}
