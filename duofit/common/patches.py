"""Version-gated use of a library's private internals (the ``compat`` modules' common rule).

duofit reaches into a few private attributes of Keras, torch and Optuna. Each such use is
declared as a :class:`Patch` with the library version it was verified against (the pin in
``constraints.txt``). :func:`apply_gate` runs just before the private attribute is used:

- the attribute is missing: :class:`PatchError`, naming the patch and both versions;
- another version is installed: one ``RuntimeWarning`` per patch and process, then the
  patch is applied anyway (the attribute exists, so it most likely still works);
- the verified version: nothing.

``tests/test_compat.py`` fails, naming the patch, whenever the installed version differs
from the verified one, so raising a pin forces re-verification. Framework-free.

Example:
    >>> p = Patch("example", "numpy", "0.0.1", "numpy.ndarray", "the reason")
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     apply_gate(p, present=True)
    >>> "verified against numpy 0.0.1" in str(caught[0].message)
    True
    >>> try:
    ...     apply_gate(p, present=False)
    ... except PatchError as exc:
    ...     print(str(exc)[:51])
    duofit patch 'example' needs numpy.ndarray, which n
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cache
from importlib import metadata

from duofit.common.errors import DuofitError

__all__ = ["Patch", "PatchError", "apply_gate", "installed_version"]


class PatchError(DuofitError):
    """A private attribute duofit patches or calls is gone from the installed library."""


@dataclass(frozen=True)
class Patch:
    """One use of a library's private internals.

    Attributes:
        name: Short name, used in warnings, errors and the test that checks the pins.
        package: Distribution name whose version is checked (``keras``, ``torch``, ``optuna``).
        verified: Version the patch was verified against (the ``constraints.txt`` pin).
        target: The private attribute used, as a dotted path.
        reason: Why duofit needs it.
    """

    name: str
    package: str
    verified: str
    target: str
    reason: str


@cache  # read once per process: a gate runs where the private attribute is used, possibly per step
def installed_version(package: str) -> str | None:
    """Installed version of distribution ``package`` without a local label (``2.13.0+cpu`` -> ``2.13.0``).

    ``None`` if it is not installed; imports nothing.
    """
    try:
        return metadata.version(package).split("+", 1)[0]
    except metadata.PackageNotFoundError:
        return None


@cache
def _warn_once(name: str, message: str) -> None:
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def apply_gate(patch: Patch, present: bool) -> None:
    """Check ``patch`` just before use; ``present``: whether its private attribute exists.

    Raises:
        PatchError: the attribute is missing from the installed library.
    """
    version = installed_version(patch.package) or "(not installed)"
    if not present:
        raise PatchError(
            f"duofit patch {patch.name!r} needs {patch.target}, which {patch.package} {version} does not have "
            f"(verified against {patch.package} {patch.verified}; {patch.reason}). Install {patch.package}=="
            f"{patch.verified} (constraints.txt) or update the patch."
        )
    if version != patch.verified:
        _warn_once(
            patch.name,
            f"duofit patch {patch.name!r} ({patch.target}) was verified against {patch.package} {patch.verified}, "
            f"installed: {version}; applied anyway",
        )
