"""torch optimizer state <-> duofit's neutral optimizer state (:mod:`duofit.common.optstate`).

The neutral slots are ``torch.optim``'s own per-parameter state (torch 2.13,
``torch/optim/sgd.py`` ``momentum_buffer``; ``adam.py``/``adamw.py`` ``step``, ``exp_avg``,
``exp_avg_sq``, ``max_exp_avg_sq``; ``rmsprop.py`` ``step``, ``square_avg``, ``grad_avg``,
``momentum_buffer``), so only the layout changes: a moment has its parameter's shape, and a
parameter's torch layout is translated to duofit's (Keras') by the same permutation that
:func:`duofit.backends.torch.layers.get_weights` applies to the weight itself (dense and conv
kernels; recurrent and attention layers already train in duofit's layout).

The state is written with ``Optimizer.load_state_dict``, which casts every moment to its
parameter's dtype and device and ``step`` to float32 on the device for fused kernels
(``torch/optim/optimizer.py`` ``_process_value_according_to_param_policy``), exactly as a
fresh optimizer would hold them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from duofit.backends.torch.layers import _slots
from duofit.common.errors import BackendError
from duofit.common.optstate import OptimizerState, slot_key
from duofit.common.spec import Spec

__all__ = ["STATE_KEYS", "read_state", "write_state"]

# torch optimizer class -> ({neutral slot: its state key}, whether its state counts ``step``)
STATE_KEYS: dict[type, tuple[dict[str, str], bool]] = {
    torch.optim.SGD: ({"momentum": "momentum_buffer"}, False),
    torch.optim.Adam: ({"m": "exp_avg", "v": "exp_avg_sq", "vmax": "max_exp_avg_sq"}, True),  # AdamW too
    torch.optim.RMSprop: ({"rms": "square_avg", "mg": "grad_avg", "momentum": "momentum_buffer"}, True),
}

_Named = dict[int, tuple[str, "tuple[int, ...] | None"]]


def _scalar_dtype() -> torch.dtype:
    """The dtype a fresh optimizer counts ``step`` in (``torch/optim/optimizer.py`` ``_get_scalar_dtype``)."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def _keys(optimizer: torch.optim.Optimizer) -> tuple[dict[str, str], bool]:
    for cls in type(optimizer).__mro__:
        if cls in STATE_KEYS:
            return STATE_KEYS[cls]
    supported = ", ".join(c.__name__ for c in STATE_KEYS)
    raise BackendError(f"optimizer state: {type(optimizer).__name__} is not translated; supported: {supported}")


def _named(heads: Sequence[nn.Module], spec: Spec) -> _Named:
    """``id(parameter) -> (duofit name, permutation from duofit's layout to torch's)``."""
    return {id(tensor): (name, perm) for name, tensor, perm in _slots(heads, spec)}


def _params(optimizer: torch.optim.Optimizer, named: _Named) -> list[tuple[torch.Tensor, str, tuple[int, ...] | None]]:
    """The optimizer's parameters in ``state_dict`` order, each with its duofit name and permutation."""
    out = []
    for group in optimizer.param_groups:
        for p in group["params"]:
            if id(p) not in named:
                raise BackendError(f"optimizer state: a parameter of shape {tuple(p.shape)} has no duofit name")
            out.append((p, *named[id(p)]))
    return out


def read_state(optimizer: torch.optim.Optimizer, heads: Sequence[nn.Module], spec: Spec) -> dict[str, np.ndarray]:
    """The optimizer's per-parameter state as neutral slots in duofit's layout.

    Args:
        optimizer: The fit's optimizer (after its last step).
        heads: The model's per-layer modules (``build_model``'s second value).
        spec: The spec the model was built from.

    Returns:
        ``{"<slot>/layers.<i>.<param>": array}``; parameters without state (no step yet) are absent.
    """
    keys, _ = _keys(optimizer)
    out: dict[str, np.ndarray] = {}
    for p, name, perm in _params(optimizer, _named(heads, spec)):
        state = optimizer.state.get(p, {})
        for slot, key in keys.items():
            value = state.get(key)
            if value is None:
                continue
            arr = value.detach().cpu().numpy()
            out[slot_key(slot, name)] = np.ascontiguousarray(arr.transpose(np.argsort(perm)) if perm else arr).copy()
    return out


def write_state(
    optimizer: torch.optim.Optimizer, heads: Sequence[nn.Module], spec: Spec, state: OptimizerState
) -> None:
    """Load a neutral state into a freshly built optimizer (its ``step`` included).

    Args:
        optimizer: The fit's optimizer, before its first step.
        heads: The model's per-layer modules.
        spec: The spec the model was built from.
        state: The state to continue from, checked against the spec beforehand.
    """
    keys, counts_steps = _keys(optimizer)
    entries: dict[int, dict[str, torch.Tensor]] = {}
    for index, (p, name, perm) in enumerate(_params(optimizer, _named(heads, spec))):
        entry: dict[str, torch.Tensor] = {}
        for slot, key in keys.items():
            arr = state.slots.get(slot_key(slot, name))
            if arr is not None:
                entry[key] = torch.as_tensor(np.ascontiguousarray(arr.transpose(perm) if perm else arr), dtype=p.dtype)
        if entry and counts_steps:
            entry["step"] = torch.tensor(float(state.step), dtype=_scalar_dtype())
        if entry:
            entries[index] = entry
    saved = optimizer.state_dict()
    saved["state"] = entries
    optimizer.load_state_dict(saved)
