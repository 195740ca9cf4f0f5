"""Resume: optimizer state travels with the weights; training continued after a conversion matches.

Float64, strict mode, iris (3 steps per epoch): 3 epochs, a conversion, 3 more epochs on the other
framework equal 6 uninterrupted epochs, per-epoch losses and final weights.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tomli_w

import duofit
from duofit.common.errors import DataError, SpecError
from duofit.common.optstate import OPTIMIZER_FILE, OptimizerState, load_state, save_state

# float64, only summation order differs between the frameworks (~1e-16 per step, 18 steps); the
# issue's bar for continued training, far below any real difference (a lost moment is ~1e-3).
RESUME_RTOL = 1e-12
# torch's SGD (buf = m buf + g; w -= lr buf) and Keras' native SGD (v = m v - lr g; w += v) agree at a
# constant rate up to rounding; the cross-backend float64 SGD tolerance of tests/parity
NATIVE_SGD_RTOL = 1e-10

SGD = {"type": "sgd", "lr": 0.1, "momentum": 0.9}
ADAM = {"type": "adam", "lr": 0.01}
RMSPROP = {"type": "rmsprop", "lr": 0.01, "momentum": 0.5, "centered": True}
ADAMW = {"type": "adamw", "lr": 0.01, "amsgrad": True}
STEP = {"type": "step", "step_size": 2, "gamma": 0.5}  # the rate halves at epochs 3 and 5: across the resume point
# never "improves" after epoch 1 (min_delta): reduces, cools down, reduces again, across the resume point
PLATEAU = {"type": "plateau", "patience": 1, "cooldown": 1, "factor": 0.5, "min_delta": 100.0}


def _doc(optimizer: dict, epochs: int, schedule: dict | None = STEP, **train: Any) -> dict:
    opt = {**optimizer, **({"schedule": schedule} if schedule else {})}
    return {
        "data": {"kind": "iris"},
        "train": {"epochs": epochs, "batch_size": 40, "dtype": "float64", "seed": 1, **train},
        "model": {"layers": [{"type": "dense", "units": 5, "activation": "tanh"}, {"type": "dense", "units": 3}]},
        "loss": {"type": "categorical_crossentropy", "from_logits": True},
        "optimizer": opt,
    }


def _spec(optimizer: dict, epochs: int, schedule: dict | None = STEP, **train: Any) -> duofit.Spec:
    return duofit.load_spec(_doc(optimizer, epochs, schedule, **train))


def _same_training(full: duofit.RunResult, resumed: duofit.RunResult, rtol: float) -> None:
    """``resumed``'s epochs are ``full``'s last ones: epoch numbers, rates, losses, final weights, state."""
    tail = full.history.iloc[-len(resumed.history) :].reset_index(drop=True)
    assert list(resumed.history["epoch"]) == list(tail["epoch"])
    np.testing.assert_array_equal(resumed.history["lr"], tail["lr"])
    for col in ("loss", "val_loss"):
        np.testing.assert_allclose(resumed.history[col], tail[col], rtol=rtol, atol=0)
    assert set(resumed.weights) == set(full.weights)
    for name, arr in full.weights.items():
        np.testing.assert_allclose(resumed.weights[name], arr, rtol=rtol, atol=rtol * np.max(np.abs(arr)))
    full_steps = full.steps["loss"][-len(resumed.steps["loss"]) :]
    np.testing.assert_allclose(resumed.steps["loss"], full_steps, rtol=rtol, atol=0)  # every step, none missing
    a, b = full.optimizer_state, resumed.optimizer_state
    assert a is not None and b is not None
    assert (b.step, b.epochs_done, b.slots.keys()) == (a.step, a.epochs_done, a.slots.keys())


# --------------------------------------------------------------------------- framework-free
def test_state_file_round_trips_and_is_checked_against_the_spec(tmp_path: Path) -> None:
    spec = _spec(ADAM, 3)
    weights = {"layers.0.kernel": np.zeros((4, 5)), "layers.0.bias": np.zeros(5)}
    slots = {f"{s}/{k}": np.full(v.shape, 0.5) for s in ("m", "v") for k, v in weights.items()}
    state = OptimizerState("adam", step=9, epochs_done=3, lr=0.005, slots=slots, schedule={"lr": 0.0025})
    save_state(tmp_path, state)
    back = load_state(tmp_path)
    assert (back.optimizer, back.step, back.epochs_done, back.lr, back.schedule) == (
        "adam",
        9,
        3,
        0.005,
        state.schedule,
    )
    for key, arr in slots.items():
        np.testing.assert_array_equal(back.slots[key], arr)
    back.check(spec, weights)
    with pytest.raises(DataError, match="written for optimizer 'adam'"):
        back.check(_spec(SGD, 3), weights)
    with pytest.raises(DataError, match=re.escape("m/layers.0.bias has shape [5], the weight layers.0.bias [6]")):
        back.check(spec, {**weights, "layers.0.bias": np.zeros(6)})
    with pytest.raises(DataError, match=re.escape("slots ['m', 'v'], the spec's optimizer keeps ['m', 'v', 'vmax']")):
        back.check(_spec({**ADAM, "amsgrad": True}, 3), weights)


def test_a_folder_without_state_or_with_a_broken_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="holds no optimizer state"):
        load_state(tmp_path)
    (tmp_path / OPTIMIZER_FILE).write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a duofit optimizer state"):
        load_state(tmp_path)


# --------------------------------------------------------------------------- torch: the same backend
@pytest.mark.torch
@pytest.mark.parametrize("optimizer", [SGD, ADAM, RMSPROP, ADAMW], ids=lambda o: o["type"])
@pytest.mark.parametrize("schedule", [STEP, PLATEAU], ids=["step", "plateau"])
def test_torch_three_plus_three_epochs_equal_six(tmp_path: Path, optimizer: dict, schedule: dict) -> None:
    full = duofit.run(_spec(optimizer, 6, schedule), "torch", strict=True)
    first = duofit.run(_spec(optimizer, 3, schedule), "torch", strict=True, out=tmp_path / "first")
    assert first.optimizer_state is not None and (tmp_path / "first" / OPTIMIZER_FILE).exists()
    resumed = duofit.run(_spec(optimizer, 6, schedule), "torch", strict=True, resume_from=tmp_path / "first")
    assert len(set(full.history["lr"])) > 1  # the schedule moved the rate
    _same_training(full, resumed, rtol=0.0)  # the same framework, the same operations: bit for bit
    for key, arr in full.optimizer_state.slots.items():  # type: ignore[union-attr]
        np.testing.assert_array_equal(resumed.optimizer_state.slots[key], arr)  # type: ignore[union-attr]
    assert len(resumed.steps["loss"]) == 9  # the resumed steps only


@pytest.mark.torch
def test_resume_errors_name_the_problem_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from duofit.cli import main

    duofit.run(_spec(SGD, 3), "torch", out=tmp_path / "run")
    with pytest.raises(SpecError, match=r"train.epochs: .* trained 3 epochs already") as err:
        duofit.run(_spec(SGD, 3), "torch", resume_from=tmp_path / "run")
    assert err.value.path == "train.epochs"
    with pytest.raises(SpecError, match=r"optimizer: differs from the spec .* was trained with") as err:
        duofit.run(_spec(ADAM, 6), "torch", resume_from=tmp_path / "run")
    assert err.value.path == "optimizer"
    other_model = _doc(SGD, 6)
    other_model["model"]["layers"][0]["units"] = 6
    with pytest.raises(SpecError, match="model: differs"):
        duofit.run(other_model, "torch", resume_from=tmp_path / "run")

    # early stopping restored an earlier epoch's weights: no state that continues them is written
    stop = {"patience": 5, "min_delta": 100.0}  # only epoch 1 improves; its weights are restored
    duofit.run(_doc(SGD, 3, early_stopping=stop), "torch", out=tmp_path / "restored")
    assert not (tmp_path / "restored" / OPTIMIZER_FILE).exists()
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(tomli_w.dumps(_doc(SGD, 6, early_stopping=stop)))
    cli = ["run", str(spec_file), "-q", "--out", str(tmp_path / "next"), "--resume-from", str(tmp_path / "restored")]
    assert main(cli) == 2
    assert "holds no optimizer state" in capsys.readouterr().err


@pytest.mark.torch
def test_cli_resumes_a_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from duofit.cli import main

    duofit.run(_spec(ADAM, 2), "torch", out=tmp_path / "run")
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(tomli_w.dumps(_doc(ADAM, 3)))
    assert (
        main(["run", str(spec_file), "-q", "--out", str(tmp_path / "next"), "--resume-from", str(tmp_path / "run")])
        == 0
    )
    assert f"resumed from {tmp_path / 'run'} after epoch 2" in capsys.readouterr().out
    assert duofit.RunResult.load(tmp_path / "next").optimizer_state.epochs_done == 3  # type: ignore[union-attr]
    same = ["run", str(spec_file), "-q", "--out", str(tmp_path / "run"), "--resume-from", str(tmp_path / "run")]
    assert main(same) == 2  # never written over the folder it resumes from
    assert "is the folder training resumes from" in capsys.readouterr().err
    assert duofit.RunResult.load(tmp_path / "run").optimizer_state.epochs_done == 2  # type: ignore[union-attr]


# --------------------------------------------------------------------------- across frameworks
@pytest.mark.parity
@pytest.mark.parametrize("optimizer", [SGD, ADAM, RMSPROP, ADAMW], ids=lambda o: o["type"])
@pytest.mark.parametrize(("source", "target"), [("torch", "keras"), ("keras", "torch")])
def test_training_continued_after_convert_matches_uninterrupted(
    tmp_path: Path, optimizer: dict, source: str, target: str
) -> None:
    from duofit.parity.convert import convert

    full = duofit.run(_spec(optimizer, 6), source, strict=True)
    duofit.run(_spec(optimizer, 3), source, strict=True, out=tmp_path / "first")
    info = convert(tmp_path / "first", to=target, out=tmp_path / "converted")
    assert info["optimizer_state"] == {
        "file": OPTIMIZER_FILE,
        "optimizer": optimizer["type"],
        "step": 9,
        "epochs_done": 3,
        "slots": sorted(full.optimizer_state.slot_names),  # type: ignore[union-attr]
    }
    resumed = duofit.run(_spec(optimizer, 6), target, strict=True, resume_from=tmp_path / "converted")
    _same_training(full, resumed, rtol=RESUME_RTOL)
    for key, arr in full.optimizer_state.slots.items():  # type: ignore[union-attr]
        got = resumed.optimizer_state.slots[key]  # type: ignore[union-attr]
        np.testing.assert_allclose(got, arr, rtol=RESUME_RTOL, atol=RESUME_RTOL * np.max(np.abs(arr)))


SEQUENCE_MODEL = {
    "data": {
        "kind": "make_classification",
        "params": {"n_samples": 120, "n_features": 12, "n_informative": 6, "n_classes": 3, "random_state": 0},
        "sequence_shape": [4, 3],
    },
    # moments in every layout the weights translate: a conv kernel (permuted), GRU gates, a dense kernel
    "model": {
        "layers": [
            {"type": "conv1d", "filters": 2, "kernel_size": 2},
            {"type": "gru", "units": 3, "bias_init": "torch_rnn"},
            {"type": "dense", "units": 3},
        ]
    },
    "loss": {"type": "categorical_crossentropy", "from_logits": True, "labels": "integer"},
}


@pytest.mark.parity
def test_moments_of_conv_and_recurrent_weights_travel_in_their_layout(tmp_path: Path) -> None:
    def spec(epochs: int) -> duofit.Spec:
        train = {"epochs": epochs, "batch_size": 32, "dtype": "float64", "seed": 1}
        return duofit.load_spec({**SEQUENCE_MODEL, "train": train, "optimizer": {**ADAM, "schedule": STEP}})

    full = duofit.run(spec(4), "keras", strict=True)
    duofit.run(spec(2), "keras", strict=True, out=tmp_path / "first")
    resumed = duofit.run(spec(4), "torch", strict=True, resume_from=tmp_path / "first")
    _same_training(full, resumed, rtol=RESUME_RTOL)


@pytest.mark.parity
def test_keras_native_sgd_momentum_sign_and_scale(tmp_path: Path) -> None:
    """Not strict: Keras' own SGD keeps v = -lr * torch's buffer; a torch run continues on it."""
    sgd = {"type": "sgd", "lr": 0.125, "momentum": 0.875}  # float32-exact: Keras casts momentum to float32
    spec3, spec6 = _spec(sgd, 3, schedule=None), _spec(sgd, 6, schedule=None)
    full = duofit.run(spec6, "torch")
    duofit.run(spec3, "torch", out=tmp_path / "first")
    resumed = duofit.run(spec6, "keras", resume_from=tmp_path / "first")
    _same_training(full, resumed, rtol=NATIVE_SGD_RTOL)


@pytest.mark.keras
@pytest.mark.parametrize("optimizer", [SGD, RMSPROP], ids=lambda o: o["type"])
def test_keras_native_optimizers_resume_on_their_own_state(tmp_path: Path, optimizer: dict) -> None:
    """Not strict: the scaled slots (SGD's and RMSprop's momentum) go out and back in unchanged."""
    full = duofit.run(_spec(optimizer, 4, schedule=None), "keras")
    duofit.run(_spec(optimizer, 2, schedule=None), "keras", out=tmp_path / "first")
    resumed = duofit.run(_spec(optimizer, 4, schedule=None), "keras", resume_from=tmp_path / "first")
    _same_training(full, resumed, rtol=RESUME_RTOL)
