"""Helpers of the exported-script tests: shorten an example, run a script without duofit, compare with duofit.run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from duofit.common.loader import load_spec
from duofit.common.result import RunResult
from duofit.common.spec import Spec

ROOT = Path(__file__).resolve().parents[2]
RUFF = Path(sys.executable).with_name("ruff")
# float64 on the same CPU kernels: the per-step losses differ only by rounding order (torch's fused
# vs. single-tensor optimizer kernels; on Keras they come out bit for bit equal); a translation
# error shows up at 1e-6 or more
RTOL = 1e-12
# The scripts' metrics are numpy closed forms of duofit's (sklearn) references, equal to 1e-12
# (tests/common/test_metrics.py), on outputs equal to RTOL
METRIC_TOL = 1e-9

# a standalone run: duofit made unimportable in the child process
RUNNER = (
    "import sys, runpy; sys.modules['duofit'] = None; sys.argv = sys.argv[1:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


def short_spec(name: str, epochs: int, **optimizer: object) -> Spec:
    """Example ``name`` trained for ``epochs`` in float64 (optimizer fields replaced by ``optimizer``)."""
    spec = load_spec(ROOT / "examples" / f"{name}.toml")
    update: dict[str, object] = {"train": spec.train.model_copy(update={"epochs": epochs, "dtype": "float64"})}
    if optimizer:
        update["optimizer"] = spec.optimizer.model_copy(update=optimizer)
    return spec.model_copy(update=update)


def variant(base: Spec, **sections: dict) -> Spec:
    """``base`` with sections replaced (validated again, as a spec file would be)."""
    data = base.model_dump(mode="json", exclude_none=True)
    data.update(sections)
    return load_spec(data)


def seed_features(activation: str) -> dict:
    """A ``model`` section for the seed data with batch norm, dropout, leaky_relu and kernel penalties."""
    return {
        "model": {
            "layers": [
                {"type": "dense", "units": 16, "activation": activation, "l2": 0.001},
                {"type": "batch_norm", "momentum": 0.2},
                {"type": "dropout", "rate": 0.3},
                {"type": "dense", "units": 8, "activation": "leaky_relu", "l1": 0.0005},
                {"type": "dense", "units": 1},
            ]
        },
    }


def run_script(script: Path) -> dict:
    """Run ``script`` with duofit unimportable; return the history JSON it writes."""
    history = script.with_name("history.json")
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, str(script), "--history", str(history)],
        capture_output=True,
        text=True,
        cwd=script.parent,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "epoch 1/" in proc.stdout
    return json.loads(history.read_text())


def check_same(spec: Spec, script: Path, backend: str, strict: bool = False) -> tuple[dict, RunResult]:
    """Run the exported ``script`` and compare it with ``duofit.run(spec, backend=...)``.

    Per-step, epoch and validation losses to :data:`RTOL`; per-epoch validation metrics and test
    metrics to :data:`METRIC_TOL`. Returns the script's history and duofit's result.
    """
    import duofit

    got = run_script(script)
    ref = duofit.run(spec, backend=backend, strict=strict)
    want_steps = np.asarray(ref.steps["loss"], dtype=np.float64)
    np.testing.assert_allclose(np.asarray(got["step_loss"]), want_steps, rtol=RTOL, atol=0)
    hist = ref.history
    np.testing.assert_allclose([r["loss"] for r in got["history"]], hist["loss"], rtol=RTOL)
    np.testing.assert_allclose([r["val_loss"] for r in got["history"]], hist["val_loss"], rtol=RTOL)
    for column in hist.columns:
        if column.startswith("val_") and column != "val_loss":
            np.testing.assert_allclose([r[column] for r in got["history"]], hist[column], rtol=METRIC_TOL)
    for column, value in ref.metrics.items():
        assert got["test_metrics"][column] == pytest.approx(value, rel=METRIC_TOL, abs=METRIC_TOL, nan_ok=True)
    return got, ref


def ruff_clean(script: Path) -> None:
    """``ruff check`` and ``ruff format --check`` pass on ``script`` with the project's settings."""
    if not RUFF.exists():
        pytest.skip(f"ruff is not installed beside {sys.executable}")
    config = ["--config", str(ROOT / "pyproject.toml")]
    for args in (["check", *config, str(script)], ["format", "--check", *config, str(script)]):
        proc = subprocess.run([str(RUFF), *args], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
