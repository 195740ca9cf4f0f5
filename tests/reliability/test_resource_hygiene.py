"""Resource hygiene: 50 tiny specs run one after another in one process must not grow its memory.

Tuning and sweeps call ``duofit.run`` many times in one process. Each test below starts a fresh
interpreter (so other tests and Keras' once-per-process backend choice cannot interfere), runs
``RUNS`` tiny specs (1 epoch, 200 samples, the seed model) through ``duofit.run`` and records the
process RSS after every run. After ``WARMUP`` runs (imports, first traces, allocator pools) the
RSS may grow by at most ``MAX_GROWTH_MIB``.

Measured (2 cores, torch 2.13 CPU, TensorFlow 2.21, Keras 3.15):

* torch: flat (+0 MiB over 45 runs).
* keras before the fix: +4.7 MiB per run, without bound (+211 MiB over 45 runs). Each ``fit`` leaked its whole
  traced train-step graph: Keras' TF optimizer all-reduces the gradients through the default
  replica context (``keras/src/backend/tensorflow/optimizer.py``, ``_all_reduce_sum_gradients``),
  which wraps them in ``tf.custom_gradient``; in graph mode that registers a new
  ``CustomGradient-<n>`` function in TensorFlow's global gradient registry
  (``tensorflow/python/framework/ops.py``, ``gradient_registry``) that is never removed and keeps
  the FuncGraph alive. ``keras.backend.clear_session()`` alone does not help (+3.7 MiB per run).
  The Keras backend now skips the all-reduce when no distribution strategy is active (one
  replica: the sum is the identity; ``duofit/backends/keras/recording.py``) *and* calls
  ``clear_session()`` before each run (``trainer.fit``): flat (+0 MiB over 35 runs).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

# The promised scenario: 50 specs in one process leak no memory, threads or files.
RUNS = 50
# Runs before the baseline is taken: imports, first traces, allocator pools.
WARMUP = 5
# Allowed RSS growth from run WARMUP to run RUNS: ~1 MiB per run of allocator noise and caches. A
# leaked Keras train step of this tiny model is ~4-5 MiB per run (measured), so 45 runs leak ~200 MiB.
MAX_GROWTH_MIB = 50
# A Keras run of the tiny spec takes ~1.2 s (graph tracing dominates); torch ~0.1 s.
SCRIPT_TIMEOUT_S = 420

SCRIPT = """
import gc, json, os, sys, tomllib
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import psutil
import duofit

backend, runs = sys.argv[1], int(sys.argv[2])

with open("examples/seed.toml", "rb") as fh:
    doc = tomllib.load(fh)
doc["data"]["params"]["n_samples"] = 200
doc["train"]["epochs"] = 1
process = psutil.Process()
rss = []
for _ in range(runs):
    duofit.run(doc, backend=backend)
    gc.collect()
    rss.append(process.memory_info().rss / 2**20)
print("RSS_MIB=" + json.dumps(rss))
"""


def _rss_series(backend: str, runs: int) -> list[float]:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), backend, str(runs)],
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, f"script failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RSS_MIB="))
    return json.loads(line.removeprefix("RSS_MIB="))


def _assert_bounded(rss: list[float], backend: str) -> None:
    growth = rss[-1] - rss[WARMUP - 1]
    per_run = growth / (len(rss) - WARMUP)
    print(f"\n{backend}: RSS {rss[WARMUP - 1]:.0f} -> {rss[-1]:.0f} MiB after {len(rss)} runs ({per_run:+.2f} MiB/run)")
    assert growth < MAX_GROWTH_MIB, (
        f"{backend}: RSS grew {growth:.0f} MiB over {len(rss) - WARMUP} runs ({per_run:.2f} MiB per run); "
        f"bound {MAX_GROWTH_MIB} MiB. Series: {[round(r) for r in rss]}"
    )


@pytest.mark.slow
@pytest.mark.torch
def test_torch_rss_is_flat_over_50_runs() -> None:
    _assert_bounded(_rss_series("torch", RUNS), "torch")


@pytest.mark.slow
@pytest.mark.keras
def test_keras_rss_is_flat_over_50_runs() -> None:
    _assert_bounded(_rss_series("keras", RUNS), "keras")
