"""The matrix runner on the framework-free numpy-lean backend: CSV schema, resume, errors."""

from __future__ import annotations

import csv
import math
import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from duofit.bench.cli import standalone
from duofit.bench.flops import forward_flops_per_sample, train_flops_per_step
from duofit.bench.matrix import run_matrix
from duofit.bench.plan import MatrixPlan, plan_matrix
from duofit.bench.schema import COLUMN_DOCS, COLUMNS, SCHEMA_VERSION, BenchFileError, append_row, read_rows, start_file
from duofit.cli import main
from duofit.common.errors import BackendError, SpecError
from duofit.common.loader import load_spec
from tests.bench.helpers import PEAK, ROOT, TINY_EPOCHS

# Every column the benchmark promises (README, Columns), by its wording there -> the CSV column that holds it.
ISSUE_COLUMNS = {
    "workload": "workload",
    "backend": "backend",
    "framework versions": "framework_versions",
    "device name": "device_name",
    "CPU model": "cpu_model",
    "threads": "threads",
    "dtype": "dtype",
    "batch size": "batch_size",
    "epochs": "epochs",
    "steps": "steps",
    "first-epoch s": "first_epoch_s",
    "steady ms/step": "steady_ms_per_step",
    "samples/s": "samples_per_s",
    "total wall s": "total_wall_s",
    "peak RSS MB": "peak_rss_mb",
    "peak device memory MB": "peak_device_mem_mb",
    "final train loss": "final_train_loss",
    "final test metric": "test_metric",
    "flag XLA/jit_compile": "jit_compile",
    "flag steps_per_execution": "steps_per_execution",
    "flag torch.compile": "torch_compile",
    "flag TF32": "tf32_matmul",
    "flag oneDNN": "onednn",
    "estimated FLOPs per step": "flops_per_step",
    "achieved GFLOP/s": "achieved_gflops",
    "MFU": "mfu",
    "git commit": "git_commit",
    "timestamp": "timestamp",
    "schema version": "schema_version",
}


def _plan(workloads_dir: Path, repeats: int = 1) -> MatrixPlan:
    return plan_matrix(
        "quick",
        workloads=["tiny"],
        backends=["numpy-lean"],
        epochs=TINY_EPOCHS,
        repeats=repeats,
        threads=1,
        workloads_dir=workloads_dir,
    )


def test_csv_has_every_promised_column_and_sane_values(workloads_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.csv"
    report = run_matrix(_plan(workloads_dir), out, peak_size=PEAK, log=lambda line: None)
    assert report.failed == []
    with out.open(newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh))
    assert header == list(COLUMNS)
    assert set(ISSUE_COLUMNS.values()) <= set(COLUMNS)
    assert set(COLUMN_DOCS) == set(COLUMNS)
    (row,) = read_rows(out)
    assert row["schema_version"] == str(SCHEMA_VERSION)
    assert row["cell_id"] == f"tiny|numpy-lean|cpu|t1|float32|bs32|e{TINY_EPOCHS}|r0"
    assert row["threads"] == "1" and row["device"] == "cpu" and row["peak_device_mem_mb"] == "0"
    assert int(row["steps"]) == int(row["steps_per_epoch"]) * TINY_EPOCHS
    for col in ("first_epoch_s", "steady_ms_per_step", "samples_per_s", "total_wall_s", "peak_rss_mb", "mfu"):
        assert float(row[col]) > 0, col
    assert math.isfinite(float(row["final_train_loss"]))
    assert 0.5 < float(row["test_metric"]) <= 1.0  # a fast-but-broken run would show here
    assert row["test_metric_name"] == "accuracy"
    datetime.fromisoformat(row["timestamp"])


def test_resume_skips_finished_cells_and_never_duplicates(workloads_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.csv"
    first = run_matrix(_plan(workloads_dir, repeats=1), out, peak_size=PEAK, log=lambda line: None)
    assert len(first.ran) == 1
    with pytest.raises(BenchFileError, match="--resume"):
        run_matrix(_plan(workloads_dir, repeats=2), out, peak_size=PEAK, log=lambda line: None)
    second = run_matrix(_plan(workloads_dir, repeats=2), out, resume=True, peak_size=PEAK, log=lambda line: None)
    assert second.already_done == first.ran and len(second.ran) == 1
    third = run_matrix(_plan(workloads_dir, repeats=2), out, resume=True, peak_size=PEAK, log=lambda line: None)
    assert third.ran == []
    ids = [r["cell_id"] for r in read_rows(out)]
    assert len(ids) == 2 and len(set(ids)) == 2


def test_resume_refuses_a_changed_workload(workloads_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.csv"
    run_matrix(_plan(workloads_dir), out, peak_size=PEAK, log=lambda line: None)
    spec = workloads_dir / "tiny.toml"
    spec.write_text(spec.read_text(encoding="utf-8").replace("lr = 0.01", "lr = 0.02"), encoding="utf-8")
    with pytest.raises(BenchFileError, match="another version of the workload spec"):
        run_matrix(_plan(workloads_dir), out, resume=True, peak_size=PEAK, log=lambda line: None)


def test_foreign_or_older_csv_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "bench.csv"
    out.write_text("schema_version,workload\n0,seed\n", encoding="utf-8")
    with pytest.raises(BenchFileError, match="found version 0"):
        start_file(out)
    with pytest.raises(BenchFileError, match="schema version"):
        append_row(out, {"workload": "seed"})
    start_file(out, overwrite=True)
    append_row(out, {"workload": "seed", "cell_id": "x"})
    assert [r["cell_id"] for r in read_rows(out)] == ["x"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.csv"]  # no temp or lock files left
    with pytest.raises(KeyError, match="not benchmark columns"):
        append_row(out, {"wokrload": "seed"})


def test_unknown_names_are_clear_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(
        SpecError, match=r"unknown workload 'nope'; allowed: cnn32, digits_cnn, gpu_mlp, gru_digits_rows,"
    ):
        plan_matrix("quick", workloads=["nope"])
    with pytest.raises(BackendError, match=r"unknown benchmark backend 'torch'; allowed: duofit-torch, duofit-keras"):
        plan_matrix("quick", backends=["torch"])
    with pytest.raises(SpecError, match="unknown suite 'huge'; allowed: quick, full, models, scale, gpu"):
        plan_matrix("huge")
    with pytest.raises(SpecError, match="epochs must be >= 3"):
        plan_matrix("quick", epochs=2)
    with pytest.raises(SpecError, match="unknown device 'tpu'; allowed: cpu, cuda"):
        plan_matrix("quick", device="tpu")
    if not Path("/proc/driver/nvidia").exists() and shutil.which("nvidia-smi") is None:
        with pytest.raises(SpecError, match="no NVIDIA driver"):
            plan_matrix("quick", device="cuda")
    assert standalone("run", ["--workloads", "nope", "--dry-run"]) == 2
    assert main(["bench", "run", "--backends", "keras", "--dry-run"]) == 2
    assert standalone("run", ["--batch-sizes", "32,x", "--dry-run"]) == 2
    assert standalone("plot", ["/nonexistent/bench.csv"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.count("error: ") == 4
    assert "allowed: duofit-torch" in err and "allowed: cnn32, digits_cnn, gpu_mlp, gru_digits_rows," in err


def test_dry_run_and_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "run", "--suite", "full", "--backends", "numpy-lean", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "seed|numpy-lean|cpu|" in out and "|r4" in out and "25 cells" in out
    assert main(["bench", "list"]) == 0
    assert "keras-naive-fit" in capsys.readouterr().out


def test_flops_from_the_spec() -> None:
    spec = load_spec(ROOT / "benchmarks" / "workloads" / "wide_mlp.toml")
    fwd = 2 * (784 * 512 + 512 * 512 + 512 * 10)
    assert forward_flops_per_sample(spec, 784) == fwd
    assert train_flops_per_step(spec, 784, 256) == 3 * fwd * 256


def test_numpy_lean_gradients_match_finite_differences() -> None:
    """The framework-free baseline must be a correct MLP, not just a fast loop."""
    from duofit.bench.measure import MLP
    from duofit.bench.numpy_loop import _loss_and_grad, _Net

    mlp = MLP(3, ((4, "relu"), (3, "linear")), "cce_logits", 0.01, 0.9, 0.999, 1e-8, 8, 3, 0, "float64")
    rng = np.random.default_rng(1)
    net = _Net(mlp, rng)
    x, y = rng.standard_normal((5, 3)), np.array([0, 2, 1, 1, 0])

    def loss() -> float:
        return _loss_and_grad(mlp.loss, net.forward(x)[0], y)[0]

    out, inputs = net.forward(x)
    grads = net.backward(_loss_and_grad(mlp.loss, out, y)[1], inputs)
    eps = 1e-6
    for p, g in zip(net.params, grads, strict=True):
        numeric = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + eps
            up = loss()
            p[idx] = old - eps
            numeric[idx] = (up - loss()) / (2 * eps)
            p[idx] = old
        np.testing.assert_allclose(g, numeric, rtol=1e-5, atol=1e-7)


def test_conv_flops_count_every_output_pixel() -> None:
    """digits_cnn by hand: conv 3x3x1->16 'same' on 8x8, pool to 4x4, conv 3x3x16->32 'valid'
    (2x2 out), flatten 128 -> dense 10."""
    from duofit.bench.flops import forward_flops_per_sample
    from duofit.common.loader import load_spec

    spec = load_spec("benchmarks/workloads/digits_cnn.toml")
    expected = 2 * 9 * 1 * 16 * 64 + 2 * 9 * 16 * 32 * 4 + 2 * 128 * 10
    assert forward_flops_per_sample(spec, n_features=64) == expected
