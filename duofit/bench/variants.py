"""A workload's variants: batch sizes, training modes and generated data sets, each a validated spec.

:func:`expand` turns the workloads of a plan into :class:`Variant` objects (one per workload,
batch size, data set and mode), each with its spec validated with the run's settings, so a
bad override is a clear field error before anything runs. Modes this duofit's spec does not
know, data kinds it cannot read and in-memory data sets over its cap are left out with the
reason (``skipped``), never failed at run time.

Example:
    >>> skipped = {}
    >>> mode_choices(("", "compile"), None, skipped)
    ['', 'compile']
    >>> mode_choices(("",), ["turbo"], skipped)
    Traceback (most recent call last):
    ...
    duofit.common.errors.SpecError: unknown mode 'turbo'; allowed: eager (the spec as written), compile, bf16
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from duofit.bench.scale import FEATURES, ScaleData, samples_label
from duofit.bench.suites import DATA_KINDS, MIN_STEADY_EPOCHS, MODES, WARMUP_EPOCHS, WorkloadPlan
from duofit.common.errors import SpecError
from duofit.common.loader import load_spec
from duofit.common.spec.train import TrainSpec
from duofit.common.spec.vocab import DATA_KINDS as SPEC_DATA_KINDS

__all__ = ["Variant", "data_choices", "expand", "mode_choices"]

# [data] fields that say where the data comes from; a scale variant replaces them (split and
# scaling settings stay the workload's).
_SOURCE_FIELDS = ("kind", "params", "path", "target", "features", "series", "text", "x", "y")
# Settings the hash covers besides the workload file (a changed value is another measurement).
_HASHED_TRAIN = ("batch_size", "threads", "device", "epochs", "dtype")


@dataclass(frozen=True)
class Variant:
    """One workload at one batch size, data set and mode: its validated spec and settings hash."""

    name: str
    batch_size: int
    epochs: int
    dtype: str
    spec_json: str
    digest: str
    mode: str = ""
    data: ScaleData | None = None
    data_kind: str = ""


def _doc_hash(path: Path, overrides: dict[str, object]) -> str:
    """sha256 prefix of the workload file as written plus the cell's overrides.

    The file, not the validated spec, is hashed: a default that a newer duofit adds to the
    spec does not make earlier rows look like another workload (the git commit records that).
    Data sets are hashed by what they are (:meth:`ScaleData.identity`), not where the cache is.
    """
    raw = path.read_bytes()
    blob = raw + json.dumps(overrides, sort_keys=True).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:12]


def _mode_problem(mode: str) -> str | None:
    """Why this duofit cannot run ``mode`` (its spec lacks the field or the value), or ``None``."""
    for key, value in MODES[mode].items():
        if key not in TrainSpec.model_fields:
            return f"train.{key} is not a field of this duofit's spec"
        try:
            TrainSpec.model_validate({key: value})
        except ValidationError as exc:
            return f"train.{key} = {value!r} is not accepted by this duofit's spec ({exc.errors()[0]['msg']})"
    return None


def mode_choices(default: Sequence[str], names: Sequence[str] | None, skipped: dict[str, str]) -> list[str]:
    """The modes to run: ``names`` (checked; ``eager`` = ``""``) or the suite's; unavailable ones go to ``skipped``."""
    chosen = list(dict.fromkeys("" if n == "eager" else n for n in (default if names is None else names)))
    for name in chosen:
        if name not in MODES:
            allowed = ", ".join(m or "eager (the spec as written)" for m in MODES)
            raise SpecError(f"unknown mode {name!r}; allowed: {allowed}", path="modes")
    kept = []
    for name in chosen:
        problem = _mode_problem(name)
        if problem is None:
            kept.append(name)
        else:
            skipped[f"mode {name}"] = problem
    return kept


def data_choices(
    samples: Sequence[int],
    kinds: Sequence[str],
    cache: Path,
    max_in_memory: int,
    skipped: dict[str, str],
) -> list[tuple[ScaleData | None, str]]:
    """(data set, kind) pairs, smallest first; ``[(None, "")]`` (the workload's own data) without samples.

    Kinds this duofit cannot read, and in-memory (``npz``) sets over ``max_in_memory``
    values (duofit.common.data.MAX_DATA_ELEMENTS), are left out and named in ``skipped``.
    """
    if not samples:
        return [(None, "")]
    for kind in kinds:
        if kind not in DATA_KINDS:
            raise SpecError(f"unknown data kind {kind!r}; allowed: {', '.join(DATA_KINDS)}", path="data_kinds")
    readable = [k for k in dict.fromkeys(kinds) if k in SPEC_DATA_KINDS]
    for kind in dict.fromkeys(kinds):
        if kind not in readable:
            skipped[f"data kind {kind}"] = f"data.kind = {kind!r} is not a data kind of this duofit"
    pairs: list[tuple[ScaleData | None, str]] = []
    for n in sorted(set(samples)):
        for kind in readable:
            values = n * (FEATURES + 1)
            if kind == "npz" and values > max_in_memory:
                skipped[f"npz at n={samples_label(n)}"] = (
                    f"{values:,} values exceed duofit's in-memory cap of {max_in_memory:,} "
                    "(duofit.common.data.MAX_DATA_ELEMENTS); the npy rows cover this size"
                )
                continue
            pairs.append((ScaleData(n, cache), kind))
    return pairs


def _variant_spec(
    base: dict[str, Any], train: dict[str, Any], data: ScaleData | None, kind: str, mode: str
) -> dict[str, Any]:
    """The workload's spec document with the run's train settings, the mode and the data set applied."""
    doc = {**base, "train": {**train, **MODES[mode]}}
    if data is not None:
        kept = {k: v for k, v in base["data"].items() if k not in _SOURCE_FIELDS}
        doc["data"] = {**kept, **data.spec_data(kind)}
    return doc


def expand(
    plans: Sequence[WorkloadPlan],
    find: Any,
    *,
    batch_sizes: Sequence[int] | None,
    epochs: int | None,
    dtype: str | None,
    threads: int,
    device: str,
    data: Sequence[tuple[ScaleData | None, str]],
    modes: Sequence[str],
    skipped: dict[str, str],
) -> list[Variant]:
    """Every workload x batch size x data set x mode, its spec validated with the run's settings.

    ``find(name) -> (name, path)`` locates a workload's spec file. A mode the workload's
    settings refuse (``bf16`` with ``dtype = "float64"``) is left out and named in ``skipped``.
    """
    variants: list[Variant] = []
    for dataset, kind in data:
        for wp in plans:
            name, path = find(wp.name)
            base = load_spec(path).model_dump(mode="json")
            for bs in batch_sizes or wp.batch_sizes or (base["train"]["batch_size"],):
                train = {**base["train"], "batch_size": bs, "threads": threads, "device": device}
                train["epochs"] = epochs or wp.epochs or train["epochs"]
                train["dtype"] = dtype or train["dtype"]
                if train["epochs"] < WARMUP_EPOCHS + MIN_STEADY_EPOCHS:
                    raise SpecError(f"workload {name!r}: train.epochs must be >= {WARMUP_EPOCHS + MIN_STEADY_EPOCHS}")
                overrides: dict[str, object] = {k: train[k] for k in _HASHED_TRAIN}
                if dataset is not None:
                    overrides["data"] = dataset.identity(kind)
                for mode in (m for m in modes if wp.modes is None or m in wp.modes):
                    try:
                        spec = load_spec(_variant_spec(base, train, dataset, kind, mode))  # clear field errors
                    except SpecError as exc:
                        if not mode:
                            raise
                        lines = [line.strip() for line in str(exc).splitlines()]
                        skipped[f"mode {mode} on {name}"] = next(
                            (ln for ln in lines if ln.startswith("train.")), lines[0]
                        )
                        continue
                    hashed = {**overrides, "mode": MODES[mode]} if mode else overrides
                    variants.append(
                        Variant(
                            name, bs, train["epochs"], train["dtype"], spec.model_dump_json(),
                            _doc_hash(path, hashed), mode, dataset, kind,
                        )
                    )  # fmt: skip
    return variants
