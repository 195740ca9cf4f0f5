"""Large memory maps are read with pread: the same rows as indexing the map, and nothing left mapped."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import duofit
from duofit.common.data import load_dataset, rowfile
from duofit.common.data.rowfile import RowFile, read_rows, row_reader


def _mapped(tmp_path: Path, arr: np.ndarray, name: str = "x.npy") -> Any:
    np.save(tmp_path / name, arr)
    return np.load(tmp_path / name, mmap_mode="r")


@pytest.mark.parametrize(
    "rows",
    [
        np.array([17, 3, 3, 998, 0, 4, 5, 6]),  # any order, repeats, a run
        np.arange(100, 400),  # one run
        np.sort(np.random.default_rng(1).choice(1000, 700, replace=False)),  # dense: one block
        np.random.default_rng(2).permutation(1000)[:50],  # sparse: one read per run
        np.array([], dtype=np.int64),
    ],
)
def test_pread_reads_the_rows_indexing_reads(tmp_path: Path, rows: np.ndarray) -> None:
    arr = np.random.default_rng(0).standard_normal((1000, 3, 4)).astype(np.float32)
    x = _mapped(tmp_path, arr)
    got = RowFile.of(x).read(rows)
    assert got.dtype == arr.dtype and got.shape == (len(rows), 3, 4)
    np.testing.assert_array_equal(got, arr[rows])
    got[...] = 0  # a new, writable array: the file is untouched
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), arr)


def test_threads_reading_at_once_open_the_file_once_and_a_copy_opens_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import copy
    import os
    import threading
    import time

    arr = np.arange(600, dtype=np.float32).reshape(200, 3)
    reader = RowFile.of(_mapped(tmp_path, arr))
    opened: list[int] = []
    real_open = os.open

    def slow_open(*args: Any) -> int:  # widens the window in which a second thread could open too
        time.sleep(0.05)
        fd = real_open(*args)
        opened.append(fd)
        return fd

    monkeypatch.setattr(rowfile.os, "open", slow_open)
    results: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: results.append(reader.read(np.array([5, 1])))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(opened) == 1 and len(results) == 4
    for got in results:
        np.testing.assert_array_equal(got, arr[[5, 1]])
    clone = copy.deepcopy(reader)  # as pickling for a worker process: no descriptor, a lock of its own
    np.testing.assert_array_equal(clone.read(np.array([0])), arr[[0]])
    assert len(opened) == 2


def test_a_reshaped_view_reads_from_the_same_start(tmp_path: Path) -> None:
    arr = np.arange(60, dtype=np.float64).reshape(10, 6)
    view = _mapped(tmp_path, arr).reshape(10, 2, 3)
    np.testing.assert_array_equal(RowFile.of(view).read(np.array([9, 1])), arr.reshape(10, 2, 3)[[9, 1]])


def test_only_c_ordered_memory_maps_are_read_with_pread(tmp_path: Path) -> None:
    assert RowFile.of(np.zeros((4, 2))) is None  # in memory
    assert RowFile.of(_mapped(tmp_path, np.asfortranarray(np.ones((4, 3))), "f.npy")) is None
    small = _mapped(tmp_path, np.ones((4, 3)))
    assert row_reader(small) is None  # under RESIDENT_MAP_BYTES: index the map
    np.testing.assert_array_equal(read_rows(small, np.array([1]), None), np.ones((1, 3)))


def _file_resident_kib() -> int:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"RssFile:\s+(\d+)", status).group(1))  # type: ignore[union-attr]


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads RssFile from /proc")
def test_pread_maps_no_pages_where_indexing_maps_them(tmp_path: Path) -> None:
    x = _mapped(tmp_path, np.random.default_rng(0).standard_normal((200_000, 20)).astype(np.float32))  # 16 MB
    rows = np.random.default_rng(1).integers(0, len(x), 20_000)
    before = _file_resident_kib()
    RowFile.of(x).read(rows)
    assert _file_resident_kib() - before < 1024  # under 1 MiB: nothing of the 16 MB file mapped
    np.asarray(x[rows])
    assert _file_resident_kib() - before > 4096  # indexing the map touched pages all over it


def _npy_spec(tmp_path: Path) -> Any:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5)) * 3 + 1
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", (x[:, 0] > 1).astype(np.int64))
    return duofit.load_spec(
        {
            "data": {"kind": "npy", "x": str(tmp_path / "x.npy"), "y": str(tmp_path / "y.npy"), "val_size": 0.2},
            "model": {"layers": [{"type": "dense", "units": 4, "activation": "relu"}, {"type": "dense", "units": 1}]},
            "loss": {"type": "binary_crossentropy", "from_logits": True},
            "train": {"epochs": 2, "batch_size": 32, "dtype": "float64"},
        }
    )


def test_pread_batches_equal_the_mapped_ones_bit_for_bit(tmp_path: Path) -> None:
    part = load_dataset(_npy_spec(tmp_path)).x_train
    assert part._reader is None  # a small map: indexed
    batch = np.random.default_rng(3).permutation(len(part))[:32]
    mapped, chunks = part[batch], [c.copy() for c in part.chunks(50)]
    part._reader = RowFile.of(part.source)
    np.testing.assert_array_equal(part[batch], mapped)
    for got, want in zip(part.chunks(50), chunks, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.torch
def test_a_map_read_with_pread_trains_as_a_resident_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _npy_spec(tmp_path)
    mapped = duofit.run(spec, "torch")
    monkeypatch.setattr(rowfile, "RESIDENT_MAP_BYTES", 0)  # every map is "large": pread everywhere
    assert load_dataset(spec).x_train._reader is not None
    read = duofit.run(spec, "torch")
    # The scaler of a pread map is fitted on the training rows in file order (one block per
    # chunk) instead of the split's order: the same statistics up to float64 summation order.
    np.testing.assert_allclose(read.history["loss"], mapped.history["loss"], rtol=1e-12, atol=0)
    np.testing.assert_allclose(read.predictions, mapped.predictions, rtol=1e-12, atol=1e-12)
