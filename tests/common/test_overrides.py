from __future__ import annotations

import pytest

import duofit
from duofit.common.overrides import apply_overrides, parse_value


def test_overrides_set_nested_fields_and_validate() -> None:
    spec = duofit.load_spec("examples/seed.toml")
    new = apply_overrides(spec, ["optimizer.lr=0.1", "model.layers[0].units=32", "train.dtype=float64"])
    assert new.optimizer.lr == 0.1 and new.model.layers[0].units == 32 and new.train.dtype == "float64"
    assert spec.optimizer.lr == 0.01  # the original is untouched


@pytest.mark.parametrize(
    ("item", "path"),
    [
        ("optimizer.lrr=0.1", "optimizer.lrr"),
        ("model.layers[5].units=3", "model.layers[5]: index out of range"),
        ("optimizer.lr=-1", "optimizer.lr"),
        ("optimizer.lr", ""),
        ("optim izer.lr=1", "optim izer.lr"),
    ],
)
def test_bad_overrides_name_the_path(item: str, path: str) -> None:
    with pytest.raises(duofit.SpecError) as err:
        apply_overrides(duofit.load_spec("examples/seed.toml"), [item])
    assert path in str(err.value)


def test_parse_value() -> None:
    assert parse_value("1e-3") == 0.001
    assert parse_value('"x"') == "x"
    assert parse_value("relu") == "relu"
