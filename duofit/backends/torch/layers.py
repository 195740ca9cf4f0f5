"""Spec layers -> torch modules, and weights in/out in duofit's (Keras) layout.

Translations (spec meaning -> torch):
- dense kernel is stored ``[in, out]``; ``nn.Linear.weight`` is ``[out, in]`` (transposed).
- batch_norm momentum uses torch's convention already (weight of the new batch statistic);
  torch keeps the *unbiased* batch variance in ``running_var`` (Keras: biased).
- leaky_relu slope is passed explicitly (torch default 0.01, Keras 0.2).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import torch
from duofit.common.errors import BackendError, unsupported
from duofit.common.spec import (
    ActivationLayer,
    BatchNormLayer,
    DenseLayer,
    DropoutLayer,
    FlattenLayer,
    Spec,
)
from torch import nn

__all__ = ["ACTIVATIONS", "LAYERS", "build_model", "get_weights", "set_weights"]

ACTIVATIONS: dict[str, Callable[[float], nn.Module]] = {
    "relu": lambda slope: nn.ReLU(),
    "sigmoid": lambda slope: nn.Sigmoid(),
    "tanh": lambda slope: nn.Tanh(),
    "softmax": lambda slope: nn.Softmax(dim=-1),
    "gelu": lambda slope: nn.GELU(approximate="none"),  # exact erf form, as Keras' default
    "leaky_relu": lambda slope: nn.LeakyReLU(negative_slope=slope),
    "linear": lambda slope: nn.Identity(),
}
_DEFAULT_SLOPE = ActivationLayer.model_fields["negative_slope"].default


def _dense(layer: DenseLayer, width: int) -> tuple[nn.Module, int]:
    linear = nn.Linear(width, layer.units, bias=layer.use_bias)
    if layer.activation in (None, "linear"):
        return linear, layer.units
    return nn.Sequential(linear, ACTIVATIONS[layer.activation](_DEFAULT_SLOPE)), layer.units


def _activation(layer: ActivationLayer, width: int) -> tuple[nn.Module, int]:
    return ACTIVATIONS[layer.activation](layer.negative_slope), width


def _dropout(layer: DropoutLayer, width: int) -> tuple[nn.Module, int]:
    return nn.Dropout(p=layer.rate), width


def _batch_norm(layer: BatchNormLayer, width: int) -> tuple[nn.Module, int]:
    return nn.BatchNorm1d(width, eps=layer.epsilon, momentum=layer.momentum), width


def _flatten(layer: FlattenLayer, width: int) -> tuple[nn.Module, int]:
    return nn.Flatten(), width


LAYERS: dict[type, Callable[..., tuple[nn.Module, int]]] = {
    DenseLayer: _dense,
    ActivationLayer: _activation,
    DropoutLayer: _dropout,
    BatchNormLayer: _batch_norm,
    FlattenLayer: _flatten,
}


def build_model(spec: Spec, n_features: int) -> nn.Sequential:
    """One ``nn.Sequential`` entry per spec layer.

    A dense layer with an activation is a two-module ``nn.Sequential`` of its own.

    Example:
        >>> build_model(spec, n_features=2)  # doctest: +SKIP
        Sequential((0): Sequential((0): Linear(2, 10) (1): ReLU()) (1): Linear(10, 1))
    """
    modules: list[nn.Module] = []
    width = n_features
    for i, layer in enumerate(spec.model.layers):
        factory = LAYERS.get(type(layer))
        if factory is None:
            raise unsupported("torch", f"model.layers[{i}]", layer, LAYERS)
        module, width = factory(layer, width)
        modules.append(module)
    return nn.Sequential(*modules)


def _linear(block: nn.Module) -> nn.Linear:
    return block if isinstance(block, nn.Linear) else block[0]  # type: ignore[index,return-value]


def _slots(model: nn.Sequential, spec: Spec) -> list[tuple[str, torch.Tensor, bool]]:
    """``(duofit name, torch tensor, transpose)`` for every stored tensor."""
    slots: list[tuple[str, torch.Tensor, bool]] = []
    for i, layer in enumerate(spec.model.layers):
        block = model[i]
        if isinstance(layer, DenseLayer):
            lin = _linear(block)
            slots.append((f"layers.{i}.kernel", lin.weight, True))
            if lin.bias is not None:
                slots.append((f"layers.{i}.bias", lin.bias, False))
        elif isinstance(layer, BatchNormLayer):
            assert isinstance(block, nn.BatchNorm1d)
            slots += [
                (f"layers.{i}.gamma", block.weight, False),
                (f"layers.{i}.beta", block.bias, False),
                (f"layers.{i}.moving_mean", block.running_mean, False),  # type: ignore[list-item]
                (f"layers.{i}.moving_variance", block.running_var, False),  # type: ignore[list-item]
            ]
    return slots


def set_weights(model: nn.Sequential, spec: Spec, weights: dict[str, np.ndarray]) -> None:
    """Copy duofit-layout arrays into the model (transposing dense kernels)."""
    with torch.no_grad():
        for name, tensor, transpose in _slots(model, spec):
            arr = np.asarray(weights[name])
            src = torch.as_tensor(arr.T if transpose else arr, dtype=tensor.dtype, device=tensor.device)
            if src.shape != tensor.shape:
                raise BackendError(f"weight {name}: shape {tuple(arr.shape)} does not fit the model")
            tensor.copy_(src)


def get_weights(model: nn.Sequential, spec: Spec) -> dict[str, np.ndarray]:
    """Model tensors as duofit-layout numpy arrays."""
    out: dict[str, np.ndarray] = {}
    for name, tensor, transpose in _slots(model, spec):
        arr = tensor.detach().cpu().numpy()
        out[name] = np.ascontiguousarray(arr.T if transpose else arr).copy()
    return out
