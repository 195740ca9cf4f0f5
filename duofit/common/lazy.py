"""Lazy attributes of a package: heavy submodules are imported on first use (PEP 562).

Example:
    >>> getattr_ = lazy_getattr("demo", {"sqrt": "math"})
    >>> getattr_("sqrt")(4.0)
    2.0
    >>> getattr_("nope")
    Traceback (most recent call last):
    ...
    AttributeError: module 'demo' has no attribute 'nope'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_getattr"]


def lazy_getattr(package: str, table: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``table[name]`` on first use and returns its ``name``.

    Args:
        package: The package's name, for the ``AttributeError`` of an unknown name.
        table: Attribute name -> module that defines it.
    """

    def __getattr__(name: str) -> Any:
        if name in table:
            return getattr(importlib.import_module(table[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
