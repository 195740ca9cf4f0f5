"""Keras 3 backends: ``keras.Model`` + ``compile`` + ``fit`` (see ``trainer.py``).

This package is the ``keras`` backend (Keras on TensorFlow). The same modules serve
``keras-torch`` and ``keras-jax`` (``duofit/backends/keras_torch/`` and ``keras_jax/``
select the framework first, then import from here); what differs per framework is in
``native.py``. KERAS_BACKEND is read once per process when keras is first imported, so a
process runs Keras on one framework only (``duofit compare`` starts one process each).
"""

from __future__ import annotations

from typing import Any

from duofit.backends.kerasenv import select as _select
from duofit.backends.kerasenv import selected

_select(selected() or "tensorflow")  # a sibling package may have chosen torch or jax already

import keras  # noqa: E402
from duofit.backends.keras.native import keep_float64, native, resolve_device  # noqa: E402
from duofit.backends.keras.trainer import fit  # noqa: E402

keep_float64()  # a float64 spec computes in float64 on every framework (see native.keep_float64)

__all__ = ["FRAMEWORK", "devices", "environment", "fit", "framework"]

_NAMES = {"tensorflow": "TensorFlow", "torch": "PyTorch", "jax": "JAX"}


def framework() -> str:
    """Human name, e.g. ``Keras 3 on TensorFlow``."""
    return f"Keras 3 on {_NAMES.get(keras.backend.backend(), keras.backend.backend())}"


FRAMEWORK = framework()


def devices() -> list[str]:
    """Devices this backend can train on."""
    return ["cpu"] + [f"gpu:{i} ({name})" for i, name in enumerate(native().gpus())]


def environment(device: str = "cpu") -> dict[str, Any]:
    """Versions and numeric flags that can change results or speed."""
    return {
        "framework": FRAMEWORK,
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "device": resolve_device(device),
        **native().versions(),
    }
