"""The exported torch script trains exactly as ``duofit run`` on the torch backend, without duofit."""

from __future__ import annotations

from pathlib import Path

import pytest

from duofit.common.errors import SpecError
from duofit.common.loader import load_spec
from duofit.common.spec import Spec
from duofit.porting.export_torch import write
from tests.porting.exported import (
    ROOT,
    assert_commands_exist,
    bidirectional_spec,
    check_same,
    lint_specs,
    probability_spec,
    ruff_clean,
    seed_features,
    short_spec,
    variant,
)

# a refusal's message: the field, what the export cannot write, and what to do instead
REFUSAL = r"\S+: duofit export --to torch does not support .+ yet; \S.+"


def _check_same(spec: Spec, tmp_path: Path, strict: bool = False) -> dict:
    """Export to torch, run the script without duofit, and compare with ``duofit.run`` on the torch backend."""
    script = tmp_path / "train_torch.py"
    assert write(spec, script, strict=strict) == [script, script.with_suffix(".npz")]
    got, _ = check_same(spec, script, "torch", strict=strict)
    return got


@pytest.mark.torch
def test_seed_script_trains_as_duofit(tmp_path: Path) -> None:
    _check_same(short_spec("seed", 2), tmp_path)
    ruff_clean(tmp_path / "train_torch.py")


@pytest.mark.torch
@pytest.mark.parametrize(
    ("name", "epochs"),
    [
        ("text_transformer", 1),
        pytest.param("residual_mlp", 1, marks=pytest.mark.slow),
        pytest.param("gru_digits_rows", 1, marks=pytest.mark.slow),
    ],
)
def test_model_examples_train_as_duofit(name: str, epochs: int, tmp_path: Path) -> None:
    _check_same(short_spec(name, epochs), tmp_path)
    ruff_clean(tmp_path / "train_torch.py")


@pytest.mark.torch
@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "epochs"),
    [
        ("digits_cnn", 2),
        ("lstm_sunspots", 2),
        ("conv1d_sunspots", 2),
        ("text_embedding", 2),
        ("resnet_digits", 1),
    ],
)
def test_slow_model_examples_train_as_duofit(name: str, epochs: int, tmp_path: Path) -> None:
    _check_same(short_spec(name, epochs), tmp_path)
    ruff_clean(tmp_path / "train_torch.py")


SEED_FEATURES = seed_features("tanh")


@pytest.mark.torch
@pytest.mark.parametrize(
    "optimizer",
    [
        {
            "type": "sgd",
            "lr": 0.05,
            "momentum": 0.9,
            "nesterov": True,
            "clipnorm": 0.5,
            "weight_decay": 0.01,
            "decay_kind": "decoupled",
            "schedule": {"type": "step", "step_size": 1, "gamma": 0.5},
        },
        pytest.param(
            {
                "type": "rmsprop",
                "lr": 0.01,
                "centered": True,
                "momentum": 0.5,
                "clipvalue": 0.1,
                "weight_decay": 0.001,
                "schedule": {"type": "cosine", "t_max": 2},
            },
            marks=pytest.mark.slow,
            id="rmsprop",
        ),
    ],
    ids=["sgd", "rmsprop"],
)
def test_training_features_follow_duofit(optimizer: dict, tmp_path: Path) -> None:
    train = {
        "epochs": 3,
        "dtype": "float64",
        "batch_size": 64,
        "early_stopping": {"monitor": "val_f1", "patience": 1, "min_delta": 0.5},
    }
    spec = variant(load_spec(ROOT / "examples" / "seed.toml"), optimizer=optimizer, train=train, **SEED_FEATURES)
    got = _check_same(spec, tmp_path)
    assert len(got["history"]) == 2  # stopped early, as duofit's recorder decides
    ruff_clean(tmp_path / "train_torch.py")


@pytest.mark.torch
@pytest.mark.parametrize(
    "optimizer",
    [
        {
            "type": "adam",
            "lr": 0.01,
            "clipnorm": 0.5,
            "amsgrad": True,
            "schedule": {"type": "exponential", "gamma": 0.9},
        },
        pytest.param({"type": "adamw", "lr": 0.01, "weight_decay": 0.05}, marks=pytest.mark.slow, id="adamw"),
        {"type": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.01},
        pytest.param(
            {"type": "rmsprop", "lr": 0.01, "momentum": 0.5, "centered": True, "clipnorm": 1.0},
            marks=pytest.mark.slow,
            id="rmsprop",
        ),
    ],
    ids=["adam", "adamw", "sgd", "rmsprop"],
)
def test_strict_export_writes_the_update_and_matches_strict_run(optimizer: dict, tmp_path: Path) -> None:
    base = load_spec(ROOT / "examples" / "seed.toml")
    spec = variant(base, optimizer=optimizer, train={"epochs": 2, "batch_size": 64})  # float32: strict makes it float64
    strict_spec = spec.model_copy(update={"train": spec.train.model_copy(update={"dtype": "float64"})})
    write(spec, tmp_path / "train_torch.py", strict=True)
    source = (tmp_path / "train_torch.py").read_text()
    assert "Strict mode: this script uses duofit's strict (parity) formulas" in source.split('"""')[1]
    assert "class Strict" in source and "optimizer = torch.optim" not in source
    assert "DTYPE = torch.float64" in source
    ruff_clean(tmp_path / "train_torch.py")
    _check_same(strict_spec, tmp_path, strict=True)


# ---- framework-free: the script's text ------------------------------------------------------


@pytest.mark.parametrize("strict", [False, True], ids=["plain", "strict"])
def test_scripts_are_ruff_clean_and_name_real_commands(strict: bool, tmp_path: Path) -> None:
    for name, spec in lint_specs().items():
        script = tmp_path / f"{name}.py"
        write(spec, script, strict=strict)
        ruff_clean(script)
        assert assert_commands_exist(script.read_text())


def test_probability_loss_is_assigned_after_its_function(tmp_path: Path) -> None:
    write(probability_spec("binary"), tmp_path / "train_torch.py", strict=False)
    text = (tmp_path / "train_torch.py").read_text()
    assert text.index("def bce_on_probabilities(") < text.index("LOSS = bce_on_probabilities")
    assert "cce_on_probabilities" not in text  # only the loss the spec uses


@pytest.mark.parametrize(
    ("layers", "path"),
    [
        ([{"type": "max_pool2d", "padding": "same"}], "model.layers[1].padding"),
        (
            [{"type": "bidirectional", "layer": {"type": "gru", "units": 4, "reset_after": False}}],
            "model.layers[1].layer.reset_after",
        ),
    ],
)
def test_unsupported_layers_are_refused_by_field(layers: list, path: str, tmp_path: Path) -> None:
    first = (
        {"type": "conv2d", "filters": 2, "kernel_size": 3}
        if "pool" in str(layers)
        else {"type": "gru", "units": 4, "return_sequences": True}
    )
    data = (
        {"kind": "digits", "image_shape": [8, 8, 1]}
        if "pool" in str(layers)
        else {"kind": "digits", "sequence_shape": [8, 8]}
    )
    spec = load_spec(
        {
            "data": data,
            "model": {"layers": [first, *layers, {"type": "flatten"}, {"type": "dense", "units": 10}]},
            "loss": {"type": "categorical_crossentropy", "from_logits": True},
        }
    )
    with pytest.raises(SpecError, match=REFUSAL) as info:
        write(spec, tmp_path / "train_torch.py", strict=False)
    assert info.value.path == path
    assert not list(tmp_path.iterdir())  # nothing written half-way


def test_unsupported_settings_are_refused_by_field(tmp_path: Path) -> None:
    base = load_spec(ROOT / "examples" / "seed.toml")
    plateau = variant(base, optimizer={"type": "adam", "schedule": {"type": "plateau"}})
    with pytest.raises(SpecError, match=REFUSAL) as info:
        write(plateau, tmp_path / "train_torch.py", strict=False)
    assert "the 'plateau' schedule" in str(info.value)
    assert info.value.path == "optimizer.schedule.type"
    dropout_rnn = load_spec(
        {
            "data": {"kind": "digits", "sequence_shape": [8, 8]},
            "model": {
                "layers": [
                    {"type": "dropout", "rate": 0.1},
                    {"type": "lstm", "units": 4},
                    {"type": "dense", "units": 10},
                ]
            },
            "loss": {"type": "categorical_crossentropy", "from_logits": True},
        }
    )
    with pytest.raises(SpecError, match=REFUSAL) as info:
        write(dropout_rnn, tmp_path / "train_torch.py", strict=False)
    assert "dropout together with a lstm layer yet" in str(info.value)
    assert info.value.path == "model.layers[1].type"
    assert not list(tmp_path.iterdir())


@pytest.mark.torch
@pytest.mark.parametrize(
    ("task", "labels"),
    [("binary", "integer"), ("multiclass", "integer"), pytest.param("multiclass", "one_hot", marks=pytest.mark.slow)],
    ids=["binary", "multiclass", "one_hot"],
)
def test_probability_losses_train_as_duofit(task: str, labels: str, tmp_path: Path) -> None:
    _check_same(probability_spec(task, labels), tmp_path)


@pytest.mark.torch
@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"type": "lstm", "merge": "concat"}, {"type": "gru", "merge": "sum"}),
        pytest.param(
            {"type": "simple_rnn", "merge": "sum"}, {"type": "lstm", "merge": "concat"}, marks=pytest.mark.slow
        ),
    ],
    ids=["lstm-gru", "rnn-lstm"],
)
def test_bidirectional_layers_train_as_duofit(first: dict, second: dict, tmp_path: Path) -> None:
    spec = bidirectional_spec(first, second, epochs=2)
    _check_same(spec, tmp_path)
    text = (tmp_path / "train_torch.py").read_text()
    assert text.count("bidirectional=True") == 2 and "weight_ih_l0_reverse.copy_" in text
