from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from duofit.backends.base import make_plan
from duofit.common.data import batch_order, load_dataset, targets_for_loss
from duofit.common.loader import load_spec


def test_seed_data_is_the_tutorials_data() -> None:
    """Same arrays as the tutorial's code: make_classification -> split(42) -> scaler on train."""
    x, y = make_classification(
        n_samples=1000, n_features=2, n_informative=2, n_redundant=0, n_clusters_per_class=1, random_state=42
    )
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=42)
    scaler = StandardScaler().fit(x_tr)
    ds = load_dataset(load_spec("examples/seed.toml"))
    np.testing.assert_array_equal(ds.x_train, scaler.transform(x_tr))
    np.testing.assert_array_equal(ds.x_test, scaler.transform(x_te))
    np.testing.assert_array_equal(ds.y_train, y_tr)
    np.testing.assert_array_equal(ds.y_test, y_te)
    assert ds.val_is_test and ds.task == "binary" and ds.n_classes == 2


def test_scaler_is_fitted_on_training_part_only() -> None:
    ds = load_dataset(load_spec("examples/seed.toml"))
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(ds.x_train.std(axis=0), 1, atol=1e-12)
    assert np.abs(ds.x_test.mean(axis=0)).max() > 1e-3  # the test part was not used to fit


def test_validation_split_and_stratify() -> None:
    spec = load_spec(
        {
            "data": {"kind": "iris", "val_size": 0.2, "stratify": True, "split_seed": 3},
            "model": {"layers": [{"type": "dense", "units": 3}]},
            "loss": {"type": "categorical_crossentropy"},
        }
    )
    ds = load_dataset(spec)
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (90, 30, 30)
    assert not ds.val_is_test
    assert np.bincount(ds.y_val).tolist() == [10, 10, 10]
    assert np.bincount(ds.y_test).tolist() == [10, 10, 10]


def test_batch_order_is_seeded_permutation_per_epoch() -> None:
    a = batch_order(50, 4, seed=7)
    assert a.shape == (4, 50)
    for row in a:
        assert sorted(row.tolist()) == list(range(50))
    assert not np.array_equal(a[0], a[1])
    np.testing.assert_array_equal(a, batch_order(50, 4, seed=7))
    assert not np.array_equal(a, batch_order(50, 4, seed=8))
    np.testing.assert_array_equal(batch_order(5, 2, seed=0, shuffle=False), [[0, 1, 2, 3, 4]] * 2)


def test_plan_has_partial_last_batch() -> None:
    spec = load_spec("examples/seed.toml")
    plan = make_plan(spec, load_dataset(spec))
    assert plan.steps_per_epoch == 25  # 800 / 32
    spec = load_spec({**spec.model_dump(), "train": {**spec.train.model_dump(), "batch_size": 30}})
    plan = make_plan(spec, load_dataset(spec))
    assert plan.steps_per_epoch == 27  # 26 full batches of 30 and one of 20


@pytest.mark.parametrize(
    ("loss", "expect_shape", "kind"),
    [
        ({"type": "categorical_crossentropy", "labels": "integer"}, (4,), "i"),
        ({"type": "categorical_crossentropy", "labels": "one_hot"}, (4, 3), "f"),
    ],
)
def test_targets_for_loss(loss: dict, expect_shape: tuple, kind: str) -> None:
    spec = load_spec({"data": {"kind": "iris"}, "model": {"layers": [{"type": "dense", "units": 3}]}, "loss": loss})
    t = targets_for_loss(spec, np.array([0, 1, 2, 1]), 3)
    assert t.shape == expect_shape and t.dtype.kind == kind


def test_csv_data(tmp_path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 3))
    y = np.where(x[:, 0] > 0, "yes", "no")
    lines = ["a,b,c,label"] + [f"{r[0]},{r[1]},{r[2]},{t}" for r, t in zip(x, y, strict=True)]
    (tmp_path / "d.csv").write_text("\n".join(lines))
    (tmp_path / "s.toml").write_text(
        'metrics = ["accuracy"]\n[data]\nkind = "csv"\npath = "d.csv"\ntarget = "label"\nfeatures = ["a", "b"]\n'
        '[[model.layers]]\ntype = "dense"\nunits = 1\n[loss]\ntype = "binary_crossentropy"\nfrom_logits = true\n'
    )
    ds = load_dataset(load_spec(tmp_path / "s.toml"))  # relative path resolved next to the spec
    assert ds.n_features == 2 and ds.task == "binary"
    assert ds.classes.tolist() == ["no", "yes"]
    assert ds.feature_names == ("a", "b")
