"""Keras 3 backends: ``keras.Model`` + ``compile`` + ``fit`` (see ``trainer.py``).

This package is the ``keras`` backend (Keras on TensorFlow). The same modules serve
``keras-torch`` and ``keras-jax`` (``duofit/backends/keras_torch/`` and ``keras_jax/``
select the framework first, then import from here); what differs per framework is in
``native.py``. KERAS_BACKEND is read once per process when keras is first imported, so a
process runs Keras on one framework only (``duofit compare`` starts one process each).
:class:`duofit.backends.kerasbackend.KerasBackend` is the backend object that calls these
modules.
"""

from __future__ import annotations

from duofit.backends.kerasenv import select as _select
from duofit.backends.kerasenv import selected

_select(selected() or "tensorflow")  # a sibling package may have chosen torch or jax already

import keras  # noqa: E402,F401  (the framework loads with the package)

from duofit.backends.keras.compat import keep_float64  # noqa: E402

keep_float64()  # a float64 spec computes in float64 on every framework (see compat.keep_float64)

__all__: list[str] = []
