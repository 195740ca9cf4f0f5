"""Which framework Keras 3 runs on in this process (KERAS_BACKEND), chosen before keras loads.

Keras reads ``KERAS_BACKEND`` once, when it is first imported, so each duofit Keras
backend (``keras`` on TensorFlow, ``keras-torch``, ``keras-jax``) selects its framework
here before anything imports keras, and a process that already runs Keras on another
framework gets a clear error instead of silently training on the wrong one. This module
imports no framework itself.

Example:
    >>> from duofit.backends.kerasenv import KERAS_FRAMEWORKS
    >>> sorted(KERAS_FRAMEWORKS)
    ['jax', 'tensorflow', 'torch']
"""

from __future__ import annotations

import os
import sys

from duofit.common.errors import BackendError

__all__ = ["KERAS_FRAMEWORKS", "limit_xla_threads", "select", "selected"]

# Keras' name for the framework -> the duofit backend that runs Keras on it
KERAS_FRAMEWORKS = {"tensorflow": "keras", "torch": "keras-torch", "jax": "keras-jax"}

_selected: list[str] = []  # the framework chosen in this process (at most one)


def select(framework: str) -> str:
    """Make Keras run on ``framework`` in this process; idempotent.

    Raises:
        BackendError: keras is already loaded (or selected) on another framework; run
            that backend in its own process, as ``duofit compare`` does.

    Example (skipped: it selects Keras' framework for the whole test process):
        >>> select("tensorflow")   # doctest: +SKIP
        'tensorflow'
    """
    if framework not in KERAS_FRAMEWORKS:
        raise BackendError(f"unknown Keras framework {framework!r}; allowed: {', '.join(KERAS_FRAMEWORKS)}")
    current = _current()
    if current is not None and current != framework:
        raise BackendError(
            f"keras already runs on {current!r} in this process; the {KERAS_FRAMEWORKS[framework]!r} backend "
            f"needs {framework!r}. Run it in a separate process (duofit compare, parity and bench do this)."
        )
    if current is None:
        os.environ["KERAS_BACKEND"] = framework
        # hide TF's C++ start-up chatter; Keras-on-torch loads TensorFlow too when it is installed
        # (keras.src.backend.torch.image imports torch._dynamo, which imports tensorflow)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        if framework == "jax":
            os.environ["JAX_ENABLE_X64"] = "1"  # float64 arrays exist only with x64 on; float32 runs unchanged
        _selected.append(framework)
    return framework


def limit_xla_threads(n: int) -> None:
    """Run XLA's CPU work (JAX) on one thread when ``n == 1``; effective only before JAX starts.

    XLA's CPU thread pool is sized when JAX starts and takes no other count afterwards.

    Example (skipped: it changes ``XLA_FLAGS`` for the whole test process):
        >>> limit_xla_threads(1)   # doctest: +SKIP
    """
    if n == 1 and "intra_op_parallelism_threads" not in os.environ.get("XLA_FLAGS", ""):
        flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flags}".strip()


def selected() -> str | None:
    """The framework Keras runs on (or was told to run on) in this process, if any."""
    return _current()


def _current() -> str | None:
    if "keras" in sys.modules:
        backend = getattr(sys.modules["keras"], "backend", None)
        if backend is not None and hasattr(backend, "backend"):
            return str(backend.backend())
    return _selected[0] if _selected else None
