"""Dotted field paths, --set values and search-space files: good input and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from duofit.common.errors import SpecError
from duofit.common.loader import load_spec
from duofit.common.paths import format_path, parse_path, parse_values, path_from_param, with_values
from duofit.tuning.space import DEFAULT_GRID_POINTS, load_space

from .conftest import SEED, TINY_SPACE


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("optimizer.lr", ("optimizer", "lr")),
        ("model.layers[0].units", ("model", "layers", 0, "units")),
        ("data.params.n_samples", ("data", "params", "n_samples")),
    ],
)
def test_paths_round_trip(text: str, parts: tuple) -> None:
    assert parse_path(text) == parts
    assert format_path(parts) == text


def test_sklearn_names_become_paths() -> None:
    assert path_from_param("model__layers__1__kernel_init__name") == "model.layers[1].kernel_init.name"


@pytest.mark.parametrize("bad", ["", "optimizer..lr", "model.layers[x].units", "1abc"])
def test_malformed_paths(bad: str) -> None:
    with pytest.raises(SpecError, match="field path"):
        parse_path(bad)


def test_with_values_sets_fields_and_keeps_the_rest() -> None:
    spec = with_values(SEED, {"optimizer.lr": 0.1, "model.layers[0].units": 4, "train.early_stopping.patience": 2})
    assert spec.optimizer.lr == 0.1 and spec.optimizer.type == "adam"
    assert spec.model.layers[0].units == 4 and spec.model.layers[1].units == 1
    assert spec.train.early_stopping is not None and spec.train.early_stopping.patience == 2
    assert spec.train.epochs == load_spec(SEED).train.epochs


def test_with_values_switches_a_union_type() -> None:
    spec = with_values(SEED, {"optimizer.type": "sgd", "optimizer.momentum": 0.9})
    assert spec.optimizer.type == "sgd" and spec.optimizer.momentum == 0.9 and spec.optimizer.lr == 0.01


@pytest.mark.parametrize(
    ("values", "needles"),
    [
        ({"optimizer.lrr": 0.1}, ["optimizer.lrr", "unknown key", "lr"]),
        ({"optimizer.momentum": 0.9}, ["optimizer.momentum", "allowed keys here", "beta1"]),
        ({"model.layers[5].units": 3}, ["model.layers[5]", "index out of range", "2 entries"]),
        ({"optimizer.lr": -1}, ["optimizer.lr", "greater than 0"]),
        ({"optimizer.lr.x": 1}, ["optimizer.lr", "plain value"]),
    ],
)
def test_with_values_errors_name_the_field(values: dict, needles: list[str]) -> None:
    with pytest.raises(SpecError) as info:
        with_values(SEED, values, source="--set")
    for needle in needles:
        assert needle in str(info.value)


def test_parse_values() -> None:
    assert parse_values("optimizer.lr=0.1,0.01,0.001") == ("optimizer.lr", [0.1, 0.01, 0.001])
    assert parse_values("optimizer.type=sgd,adam") == ("optimizer.type", ["sgd", "adam"])
    assert parse_values("train.shuffle=true") == ("train.shuffle", [True])
    with pytest.raises(SpecError, match="FIELD=VALUE"):
        parse_values("optimizer.lr")


def test_example_space_loads_against_the_seed_spec() -> None:
    space = load_space("examples/space.toml", load_spec(SEED))
    assert space.fields == ["optimizer.lr", "model.layers[0].units", "train.batch_size"]
    assert space.metric == "accuracy"
    assert space.grid() == {
        "optimizer.lr": [0.1, 0.01, 0.001],
        "model.layers[0].units": [4, 16],
        "train.batch_size": [16, 32, 64],
    }
    assert space.grid_size() == 18


def test_default_float_grid_is_log_spaced() -> None:
    space = load_space({"params": [{"field": "optimizer.lr", "type": "float", "low": 1e-4, "high": 1, "log": True}]})
    points = space.grid()["optimizer.lr"]
    assert len(points) == DEFAULT_GRID_POINTS
    assert points[0] == pytest.approx(1e-4) and points[-1] == pytest.approx(1.0) and points[2] == pytest.approx(1e-2)


@pytest.mark.parametrize(
    ("param", "needles"),
    [
        ({"field": "optimizer.lrr", "type": "float", "low": 0.1, "high": 1}, ["params[0]", "optimizer.lrr", "unknown"]),
        ({"field": "optimizer.lr", "type": "float", "low": 0, "high": 1}, ["params[0]", "greater than 0"]),
        ({"field": "optimizer.lr", "type": "float", "low": 1, "high": 0.1}, ["params[0]", "low must be < high"]),
        ({"field": "optimizer.lr", "type": "float", "low": 0, "high": 1, "log": True}, ["log = true needs low > 0"]),
        ({"field": "optimizer.lr", "type": "float", "low": 0.1, "high": 1, "grid": [2]}, ["outside [low, high]"]),
        ({"field": "optimizer.lr", "type": "decimal", "low": 0.1, "high": 1}, ["params[0]", "'float', 'int'"]),
        ({"field": "train.batch_size", "type": "categorical", "choices": [16, 16]}, ["listed twice"]),
        ({"field": "train.batch_size", "type": "int", "low": 1, "high": 8, "lo": 2}, ["params[0].lo", "unknown"]),
        ({"field": "model.layers[9].units", "type": "int", "low": 1, "high": 8}, ["index out of range"]),
        ({"field": "model.layers[].units", "type": "int", "low": 1, "high": 8}, ["params[0].field"]),
    ],
)
def test_bad_space_entries(param: dict, needles: list[str], tmp_path: Path) -> None:
    path = tmp_path / "space.json"
    path.write_text(json.dumps({"params": [param]}), encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_space(path, load_spec(SEED))
    for needle in needles:
        assert needle in str(info.value), str(info.value)


def test_space_suggests_through_optuna() -> None:
    import optuna

    space = load_space(TINY_SPACE)
    trial = optuna.trial.FixedTrial({"optimizer.lr": 0.01, "model.layers[0].units": 4})
    assert space.suggest(trial) == {"optimizer.lr": 0.01, "model.layers[0].units": 4}
