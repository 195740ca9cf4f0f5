"""Imported layers that the base spec's data cannot feed: one error naming both shapes, field paths kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from duofit.common.errors import SpecError
from duofit.common.imported import ImportedModel
from duofit.porting.assemble import assemble

FLAT_BASE = {
    "data": {
        "kind": "make_classification",
        "params": {"n_samples": 40, "n_features": 2, "n_informative": 2, "n_redundant": 0},
    },
    "loss": {"type": "categorical_crossentropy", "from_logits": True},
}


def _cnn() -> ImportedModel:
    return ImportedModel(
        layers=[
            {"type": "conv2d", "filters": 2, "kernel_size": [3, 3]},
            {"type": "flatten"},
            {"type": "dense", "units": 2},
        ],
        framework="keras",
        source="cnn.keras",
        weights={"layers.0.kernel": np.zeros((3, 3, 1, 2))},
        input_shape=(8, 8, 1),
    )


def test_layers_that_do_not_fit_the_data_name_both_shapes_and_keep_the_field_path(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as err:
        assemble(_cnn(), FLAT_BASE, tmp_path / "w.npz")
    message = str(err.value)
    assert message.startswith(
        "the imported model cnn.keras (input shape [8, 8, 1]) does not fit the base spec's data (the base spec: "
        "samples of shape [2])"
    )
    assert "  model.layers[0].type: conv2d needs image input" in message and "data.image_shape" in message
    assert err.value.path == "model.layers[0].type" and err.value.problems[0][0] == "model.layers[0].type"
    assert not (tmp_path / "w.npz").exists()  # nothing written for a spec that does not validate


def test_an_error_in_the_base_alone_is_left_as_it_is(tmp_path: Path) -> None:
    base = {**FLAT_BASE, "optimizer": {"type": "adam", "lr": -1.0}}
    with pytest.raises(SpecError) as err:
        assemble(_cnn(), base, tmp_path / "w.npz")
    assert err.value.path == "optimizer.lr" and "does not fit" not in str(err.value)
