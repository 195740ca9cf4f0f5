"""Temp files of killed writers are cleaned by the next write; a live writer's are kept.

``atomic_write_bytes`` writes ``.<name>.<pid>.<random>.tmp`` and renames it; SIGKILL between
the two leaves the temp file. The next write to the same path removes temp files whose pid
no longer exists, and never one of a process that is still running (it may be mid-write).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from duofit.common.io import atomic_write_text, remove_dead_temps


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid  # reaped: no process has this pid now (reuse within the test is negligible)


def test_the_next_write_removes_a_killed_writers_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "rows.csv"
    stale = tmp_path / f".rows.csv.{_dead_pid()}.abc123.tmp"
    stale.write_text("half a row")
    atomic_write_text(target, "a,b\n")
    assert target.read_text() == "a,b\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.csv"]


def test_a_live_writers_temp_file_and_other_files_are_kept(tmp_path: Path) -> None:
    target = tmp_path / "rows.csv"
    live = tmp_path / f".rows.csv.{os.getpid()}.xyz.tmp"
    other = tmp_path / f".other.csv.{_dead_pid()}.xyz.tmp"  # another file's temp: not ours to judge
    for p in (live, other):
        p.write_text("in progress")
    assert remove_dead_temps(target) == []
    assert live.exists() and other.exists()


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_a_writer_killed_between_write_and_rename_leaves_litter_only_until_the_next_write(tmp_path: Path) -> None:
    target = tmp_path / "rows.csv"
    code = (
        "import os, signal, sys\n"
        "import duofit.common.io as io\n"
        "os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)\n"  # die at the rename
        f"io.atomic_write_text({str(target)!r}, 'x' * 100)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    assert proc.wait(timeout=120) == -signal.SIGKILL
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(f".rows.csv.{proc.pid}.") and left[0].endswith(".tmp")
    atomic_write_text(target, "done\n")
    assert [p.name for p in tmp_path.iterdir()] == ["rows.csv"]
