"""PyTorch backend: an explicit training loop (see ``trainer.py``)."""

from __future__ import annotations

from typing import Any

import torch
from duofit.backends.torch.trainer import fit

__all__ = ["FRAMEWORK", "devices", "environment", "fit"]

FRAMEWORK = "PyTorch"


def devices() -> list[str]:
    """Devices this backend can train on."""
    out = ["cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
    return out


def environment(device: str = "cpu") -> dict[str, Any]:
    """Versions and numeric flags that can change results or speed."""
    return {
        "framework": FRAMEWORK,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "mkldnn": bool(torch.backends.mkldnn.is_available()),
        "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
        "deterministic_algorithms": bool(torch.are_deterministic_algorithms_enabled()),
    }
