"""Errors raised by duofit, each mapped to a CLI exit code.

Every error carries a message written for the person who made the mistake:
where it is (a field path such as ``model.layers[1].units``), what was given,
what is allowed, and how to fix it.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Iterable
from typing import TextIO

__all__ = [
    "report_errors_to_stderr",
    "BackendError",
    "unsupported",
    "BackendNotInstalledError",
    "DataError",
    "DataWarning",
    "DivergenceError",
    "DuofitError",
    "DuofitWarning",
    "SpecError",
    "show_warnings_plainly",
]


class DuofitError(Exception):
    """Base class of all duofit errors.

    Attributes:
        exit_code: The exit code the CLI uses for this error.
    """

    exit_code: int = 1


class SpecError(DuofitError, ValueError):
    """A spec file or value is invalid.

    Args:
        message: Full human-readable message.
        path: Dotted field path of the first offending field (``""`` for the whole file).
        problems: One ``(path, message)`` pair per problem found.

    Example:
        >>> raise SpecError("optimizer.lr: must be > 0 (got -1)", path="optimizer.lr")
        Traceback (most recent call last):
        ...
        duofit.common.errors.SpecError: optimizer.lr: must be > 0 (got -1)
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        path: str = "",
        problems: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.path = path
        self.problems = problems if problems is not None else [(path, message)]


class DataError(DuofitError, ValueError):
    """The data named by a spec cannot be used (missing column, NaN, wrong type...)."""

    exit_code = 2

    def __init__(self, message: str, path: str = "data") -> None:
        super().__init__(message)
        self.path = path


class DuofitWarning(UserWarning):
    """Base class of duofit's warnings: something allowed that is probably not what was meant.

    Issued with :func:`warnings.warn`; the command line prints ``warning: <message>``
    (:func:`show_warnings_plainly`).
    """


class DataWarning(DuofitWarning):
    """The data can be used but looks wrong (e.g. an id column among the features)."""


def show_warnings_plainly() -> None:
    """Print duofit's warnings as ``warning: <message>`` on stderr (no file and line); others as before.

    Example:
        >>> import contextlib, io, warnings
        >>> err = io.StringIO()
        >>> with warnings.catch_warnings(), contextlib.redirect_stderr(err):
        ...     show_warnings_plainly()
        ...     warnings.warn("column 'id' looks like an id", DataWarning)
        >>> print(err.getvalue(), end="")
        warning: column 'id' looks like an id
    """
    previous = warnings.showwarning

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if issubclass(category, DuofitWarning):
            print(f"warning: {message}", file=sys.stderr)
        else:
            previous(message, category, filename, lineno, file, line)

    warnings.showwarning = show


class BackendError(DuofitError, ValueError):
    """An unknown backend name, or a backend that cannot run a spec item."""

    exit_code = 2


class BackendNotInstalledError(BackendError, ImportError):
    """The framework a backend needs is not installed.

    Args:
        backend: Backend name, e.g. ``"keras"``.
        missing: Python module that could not be found, e.g. ``"tensorflow"``.
        extra: The duofit extra that installs it, e.g. ``"tensorflow"``.
    """

    exit_code = 2

    def __init__(self, backend: str, missing: str, extra: str) -> None:
        self.backend = backend
        self.missing = missing
        self.extra = extra
        super().__init__(
            f"backend {backend!r} needs the Python package {missing!r}, which is not "
            f"installed. Install it with: pip install 'duofit[{extra}]' "
            "(or run `duofit backends` to see what is installed)."
        )


class DivergenceError(DuofitError, ArithmeticError):
    """Training produced a non-finite loss. The partial result is attached."""

    exit_code = 3

    def __init__(self, message: str, result: object | None = None) -> None:
        super().__init__(message)
        self.result = result


def unsupported(backend: str, where: str, item: object, table: Iterable[object]) -> BackendError:
    """The error for a spec item a backend's dispatch table lacks.

    Example:
        >>> str(unsupported("torch", "loss", 3.0, {int: None}))
        'loss: the torch backend has no float; supported: int'
    """
    names = ", ".join(getattr(t, "__name__", str(t)) for t in table)
    label = repr(item) if isinstance(item, str) else type(item).__name__  # a name (metrics) or a spec type
    return BackendError(f"{where}: the {backend} backend has no {label}; supported: {names}")


def report_errors_to_stderr(command: Callable[[], int], interrupted: str = "interrupted") -> int:
    """Run a command-line command; return its exit code, printing any error as one paragraph.

    A :class:`DuofitError` prints ``error: <message>`` and returns its ``exit_code``
    (2 for bad input); Ctrl-C prints ``interrupted`` and returns 130; anything else is an
    internal error (exit 1) with no traceback unless ``DUOFIT_DEBUG=1``, which re-raises it.

    Example:
        >>> def bad() -> int:
        ...     raise SpecError("optimizer.lr: must be > 0 (got -1)", path="optimizer.lr")
        >>> report_errors_to_stderr(bad)
        2
    """
    try:
        return int(command())
    except DuofitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130
    except Exception as exc:
        if os.environ.get("DUOFIT_DEBUG"):
            raise
        print(
            f"internal error: {type(exc).__name__}: {exc}\n(set DUOFIT_DEBUG=1 to see the traceback; please report it)",
            file=sys.stderr,
        )
        return 1
