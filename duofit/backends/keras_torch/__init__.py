"""The ``keras-torch`` backend: Keras 3 on PyTorch, with the same code as the ``keras`` backend.

Only the framework differs (see ``duofit/backends/keras/native.py``); this package
selects it before keras is imported, so it must run in its own process, apart from the
other Keras backends (``duofit compare``, ``parity`` and ``bench`` do this).
"""

from __future__ import annotations

from duofit.backends.kerasenv import select

select("torch")

import duofit.backends.keras  # noqa: E402,F401  (keras loads on torch)

__all__: list[str] = []
