"""A benchmark run killed with SIGKILL at a random moment leaves a readable CSV of complete rows,
and ``--resume`` then completes it without duplicates."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from duofit.bench.schema import COLUMNS, read_rows
from tests.bench.helpers import PEAK, ROOT, TINY_EPOCHS

REPEATS = 5
KILL_WINDOW_S = (0.5, 6.0)  # from start-up through the first cells (each about a second)


def _command(workloads_dir: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "benchmarks" / "run.py"),
        "--workloads",
        "tiny",
        "--workloads-dir",
        str(workloads_dir),
        "--backends",
        "numpy-lean",
        "--epochs",
        str(TINY_EPOCHS),
        "--repeats",
        str(REPEATS),
        "--threads",
        "1",
        "--peak-size",
        str(PEAK),
        "--out",
        str(out),
        *extra,
    ]


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_sigkill_leaves_complete_rows_and_resume_finishes(workloads_dir: Path, tmp_path: Path) -> None:
    seed = random.randrange(1_000_000)
    delay = random.Random(seed).uniform(*KILL_WINDOW_S)
    note = f"(random seed {seed}, killed after {delay:.2f} s)"
    out = tmp_path / "bench.csv"
    proc = subprocess.Popen(_command(workloads_dir, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)

    rows = read_rows(out)  # raises on a partial or malformed row
    if out.exists():
        lines = out.read_text(encoding="utf-8").splitlines()
        assert lines[0].split(",") == list(COLUMNS), note
        assert len(lines) == len(rows) + 1, note
    ids = [r["cell_id"] for r in rows]
    assert len(ids) == len(set(ids)), note
    assert all(r["steady_ms_per_step"] and r["timestamp"] for r in rows), note

    done = subprocess.run(
        _command(workloads_dir, out, "--resume"), capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"{note}\n{done.stdout}\n{done.stderr}"
    final = [r["cell_id"] for r in read_rows(out)]
    assert len(final) == REPEATS and len(set(final)) == REPEATS, note
    assert final[: len(ids)] == ids, note  # rows written before the kill are kept, in order
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".bench.csv")] == [], note  # stale temps removed
    assert not list(Path(tempfile.gettempdir()).glob(f"duofit-bench-{proc.pid}-*")), note  # killed run's cell folder
