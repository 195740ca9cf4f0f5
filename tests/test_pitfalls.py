"""Pitfall diagnostics: pitfall flags fire on both backends, their fixed twins do not; controls agree."""

from __future__ import annotations

import math
import tomllib

import numpy as np
import pandas as pd
import pytest

import duofit
from duofit.cli import main
from duofit.common.diagnostics import baseline_loss, diagnose_history, spec_warnings
from duofit.common.schedules import LRSchedule
from duofit.common.spec import CosineSchedule, ExponentialSchedule, PlateauSchedule

BACKENDS = [pytest.param("torch", marks=pytest.mark.torch), pytest.param("keras", marks=pytest.mark.keras)]
PITFALLS = {"overfit": "overfitting", "underfit": "underfitting", "exploding": "exploding", "unstable": "unstable"}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(PITFALLS))
def test_pitfall_fires_and_fix_does_not(backend: str, name: str) -> None:
    flag = PITFALLS[name]
    bad = duofit.run(f"examples/pitfalls/{name}.toml", backend)
    fixed = duofit.run(f"examples/pitfalls/{name}_fixed.toml", backend)
    assert flag in bad.flags(), bad.diagnostics
    assert flag not in fixed.flags(), fixed.diagnostics
    assert not fixed.diverged


@pytest.mark.parity
def test_early_stopping_picks_the_same_epoch_on_both_backends() -> None:
    doc = tomllib.loads(open("examples/seed.toml").read())
    doc["train"].update(dtype="float64", early_stopping={"monitor": "val_loss", "patience": 4})
    doc["optimizer"] = {"type": "sgd", "lr": 0.5}
    spec = duofit.load_spec(doc)
    a, b = duofit.run(spec, "torch", strict=True), duofit.run(spec, "keras", strict=True)
    assert a.stopped_epoch is not None and a.stopped_epoch < 100
    assert (a.best_epoch, a.stopped_epoch) == (b.best_epoch, b.stopped_epoch)
    np.testing.assert_allclose(a.history["val_loss"], b.history["val_loss"], rtol=1e-12)


@pytest.mark.parity
def test_divergence_stops_both_backends_at_the_same_step(tmp_path, capsys) -> None:
    doc = tomllib.loads(open("examples/pitfalls/exploding.toml").read())
    doc["optimizer"]["lr"] = 1e3
    path = tmp_path / "lr1e3.toml"
    import tomli_w

    path.write_text(tomli_w.dumps(doc))
    steps = {}
    for backend in ("torch", "keras"):
        code = main(["run", str(path), "--backend", backend, "-q", "--out", str(tmp_path / backend)])
        err = capsys.readouterr().err
        assert code == 3
        assert "diverged at epoch 1, step" in err and "Lower optimizer.lr (now 1000)" in err and "Traceback" not in err
        res = duofit.RunResult.load(tmp_path / backend)
        assert res.diverged and "exploding" in res.flags()
        steps[backend] = err.split("step ")[1].split(" ")[0]
    assert steps["torch"] == steps["keras"]


@pytest.mark.parity
@pytest.mark.parametrize(
    "schedule",
    [
        {"type": "step", "step_size": 2, "gamma": 0.5},
        {"type": "exponential", "gamma": 0.8},
        {"type": "cosine", "t_max": 4, "eta_min": 0.001},
        {"type": "plateau", "patience": 0, "factor": 0.5},
    ],
)
def test_schedules_are_identical_on_both_backends(schedule: dict) -> None:
    doc = tomllib.loads(open("examples/seed.toml").read())
    doc["optimizer"] = {"type": "sgd", "lr": 0.2, "momentum": 0.9, "schedule": schedule}
    doc["train"].update(epochs=6, dtype="float64")
    spec = duofit.load_spec(doc)
    a, b = duofit.run(spec, "torch", strict=True), duofit.run(spec, "keras", strict=True)
    np.testing.assert_array_equal(a.history["lr"], b.history["lr"])
    assert a.history["lr"].iloc[0] == 0.2 and a.history["lr"].iloc[-1] < 0.2
    np.testing.assert_allclose(a.history["loss"], b.history["loss"], rtol=1e-12)


def test_schedule_formulas() -> None:
    exp = LRSchedule(1.0, ExponentialSchedule(type="exponential", gamma=0.5))
    assert [exp.lr_for(e) for e in range(3)] == [1.0, 0.5, 0.25]
    cos = LRSchedule(1.0, CosineSchedule(type="cosine", t_max=2, eta_min=0.0))
    assert [round(cos.lr_for(e), 12) for e in range(4)] == [1.0, 0.5, 0.0, 0.0]
    plateau = LRSchedule(1.0, PlateauSchedule(type="plateau", patience=1, factor=0.5, cooldown=1), mode="min")
    lrs = [plateau.end_epoch(e, {"epoch": e + 1, "val_loss": v}) for e, v in enumerate([1, 1, 1, 1, 1, 0.5])]
    assert lrs == [1.0, 0.5, 0.5, 0.25, 0.25, 0.25]


def _hist(loss: list[float], val: list[float], grad: list[float] | None = None) -> pd.DataFrame:
    n = len(loss)
    return pd.DataFrame({"epoch": range(1, n + 1), "loss": loss, "val_loss": val, "grad_norm": grad or [1.0] * n})


def test_diagnose_history_rules() -> None:
    over = diagnose_history(
        _hist([1, 0.8, 0.6, 0.4, 0.3, 0.2, 0.1, 0.05], [1, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5]),
        baseline=1.0,
        diverged=False,
    )
    assert over["overfitting"]["flag"] and over["overfitting"]["started_epoch"] == 3
    noisy = diagnose_history(_hist([1, 0.8, 0.6, 0.4, 0.3, 0.2, 0.1, 0.05], [1, 0.9] + [0.92] * 6), 1.0, False)
    assert not noisy["overfitting"]["flag"]  # a 2% rise is noise, not overfitting
    boom = diagnose_history(_hist([1, 2, 4], [1, 2, 4], [1.0, 50.0, 200.0]), 1.0, False)
    assert boom["exploding"]["flag"] and boom["exploding"]["growth"] == 200.0
    flat = diagnose_history(_hist([0.9] * 6, [0.9] * 6, [1e-8] * 6), 1.0, False)
    assert flat["vanishing"]["flag"] and flat["underfitting"]["flag"]
    done = diagnose_history(_hist([0.9, 0.01, 0.001], [0.9, 0.01, 0.001], [1.0, 1e-8, 1e-8]), 1.0, False)
    assert not done["vanishing"]["flag"]  # tiny gradients after learning are convergence
    assert diagnose_history(_hist([1.0, math.nan], [1.0, math.nan]), 1.0, True)["exploding"]["flag"]


def test_baseline_and_warnings() -> None:
    spec = duofit.load_spec("examples/seed.toml")
    assert baseline_loss(spec, np.array([0, 1, 1, 0]), 2) == pytest.approx(math.log(2))
    doc = tomllib.loads(open("examples/seed.toml").read())
    doc["model"]["layers"][-1]["activation"] = "sigmoid"
    assert any("second time" in w for w in spec_warnings(duofit.load_spec(doc), True))
    doc["loss"]["from_logits"] = False
    assert spec_warnings(duofit.load_spec(doc), True) == []
    del doc["model"]["layers"][-1]["activation"]
    assert any("clipped" in w for w in spec_warnings(duofit.load_spec(doc), True))
