"""Single-shot evaluations used by tests and parity checks: forward, loss, gradients.

Twin of ``duofit/backends/keras/probe.py``; arrays in and out are numpy in duofit's layout.
"""

from __future__ import annotations

import numpy as np

import torch
from duofit.backends.torch.layers import build_model, get_weights, set_weights
from duofit.backends.torch.losses import make_loss
from duofit.backends.torch.trainer import _DTYPES, _targets
from duofit.common.spec import DenseLayer, Spec

__all__ = ["forward", "gradients", "loss_value", "roundtrip"]


def _model(spec: Spec, weights: dict[str, np.ndarray], n_features: int) -> torch.nn.Sequential:
    model = build_model(spec, n_features).to(dtype=_DTYPES[spec.train.dtype])
    set_weights(model, spec, weights)
    return model


def roundtrip(spec: Spec, weights: dict[str, np.ndarray], strict: bool = False) -> dict[str, np.ndarray]:
    """Load ``weights`` into a torch model and read them back (duofit layout, run dtype)."""
    return get_weights(_model(spec, weights, _n_features(weights)), spec)


def _n_features(weights: dict[str, np.ndarray]) -> int:
    first = next(k for k in weights if k.endswith(".kernel"))
    return int(weights[first].shape[0])


def forward(
    spec: Spec, weights: dict[str, np.ndarray], x: np.ndarray, training: bool = False, strict: bool = False
) -> np.ndarray:
    """Model outputs for ``x`` with the given weights (eval mode unless ``training``)."""
    model = _model(spec, weights, x.shape[1])
    model.train(training)
    with torch.no_grad():
        return model(torch.as_tensor(x, dtype=_DTYPES[spec.train.dtype])).numpy()


def loss_value(spec: Spec, outputs: np.ndarray, targets: np.ndarray) -> float:
    """The spec's loss of ``outputs`` against loss-ready ``targets``."""
    dtype = _DTYPES[spec.train.dtype]
    out = torch.as_tensor(outputs, dtype=dtype)
    return float(make_loss(spec.loss)(out, _targets(targets, dtype, torch.device("cpu"))))


def gradients(
    spec: Spec, weights: dict[str, np.ndarray], x: np.ndarray, targets: np.ndarray, strict: bool = False
) -> tuple[float, dict[str, np.ndarray]]:
    """Training-mode loss (with L1/L2 penalty) and its gradient per weight, duofit layout."""
    dtype = _DTYPES[spec.train.dtype]
    model = _model(spec, weights, x.shape[1])
    model.train()
    loss = make_loss(spec.loss)(model(torch.as_tensor(x, dtype=dtype)), _targets(targets, dtype, torch.device("cpu")))
    for i, layer in enumerate(spec.model.layers):
        if isinstance(layer, DenseLayer) and (layer.l1 or layer.l2):
            block = model[i]
            w = (block if isinstance(block, torch.nn.Linear) else block[0]).weight
            loss = loss + layer.l1 * w.abs().sum() + layer.l2 * w.square().sum()
    loss.backward()
    from duofit.backends.torch.layers import _slots

    grads = {}
    for name, tensor, transpose in _slots(model, spec):
        if tensor.grad is not None:
            g = tensor.grad.numpy()
            grads[name] = np.ascontiguousarray(g.T if transpose else g)
    return float(loss.detach()), grads
