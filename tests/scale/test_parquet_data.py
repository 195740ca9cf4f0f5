"""Kind ``parquet``: columns read in row groups, then streamed as kind ``npy``; errors with field paths."""

from __future__ import annotations

import gc
import glob
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import duofit
from duofit import DataError
from duofit.common.data import load_dataset, rowfile

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def _spec(path: Path, **data: Any) -> Any:
    return duofit.load_spec(
        {
            "data": {"kind": "parquet", "path": str(path), "target": "label", "val_size": 0.2, **data},
            "model": {"layers": [{"type": "dense", "units": 1}]},
            "loss": {"type": "binary_crossentropy", "from_logits": True},
        }
    )


def _table(n: int = 200) -> tuple[Any, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3))
    y = (x[:, 0] > 0).astype(np.int64)
    table = pa.table({"a": x[:, 0], "b": x[:, 1].astype(np.float32), "c": (x[:, 2] * 10).astype(np.int32), "label": y})
    cast = np.stack([x[:, 0], x[:, 1].astype(np.float32), (x[:, 2] * 10).astype(np.int32)], axis=1)
    return table, cast, y


def test_parquet_equals_the_in_memory_path(tmp_path: Path) -> None:
    table, x, y = _table()
    pq.write_table(table, tmp_path / "d.parquet", row_group_size=37)  # several row groups
    np.savez(tmp_path / "same.npz", x=x, y=y)
    before = set(glob.glob(str(Path(tempfile.gettempdir()) / "duofit-parquet-*")))
    streamed = load_dataset(_spec(tmp_path / "d.parquet"))
    memory = load_dataset(
        duofit.load_spec(
            {
                "data": {"kind": "npz", "path": str(tmp_path / "same.npz"), "val_size": 0.2},
                "model": {"layers": [{"type": "dense", "units": 1}]},
                "loss": {"type": "binary_crossentropy", "from_logits": True},
            }
        )
    )
    assert streamed.streamed and streamed.feature_names == ("a", "b", "c")
    for part in ("x_train", "x_val", "x_test"):
        np.testing.assert_array_equal(np.asarray(getattr(streamed, part)), getattr(memory, part))
    np.testing.assert_array_equal(streamed.y_test, memory.y_test)
    chosen = load_dataset(_spec(tmp_path / "d.parquet", features=["c", "a"]))
    assert chosen.feature_names == ("c", "a") and chosen.input_shape == (2,)
    del streamed, chosen
    gc.collect()
    assert set(glob.glob(str(Path(tempfile.gettempdir()) / "duofit-parquet-*"))) == before  # nothing left on disk


def test_a_large_parquet_map_is_read_with_pread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table, _, _ = _table()
    pq.write_table(table, tmp_path / "d.parquet", row_group_size=37)
    mapped = load_dataset(_spec(tmp_path / "d.parquet"))
    monkeypatch.setattr(rowfile, "RESIDENT_MAP_BYTES", 0)  # every map is "large"
    read = load_dataset(_spec(tmp_path / "d.parquet"))  # the temporary file is still there to pread
    assert read.x_train._reader is not None
    batch = np.arange(len(read.x_train))[::-3]
    np.testing.assert_allclose(read.x_train[batch], mapped.x_train[batch], rtol=1e-12, atol=1e-12)


def test_parquet_errors_name_their_field(tmp_path: Path) -> None:
    table, _, _ = _table(20)
    pq.write_table(table.append_column("name", pa.array(["x"] * 20)), tmp_path / "d.parquet")
    cases = [
        (_spec(tmp_path / "missing.parquet"), "data.path", "not found"),
        (_spec(tmp_path / "d.parquet"), "data.features", "column 'name' of d.parquet is string, not numeric"),
        (_spec(tmp_path / "d.parquet", target="nope"), "data.target", "has no column 'nope'"),
        (_spec(tmp_path / "d.parquet", features=["a", "zz"]), "data.features", "has no column 'zz'"),
    ]
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    cases.append((_spec(tmp_path / "bad.parquet"), "data.path", "cannot read bad.parquet as Parquet"))
    for spec, path, words in cases:
        with pytest.raises(DataError) as info:
            load_dataset(spec)
        assert info.value.path == path and words in str(info.value), str(info.value)


def test_a_killed_runs_temporary_file_is_removed_by_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import subprocess
    import sys

    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    dead = int(
        subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
        ).stdout
    )
    stale = folder / f"duofit-parquet-{dead}-x1.npy"  # what a SIGKILLed run leaves: its process is gone
    live = folder / f"duofit-parquet-{os.getpid()}-x2.npy"  # a running process' file (here: this one's)
    unrelated = folder / "duofit-parquet-notes.npy"
    for f in (stale, live, unrelated):
        f.write_bytes(b"half-written")
    table, _, _ = _table()
    pq.write_table(table, tmp_path / "d.parquet")
    ds = load_dataset(_spec(tmp_path / "d.parquet"))
    assert not stale.exists() and live.exists() and unrelated.exists()
    written = set(folder.glob(f"duofit-parquet-{os.getpid()}-*.npy")) - {live}
    assert len(written) == 1  # this run's file, in the temporary folder, named by its process
    del ds
    gc.collect()
    assert set(folder.glob(f"duofit-parquet-{os.getpid()}-*.npy")) == {live}  # removed when the data is freed


def test_no_room_for_the_temporary_file_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    from duofit.common.data import parquetfile

    table, _, _ = _table()
    pq.write_table(table, tmp_path / "d.parquet")
    monkeypatch.setattr(parquetfile.shutil, "disk_usage", lambda folder: types.SimpleNamespace(free=100))
    before = set(glob.glob(str(Path(tempfile.gettempdir()) / "duofit-parquet-*")))
    with pytest.raises(DataError) as err:
        load_dataset(_spec(tmp_path / "d.parquet"))
    assert err.value.path == "data.path"
    assert "100 bytes free" in str(err.value) and "TMPDIR" in str(err.value) and "data.kind = 'npy'" in str(err.value)
    assert set(glob.glob(str(Path(tempfile.gettempdir()) / "duofit-parquet-*"))) == before  # nothing written


def test_a_disk_that_fills_up_while_writing_is_a_clear_error_with_nothing_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import io

    from duofit.common.data import tempfiles

    class Full(io.FileIO):
        def write(self, data: Any) -> int:
            if len(data) > 200:  # the header fits, the first row group does not
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().write(data)

    table, _, _ = _table()
    pq.write_table(table, tmp_path / "d.parquet", row_group_size=37)
    monkeypatch.setattr(tempfiles.os, "fdopen", lambda fd, mode: Full(fd, "wb"))
    before = set(glob.glob(str(Path(tempfile.gettempdir()) / "duofit-parquet-*")))
    with pytest.raises(DataError) as err:
        load_dataset(_spec(tmp_path / "d.parquet"))
    assert err.value.path == "data.path" and "No space left on device" in str(err.value) and "TMPDIR" in str(err.value)
    assert set(glob.glob(str(Path(tempfile.gettempdir()) / "duofit-parquet-*"))) == before  # the partial file is gone
