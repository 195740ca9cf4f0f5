"""The ``keras-jax`` backend: Keras 3 on JAX, with the same code as the ``keras`` backend.

Only the framework differs (see ``duofit/backends/keras/native.py``); this package
selects it before keras is imported, so it must run in its own process, apart from the
other Keras backends (``duofit compare``, ``parity`` and ``bench`` do this).
"""

from __future__ import annotations

from duofit.backends.kerasenv import select

select("jax")

import duofit.backends.keras  # noqa: E402,F401  (keras loads on jax)

__all__: list[str] = []
