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


@pytest.mark.parametrize(
    ("backend", "framework"),
    [
        pytest.param("duofit-keras-torch", "torch", marks=pytest.mark.keras_torch),
        pytest.param("duofit-keras-jax", "jax", marks=pytest.mark.keras_jax),
    ],
)
def test_keras_on_other_framework_rows(workloads_dir: Path, tmp_path: Path, backend: str, framework: str) -> None:
    row = _rows(workloads_dir, tmp_path, [backend])[backend]
    _check_common(row)
    assert row["framework"] == f"keras-{framework}" and row["impl"] == "duofit"
    assert row["framework_versions"].startswith("keras ") and f"; {framework} " in row["framework_versions"]
    assert row["steps_per_execution"] == "1"  # one step per execution on torch and JAX (see keras/native.py)


def test_numpy_baseline_skips_the_cnn_workloads_with_the_reason() -> None:
    """The numpy loop is MLP-only: CNN workloads get duofit rows, numpy-lean a note."""
    plan = plan_matrix("full", backends=["numpy-lean"], repeats=1)
    workloads = {c.workload for c in plan.cells}
    assert workloads == {"seed", "wide_mlp"}
    for name in ("digits_cnn", "cnn32"):
        assert "cannot run model.layers[0] (type 'conv2d')" in plan.skipped[f"numpy-lean on {name}"]
