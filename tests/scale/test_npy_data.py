"""Kind ``npy``: memory-mapped features, the split as index arrays, a streaming scaler, errors with field paths.

Framework-free: the arrays every backend receives equal the in-memory path's (kind ``npz`` on
the same numbers) bit for bit, and the streaming path never loads the whole file.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import duofit
import duofit.common.data.rows as rows_module
from duofit import DataError, SpecError
from duofit.backends.base import make_plan
from duofit.cli import main
from duofit.common.data import StreamedRows, eval_chunks, load_dataset

LAYERS = [{"type": "dense", "units": 4, "activation": "relu"}, {"type": "dense", "units": 1}]


def _files(folder: Path, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    np.save(folder / "features.npy", x)
    np.save(folder / "targets.npy", y)
    np.savez(folder / "same.npz", x=x, y=y)
    return {"kind": "npy", "x": str(folder / "features.npy"), "y": str(folder / "targets.npy")}


def _spec(data: dict[str, Any], layers: list[dict[str, Any]] | None = None, **train: Any) -> Any:
    return duofit.load_spec(
        {
            "data": {"val_size": 0.2, **data},
            "model": {"layers": layers or LAYERS},
            "loss": {"type": "binary_crossentropy", "from_logits": True},
            "train": {"epochs": 2, "batch_size": 16, **train},
        }
    )


def _xy(n: int = 200, width: int = 5, dtype: Any = np.float64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(n, width)) * 3 + 1).astype(dtype)
    return x, (x[:, 0] > 1).astype(np.int64)


def _same_as_in_memory(streamed: Any, memory: Any, exact: bool = True) -> None:
    assert streamed.streamed and not memory.streamed
    for part in ("x_train", "x_val", "x_test"):
        # a float32 source in a float32 run is prepared in float32 in memory: the float64
        # streamed values cast to float32, exactly what the backends train on
        got, want = np.asarray(getattr(streamed, part), dtype=getattr(memory, part).dtype), getattr(memory, part)
        if exact:
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    for part in ("y_train", "y_val", "y_test"):
        np.testing.assert_array_equal(getattr(streamed, part), getattr(memory, part))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_npy_parts_equal_the_in_memory_path_bit_for_bit(tmp_path: Path, dtype: Any) -> None:
    data = _files(tmp_path, *_xy(dtype=dtype))
    streamed = load_dataset(_spec(data))
    memory = load_dataset(_spec({"kind": "npz", "path": str(tmp_path / "same.npz")}))
    assert isinstance(streamed.x_train, StreamedRows) and streamed.x_train.shape == memory.x_train.shape
    np.testing.assert_array_equal(streamed.scaler.mean_, memory.scaler.mean_)  # one chunk: fit == partial_fit
    np.testing.assert_array_equal(streamed.scaler.scale_, memory.scaler.scale_)
    _same_as_in_memory(streamed, memory)
    idx = np.array([5, 0, 77])  # a batch: the rows of the training part, in the order asked
    np.testing.assert_array_equal(streamed.x_train[idx].astype(memory.x_train.dtype), memory.x_train[idx])
    assert memory.x_train.dtype == dtype  # float32 data of a float32 run stay float32 in memory


@pytest.mark.parametrize("source", [np.float32, np.float64])
@pytest.mark.parametrize("standardize", [True, False])
@pytest.mark.parametrize("tiled_bytes", [2**20, 8 * 5 * 4], ids=["tiled", "broadcast"])
def test_a_batch_read_as_float32_is_the_float64_batch_rounded_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: Any, standardize: bool, tiled_bytes: int
) -> None:
    """``batch(idx, float32)`` scales in float64 and rounds once: the values of ``part[idx].astype(float32)``."""
    monkeypatch.setattr(rows_module, "TILED_BYTES", tiled_bytes)  # 4 rows: larger batches use broadcast statistics
    data = _files(tmp_path, *_xy(dtype=source))
    part = load_dataset(_spec({**data, "standardize": standardize})).x_train
    assert isinstance(part, StreamedRows)
    for idx in (np.array([5, 0, 77]), np.arange(len(part))[::-1], np.array([], dtype=np.int64)):
        want = part[idx].astype(np.float32)
        got = part.batch(idx, np.float32)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(part.batch(idx), part[idx])  # float64 by default
    np.testing.assert_array_equal(part.astype(np.float32), np.asarray(part).astype(np.float32))


def test_regression_targets_are_standardized_as_in_memory(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3))
    data = _files(tmp_path, x, x @ np.array([30.0, -5.0, 2.0]) + 100.0)
    kw = {"standardize_target": True}
    reg = {"layers": [{"type": "dense", "units": 1}]}
    streamed = load_dataset(duofit.load_spec({**_spec_dict(data, **kw), "model": reg, "loss": {"type": "mse"}}))
    npz = {"kind": "npz", "path": str(tmp_path / "same.npz"), **kw}
    memory = load_dataset(duofit.load_spec({**_spec_dict(npz), "model": reg, "loss": {"type": "mse"}}))
    assert streamed.target_scaler is not None
    np.testing.assert_array_equal(streamed.target_scaler.mean_, memory.target_scaler.mean_)
    for part in ("y_train", "y_val", "y_test"):
        np.testing.assert_array_equal(getattr(streamed, part), getattr(memory, part))
    assert abs(float(streamed.y_train.mean())) < 1e-12  # standardized on the training rows


def _spec_dict(data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"data": {"val_size": 0.2, **data, **extra}, "train": {"epochs": 1, "batch_size": 16}}


def test_a_scaler_fitted_in_many_chunks_agrees_to_rounding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rows_module, "STREAM_CHUNK_BYTES", 8 * 5 * 7)  # 7 rows per chunk
    data = _files(tmp_path, *_xy())
    streamed = load_dataset(_spec(data))
    memory = load_dataset(_spec({"kind": "npz", "path": str(tmp_path / "same.npz")}))
    np.testing.assert_allclose(streamed.scaler.mean_, memory.scaler.mean_, rtol=1e-13, atol=1e-15)
    _same_as_in_memory(streamed, memory, exact=False)
    assert [len(c) for c in eval_chunks(streamed.x_test)][:2] == [7, 7]


def test_sequences_and_unscaled_features_stream_too(tmp_path: Path) -> None:
    x, y = _xy(n=120, width=8)
    data = _files(tmp_path, x.reshape(120, 4, 2), y)
    seq = [{"type": "lstm", "units": 3}, {"type": "dense", "units": 1}]
    streamed = load_dataset(_spec(data, layers=seq))
    memory = load_dataset(_spec({"kind": "npz", "path": str(tmp_path / "same.npz")}, layers=seq))
    assert streamed.input_shape == (4, 2)
    _same_as_in_memory(streamed, memory)  # per-feature statistics over every step (StepScaler)
    raw = load_dataset(_spec({**data, "standardize": False}, layers=seq))
    np.testing.assert_array_equal(np.asarray(raw.x_test), x.reshape(120, 4, 2)[raw.x_test.rows])


def test_paths_are_relative_to_the_spec_file(tmp_path: Path) -> None:
    _files(tmp_path, *_xy())
    (tmp_path / "spec.toml").write_text(
        'name = "npy"\n[data]\nkind = "npy"\nx = "features.npy"\ny = "targets.npy"\n'
        '[[model.layers]]\ntype = "dense"\nunits = 1\n[loss]\ntype = "binary_crossentropy"\nfrom_logits = true\n',
        encoding="utf-8",
    )
    spec = duofit.load_spec(tmp_path / "spec.toml")
    assert spec.data.x == str(tmp_path / "features.npy") and spec.data.y == str(tmp_path / "targets.npy")
    assert len(load_dataset(spec).x_train) == 160


def test_the_streaming_path_never_loads_the_whole_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 32 MB memory map under an 8 MB cap on what numpy allocates: load, plan, an epoch of batches, evaluation."""
    cap = 8 * 2**20
    monkeypatch.setattr(rows_module, "STREAM_CHUNK_BYTES", 2**20)
    n, width = 50_000, 80  # 32 MB as float64
    x = np.lib.format.open_memmap(tmp_path / "features.npy", mode="w+", dtype=np.float64, shape=(n, width))
    for start in range(0, n, 5000):
        x[start : start + 5000] = np.random.default_rng(start).normal(size=(5000, width))
    x.flush()
    del x
    np.save(tmp_path / "targets.npy", np.arange(n) % 2)
    spec = _spec({"kind": "npy", "x": str(tmp_path / "features.npy"), "y": str(tmp_path / "targets.npy")})
    assert (tmp_path / "features.npy").stat().st_size > 3 * cap
    tracemalloc.start()
    try:
        ds = load_dataset(spec)
        plan = make_plan(spec, ds)
        perm, bs = plan.order.epoch(1), spec.train.batch_size
        total = sum(float(ds.x_train[perm[s : s + bs]].sum()) for s in range(0, len(perm), 64 * bs))
        evaluated = sum(len(chunk) for chunk in eval_chunks(ds.x_test))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert np.isfinite(total) and evaluated == len(ds.y_test) == 10_000
    assert peak < cap, f"peak {peak:,} bytes"


# --------------------------------------------------------------------------- bad input
def _error(data: dict[str, Any]) -> DataError:
    with pytest.raises(DataError) as info:
        load_dataset(_spec(data))
    return info.value


def test_missing_and_unreadable_files_name_their_field(tmp_path: Path) -> None:
    data = _files(tmp_path, *_xy())
    err = _error({**data, "x": str(tmp_path / "nope.npy")})
    assert err.path == "data.x" and "not found" in str(err)
    (tmp_path / "broken.npy").write_bytes(b"not an array")
    err = _error({**data, "y": str(tmp_path / "broken.npy")})
    assert err.path == "data.y" and "cannot read broken.npy as a .npy array" in str(err)
    err = _error({**data, "x": str(tmp_path / "same.npz")})
    assert err.path == "data.x" and "data.kind = 'npz'" in str(err)


def test_row_counts_that_differ_are_refused(tmp_path: Path) -> None:
    x, y = _xy()
    data = _files(tmp_path, x, y[:150])
    err = _error(data)
    assert err.path == "data.y" and "has 200 rows" in str(err) and "[150]" in str(err)


@pytest.mark.parametrize(
    ("x", "words"),
    [
        (np.arange(20).reshape(10, 2), "holds integers (dtype int64)"),
        (np.array([[1.0, "a"]] * 10, dtype=object), "it holds Python objects"),
        (np.ones(10), "has shape [10]"),
    ],
    ids=["int", "object", "1-d"],
)
def test_a_memory_map_of_the_wrong_dtype_or_shape_is_refused(tmp_path: Path, x: np.ndarray, words: str) -> None:
    np.save(tmp_path / "features.npy", x, allow_pickle=True)
    np.save(tmp_path / "targets.npy", np.arange(10) % 2)
    err = _error({"kind": "npy", "x": str(tmp_path / "features.npy"), "y": str(tmp_path / "targets.npy")})
    assert err.path == "data.x" and words in str(err), str(err)


def test_a_large_column_major_file_is_refused_and_a_small_one_streams(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from duofit.common.data import npyfile

    x, y = _xy()
    data = _files(tmp_path, np.asfortranarray(x), y)
    small = load_dataset(_spec(data))  # small: read as it is, the same values
    memory = load_dataset(_spec({"kind": "npz", "path": str(tmp_path / "same.npz")}))
    _same_as_in_memory(small, memory)
    monkeypatch.setattr(npyfile, "RESIDENT_MAP_BYTES", 100)
    err = _error(data)
    assert err.path == "data.x" and "column-major (Fortran) order" in str(err) and "ascontiguousarray" in str(err)


def test_nan_features_name_the_row(tmp_path: Path) -> None:
    x, y = _xy()
    x[123, 2] = np.nan
    err = _error(_files(tmp_path, x, y))
    assert err.path == "data.x" and "(first: row 123)" in str(err)


def test_spec_fields_of_kind_npy(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"data.y: kind = 'npy' needs `y`"):
        _spec({"kind": "npy", "x": "features.npy"})
    with pytest.raises(SpecError, match=r"data.x: `x` is only allowed with kind 'npy'"):
        _spec({"kind": "make_moons", "x": "features.npy"})


def test_an_in_memory_kind_too_large_suggests_npy() -> None:
    with pytest.raises(DataError, match=r"GB as float64.*data.kind = 'npy'") as info:
        load_dataset(_spec({"kind": "make_classification", "params": {"n_samples": 9_000_000, "n_features": 20}}))
    assert info.value.path == "data.params.n_samples"


def test_the_cli_exits_2_with_the_field_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    x, y = _xy()
    _files(tmp_path, x, y[:10])
    (tmp_path / "spec.toml").write_text(
        '[data]\nkind = "npy"\nx = "features.npy"\ny = "targets.npy"\n'
        '[[model.layers]]\ntype = "dense"\nunits = 1\n[loss]\ntype = "binary_crossentropy"\nfrom_logits = true\n',
        encoding="utf-8",
    )
    assert main(["validate", str(tmp_path / "spec.toml")]) == 2
    err = capsys.readouterr().err
    assert "data.y:" in err and "Traceback" not in err


def test_cross_validation_refuses_streamed_data_with_the_fix(tmp_path: Path) -> None:
    from duofit.tuning.folds import make_folds

    spec = _spec(_files(tmp_path, *_xy()))
    with pytest.raises(DataError) as info:
        make_folds(spec, 3)
    assert info.value.path == "data.kind" and "data.kind = 'npz'" in str(info.value)


def test_float32_data_of_a_float32_run_are_the_float64_parts_cast(tmp_path: Path) -> None:
    _files(tmp_path, *_xy(n=300, dtype=np.float32))
    npz = {"kind": "npz", "path": str(tmp_path / "same.npz")}
    lean, wide = load_dataset(_spec(npz)), load_dataset(_spec(npz, dtype="float64"))
    for part in ("x_train", "x_val", "x_test"):
        assert getattr(lean, part).dtype == np.float32 and getattr(wide, part).dtype == np.float64
        np.testing.assert_array_equal(getattr(lean, part), getattr(wide, part).astype(np.float32))
    np.testing.assert_array_equal(lean.scaler.mean_, wide.scaler.mean_)


@pytest.mark.parametrize("standardize", [True, False])
def test_an_uncompressed_float32_npz_is_prepared_from_its_map_with_the_same_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, standardize: bool
) -> None:
    from duofit.common.data import features, npzfile

    x, y = _xy(n=300, dtype=np.float32)
    np.savez(tmp_path / "plain.npz", x=x, y=y)
    np.savez_compressed(tmp_path / "packed.npz", x=x, y=y)
    monkeypatch.setattr(features, "FLOAT32_CHUNK_BYTES", 8 * 5 * 16)  # 16 rows per chunk: many chunks, any order

    def spec(name: str, **train: Any) -> Any:
        return _spec({"kind": "npz", "path": str(tmp_path / f"{name}.npz"), "standardize": standardize}, **train)

    def source(s: Any) -> np.ndarray:
        return npzfile.read_npz(s, max_cells=10**6, max_bytes=10**8)[0]

    assert isinstance(source(spec("plain")), np.memmap)
    assert not isinstance(source(spec("packed")), np.memmap)  # compressed: read whole
    assert not isinstance(source(spec("plain", dtype="float64")), np.memmap)  # a float64 run: read whole
    a, b = load_dataset(spec("plain")), load_dataset(spec("packed"))
    for part in ("x_train", "x_val", "x_test"):
        assert type(getattr(a, part)) is np.ndarray and getattr(a, part).dtype == np.float32
        np.testing.assert_array_equal(getattr(a, part), getattr(b, part))
    if standardize:
        np.testing.assert_array_equal(a.scaler.mean_, b.scaler.mean_)


@pytest.mark.torch
def test_compare_checks_streamed_files_up_front_and_a_workers_value_error_keeps_its_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from duofit import runner

    x, y = _xy()
    x[150, 2] = np.nan
    data = _files(tmp_path, x, y)
    passes: list[str] = []
    real = runner.load_dataset
    monkeypatch.setattr(runner, "load_dataset", lambda spec: passes.append("prepared") or real(spec))
    with pytest.raises(DataError) as info:  # the wrong y file: found by the parent, before any worker
        duofit.compare(_spec({**data, "y": str(tmp_path / "features.npy")}), ["torch"])
    assert info.value.path == "data.y"
    with pytest.raises(DataError) as info:  # a NaN in row 150: found by the worker's pass, same error
        duofit.compare(_spec(data), ["torch"])
    assert info.value.path == "data.x" and "row 150" in str(info.value)
    assert passes == []  # the parent never prepared the streamed data itself
