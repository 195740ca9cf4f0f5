"""The benchmark plan: suites, workloads and cells, every name checked before anything runs.

A cell is (workload, backend, device, threads, dtype, batch size, epochs, repeat): one
fresh process, one CSV row. Repeats are the outer loop (every cell once, then again), so
a slow patch on the host spreads over every backend instead of hitting one.

Example:
    >>> plan = plan_matrix("quick", backends=["numpy-lean"])
    >>> plan.cells[0].cell_id
    'seed|numpy-lean|cpu|t2|float32|bs32|e20|r0'
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from duofit.bench.measure import baseline_problem
from duofit.bench.runners import RUNNERS, missing_module, runner_info
from duofit.common.errors import BackendError, BackendNotInstalledError, SpecError
from duofit.common.loader import load_spec
from duofit.common.spec import Spec

__all__ = [
    "MIN_STEADY_EPOCHS",
    "SUITES",
    "WARMUP_EPOCHS",
    "WORKLOADS_DIR",
    "Cell",
    "MatrixPlan",
    "Suite",
    "WorkloadPlan",
    "default_threads",
    "plan_matrix",
    "workload_names",
]

_CHECKOUT_WORKLOADS = Path(__file__).resolve().parents[2] / "benchmarks" / "workloads"
WORKLOADS_DIR = _CHECKOUT_WORKLOADS if _CHECKOUT_WORKLOADS.is_dir() else Path("benchmarks") / "workloads"
WARMUP_EPOCHS = 1  # the first epoch (tracing / graph building / compilation) is reported separately
MIN_STEADY_EPOCHS = 2  # at least two timed epochs after the warm-up, so a median means something


@dataclass(frozen=True)
class WorkloadPlan:
    """A workload in a suite: its spec file's stem, epochs and batch sizes."""

    name: str
    epochs: int | None
    batch_sizes: tuple[int, ...]


@dataclass(frozen=True)
class Suite:
    """Named set of workloads with default repeats, backends and the matmul size for the peak."""

    workloads: tuple[WorkloadPlan, ...]
    repeats: int
    peak_size: int
    backends: tuple[str, ...] | None = None  # None: every benchmark backend that is installed


# The model workloads: forecasting with an LSTM, digits as rows with a GRU, a two-block text
# transformer and a residual CNN (copies of the examples of the same names).
# Epochs give each cell 1-2 s of steady state (an LSTM epoch is 7 steps, about 6 ms).
_MODELS = (
    WorkloadPlan("lstm_sunspots", 60, (32,)),
    WorkloadPlan("gru_digits_rows", 20, (32,)),
    WorkloadPlan("text_transformer", 20, (32,)),
    WorkloadPlan("resnet_digits", 12, (32,)),
)
_LEAN_BASELINES = ("lean-torch", "keras-tuned")
_DUOFIT_BACKENDS = ("duofit-torch", "duofit-keras", "duofit-keras-torch", "duofit-keras-jax")

SUITES: dict[str, Suite] = {
    # < 2 min on 2 cores: every framework backend once, short runs (numpy-lean only in full: 12 s on wide_mlp).
    "quick": Suite(
        (WorkloadPlan("seed", 20, (32,)), WorkloadPlan("wide_mlp", 3, (256,)), WorkloadPlan("cnn32", 3, (64,))),
        repeats=1,
        peak_size=2048,
        backends=tuple(name for name in RUNNERS if name != "numpy-lean"),
    ),
    # The full matrix: the seed problem as the tutorial runs it (100 epochs), the wide MLP, and
    # the two CNNs (digits 8x8x1, synthetic 32x32x3 images) and the model workloads; numpy-lean runs
    # the MLPs only.
    "full": Suite(
        (
            WorkloadPlan("seed", 100, (32, 128)),
            WorkloadPlan("wide_mlp", 6, (64, 256, 1024)),
            WorkloadPlan("digits_cnn", 15, (32,)),
            WorkloadPlan("cnn32", 5, (64, 256)),
            *_MODELS,
        ),
        repeats=5,
        peak_size=2048,
    ),
    # The model workloads alone: every duofit backend against the lean torch loop and the tuned
    # Keras fit, each building the model from its framework's stock layers.
    "models": Suite(_MODELS, repeats=5, peak_size=2048, backends=(*_DUOFIT_BACKENDS, *_LEAN_BASELINES)),
}


@dataclass(frozen=True)
class Cell:
    """One process to run: a backend on one workload configuration, one repeat."""

    workload: str
    backend: str
    device: str
    threads: int
    dtype: str
    batch_size: int
    epochs: int
    repeat: int
    spec_json: str = field(repr=False)
    spec_hash: str = ""

    @property
    def cell_id(self) -> str:
        """The resume key, e.g. ``seed|duofit-torch|cpu|t2|float32|bs32|e100|r0``."""
        return (
            f"{self.workload}|{self.backend}|{self.device}|t{self.threads}|{self.dtype}"
            f"|bs{self.batch_size}|e{self.epochs}|r{self.repeat}"
        )


def _doc_hash(path: Path, overrides: dict[str, object]) -> str:
    """sha256 prefix of the workload file as written plus the cell's overrides.

    The file, not the validated spec, is hashed: a default that a newer duofit adds to the
    spec does not make earlier rows look like another workload (the git commit records that).
    """
    raw = path.read_bytes()
    blob = raw + json.dumps(overrides, sort_keys=True).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:12]


@dataclass(frozen=True)
class MatrixPlan:
    """The cells of a run, the backends left out (with the reason), and run-wide settings."""

    cells: tuple[Cell, ...]
    skipped: dict[str, str]
    threads: int
    peak_size: int


def _nvidia_driver() -> bool:
    """Whether an NVIDIA driver is present (checked without importing a framework)."""
    import shutil

    return Path("/proc/driver/nvidia").exists() or shutil.which("nvidia-smi") is not None


def default_threads() -> int:
    """Cores this process may use (affinity-aware)."""
    with contextlib.suppress(AttributeError):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def workload_names(folder: Path = WORKLOADS_DIR) -> list[str]:
    """Names of the workload spec files in ``folder`` (stems of ``*.toml`` / ``*.json``)."""
    return sorted(p.stem for p in folder.glob("*") if p.suffix in (".toml", ".json"))


def _workload_file(name: str, folder: Path) -> tuple[str, Path]:
    path = Path(name)
    if path.suffix in (".toml", ".json") and path.is_file():
        return path.stem, path
    for suffix in (".toml", ".json"):
        candidate = folder / f"{name}{suffix}"
        if candidate.is_file():
            return name, candidate
    raise SpecError(
        f"unknown workload {name!r}; allowed: {', '.join(workload_names(folder)) or '(none)'} "
        f"(spec files in {folder}) or a path to a .toml/.json spec",
        path="workload",
    )


def _check_backends(
    names: Sequence[str] | None, device: str, default: Sequence[str] | None
) -> tuple[list[str], dict[str, str]]:
    skipped: dict[str, str] = {}
    if names is None:
        chosen = []
        for name in default or RUNNERS:
            info = RUNNERS[name]
            missing = missing_module(name)
            if missing:
                skipped[name] = f"not installed: needs {missing!r} (pip install 'duofit[{info.extra}]')"
            elif device not in info.devices:
                skipped[name] = f"does not run on {device}"
            else:
                chosen.append(name)
        return chosen, skipped
    for name in names:
        info = runner_info(name)
        missing = missing_module(name)
        if missing:
            raise BackendNotInstalledError(name, missing, info.extra)
        if device not in info.devices:
            raise BackendError(
                f"backend {name!r} does not run on device {device!r}; allowed: {', '.join(info.devices)}"
            )
    return list(dict.fromkeys(names)), skipped


def plan_matrix(
    suite: str = "quick",
    *,
    workloads: Sequence[str] | None = None,
    backends: Sequence[str] | None = None,
    batch_sizes: Sequence[int] | None = None,
    epochs: int | None = None,
    repeats: int | None = None,
    threads: int | None = None,
    device: str = "cpu",
    dtype: str | None = None,
    workloads_dir: str | Path | None = None,
) -> MatrixPlan:
    """Expand a suite (plus overrides) into cells, checking every name first.

    Args:
        suite: ``quick`` or ``full`` (see :data:`SUITES`).
        workloads: Workload names (or spec paths); default: the suite's.
        backends: Benchmark backends; default: every installed one (others are listed in ``skipped``).
        batch_sizes: Override the suite's batch sizes.
        epochs: Override the suite's epochs (at least warm-up + 2).
        repeats: Override the suite's repeats.
        dtype: Override the workload's dtype.
        threads: Intra-op threads for every framework; default: the cores available.
        device: ``cpu`` or ``cuda``.
        workloads_dir: Folder of the named workloads (default ``benchmarks/workloads``).

    Raises:
        SpecError: unknown suite/workload/device, or a bad override (the message lists what is allowed).
        BackendError: unknown backend; ``BackendNotInstalledError`` for a named one that is missing.

    Example:
        >>> plan = plan_matrix("quick", backends=["numpy-lean"], repeats=2)
        >>> len(plan.cells)
        4
    """
    _check_overrides(suite, device, batch_sizes, epochs, repeats, threads)
    cfg = SUITES[suite]
    chosen, skipped = _check_backends(backends, device, cfg.backends)
    folder = Path(workloads_dir) if workloads_dir is not None else WORKLOADS_DIR
    by_name = {w.name: w for w in cfg.workloads}
    plans = [by_name.get(n, WorkloadPlan(n, None, ())) for n in workloads] if workloads else list(cfg.workloads)
    threads = threads or default_threads()
    variants = _variants(plans, folder, batch_sizes, epochs, dtype, threads, device)
    cannot = _baselines_that_cannot(variants, chosen, skipped)
    cells = [
        Cell(name, backend, device, threads, dt, bs, ep, r, js, digest)
        for r in range(repeats or cfg.repeats)
        for (name, bs, ep, dt, js, digest) in variants
        for backend in chosen
        if (name, backend) not in cannot
    ]
    return MatrixPlan(cells=tuple(cells), skipped=skipped, threads=threads, peak_size=cfg.peak_size)


def _check_overrides(
    suite: str,
    device: str,
    batch_sizes: Sequence[int] | None,
    epochs: int | None,
    repeats: int | None,
    threads: int | None,
) -> None:
    """Refuse an unknown suite or device and out-of-range overrides, before anything is loaded."""
    if suite not in SUITES:
        raise SpecError(f"unknown suite {suite!r}; allowed: {', '.join(SUITES)}", path="suite")
    if device not in ("cpu", "cuda"):
        raise SpecError(f"unknown device {device!r}; allowed: cpu, cuda", path="device")
    if device == "cuda" and not _nvidia_driver():
        raise SpecError("device 'cuda': this machine has no NVIDIA driver (no nvidia-smi); allowed here: cpu")
    for label, value in (("repeats", repeats), ("epochs", epochs), ("threads", threads)):
        if value is not None and value < 1:
            raise SpecError(f"{label} must be a positive integer (got {value})", path=label)
    if epochs is not None and epochs < WARMUP_EPOCHS + MIN_STEADY_EPOCHS:
        raise SpecError(
            f"epochs must be >= {WARMUP_EPOCHS + MIN_STEADY_EPOCHS} (the first {WARMUP_EPOCHS} is timed "
            f"separately, and the steady state needs {MIN_STEADY_EPOCHS}); got {epochs}",
            path="epochs",
        )
    if any(b < 1 for b in batch_sizes or ()):
        raise SpecError(f"batch sizes must be positive integers (got {list(batch_sizes or ())})", path="batch_sizes")


# One workload at one batch size: workload, batch size, epochs, dtype, spec JSON, settings hash.
_Variant = tuple[str, int, int, str, str, str]


def _variants(
    plans: Sequence[WorkloadPlan],
    folder: Path,
    batch_sizes: Sequence[int] | None,
    epochs: int | None,
    dtype: str | None,
    threads: int,
    device: str,
) -> list[_Variant]:
    """Every workload at every batch size, its spec validated with the run's settings."""
    variants: list[_Variant] = []
    for wp in plans:
        name, path = _workload_file(wp.name, folder)
        base = load_spec(path).model_dump(mode="json")
        for bs in batch_sizes or wp.batch_sizes or (base["train"]["batch_size"],):
            train = {**base["train"], "batch_size": bs, "threads": threads, "device": device}
            train["epochs"] = epochs or wp.epochs or train["epochs"]
            train["dtype"] = dtype or train["dtype"]
            if train["epochs"] < WARMUP_EPOCHS + MIN_STEADY_EPOCHS:
                raise SpecError(f"workload {name!r}: train.epochs must be >= {WARMUP_EPOCHS + MIN_STEADY_EPOCHS}")
            spec = load_spec({**base, "train": train})  # validates the overrides (clear field errors)
            keys = ("batch_size", "threads", "device", "epochs", "dtype")
            digest = _doc_hash(path, {k: train[k] for k in keys})
            variants.append((name, bs, train["epochs"], train["dtype"], spec.model_dump_json(), digest))
    return variants


def _baselines_that_cannot(
    variants: list[_Variant], chosen: list[str], skipped: dict[str, str]
) -> set[tuple[str, str]]:
    """(workload, baseline) pairs the hand-written loops cannot run; each is also added to ``skipped``."""
    cannot: set[tuple[str, str]] = set()
    for name, _bs, _ep, _dt, js, _digest in variants:
        for backend in chosen:
            if RUNNERS[backend].impl == "baseline" and (name, backend) not in cannot:
                problem = baseline_problem(Spec.model_validate_json(js), backend)
                if problem is not None:
                    cannot.add((name, backend))
                    skipped[f"{backend} on {name}"] = problem.split(";")[0]
    return cannot
