"""The benchmark's backends: duofit itself and the hand-written baselines it is measured against.

Names map to import paths (imported only inside the cell process), the framework each
one needs, and what it evaluates after every epoch, so a table can say what was compared.

Example:
    >>> sorted(RUNNERS)[:3]
    ['duofit-keras', 'duofit-keras-jax', 'duofit-keras-torch']
    >>> runner_info("tensorflow")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    duofit.common.errors.BackendError: unknown benchmark backend 'tensorflow'; allowed: duofit-torch, ...
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from duofit.common.errors import BackendError

__all__ = ["DEVICES", "RUNNERS", "RunnerInfo", "missing_module", "runner_info"]

DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class RunnerInfo:
    """One benchmark backend.

    Attributes:
        impl: ``duofit`` (calls :func:`duofit.run`) or ``baseline`` (hand-written loop).
        framework: ``torch``, ``tensorflow`` or ``numpy``: what the cell imports and threads.
        target: duofit backend name, or ``module:function`` of the baseline.
        requires: Top-level modules that must be installed.
        extra: duofit extra that installs them.
        devices: Devices it can run on.
        epoch_eval: What it evaluates after every epoch.
    """

    impl: str
    framework: str
    target: str
    requires: tuple[str, ...]
    extra: str
    devices: tuple[str, ...]
    epoch_eval: str


_TORCH = ("torch",)
_KERAS = ("tensorflow", "keras")
RUNNERS: dict[str, RunnerInfo] = {
    "duofit-torch": RunnerInfo(
        "duofit", "torch", "torch", _TORCH, "torch", DEVICES, "val loss + the spec's metrics (reference code)"
    ),
    "duofit-keras": RunnerInfo(
        "duofit", "tensorflow", "keras", _KERAS, "tensorflow", DEVICES, "val loss + the spec's metrics (reference code)"
    ),
    "duofit-keras-torch": RunnerInfo(
        "duofit",
        "keras-torch",
        "keras-torch",
        ("torch", "keras"),
        "keras-torch",
        DEVICES,
        "val loss + the spec's metrics (reference code)",
    ),
    "duofit-keras-jax": RunnerInfo(
        "duofit",
        "keras-jax",
        "keras-jax",
        ("jax", "keras"),
        "keras-jax",
        DEVICES,
        "val loss + the spec's metrics (reference code)",
    ),
    "lean-torch": RunnerInfo(
        "baseline", "torch", "duofit.bench.torch_loops:lean_torch", _TORCH, "torch", DEVICES, "val loss"
    ),
    "seed-loop": RunnerInfo(
        "baseline",
        "torch",
        "duofit.bench.torch_loops:seed_loop",
        _TORCH,
        "torch",
        DEVICES,
        "test loss + accuracy over a DataLoader",
    ),
    "keras-tuned": RunnerInfo(
        "baseline", "tensorflow", "duofit.bench.keras_loops:keras_tuned", _KERAS, "tensorflow", DEVICES, "val loss"
    ),
    "keras-naive-fit": RunnerInfo(
        "baseline",
        "tensorflow",
        "duofit.bench.keras_loops:keras_naive_fit",
        _KERAS,
        "tensorflow",
        DEVICES,
        "val loss + accuracy (fit's validation_data)",
    ),
    "numpy-lean": RunnerInfo(
        "baseline", "numpy", "duofit.bench.numpy_loop:numpy_lean", ("numpy",), "", ("cpu",), "val loss"
    ),
}


def runner_info(name: str) -> RunnerInfo:
    """The :class:`RunnerInfo` of a benchmark backend; unknown names list the allowed ones."""
    try:
        return RUNNERS[name]
    except KeyError:
        raise BackendError(f"unknown benchmark backend {name!r}; allowed: {', '.join(RUNNERS)}") from None


def missing_module(name: str) -> str | None:
    """The first module a backend needs that is not installed (nothing is imported)."""
    for module in runner_info(name).requires:
        if importlib.util.find_spec(module) is None:
            return module
    return None
