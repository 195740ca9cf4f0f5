"""The scale, compiled and GPU suites as plans: cells, variants, skips with reasons, estimates (nothing runs)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from duofit.bench import plan as plan_module
from duofit.bench import suites
from duofit.bench.cell import _sync_label, device_sync
from duofit.bench.cli import standalone
from duofit.bench.estimate import PROFILES, CellSize, estimate_cell_s, estimate_plan, run_fixed_s
from duofit.bench.matrix import _wait
from duofit.bench.plan import Cell, plan_matrix
from duofit.bench.runners import RUNNERS
from duofit.bench.schema import COLUMNS
from duofit.common.errors import SpecError
from duofit.common.spec import Spec

DUOFIT = ["duofit-torch", "duofit-keras"]


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plan as if every framework were installed: planning imports none, so no test here needs one."""
    monkeypatch.setattr(plan_module, "missing_module", lambda name: None)


def _ids(plan: plan_module.MatrixPlan) -> list[str]:
    return [c.cell_id for c in plan.cells]


def test_scale_plan_cells_variants_and_skips(installed: None, tmp_path: Path) -> None:
    plan = plan_matrix("scale", backends=DUOFIT, threads=2, data_cache=tmp_path / "cache")
    ids = _ids(plan)
    assert ids[:2] == ["empty|duofit-torch|cpu|t2|r0", "empty|duofit-keras|cpu|t2|r0"]  # one per framework
    assert "scale_mlp|duofit-torch|cpu|t2|float32|bs1024|e4|r0|n1e4-npz" in ids
    assert "scale_mlp|duofit-keras|cpu|t2|float32|bs1024|e40|r0|n1e7-npy" in ids
    # 1e7 x 21 values is over duofit's in-memory cap: no npz row, and the reason is named
    assert not [i for i in ids if i.endswith("n1e7-npz")]
    assert "MAX_DATA_ELEMENTS" in plan.skipped["npz at n=1e7"]
    # 2 empty + 2 backends x 2 epochs x (4 sizes x 2 kinds - 1)
    assert len(ids) == 2 + 2 * 2 * 7 == len(set(ids))
    cell = next(c for c in plan.cells if c.cell_id.endswith("e40|r0|n1e6-npy"))
    spec = Spec.model_validate_json(cell.spec_json)
    assert spec.data.kind == "npy" and spec.data.x == str(cell.data.x_path)  # type: ignore[union-attr]
    assert spec.train.epochs == 40 and spec.train.batch_size == 1024
    assert spec.data.test_size == 0.2  # the workload's split settings stay
    assert not (tmp_path / "cache").exists()  # planning generates no data


def test_scale_plan_options_cap_sizes_and_hash_data_not_paths(installed: None, tmp_path: Path) -> None:
    small = plan_matrix("scale", backends=["duofit-torch"], max_samples=10**5, data_kinds=["npz"], data_cache=tmp_path)
    assert [c.variant for c in small.cells if not c.empty] == ["n1e4-npz", "n1e4-npz", "n1e5-npz", "n1e5-npz"]
    elsewhere = plan_matrix(
        "scale", backends=["duofit-torch"], max_samples=10**5, data_kinds=["npz"], data_cache=tmp_path / "other"
    )
    assert [c.spec_hash for c in small.cells] == [c.spec_hash for c in elsewhere.cells]  # resume from another cache
    assert plan_matrix("scale", backends=["duofit-torch"], samples=[2000], data_cache=tmp_path).cells[-1].variant == (
        "n2000-npy"
    )
    with pytest.raises(SpecError, match="leaves no data set size"):
        plan_matrix("scale", max_samples=10, data_cache=tmp_path)
    with pytest.raises(SpecError, match="unknown data kind 'csv'; allowed: npz, npy"):
        plan_matrix("scale", data_kinds=["csv"], data_cache=tmp_path)


def test_baselines_get_neither_modes_nor_streamed_data(installed: None, tmp_path: Path) -> None:
    plan = plan_matrix("full", workloads=["seed"], backends=["duofit-torch", "lean-torch"], batch_sizes=[32])
    assert sorted(c.variant for c in plan.cells if c.backend == "duofit-torch" and c.repeat == 0) == ["", "compile"]
    assert {c.variant for c in plan.cells if c.backend == "lean-torch"} == {""}
    compiled = next(c for c in plan.cells if c.variant == "compile")
    assert Spec.model_validate_json(compiled.spec_json).train.compile is True
    assert compiled.cell_id.endswith("|r0|compile")
    scale = plan_matrix("scale", backends=["lean-torch"], max_samples=10**4, data_cache=tmp_path)
    assert [c.variant for c in scale.cells] == ["", "n1e4-npz", "n1e4-npz"]  # the torch empty row, no npy rows
    assert scale.cells[0].empty


def test_modes_the_spec_cannot_run_are_skipped_with_the_reason(
    installed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(suites.MODES, "turbo", {"turbo": True})
    plan = plan_matrix("quick", workloads=["seed"], backends=["duofit-torch"], modes=["", "turbo"])
    assert [c.variant for c in plan.cells] == [""]
    assert "train.turbo is not a field" in plan.skipped["mode turbo"]
    bf16 = plan_matrix("quick", workloads=["seed"], backends=["duofit-torch"], modes=["bf16"], dtype="float64")
    assert bf16.cells == () and "dtype = 'float32'" in bf16.skipped["mode bf16 on seed"]
    with pytest.raises(SpecError, match=r"unknown mode 'fast'; allowed: eager \(the spec as written\), compile, bf16"):
        plan_matrix("quick", modes=["fast"])


def test_gpu_suite_plan_fits_its_budget(installed: None) -> None:
    plan = plan_matrix("gpu", require_device=False)
    assert {c.device for c in plan.cells} == {"cuda"}
    assert {Spec.model_validate_json(c.spec_json).train.device for c in plan.cells} == {"cuda"}
    variants = {(c.workload, c.backend, c.variant) for c in plan.cells}
    for workload in ("seed", "gpu_mlp"):
        for backend in DUOFIT:
            assert {(workload, backend, v) for v in ("", "compile", "bf16")} <= variants
    assert ("gpu_mlp", "duofit-torch", "bf16") in variants
    assert ("cnn32", "duofit-torch", "compile") not in variants  # the CNN runs eager only
    bf16 = next(c for c in plan.cells if c.variant == "bf16")
    assert Spec.model_validate_json(bf16.spec_json).train.precision == "mixed_bfloat16"
    total = sum(estimate_plan(plan)) + run_fixed_s(plan)
    assert 60 < total < suites.GPU_BUDGET_S


def test_gpu_dry_run_lists_cells_estimates_and_columns(installed: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert standalone("run", ["--suite", "gpu", "--workloads", "seed", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "seed|duofit-torch|cuda|" in out and "|compile  ~" in out and "|bf16  ~" in out
    assert "device cuda: estimated" in out and f"rows of {len(COLUMNS)} columns" in out


@pytest.mark.skipif(
    Path("/proc/driver/nvidia").exists() or shutil.which("nvidia-smi") is not None, reason="has an NVIDIA driver"
)
def test_gpu_suite_refuses_to_run_without_a_gpu(installed: None) -> None:
    with pytest.raises(SpecError, match=r"no NVIDIA driver.*--dry-run"):
        plan_matrix("gpu")


def test_cuda_only_code_is_not_touched_on_cpu() -> None:
    sync, label = device_sync("torch", "cpu")
    assert label == "" and sync() is None
    assert _sync_label(RUNNERS["duofit-keras"], "cpu") == ""
    assert _sync_label(RUNNERS["duofit-keras"], "cuda") == "tf.test.experimental.sync_devices"
    assert _sync_label(RUNNERS["lean-torch"], "cuda").startswith("torch.cuda.synchronize")
    code = (
        "import sys; from duofit.bench.cell import device_sync; device_sync('torch', 'cpu'); "
        "print('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_estimates_add_compilation_and_streaming() -> None:
    size = CellSize(n_train=80_000, n_eval=20_000, n_values=0, forward_flops=700)
    spec = "{}"

    def cell(**kw: object) -> Cell:
        base: dict[str, object] = dict(
            workload="w", backend="duofit-torch", device="cpu", threads=2, dtype="float32", batch_size=1024,
            epochs=4, repeat=0, spec_json=spec,
        )  # fmt: skip
        return Cell(**{**base, **kw})  # type: ignore[arg-type]

    eager = estimate_cell_s(cell(), size, PROFILES["cpu"])
    assert estimate_cell_s(cell(mode="compile"), size, PROFILES["cpu"]) > eager + 10  # torch.compile's first epoch
    assert estimate_cell_s(cell(data_kind="npy"), size, PROFILES["cpu"]) > eager  # per-batch gathering
    assert estimate_cell_s(cell(epochs=40), size, PROFILES["cpu"]) > eager
    assert estimate_cell_s(cell(workload="empty"), size, PROFILES["cpu"]) == PROFILES["cpu"].startup_s["torch"]


def test_wait_reports_the_childs_own_peak_rss_and_kills_at_the_timeout() -> None:
    if not hasattr(__import__("os"), "wait4"):
        pytest.skip("os.wait4 is POSIX-only")
    alloc = subprocess.Popen([sys.executable, "-c", "x = bytearray(300 * 2**20); x[::4096] = b'1' * len(x[::4096])"])
    code, peak = _wait(alloc, timeout=60)
    assert code == 0 and peak > 300
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    code, peak = _wait(sleeper, timeout=0.5)
    assert code is None and sleeper.returncode is not None and peak > 0
