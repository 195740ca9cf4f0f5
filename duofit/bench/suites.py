"""The benchmark suites: which workloads, batch sizes, backends, training modes and data sizes run.

A suite is a table entry, not code: :func:`duofit.bench.plan.plan_matrix` expands it into
cells. Training modes (:data:`MODES`) are ``train`` overrides that only duofit's own
backends honour (the hand-written baselines run in their framework's plain eager/graph
mode); data sizes (``samples`` x ``data_kinds``) make the workload read a generated data
set from the data cache (:mod:`duofit.bench.scale`) instead of its own ``[data]`` section.

Example:
    >>> SUITES["scale"].samples
    (10000, 100000, 1000000, 10000000)
    >>> MODES["compile"], SUITES["gpu"].device
    ({'compile': True}, 'cuda')
"""

from __future__ import annotations

from dataclasses import dataclass

from duofit.bench.runners import RUNNERS

__all__ = [
    "DATA_KINDS",
    "EMPTY_WORKLOAD",
    "GPU_BUDGET_S",
    "MIN_STEADY_EPOCHS",
    "MODES",
    "SUITES",
    "WARMUP_EPOCHS",
    "Suite",
    "WorkloadPlan",
]

WARMUP_EPOCHS = 1  # the first epoch (tracing / graph building / compilation) is reported separately
MIN_STEADY_EPOCHS = 2  # at least two timed epochs after the warm-up, so a median means something
EMPTY_WORKLOAD = "empty"  # the workload name of an empty-process row (imports + a 32-sample run: no data)

# Training modes: name (in the cell id and the CSV's `variant`) -> the `train` fields it sets.
# "" is the spec as written (eager float32 unless the workload says otherwise).
MODES: dict[str, dict[str, object]] = {
    "": {},
    "compile": {"compile": True},  # torch.compile / Keras jit_compile (XLA)
    "bf16": {"precision": "mixed_bfloat16"},  # torch autocast(bfloat16) / Keras mixed_bfloat16 policy
}
# Data kinds a scale cell can read its generated data set as: npz = loaded into memory
# (duofit's in-memory path), npy = memory-mapped and read per batch (the streaming path).
DATA_KINDS = ("npz", "npy")
# The GPU suite's wall-clock target on one GPU; `duofit bench run --suite gpu --dry-run` prints
# the estimate (duofit.bench.estimate), and a test keeps the plan under it.
GPU_BUDGET_S = 480.0


@dataclass(frozen=True)
class WorkloadPlan:
    """A workload in a suite: its spec file's stem, epochs, batch sizes, and optionally fewer modes than the suite's."""

    name: str
    epochs: int | None
    batch_sizes: tuple[int, ...]
    modes: tuple[str, ...] | None = None  # None: every mode of the suite


@dataclass(frozen=True)
class Suite:
    """Named set of workloads with default repeats, backends, device, modes and data sizes.

    Attributes:
        workloads: What runs, at which epochs and batch sizes.
        repeats: Repeats of every cell.
        peak_size: Matrix size of the matmul whose speed is the peak for MFU.
        backends: Default backends; ``None``: every installed benchmark backend.
        modes: Names in :data:`MODES`; modes other than ``""`` run on duofit backends only.
        device: Default device (``--device`` overrides it).
        samples: Data set sizes (generated data, :mod:`duofit.bench.scale`); empty: the workload's data.
        data_kinds: How those data sets are read (:data:`DATA_KINDS`).
        empty_rows: Add one empty-process row per framework (interpreter + framework import, no data).
        budget_s: Wall-clock target of the whole suite, checked against the estimate.
    """

    workloads: tuple[WorkloadPlan, ...]
    repeats: int
    peak_size: int
    backends: tuple[str, ...] | None = None
    modes: tuple[str, ...] = ("",)
    device: str = "cpu"
    samples: tuple[int, ...] = ()
    data_kinds: tuple[str, ...] = ()
    empty_rows: bool = False
    budget_s: float | None = None


# The model workloads: forecasting with an LSTM, digits as rows with a GRU, a two-block text
# transformer and a residual CNN (copies of the examples of the same names).
# Epochs give each cell 1-2 s of steady state (an LSTM epoch is 7 steps, about 6 ms).
_MODELS = (
    WorkloadPlan("lstm_sunspots", 60, (32,)),
    WorkloadPlan("gru_digits_rows", 20, (32,)),
    WorkloadPlan("text_transformer", 20, (32,)),
    WorkloadPlan("resnet_digits", 12, (32,)),
)
_LEAN_BASELINES = ("lean-torch", "keras-tuned")
_DUOFIT_BACKENDS = ("duofit-torch", "duofit-keras", "duofit-keras-torch", "duofit-keras-jax")

SUITES: dict[str, Suite] = {
    # < 2 min on 2 cores: every framework backend once, short runs (numpy-lean only in full: 12 s on wide_mlp).
    "quick": Suite(
        (WorkloadPlan("seed", 20, (32,)), WorkloadPlan("wide_mlp", 3, (256,)), WorkloadPlan("cnn32", 3, (64,))),
        repeats=1,
        peak_size=2048,
        backends=tuple(name for name in RUNNERS if name != "numpy-lean"),
    ),
    # The full matrix: the seed problem as the tutorial runs it (100 epochs), the wide MLP, and
    # the two CNNs (digits 8x8x1, synthetic 32x32x3 images) and the model workloads; numpy-lean runs
    # the MLPs only. Every duofit backend also runs compiled (train.compile = true).
    "full": Suite(
        (
            WorkloadPlan("seed", 100, (32, 128)),
            WorkloadPlan("wide_mlp", 6, (64, 256, 1024)),
            WorkloadPlan("digits_cnn", 15, (32,)),
            WorkloadPlan("cnn32", 5, (64, 256)),
            *_MODELS,
        ),
        repeats=5,
        peak_size=2048,
        modes=("", "compile"),
    ),
    # The model workloads alone: every duofit backend (eager and compiled) against the lean torch
    # loop and the tuned Keras fit, each building the model from its framework's stock layers.
    "models": Suite(
        _MODELS, repeats=5, peak_size=2048, backends=(*_DUOFIT_BACKENDS, *_LEAN_BASELINES), modes=("", "compile")
    ),
    # Memory and streaming: a 20-16-1 MLP on generated data of 1e4..1e7 samples x 20 float32
    # features, 4 and 40 epochs, read in memory (npz) and memory-mapped (npy), plus one
    # empty-process row per framework; the summary checks the memory targets.
    "scale": Suite(
        (WorkloadPlan("scale_mlp", 4, (1024,)), WorkloadPlan("scale_mlp", 40, (1024,))),
        repeats=1,
        peak_size=1024,
        backends=("duofit-torch", "duofit-keras"),
        samples=(10**4, 10**5, 10**6, 10**7),
        data_kinds=DATA_KINDS,
        empty_rows=True,
    ),
    # One GPU, under GPU_BUDGET_S: per-step overhead (seed) and a compute-bound MLP (gpu_mlp) with
    # duofit eager / compiled / bf16 autocast, and a CNN eager only, against the lean torch loop and
    # the tuned Keras fit. About 20 s of every cell is process start-up (CUDA, cuDNN), and a
    # torch.compile'd first epoch ~45 s: duofit/bench/estimate.py.
    "gpu": Suite(
        (
            WorkloadPlan("seed", 20, (32,)),
            WorkloadPlan("gpu_mlp", 8, (1024,)),
            WorkloadPlan("cnn32", 5, (256,), modes=("",)),
        ),
        repeats=1,
        peak_size=8192,
        backends=("duofit-torch", "duofit-keras", *_LEAN_BASELINES),
        modes=("", "compile", "bf16"),
        device="cuda",
        budget_s=GPU_BUDGET_S,
    ),
}
