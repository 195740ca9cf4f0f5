"""Several backend workers at once (``compare --jobs``): the parent's side.

:func:`spawn_concurrently` starts the workers of :mod:`duofit.common.isolated` as
:func:`~duofit.common.isolated.spawn` does (same command line, spec file, environment and
error reporting), at most ``max_jobs`` at a time, and waits for all of them. A thread per
worker collects its standard output; the parent waits on a queue in short steps
(:data:`POLL_S`) so that Ctrl-C is seen at once. The first failure stops the others.

Example:
    >>> spawn_concurrently([], max_jobs=2)   # nothing to run
"""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from duofit.common.isolated import AFTER_CTRL_C, check_exit, stop_workers, worker_env, write_spec
from duofit.common.spec import Spec

__all__ = ["POLL_S", "WorkerJob", "spawn_concurrently"]

POLL_S = 0.2  # how often the parent of concurrent workers looks up from waiting (Ctrl-C is seen at once anyway)


@dataclass(frozen=True)
class WorkerJob:
    """One worker for :func:`spawn_concurrently`; the fields are :func:`~duofit.common.isolated.spawn`'s arguments.

    Attributes:
        module: The worker module, e.g. ``"duofit.worker"``.
        spec: The spec it runs.
        backend: The backend it runs on.
        folder: Its scratch folder (``spec.in.json`` and, on an error, ``error.json``).
        what: What it does, for error messages (``"run"``).
        options: Its own command-line options.
    """

    module: str
    spec: Spec
    backend: str
    folder: Path
    what: str
    options: tuple[str, ...] = ()


def spawn_concurrently(
    jobs: Sequence[WorkerJob],
    max_jobs: int,
    *,
    on_start: Callable[[WorkerJob], object] | None = None,
    on_done: Callable[[WorkerJob], object] | None = None,
) -> None:
    """Parent side: run ``jobs`` in their order, at most ``max_jobs`` workers at a time; wait for all.

    Each worker runs as under :func:`~duofit.common.isolated.spawn` (standard output kept and quoted if it crashes,
    standard error to the terminal). ``on_start(job)`` is called when its worker starts and
    ``on_done(job)`` when it succeeded (in the order they finish), both in this thread.

    Raises:
        DuofitError: the first worker that fails, with its own error (same type and field path)
            or its crash and output; no further worker starts and the running ones are interrupted
            (then killed after :data:`~duofit.common.isolated.INTERRUPT_GRACE_S`).
        KeyboardInterrupt: Ctrl-C here or in a worker; the running workers are stopped as by
            :func:`~duofit.common.isolated.run_worker`.

    Example:
        >>> spawn_concurrently([], max_jobs=2)   # nothing to run
    """
    pending = list(enumerate(jobs))
    running: dict[int, tuple[WorkerJob, subprocess.Popen[str]]] = {}
    finished: queue.Queue[tuple[int, str]] = queue.Queue()
    try:
        while pending or running:
            while pending and len(running) < max(1, max_jobs):
                key, job = pending.pop(0)
                running[key] = (job, _start(job, key, finished))
                if on_start is not None:
                    on_start(job)
            key, output = _next_finished(finished)
            job, proc = running.pop(key)
            check_exit(proc.wait(), job.folder, job.backend, job.what, output)
            if on_done is not None:
                on_done(job)
    except KeyboardInterrupt:
        stop_workers([proc for _, proc in running.values()], AFTER_CTRL_C)
        raise
    except BaseException:  # an error: the other workers got no signal, so interrupt them at once
        stop_workers([proc for _, proc in running.values()], (signal.SIGINT,))
        raise


def _start(job: WorkerJob, key: int, finished: queue.Queue[tuple[int, str]]) -> subprocess.Popen[str]:
    """Start ``job``'s worker; a thread collects its standard output and puts ``(key, output)`` on ``finished``."""
    args = [str(write_spec(job.spec, job.folder)), job.backend, str(job.folder), *job.options]
    cmd = [sys.executable, "-m", job.module, *args]
    proc = subprocess.Popen(cmd, env=worker_env(), stdout=subprocess.PIPE, text=True)

    def collect() -> None:
        output, _ = proc.communicate()
        finished.put((key, output or ""))

    threading.Thread(target=collect, name=f"duofit-{job.backend}-output", daemon=True).start()
    return proc


def _next_finished(finished: queue.Queue[tuple[int, str]]) -> tuple[int, str]:
    """The next ``(key, output)`` of a finished worker; waits in short steps so that Ctrl-C is seen everywhere."""
    while True:
        try:
            return finished.get(timeout=POLL_S)
        except queue.Empty:
            continue
