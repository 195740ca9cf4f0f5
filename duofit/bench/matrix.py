"""The benchmark matrix: suites, cells, and the runner that appends one CSV row per cell.

A cell is (workload, backend, device, threads, dtype, batch size, epochs, repeat). Each
runs in a fresh ``python -m duofit.bench.cell`` process with the thread variables set
before any framework loads, so every Keras backend and every repeat starts cold and
equal. Repeats are the outer loop (all cells once, then again), so a slow patch on the
host spreads over every backend instead of hitting one. ``resume`` skips the cells whose
``cell_id`` is already in the CSV; rows are appended atomically (see :mod:`.schema`).

Example:
    >>> plan = plan_matrix("quick", backends=["numpy-lean"])
    >>> [c.cell_id for c in plan.cells][:1]   # doctest: +SKIP
    ['seed|numpy-lean|cpu|t2|float32|bs32|e20|r0']
    >>> report = run_matrix(plan, "results/bench-quick.csv", overwrite=True)   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from duofit.bench.runners import RUNNERS, missing_module, runner_info
from duofit.bench.schema import BenchFileError, append_row, read_rows, start_file
from duofit.common.errors import BackendError, BackendNotInstalledError, SpecError
from duofit.common.loader import load_spec

__all__ = [
    "SUITES",
    "WORKLOADS_DIR",
    "Cell",
    "MatrixPlan",
    "MatrixReport",
    "Suite",
    "WorkloadPlan",
    "default_threads",
    "plan_matrix",
    "run_matrix",
    "workload_names",
]

# The checkout's benchmarks/workloads (an installed, non-editable duofit falls back to ./benchmarks/workloads).
_CHECKOUT_WORKLOADS = Path(__file__).resolve().parents[2] / "benchmarks" / "workloads"
WORKLOADS_DIR = _CHECKOUT_WORKLOADS if _CHECKOUT_WORKLOADS.is_dir() else Path("benchmarks") / "workloads"
WARMUP_EPOCHS = 1  # the first epoch (tracing / graph building / compilation) is reported separately
MIN_STEADY_EPOCHS = 2  # at least two timed epochs after the warm-up, so a median means something
DEFAULT_CELL_TIMEOUT_S = 900.0  # a cell of the full suite takes < 1 min on 2 cores; 15x headroom
BUSY_SAMPLE_S = 0.25  # window for the host CPU use recorded before each cell
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")


@dataclass(frozen=True)
class WorkloadPlan:
    """A workload in a suite: its spec file's stem, epochs and batch sizes."""

    name: str
    epochs: int | None
    batch_sizes: tuple[int, ...]


@dataclass(frozen=True)
class Suite:
    """Named set of workloads with default repeats and the matmul size for the peak."""

    workloads: tuple[WorkloadPlan, ...]
    repeats: int
    peak_size: int


SUITES: dict[str, Suite] = {
    # < 2 min on 2 cores: every backend once, short runs.
    "quick": Suite((WorkloadPlan("seed", 20, (32,)), WorkloadPlan("wide_mlp", 3, (256,))), repeats=1, peak_size=1024),
    # The matrix: the seed problem as the chapter runs it (100 epochs) and the wide MLP.
    "full": Suite(
        (WorkloadPlan("seed", 100, (32, 128)), WorkloadPlan("wide_mlp", 6, (64, 256, 1024))), repeats=5, peak_size=2048
    ),
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

    @property
    def cell_id(self) -> str:
        """The resume key, e.g. ``seed|duofit-torch|cpu|t2|float32|bs32|e100|r0``."""
        return (
            f"{self.workload}|{self.backend}|{self.device}|t{self.threads}|{self.dtype}"
            f"|bs{self.batch_size}|e{self.epochs}|r{self.repeat}"
        )

    @property
    def spec_hash(self) -> str:
        """First 12 hex digits of the spec's sha256 (a changed workload file is detected)."""
        return hashlib.sha256(self.spec_json.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class MatrixPlan:
    """The cells of a run, the backends left out (with the reason), and run-wide settings."""

    cells: tuple[Cell, ...]
    skipped: dict[str, str]
    threads: int
    peak_size: int


@dataclass
class MatrixReport:
    """What a run did: rows written, cells skipped as already done, failures."""

    out: Path
    ran: list[str] = field(default_factory=list)
    already_done: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    peak: dict[str, Any] = field(default_factory=dict)


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


def _check_backends(names: Sequence[str] | None, device: str) -> tuple[list[str], dict[str, str]]:
    skipped: dict[str, str] = {}
    if names is None:
        chosen = []
        for name, info in RUNNERS.items():
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
    if suite not in SUITES:
        raise SpecError(f"unknown suite {suite!r}; allowed: {', '.join(SUITES)}", path="suite")
    if device not in ("cpu", "cuda"):
        raise SpecError(f"unknown device {device!r}; allowed: cpu, cuda", path="device")
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
    chosen, skipped = _check_backends(backends, device)
    cfg = SUITES[suite]
    folder = Path(workloads_dir) if workloads_dir is not None else WORKLOADS_DIR
    by_name = {w.name: w for w in cfg.workloads}
    plans = [by_name.get(n, WorkloadPlan(n, None, ())) for n in workloads] if workloads else list(cfg.workloads)
    threads = threads or default_threads()
    variants: list[tuple[str, int, int, str, str]] = []  # workload, batch size, epochs, dtype, spec json
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
            variants.append((name, bs, train["epochs"], train["dtype"], spec.model_dump_json()))
    cells = [
        Cell(name, backend, device, threads, dt, bs, ep, r, js)
        for r in range(repeats or cfg.repeats)
        for (name, bs, ep, dt, js) in variants
        for backend in chosen
    ]
    return MatrixPlan(cells=tuple(cells), skipped=skipped, threads=threads, peak_size=cfg.peak_size)


def _child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update({var: str(threads) for var in THREAD_ENV_VARS})
    env["TF_NUM_INTEROP_THREADS"] = str(threads)
    env["KERAS_BACKEND"] = "tensorflow"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the cell process gets SIGKILL when the runner dies, so a killed run leaves no orphans."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


def _spawn(module: str, args: list[str], threads: int, timeout: float) -> tuple[int, str]:
    kwargs: dict[str, Any] = {"preexec_fn": _die_with_parent} if sys.platform.startswith("linux") else {}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", module, *args],
            env=_child_env(threads),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
            **kwargs,
        )
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {timeout:.0f} s (raise it with --cell-timeout)"
    return proc.returncode, proc.stdout or ""


def _measure_peak(threads: int, size: int, folder: Path, timeout: float) -> dict[str, Any]:
    out = folder / "peak.json"
    code, text = _spawn(
        "duofit.bench.flops", [str(out), "--threads", str(threads), "--size", str(size)], threads, timeout
    )
    if code != 0 or not out.exists():
        return {"peak_gflops": math.nan, "peak_source": f"measurement failed: {text.strip()[-200:]}"}
    return dict(json.loads(out.read_text(encoding="utf-8")))


def _host_load() -> tuple[float, float]:
    import psutil

    busy = float(psutil.cpu_percent(interval=BUSY_SAMPLE_S))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    return busy, load


def _run_cell(cell: Cell, folder: Path, timeout: float) -> tuple[dict[str, Any] | None, str]:
    cfg_file, out_file = folder / f"{cell.repeat}-cell.json", folder / f"{cell.repeat}-out.json"
    out_file.unlink(missing_ok=True)
    cfg = {
        "backend": cell.backend,
        "spec": json.loads(cell.spec_json),
        "device": cell.device,
        "threads": cell.threads,
        "warmup_epochs": WARMUP_EPOCHS,
    }
    cfg_file.write_text(json.dumps(cfg), encoding="utf-8")
    code, text = _spawn("duofit.bench.cell", [str(cfg_file), str(out_file)], cell.threads, timeout)
    if out_file.exists():
        result = json.loads(out_file.read_text(encoding="utf-8"))
        if result.get("ok"):
            return dict(result["columns"]), ""
        return None, f"{result.get('type')}: {result.get('message')}"
    return None, f"exit code {code}; output: {text.strip()[-1500:]}"


def _num(value: Any) -> str:
    return "nan" if value is None else f"{float(value):.4g}"


def _prepare(plan: MatrixPlan, out: Path, resume: bool, overwrite: bool) -> list[Cell]:
    if out.exists() and not (resume or overwrite):
        raise BenchFileError(f"{out} already exists; pass --resume to continue it or --overwrite to replace it")
    start_file(out, overwrite=overwrite and not resume)
    done = {row["cell_id"]: row["spec_hash"] for row in read_rows(out)}
    pending = []
    for cell in plan.cells:
        if cell.cell_id not in done:
            pending.append(cell)
        elif done[cell.cell_id] != cell.spec_hash:
            raise BenchFileError(
                f"{out} has cell {cell.cell_id} measured with another version of the workload spec "
                f"(hash {done[cell.cell_id]}, now {cell.spec_hash}); write to a new file with --out"
            )
    return pending


def run_matrix(
    plan: MatrixPlan,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    cell_timeout: float = DEFAULT_CELL_TIMEOUT_S,
    log: Callable[[str], None] = print,
) -> MatrixReport:
    """Run every pending cell of ``plan``, appending one row per finished cell to ``out``.

    Args:
        plan: From :func:`plan_matrix`.
        out: The CSV. If it exists and neither ``resume`` nor ``overwrite`` is set, a
            :class:`~duofit.bench.schema.BenchFileError` is raised.
        resume: Continue ``out``: cells already in it are skipped.
        overwrite: Replace ``out`` (ignored with ``resume``).
        cell_timeout: Seconds before a cell process is killed (the cell is reported as failed).
        log: Receives one progress line per cell.

    Returns:
        A :class:`MatrixReport`. A failed cell writes no row (a later ``--resume`` retries it).

    Example:
        >>> report = run_matrix(plan_matrix("quick"), "results/q.csv", overwrite=True)  # doctest: +SKIP
        >>> report.failed                                                               # doctest: +SKIP
        []
    """
    out = Path(out)
    pending = _prepare(plan, out, resume, overwrite)
    report = MatrixReport(out=out, already_done=[c.cell_id for c in plan.cells if c not in pending])
    if report.already_done:
        log(f"resume: {len(report.already_done)} of {len(plan.cells)} cells already in {out}")
    if not pending:
        return report
    run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="duofit-bench-") as tmp:
        folder = Path(tmp)
        report.peak = _measure_peak(plan.threads, plan.peak_size, folder, cell_timeout)
        peak = float(report.peak.get("peak_gflops", math.nan))
        log(f"matmul peak: {peak:.1f} GFLOP/s ({report.peak.get('peak_source')})")
        for i, cell in enumerate(pending, 1):
            busy, load = _host_load()
            t0 = time.perf_counter()
            columns, error = _run_cell(cell, folder, cell_timeout)
            label = f"[{i}/{len(pending)}] {cell.cell_id}"
            if columns is None:
                report.failed.append((cell.cell_id, error))
                log(f"{label}: FAILED: {error.splitlines()[0] if error else 'no output'}")
                continue
            achieved = float(columns.get("achieved_gflops") or math.nan)
            row = {
                **columns,
                "run_id": run_id,
                "cell_id": cell.cell_id,
                "spec_hash": cell.spec_hash,
                "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
                "workload": cell.workload,
                "backend": cell.backend,
                "repeat": cell.repeat,
                "peak_gflops": peak,
                "peak_source": report.peak.get("peak_source"),
                "mfu": achieved / peak if peak > 0 else math.nan,
                "host_busy_pct": busy,
                "loadavg_1m": load,
            }
            append_row(out, row)
            report.ran.append(cell.cell_id)
            log(
                f"{label}: {_num(columns.get('steady_ms_per_step'))} ms/step, first epoch "
                f"{_num(columns.get('first_epoch_s'))} s, {columns.get('test_metric_name')} "
                f"{_num(columns.get('test_metric'))} ({time.perf_counter() - t0:.1f} s)"
            )
    return report
