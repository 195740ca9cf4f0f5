"""The parity report on the seed spec and friends: the documented parity tolerances hold."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest

import duofit
from duofit.cli import main
from duofit.parity import parity
from duofit.parity.convert import convert

pytestmark = [pytest.mark.parity, pytest.mark.slow]


# Documented parity target, float64 strict: per-step loss <= 1e-12 relative, final weights <= 1e-10.
STRICT_STEP_RTOL = 1e-12
STRICT_WEIGHTS_RTOL = 1e-10
# Documented parity target, float32 default: per-step loss <= 1e-4 relative (or the cause is named).
F32_STEP_RTOL = 1e-4
# Documented conversion target: torch -> keras -> torch keeps float32 predictions within 1e-6.
ROUNDTRIP_RTOL = 1e-6

OPTIMIZERS = {
    "sgd": {"type": "sgd", "lr": 0.1},
    "momentum": {"type": "sgd", "lr": 0.1, "momentum": 0.9},
    "nesterov": {"type": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True},
    "adam": {"type": "adam", "lr": 0.01},
    "adamw": {"type": "adamw", "lr": 0.01, "weight_decay": 0.01},
    "rmsprop": {"type": "rmsprop", "lr": 0.01},
}


def _seed(**changes: object) -> dict:
    doc = tomllib.loads(open("examples/seed.toml").read())
    doc.update(changes)
    return doc


def _stage(report, name: str):
    return next(s for s in report.stages if s.stage == name)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_strict_float64_parity_for_every_optimizer(name: str) -> None:
    report = parity(_seed(optimizer=OPTIMIZERS[name]), strict=True, epochs=10)
    assert report.spec.train.dtype == "float64"
    assert any("float32 -> float64" in c for c in report.changes)
    traj = _stage(report, "trajectory")
    assert traj.max_rel <= STRICT_STEP_RTOL, report.text()
    assert _stage(report, "final_weights").max_rel <= STRICT_WEIGHTS_RTOL
    assert report.passed, report.text()
    steps = report.steps_frame()
    assert len(steps) == 250  # 10 epochs x 25 batches, every step compared


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_float32_default_parity_or_named_cause(name: str) -> None:
    report = parity(_seed(optimizer=OPTIMIZERS[name]), epochs=10)
    traj = _stage(report, "trajectory")
    if traj.max_rel > F32_STEP_RTOL:
        assert traj.status == "fail" and traj.causes, report.text()
        assert name == "rmsprop" and "rmsprop_epsilon" in {c.id for c in traj.causes}
    else:
        assert traj.status == "pass"


def test_deliberate_decay_mismatch_fails_at_step_two_and_names_it(tmp_path) -> None:
    doc = _seed(optimizer={"type": "adam", "lr": 0.01, "weight_decay": 0.01})
    report = parity(doc, strict=True, epochs=2, overrides={"keras": ["optimizer.decay_kind=decoupled"]}, out=tmp_path)
    assert _stage(report, "first_step").status == "pass"  # decay acts in the update, not the gradient
    traj = _stage(report, "trajectory")
    assert traj.status == "fail"
    assert "first step over tolerance: 2 (epoch 1, batch 2)" in traj.detail
    assert "weight_decay_coupling" in {c.id for c in traj.causes}
    assert "weight_decay_coupling" in report.text()
    for name in ("parity.json", "parity.csv", "steps.csv", "parity.png", "torch/history.csv", "keras/steps.npz"):
        assert (tmp_path / name).stat().st_size > 0


def test_float64_without_strict_names_float32_hyperparameters() -> None:
    report = parity(_seed(optimizer=OPTIMIZERS["momentum"]), dtype="float64", epochs=3)
    traj = _stage(report, "trajectory")
    assert traj.status == "fail" and 1e-12 < traj.max_rel < 1e-5
    assert "keras_float32_hyperparameters" in {c.id for c in traj.causes}


def test_dropout_is_compared_at_eval_only() -> None:
    layers = [
        {"type": "dense", "units": 10, "activation": "relu"},
        {"type": "dropout", "rate": 0.3},
        {"type": "dense", "units": 1},
    ]
    report = parity(_seed(model={"layers": layers}), epochs=2)
    assert _stage(report, "forward").status == "pass"
    for name in ("first_step", "trajectory", "final_weights", "metrics"):
        stage = _stage(report, name)
        assert stage.status == "n/a" and "dropout" in stage.detail
    assert report.passed


def test_batch_norm_trains_identically_and_names_running_variance() -> None:
    layers = [
        {"type": "dense", "units": 10},
        {"type": "batch_norm"},
        {"type": "activation", "activation": "gelu"},
        {"type": "dense", "units": 1},
    ]
    report = parity(_seed(model={"layers": layers}), strict=True, epochs=3)
    assert _stage(report, "first_step").status == "pass"
    assert _stage(report, "trajectory").max_rel <= STRICT_STEP_RTOL  # training mode uses batch statistics
    weights = _stage(report, "final_weights")
    assert weights.status == "fail"
    assert {c.id for c in weights.causes} == {"batchnorm_conventions"}


@pytest.mark.parametrize("example", ["regression.toml", "multiclass.toml"])
def test_strict_parity_on_regression_and_multiclass(example: str) -> None:
    report = parity(f"examples/{example}", strict=True, epochs=3)
    assert report.passed, report.text()
    assert _stage(report, "trajectory").max_rel <= STRICT_STEP_RTOL


def test_convert_round_trip_torch_keras_torch(tmp_path) -> None:
    spec = duofit.load_spec(_seed(train={"epochs": 5, "batch_size": 32, "seed": 0}))
    res = duofit.run(spec, "torch", out=tmp_path / "run")
    k = convert(tmp_path / "run", to="keras", out=tmp_path / "k")
    assert k["read_from"] == "weights.npz" and (tmp_path / "k" / "model.weights.h5").exists()
    t = convert(tmp_path / "k", to="torch", out=tmp_path / "t")
    assert t["read_from"].startswith("keras file")
    final = np.load(tmp_path / "t" / "predictions.npz", allow_pickle=False)["predictions"]
    rel = np.max(np.abs(final - res.predictions)) / np.max(np.abs(res.predictions))
    assert rel <= ROUNDTRIP_RTOL
    keras_archive = convert(tmp_path / "run", to="keras", out=tmp_path / "ka", fmt=".keras")
    assert keras_archive["max_rel_diff"] <= ROUNDTRIP_RTOL
    with pytest.raises(duofit.DataError, match="not empty"):
        convert(tmp_path / "run", to="keras", out=tmp_path / "k")


def test_parity_cli_exit_codes(tmp_path, capsys) -> None:
    code = main(["parity", "examples/seed.toml", "--strict", "--epochs", "1", "--out", str(tmp_path / "a")])
    assert code == 0
    assert "PASS" in capsys.readouterr().out
    code = main(
        [
            "parity",
            "examples/seed.toml",
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "b"),
            "--set",
            "keras:optimizer.lr=0.02",
        ]
    )
    out = capsys.readouterr().out
    assert code == 4 and "FAIL" in out and "keras only: optimizer.lr=0.02" in out
    code = main(["parity", "examples/seed.toml", "--set", "keras-optimizer.lr=1"])
    assert code == 2 and "BACKEND:FIELD=VALUE" in capsys.readouterr().err
