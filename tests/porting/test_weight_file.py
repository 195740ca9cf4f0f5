"""``model.weights``: initial weights read from a file, checked against the model traced on the data."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from duofit.common.data import load_dataset
from duofit.common.errors import DataError, SpecError
from duofit.common.imported import ImportedModel
from duofit.common.init import initial_weights
from duofit.common.loader import load_spec
from duofit.porting import assemble, check_against_data

IRIS = {
    "data": {"kind": "iris"},
    "model": {"layers": [{"type": "dense", "units": 5, "activation": "relu"}, {"type": "dense", "units": 3}]},
    "loss": {"type": "categorical_crossentropy", "from_logits": True},
}


def _drawn() -> dict[str, np.ndarray]:
    return initial_weights(load_spec(IRIS), 4)


def _with_file(tmp_path: Path, arrays: dict[str, np.ndarray], name: str = "w.npz") -> dict:
    np.savez(tmp_path / name, **arrays)
    return {**IRIS, "model": {**IRIS["model"], "weights": name}}


def test_weights_file_replaces_the_draw_and_is_read_relative_to_the_spec(tmp_path: Path) -> None:
    import tomli_w

    mine = {k: np.full(v.shape, 0.25) for k, v in _drawn().items()}
    doc = _with_file(tmp_path, mine)
    (tmp_path / "spec.toml").write_text(tomli_w.dumps(doc))
    spec = load_spec(tmp_path / "spec.toml")
    assert spec.model.weights == str(tmp_path / "w.npz")
    got = initial_weights(spec, 4)
    assert list(got) == list(mine)
    for key, arr in mine.items():
        np.testing.assert_array_equal(got[key], arr)
        assert got[key].dtype == np.float64


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda w: {k: v for k, v in w.items() if k != "layers.1.bias"}, "missing layers.1.bias"),
        (lambda w: {**w, "layers.9.kernel": np.ones(2)}, "not in the model layers.9.kernel"),
        (lambda w: {**w, "layers.0.kernel": np.ones((3, 5))}, "layers.0.kernel in w.npz has shape [3, 5]"),
        (lambda w: {**w, "layers.0.bias": np.full(5, np.nan)}, "NaN or infinite"),
    ],
)
def test_a_file_that_does_not_fit_the_model_is_refused_with_names(tmp_path: Path, change, expected) -> None:
    spec = load_spec(_with_file(tmp_path, change(_drawn())))
    with pytest.raises(DataError, match=re.escape(expected)) as err:
        initial_weights(
            spec.model_copy(update={"model": spec.model.model_copy(update={"weights": str(tmp_path / "w.npz")})}), 4
        )
    assert err.value.path == "model.weights"


@pytest.mark.parametrize("name", ["w.pt", "missing.npz"])
def test_pickles_and_missing_files_are_refused(tmp_path: Path, name: str) -> None:
    spec = load_spec({**IRIS, "model": {**IRIS["model"], "weights": str(tmp_path / name)}})
    (tmp_path / "w.pt").write_bytes(b"\x80\x04not read")
    with pytest.raises(DataError, match=r"never loaded|not found"):
        initial_weights(spec, 4)


def test_a_truncated_npz_is_a_data_error(tmp_path: Path) -> None:
    _with_file(tmp_path, _drawn())
    blob = (tmp_path / "w.npz").read_bytes()
    (tmp_path / "w.npz").write_bytes(blob[: len(blob) // 2])
    spec = load_spec({**IRIS, "model": {**IRIS["model"], "weights": str(tmp_path / "w.npz")}})
    with pytest.raises(DataError, match="cannot read"):
        initial_weights(spec, 4)


def _imported(**kw) -> ImportedModel:
    return ImportedModel(layers=IRIS["model"]["layers"], framework="keras", source="m.keras", weights=_drawn(), **kw)


def test_assemble_takes_the_base_first_and_the_source_where_the_base_is_silent(tmp_path: Path) -> None:
    sections = {"loss": {"type": "categorical_crossentropy"}, "optimizer": {"type": "sgd", "lr": 0.5}}
    base = {"data": {"kind": "iris"}, "optimizer": {"type": "adam", "lr": 0.01}}
    spec, notes = assemble(_imported(sections=sections), base, tmp_path / "w.npz")
    assert spec.optimizer.type == "adam" and spec.loss.type == "categorical_crossentropy"
    assert notes == ["loss taken from the source model: categorical_crossentropy (m.keras)"]
    assert check_against_data(spec, _imported()) == (4,)
    np.testing.assert_array_equal(initial_weights(spec, 4)["layers.0.kernel"], _drawn()["layers.0.kernel"])


def test_assemble_refuses_a_base_with_a_model_or_without_a_loss(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="a base spec has no \\[model\\]"):
        assemble(_imported(), IRIS, tmp_path / "w.npz")
    with pytest.raises(SpecError, match=r"loss: neither the base spec nor m\.keras says the loss"):
        assemble(_imported(), {"data": {"kind": "iris"}}, tmp_path / "w.npz")


def test_a_model_built_for_other_data_is_refused_before_training(tmp_path: Path) -> None:
    base = {"data": {"kind": "iris"}, "loss": {"type": "categorical_crossentropy"}}
    spec, _ = assemble(_imported(input_shape=(8, 8, 1)), base, tmp_path / "w.npz")
    with pytest.raises(DataError, match="built for samples of shape \\[8, 8, 1\\]; the base spec's data gives \\[4\\]"):
        check_against_data(spec, _imported(input_shape=(8, 8, 1)))
    assert load_dataset(spec).input_shape == (4,)


@pytest.mark.parametrize(("base_train", "dtype"), [({"epochs": 3}, "float64"), ({"dtype": "float32"}, "float32")])
def test_the_models_dtype_fills_train_dtype_only_where_the_base_is_silent(tmp_path: Path, base_train, dtype) -> None:
    base = {"data": {"kind": "iris"}, "loss": {"type": "categorical_crossentropy"}, "train": base_train}
    spec, notes = assemble(_imported(sections={"train": {"dtype": "float64"}}), base, tmp_path / "w.npz")
    assert spec.train.dtype == dtype
    assert spec.train.epochs == base_train.get("epochs", 10)
    assert any("train.dtype" in n for n in notes) == (dtype == "float64")
