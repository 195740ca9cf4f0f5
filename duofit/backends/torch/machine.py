"""What the torch backend reports and sets about the machine: devices, flags, threads, memory.

Example (skipped: the devices depend on the machine):
    >>> devices()[0]   # doctest: +SKIP
    'cpu'
"""

from __future__ import annotations

from typing import Any

import torch

from duofit.common.envinfo import cpu_model
from duofit.common.errors import BackendError

__all__ = [
    "device_name",
    "devices",
    "framework_environment",
    "init_threads",
    "peak_memory_mb",
    "resolve_device",
    "set_threads",
]


def devices() -> list[str]:
    """Devices this backend can train on."""
    out = ["cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
    return out


def framework_environment() -> dict[str, Any]:
    """Versions and numeric flags that can change results or speed."""
    onednn = torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "onednn": "on" if onednn else "off",
        "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
        "deterministic_algorithms": bool(torch.are_deterministic_algorithms_enabled()),
    }


def init_threads(threads: int) -> None:
    """Intra- and inter-op threads of a fresh process (inter-op only before any parallel op)."""
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # already started by an earlier parallel op: keep it, it is recorded
        pass


def peak_memory_mb() -> float:
    """Peak CUDA memory allocated by this process, MiB."""
    return float(torch.cuda.max_memory_allocated()) / 2**20


def set_threads(threads: int) -> None:
    """Intra-op threads for this process (``train.threads``)."""
    torch.set_num_threads(threads)


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` (error if absent) or ``auto`` (cuda when available)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise BackendError("train.device = 'cuda' but torch sees no CUDA device; use 'cpu' or 'auto'")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    """Human name of the device: the GPU model or the CPU model."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model()
