"""Regression data: a standardized target, several target columns, and id columns among CSV features.

A standardized target trains the model on scaled values and reports test predictions and
metrics in the original units, checked against scikit-learn on the same numbers. Several
target columns train one output unit each. A feature column that is a row id warns.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_regression
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import duofit
from duofit import DataError, SpecError
from duofit.cli import main
from duofit.common.data import load_dataset
from duofit.common.data.csvfile import MIN_ID_ROWS, id_columns
from duofit.common.errors import DataWarning
from duofit.common.result import RunResult

GEN = {"n_samples": 120, "n_features": 4, "noise": 1.0, "random_state": 0}


def _spec(data: dict[str, Any], units: int = 1, epochs: int = 3, metrics: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "metrics": list(metrics or ("mse", "rmse", "mae", "r2")),
        "data": data,
        "model": {"layers": [{"type": "dense", "units": 8, "activation": "relu"}, {"type": "dense", "units": units}]},
        "loss": {"type": "mse"},
        "optimizer": {"type": "adam", "lr": 0.05},
        "train": {"epochs": epochs, "batch_size": 32, "dtype": "float64"},
    }


def _generated(n_targets: int = 1, **data: Any) -> dict[str, Any]:
    return {"kind": "make_regression", "params": {**GEN, "n_targets": n_targets}, **data}


def _csv(tmp_path: Path, n: int = 60, **extra: Any) -> Path:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=n), rng.normal(size=n)
    cols = {"a": a, "b": b, "y1": 300 + 50 * a + rng.normal(size=n), "y2": -7 + 0.1 * b, **extra}
    path = tmp_path / "data.csv"
    pd.DataFrame(cols).to_csv(path, index=False)
    return path


def _data_warnings(spec: dict[str, Any]) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_dataset(duofit.load_spec(spec))
    return [str(w.message) for w in caught if issubclass(w.category, DataWarning)]


# --------------------------------------------------------------------------- standardize_target
def test_target_scaler_is_fitted_on_the_training_targets_only() -> None:
    """The same split as sklearn's train_test_split; the scaler learns the training targets only."""
    x, y = make_regression(**GEN)
    _, _, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=0)
    ds = load_dataset(duofit.load_spec(_spec(_generated(standardize_target=True))))
    reference = StandardScaler().fit(y_tr.reshape(-1, 1))
    np.testing.assert_allclose(ds.target_scaler.mean_, reference.mean_)
    np.testing.assert_allclose(ds.y_train, reference.transform(y_tr.reshape(-1, 1))[:, 0])
    np.testing.assert_allclose(ds.y_test, reference.transform(y_te.reshape(-1, 1))[:, 0])
    np.testing.assert_allclose(ds.in_target_units(ds.y_test), y_te)
    assert abs(ds.y_test.mean()) > 1e-3  # the test targets did not take part in the fit
    plain = load_dataset(duofit.load_spec(_spec(_generated())))
    assert plain.target_scaler is None and plain.in_target_units(plain.y_test) is plain.y_test


def test_standardize_target_is_refused_for_a_classifier() -> None:
    spec = {
        "data": {"kind": "iris", "standardize_target": True},
        "model": {"layers": [{"type": "dense", "units": 3}]},
        "loss": {"type": "categorical_crossentropy"},
    }
    with pytest.raises(SpecError) as info:
        duofit.load_spec(spec)
    assert info.value.path == "data.standardize_target"
    assert "'mse', 'mae' or 'huber'" in str(info.value)


def test_cross_validation_folds_carry_their_own_target_scaler() -> None:
    from duofit.tuning.folds import make_folds

    spec = duofit.load_spec(_spec(_generated(standardize_target=True)))
    for fold in make_folds(spec, n_folds=3, seed=0):
        ds = fold.dataset
        assert ds.target_scaler is not None
        np.testing.assert_allclose([ds.y_train.mean(), ds.y_train.std()], [0.0, 1.0], atol=1e-12)
        assert abs(ds.y_test.mean()) > 1e-3


@pytest.mark.torch
def test_metrics_and_predictions_are_in_the_original_units(tmp_path: Path) -> None:
    """Metrics equal sklearn's on the inverse-transformed predictions; predictions.npz holds them."""
    spec = _spec(_generated(standardize_target=True), epochs=5)
    res = duofit.run(spec, backend="torch", out=tmp_path / "run")
    ds = load_dataset(duofit.load_spec(spec))
    raw = load_dataset(duofit.load_spec(_spec(_generated())))
    np.testing.assert_allclose(res.y_test, raw.y_test)  # the original units, not the scaled ones
    pred = res.predictions[:, 0]
    assert res.metrics["r2"] == pytest.approx(r2_score(raw.y_test, pred), abs=1e-12)
    assert res.metrics["mse"] == pytest.approx(mean_squared_error(raw.y_test, pred), rel=1e-12)
    assert res.metrics["mae"] == pytest.approx(mean_absolute_error(raw.y_test, pred), rel=1e-12)
    scaled_pred = ds.target_scaler.transform(res.predictions)[:, 0]
    # the scaled predictions are the model's own outputs: their error is the last validation loss
    assert float(np.mean((scaled_pred - ds.y_test) ** 2)) == pytest.approx(res.history["val_loss"].iloc[-1], rel=1e-6)
    saved = RunResult.load(tmp_path / "run")
    np.testing.assert_allclose(saved.predictions, res.predictions)
    np.testing.assert_allclose(saved.y_test, raw.y_test)


@pytest.mark.torch
def test_convert_compares_in_the_original_units(tmp_path: Path) -> None:
    from duofit.parity.convert import convert

    duofit.run(_spec(_generated(standardize_target=True)), backend="torch", out=tmp_path / "run")
    manifest = convert(tmp_path / "run", "torch", out=tmp_path / "converted")
    assert manifest["max_rel_diff"] <= manifest["tolerance"]


# --------------------------------------------------------------------------- several targets
def test_several_csv_target_columns(tmp_path: Path) -> None:
    path = _csv(tmp_path)
    ds = load_dataset(duofit.load_spec(_spec({"kind": "csv", "path": str(path), "target": ["y1", "y2"]}, units=2)))
    assert ds.y_train.shape == (48, 2) and ds.feature_names == ("a", "b")
    with pytest.raises(DataError) as info:
        load_dataset(duofit.load_spec(_spec({"kind": "csv", "path": str(path), "target": ["y1", "y2"]}, units=1)))
    assert info.value.path == "model.layers[1].units" and "set units = 2" in str(info.value)


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"kind": "csv", "path": "d.csv", "target": ["y1", "y1"]}, "data.target"),
        ({"kind": "csv", "path": "d.csv", "target": []}, "data.target"),
    ],
)
def test_bad_target_lists(data: dict[str, Any], path: str) -> None:
    with pytest.raises(SpecError) as info:
        duofit.load_spec(_spec(data))
    assert info.value.path == path


def test_several_targets_need_a_regression_loss() -> None:
    spec = _spec({"kind": "csv", "path": "d.csv", "target": ["y1", "y2"]}, metrics=("accuracy",))
    spec["loss"] = {"type": "binary_crossentropy"}
    with pytest.raises(SpecError) as info:
        duofit.load_spec(spec)
    assert info.value.path == "data.target" and "multi-output regression" in str(info.value)


def _assert_sklearn_metrics(metrics: dict[str, float], y: np.ndarray, pred: np.ndarray) -> None:
    """r2 / mse / mae as scikit-learn's uniform average over the outputs."""
    assert metrics["r2"] == pytest.approx(r2_score(y, pred, multioutput="uniform_average"), abs=1e-12)
    assert metrics["mse"] == pytest.approx(mean_squared_error(y, pred, multioutput="uniform_average"), rel=1e-12)
    assert metrics["mae"] == pytest.approx(mean_absolute_error(y, pred, multioutput="uniform_average"), rel=1e-12)


@pytest.mark.torch
def test_multi_output_generated_data_on_torch() -> None:
    res = duofit.run(_spec(_generated(n_targets=3), units=3), backend="torch")
    assert res.predictions.shape == (24, 3) and res.y_test.shape == (24, 3)
    _assert_sklearn_metrics(res.metrics, res.y_test, res.predictions)
    assert res.diagnostics["baseline_loss"] > res.history["loss"].iloc[-1]  # it learned something


@pytest.mark.torch
def test_multi_output_csv_with_standardized_targets_on_torch(tmp_path: Path) -> None:
    data = {"kind": "csv", "path": str(_csv(tmp_path)), "target": ["y1", "y2"], "standardize_target": True}
    res = duofit.run(_spec(data, units=2, epochs=20), backend="torch")
    assert res.predictions.shape == (12, 2)
    assert 250 < res.y_test[:, 0].mean() < 350  # y1 in its own units
    _assert_sklearn_metrics(res.metrics, res.y_test, res.predictions)
    assert res.metrics["r2"] > 0.5


@pytest.mark.keras
def test_multi_output_with_standardized_targets_on_keras() -> None:
    res = duofit.run(_spec(_generated(n_targets=2, standardize_target=True), units=2), backend="keras")
    raw = load_dataset(duofit.load_spec(_spec(_generated(n_targets=2), units=2)))
    assert res.predictions.shape == (24, 2)
    np.testing.assert_allclose(res.y_test, raw.y_test)
    _assert_sklearn_metrics(res.metrics, res.y_test, res.predictions)


@pytest.mark.torch
def test_regressor_estimator_with_several_standardized_targets() -> None:
    from duofit.sklearn import DuofitRegressor

    x, y = make_regression(n_samples=120, n_features=4, n_targets=2, noise=1.0, random_state=0)
    y = y + np.array([1000.0, -50.0])
    reg = DuofitRegressor(backend="torch", train__epochs=30, optimizer__lr=0.05, data__standardize_target=True)
    pred = reg.fit(x, y).predict(x)
    assert pred.shape == (120, 2) and reg.n_outputs_ == 2
    np.testing.assert_allclose(reg.target_scaler_.mean_, y.mean(axis=0))
    assert reg.score(x, y) == pytest.approx(r2_score(y, pred))
    assert reg.score(x, y) > 0.8  # in y's units: a model left in scaled units would score far below 0
    one = DuofitRegressor(backend="torch", train__epochs=2).fit(x, y[:, 0])
    assert one.predict(x).shape == (120,)


# --------------------------------------------------------------------------- id columns
def test_an_integer_id_column_warns(tmp_path: Path) -> None:
    ids = np.random.default_rng(1).permutation(60) + 1000
    path = _csv(tmp_path, customer_id=ids)
    found = _data_warnings(_spec({"kind": "csv", "path": str(path), "target": "y1"}))
    assert len(found) == 1
    assert "column 'customer_id' has a different value in every row (an id?)" in found[0]
    assert "data.features = ['a', 'b', 'y2']" in found[0]
    quiet = _spec({"kind": "csv", "path": str(path), "target": "y1", "features": ["a", "b"]})
    assert _data_warnings(quiet) == []  # only feature columns are judged


def test_what_is_and_is_not_an_id() -> None:
    n = MIN_ID_ROWS
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "row": np.arange(n),  # an index
            "shuffled": rng.permutation(n) + 7,  # consecutive, any order
            "timestamp": np.cumsum(rng.integers(1, 1000, n)),  # sorted, gaps
            "measured": rng.normal(size=n),  # continuous: distinct by nature
            "income": rng.permutation(n) * 1000 + rng.integers(0, 999, n),  # whole numbers, unsorted, gaps
            "count": rng.integers(0, 3, n),  # repeats
        }
    )
    assert id_columns(frame, list(frame.columns)) == ["row", "shuffled", "timestamp"]
    assert id_columns(frame.head(n - 1), list(frame.columns)) == []  # too few rows to judge


def test_unique_strings_are_named_as_an_id(tmp_path: Path) -> None:
    path = _csv(tmp_path, name=[f"c{i}" for i in range(60)])
    with pytest.raises(DataError) as info:
        load_dataset(duofit.load_spec(_spec({"kind": "csv", "path": str(path), "target": "y1"})))
    assert info.value.path == "data.features" and "name: a different value in every row, an id?" in str(info.value)


def test_validate_prints_the_id_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _csv(tmp_path, row=np.arange(60))
    spec = tmp_path / "spec.json"
    doc = _spec({"kind": "csv", "path": str(path), "target": "y1"})
    spec.write_text(duofit.load_spec(doc).model_dump_json(), encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        code = main(["validate", str(spec)])
    err = capsys.readouterr().err
    assert code == 0
    assert "warning: data.features: column 'row' has a different value in every row (an id?)" in err
    assert "DataWarning" not in err  # printed as a plain line, no file and line number


def test_the_multi_output_example_has_two_standardized_targets() -> None:
    ds = load_dataset(duofit.load_spec("examples/regression_multi.toml"))
    assert ds.y_train.shape == (800, 2) and ds.target_scaler is not None
    assert np.all(np.abs(ds.in_target_units(ds.y_test).mean(axis=0) - 1000) < 100)  # make_regression's bias


@pytest.mark.torch
def test_run_says_its_losses_are_on_the_standardized_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(duofit.load_spec(_spec(_generated(standardize_target=True))).model_dump_json(), encoding="utf-8")
    code = main(["run", str(spec), "--backend", "torch", "--out", str(tmp_path / "o"), "-q"])
    out = capsys.readouterr().out
    assert code == 0 and "validation loss" in out and "(on the standardized target)" in out


@pytest.mark.torch
def test_compare_shows_a_data_warning_once(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """The parent reads the data first and warns; its backend processes stay quiet about it."""
    path = _csv(tmp_path, row=np.arange(60))
    spec = tmp_path / "spec.json"
    doc = _spec({"kind": "csv", "path": str(path), "target": "y1"}, epochs=1)
    spec.write_text(duofit.load_spec(doc).model_dump_json(), encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        code = main(["compare", str(spec), "--backends", "torch", "--out", str(tmp_path / "o"), "-q"])
    err = capfd.readouterr().err
    assert code == 0 and err.count("column 'row' has a different value in every row") == 1, err
