"""Real frameworks in the matrix: duofit's own backends and the hand-written baselines, one tiny cell each."""

from __future__ import annotations

from pathlib import Path

import pytest

from duofit.bench.matrix import run_matrix
from duofit.bench.plan import plan_matrix
from duofit.bench.schema import read_rows
from tests.bench.helpers import PEAK, TINY_EPOCHS


def _rows(workloads_dir: Path, tmp_path: Path, backends: list[str]) -> dict[str, dict[str, str]]:
    plan = plan_matrix(
        "quick", workloads=["tiny"], backends=backends, epochs=TINY_EPOCHS, threads=1, workloads_dir=workloads_dir
    )
    report = run_matrix(plan, tmp_path / "bench.csv", peak_size=PEAK, log=lambda line: None)
    assert report.failed == []
    return {r["backend"]: r for r in read_rows(tmp_path / "bench.csv")}


def _check_common(row: dict[str, str]) -> None:
    assert row["threads"] == "1"
    assert float(row["steady_ms_per_step"]) > 0 and float(row["first_epoch_s"]) > 0
    assert float(row["import_s"]) > 0
    assert 0.5 < float(row["test_metric"]) <= 1.0, row["backend"]
    assert row["peak_device_mem_mb"] == "0"


@pytest.mark.torch
def test_torch_rows(workloads_dir: Path, tmp_path: Path) -> None:
    rows = _rows(workloads_dir, tmp_path, ["duofit-torch", "lean-torch", "seed-loop"])
    assert set(rows) == {"duofit-torch", "lean-torch", "seed-loop"}
    for row in rows.values():
        _check_common(row)
        assert row["framework_versions"].startswith("torch ")
        assert row["steps_per_execution"] == "1" and row["torch_compile"] == "False"
    assert rows["duofit-torch"]["impl"] == "duofit" and rows["seed-loop"]["impl"] == "baseline"


@pytest.mark.keras
def test_keras_rows(workloads_dir: Path, tmp_path: Path) -> None:
    rows = _rows(workloads_dir, tmp_path, ["duofit-keras", "keras-tuned", "keras-naive-fit"])
    assert set(rows) == {"duofit-keras", "keras-tuned", "keras-naive-fit"}
    steps = rows["keras-tuned"]["steps_per_epoch"]
    for row in rows.values():
        _check_common(row)
        assert "tensorflow" in row["framework_versions"]
        assert row["jit_compile"] == "False"  # Keras does not enable XLA on a CPU-only host
    assert rows["keras-naive-fit"]["steps_per_execution"] == "1"
    assert rows["keras-tuned"]["steps_per_execution"] == steps
