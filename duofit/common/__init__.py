"""The framework-free core every other package builds on.

The spec package (``spec``) and its loader, datasets, metrics, histories, diagnostics,
plots, safe file writing and the backend registry. Nothing here imports a deep-learning
framework or another duofit package; importing this package imports none of its modules.
"""

from __future__ import annotations

__all__: list[str] = []
