"""One benchmark cell, in its own fresh process: ``python -m duofit.bench.cell CELL.json OUT.json``.

The runner starts one process per cell and repeat, with the BLAS/OpenMP/TensorFlow thread
variables already in its environment; this module then imports the one framework the cell
needs, sets its intra/inter-op threads before the framework runs anything, trains (duofit
rows call :func:`duofit.run`; baselines call their hand-written loop) and writes the
measured columns to OUT.json, or ``{"ok": false, "type": ..., "message": ...}`` with a
non-zero exit code.

CELL.json: ``{"backend": "duofit-torch", "spec": {...validated spec...}, "device": "cpu",
"threads": 2, "warmup_epochs": 1}``; ``{"backend": ..., "empty": true, ...}`` for an
empty-process row (interpreter, duofit, the framework and one training run on
:data:`EMPTY_RUN_SAMPLES` samples: no data to speak of; see :func:`_empty_cell`). The data
is loaded once, inside the timed region, and handed to :func:`duofit.run` (so peak memory
is one copy's). On a GPU every epoch end waits for the device first (:func:`device_sync`).

Example:
    Not run as a doctest: it trains a model and sets framework threads, which only a
    fresh process may do.

    >>> run_cell({"backend": "numpy-lean", "spec": spec_dict, "device": "cpu",
    ...           "threads": 1, "warmup_epochs": 1})["steady_ms_per_step"]   # doctest: +SKIP
    0.05
"""

from __future__ import annotations

import importlib
import json
import math
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from duofit.bench.flops import train_flops_per_step
from duofit.bench.measure import Measurement, mlp_of, steady_epochs
from duofit.bench.runners import RunnerInfo, runner_info
from duofit.common.envinfo import cpu_model, git_commit
from duofit.common.errors import DuofitError, SpecError
from duofit.common.io import write_json
from duofit.common.registry import get_backend
from duofit.common.spec import Spec

__all__ = ["device_sync", "init_framework", "main", "run_cell"]


# benchmark framework -> the duofit backend that sets it up (numpy has none: BLAS threads come from the environment)
_BACKEND_OF = {"torch": "torch", "tensorflow": "keras", "keras-torch": "keras-torch", "keras-jax": "keras-jax"}


def init_framework(framework: str, threads: int) -> None:
    """Import ``framework`` and set its thread counts before it runs any op.

    A Keras framework is selected before keras loads (KERAS_BACKEND is read once per process).

    Example:
        >>> init_framework("numpy", threads=2)   # BLAS threads come from the environment
    """
    name = _BACKEND_OF.get(framework)
    if name is not None:
        get_backend(name).init_threads(threads)


# framework -> the function that waits for its GPU (imported only when a cell runs on cuda);
# keras-jax has none: each epoch reads its losses on the host, which waits for the device.
_SYNC = {
    "torch": ("duofit.bench.torch_loops:cuda_sync", "torch.cuda.synchronize"),
    "keras-torch": ("duofit.bench.torch_loops:cuda_sync", "torch.cuda.synchronize"),
    "tensorflow": ("duofit.bench.keras_loops:device_sync", "tf.test.experimental.sync_devices"),
    "keras-jax": ("", "host read of the epoch's losses"),
}


# What the hand-written loops wait on at an epoch end on a GPU (duofit rows: _SYNC).
_BASELINE_SYNC = {"torch": "torch.cuda.synchronize (in the loop)", "tensorflow": "host read of the epoch's losses"}


def _sync_label(info: RunnerInfo, device: str) -> str:
    """The ``device_sync`` column: how the epoch clock waited for the device ("" on cpu)."""
    if device != "cuda":
        return ""
    return _SYNC[info.framework][1] if info.impl == "duofit" else _BASELINE_SYNC.get(info.framework, "")


def _no_sync() -> None:
    """Nothing to wait for: CPU ops finish before they return."""


def device_sync(framework: str, device: str) -> tuple[Callable[[], None], str]:
    """The call that waits for ``device`` before an epoch's clock is read, and its name for the CSV.

    On ``cpu`` nothing is imported and nothing is called.

    Example:
        >>> device_sync("torch", "cpu")[1]
        ''
    """
    if device != "cuda" or framework not in _SYNC:
        return _no_sync, ""
    target, label = _SYNC[framework]
    if not target:
        return _no_sync, label
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func), label


def _peak_rss_mb() -> float:
    try:
        import resource
    except ImportError:  # Windows
        import psutil

        return float(getattr(psutil.Process().memory_info(), "peak_wset", 0)) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def _peak_device_mem_mb(framework: str, device: str) -> float:
    name = _BACKEND_OF.get(framework)
    return 0.0 if name is None else get_backend(name).peak_device_memory_mb(device)


def _process_flags(framework: str) -> dict[str, Any]:
    if framework in ("keras-torch", "keras-jax"):  # from the run's environment (see _run_duofit)
        return {"torch_compile": False, "onednn": ""}
    if framework == "torch":
        from duofit.bench.torch_loops import torch_flags

        return torch_flags()
    from duofit.bench.keras_loops import keras_flags

    return keras_flags()


def _run_duofit(spec: Spec, info: RunnerInfo, device: str) -> tuple[Measurement, float, Any]:
    """Train with :func:`duofit.run` on data loaded here; epoch ends come from its per-epoch progress callback."""
    import duofit
    from duofit.common.data import load_dataset

    dataset = load_dataset(spec)
    sync, _ = device_sync(info.framework, device)
    ends: list[float] = []

    def epoch_end(epoch: int, total: int, row: Any) -> None:
        sync()
        ends.append(time.perf_counter())

    res = duofit.run(spec, backend=info.target, dataset=dataset, progress=epoch_end)
    env = res.environment
    if info.framework == "torch":
        versions = f"torch {env.get('torch')}"
    else:
        under = str(env.get("keras_backend", "tensorflow"))
        versions = f"keras {env.get('keras')}; {under} {env.get(under)}"
    flags = _process_flags(info.framework)
    # the run's own flags (train.compile: torch_compile on torch, jit_compile on Keras)
    flags.update(
        {k: env[k] for k in ("jit_compile", "steps_per_execution", "tf32_matmul", "torch_compile") if k in env}
    )
    hist = res.history
    metric = spec.metric_columns[0] if spec.metrics else None
    m = Measurement(
        fit_start=math.nan,
        epoch_ends=ends,
        final_train_loss=float(hist["loss"].iloc[-1]) if len(hist) else math.nan,
        final_val_loss=float(hist["val_loss"].iloc[-1]) if len(hist) else math.nan,
        test_outputs=res.predictions,
        versions=versions,
        flags=flags,
        interop_threads=env.get("interop_threads"),
        device_name=str(env.get("device_name") or cpu_model()),
        loop_epoch_s=[float(s) for s in hist["epoch_s"]] if "epoch_s" in hist else None,
        first_epoch_s=float(res.timings.get("first_epoch_s", math.nan)),
    )
    return m, (res.metrics.get(metric, math.nan) if metric else math.nan), dataset


def _run_baseline(name: str, spec: Spec, info: RunnerInfo, device: str) -> tuple[Measurement, float, Any]:
    from duofit.common.data import load_dataset
    from duofit.common.metrics import compute_metrics

    dataset = load_dataset(spec)
    mlp = mlp_of(spec, dataset, name)
    module, func = info.target.split(":")
    m: Measurement = getattr(importlib.import_module(module), func)(mlp, dataset, device)
    if not spec.metrics:
        return m, math.nan, dataset
    first = spec.metric_entries[0]
    # in the target's own units, as duofit.run reports it (standardize_target trains on scaled targets)
    y_test, outputs = dataset.in_target_units(dataset.y_test), dataset.in_target_units(np.asarray(m.test_outputs))
    values = compute_metrics([first], spec.task, y_test, outputs, from_logits=True)
    return m, values[first.column], dataset


def _epoch_seconds(m: Measurement, warmup: int) -> tuple[float, float, float]:
    """First epoch, median steady epoch and median steady training-loop epoch, in seconds."""
    steady = steady_epochs(m.epoch_ends, warmup)
    median_epoch = float(np.median(steady)) if len(steady) else math.nan
    loop = m.loop_epoch_s[warmup:] if m.loop_epoch_s is not None else list(steady)
    loop_epoch = float(np.median(loop)) if len(loop) else math.nan
    first = m.first_epoch_s if m.first_epoch_s is not None else m.epoch_ends[0] - m.fit_start
    return first, median_epoch, loop_epoch


def _machine_columns(info: RunnerInfo, m: Measurement, device: str, threads: int) -> dict[str, Any]:
    """The CSV columns naming what ran where: implementation, framework, device, CPU, threads."""
    return {
        "impl": info.impl,
        "framework": info.framework,
        "framework_versions": m.versions,
        "device": device,
        "device_name": m.device_name,
        "cpu_model": cpu_model(),
        "threads": threads,
        "interop_threads": m.interop_threads,
    }


# The empty-process row trains once on this many samples: what every training process pays
# whatever its data size. torch loads its compiler stack (torch._dynamo, sympy: about 80 MiB)
# on the first backward pass, and duofit's data preparation imports scikit-learn and scipy; a
# process that only imported the framework would leave those fixed costs in every data row.
EMPTY_RUN_SAMPLES = 32


def _empty_spec() -> Spec:
    """A 20-16-1 MLP on :data:`EMPTY_RUN_SAMPLES` generated samples, one epoch in two steps."""
    return Spec.model_validate(
        {
            "data": {"kind": "make_classification", "params": {"n_samples": EMPTY_RUN_SAMPLES, "random_state": 0}},
            "model": {"layers": [{"type": "dense", "units": 16, "activation": "relu"}, {"type": "dense", "units": 1}]},
            "loss": {"type": "binary_crossentropy", "from_logits": True},
            "optimizer": {"type": "adam", "lr": 0.001},
            "train": {"epochs": 1, "batch_size": EMPTY_RUN_SAMPLES // 2, "seed": 0},
        }
    )


def _empty_cell(info: RunnerInfo, device: str, threads: int, import_s: float) -> dict[str, Any]:
    """The columns of an empty-process row: what a training process costs before its data does.

    It imports what a training cell imports before it reads data (the framework and the
    backend's translation tables, duofit's runner, data preparation, metrics and results) and,
    for a duofit backend, trains once on :data:`EMPTY_RUN_SAMPLES` samples; its peak RSS is
    the baseline the scale suite's in-memory bound adds to twice the data.
    """
    for module in ("duofit.runner", "duofit.common.data", "duofit.common.metrics", "pandas"):
        importlib.import_module(module)
    name = _BACKEND_OF.get(info.framework)
    env: dict[str, Any] = {}
    if name is not None:
        backend = get_backend(name)
        backend.load()
        backend.tables()
        env = backend.environment(device)
    if info.impl == "duofit":
        import duofit

        duofit.run(_empty_spec(), backend=info.target)
    versions = ", ".join(f"{k} {env[k]}" for k in ("torch", "keras", "tensorflow", "jax") if env.get(k))
    return {
        "impl": info.impl,
        "framework": info.framework,
        "framework_versions": versions,
        "device": device,
        "device_name": str(env.get("device_name") or cpu_model()),
        "cpu_model": cpu_model(),
        "threads": threads,
        "data_kind": "none",
        "import_s": import_s,
        "peak_rss_mb": _peak_rss_mb(),
        "peak_device_mem_mb": _peak_device_mem_mb(info.framework, device),
        "git_commit": git_commit(),
    }


def _mode_columns(spec: Spec, dataset: Any) -> dict[str, Any]:
    """What was trained on and how: sample count, data kind and size, compile and precision settings."""
    n_samples = len(dataset.x_train) + len(dataset.x_test) + (0 if dataset.val_is_test else len(dataset.x_val))
    return {
        "n_samples": n_samples,
        "data_kind": spec.data.kind,
        "data_mb": n_samples * (dataset.n_features + 1) * 4 / 2**20,
        "compile": bool(getattr(spec.train, "compile", False)),
        "precision": str(getattr(spec.train, "precision", "float32")),
    }


def run_cell(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run one cell in this process and return its measured CSV columns.

    Call it only in a fresh process (``python -m duofit.bench.cell``): the framework's
    threads can be set only before it initialises.
    """
    name = str(cfg["backend"])
    info = runner_info(name)
    device, threads, warmup = str(cfg["device"]), int(cfg["threads"]), int(cfg["warmup_epochs"])
    if device not in info.devices:
        raise SpecError(f"backend {name!r} cannot run on device {device!r}; allowed: {', '.join(info.devices)}")
    t0 = time.perf_counter()
    init_framework(info.framework, threads)
    import_s = time.perf_counter() - t0
    if cfg.get("empty"):
        return _empty_cell(info, device, threads, import_s)
    spec = Spec.model_validate(cfg["spec"])
    t_run = time.perf_counter()
    if info.impl == "duofit":
        m, metric, dataset = _run_duofit(spec, info, device)
    else:
        m, metric, dataset = _run_baseline(name, spec, info, device)
    total_wall_s = time.perf_counter() - t_run
    peak_rss = _peak_rss_mb()  # before anything below allocates

    n_train, bs = len(dataset.x_train), spec.train.batch_size
    steps_per_epoch = math.ceil(n_train / bs)
    epochs = len(m.epoch_ends)
    first, median_epoch, loop_epoch = _epoch_seconds(m, warmup)
    per_step = train_flops_per_step(spec, dataset.n_features, bs, dataset.input_shape)
    epoch_flops = per_step / bs * n_train
    return {
        **_machine_columns(info, m, device, threads),
        **_mode_columns(spec, dataset),
        "dtype": spec.train.dtype,
        "batch_size": bs,
        "epochs": epochs,
        "warmup_epochs": warmup,
        "n_train": n_train,
        "steps_per_epoch": steps_per_epoch,
        "steps": steps_per_epoch * epochs,
        "first_epoch_s": first,
        "compile_s": max(first - median_epoch, 0.0),  # NaN without a steady epoch
        "steady_ms_per_step": median_epoch / steps_per_epoch * 1e3,
        "steady_loop_ms_per_step": loop_epoch / steps_per_epoch * 1e3,
        "samples_per_s": n_train / median_epoch,
        "total_wall_s": total_wall_s,
        "import_s": import_s,
        "peak_rss_mb": peak_rss,
        "peak_device_mem_mb": _peak_device_mem_mb(info.framework, device),
        "device_sync": _sync_label(info, device),
        "final_train_loss": m.final_train_loss,
        "final_val_loss": m.final_val_loss,
        "test_metric_name": spec.metric_columns[0] if spec.metrics else "",
        "test_metric": metric,
        "epoch_eval": info.epoch_eval,
        **{k: m.flags.get(k) for k in ("jit_compile", "steps_per_execution", "torch_compile", "tf32_matmul", "onednn")},
        "flops_per_step": per_step,
        "achieved_gflops": epoch_flops / median_epoch / 1e9,
        "git_commit": git_commit(),
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point of the cell process; returns its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m duofit.bench.cell CELL.json OUT.json", file=sys.stderr)
        return 2
    cfg_path, out_path = Path(args[0]), Path(args[1])
    try:
        result = run_cell(json.loads(cfg_path.read_text(encoding="utf-8")))
    except DuofitError as exc:
        write_json(out_path, {"ok": False, "type": type(exc).__name__, "message": str(exc)})
        return exc.exit_code
    except Exception as exc:  # reported by the runner, which goes on with the next cell
        tail = traceback.format_exc(limit=-3)
        write_json(out_path, {"ok": False, "type": type(exc).__name__, "message": f"{exc}\n{tail}"})
        return 1
    write_json(out_path, {"ok": True, "columns": result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
