"""``duofit export``: one spec -> a standalone training script for one framework, with its data beside it.

A table maps each target to its exporter module (``export_torch``, ``export_keras``); each
writes the script and an ``.npz`` of the prepared data, batch order and initial weights
(:mod:`duofit.porting.bundle`), and imports no framework itself.

Example:
    >>> sorted(EXPORTERS)
    ['keras', 'torch']
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from duofit.common.errors import SpecError
from duofit.common.loader import load_spec
from duofit.common.spec import Spec

__all__ = ["EXPORTERS", "export_script"]

# target -> module with ``write(spec, out, *, strict) -> list[Path]``
EXPORTERS = {"torch": "duofit.porting.export_torch", "keras": "duofit.porting.export_keras"}


def export_script(
    spec: str | Path | Mapping[str, Any] | Spec, to: str, out: str | Path, *, strict: bool = False
) -> list[Path]:
    """Write a standalone training script for ``to`` at ``out`` (a ``.py`` path) and its data beside it.

    Args:
        spec: A spec file, mapping or Spec.
        to: ``"torch"`` or ``"keras"``.
        out: The script's path; the data goes to the same name with ``.npz``.
        strict: Write duofit's strict-mode formulas as code (float64), as ``duofit parity --strict`` runs them.

    Returns:
        The files written.

    Raises:
        SpecError: an unknown target, an ``out`` that is not a ``.py`` file, or a spec feature the
            exporter cannot write yet (named).
    """
    if to not in EXPORTERS:
        raise SpecError(f"--to: unknown target {to!r}; allowed: {', '.join(sorted(EXPORTERS))}", path="to")
    path = Path(out)
    if path.suffix != ".py":
        raise SpecError(f"--out: {path} must be a .py file (the script); its data is written beside it", path="out")
    for target in (path, path.with_suffix(".npz")):
        if target.is_dir():
            raise SpecError(f"--out: {target} is a folder; give the script's path, e.g. {target}/train.py", path="out")
    module = importlib.import_module(EXPORTERS[to])
    path.parent.mkdir(parents=True, exist_ok=True)
    files: list[Path] = module.write(load_spec(spec), path, strict=strict)
    return files
