"""Backend registry: names -> :class:`~duofit.backends.base.Backend` objects, frameworks imported on first use.

:func:`get_backend` checks the install, imports the backend's package (a Keras backend
selects its framework there) and returns its typed backend object; :func:`describe`
returns the same object without importing anything, for what needs no framework
(``export_formats``, ``strict_translations``).

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
from typing import TYPE_CHECKING

from duofit.common.errors import BackendError, BackendNotInstalledError

if TYPE_CHECKING:
    from duofit.backends.base import Backend

__all__ = [
    "BACKENDS",
    "BackendInfo",
    "check_installed",
    "describe",
    "get_backend",
    "installed_backends",
    "is_installed",
]


@dataclass(frozen=True)
class BackendInfo:
    """How to find and install one backend.

    Attributes:
        requires: Top-level Python modules it needs.
        extra: The duofit extra that installs them.
        framework: Human name of the framework.
        isolated: Run it in its own process in `compare` (Keras reads KERAS_BACKEND once).
        backend: ``module:Class`` of its :class:`~duofit.backends.base.Backend` (framework-free
            module); the class is called with the backend's name.
    """

    requires: tuple[str, ...]
    extra: str
    framework: str
    isolated: bool
    backend: str = "duofit.backends.kerasbackend:KerasBackend"


BACKENDS: dict[str, BackendInfo] = {
    "torch": BackendInfo(
        ("torch",),
        "torch",
        "PyTorch",
        isolated=False,
        backend="duofit.backends.torchbackend:TorchBackend",
    ),
    "keras": BackendInfo(("tensorflow", "keras"), "tensorflow", "Keras 3 on TensorFlow", isolated=True),
    "keras-torch": BackendInfo(
        ("torch", "keras"),
        "keras-torch",
        "Keras 3 on PyTorch",
        isolated=True,
    ),
    "keras-jax": BackendInfo(
        ("jax", "keras"),
        "keras-jax",
        "Keras 3 on JAX",
        isolated=True,
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


def describe(name: str) -> Backend:
    """The backend object for ``name`` without importing its framework or checking the install.

    Its framework-free members (``name``, ``framework``, ``export_formats``,
    ``strict_translations``) are safe to use in any process; use :func:`get_backend` for the rest.

    Raises:
        BackendError: unknown name (lists the known ones).

    Example:
        >>> describe("keras-jax").framework
        'Keras 3 on JAX'
    """
    module, cls = _info(name).backend.split(":")
    backend: Backend = getattr(importlib.import_module(module), cls)(name)
    return backend


def get_backend(name: str) -> Backend:
    """Check the install, import backend ``name``'s package and return its backend object.

    A Keras backend selects its framework on import (KERAS_BACKEND, once per process).

    Raises:
        BackendError: unknown name, or Keras already runs on another framework here.
        BackendNotInstalledError: its framework is missing (names the extra to install).

    Example:
        Not run as a doctest: it trains a model and needs torch installed.

        >>> get_backend("torch").fit(plan, recorder)   # doctest: +SKIP
    """
    check_installed(name)
    backend = describe(name)
    backend.load()
    return backend
