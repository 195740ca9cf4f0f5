"""Single-shot evaluations used by tests and parity checks: forward, loss, gradients.

Twin of ``duofit/backends/keras/probe.py``; arrays in and out are numpy in duofit's layout.
"""

from __future__ import annotations

import numpy as np
import torch

from duofit.backends.torch.layers import (
    DTYPES,
    _slots,
    build_model,
    get_weights,
    kernel_penalty,
    set_weights,
    to_model_input,
)
from duofit.backends.torch.layers import targets as target_tensor  # `targets` names the arrays here
from duofit.backends.torch.losses import make_loss
from duofit.backends.torch.modes import inference
from duofit.common.spec import Spec
from duofit.common.spec.shapes import model_input_shape

__all__ = ["forward", "gradients", "loss_value", "roundtrip"]


def _model(
    spec: Spec, weights: dict[str, np.ndarray], input_shape: tuple[int, ...]
) -> tuple[torch.nn.Sequential, list[torch.nn.Module]]:
    model, heads = build_model(spec, input_shape, spec.train.dtype)
    set_weights(heads, spec, weights)
    return model, heads


def roundtrip(spec: Spec, weights: dict[str, np.ndarray], strict: bool = False) -> dict[str, np.ndarray]:
    """Load ``weights`` into a torch model and read them back (duofit layout, run dtype)."""
    _, heads = _model(spec, weights, model_input_shape(spec.data.sample_shape, weights, spec.model.layers))
    return get_weights(heads, spec)


def forward(
    spec: Spec, weights: dict[str, np.ndarray], x: np.ndarray, training: bool = False, strict: bool = False
) -> np.ndarray:
    """Model outputs for ``x`` with the given weights (eval mode unless ``training``), in the spec's precision."""
    model, _ = _model(spec, weights, x.shape[1:])
    model.train(training)
    dtype = DTYPES[spec.train.dtype]
    with torch.no_grad():
        return inference(model, spec.train, torch.device("cpu"), dtype)(to_model_input(x, dtype)).numpy()


def loss_value(spec: Spec, outputs: np.ndarray, targets: np.ndarray) -> float:
    """The spec's loss of ``outputs`` against loss-ready ``targets``."""
    dtype = DTYPES[spec.train.dtype]
    out = torch.as_tensor(outputs, dtype=dtype)
    return float(make_loss(spec.loss)(out, target_tensor(targets, dtype)))


def gradients(
    spec: Spec, weights: dict[str, np.ndarray], x: np.ndarray, targets: np.ndarray, strict: bool = False
) -> tuple[float, dict[str, np.ndarray]]:
    """Training-mode loss (with L1/L2 penalty) and its gradient per weight, duofit layout (spec's precision)."""
    dtype = DTYPES[spec.train.dtype]
    model, heads = _model(spec, weights, x.shape[1:])
    model.train()
    out = inference(model, spec.train, torch.device("cpu"), dtype)(to_model_input(x, dtype))
    loss = make_loss(spec.loss)(out, target_tensor(targets, dtype))
    penalty = kernel_penalty(heads, spec)
    if penalty is not None:
        loss = loss + penalty()
    loss.backward()

    grads = {}
    for name, tensor, perm in _slots(heads, spec):
        if tensor.grad is not None:
            g = tensor.grad.numpy()
            grads[name] = np.ascontiguousarray(g.transpose(np.argsort(perm)) if perm else g)
    return float(loss.detach()), grads
