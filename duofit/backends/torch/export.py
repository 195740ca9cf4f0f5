"""Save and load trained weights as torch files (no pickle): ``.safetensors`` or ``.npz``.

The files hold the model's ``state_dict`` in torch's names and layouts, so plain PyTorch code
can load each layer's entries into the matching ``torch.nn`` module:

- dense / conv: ``3.0.weight`` of shape ``[out, in]`` (``nn.Linear``), ``[out, in, k]``
  (``nn.Conv1d``), ``[out, in, kh, kw]`` (``nn.Conv2d``), as the model holds them;
- ``simple_rnn`` / ``lstm`` / ``gru``: ``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``,
  ``bias_hh_l0`` of a plain ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU(batch_first=True)`` (GRU gate blocks
  in torch's (r, z, n) order; the second bias of SimpleRNN / LSTM is zero, since Keras has one),
  although duofit's torch layers train Keras' layout (``backends/torch/rnn.py``);
- ``bidirectional``: the same names with torch's ``_reverse`` suffix for the backward layer, as a
  plain ``nn.LSTM(..., bidirectional=True)`` holds them;
- ``multi_head_attention``: ``in_proj_weight``, ``in_proj_bias``, ``out_proj.weight``,
  ``out_proj.bias`` of ``nn.MultiheadAttention(E, num_heads, batch_first=True)`` when that module can
  hold the layer (``num_heads * key_dim == E``, ``value_dim == key_dim``, query, key and value all
  ``E`` wide); otherwise duofit's (Keras') names and shapes, which no torch module has.

Loading reads either form of those layers (files written before the translation hold duofit's
layout) and sums a plain module's two RNN biases into Keras' one (:func:`rnn.torch_to_keras`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from duofit.backends.torch import attention, rnn
from duofit.backends.torch.layers import build_model, get_weights, set_weights
from duofit.common.errors import DataError
from duofit.common.spec import Spec
from duofit.common.spec.layers_attention import MultiHeadAttentionLayer
from duofit.common.spec.layers_rnn import BidirectionalLayer, GRULayer, LSTMLayer, SimpleRNNLayer

__all__ = ["PLAIN_LAYOUT", "load_weights", "save_weights"]

State = dict[str, np.ndarray]
_REVERSE = "_reverse"  # torch's suffix for the backward direction (torch/nn/modules/rnn.py RNNBase.__init__)


def _sided(state: State, side: str) -> State:
    return {k.removeprefix(f"{side}."): v for k, v in state.items() if k.startswith(f"{side}.")}


def _bidirectional_to_torch(layer: BidirectionalLayer, state: State) -> State:
    ahead = rnn.keras_to_torch(layer.layer, _sided(state, "forward_layer"))
    back = rnn.keras_to_torch(layer.layer, _sided(state, "backward_layer"))
    return {**ahead, **{f"{k}{_REVERSE}": v for k, v in back.items()}}


def _bidirectional_to_keras(layer: BidirectionalLayer, state: State) -> State:
    ahead = rnn.torch_to_keras(layer.layer, {k: v for k, v in state.items() if not k.endswith(_REVERSE)})
    back = rnn.torch_to_keras(
        layer.layer, {k.removesuffix(_REVERSE): v for k, v in state.items() if k.endswith(_REVERSE)}
    )
    return {
        **{f"forward_layer.{k}": v for k, v in ahead.items()},
        **{f"backward_layer.{k}": v for k, v in back.items()},
    }


def _attention_fits(layer: MultiHeadAttentionLayer, state: State) -> bool:
    """Whether ``nn.MultiheadAttention`` can hold the layer (cause ``mha_key_dim``)."""
    width = state["query_kernel"].shape[0]
    same_width = all(state[f"{p}_kernel"].shape[0] == width for p in ("key", "value"))
    return (
        same_width
        and layer.num_heads * layer.key_dim == width
        and layer.head_value_dim == layer.key_dim
        and state["output_kernel"].shape[-1] == width
    )


def _attention_to_torch(layer: MultiHeadAttentionLayer, state: State) -> State:
    return attention.keras_to_torch(layer, state) if _attention_fits(layer, state) else state


# Spec type -> (the module's state in duofit's layout -> a plain torch module's state; back), on
# one layer's entries without its prefix; plus the key that marks the plain form in a file.
PLAIN_LAYOUT: dict[type, tuple[Callable[[Any, State], State], Callable[[Any, State], State], str]] = {
    SimpleRNNLayer: (rnn.keras_to_torch, rnn.torch_to_keras, "weight_ih_l0"),
    LSTMLayer: (rnn.keras_to_torch, rnn.torch_to_keras, "weight_ih_l0"),
    GRULayer: (rnn.keras_to_torch, rnn.torch_to_keras, "weight_ih_l0"),
    BidirectionalLayer: (_bidirectional_to_torch, _bidirectional_to_keras, "weight_ih_l0"),
    MultiHeadAttentionLayer: (_attention_to_torch, attention.torch_to_keras, "in_proj_weight"),
}


def _prefixes(spec: Spec, model: nn.Module, heads: list[nn.Module]) -> list[tuple[int, str]]:
    """``(layer index, its state_dict prefix)`` of every layer with a plain torch layout."""
    names = {id(module): name for name, module in model.named_modules()}
    return [(i, f"{names[id(heads[i])]}.") for i, layer in enumerate(spec.model.layers) if type(layer) in PLAIN_LAYOUT]


def _translated(spec: Spec, model: nn.Module, heads: list[nn.Module], state: State, to_torch: bool) -> State:
    """``state`` with each translatable layer's entries in the plain (``to_torch``) or duofit layout."""
    out = dict(state)
    for i, prefix in _prefixes(spec, model, heads):
        layer = spec.model.layers[i]
        forward, backward, marker = PLAIN_LAYOUT[type(layer)]
        local = {k[len(prefix) :]: out.pop(k) for k in list(out) if k.startswith(prefix)}
        if not to_torch and marker not in local:  # a file in duofit's layout: kept as it is
            new = local
        else:
            try:
                new = forward(layer, local) if to_torch else backward(layer, local)
            except KeyError as exc:
                raise DataError(
                    f"model.layers[{i}] ({layer.type}): the file lacks {prefix}{exc.args[0]}", path="weights"
                ) from None
        out.update({f"{prefix}{k}": np.ascontiguousarray(v) for k, v in new.items()})
    return out


def save_weights(spec: Spec, weights: dict[str, np.ndarray], path: Path, input_shape: tuple[int, ...]) -> None:
    """Write duofit-layout ``weights`` as a torch ``state_dict`` file (module docstring: the names)."""
    model, heads = build_model(spec, input_shape, spec.train.dtype)
    set_weights(heads, spec, weights)
    state = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    plain = _translated(spec, model, heads, state, to_torch=True)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: torch.from_numpy(v) for k, v in plain.items()}, str(path))
    else:
        arrays: dict[str, Any] = plain  # numpy's stubs type **kwds as savez's own flags
        np.savez(path, **arrays)


def load_weights(spec: Spec, path: Path, input_shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Read a torch ``state_dict`` file (plain torch or duofit layout) back into duofit-layout arrays."""
    model, heads = build_model(spec, input_shape, spec.train.dtype)
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        state = load_file(str(path))
    else:
        with np.load(path, allow_pickle=False) as data:
            state = {k: data[k] for k in data.files}
    state = _translated(spec, model, heads, state, to_torch=False)
    try:
        model.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()}, strict=True)
    except RuntimeError as exc:
        raise DataError(f"{path}: does not match the spec's model: {exc}", path="weights") from None
    return get_weights(heads, spec)
