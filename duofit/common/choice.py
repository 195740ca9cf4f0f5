"""Which backends a command runs: ``--backends`` text as names, and names as (to run, skipped).

Every command that takes ``--backends`` (``compare``, ``cv``, ``tune``, ``sweep``, ``parity``,
``bench run``) parses it with :func:`parse_names`; ``compare`` and ``cv`` resolve the default
"every installed backend" with :func:`resolve_backends`.

Example:
    >>> parse_names("torch, keras", ["torch", "keras"])
    ['torch', 'keras']
    >>> parse_names("torch,keras,torch", ["torch", "keras"])
    Traceback (most recent call last):
    ...
    duofit.common.errors.BackendError: --backends: 'torch' listed more than once; name each backend once
    >>> parse_names("jax", ["torch", "keras"])
    Traceback (most recent call last):
    ...
    duofit.common.errors.BackendError: --backends: unknown backend 'jax'; allowed: torch, keras
"""

from __future__ import annotations

from collections.abc import Sequence

from duofit.common.errors import BackendError
from duofit.common.registry import BACKENDS, check_installed, installed_backends

__all__ = ["parse_names", "resolve_backends"]


def parse_names(
    text: str | None, known: Sequence[str] | None = None, option: str = "--backends", kind: str = "backend"
) -> list[str] | None:
    """Comma-separated backend names, each known, in order, without repeats.

    Args:
        text: The option's value; ``None`` or only separators mean "the default" (``None``).
        known: The allowed names (default: duofit's backends, sorted).
        option: The option, for the message.
        kind: What a name is, for the message (``"benchmark backend"``).

    Raises:
        BackendError: an unknown name (listing the allowed ones), or a name given twice.
    """
    names = [t.strip() for t in (text or "").split(",") if t.strip()]
    allowed = list(known) if known is not None else sorted(BACKENDS)
    for name in names:
        if name not in allowed:
            raise BackendError(f"{option}: unknown {kind} {name!r}; allowed: {', '.join(allowed)}")
    _refuse_repeats(names, option)
    return names or None


def _refuse_repeats(names: Sequence[str], where: str) -> None:
    """Each backend once: a repeat would run twice into the same output folder."""
    repeated = sorted({n for n in names if list(names).count(n) > 1})
    if repeated:
        raise BackendError(f"{where}: {', '.join(map(repr, repeated))} listed more than once; name each backend once")


def resolve_backends(requested: Sequence[str] | None) -> tuple[list[str], dict[str, str]]:
    """The backends to run and the ones skipped, with the reason.

    Args:
        requested: Names to run (each must be installed), or ``None`` for every installed
            backend (the others are skipped with their install hint).

    Returns:
        ``(names, {skipped name: reason})``.

    Raises:
        BackendError: an unknown or repeated name, or no backend installed at all.
        BackendNotInstalledError: a requested backend is missing (names the extra).
    """
    if requested is not None:
        names = list(requested)
        _refuse_repeats(names, "backends")
        for name in names:
            check_installed(name)
        return names, {}
    names = installed_backends()
    skipped = {n: f"not installed: pip install 'duofit[{BACKENDS[n].extra}]'" for n in BACKENDS if n not in names}
    if not names:
        raise BackendError(
            "no backend is installed; install one with pip install 'duofit[torch]' or 'duofit[tensorflow]'"
        )
    return names, skipped
