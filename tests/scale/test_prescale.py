"""A streamed training part pre-scaled into a temporary file: the same batches, the file gone with the part."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler

from duofit.common.data import StreamedRows, prescale, rows, training_rows
from duofit.common.data.tempfiles import TEMP_PREFIX


@pytest.fixture
def tmpdir_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """TMPDIR pointed at an empty folder; every part counts as larger than READ_ONCE_BYTES."""
    import tempfile

    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    monkeypatch.setattr(rows, "READ_ONCE_BYTES", 0)
    return folder


def _part(source_dtype: Any = np.float32, scaled: bool = True, n: int = 500) -> StreamedRows:
    x = (np.random.default_rng(0).normal(size=(n, 7)) * 3 + 2).astype(source_dtype)
    order = np.random.default_rng(1).permutation(n)[: n - 50]  # a part: some rows, shuffled
    return StreamedRows(x, order, (7,), StandardScaler().fit(x[order]) if scaled else None)


@pytest.mark.parametrize("source_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pre_scaled_batches_are_the_scaled_batches_bit_for_bit(
    tmpdir_files: Path, source_dtype: Any, dtype: Any
) -> None:
    part = _part(source_dtype)
    fast = training_rows(part, dtype)
    assert type(fast) is np.ndarray and fast.dtype == dtype and isinstance(fast.base, np.memmap)
    assert fast.flags.writeable  # copy-on-write: torch takes it without a copy or a warning
    assert len(list(tmpdir_files.glob(f"{TEMP_PREFIX}scaled-*.npy"))) == 1
    for idx in (np.arange(len(part)), np.random.default_rng(2).permutation(len(part))[:64], np.array([5])):
        np.testing.assert_array_equal(fast[idx], part.batch(idx, dtype))
    np.testing.assert_array_equal(fast, part.astype(dtype))


def test_the_temporary_file_goes_with_the_part(tmpdir_files: Path) -> None:
    fast = training_rows(_part(), np.float32)
    assert list(tmpdir_files.iterdir())
    del fast
    gc.collect()
    assert not list(tmpdir_files.iterdir())


def test_nothing_to_scale_or_cast_streams_the_data_itself(tmpdir_files: Path) -> None:
    part = _part(np.float32, scaled=False)
    assert training_rows(part, np.float32) is part  # batches are plain gathers already
    assert type(training_rows(part, np.float64)) is np.ndarray  # a cast is worth one pass


def test_a_part_over_the_resident_size_or_without_room_streams_as_before(
    tmpdir_files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    part = _part()
    size = len(part) * 7 * 4
    with monkeypatch.context() as patch:
        patch.setattr(prescale, "RESIDENT_MAP_BYTES", size - 1)  # its batches would be pread calls
        assert training_rows(part, np.float32) is part
    with monkeypatch.context() as patch:  # the folder must keep as much free as the copy takes
        patch.setattr(prescale.shutil, "disk_usage", lambda _: type("U", (), {"free": 2 * size - 1})())
        assert training_rows(part, np.float32) is part
    assert not list(tmpdir_files.iterdir())


def test_a_failed_write_leaves_no_file_and_streams_as_before(
    tmpdir_files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    part = _part()

    def full(*args: Any, **kwargs: Any) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(StreamedRows, "chunks", full)
    assert training_rows(part, np.float32) is part
    assert not list(tmpdir_files.iterdir())


def test_a_killed_runs_file_is_removed_by_the_next_pre_scaling(tmpdir_files: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: no process has this pid now
    stale = tmpdir_files / f"{TEMP_PREFIX}scaled-{proc.pid}-abc.npy"
    stale.write_bytes(b"half a file")
    other = tmpdir_files / f"{TEMP_PREFIX}parquet-{proc.pid}-abc.npy"  # another kind's: its own writer cleans it
    other.write_bytes(b"x")
    fast = training_rows(_part(), np.float32)
    assert not stale.exists() and other.exists()
    assert isinstance(fast.base, np.memmap)
