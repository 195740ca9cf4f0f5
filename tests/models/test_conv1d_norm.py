"""1-D convolution and pooling, global 1-D pooling and layer normalization.

Framework-free first (shapes, errors with field paths, initial weights, parameter counts);
then each backend's forward pass against the numpy reference (float64) with the weight round
trip; then float64 strict parity torch vs Keras over 10 epochs for SGD, Adam and RMSprop.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import duofit
from duofit.common.errors import SpecError
from duofit.common.spec.shapes import infer_shapes
from tests.models.test_graphs import OPTIMIZERS, PARITY_EPOCHS, _assert_strict, _forward_and_roundtrip


def conv1d_rows(**train: Any) -> dict[str, Any]:
    """Digits as 8 rows of 8 pixels: every 1-D layer, "same" and "valid", layer norm, a residual add."""
    return {
        "data": {"kind": "digits", "sequence_shape": [8, 8], "test_size": 0.2, "split_seed": 0, "stratify": True},
        "model": {
            "layers": [
                {"type": "conv1d", "filters": 6, "kernel_size": 4, "padding": "same", "activation": "tanh"},
                {"type": "layer_norm", "epsilon": 1e-3, "name": "norm"},
                {"type": "conv1d", "filters": 6, "kernel_size": 3, "padding": "same", "name": "branch"},
                {"type": "add", "inputs": ["norm", "branch"]},
                {"type": "avg_pool1d", "pool_size": 3, "strides": 2, "padding": "same", "name": "avg"},
                {"type": "max_pool1d", "pool_size": 2, "padding": "same", "name": "mx"},
                {"type": "layer_norm", "center": False, "inputs": ["avg"]},
                {"type": "conv1d", "filters": 5, "kernel_size": 2, "strides": 2, "activation": "relu"},
                {"type": "global_avg_pool1d", "name": "gavg"},
                {"type": "global_max_pool1d", "inputs": ["mx"], "name": "gmax"},
                {"type": "concatenate", "inputs": ["gavg", "gmax"]},
                {"type": "dense", "units": 10},
            ]
        },
        "loss": {"type": "categorical_crossentropy", "from_logits": True, "labels": "integer"},
        "train": {"dtype": "float64", "epochs": 2, "batch_size": 64, "threads": 1, **train},
    }


def test_shapes_of_the_1d_layers() -> None:
    spec = duofit.load_spec(conv1d_rows())
    shapes = infer_shapes(spec.model.layers, spec.data.sample_shape)
    assert shapes == [(8, 6), (8, 6), (8, 6), (8, 6), (4, 6), (2, 6), (4, 6), (2, 5), (5,), (6,), (11,), (10,)]


@pytest.mark.parametrize(
    ("layers", "path", "needle"),
    [
        (
            [{"type": "conv1d", "filters": 2, "kernel_size": 2}, {"type": "dense", "units": 3}],
            "model.layers[0].type",
            "needs sequence input [steps, channels]",
        ),
        ([{"type": "global_max_pool1d"}, {"type": "dense", "units": 3}], "model.layers[0].type", "data.sequence_shape"),
        ([{"type": "layer_norm", "epsilon": 0}, {"type": "dense", "units": 3}], "model.layers[0].epsilon", ""),
    ],
)
def test_bad_1d_layers_name_the_field(layers: list[dict[str, Any]], path: str, needle: str) -> None:
    doc = conv1d_rows()
    doc["data"] = {"kind": "iris"}  # flat features: no steps
    doc["model"]["layers"] = layers
    with pytest.raises((SpecError, duofit.common.errors.DataError)) as info:
        spec = duofit.load_spec(doc)
        from duofit.backends.base import make_plan
        from duofit.common.data import load_dataset

        make_plan(spec, load_dataset(spec))
    assert path in str(info.value) and needle in str(info.value)


def test_initial_weights_and_parameter_counts() -> None:
    from duofit.common.data.sizes import PARAMETER_COUNTS
    from duofit.common.init import initial_weights

    spec = duofit.load_spec(conv1d_rows())
    w = initial_weights(spec, (8, 8))
    assert w["layers.0.kernel"].shape == (4, 8, 6) and w["layers.0.bias"].shape == (6,)
    assert np.abs(w["layers.0.kernel"]).max() <= np.sqrt(6 / (4 * 8 + 4 * 6))  # glorot, fans k*in, k*out
    assert np.array_equal(w["layers.1.gamma"], np.ones(6)) and np.array_equal(w["layers.1.beta"], np.zeros(6))
    assert "layers.6.beta" not in w and "layers.6.gamma" in w  # center = false
    layer = spec.model.layers[0]
    assert PARAMETER_COUNTS[type(layer)](layer, (8, 8)) == w["layers.0.kernel"].size + 6


@pytest.mark.torch
def test_torch_1d_forward_matches_numpy() -> None:
    _forward_and_roundtrip("torch", conv1d_rows(), roundtrip=False)


@pytest.mark.keras
def test_keras_1d_forward_matches_numpy() -> None:
    _forward_and_roundtrip("keras", conv1d_rows(), roundtrip=False)


@pytest.mark.parity
@pytest.mark.slow
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_conv1d_layer_norm_strict_float64_parity(optimizer: str) -> None:
    from duofit.parity import parity

    doc = conv1d_rows()
    doc["optimizer"] = OPTIMIZERS[optimizer]
    _assert_strict(parity(doc, strict=True, epochs=PARITY_EPOCHS, backends=("torch", "keras")))
