"""How long a planned cell will take: startup, data, compilation, and steps from FLOPs or a per-step floor.

Printed by ``duofit bench run --dry-run`` per cell and in total, so a suite is sized before
it runs (the GPU suite must stay under :data:`~duofit.bench.suites.GPU_BUDGET_S`). The model is
deliberately simple: a cell costs

    startup + data + first-epoch extra (or compilation) + epochs x (steps x step + evaluation)

where a step takes the longer of its FLOPs at a fraction of the device's peak and the
framework's fixed per-step cost (kernel launches, Python), plus, for memory-mapped data, the
per-sample cost of gathering rows. The constants are rough by design (within a factor of two):
the CPU ones come from this project's benchmark files on its 2-core machine
(``benchmarks/results/bench-cpu-t2*.csv``: ``import_s``, ``first_epoch_s``, the seed workload's
ms/step), the GPU ones from NVIDIA's H200 datasheet (dense peaks) and typical launch costs;
replace them with measured numbers when a GPU run's CSV exists.

Example:
    >>> from duofit.bench.plan import plan_matrix
    >>> plan = plan_matrix("quick", backends=["numpy-lean"], workloads=["seed"])
    >>> seconds = estimate_plan(plan)
    >>> 0 < seconds[0] < 60
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from duofit.bench.flops import forward_flops_per_sample
from duofit.bench.runners import RUNNERS
from duofit.bench.scale import FEATURES
from duofit.common.spec import Spec

__all__ = ["PROFILES", "CellSize", "DeviceProfile", "cell_size", "estimate_cell_s", "estimate_plan", "run_fixed_s"]

_FRAMEWORKS = ("torch", "tensorflow", "keras-torch", "keras-jax", "numpy")


@dataclass(frozen=True)
class DeviceProfile:
    """The constants of the estimate on one kind of device (seconds unless named otherwise).

    Attributes:
        peak_flops: Dense peak FLOP/s per numeric mode (``float32``, ``tf32``, ``bf16``); on CPU
            per thread.
        efficiency: Fraction of the peak a benchmark model's step reaches.
        startup_s: Fresh process: interpreter, duofit, framework import, device initialisation.
        first_epoch_extra_s: Tracing / graph building / kernel loading in the first epoch.
        compile_s: torch.compile / XLA compilation in the first epoch (mode ``compile``).
        step_floor_s: Fixed cost of one training step (launches, Python, optimizer).
        epoch_fixed_s: Fixed cost of one epoch's end (validation call, callbacks, history).
        run_fixed_s: Once per run: the peak matmul measured at the start.
    """

    peak_flops: dict[str, float]
    efficiency: float
    startup_s: dict[str, float]
    first_epoch_extra_s: dict[str, float]
    compile_s: dict[str, float]
    step_floor_s: dict[str, float]
    epoch_fixed_s: float
    run_fixed_s: float


COMPILED_FLOOR = 0.5  # a compiled step launches fused kernels: about half the eager launches
BF16_FLOOR = 1.2  # autocast adds cast kernels around every matmul
DATA_S_PER_VALUE = {"memory": 3e-8, "npy": 1e-8}  # read/generate + float64 + split + scale; npy: one scaler pass
GATHER_S_PER_SAMPLE = 1e-7  # npy: one row gathered from the page cache per sample and epoch

PROFILES: dict[str, DeviceProfile] = {
    # This project's 2-core CPU host: 360-430 GFLOP/s float32 matmul on 2 threads, ~280 reached
    # by the wide MLP; import_s 0.8 (torch), 2.7-4 (tensorflow) plus ~1.5 s of interpreter and
    # duofit; seed ms/step 0.25-0.32 (torch, keras), keras-torch ~3x, keras-jax ~2x.
    "cpu": DeviceProfile(
        peak_flops={"float32": 200e9, "tf32": 200e9, "bf16": 200e9},
        efficiency=0.6,
        startup_s={"torch": 2.5, "tensorflow": 4.5, "keras-torch": 5.5, "keras-jax": 3.5, "numpy": 1.0},
        first_epoch_extra_s={"torch": 0.05, "tensorflow": 0.8, "keras-torch": 0.2, "keras-jax": 2.0, "numpy": 0.0},
        compile_s={"torch": 20.0, "tensorflow": 3.0, "keras-torch": 20.0, "keras-jax": 2.0, "numpy": 0.0},
        step_floor_s={"torch": 2.5e-4, "tensorflow": 3e-4, "keras-torch": 1.5e-3, "keras-jax": 5e-4, "numpy": 5e-5},
        epoch_fixed_s=0.005,
        run_fixed_s=3.0,
    ),
    # One H200 (SXM): dense peaks 67 TFLOP/s float32, 494.7 TF32, 989.4 bfloat16 (NVIDIA H200
    # datasheet). torch keeps TF32 off by default (torch.backends.cuda.matmul.allow_tf32),
    # TensorFlow and JAX use it. Startup includes the CUDA context (and cuDNN for TensorFlow);
    # torch.compile's first epoch builds Triton kernels for forward and backward from a cold cache.
    "cuda": DeviceProfile(
        peak_flops={"float32": 67e12, "tf32": 494.7e12, "bf16": 989.4e12},
        efficiency=0.35,
        startup_s={"torch": 8.0, "tensorflow": 15.0, "keras-torch": 14.0, "keras-jax": 12.0, "numpy": 1.0},
        first_epoch_extra_s={"torch": 0.5, "tensorflow": 3.0, "keras-torch": 1.0, "keras-jax": 3.0, "numpy": 0.0},
        compile_s={"torch": 45.0, "tensorflow": 10.0, "keras-torch": 45.0, "keras-jax": 5.0, "numpy": 0.0},
        step_floor_s={"torch": 3.5e-4, "tensorflow": 5e-4, "keras-torch": 2e-3, "keras-jax": 3e-4, "numpy": 5e-5},
        epoch_fixed_s=0.01,
        run_fixed_s=5.0,
    ),
}


@dataclass(frozen=True)
class CellSize:
    """What a cell trains on: samples per epoch, samples evaluated per epoch, FLOPs per sample."""

    n_train: int
    n_eval: int
    n_values: int
    forward_flops: int


def _split_sizes(spec: Spec, n: int) -> tuple[int, int]:
    """Training and per-epoch evaluation samples of ``n`` rows under the spec's split."""
    rest = n - math.ceil(n * spec.data.test_size)
    n_val = math.ceil(rest * spec.data.val_size)
    return rest - n_val, n_val or (n - rest)


def cell_size(spec: Spec, samples: int | None = None) -> CellSize:
    """A cell's sizes: from ``samples`` generated rows of 20 features, else by loading its data."""
    if samples is not None:
        n_train, n_eval = _split_sizes(spec, samples)
        return CellSize(n_train, n_eval, samples * FEATURES, forward_flops_per_sample(spec, FEATURES))
    from duofit.common.data import load_dataset

    ds = load_dataset(spec)
    n_train, n_val = len(ds.x_train), len(ds.x_val)
    n_all = n_train + n_val + len(ds.x_test)
    flops = forward_flops_per_sample(spec, ds.n_features, ds.input_shape)
    return CellSize(n_train, n_val, n_all * ds.n_features, flops)


def _numeric_mode(framework: str, device: str, mode: str) -> str:
    if mode == "bf16":
        return "bf16"
    return "tf32" if device == "cuda" and framework in ("tensorflow", "keras-jax") else "float32"


def estimate_cell_s(cell: Any, size: CellSize, profile: DeviceProfile) -> float:
    """Seconds a cell (:class:`~duofit.bench.plan.Cell`) takes, from its sizes and the device's profile."""
    fw = RUNNERS[cell.backend].framework
    startup = profile.startup_s[fw]
    if cell.empty:
        return startup
    peak = profile.peak_flops[_numeric_mode(fw, cell.device, cell.mode)] * profile.efficiency
    if cell.device == "cpu":
        peak *= cell.threads
    floor = profile.step_floor_s[fw] * (COMPILED_FLOOR if cell.mode == "compile" else 1.0)
    floor *= BF16_FLOOR if cell.mode == "bf16" else 1.0
    step = max(3 * size.forward_flops * cell.batch_size / peak, floor)
    if cell.data_kind == "npy":
        step += GATHER_S_PER_SAMPLE * cell.batch_size
    steps = math.ceil(size.n_train / cell.batch_size)
    evaluation = size.n_eval * size.forward_flops / peak + profile.epoch_fixed_s
    first = profile.compile_s[fw] if cell.mode == "compile" else profile.first_epoch_extra_s[fw]
    data = size.n_values * DATA_S_PER_VALUE["npy" if cell.data_kind == "npy" else "memory"]
    return startup + data + first + cell.epochs * (steps * step + evaluation)


def estimate_plan(plan: Any) -> list[float]:
    """Seconds per cell of a :class:`~duofit.bench.plan.MatrixPlan` (its data loaded once per data section)."""
    sizes: dict[str, CellSize] = {}
    out = []
    for cell in plan.cells:
        profile = PROFILES[cell.device]
        if cell.empty:
            out.append(estimate_cell_s(cell, CellSize(0, 0, 0, 0), profile))
            continue
        spec = Spec.model_validate_json(cell.spec_json)
        samples = cell.data.samples if cell.data is not None else None
        key = f"{samples}|{spec.data.model_dump_json()}|{spec.model.model_dump_json()}"
        if key not in sizes:
            sizes[key] = cell_size(spec, samples)
        out.append(estimate_cell_s(cell, sizes[key], profile))
    return out


def run_fixed_s(plan: Any) -> float:
    """Seconds a run spends once, outside the cells: the peak matmul on the plan's device."""
    return PROFILES[plan.device].run_fixed_s if plan.cells else 0.0
