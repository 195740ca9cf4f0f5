"""Convolutional layers: numpy reference first, then the digits CNN on each backend and in parity."""

from __future__ import annotations

import importlib
import tomllib
from typing import Any

import numpy as np
import pytest

import duofit
from duofit.backends.base import make_plan
from duofit.common.data import load_dataset
from duofit.common.spec.shapes import infer_shapes
from tests import reference

BACKENDS = [pytest.param("torch", marks=pytest.mark.torch), pytest.param("keras", marks=pytest.mark.keras)]
# float64 forward vs numpy: summation order only.
RTOL_F64 = 1e-12
# documented target: the digits CNN reaches 0.95 test accuracy on every backend
CNN_ACCURACY = 0.95
# documented target: float64 strict parity of the CNN within 1e-10 relative per step
CNN_STRICT_RTOL = 1e-10

STACK = [
    {"type": "conv2d", "filters": 3, "kernel_size": [4, 2], "strides": 2, "padding": "same", "activation": "tanh"},
    {"type": "batch_norm"},
    {"type": "conv2d", "filters": 4, "kernel_size": 2, "dilation": 2, "padding": "same", "l2": 0.01},
    {"type": "avg_pool2d", "pool_size": 2, "strides": 1},
    {"type": "conv2d", "filters": 5, "kernel_size": 2, "padding": "valid", "activation": "relu"},
    {"type": "max_pool2d", "pool_size": [1, 2]},
    {"type": "flatten"},
    {"type": "dense", "units": 10},
]

# TensorFlow's "same" pooling on the 8x8 digits: both pools pad asymmetrically (odd cell after),
# and tanh makes windows whose real cells are all negative, where zero padding would win a max.
SAME_POOLS = [
    {"type": "conv2d", "filters": 3, "kernel_size": 3, "padding": "same", "activation": "tanh"},
    {"type": "avg_pool2d", "pool_size": 3, "strides": 2, "padding": "same"},  # 8 -> 4, pads (0, 1) per axis
    {"type": "max_pool2d", "pool_size": [2, 3], "strides": 1, "padding": "same"},  # pads (0, 1) and (1, 1)
    {"type": "flatten"},
    {"type": "dense", "units": 10},
]


def _spec(layers: list, **train: object) -> duofit.Spec:
    doc = tomllib.loads(open("examples/digits_cnn.toml").read())
    doc["model"]["layers"] = layers
    doc["train"].update(train)
    return duofit.load_spec(doc)


def forward_matches_numpy(backend: str, spec: duofit.Spec) -> tuple[Any, Any]:
    """Assert the backend's float64 forward pass equals the numpy reference; returns the probe and plan."""
    plan = make_plan(spec, load_dataset(spec))
    x = plan.dataset.x_test[:20]
    assert x.shape[1:] == (8, 8, 1)
    probe = importlib.import_module(f"duofit.backends.{backend}.probe")
    np.testing.assert_allclose(
        probe.forward(spec, plan.weights, x), reference.forward(spec, plan.weights, x), rtol=RTOL_F64, atol=1e-13
    )
    return probe, plan


def assert_strict_parity(spec: duofit.Spec, backends: tuple[str, str] = ("torch", "keras")) -> None:
    """Assert float64 strict parity over 2 epochs: every stage passes, per step within CNN_STRICT_RTOL."""
    from duofit.parity import parity

    report = parity(spec, strict=True, epochs=2, backends=backends)
    traj = next(s for s in report.stages if s.stage == "trajectory")
    assert traj.max_rel <= CNN_STRICT_RTOL, report.text()
    assert report.passed, report.text()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("head", ["flatten", "global_avg_pool2d"])
def test_conv_forward_matches_numpy(backend: str, head: str) -> None:
    layers = STACK if head == "flatten" else [*STACK[:5], {"type": "global_avg_pool2d"}, {"type": "dense", "units": 10}]
    spec = _spec(layers, dtype="float64")
    probe, plan = forward_matches_numpy(backend, spec)
    x = plan.dataset.x_test[:20]
    _, grads = probe.gradients(spec, plan.weights, x, plan.t_train[:20])
    assert grads["layers.0.kernel"].shape == (4, 2, 1, 3)  # duofit layout [kh, kw, in, out] on every backend


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_padded_pooling_matches_numpy(backend: str) -> None:
    spec = _spec(SAME_POOLS, dtype="float64")
    assert [tuple(s) for s in infer_shapes(spec.model.layers, (8, 8, 1))[:3]] == [
        (8, 8, 3),
        (4, 4, 3),
        (4, 4, 3),
    ]
    forward_matches_numpy(backend, spec)


@pytest.mark.parametrize("backend", BACKENDS)
def test_digits_cnn_reaches_095(backend: str) -> None:
    res = duofit.run("examples/digits_cnn.toml", backend)
    assert res.metrics["accuracy"] >= CNN_ACCURACY


@pytest.mark.parity
@pytest.mark.slow
@pytest.mark.parametrize("layers", [STACK[:1] + STACK[2:], SAME_POOLS], ids=["stack", "same_pools"])
def test_cnn_strict_parity(layers: list) -> None:
    assert_strict_parity(_spec(layers))


def test_shape_errors_name_the_layer() -> None:
    doc = tomllib.loads(open("examples/digits_cnn.toml").read())
    del doc["data"]["image_shape"]
    with pytest.raises(duofit.SpecError, match=r"model.layers\[0\].type.*image_shape"):
        duofit.load_spec(doc)
    doc = tomllib.loads(open("examples/digits_cnn.toml").read())
    del doc["model"]["layers"][3]  # no flatten before the dense layer
    with pytest.raises(duofit.SpecError, match=r"model.layers\[3\].type.*flatten"):
        duofit.load_spec(doc)
    doc = tomllib.loads(open("examples/digits_cnn.toml").read())
    doc["data"]["image_shape"] = [16, 16, 1]  # 256 values per sample, digits have 64
    with pytest.raises(duofit.DataError, match="image_shape"):
        load_dataset(duofit.load_spec(doc))
