"""Parity worker: ``python -m duofit.parity.worker SPEC.json BACKEND FOLDER [--strict] [--out DIR] [--progress]``.

In a fresh process (one per Keras backend), it records everything the report compares:
initial weights read back from the framework, the first forward output (eval mode), the
first batch's loss and gradients (train mode), then a full training run with per-step
records, on one load of the data. Writes ``FOLDER/probe.npz`` and the RunResult files into
``--out`` (the run's final folder) or ``FOLDER/run``; ``FOLDER/error.json`` (type, message,
field path) on a DuofitError, as every worker of :mod:`duofit.common.isolated`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from duofit.common.data import Dataset
from duofit.common.io import save_npz
from duofit.common.isolated import result_folder, worker_main
from duofit.common.spec import Spec

__all__ = ["main", "probe"]


def probe(spec: Spec, dataset: Dataset, backend: str, strict: bool) -> dict[str, np.ndarray]:
    """Stages (a)-(c) for one backend, as named arrays."""
    from duofit.backends.base import make_plan
    from duofit.common.registry import get_backend

    probe_mod = get_backend(backend)  # a Keras backend selects its framework (KERAS_BACKEND) first
    plan = make_plan(spec, dataset, strict=strict)
    first = plan.order.epoch(0)[: spec.train.batch_size]  # the first batch (streamed data: read from the map)
    x, t = plan.dataset.x_train[first], plan.t_train[first]
    out: dict[str, np.ndarray] = {}
    for name, arr in probe_mod.roundtrip(spec, plan.weights, strict=strict).items():
        out[f"initial_weights/{name}"] = arr
    out["forward"] = probe_mod.forward(spec, plan.weights, x, strict=strict)
    loss, grads = probe_mod.gradients(spec, plan.weights, x, t, strict=strict)
    out["first_step/loss"] = np.asarray(loss)
    for name, arr in grads.items():
        out[f"first_step/{name}"] = arr
    return out


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--strict", action="store_true")
    parser.add_argument("--out", help="the run's final folder (default FOLDER/run)")
    parser.add_argument("--progress", action="store_true", help="a progress bar on stderr while it trains")


def _body(spec: Spec, backend: str, folder: Path, args: argparse.Namespace) -> None:
    from duofit.common.data import load_dataset
    from duofit.runner import run

    dataset = load_dataset(spec)
    save_npz(folder / "probe.npz", probe(spec, dataset, backend, args.strict))
    out = result_folder(folder / "run", args.out)
    run(spec, backend, out=out, record_steps=True, strict=args.strict, dataset=dataset, progress=args.progress)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    return worker_main("duofit.parity.worker", argv, _body, _options)


if __name__ == "__main__":
    sys.exit(main())
