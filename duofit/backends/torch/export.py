"""Save and load trained weights as torch files (no pickle): ``.safetensors`` or ``.npz``.

The files hold the model's ``state_dict`` (torch names and layouts, e.g. ``0.0.weight`` of
shape ``[out, in]``), so plain PyTorch code can load them into the same architecture.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from duofit.backends.torch.layers import build_model, get_weights, set_weights
from duofit.common.errors import DataError
from duofit.common.spec import Spec

__all__ = ["load_weights", "save_weights"]


def save_weights(spec: Spec, weights: dict[str, np.ndarray], path: Path, input_shape: tuple[int, ...]) -> None:
    """Write duofit-layout ``weights`` as a torch ``state_dict`` file."""
    model, heads = build_model(spec, input_shape, spec.train.dtype)
    set_weights(heads, spec, weights)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        np.savez(path, **{k: v.numpy() for k, v in state.items()})


def load_weights(spec: Spec, path: Path, input_shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Read a torch ``state_dict`` file back into duofit-layout arrays."""
    model, heads = build_model(spec, input_shape, spec.train.dtype)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        with np.load(path, allow_pickle=False) as data:
            state = {k: torch.as_tensor(data[k]) for k in data.files}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise DataError(f"{path}: does not match the spec's model: {exc}", path="weights") from None
    return get_weights(heads, spec)
