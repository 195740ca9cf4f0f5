"""Backend registry: names -> import paths, imported only on first use.

Example:
    >>> list(BACKENDS)
    ['torch', 'keras', 'keras-torch', 'keras-jax']
    >>> get_backend("tensorflow")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    duofit.common.errors.BackendError: unknown backend 'tensorflow'; available names: keras, keras-jax, ...
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any

from duofit.common.errors import BackendError, BackendNotInstalledError

__all__ = [
    "BACKENDS",
    "BackendInfo",
    "backend_module",
    "check_installed",
    "get_backend",
    "installed_backends",
    "is_installed",
]


@dataclass(frozen=True)
class BackendInfo:
    """How to find and install one backend.

    Attributes:
        module: Import path of the backend package.
        requires: Top-level Python modules it needs.
        extra: The duofit extra that installs them.
        framework: Human name of the framework.
        isolated: Run it in its own process in `compare` (Keras reads KERAS_BACKEND once).
        code: Package holding its twin modules (``probe``, ``export``, ``layers``...);
            the Keras backends share ``duofit.backends.keras``. Default: ``module``.
    """

    module: str
    requires: tuple[str, ...]
    extra: str
    framework: str
    isolated: bool
    code: str = ""


BACKENDS: dict[str, BackendInfo] = {
    "torch": BackendInfo("duofit.backends.torch", ("torch",), "torch", "PyTorch", isolated=False),
    "keras": BackendInfo(
        "duofit.backends.keras", ("tensorflow", "keras"), "tensorflow", "Keras 3 on TensorFlow", isolated=True
    ),
    "keras-torch": BackendInfo(
        "duofit.backends.keras_torch",
        ("torch", "keras"),
        "keras-torch",
        "Keras 3 on PyTorch",
        isolated=True,
        code="duofit.backends.keras",
    ),
    "keras-jax": BackendInfo(
        "duofit.backends.keras_jax",
        ("jax", "keras"),
        "keras-jax",
        "Keras 3 on JAX",
        isolated=True,
        code="duofit.backends.keras",
    ),
}


def _info(name: str) -> BackendInfo:
    try:
        return BACKENDS[name]
    except KeyError:
        raise BackendError(f"unknown backend {name!r}; available names: {', '.join(sorted(BACKENDS))}") from None


def _missing(name: str) -> str | None:
    for mod in _info(name).requires:
        if importlib.util.find_spec(mod) is None:
            return mod
    return None


def is_installed(name: str) -> bool:
    """True when every package the backend needs can be imported (nothing is imported)."""
    return _missing(name) is None


def installed_backends() -> list[str]:
    """Names of the backends whose frameworks are installed, in registry order."""
    return [name for name in BACKENDS if is_installed(name)]


def check_installed(name: str) -> BackendInfo:
    """Return the backend's info, without importing it.

    Raises:
        BackendError: unknown name (lists the known ones).
        BackendNotInstalledError: its framework is missing (names the extra to install).
    """
    info = _info(name)
    missing = _missing(name)
    if missing is not None:
        raise BackendNotInstalledError(name, missing, info.extra)
    return info


def get_backend(name: str) -> Any:
    """Import and return the backend package ``name`` (see :func:`check_installed`)."""
    return importlib.import_module(check_installed(name).module)


def backend_module(name: str, module: str) -> Any:
    """One of backend ``name``'s twin modules (``probe``, ``export``, ``layers``, ...).

    The backend package is imported first, so a Keras backend selects its framework
    before the shared Keras code loads.

    Example:
        >>> backend_module("torch", "probe").__name__   # doctest: +SKIP
        'duofit.backends.torch.probe'
    """
    info = check_installed(name)
    importlib.import_module(info.module)  # the backend package first: a Keras backend selects its framework
    return importlib.import_module(f"{info.code or info.module}.{module}")
