"""Which framework Keras 3 runs on in this process (KERAS_BACKEND), chosen before keras loads.

Keras reads ``KERAS_BACKEND`` once, when it is first imported, so each duofit Keras
backend (``keras`` on TensorFlow, ``keras-torch``, ``keras-jax``) selects its framework
here before anything imports keras, and a process that already runs Keras on another
framework gets a clear error instead of silently training on the wrong one. This module
imports no framework itself.

TensorFlow prints start-up banners from C++ while it loads (absl's "All log messages
before absl::InitializeLog() ..." and oneDNN's INFO line, twice per process), which
``TF_CPP_MIN_LOG_LEVEL`` does not reach: :func:`native_banners_hidden` drops exactly those
lines from the process' standard error while Keras loads, unless ``--verbose``
(:mod:`duofit.common.verbosity`).

Example:
    >>> from duofit.backends.kerasenv import KERAS_FRAMEWORKS
    >>> sorted(KERAS_FRAMEWORKS)
    ['jax', 'tensorflow', 'torch']
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from duofit.common.errors import BackendError
from duofit.common.verbosity import is_verbose

__all__ = ["BANNER_PATTERNS", "KERAS_FRAMEWORKS", "limit_xla_threads", "native_banners_hidden", "select", "selected"]

# Keras' name for the framework -> the duofit backend that runs Keras on it
KERAS_FRAMEWORKS = {"tensorflow": "keras", "torch": "keras-torch", "jax": "keras-jax"}

_selected: list[str] = []  # the framework chosen in this process (at most one)

# Lines TensorFlow's C++ writes to stderr while it loads, before its log level is read
# (observed with tensorflow 2.21: each twice per process):
BANNER_PATTERNS = (
    # absl's notice that logging is not initialised yet
    re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"),
    # an absl INFO line ("I0000 00:00:1796019379.299054    4274 port.cc:153] oneDNN custom operations are on ...")
    re.compile(r"^I\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\] "),
)


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
        if not is_verbose():  # TF's C++ INFO and WARNING logs once it runs (its start-up banners: see below)
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


@contextmanager
def native_banners_hidden() -> Iterator[None]:
    """Drop TensorFlow's start-up banners (:data:`BANNER_PATTERNS`) from stderr while the block runs.

    Standard error is redirected at the file-descriptor level (the banners come from C++)
    into a temporary file; afterwards every other line is written back, in order. With
    ``--verbose`` (``DUOFIT_VERBOSE=1``), or when standard error has no file descriptor,
    nothing is changed.

    Example:
        >>> with native_banners_hidden():
        ...     pass
    """
    try:
        saved = os.dup(2)
    except OSError:
        saved = -1
    if is_verbose() or saved < 0:
        if saved >= 0:
            os.close(saved)
        yield
        return
    with tempfile.TemporaryFile(mode="w+b") as captured:
        sys.stderr.flush()
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode("utf-8", "replace").splitlines(True) if not _banner(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def _banner(line: str) -> bool:
    return any(p.search(line.rstrip("\r\n")) for p in BANNER_PATTERNS)


def selected() -> str | None:
    """The framework Keras runs on (or was told to run on) in this process, if any."""
    return _current()


def _current() -> str | None:
    if "keras" in sys.modules:
        backend = getattr(sys.modules["keras"], "backend", None)
        if backend is not None and hasattr(backend, "backend"):
            return str(backend.backend())
    return _selected[0] if _selected else None
