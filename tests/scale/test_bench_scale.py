"""The scale suite's data sets and summary math: generated files, memory targets, streaming ratio, compile payoff."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from duofit.bench import scale
from duofit.bench.scale import ScaleData, data_bytes
from duofit.bench.scale_summary import (
    IN_MEMORY_FACTOR,
    NPY_PEAK_MB_MAX,
    compile_table,
    memory_table,
    streaming_table,
)
from duofit.bench.schema import COLUMNS, SCHEMA_VERSION, append_row, read_rows
from duofit.bench.summary import load_results, summarize, write_summary


def test_generated_data_is_chunked_deterministic_and_learnable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scale, "CHUNK_ROWS", 100)  # three chunks, the last one partial
    a, b = ScaleData(250, tmp_path / "a"), ScaleData(250, tmp_path / "b")
    a.ensure("npz")
    b.ensure("npy")
    x, y = np.load(a.x_path), np.load(a.y_path)
    assert x.shape == (250, scale.FEATURES) and x.dtype == np.float32 and y.dtype == np.float32
    np.testing.assert_array_equal(x, np.load(b.x_path))
    np.testing.assert_array_equal(y, np.load(b.y_path))
    with np.load(a.npz_path) as npz:
        np.testing.assert_array_equal(npz["x"], x)
        np.testing.assert_array_equal(npz["y"], y)
    assert not b.npz_path.exists()  # only what the cell reads is written
    assert 0.3 < y.mean() < 0.7  # both classes
    teacher = x[:, : scale.INFORMATIVE] @ scale._teacher()
    assert np.mean((teacher > 0) == (y > 0.5)) > 0.8  # the labels follow the features
    assert sorted(p.name for p in a.path.iterdir()) == ["data.npz", "features.npy", "meta.json", "targets.npy"]
    assert data_bytes(250) == 250 * 21 * 4


def test_an_interrupted_generation_is_redone(tmp_path: Path) -> None:
    data = ScaleData(50, tmp_path)
    data.path.mkdir(parents=True)
    data.x_path.write_bytes(b"half a file")  # killed before meta.json was written
    assert not data.ready("npy")
    data.ensure("npy")
    assert data.ready("npy") and np.load(data.x_path).shape == (50, scale.FEATURES)
    (data.path / "meta.json").write_text('{"generator": 0}', encoding="utf-8")  # another generator version
    assert not data.ready("npy")


def _scale_row(kind: str, n: int, epochs: int, rss: float, sps: float, backend: str = "duofit-torch") -> dict:
    return {
        "cell_id": f"scale_mlp|{backend}|cpu|t2|float32|bs1024|e{epochs}|r0|n{n}-{kind}",
        "workload": "scale_mlp",
        "variant": f"n{n}-{kind}",
        "backend": backend,
        "device": "cpu",
        "threads": 2,
        "dtype": "float32",
        "batch_size": 1024,
        "epochs": epochs,
        "repeat": 0,
        "n_samples": n,
        "data_kind": kind,
        "data_mb": data_bytes(n) / 2**20,
        "peak_rss_mb": rss,
        "samples_per_s": sps,
        "steady_ms_per_step": 1024 / sps * 1e3,
        "steady_loop_ms_per_step": 1024 / sps * 1e3,
        "first_epoch_s": 1.0,
        "steps_per_epoch": math.ceil(0.8 * n / 1024),
    }


@pytest.fixture
def scale_csv(tmp_path: Path) -> Path:
    out = tmp_path / "bench-scale.csv"
    append_row(out, {"cell_id": "empty|duofit-torch|cpu|t2|r0", "workload": "empty", "backend": "duofit-torch",
                     "device": "cpu", "threads": 2, "data_kind": "none", "peak_rss_mb": 400.0})  # fmt: skip
    n = 10**6
    for row in (
        _scale_row("npz", n, 4, 500.0, 1e6),
        _scale_row("npz", n, 40, 600.0, 1e6),  # grows 1.2x: fails the growth target
        _scale_row("npy", n, 4, 450.0, 9e5),
        _scale_row("npy", n, 40, 455.0, 7e5),  # 0.7x the in-memory speed: fails the streaming target
        _scale_row("npy", 10**7, 4, 1300.0, 8e5),
        _scale_row("npy", 10**7, 40, 1500.0, 8e5),  # over the 1.5 GB cap
    ):
        append_row(out, row)
    return out


def test_memory_targets_from_rows(scale_csv: Path) -> None:
    table = memory_table(load_results(scale_csv)).set_index(["data_kind", "n_samples"])
    npz = table.loc[("npz", 10**6)]
    assert npz.baseline_mb == 400.0 and (npz.epochs_low, npz.epochs_high) == (4, 40)
    assert npz.growth == pytest.approx(1.2) and not npz.growth_met
    assert npz.bound_mb == pytest.approx(IN_MEMORY_FACTOR * data_bytes(10**6) / 2**20 + 400.0)
    assert not npz.bound_met  # 600 > 2 x 80 MiB + 400
    npy = table.loc[("npy", 10**6)]
    assert npy.growth_met and npy.cap_met is None and math.isnan(npy.bound_mb)  # the cap is for 1e7 only
    big = table.loc[("npy", 10**7)]
    assert big.peak_high_mb > NPY_PEAK_MB_MAX and big.cap_met is False
    extra = (1500.0 - 455.0) / ((data_bytes(10**7) - data_bytes(10**6)) / 2**20)
    assert big.mib_per_data_mib == pytest.approx(extra)  # what grows with the data, apart from the fixed cost
    stream = streaming_table(memory_table(load_results(scale_csv))).iloc[0]
    assert stream.ratio == pytest.approx(0.7) and not stream.met


def test_summary_files_for_scale_and_compiled_rows(scale_csv: Path) -> None:
    rows = [("", 2.0, 1.0, 20), ("compile", 1.0, 31.0, 20), ("", 4.0, 2.0, 5)]  # and an eager 5-epoch row
    for variant, ms, first, epochs in rows:
        for repeat in (0, 1):
            append_row(scale_csv, {
                "cell_id": f"seed|duofit-torch|cpu|t2|float32|bs32|e{epochs}|r{repeat}|{variant}", "workload": "seed",
                "variant": variant, "backend": "duofit-torch", "device": "cpu", "threads": 2, "dtype": "float32",
                "batch_size": 32, "epochs": epochs, "repeat": repeat, "steady_ms_per_step": ms,
                "steady_loop_ms_per_step": ms, "first_epoch_s": first, "steps_per_epoch": 25,
                "compile_s": first - ms * 25 / 1e3, "samples_per_s": 32 / ms * 1e3,
            })  # fmt: skip
    frame = load_results(scale_csv)
    table = summarize(frame)
    assert "empty" not in set(table.workload)  # an empty-process row has no steady state
    assert set(table[table.workload == "seed"].variant) == {"", "compile"}  # compiled rows are not repeats of eager
    (payoff,) = compile_table(table).itertuples()  # against the eager row of the same epochs only
    assert payoff.speedup == pytest.approx(2.0) and payoff.epochs == 20
    assert payoff.break_even_epochs == pytest.approx(30.0 / (1e-3 * 25))  # 30 s extra / 25 ms saved per epoch
    paths = write_summary(scale_csv)
    assert {"memory", "streaming", "compile"} <= set(paths)
    md = paths["markdown"].read_text(encoding="utf-8")
    assert "### Memory" in md and "### Streaming throughput" in md and "### Compiled vs eager" in md
    assert "seed [compile]" in md and "**no**" in md


def test_a_version_2_file_is_read_with_the_new_columns_empty(tmp_path: Path) -> None:
    added = ("variant", "n_samples", "data_kind", "data_mb", "compile", "precision", "compile_s", "device_sync")
    old_columns = [c for c in COLUMNS if c not in added]
    path = tmp_path / "old.csv"
    row = {c: "" for c in old_columns} | {"schema_version": "2", "cell_id": "seed|x", "workload": "seed"}
    path.write_text(",".join(old_columns) + "\n" + ",".join(row[c] for c in old_columns) + "\n", encoding="utf-8")
    (read,) = read_rows(path)
    assert read["cell_id"] == "seed|x" and read["variant"] == "" and read["schema_version"] == "2"
    assert SCHEMA_VERSION == 3
    assert pd.isna(load_results(path)["compile_s"]).all()


@pytest.mark.torch
def test_a_scale_run_records_memory_and_data_columns(tmp_path: Path) -> None:
    from duofit.bench.matrix import run_matrix
    from duofit.bench.plan import plan_matrix

    plan = plan_matrix("scale", backends=["duofit-torch"], samples=[2000], epochs=3, threads=1, data_cache=tmp_path)
    assert [c.variant for c in plan.cells] == ["", "n2000-npz", "n2000-npy"]
    report = run_matrix(plan, tmp_path / "scale.csv", peak_size=64, log=lambda line: None)
    assert report.failed == []
    empty, npz, npy = read_rows(tmp_path / "scale.csv")
    assert empty["workload"] == "empty" and empty["data_kind"] == "none" and float(empty["import_s"]) > 0
    for row, kind in ((npz, "npz"), (npy, "npy")):
        assert row["variant"] == f"n2000-{kind}" and row["data_kind"] == kind and row["n_samples"] == "2000"
        assert float(row["data_mb"]) == pytest.approx(data_bytes(2000) / 2**20, rel=1e-3)
        assert row["compile"] == "False" and row["precision"] == "float32" and row["device_sync"] == ""
        # the kernel's high-water mark; 2,000 samples (0.2 MB) cost about what the empty row's
        # 32-sample run does: the empty row holds the fixed costs, the data rows add the data
        assert float(empty["peak_rss_mb"]) > 50
        assert float(row["peak_rss_mb"]) == pytest.approx(float(empty["peak_rss_mb"]), rel=0.1)
        assert math.isfinite(float(row["final_train_loss"])) and 0.0 <= float(row["test_metric"]) <= 1.0
    assert npz["test_metric"] == npy["test_metric"]  # same data, same order: the same model
