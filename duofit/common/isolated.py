"""One backend in a fresh Python process: the parent's side and the worker's side.

``KERAS_BACKEND`` is read once per process, so ``compare``, ``cv``, ``parity`` and a
multi-backend ``tune`` run each backend in a worker process of its own (``python -m
duofit.worker``, ``duofit.tuning.worker``, ``duofit.parity.worker``,
``duofit.tuning.tune_worker``), all started by :func:`spawn` (one at a time) or
:func:`~duofit.common.concurrent.spawn_concurrently` (several at once: ``compare --jobs``,
in :mod:`duofit.common.concurrent`) and served by :func:`worker_main`:
``python -m MODULE SPEC.json BACKEND FOLDER [options]``; a worker learns when it was started
from :data:`SPAWNED_AT_ENV` (:func:`seconds_since_spawn`). The spec goes in as JSON and the
results come back as files (CSV, JSON, npz: no pickle).
A :class:`~duofit.common.errors.DuofitError` raised in the worker is written to
``error.json`` and raised again in the parent with the same type, message and field path.

Example:
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> def body():
    ...     raise SpecError("optimizer.lr: must be > 0 (got -1)", path="optimizer.lr")
    >>> report_errors(out, body)
    2
    >>> raise_from_file(out, "torch", "run")
    Traceback (most recent call last):
    ...
    duofit.common.errors.SpecError: optimizer.lr: must be > 0 (got -1)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from duofit.common.errors import (
    BackendError,
    BackendNotInstalledError,
    DataError,
    DataWarning,
    DivergenceError,
    DuofitError,
    SpecError,
    show_warnings_plainly,
)
from duofit.common.io import write_json
from duofit.common.spec import Spec

__all__ = [
    "AFTER_CTRL_C",
    "ERROR_FILE",
    "EXIT_INTERRUPTED",
    "INTERRUPT_GRACE_S",
    "SPAWNED_AT_ENV",
    "check_exit",
    "raise_from_file",
    "report_errors",
    "result_folder",
    "run_worker",
    "seconds_since_spawn",
    "spawn",
    "stop_workers",
    "worker_env",
    "worker_main",
    "write_spec",
]

ERROR_FILE = "error.json"
# After Ctrl-C, how long a worker may take to stop by itself (record what it finished, let its
# framework shut down: a few seconds measured with TensorFlow), and again after a SIGINT of our own
INTERRUPT_GRACE_S = 10.0
EXIT_INTERRUPTED = 130  # as the command line: 128 + SIGINT
OUTPUT_TAIL_CHARS = 2000  # of the worker's output, quoted when it died without an error file
# The wall-clock time (``time.time()``) at which the parent started a worker, in the worker's
# environment: what the worker spent starting (interpreter, imports) is measured from it
SPAWNED_AT_ENV = "DUOFIT_SPAWNED_AT"
# After Ctrl-C, what workers are sent in turn: nothing (a terminal's Ctrl-C reached them already),
# then a SIGINT of our own (a signal to the parent alone did not)
AFTER_CTRL_C: tuple[signal.Signals | None, ...] = (None, signal.SIGINT)

_RAISED_AGAIN: dict[str, type[DuofitError]] = {
    "SpecError": SpecError,
    "DataError": DataError,
    "BackendError": BackendError,
    "DivergenceError": DivergenceError,
}


def write_spec(spec: Spec, folder: Path) -> Path:
    """Write ``spec`` as the worker's input file ``folder/spec.in.json``; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "spec.in.json"
    path.write_text(spec.model_dump_json(), encoding="utf-8")
    return path


def report_errors(out: Path, body: Callable[[], object]) -> int:
    """Worker side: run ``body``; a DuofitError becomes ``out/error.json`` and an exit code.

    Returns:
        0, or the error's CLI exit code.
    """
    try:
        body()
    except DuofitError as exc:
        info: dict[str, object] = {"type": type(exc).__name__, "message": str(exc)}
        if isinstance(exc, BackendNotInstalledError):
            info.update(missing=exc.missing, extra=exc.extra)
        if isinstance(exc, (SpecError, DataError)):
            info["path"] = exc.path
        write_json(out / ERROR_FILE, info)
        return exc.exit_code
    return 0


def raise_from_file(out: Path, backend: str, what: str, output: str | None = "", code: int | None = None) -> None:
    """Parent side: raise the error a worker wrote to ``out/error.json``.

    Without the file (the worker crashed, was killed or ran out of memory) a DuofitError
    names the backend, the worker, its exit code and the end of its ``output`` (``None``:
    the output went to the terminal, above the message).
    """
    err_file = out / ERROR_FILE
    if err_file.exists():
        info = json.loads(err_file.read_text(encoding="utf-8"))
        kind = info.get("type", "")
        if kind == "BackendNotInstalledError":
            raise BackendNotInstalledError(backend, info["missing"], info["extra"])
        cls = _RAISED_AGAIN.get(kind, DuofitError)
        if cls in (SpecError, DataError) and "path" in info:
            raise cls(info["message"], path=info["path"])
        raise cls(info["message"])
    failed = f"backend {backend!r} failed in its {what} worker process (exit code {code})"
    if output is None:
        raise DuofitError(f"{failed}; its output is above")
    raise DuofitError(f"{failed}; output:\n{output[-OUTPUT_TAIL_CHARS:]}")


def run_worker(
    module: str,
    args: Sequence[str],
    out: Path,
    backend: str,
    what: str,
    *,
    capture: bool = True,
    quiet: bool = False,
) -> None:
    """Parent side: run ``python -m module *args`` and wait; raise what it reported.

    Args:
        module: The worker module, e.g. ``"duofit.worker"``.
        args: Its command-line arguments (the worker writes its results under ``out``).
        out: The worker's output folder (``error.json`` is looked for there).
        backend: For error messages.
        what: What the worker does, for error messages (``"run"``, ``"cross-validation"``).
        capture: Keep the worker's standard output (quoted if it crashes); ``False`` lets it
            stream to the terminal as it comes (``duofit tune``'s line per trial).
        quiet: Keep the worker's standard error too (framework start-up logs, warnings),
            quoted with its output if it crashes (``duofit parity``, whose report is the
            output). Otherwise standard error (progress bars, warnings) goes to the terminal.

    Raises:
        DuofitError: the worker's own error (same type), or a crash with its output.
        KeyboardInterrupt: Ctrl-C here or in the worker; the worker is given
            :data:`INTERRUPT_GRACE_S` to stop by itself, then interrupted, then killed.
    """
    cmd = [sys.executable, "-m", module, *args]
    stdout = subprocess.PIPE if capture else None
    stderr = subprocess.STDOUT if capture and quiet else None
    with subprocess.Popen(cmd, env=worker_env(), stdout=stdout, stderr=stderr, text=True) as proc:
        try:
            output, _ = proc.communicate()
        except KeyboardInterrupt:
            _wind_down(proc)
            raise
    check_exit(proc.returncode, out, backend, what, output if capture else None)


def check_exit(code: int, out: Path, backend: str, what: str, output: str | None) -> None:
    """Parent side: raise what a finished worker reported: Ctrl-C (it alone got it), its error, or its crash.

    Args:
        code: The worker's exit status (0: nothing is raised).
        out: Its folder, where it wrote ``error.json`` (:func:`raise_from_file`).
        backend: For error messages.
        what: What the worker did, for error messages (``"run"``).
        output: Its captured output, quoted after a crash (``None``: it went to the terminal).
    """
    if code in (EXIT_INTERRUPTED, -signal.SIGINT):  # the worker alone got the Ctrl-C
        raise KeyboardInterrupt(f"backend {backend!r}: its {what} worker process was interrupted")
    if code != 0:
        raise_from_file(out, backend, what, output, code)


def worker_env() -> dict[str, str]:
    """The environment of a worker started now: this process's, and the time (:data:`SPAWNED_AT_ENV`).

    Example:
        >>> float(worker_env()[SPAWNED_AT_ENV]) <= time.time()
        True
    """
    return {**os.environ, SPAWNED_AT_ENV: repr(time.time())}


def seconds_since_spawn() -> float | None:
    """Worker side: seconds since the parent started this process; ``None`` when no parent said when.

    Example:
        >>> os.environ.pop(SPAWNED_AT_ENV, None) and None
        >>> seconds_since_spawn() is None
        True
    """
    started = os.environ.get(SPAWNED_AT_ENV)
    try:
        return max(0.0, time.time() - float(started)) if started else None
    except ValueError:
        return None


def _wind_down(proc: subprocess.Popen[str]) -> None:
    """After Ctrl-C: let the worker stop cleanly (it got the SIGINT too), else interrupt it, else kill it.

    A worker stopped cleanly has recorded what it finished (a tuning study marks the
    interrupted trial failed, so that the next run repeats it).
    """
    stop_workers([proc], AFTER_CTRL_C)


def stop_workers(procs: Iterable[subprocess.Popen[str]], sends: Sequence[signal.Signals | None]) -> None:
    """Parent side: stop workers: send each of ``sends`` in turn (``None``: nothing) to the ones still running.

    After each, :data:`INTERRUPT_GRACE_S` for all of them together; the ones left are killed.
    :data:`AFTER_CTRL_C` is the sequence after a Ctrl-C (the workers got it from the terminal).

    Example:
        >>> stop_workers([], AFTER_CTRL_C)   # nothing running
    """
    alive = list(procs)
    try:
        for send in sends:
            for proc in alive:
                if send is not None:
                    proc.send_signal(send)
            deadline = time.monotonic() + INTERRUPT_GRACE_S
            for proc in alive:
                try:
                    proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    continue
            alive = [proc for proc in alive if proc.poll() is None]
            if not alive:
                return
    finally:
        for proc in alive:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def result_folder(folder: Path, out: str | Path | None) -> Path:
    """Where a worker writes its results: ``out`` (their final folder) when given, else its own ``folder``."""
    return Path(out) if out is not None else folder


def spawn(
    module: str,
    spec: Spec,
    backend: str,
    folder: Path,
    what: str,
    options: Sequence[str] = (),
    *,
    capture: bool = True,
    quiet: bool = False,
) -> None:
    """Parent side: run worker ``module`` for ``spec`` on ``backend`` and wait; raise what it reported.

    The spec is written into ``folder`` (the worker's scratch folder, which also receives
    ``error.json``); the worker is started as ``python -m module SPEC.json BACKEND FOLDER *options``.
    ``capture=False`` lets its standard output stream to the terminal, ``quiet=True`` keeps its
    standard error too (see :func:`run_worker`).

    Raises:
        DuofitError: the worker's own error (same type, field path), or a crash with its output.
    """
    args = [str(write_spec(spec, folder)), backend, str(folder), *options]
    run_worker(module, args, folder, backend, what, capture=capture, quiet=quiet)


def worker_main(
    module: str,
    argv: Sequence[str] | None,
    body: Callable[[Spec, str, Path, argparse.Namespace], object],
    options: Callable[[argparse.ArgumentParser], None] | None = None,
) -> int:
    """Worker side: parse ``SPEC.json BACKEND FOLDER [options]``, run ``body``, report its errors.

    Args:
        module: The worker module, for the usage line.
        argv: Command-line arguments (default ``sys.argv[1:]``).
        body: ``body(spec, backend, folder, args)`` does the work and writes the results.
        options: Adds the worker's own options to the parser.

    Returns:
        The exit code: 0, the error's CLI exit code (``folder/error.json`` written), or
        :data:`EXIT_INTERRUPTED` after Ctrl-C (no traceback: the parent reports it).
    """
    parser = argparse.ArgumentParser(prog=f"python -m {module}")
    parser.add_argument("spec")
    parser.add_argument("backend")
    parser.add_argument("folder")
    if options is not None:
        options(parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)

    def run() -> None:
        spec = Spec.model_validate_json(Path(args.spec).read_text(encoding="utf-8"))
        with warnings.catch_warnings():
            show_warnings_plainly()
            warnings.simplefilter("ignore", DataWarning)  # the parent read the data first and showed them
            body(spec, args.backend, folder, args)

    try:
        # Ctrl-C, and the SIGINT the parent sends to stop a worker, must raise KeyboardInterrupt
        # here even where the parent ran with SIGINT ignored (a child inherits that: a background
        # job of a script, a test runner's worker), or the worker would run on until it is killed.
        # Installed inside the try: a SIGINT already pending raises on the very next line.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        return report_errors(folder, run)
    except KeyboardInterrupt:  # Ctrl-C reaches the workers too: the parent says what was interrupted
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second one must not interrupt the way out
        return EXIT_INTERRUPTED
