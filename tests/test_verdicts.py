"""One verdict per run: the rows of the learning-rate table, on every backend.

Each row changes one value of an example (as a user pushing the tutorial's learning-rate
challenge would) and asserts the one verdict, the exit code, and that no contradicting flag
is printed. The per-backend tests run in the single-backend envs; the parity test checks that
Keras on torch and on JAX agree (the ``all`` env).
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import tomli_w

import duofit
from duofit.cli import main
from duofit.common.diagnostics import (
    DIVERGENCE_RATIO,
    diagnose_history,
    divergence_limit,
    overfitting_evidence,
    reference_loss,
    untrained_loss,
)
from duofit.common.history import EpochRecorder
from duofit.common.verdict import VERDICTS, decide, describe

BACKENDS = [pytest.param("torch", marks=pytest.mark.torch), pytest.param("keras", marks=pytest.mark.keras)]

# name: (example, {section: {key: value}}, verdict, exit code). Epochs are cut where the
# verdict is already decided (measured on the full runs: the same verdict from epoch 10 for
# lr = 10, from epoch 30 for SGD lr = 10), to keep the suite fast.
ROWS: dict[str, tuple[str, dict[str, dict[str, Any]], str, int]] = {
    "adam-lr-1e4": ("seed", {"optimizer": {"lr": 1e4}, "train": {"epochs": 20}}, "diverged", 3),
    "multiclass-lr-0.5": ("multiclass", {"optimizer": {"lr": 0.5}, "train": {"epochs": 20}}, "unstable", 0),
    "adam-lr-10": ("seed", {"optimizer": {"lr": 10.0}, "train": {"epochs": 30}}, "unstable", 0),
    "regression-adam-lr-100": ("regression", {"optimizer": {"lr": 100.0}}, "diverged", 3),
    "sgd-lr-10": ("seed", {"optimizer": {"type": "sgd", "lr": 10.0}, "train": {"epochs": 40}}, "unstable", 0),
    "adam-lr-0.1": ("seed", {"optimizer": {"lr": 0.1}}, "fine", 0),
}


def _row_spec(tmp_path: Path, name: str) -> Path:
    example, changes, _, _ = ROWS[name]
    doc = tomllib.loads(Path(f"examples/{example}.toml").read_text())
    for section, values in changes.items():
        doc[section].update(values)
    path = tmp_path / f"{name}.toml"
    path.write_text(tomli_w.dumps(doc))
    return path


def _step(message: str | None) -> int | None:
    found = re.search(r"step (\d+)", message or "")
    return int(found.group(1)) if found else None


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("row", sorted(ROWS))
def test_verdict_table_row(tmp_path: Path, capsys: pytest.CaptureFixture[str], backend: str, row: str) -> None:
    _, _, verdict, code = ROWS[row]
    out = tmp_path / backend
    assert main(["run", str(_row_spec(tmp_path, row)), "--backend", backend, "-q", "--out", str(out)]) == code
    printed = capsys.readouterr()
    res = duofit.RunResult.load(out)
    assert res.verdict["name"] == verdict, res.diagnostics
    lines = [x for x in printed.out.splitlines() if "verdict:" in x]
    assert len(lines) == 1 and f"verdict: {verdict}" in lines[0]  # one verdict, nothing contradicting it
    for other in ("overfitting", "underfitting", "vanishing"):
        if other != verdict:
            assert other not in printed.out
    assert res.diverged == (verdict == "diverged")
    if verdict == "diverged":
        assert "Lower optimizer.lr" in printed.err and "Traceback" not in printed.err


# One process per Keras framework runs every row (KERAS_BACKEND is read once per process).
_VERDICTS_OF = """
import json, sys
import duofit
print(json.dumps([duofit.run(path, sys.argv[1]).verdict["name"] for path in sys.argv[2:]]))
"""


@pytest.mark.slow
@pytest.mark.parity
@pytest.mark.parametrize("backend", ["keras-torch", "keras-jax"])
def test_keras_on_torch_and_jax_give_the_same_verdicts(tmp_path: Path, backend: str) -> None:
    rows = sorted(ROWS)
    paths = [str(_row_spec(tmp_path, row)) for row in rows]
    done = subprocess.run(
        [sys.executable, "-c", _VERDICTS_OF, backend, *paths], capture_output=True, text=True, check=True
    )
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert dict(zip(rows, got, strict=True)) == {row: ROWS[row][2] for row in rows}


@pytest.mark.slow
@pytest.mark.parity
def test_adam_lr_1e4_stops_every_backend_at_the_same_step(tmp_path: Path) -> None:
    cmp = duofit.compare(_row_spec(tmp_path, "adam-lr-1e4"), ["torch", "keras", "keras-torch", "keras-jax"])
    steps = {name: _step(res.message) for name, res in cmp.results.items()}
    assert all(res.diverged for res in cmp.results.values())
    assert len(set(steps.values())) == 1 and None not in steps.values(), steps


def test_the_divergence_limit_is_relative_to_a_model_that_learned_nothing() -> None:
    spec = duofit.load_spec("examples/seed.toml")
    y = np.array([0, 0, 0, 1])  # prior entropy 0.56 < uniform ln 2
    assert reference_loss(spec, y, 2) == pytest.approx(math.log(2))
    assert divergence_limit(spec, y, 2) == pytest.approx(DIVERGENCE_RATIO * math.log(2))
    reg = duofit.load_spec("examples/regression.toml")
    far = np.array([99.0, 101.0])  # targets far from 0: an untrained model starts at mean(y^2), not var(y)
    assert untrained_loss(reg, far, None) == pytest.approx(10001.0)
    assert reference_loss(reg, far, None) == pytest.approx(10001.0)
    doc = tomllib.loads(Path("examples/seed.toml").read_text())
    doc["train"]["divergence_threshold"] = math.inf
    assert divergence_limit(duofit.load_spec(doc), y, 2) == math.inf
    doc["train"]["divergence_threshold"] = 0.5
    with pytest.raises(duofit.SpecError, match="divergence_threshold"):
        duofit.load_spec(doc)


def test_the_recorder_stops_at_the_first_step_beyond_the_limit() -> None:
    rec = EpochRecorder([], "binary", True, None, 5, steps_per_epoch=4, divergence_limit=10.0, reference_loss=0.01)
    assert not rec.end_epoch(0, 0.5, 0.6, None, 0.1, step_losses=lambda: np.array([0.5] * 4)).stop
    decision = rec.end_epoch(1, 50.0, 0.6, None, 0.1, step_losses=lambda: np.array([0.5, 9.0, 11.0, 180.0]))
    assert decision.stop and rec.diverged and rec.diverged_step == 7
    assert "epoch 2, step 7 (batch 3 of 4)" in (rec.message or "")
    assert "1000 x the loss of a model that learned nothing" in (rec.message or "")
    assert "last acceptable training loss: 9" in (rec.message or "")


def _hist(loss: list[float], val: list[float], grad: list[float] | None = None) -> pd.DataFrame:
    n = len(loss)
    return pd.DataFrame({"epoch": range(1, n + 1), "loss": loss, "val_loss": val, "grad_norm": grad or [1.0] * n})


def _verdict(h: pd.DataFrame, diverged: bool = False, baseline: float = 0.69) -> str:
    spec = duofit.load_spec("examples/seed.toml")
    return decide(spec, diagnose_history(h, baseline, diverged, baseline), diverged)["name"]


def test_one_verdict_in_order_of_severity() -> None:
    assert VERDICTS[0] == "diverged" and VERDICTS[-1] == "fine"
    swinging = _hist([0.6] * 10, [0.5, 2.0, 0.6, 2.5, 0.7, 3.0, 0.6, 2.8, 0.7, 3.1])
    assert _verdict(swinging) == "unstable"
    assert _verdict(swinging, diverged=True) == "diverged"
    growing = _hist([0.5] * 6, [0.4] * 6, [1.0, 5.0, 50.0, 300.0, 10.0, 5.0])
    assert _verdict(growing) == "exploding"
    stuck = _hist([0.69] * 9, [0.69] * 9, [1e-8] * 9)
    assert _verdict(stuck) == "vanishing"  # before underfitting: it says why the loss stays high
    learned = _hist([0.69, 0.05, 0.01], [0.69, 0.05, 0.01], [1.0, 1e-8, 1e-8])
    assert _verdict(learned) == "fine"  # tiny gradients after the loss fell are convergence


def test_overfitting_needs_a_sustained_significant_rise_not_noise() -> None:
    rng = np.random.default_rng(0)
    e = np.arange(1, 101)
    falling = np.linspace(0.5, 0.1, 100)
    flat_noisy = 0.3 + 0.03 * rng.standard_normal(100)  # the seed problem at lr = 0.1: a flat, noisy curve
    assert not overfitting_evidence(e, falling, flat_noisy)["flag"]
    u_shape = np.r_[np.linspace(0.6, 0.3, 30), np.linspace(0.3, 0.6, 70)] + 0.01 * rng.standard_normal(100)
    ev = overfitting_evidence(e, falling, u_shape)
    assert ev["flag"] and 25 <= ev["started_epoch"] <= 35
    spike = flat_noisy.copy()
    spike[-1] = 0.6  # one bad last epoch is not a sustained rise
    assert not overfitting_evidence(e, falling, spike)["flag"]


def test_an_overfitting_model_is_not_called_unstable() -> None:
    # Validation loss climbs above ln 2 while the training loss goes to 0: overfitting.
    val = list(np.r_[np.linspace(0.6, 0.5, 5), np.linspace(0.55, 1.8, 45)])
    assert _verdict(_hist(list(np.geomspace(0.5, 1e-4, 50)), val)) == "overfitting"


def test_describe_prints_the_evidence_and_the_fix() -> None:
    h = _hist([0.6] * 10, [0.5, 2.0, 0.6, 2.5, 0.7, 3.0, 0.6, 2.8, 0.7, 3.1])
    spec = duofit.load_spec("examples/seed.toml")
    line = describe(decide(spec, diagnose_history(h, 0.69, False, 0.69), False))
    assert line.startswith("unstable: ") and "fix: the learning rate is too high" in line and "(now 0.01)" in line
