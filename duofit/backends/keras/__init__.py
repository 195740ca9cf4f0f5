"""Keras 3 backend on TensorFlow: ``keras.Model`` + ``compile`` + ``fit`` (see ``trainer.py``).

KERAS_BACKEND is read once per process when keras is first imported, so this module
sets it to ``tensorflow`` before importing keras, and refuses to run if keras was
already imported with another backend (run it in its own process instead, as
``duofit compare`` does).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from duofit.common.errors import BackendError

if "keras" in sys.modules:
    _current = sys.modules["keras"].backend.backend()
    if _current != "tensorflow":
        raise BackendError(
            f"keras is already imported in this process with backend {_current!r}; the 'keras' "
            "backend needs TensorFlow. Run it in a separate process (duofit compare does this)."
        )
else:
    os.environ["KERAS_BACKEND"] = "tensorflow"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TF's C++ start-up chatter

import tensorflow as tf

import keras
from duofit.backends.keras.trainer import fit

__all__ = ["FRAMEWORK", "devices", "environment", "fit"]

FRAMEWORK = "Keras 3 on TensorFlow"


def devices() -> list[str]:
    """Devices this backend can train on."""
    out = ["cpu"]
    out += [f"gpu:{i} ({d.name})" for i, d in enumerate(tf.config.list_physical_devices("GPU"))]
    return out


def environment(device: str = "cpu") -> dict[str, Any]:
    """Versions and numeric flags that can change results or speed."""
    return {
        "framework": FRAMEWORK,
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "keras_backend": keras.backend.backend(),
        "threads": tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count(),
        "interop_threads": tf.config.threading.get_inter_op_parallelism_threads() or os.cpu_count(),
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
        "tf32": bool(tf.config.experimental.tensor_float_32_execution_enabled()),
        "op_determinism": os.environ.get("TF_DETERMINISTIC_OPS", "0") == "1",
    }
