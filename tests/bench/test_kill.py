"""A benchmark run killed with SIGKILL at 20 random moments in a row always leaves a readable
CSV of complete rows; each ``--resume`` keeps every finished row, and the last one completes
the plan without duplicates."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from duofit.bench.schema import COLUMNS, read_rows
from tests.bench.helpers import PEAK, ROOT, TINY_EPOCHS
from tests.reliability.killing import KILL_ROUNDS, KillLog, kill_rounds

pytestmark = pytest.mark.slow

REPEATS = 20  # cells of about a second each: the kill rounds finish some, the last resume the rest
KILL_WINDOW_S = (0.3, 6.0)  # start-up (about 2.5 s: imports, plan), then cells, summary writes


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


def _readable(folder: Path, note: str, killed: tuple[int, ...] = ()) -> None:
    """Every file the run wrote parses: CSVs with pandas, the rest as UTF-8 text.

    Hidden files may only be the temp files of a writer killed just now (``killed``): SIGKILL
    runs no cleanup, so the next write to that file removes them (``remove_dead_temps``).
    """
    for path in folder.iterdir():
        if path.is_file() and path.suffix == ".csv" and path.stat().st_size:
            pd.read_csv(path)
        elif path.is_file() and path.suffix in (".md", ".json"):
            path.read_text(encoding="utf-8")
    hidden = [p.name for p in folder.iterdir() if p.name.startswith(".")]
    left = [n for n in hidden if not (n.endswith(".tmp") and any(f".{pid}." in n for pid in killed))]
    assert left == [], f"{note}: {hidden}"


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_sigkill_at_random_points_keeps_rows_and_resume_finishes(workloads_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "bench.csv"
    seen: list[str] = []

    def check(_round: int, log: KillLog) -> None:
        note = log.note()
        rows = read_rows(out)  # raises on a partial or malformed row
        if out.exists():
            lines = out.read_text(encoding="utf-8").splitlines()
            assert lines[0].split(",") == list(COLUMNS), note
            assert len(lines) == len(rows) + 1, note
        ids = [r["cell_id"] for r in rows]
        assert len(ids) == len(set(ids)), note  # no duplicate
        assert ids[: len(seen)] == seen, note  # every earlier row kept, in order
        assert all(r["steady_ms_per_step"] and r["timestamp"] for r in rows), note
        _readable(folder, note, killed=tuple(log.pids))
        seen[:] = ids

    log = kill_rounds([*_command(workloads_dir, out, "--resume")], KILL_WINDOW_S, check, cwd=ROOT)
    assert len(log.delays) == KILL_ROUNDS

    done = subprocess.run(
        _command(workloads_dir, out, "--resume"), capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, f"{log.note()}\n{done.stdout}\n{done.stderr}"
    final = [r["cell_id"] for r in read_rows(out)]
    assert len(final) == REPEATS and len(set(final)) == REPEATS, log.note()
    assert final[: len(seen)] == seen, log.note()
    _readable(folder, log.note())
    for pid in log.pids:  # the killed runs' cell folders were removed by the runs that followed
        assert not list(Path(tempfile.gettempdir()).glob(f"duofit-bench-{pid}-*")), log.note()
