"""Cross-validation: folds without leakage, fresh weights per fold, both backends, CSV, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from duofit.cli import main
from duofit.common.errors import DataError, SpecError
from duofit.common.init import initial_weights
from duofit.common.loader import load_spec
from duofit.tuning.cv import cross_validate, fold_spec
from duofit.tuning.folds import make_folds, pooled_data

from .conftest import tiny_seed

# Same spec, same folds, same initial weights: torch and Keras differ only by float32 rounding
# in their kernels. A held-out fold here has ~67 samples: allow one sample's worth of disagreement.
METRIC_PARITY = 1 / 60


def test_folds_partition_the_data_and_keep_class_balance() -> None:
    spec = load_spec(tiny_seed())
    folds = make_folds(spec, 5, seed=3)
    y = pooled_data(spec).y
    held_out = np.concatenate([f.test_idx for f in folds])
    assert sorted(held_out.tolist()) == list(range(len(y)))  # every sample held out exactly once
    for fold in folds:
        assert not set(fold.train_idx) & set(fold.test_idx)
        assert abs(y[fold.test_idx].mean() - y.mean()) < 0.05  # StratifiedKFold
    again = make_folds(spec, 5, seed=3)
    assert all(np.array_equal(a.test_idx, b.test_idx) for a, b in zip(folds, again, strict=True))  # seeded


def test_scaler_is_fitted_inside_each_fold_only() -> None:
    """No leakage: each fold's scaler sees its training part and nothing else."""
    spec = load_spec(tiny_seed())
    raw = pooled_data(spec).x
    for fold in make_folds(spec, 4, seed=0):
        train = raw[fold.train_idx]
        np.testing.assert_allclose(fold.scaler_mean, train.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(fold.scaler_scale, train.std(axis=0), rtol=1e-12)
        expected = (raw[fold.test_idx] - train.mean(axis=0)) / train.std(axis=0)
        np.testing.assert_allclose(fold.dataset.x_test, expected, rtol=1e-12)
        np.testing.assert_allclose(fold.dataset.x_train.mean(axis=0), 0, atol=1e-12)
        assert not np.allclose(fold.dataset.x_test.mean(axis=0), 0, atol=1e-6)  # held-out stats were not used


def test_poisoning_held_out_samples_changes_nothing_in_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace fold 0's held-out features by huge values: its training arrays stay identical."""
    import duofit.tuning.folds as folds_mod

    spec = load_spec(tiny_seed())
    clean = make_folds(spec, 4, seed=0)
    real = folds_mod.pooled_data

    def poisoned(s):  # the same pooled data with fold 0's held-out rows blown up
        data = real(s)
        x = data.x.copy()
        x[clean[0].test_idx] = 1e6
        return folds_mod.PooledData(x, data.y, data.task, data.n_classes, data.classes, data.feature_names)

    monkeypatch.setattr(folds_mod, "pooled_data", poisoned)
    dirty = make_folds(spec, 4, seed=0)
    np.testing.assert_array_equal(dirty[0].dataset.x_train, clean[0].dataset.x_train)
    np.testing.assert_array_equal(dirty[0].scaler_mean, clean[0].scaler_mean)
    assert not np.array_equal(dirty[1].scaler_mean, clean[1].scaler_mean)  # there they are training data


def test_val_size_holds_validation_out_of_the_fold_training_part() -> None:
    doc = tiny_seed()
    doc["data"]["val_size"] = 0.25
    folds = make_folds(load_spec(doc), 4, seed=0)
    for fold in folds:
        assert not fold.dataset.val_is_test
        assert not set(fold.val_idx) & (set(fold.train_idx) | set(fold.test_idx))
        assert len(fold.val_idx) == pytest.approx(0.25 * (len(fold.train_idx) + len(fold.val_idx)), abs=1)


def test_each_fold_starts_from_fresh_shared_weights() -> None:
    spec = load_spec(tiny_seed())
    w0 = initial_weights(fold_spec(spec, 0), 2)
    w1 = initial_weights(fold_spec(spec, 1), 2)
    assert fold_spec(spec, 1).train.seed == spec.train.seed + 1
    assert not np.array_equal(w0["layers.0.kernel"], w1["layers.0.kernel"])
    np.testing.assert_array_equal(w0["layers.0.kernel"], initial_weights(spec, 2)["layers.0.kernel"])


def test_bad_fold_counts() -> None:
    spec = load_spec(tiny_seed(n_samples=20))
    with pytest.raises(SpecError, match="2 <= folds"):
        make_folds(spec, 1)
    with pytest.raises(DataError, match="smallest class"):
        make_folds(spec, 15)


@pytest.mark.torch
def test_cv_in_process_table_and_files(tmp_path: Path) -> None:
    cv = cross_validate(tiny_seed(), 3, ["torch"], isolate=False, out=tmp_path)
    folds = pd.read_csv(tmp_path / "cv_folds.csv")
    summary = pd.read_csv(tmp_path / "cv_summary.csv")
    assert list(folds["fold"]) == [1, 2, 3] and list(folds["init_seed"]) == [0, 1, 2]
    acc = summary[(summary["metric"] == "accuracy")].iloc[0]
    assert acc["mean"] == pytest.approx(folds["accuracy"].mean())
    assert acc["std"] == pytest.approx(folds["accuracy"].std(ddof=0))
    assert (tmp_path / "torch" / "fold_3" / "history.csv").exists()
    assert "±" in cv.table().loc["accuracy", "torch"]


@pytest.mark.parity
@pytest.mark.slow
def test_cv_cli_both_backends_in_worker_processes(
    tiny_spec_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cv"
    # the two reference backends (every installed one is the default; the `all` env has four)
    code = main(["cv", str(tiny_spec_file), "--folds", "3", "--backends", "torch,keras", "--out", str(out), "--quiet"])
    stdout = capsys.readouterr().out
    assert code == 0, stdout
    assert "mean ± std over 3 folds" in stdout and "StratifiedKFold" in stdout
    table = pd.read_csv(out / "cv_folds.csv")
    assert sorted(set(table["backend"])) == ["keras", "torch"] and len(table) == 6
    pivot = table.pivot(index="fold", columns="backend", values="accuracy")
    assert np.all(np.abs(pivot["torch"] - pivot["keras"]) <= METRIC_PARITY)
    env = json.loads((out / "keras" / "fold_1" / "result.json").read_text())["environment"]
    assert env["backend"] == "keras"


def test_a_fold_that_cannot_hold_out_validation_data_is_named() -> None:
    spec = load_spec(
        {
            "data": {"kind": "iris", "test_size": 0.01, "val_size": 0.98},
            "model": {"layers": [{"type": "dense", "units": 3}]},
            "loss": {"type": "categorical_crossentropy", "from_logits": True},
        }
    )
    with pytest.raises(DataError) as info:
        make_folds(spec, n_folds=5)
    assert info.value.path == "data.val_size"
    assert "cannot hold out validation data in fold 0 from 120 training samples" in str(info.value)
