"""The benchmark CSV: its columns, and crash-safe reading and appending of rows.

One row per cell and repeat. Every append rewrites the file through a temp file + rename
(:func:`duofit.common.io.atomic_write_text`) under an exclusive lock, so a run killed at
any instant leaves the previous complete file: never half a row, never a duplicate.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "bench.csv"
    >>> append_row(path, {"cell_id": "seed|numpy-lean|r0", "workload": "seed"})
    >>> [r["cell_id"] for r in read_rows(path)]
    ['seed|numpy-lean|r0']
    >>> read_rows(path)[0]["schema_version"] == str(SCHEMA_VERSION)
    True
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from duofit.common.errors import DuofitError
from duofit.common.io import atomic_write_text, remove_dead_temps

__all__ = [
    "COLUMNS",
    "COLUMN_DOCS",
    "READABLE_OLD_LAYOUTS",
    "SCHEMA_VERSION",
    "BenchFileError",
    "append_row",
    "read_rows",
    "start_file",
]

# Bump when a column is added, removed, renamed or changes meaning; a file written with
# another version is refused for appending (start a new --out file) instead of being mixed.
SCHEMA_VERSION = 3
# Older layouts that read_rows still accepts (read only, never appended to): version ->
# {old column name: current name}. Version 1 named the TF32 flag ``tf32``; since version 2
# the CSV uses the same flag names as every result.json environment.
READABLE_OLD_LAYOUTS: dict[int, dict[str, str]] = {1: {"tf32": "tf32_matmul"}, 2: {}}
# Columns added since an older layout: read back empty from a file that lacks them.
ADDED_COLUMNS: tuple[str, ...] = (  # version 3: training modes, data sets, compile time, device sync
    "variant",
    "n_samples",
    "data_kind",
    "data_mb",
    "compile",
    "precision",
    "compile_s",
    "device_sync",
)

COLUMN_DOCS: dict[str, str] = {
    "schema_version": "version of this column layout",
    "run_id": "one id per invocation of the runner (UTC start time + pid)",
    "cell_id": "workload|backend|device|threads|dtype|batch size|epochs|repeat[|variant]: the resume key",
    "spec_hash": "sha256 prefix of the workload file as written plus the cell's overrides",
    "timestamp": "UTC time the row was written",
    "git_commit": "commit of the duofit checkout that ran the cell",
    "workload": "named spec in benchmarks/workloads/ ('empty': an empty-process row, framework import only)",
    "variant": "what sets the cell apart from the workload as written: a training mode (compile, bf16) and/or "
    "a generated data set and how it is read (n1e6-npy); empty for the workload as written",
    "backend": "duofit-torch, duofit-keras, or a hand-written baseline (lean-torch, seed-loop, ...)",
    "impl": "duofit or baseline",
    "framework": "torch, tensorflow or numpy",
    "framework_versions": "versions of the framework packages the cell imported",
    "device": "cpu or cuda",
    "device_name": "CPU model or GPU name",
    "cpu_model": "CPU model of the host",
    "threads": "intra-op threads, set before the framework initialised (same for every backend)",
    "interop_threads": "inter-op threads as the framework reports them",
    "dtype": "float32 or float64",
    "compile": "train.compile as the spec set it (torch.compile / Keras jit_compile); baselines: False",
    "precision": "train.precision: float32, or mixed_bfloat16 (bf16 autocast / Keras mixed_bfloat16 policy)",
    "n_samples": "rows of the data set, every split together",
    "data_kind": "data.kind the cell read (npz: loaded into memory; npy: memory-mapped, read per batch)",
    "data_mb": "the data set's size in float32, features plus the target column (MiB)",
    "batch_size": "samples per step (the last step of an epoch may be partial)",
    "epochs": "epochs trained (the first warmup_epochs are excluded from steady state)",
    "warmup_epochs": "epochs excluded from the steady-state numbers",
    "n_train": "training samples per epoch",
    "steps_per_epoch": "optimizer steps per epoch",
    "steps": "optimizer steps in the whole run",
    "repeat": "repeat index of the cell (0-based)",
    "first_epoch_s": "first epoch of the training loop: tracing/graph building/compilation + one epoch",
    "compile_s": "first_epoch_s minus the median steady epoch: the one-time tracing/graph building/compilation "
    "(train.compile: torch.compile / XLA)",
    "steady_ms_per_step": "median steady epoch, wall clock between epoch ends (training, validation, "
    "per-epoch metrics, callbacks), divided by steps_per_epoch",
    "steady_loop_ms_per_step": "the same from the backend's own per-epoch timer (duofit: excludes the "
    "per-epoch history metrics); equal to steady_ms_per_step for baselines",
    "samples_per_s": "n_train / median steady epoch seconds",
    "total_wall_s": "data loading + build + all epochs + test predictions, in the cell process",
    "import_s": "seconds to import the framework(s) and set threads in the fresh cell process",
    "peak_rss_mb": "peak resident memory of the cell process over its whole life (MiB): the kernel's high-water "
    "mark, read by the runner when the process ends (wait4), else by the cell itself (getrusage)",
    "peak_device_mem_mb": "peak accelerator memory (MiB); 0 on cpu",
    "device_sync": "how each epoch's clock waited for the GPU (torch.cuda.synchronize, ...); empty on cpu",
    "final_train_loss": "training loss of the last epoch as the loop reports it",
    "final_val_loss": "validation loss of the last epoch",
    "test_metric_name": "first metric of the workload spec",
    "test_metric": "that metric on the test split, from duofit's reference (sklearn) code for every backend",
    "epoch_eval": "what the loop evaluates after every epoch",
    "jit_compile": "XLA / jit_compile in effect (Keras), False for eager torch",
    "steps_per_execution": "optimizer steps per call into the framework's compiled function (torch: 1)",
    "torch_compile": "torch.compile used",
    "tf32_matmul": "TF32 matmuls allowed (only matters on NVIDIA GPUs)",
    "onednn": "oneDNN kernels (TF_ENABLE_ONEDNN_OPTS / torch mkldnn)",
    "flops_per_step": "model FLOPs per full-batch training step: dense forward 2*in*out per sample, backward 2x",
    "achieved_gflops": "training FLOPs per epoch / median steady epoch seconds / 1e9",
    "peak_gflops": "best float32 matmul GFLOP/s measured at the start of this run on the same threads",
    "peak_source": "which library and matrix size gave peak_gflops",
    "mfu": "achieved_gflops / peak_gflops",
    "host_busy_pct": "CPU use of the whole host just before the cell started (other processes)",
    "other_busy_pct": "CPU use of other processes while the cell ran, % of all cores (host minus the cell)",
    "loadavg_1m": "1-minute load average just before the cell started",
}
COLUMNS: tuple[str, ...] = tuple(COLUMN_DOCS)


class BenchFileError(DuofitError):
    """A results CSV that cannot be appended to (another schema, foreign columns, ...)."""

    exit_code = 2


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else format(value, ".7g")
    return str(value)


def _header() -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(COLUMNS)
    return buf.getvalue()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Exclusive advisory lock on the file's folder (released by the OS if the process dies).

    The folder, not the file, is locked because every write replaces the file's inode.
    """
    try:
        import fcntl
    except ImportError:  # Windows: single writer assumed
        yield
        return
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _check_header(path: Path, text: str) -> None:
    first = text.split("\n", 1)[0]
    found = next(csv.reader([first]), [])
    if found == list(COLUMNS):
        return
    version = "unknown"
    with contextlib.suppress(StopIteration, KeyError):
        version = next(csv.DictReader(io.StringIO(text)))["schema_version"] or "unknown"
    raise BenchFileError(
        f"{path} is not a duofit benchmark CSV of schema version {SCHEMA_VERSION} (found version {version}, "
        f"{len(found)} columns); write to a new file with --out, or pass --overwrite to replace it"
    )


def _current_layout(text: str) -> str:
    """``text`` in the current columns: an older readable layout's header renamed, added columns empty."""
    first, _, rest = text.partition("\n")
    found = next(csv.reader([first]), [])
    if found == list(COLUMNS):
        return text
    for renames in READABLE_OLD_LAYOUTS.values():
        renamed = [renames.get(c, c) for c in found]
        if renamed == [c for c in COLUMNS if c not in ADDED_COLUMNS or c in renamed]:
            rows = [dict(zip(renamed, raw, strict=False)) for raw in csv.reader(io.StringIO(rest)) if raw]
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerows([[r.get(c, "") for c in COLUMNS] for r in rows])
            return _header() + buf.getvalue()
    return text


def start_file(path: str | Path, overwrite: bool = False) -> None:
    """Create ``path`` with just the header row (replacing it when ``overwrite``).

    An existing file is kept (for ``--resume``) after checking that its header is this schema;
    temp files left by a writer that was killed mid-write are removed.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "b.csv"
        >>> start_file(p); p.read_text().startswith("schema_version,run_id,cell_id")
        True
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        remove_dead_temps(path)  # left by a writer killed mid-write
        if path.exists() and not overwrite:
            _check_header(path, path.read_text(encoding="utf-8"))
            return
        atomic_write_text(path, _header())


def append_row(path: str | Path, row: Mapping[str, Any]) -> None:
    """Append one row atomically (temp file + rename), creating the file if needed.

    Missing columns are written empty; ``schema_version`` is filled in; a key that is not a
    column raises ``KeyError`` (a programming error, never silently dropped).

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "b.csv"
        >>> append_row(p, {"workload": "seed"}); len(read_rows(p))
        1
    """
    unknown = set(row) - set(COLUMNS)
    if unknown:
        raise KeyError(f"not benchmark columns: {', '.join(sorted(unknown))}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    full = {**row, "schema_version": SCHEMA_VERSION}
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([_cell(full.get(c)) for c in COLUMNS])
    with _locked(path):
        text = path.read_text(encoding="utf-8") if path.exists() else _header()
        _check_header(path, text)
        if not text.endswith("\n"):
            text += "\n"
        atomic_write_text(path, text + buf.getvalue())


def read_rows(path: str | Path) -> list[dict[str, str]]:
    """All rows of a benchmark CSV as strings (empty list if the file does not exist).

    Raises:
        BenchFileError: the file has another schema or a malformed row.

    Example:
        >>> read_rows("/nonexistent/bench.csv")
        []
    """
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        return []
    text = _current_layout(text)
    _check_header(path, text)
    rows = []
    for i, raw in enumerate(csv.reader(io.StringIO(text))):
        if i == 0 or not raw:
            continue
        if len(raw) != len(COLUMNS):
            raise BenchFileError(f"{path}: row {i + 1} has {len(raw)} fields, expected {len(COLUMNS)}")
        rows.append(dict(zip(COLUMNS, raw, strict=True)))
    return rows
