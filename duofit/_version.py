"""The package version, in a leaf module that any module can import without importing ``duofit``."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
