"""The benchmark plan: suites, workloads and cells, every name checked before anything runs.

A cell is (workload, backend, device, threads, dtype, batch size, epochs, repeat, variant):
one fresh process, one CSV row. The variant names a training mode (``compile``, ``bf16``;
duofit backends only) and, in the scale suite, the generated data set and how it is read
(``n1e6-npy``). Repeats are the outer loop (every cell once, then again), so a slow patch on
the host spreads over every backend instead of hitting one. The suites themselves are the
table :data:`duofit.bench.suites.SUITES`.

Example:
    >>> plan = plan_matrix("quick", backends=["numpy-lean"])
    >>> plan.cells[0].cell_id
    'seed|numpy-lean|cpu|t2|float32|bs32|e20|r0'
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from duofit.bench.measure import baseline_problem
from duofit.bench.runners import RUNNERS, missing_module, runner_info
from duofit.bench.scale import ScaleData, default_cache, samples_label
from duofit.bench.suites import EMPTY_WORKLOAD, MIN_STEADY_EPOCHS, SUITES, WARMUP_EPOCHS, Suite, WorkloadPlan
from duofit.bench.variants import Variant, data_choices, expand, mode_choices
from duofit.common.errors import BackendError, BackendNotInstalledError, SpecError
from duofit.common.spec import Spec

__all__ = [
    "EMPTY_WORKLOAD",
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


@dataclass(frozen=True)
class Cell:
    """One process to run: a backend on one workload configuration, one repeat.

    ``mode`` is a key of :data:`~duofit.bench.suites.MODES`; ``data`` / ``data_kind`` the
    generated data set a scale cell reads and how (``npz`` in memory, ``npy`` memory-mapped).
    """

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
    mode: str = ""
    data: ScaleData | None = field(default=None, repr=False)
    data_kind: str = ""

    @property
    def variant(self) -> str:
        """What sets this cell apart from the workload as written: ``""``, ``compile``, ``n1e6-npy``, ...

        Example:
            >>> Cell("w", "duofit-torch", "cpu", 2, "float32", 32, 4, 0, "{}", mode="bf16").variant
            'bf16'
        """
        parts = [f"n{samples_label(self.data.samples)}-{self.data_kind}"] if self.data is not None else []
        return "-".join([*parts, self.mode] if self.mode else parts)

    @property
    def empty(self) -> bool:
        """Whether this is an empty-process row (no data, no training)."""
        return self.workload == EMPTY_WORKLOAD

    @property
    def cell_id(self) -> str:
        """The resume key, e.g. ``seed|duofit-torch|cpu|t2|float32|bs32|e100|r0`` (``|compile`` etc. appended).

        An empty-process row is ``empty|<backend>|<device>|t<threads>|r<repeat>``.
        """
        if self.empty:
            return f"{self.workload}|{self.backend}|{self.device}|t{self.threads}|r{self.repeat}"
        base = (
            f"{self.workload}|{self.backend}|{self.device}|t{self.threads}|{self.dtype}"
            f"|bs{self.batch_size}|e{self.epochs}|r{self.repeat}"
        )
        return f"{base}|{self.variant}" if self.variant else base


@dataclass(frozen=True)
class MatrixPlan:
    """The cells of a run, the backends left out (with the reason), and run-wide settings."""

    cells: tuple[Cell, ...]
    skipped: dict[str, str]
    threads: int
    peak_size: int
    device: str = "cpu"


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
    device: str | None = None,
    dtype: str | None = None,
    workloads_dir: str | Path | None = None,
    modes: Sequence[str] | None = None,
    samples: Sequence[int] | None = None,
    max_samples: int | None = None,
    data_kinds: Sequence[str] | None = None,
    data_cache: str | Path | None = None,
    require_device: bool = True,
) -> MatrixPlan:
    """Expand a suite (plus overrides) into cells, checking every name first.

    Args:
        suite: A name in :data:`~duofit.bench.suites.SUITES` (``quick``, ``full``, ``models``, ``scale``, ``gpu``).
        workloads: Workload names (or spec paths); default: the suite's.
        backends: Benchmark backends; default: the suite's, or every installed one (others are listed in ``skipped``).
        batch_sizes: Override the suite's batch sizes.
        epochs: Override the suite's epochs (at least warm-up + 2).
        repeats: Override the suite's repeats.
        threads: Intra-op threads for every framework; default: the cores available.
        device: ``cpu`` or ``cuda``; default: the suite's (``gpu``: cuda, others cpu).
        dtype: Override the workload's dtype.
        workloads_dir: Folder of the named workloads (default ``benchmarks/workloads``).
        modes: Training modes (keys of :data:`~duofit.bench.suites.MODES`: ``""``, ``compile``, ``bf16``);
            default: the suite's. Modes run on duofit backends only.
        samples: Sizes of the generated data sets (scale suite); default: the suite's.
        max_samples: Leave out the sizes above this (a quick scale run on a small machine).
        data_kinds: ``npz`` (in memory) and/or ``npy`` (memory-mapped); default: the suite's.
        data_cache: Folder of the generated data sets (default :func:`~duofit.bench.scale.default_cache`).
        require_device: Refuse ``cuda`` on a machine without an NVIDIA driver (``False``: plan only, e.g. a dry run).

    Raises:
        SpecError: unknown suite/workload/device/mode/data kind, or a bad override (the message lists what is allowed).
        BackendError: unknown backend; ``BackendNotInstalledError`` for a named one that is missing.

    Example:
        >>> plan = plan_matrix("quick", backends=["numpy-lean"], repeats=2)
        >>> len(plan.cells)
        4
        >>> scale = plan_matrix("scale", backends=["numpy-lean"], max_samples=10**4, data_cache="/tmp/d")
        >>> [c.cell_id for c in scale.cells][:1]
        ['scale_mlp|numpy-lean|cpu|t2|float32|bs1024|e4|r0|n1e4-npz']
    """
    if suite not in SUITES:
        raise SpecError(f"unknown suite {suite!r}; allowed: {', '.join(SUITES)}", path="suite")
    cfg = SUITES[suite]
    device = device or cfg.device
    _check_overrides(device, batch_sizes, epochs, repeats, threads, max_samples, require_device)
    chosen, skipped = _check_backends(backends, device, cfg.backends)
    folder = Path(workloads_dir) if workloads_dir is not None else WORKLOADS_DIR
    by_name = {w.name: w for w in cfg.workloads}
    plans = [by_name.get(n, WorkloadPlan(n, None, ())) for n in workloads] if workloads else list(cfg.workloads)
    threads = threads or default_threads()
    sizes = [n for n in (samples or cfg.samples) if max_samples is None or n <= max_samples]
    if (samples or cfg.samples) and not sizes:
        raise SpecError(f"--max-samples {max_samples} leaves no data set size of {list(samples or cfg.samples)}")
    data = data_choices(sizes, data_kinds or cfg.data_kinds or ("npz",), _cache(data_cache), _in_memory_cap(), skipped)
    variants = expand(
        plans,
        lambda name: _workload_file(name, folder),
        batch_sizes=batch_sizes,
        epochs=epochs,
        dtype=dtype,
        threads=threads,
        device=device,
        data=data,
        modes=mode_choices(cfg.modes, modes, skipped),
        skipped=skipped,
    )
    cannot = _baselines_that_cannot(variants, chosen, skipped)
    cells: list[Cell] = []
    for r in range(repeats or cfg.repeats):
        cells += _empty_cells(chosen, device, threads, r) if cfg.empty_rows else []
        cells += [
            _cell(v, b, device, threads, r)
            for v in variants
            for b in chosen
            if (v.name, b) not in cannot and _runs(v, b)
        ]
    cells = list(dict.fromkeys(cells))  # --epochs can make a suite's e4 and e40 cells one
    return MatrixPlan(cells=tuple(cells), skipped=skipped, threads=threads, peak_size=cfg.peak_size, device=device)


def _cell(v: Variant, backend: str, device: str, threads: int, repeat: int) -> Cell:
    return Cell(
        v.name, backend, device, threads, v.dtype, v.batch_size, v.epochs, repeat, v.spec_json, v.digest,
        mode=v.mode, data=v.data, data_kind=v.data_kind,
    )  # fmt: skip


def _cache(folder: str | Path | None) -> Path:
    return Path(folder) if folder is not None else default_cache()


def _in_memory_cap() -> int:
    from duofit.common.data import MAX_DATA_ELEMENTS

    return int(MAX_DATA_ELEMENTS)


def _runs(variant: Variant, backend: str) -> bool:
    """Modes are duofit's train settings, and streamed data is duofit's reader: baselines run neither."""
    return RUNNERS[backend].impl == "duofit" or (not variant.mode and variant.data_kind != "npy")


def _empty_cells(backends: Sequence[str], device: str, threads: int, repeat: int) -> list[Cell]:
    """One empty-process cell per framework among ``backends`` (the first backend that imports it)."""
    first: dict[str, str] = {}
    for name in backends:
        if RUNNERS[name].framework != "numpy":
            first.setdefault(RUNNERS[name].framework, name)
    digest = hashlib.sha256(EMPTY_WORKLOAD.encode("utf-8")).hexdigest()[:12]
    return [Cell(EMPTY_WORKLOAD, b, device, threads, "", 0, 0, repeat, "{}", digest) for b in first.values()]


def _check_overrides(
    device: str,
    batch_sizes: Sequence[int] | None,
    epochs: int | None,
    repeats: int | None,
    threads: int | None,
    max_samples: int | None,
    require_device: bool,
) -> None:
    """Refuse an unknown device and out-of-range overrides, before anything is loaded."""
    if device not in ("cpu", "cuda"):
        raise SpecError(f"unknown device {device!r}; allowed: cpu, cuda", path="device")
    if device == "cuda" and require_device and not _nvidia_driver():
        raise SpecError(
            "device 'cuda': this machine has no NVIDIA driver (no nvidia-smi); allowed here: cpu "
            "(--dry-run --device cuda still lists the plan)"
        )
    for label, value in (("repeats", repeats), ("epochs", epochs), ("threads", threads), ("max_samples", max_samples)):
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


def _baselines_that_cannot(variants: list[Variant], chosen: list[str], skipped: dict[str, str]) -> set[tuple[str, str]]:
    """(workload, baseline) pairs the hand-written loops cannot run; each is also added to ``skipped``."""
    cannot: set[tuple[str, str]] = set()
    for v in variants:
        for backend in chosen:
            if RUNNERS[backend].impl == "baseline" and (v.name, backend) not in cannot:
                problem = baseline_problem(Spec.model_validate_json(v.spec_json), backend)
                if problem is not None:
                    cannot.add((v.name, backend))
                    skipped[f"{backend} on {v.name}"] = problem.split(";")[0]
    return cannot
