"""Recurrent layers on torch: Keras-layout parameters run through the kernels of ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU``.

Each layer holds its weights as duofit stores them (Keras' layout: ``kernel (F, G*H)``,
``recurrent_kernel (H, G*H)``, one ``bias``) and hands torch's recurrent op translated views at
every call, so gradients land on the Keras-layout tensors and the optimizer sees exactly
Keras' parameters:

- ``weight_ih_l0 = kernel.T``, ``weight_hh_l0 = recurrent_kernel.T`` (``torch/nn/modules/rnn.py``
  RNNBase: ``w_ih`` is ``(gate_size, input_size)``, applied as ``x @ W^T``).
- LSTM gate order (i, f, g, o) is Keras' (i, f, c, o): no reordering
  (``keras/src/backend/torch/rnn.py`` ``prepare_lstm_params`` says so).
- GRU: Keras stacks (z, r, h), torch (r, z, n): blocks reordered; Keras' ``reset_after`` bias
  ``(2, 3H)`` maps row 0 to ``bias_ih_l0`` and row 1 to ``bias_hh_l0`` (both trained on both
  sides). torch has no ``reset_after = false`` form: refused.
- SimpleRNN / LSTM: torch adds a second bias ``bias_hh_l0``; here it is a constant zero buffer,
  as Keras' own torch and cuDNN bridges do (``prepare_lstm_params``: ``bias_hh = torch.zeros``),
  so only Keras' one bias trains (cause ``rnn_double_bias``).
- ``use_bias = false`` (also inside a bidirectional layer): ``bias=False`` on the torch module, so
  neither framework has any bias.
- Always ``batch_first=True`` (torch's default ``False`` reads ``(N, T, F)`` as ``(T, N, F)``).
- The forward calls the op ``nn.LSTM.forward`` calls (``torch._VF.lstm`` ...; see
  :func:`~duofit.backends.torch.compat.rnn_op`) with the translated weights, in the order of
  ``nn.RNNBase._flat_weights_names``; the same kernels, without a module.
- The last output is ``h_n``; a bidirectional layer runs a second layer on the time-reversed
  input and, for ``return_sequences``, reverses its outputs back (Keras ``Bidirectional.call``).

:func:`keras_to_torch` / :func:`torch_to_keras` translate the weights for a plain ``nn.LSTM``
etc. (``duofit convert`` and the round-trip tests).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from duofit.backends.torch.compat import eager_rnn_op, rnn_op
from duofit.common.spec.base import FieldProblem
from duofit.common.spec.layers_rnn import BidirectionalLayer, GRULayer, LSTMLayer, RecurrentBase, SimpleRNNLayer

__all__ = ["RNN_LAYERS", "RNN_SLOTS", "Bidirectional", "Recurrent", "keras_to_torch", "torch_to_keras"]

# spec type -> the op nn.RNN / nn.LSTM / nn.GRU call (torch/nn/modules/rnn.py); nn.RNN picks by nonlinearity
_OPS: dict[type, str] = {SimpleRNNLayer: "rnn_{activation}", LSTMLayer: "lstm", GRULayer: "gru"}
# What torch's cells compute: nn.RNN takes tanh or relu; nn.LSTM / nn.GRU fix tanh and sigmoid.
_TORCH_ACTIVATIONS = {SimpleRNNLayer: ("tanh", "relu"), LSTMLayer: ("tanh",), GRULayer: ("tanh",)}


def _gru_order(k: torch.Tensor | np.ndarray, h: int) -> torch.Tensor | np.ndarray:
    """Keras (z, r, h) blocks on the last axis -> torch (r, z, n); the same swap undoes it."""
    parts = [k[..., h : 2 * h], k[..., :h], k[..., 2 * h :]]
    return torch.cat(parts, dim=-1) if isinstance(k, torch.Tensor) else np.concatenate(parts, axis=-1)


def _check(layer: RecurrentBase, field: str = "") -> None:
    """Refuse what torch's cells cannot compute.

    Args:
        layer: The recurrent spec.
        field: Where ``layer`` sits inside its spec layer (``"layer."`` for a bidirectional's).

    Raises:
        FieldProblem: path relative to the spec layer (e.g. ``layer.activation``); ``build_model``
            prefixes ``model.layers[i].``, the layer's index, and raises a SpecError.
    """
    allowed = _TORCH_ACTIVATIONS[type(layer)]
    if layer.activation not in allowed:
        raise FieldProblem(
            f"{field}activation",
            f"the torch backend's {layer.type} computes only {' or '.join(allowed)}, got {layer.activation!r}; "
            f"use activation = {allowed[0]!r} or leave torch out of --backends",
        )
    recurrent = getattr(layer, "recurrent_activation", "sigmoid")
    if recurrent != "sigmoid":
        raise FieldProblem(
            f"{field}recurrent_activation",
            f"the torch backend's {layer.type} gates use sigmoid only, got {recurrent!r}; use "
            "recurrent_activation = 'sigmoid' (Keras 2's hard_sigmoid has no torch form)",
        )
    if isinstance(layer, GRULayer) and not layer.reset_after:
        raise FieldProblem(
            f"{field}reset_after",
            "the torch backend's GRU has only reset_after = true semantics (nn.GRU applies the reset gate after "
            "the recurrent matmul); use reset_after = true or leave torch out of --backends",
        )


class Recurrent(nn.Module):
    """One recurrent layer with Keras-layout parameters; ``forward`` returns all steps or the last."""

    def __init__(self, layer: RecurrentBase, features: int, field: str = "") -> None:
        super().__init__()
        _check(layer, field)
        g, h = layer.gates, layer.units
        self.units, self.gru, self.return_sequences = h, isinstance(layer, GRULayer), layer.return_sequences
        self._op = _OPS[type(layer)].format(activation=layer.activation)
        self.kernel = nn.Parameter(torch.empty(features, g * h))
        self.recurrent_kernel = nn.Parameter(torch.empty(h, g * h))
        self.bias = nn.Parameter(torch.empty(2, g * h) if self.gru else torch.empty(g * h)) if layer.use_bias else None
        if self.gru:  # Keras' (z, r, h) columns in torch's (r, z, n) order
            order = torch.as_tensor(_gru_order(np.arange(g * h), h))
            self.register_buffer("gate_order", order, persistent=False)
        if layer.use_bias and not self.gru:  # torch's second bias, fixed at zero (cause rnn_double_bias)
            self.register_buffer("bias_hh", torch.zeros(g * h), persistent=False)

    def _params(self) -> list[torch.Tensor]:
        """The flat weights torch's op reads: ``weight_ih_l0``, ``weight_hh_l0`` (, ``bias_ih_l0``, ``bias_hh_l0``)."""
        k, r = self.kernel, self.recurrent_kernel
        if self.gru:  # one gather per tensor (cheaper than slicing and concatenating the three blocks)
            k, r = k.index_select(1, self.gate_order), r.index_select(1, self.gate_order)
        params = [k.T, r.T]
        if self.bias is not None:
            if self.gru:
                b = self.bias.index_select(1, self.gate_order)
                params += [b[0], b[1]]
            else:
                params += [self.bias, self.bias_hh]
        return params

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        h0 = torch.zeros(1, x.shape[0], self.units, dtype=x.dtype, device=x.device)
        hx = (h0, h0) if self._op == "lstm" else h0
        # one layer, no dropout, one direction, batch first; an LSTM runs eagerly inside a compiled step
        compiled_lstm = self._op == "lstm" and torch.compiler.is_compiling()
        op = eager_rnn_op(self._op) if compiled_lstm else rnn_op(self._op)
        out, h_n, *_ = op(x, hx, self._params(), self.bias is not None, 1, 0.0, self.training, False, True)
        return out if self.return_sequences else h_n[-1]


class Bidirectional(nn.Module):
    """A recurrent layer forwards and a twin on the reversed sequence, merged by concat or sum."""

    def __init__(self, layer: BidirectionalLayer, features: int) -> None:
        super().__init__()
        self.forward_layer = Recurrent(layer.layer, features, "layer.")
        self.backward_layer = Recurrent(layer.layer, features, "layer.")
        self.merge, self.return_sequences = layer.merge, layer.layer.return_sequences

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        ahead = self.forward_layer(x)
        back = self.backward_layer(x.flip(1))
        if self.return_sequences:
            back = back.flip(1)
        return torch.cat([ahead, back], dim=-1) if self.merge == "concat" else ahead + back


def _recurrent(layer: RecurrentBase, shape: tuple[int, ...], out: tuple[int, ...]) -> nn.Module:
    return Recurrent(layer, shape[-1])


def _bidirectional(layer: BidirectionalLayer, shape: tuple[int, ...], out: tuple[int, ...]) -> nn.Module:
    return Bidirectional(layer, shape[-1])


# Entries of the torch LAYERS table: spec type -> module factory (layer, input shape, output shape).
RNN_LAYERS: dict[type, Callable[..., nn.Module]] = {
    SimpleRNNLayer: _recurrent,
    LSTMLayer: _recurrent,
    GRULayer: _recurrent,
    BidirectionalLayer: _bidirectional,
}

Slot = tuple[str, torch.Tensor, "tuple[int, ...] | None"]


def _slots_of(prefix: str, block: Recurrent) -> list[Slot]:
    slots: list[Slot] = [
        (f"{prefix}kernel", block.kernel, None),
        (f"{prefix}recurrent_kernel", block.recurrent_kernel, None),
    ]
    if block.bias is not None:
        slots.append((f"{prefix}bias", block.bias, None))
    return slots


def _single_slots(i: int, block: nn.Module) -> list[Slot]:
    assert isinstance(block, Recurrent)
    return _slots_of(f"layers.{i}.", block)


def _bidirectional_slots(i: int, block: nn.Module) -> list[Slot]:
    assert isinstance(block, Bidirectional)
    return _slots_of(f"layers.{i}.forward_", block.forward_layer) + _slots_of(
        f"layers.{i}.backward_", block.backward_layer
    )


# Spec type -> (layer index, its module) -> (duofit name, tensor, permutation): the parameters are
# already in duofit's layout, so no permutation.
RNN_SLOTS: dict[type, Callable[[int, nn.Module], list[Slot]]] = {
    SimpleRNNLayer: _single_slots,
    LSTMLayer: _single_slots,
    GRULayer: _single_slots,
    BidirectionalLayer: _bidirectional_slots,
}


def keras_to_torch(layer: RecurrentBase, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Keras-layout weights -> a plain torch module's ``state_dict`` (``weight_ih_l0`` ...).

    The second bias of SimpleRNN / LSTM is zero (torch's effective bias is the sum).

    Example:
        >>> w = {"kernel": np.arange(6.0).reshape(1, 6), "recurrent_kernel": np.zeros((2, 6)),
        ...      "bias": np.zeros((2, 6))}
        >>> keras_to_torch(GRULayer(type="gru", units=2), w)["weight_ih_l0"].ravel().tolist()
        [2.0, 3.0, 0.0, 1.0, 4.0, 5.0]
    """
    order: Callable[[np.ndarray], np.ndarray] = (
        (lambda a: np.asarray(_gru_order(a, layer.units))) if isinstance(layer, GRULayer) else (lambda a: a)
    )
    out = {
        "weight_ih_l0": order(weights["kernel"]).T.copy(),
        "weight_hh_l0": order(weights["recurrent_kernel"]).T.copy(),
    }
    if "bias" in weights:
        b = order(weights["bias"])
        out["bias_ih_l0"], out["bias_hh_l0"] = (b[0], b[1]) if b.ndim == 2 else (b, np.zeros_like(b))
    return out


def torch_to_keras(layer: RecurrentBase, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A plain torch module's ``state_dict`` -> Keras-layout weights (SimpleRNN/LSTM: the bias sum)."""
    order: Callable[[np.ndarray], np.ndarray] = (
        (lambda a: np.asarray(_gru_order(a, layer.units))) if isinstance(layer, GRULayer) else (lambda a: a)
    )
    out = {"kernel": order(state["weight_ih_l0"].T), "recurrent_kernel": order(state["weight_hh_l0"].T)}
    if "bias_ih_l0" in state:
        pair = np.stack([state["bias_ih_l0"], state["bias_hh_l0"]])
        out["bias"] = order(pair) if isinstance(layer, GRULayer) else pair.sum(axis=0)
    return out
