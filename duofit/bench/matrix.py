"""The benchmark runner: one fresh process per cell, one CSV row per finished cell.

Each cell runs as ``python -m duofit.bench.cell`` with the BLAS/OpenMP/TensorFlow thread
variables in its environment, so the framework starts with the same thread counts in
every cell, and every Keras backend gets its own process. ``resume`` skips the cells whose
``cell_id`` is already in the CSV; rows are appended atomically (see :mod:`.schema`), so a
run killed at any moment leaves a valid CSV that ``resume`` completes without duplicates.

Example:
    Runs benchmark cells and writes a CSV, so it is not run as a doctest.

    >>> plan = plan_matrix("quick", backends=["numpy-lean"])                    # doctest: +SKIP
    >>> report = run_matrix(plan, "results/bench-quick.csv", overwrite=True)   # doctest: +SKIP
    >>> report.failed                                                           # doctest: +SKIP
    []
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from duofit.bench.plan import WARMUP_EPOCHS, Cell, MatrixPlan, plan_matrix
from duofit.bench.schema import BenchFileError, append_row, read_rows, start_file

__all__ = ["DEFAULT_CELL_TIMEOUT_S", "MatrixReport", "plan_matrix", "run_matrix"]

DEFAULT_CELL_TIMEOUT_S = 900.0  # a cell of the full suite takes < 1 min on 2 cores; 15x headroom
BUSY_SAMPLE_S = 0.25  # window for the host CPU use recorded before each cell
IDLE_MARGIN_PCT = 10.0  # --wait-idle: the cell's cores must be free, with this margin of the host for the rest
IDLE_POLL_S = 2.0  # how often --wait-idle looks again
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")


@dataclass
class MatrixReport:
    """What a run did: rows written, cells skipped as already done, failures."""

    out: Path
    ran: list[str] = field(default_factory=list)
    already_done: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    peak: dict[str, Any] = field(default_factory=dict)


def _child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update({var: str(threads) for var in THREAD_ENV_VARS})
    env["TF_NUM_INTEROP_THREADS"] = str(threads)
    env.pop("KERAS_BACKEND", None)  # each cell selects its framework (duofit.backends.kerasenv)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the cell process gets SIGKILL when the runner dies, so a killed run leaves no orphans."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


def _spawn(module: str, args: list[str], threads: int, timeout: float) -> tuple[int, str, float]:
    """Run ``python -m module args`` in a fresh process: exit code, output, and its peak RSS (MiB; NaN if unknown)."""
    kwargs: dict[str, Any] = {"preexec_fn": _die_with_parent} if sys.platform.startswith("linux") else {}
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            env=_child_env(threads),
            stdout=log,
            stderr=subprocess.STDOUT,
            **kwargs,
        )
        code, peak_mb = _wait(proc, timeout)
        log.seek(0)
        text = log.read()
    if code is None:
        return -1, f"timed out after {timeout:.0f} s (raise it with --cell-timeout)", peak_mb
    return code, text, peak_mb


def _wait(proc: subprocess.Popen[Any], timeout: float) -> tuple[int | None, float]:
    """Exit code (``None``: killed at ``timeout``) and peak RSS in MiB of a finished child.

    ``os.wait4`` returns the child's own resource usage, so ``ru_maxrss`` is that process's
    high-water mark over its whole life (KiB on Linux, bytes on macOS; getrusage(2)), however
    late in the cell the peak came. Without ``wait4`` (Windows) the peak is NaN and the row
    keeps the cell's own reading.
    """
    if not hasattr(os, "wait4"):
        try:
            return proc.wait(timeout), math.nan
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return None, math.nan
    fired = threading.Event()

    def kill() -> None:
        fired.set()
        proc.kill()

    timer = threading.Timer(timeout, kill)
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except BaseException:  # Ctrl-C: the cell must not outlive the runner
        proc.kill()
        raise
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    peak_mb = usage.ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)
    return (None if fired.is_set() else proc.returncode), peak_mb


def _measure_peak(threads: int, size: int, folder: Path, timeout: float, device: str = "cpu") -> dict[str, Any]:
    out = folder / "peak.json"
    args = [str(out), "--threads", str(threads), "--size", str(size), "--device", device]
    code, text, _ = _spawn("duofit.bench.flops", args, threads, timeout)
    if code != 0 or not out.exists():
        return {"peak_gflops": math.nan, "peak_source": f"measurement failed: {text.strip()[-200:]}"}
    return dict(json.loads(out.read_text(encoding="utf-8")))


def _host_load(threads: int, wait_idle_s: float = 0.0, log: Callable[[str], None] = print) -> tuple[float, float]:
    """Host CPU use (%) of the last BUSY_SAMPLE_S and the 1-minute load average.

    With ``wait_idle_s`` > 0, first wait (up to that long) until ``threads`` cores are free:
    host use below ``100 * (1 - threads / cores) + IDLE_MARGIN_PCT`` percent.
    """
    import psutil

    cores = psutil.cpu_count() or 1
    limit = max(100.0 * (1 - threads / cores), 0.0) + IDLE_MARGIN_PCT
    busy = float(psutil.cpu_percent(interval=BUSY_SAMPLE_S))
    deadline = time.monotonic() + wait_idle_s
    if busy > limit and wait_idle_s > 0:
        log(f"host {busy:.0f}% busy; waiting up to {wait_idle_s:.0f} s for it to drop below {limit:.0f}%")
        while busy > limit and time.monotonic() < deadline:
            time.sleep(IDLE_POLL_S)
            busy = float(psutil.cpu_percent(interval=BUSY_SAMPLE_S))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    return busy, load


class _OtherLoad:
    """CPU time the rest of the host used while a cell ran: host busy time minus the cell's own."""

    def __enter__(self) -> _OtherLoad:
        import psutil

        self.pct = math.nan
        self._host, self._child, self._t0 = psutil.cpu_times(), _children_cpu_s(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        import psutil

        host = psutil.cpu_times()
        wall = time.perf_counter() - self._t0
        busy = _busy_s(host) - _busy_s(self._host)
        other = max(busy - (_children_cpu_s() - self._child), 0.0)
        self.pct = 100.0 * other / (wall * (psutil.cpu_count() or 1)) if wall > 0 else math.nan


def _busy_s(times: Any) -> float:
    idle = getattr(times, "idle", 0.0) + getattr(times, "iowait", 0.0)
    return float(sum(times)) - idle - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)


def _children_cpu_s() -> float:
    try:
        import resource
    except ImportError:  # Windows: not measured
        return math.nan
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run_cell(cell: Cell, folder: Path, timeout: float) -> tuple[dict[str, Any] | None, str]:
    """Run one cell process; its columns (``peak_rss_mb`` from ``wait4`` when known) or the error."""
    cfg_file, out_file = folder / f"{cell.repeat}-cell.json", folder / f"{cell.repeat}-out.json"
    out_file.unlink(missing_ok=True)
    cfg = {
        "backend": cell.backend,
        "spec": json.loads(cell.spec_json),
        "device": cell.device,
        "threads": cell.threads,
        "warmup_epochs": WARMUP_EPOCHS,
        "empty": cell.empty,
    }
    cfg_file.write_text(json.dumps(cfg), encoding="utf-8")
    code, text, peak_mb = _spawn("duofit.bench.cell", [str(cfg_file), str(out_file)], cell.threads, timeout)
    if out_file.exists():
        result = json.loads(out_file.read_text(encoding="utf-8"))
        if result.get("ok"):
            columns = dict(result["columns"])
            if math.isfinite(peak_mb):
                columns["peak_rss_mb"] = peak_mb
            return columns, ""
        return None, f"{result.get('type')}: {result.get('message')}"
    return None, f"exit code {code}; output: {text.strip()[-1500:]}"


_TMP_PREFIX = "duofit-bench-"


def _remove_stale_folders() -> None:
    """Delete the cell folders of runners that were killed (their pid no longer exists)."""
    import shutil

    import psutil

    for folder in Path(tempfile.gettempdir()).glob(f"{_TMP_PREFIX}*-*"):
        pid = folder.name[len(_TMP_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


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
    wait_idle_s: float = 0.0,
    peak_size: int | None = None,
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
        wait_idle_s: Before each cell, wait up to this long for the host's other processes to go
            quiet enough to leave the cell's cores free; the host's use is recorded either way.
        peak_size: Matrix size of the peak matmul (default: the suite's; tests use a small one).
        log: Receives one progress line per cell.

    Returns:
        A :class:`MatrixReport`. A failed cell writes no row (a later ``--resume`` retries it).

    Example:
        Runs benchmark cells and writes a CSV, so it is not run as a doctest.

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
    _remove_stale_folders()
    with tempfile.TemporaryDirectory(prefix=f"{_TMP_PREFIX}{os.getpid()}-") as tmp:
        folder = Path(tmp)
        size = peak_size or plan.peak_size
        report.peak = _host_peak(plan.threads, size, plan.device, folder, cell_timeout, wait_idle_s, log)
        for i, cell in enumerate(pending, 1):
            label = f"[{i}/{len(pending)}] {cell.cell_id}"
            _run_one(cell, label, folder, run_id, report, cell_timeout, wait_idle_s, log)
    return report


def _run_one(
    cell: Cell,
    label: str,
    folder: Path,
    run_id: str,
    report: MatrixReport,
    cell_timeout: float,
    wait_idle_s: float,
    log: Callable[[str], None],
) -> None:
    """Run one cell once the host is idle enough; append its row to ``report.out``, or record its failure.

    A generated data set the cell reads is written first (once; the cache keeps it), outside every clock.
    """
    if cell.data is not None and not cell.data.ready(cell.data_kind):
        log(f"generating {cell.data_kind} data set of {cell.data.samples:,} samples in {cell.data.path}")
        cell.data.ensure(cell.data_kind)
    busy, load = _host_load(cell.threads, wait_idle_s, log)
    t0 = time.perf_counter()
    with _OtherLoad() as other:
        columns, error = _run_cell(cell, folder, cell_timeout)
    if columns is None:
        report.failed.append((cell.cell_id, error))
        log(f"{label}: FAILED: {error.splitlines()[0] if error else 'no output'}")
        return
    host = {"host_busy_pct": busy, "other_busy_pct": other.pct, "loadavg_1m": load}
    append_row(report.out, _row(cell, columns, run_id, report.peak, host))
    report.ran.append(cell.cell_id)
    log(f"{label}: {_cell_line(columns, time.perf_counter() - t0)}")


def _cell_line(columns: dict[str, Any], seconds: float) -> str:
    """The progress line of a finished cell: steady ms/step, first epoch, test metric, peak RSS, wall time."""
    rss = f"peak RSS {_num(columns.get('peak_rss_mb'))} MiB"
    if columns.get("data_kind") == "none":  # an empty-process row
        return f"import {_num(columns.get('import_s'))} s, {rss} ({seconds:.1f} s)"
    return (
        f"{_num(columns.get('steady_ms_per_step'))} ms/step, first epoch "
        f"{_num(columns.get('first_epoch_s'))} s, {columns.get('test_metric_name')} "
        f"{_num(columns.get('test_metric'))}, {rss} ({seconds:.1f} s)"
    )


def _host_peak(
    threads: int,
    size: int,
    device: str,
    folder: Path,
    timeout: float,
    wait_idle_s: float,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """The matmul peak on ``device``, measured once the host is quiet; its source notes how busy the host was."""
    busy, _ = _host_load(threads, wait_idle_s, log)  # a peak measured on a busy host would inflate every MFU
    peak = _measure_peak(threads, size, folder, timeout, device)
    peak["peak_source"] = f"{peak.get('peak_source')}; host {busy:.0f}% busy before"
    log(f"matmul peak: {float(peak.get('peak_gflops', math.nan)):.1f} GFLOP/s ({peak['peak_source']})")
    return peak


def _row(
    cell: Cell, columns: dict[str, Any], run_id: str, peak: dict[str, Any], host: dict[str, float]
) -> dict[str, Any]:
    """The CSV row of a finished cell: its measured columns, the run's identity, the peak and MFU, the host's load."""
    gflops = float(peak.get("peak_gflops", math.nan))
    achieved = float(columns.get("achieved_gflops") or math.nan)
    return {
        **columns,
        "run_id": run_id,
        "cell_id": cell.cell_id,
        "spec_hash": cell.spec_hash,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "workload": cell.workload,
        "variant": cell.variant,
        "backend": cell.backend,
        "repeat": cell.repeat,
        "peak_gflops": gflops,
        "peak_source": peak.get("peak_source"),
        "mfu": achieved / gflops if gflops > 0 else math.nan,
        **host,
    }
