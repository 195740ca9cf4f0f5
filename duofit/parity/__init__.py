"""Parity engine: same weights, same batches, a per-stage report naming divergences and causes.

The report gives the first step where the two backends' losses part and the catalogued
framework differences (:mod:`duofit.parity.causes`) that explain it.

Example:
    >>> import duofit
    >>> report = duofit.parity("examples/seed.toml", strict=True, epochs=10)  # doctest: +SKIP
    >>> report.passed  # doctest: +SKIP
    True
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from duofit.common.choice import resolve_backends
from duofit.common.data import Dataset, load_dataset
from duofit.common.errors import DataError, SpecError
from duofit.common.isolated import spawn
from duofit.common.loader import load_spec
from duofit.common.overrides import apply_overrides
from duofit.common.result import RunResult
from duofit.common.spec import Spec
from duofit.parity.causes import CAUSES, Cause, matching_causes
from duofit.parity.report import TOLERANCES, ParityReport, build_report
from duofit.parity.strict import strict_spec, strict_translations

__all__ = ["CAUSES", "TOLERANCES", "Cause", "ParityReport", "matching_causes", "parity"]


def _worker(
    spec: Spec, backend: str, folder: Path, strict: bool, out: Path | None, progress: bool
) -> tuple[dict[str, Any], RunResult]:
    """Probe and train one backend in a fresh process (:mod:`duofit.parity.worker`); read its files back.

    The run is written once, into ``out`` (its final folder) when given, else into ``folder/run``.
    With ``progress`` the worker's progress bar reaches the terminal (its standard error is
    not kept); without, its standard error is kept and quoted only if it crashes.
    """
    from duofit.common.io import load_npz

    options = ["--strict"] if strict else []
    if out is not None:
        options += ["--out", str(out)]
    if progress:
        options.append("--progress")
    try:
        spawn("duofit.parity.worker", spec, backend, folder, "parity", options, quiet=not progress)
    except (SpecError, DataError) as exc:  # say which of the two backends found it
        raise type(exc)(f"{backend}: {exc}", path=exc.path) from None
    return load_npz(folder / "probe.npz"), RunResult.load(out if out is not None else folder / "run")


def parity(
    spec: str | Path | Mapping[str, Any] | Spec,
    *,
    strict: bool = False,
    dtype: str | None = None,
    epochs: int | None = None,
    backends: Sequence[str] = ("torch", "keras"),
    overrides: Mapping[str, Sequence[str]] | None = None,
    out: str | Path | None = None,
    progress: bool = False,
) -> ParityReport:
    """Train a spec on two backends from identical weights and batches and compare every stage.

    Args:
        spec: Spec file, mapping or Spec.
        strict: float64 and identical math where the frameworks' formulas differ.
        dtype: Override ``train.dtype`` (strict mode forces float64).
        epochs: Override ``train.epochs``.
        backends: The two backends to compare.
        overrides: Per-backend ``FIELD=VALUE`` settings, e.g.
            ``{"keras": ["optimizer.decay_kind=decoupled"]}``, to study a deliberate mismatch.
        out: Save ``parity.json``, ``parity.csv``, ``steps.csv``, ``parity.png`` there; each
            backend's run writes its result once, into ``out/<backend>/``.
        progress: ``True``: a line on stderr as each backend starts and finishes, and its
            progress bar; ``False``: nothing (as in :func:`duofit.run` and :func:`duofit.compare`).

    Returns:
        A :class:`ParityReport`; ``report.text()`` prints it, ``report.passed`` tells.

    Raises:
        SpecError / DataError / BackendNotInstalledError: bad input or missing framework.
    """
    spec = load_spec(spec)
    if len(backends) != 2 or backends[0] == backends[1]:
        raise SpecError(f"parity compares two different backends; got {list(backends)}", path="backends")
    resolve_backends(list(backends))
    spec, specs, changes = _parity_specs(spec, strict, dtype, epochs, backends, overrides)
    dataset = load_dataset(spec)  # fail fast on bad data, before any worker starts
    folder = Path(out) if out is not None else None
    probes: dict[str, dict[str, Any]] = {}
    results: dict[str, RunResult] = {}
    with tempfile.TemporaryDirectory(prefix="duofit-parity-") as tmp:
        for i, name in enumerate(backends, start=1):
            dest = folder / name if folder is not None else None
            step = f"parity [{i}/{len(backends)}] {name}"
            _say(progress, f"{step}: probing the first step, then training {specs[name].train.epochs} epochs ...")
            t0 = time.perf_counter()
            probes[name], results[name] = _worker(specs[name], name, Path(tmp) / name, strict, dest, progress)
            _say(progress, f"{step}: done in {time.perf_counter() - t0:.1f} s")
    pair = (backends[0], backends[1])
    report = build_report(
        specs[pair[0]], specs[pair[1]], pair, probes, results, strict, changes, _steps_per_epoch(spec, dataset)
    )
    report.folder = folder
    if folder is not None:
        report.save(folder)
    return report


def _say(progress: bool, line: str) -> None:
    """A progress line on stderr (the report itself goes to stdout)."""
    if progress:
        print(line, file=sys.stderr, flush=True)


def _parity_specs(
    spec: Spec,
    strict: bool,
    dtype: str | None,
    epochs: int | None,
    backends: Sequence[str],
    overrides: Mapping[str, Sequence[str]] | None,
) -> tuple[Spec, dict[str, Spec], list[str]]:
    """The shared spec (dtype, epochs, strict mode applied), each backend's spec and the changes made.

    Raises:
        SpecError: ``overrides`` names a backend that is not compared.
    """
    train_update: dict[str, Any] = {}
    if dtype is not None:
        train_update["dtype"] = dtype
    if epochs is not None:
        train_update["epochs"] = epochs
    if train_update:
        spec = load_spec({**spec.model_dump(), "train": {**spec.train.model_dump(), **train_update}})
    changes: list[str] = []
    if strict:
        spec, changes = strict_spec(spec)
        changes += strict_translations(spec)
    overrides = dict(overrides or {})
    unknown = set(overrides) - set(backends)
    if unknown:
        raise SpecError(f"--set names backend(s) {sorted(unknown)} not compared here; use one of {list(backends)}")
    specs = {name: apply_overrides(spec, overrides.get(name, ())) for name in backends}
    for name, items in overrides.items():
        changes += [f"{name} only: {item}" for item in items]
    return spec, specs, changes


def _steps_per_epoch(spec: Spec, dataset: Dataset) -> int:
    from duofit.backends.base import make_plan

    return make_plan(spec, dataset).steps_per_epoch
