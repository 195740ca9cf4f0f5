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

from duofit.backends.kerasenv import native_banners_hidden, selected
from duofit.backends.kerasenv import select as _select

_select(selected() or "tensorflow")  # a sibling package may have chosen torch or jax already

with native_banners_hidden():  # TensorFlow's C++ start-up banners, unless --verbose
    import keras  # the framework loads with the package

from duofit.backends.keras.compat import hide_tensorflow, keep_float64  # noqa: E402

keep_float64()  # a float64 spec computes in float64 on every framework (see compat.keep_float64)
hide_tensorflow(str(keras.backend.backend()))  # Keras on torch or JAX: TensorFlow is never imported

__all__: list[str] = []
