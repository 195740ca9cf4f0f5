"""Determinism on CPU: the same spec and seed give bit-identical results in two fresh processes.

Each backend runs a small spec (two hidden layers, batch norm and dropout, so the dropout masks'
seeding is covered too) twice through ``python -m duofit.worker``, each time in a new interpreter
with a different ``PYTHONHASHSEED``. The history CSVs must be identical as text (every column but
the wall-clock ``*_s`` timings), and the final weights, test predictions and per-step losses
must be ``np.array_equal``.

Measured with torch 2.13 CPU, TensorFlow 2.21, JAX 0.10 and Keras 3.15 on CPU: all four backends
(torch, and Keras on TensorFlow, torch and JAX) are bit-identical
with their default settings (same machine, same thread count). Neither torch's
``use_deterministic_algorithms`` nor TensorFlow's ``enable_op_determinism`` is needed on CPU for
these layers; a different thread count (``train.threads``) or another CPU may change the bits,
which is why ``result.json`` records both.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import duofit
from duofit.common.io import load_npz
from tests.params import ALL_BACKENDS

# One worker run (interpreter start, framework import, 3 short epochs) takes 5-8 s on 2 cores.
WORKER_TIMEOUT_S = 300
# Columns of history.csv that are wall-clock times, never reproducible.
TIMING_SUFFIX = "_s"


def _spec(seed_spec_dict: dict[str, Any]) -> duofit.Spec:
    doc = seed_spec_dict
    doc["data"]["params"].update(n_samples=1000, n_features=12, n_informative=6)
    doc["train"].update(epochs=3, batch_size=64, seed=123)
    doc["model"]["layers"] = [
        {"type": "dense", "units": 32, "activation": "relu"},
        {"type": "batch_norm"},
        {"type": "dropout", "rate": 0.2},
        {"type": "dense", "units": 16, "activation": "gelu"},
        {"type": "dense", "units": 1},
    ]
    return duofit.load_spec(doc)


def _run_worker(spec_file: Path, backend: str, out: Path, hash_seed: str) -> None:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    proc = subprocess.run(
        [sys.executable, "-m", "duofit.worker", str(spec_file), backend, str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, f"worker failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"


def _history_without_timings(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    keep = [i for i, name in enumerate(rows[0]) if not name.endswith(TIMING_SUFFIX)]
    return [[row[i] for i in keep] for row in rows]


def _assert_same_arrays(a: dict[str, np.ndarray], b: dict[str, np.ndarray], what: str) -> None:
    assert sorted(a) == sorted(b), what
    for key in a:
        assert a[key].dtype == b[key].dtype and np.array_equal(a[key], b[key]), f"{what}: {key} differs"


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_two_fresh_processes_give_identical_results(tmp_path: Path, seed_spec_dict: dict, backend: str) -> None:
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(_spec(seed_spec_dict).model_dump_json(), encoding="utf-8")
    first, second = tmp_path / "first", tmp_path / "second"
    _run_worker(spec_file, backend, first, hash_seed="1")
    _run_worker(spec_file, backend, second, hash_seed="2")

    history = _history_without_timings(first / "history.csv")
    assert len(history) == 1 + 3, "one header and one row per epoch"
    assert "loss" in history[0] and "val_loss" in history[0]
    assert history == _history_without_timings(second / "history.csv"), "history differs between two runs"
    _assert_same_arrays(load_npz(first / "weights.npz"), load_npz(second / "weights.npz"), "final weights")
    _assert_same_arrays(load_npz(first / "predictions.npz"), load_npz(second / "predictions.npz"), "predictions")
    _assert_same_arrays(load_npz(first / "steps.npz"), load_npz(second / "steps.npz"), "per-step losses")
    meta = [json.loads((d / "result.json").read_text(encoding="utf-8")) for d in (first, second)]
    assert meta[0]["metrics"] == meta[1]["metrics"]
    assert np.isfinite([float(row[history[0].index("loss")]) for row in history[1:]]).all()
