"""PyTorch backend: an explicit training loop (see ``trainer.py``).

Importing this package loads torch (so :func:`duofit.common.registry.get_backend` fails
early on a broken install); :class:`duofit.backends.torchbackend.TorchBackend` is the
backend object that calls these modules.
"""

from __future__ import annotations

import torch  # noqa: F401  (the framework loads with the package)

__all__: list[str] = []
