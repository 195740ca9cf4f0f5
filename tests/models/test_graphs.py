"""Layer graphs: ``name`` / ``inputs``, the merge layers ``add`` and ``concatenate``, and ``reshape``.

Framework-free first (validation errors with their field paths, shapes through the graph, the
sequential shorthand unchanged); then each backend's forward pass against the numpy reference
and the weight round trip; then float64 strict parity of a residual MLP on every backend, and
the tools (run, cv, sweep, convert, the scikit-learn estimator) on a graph spec.
"""

from __future__ import annotations

import copy
import importlib
import json
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import duofit
from duofit.backends.base import make_plan
from duofit.cli import main
from duofit.common.data import load_dataset
from duofit.common.errors import DataError, SpecError
from duofit.common.init import initial_weights
from duofit.common.spec.shapes import infer_shapes, trace_shapes
from tests import reference
from tests.params import KERAS_VARIANTS

# float64 forward vs numpy: summation order only (as the conv tests).
RTOL_F64 = 1e-12
# Documented parity target, float64 strict: per-step loss <= 1e-12 relative, final weights <= 1e-10.
STRICT_STEP_RTOL = 1e-12
STRICT_WEIGHTS_RTOL = 1e-10
PARITY_EPOCHS = 10
OPTIMIZERS = {
    "sgd": {"type": "sgd", "lr": 0.05, "momentum": 0.9},
    "adam": {"type": "adam", "lr": 0.01},
    "rmsprop": {"type": "rmsprop", "lr": 0.01},
}


def residual_mlp(**train: Any) -> dict[str, Any]:
    """A small residual MLP with a concatenated skip of the input: every graph feature on flat data."""
    return {
        "data": {
            "kind": "make_classification",
            "params": {"n_samples": 240, "n_features": 6, "n_informative": 4, "n_classes": 3, "random_state": 0},
            "standardize": True,
        },
        "model": {
            "layers": [
                {"type": "dense", "units": 8, "activation": "relu", "name": "stem"},
                {"type": "dense", "units": 8, "activation": "tanh"},
                {"type": "dense", "units": 8, "name": "branch"},
                {"type": "add", "inputs": ["stem", "branch"], "name": "res"},
                {"type": "activation", "activation": "gelu", "name": "act"},
                {"type": "concatenate", "inputs": ["act", "input", "stem"]},
                {"type": "dense", "units": 3},
            ]
        },
        "loss": {"type": "categorical_crossentropy", "from_logits": True, "labels": "integer"},
        "metrics": ["accuracy"],
        "train": {"epochs": 3, "batch_size": 32, "threads": 1, **train},
    }


def image_graph() -> dict[str, Any]:
    """Flat digits reshaped to images, a conv residual block, a channel and a height concatenation."""
    return {
        "data": {"kind": "digits", "test_size": 0.2, "split_seed": 0, "stratify": True},
        "model": {
            "layers": [
                {"type": "reshape", "target_shape": [8, 8, 1], "name": "image"},
                {"type": "conv2d", "filters": 3, "kernel_size": 3, "padding": "same", "name": "stem"},
                {
                    "type": "conv2d",
                    "filters": 3,
                    "kernel_size": 2,
                    "padding": "same",
                    "activation": "tanh",
                    "name": "b",
                },
                {"type": "add", "inputs": ["stem", "b"], "name": "block"},
                {"type": "concatenate", "inputs": ["block", "image"]},  # axis -1, channels: 3 + 1
                {"type": "max_pool2d", "pool_size": 2, "name": "pooled"},
                {"type": "concatenate", "axis": 1, "inputs": ["pooled", "pooled"]},  # height: 4 + 4
                {"type": "flatten"},
                {"type": "reshape", "target_shape": [8, 16]},
                {"type": "reshape", "target_shape": [128]},
                {"type": "dense", "units": 10},
            ]
        },
        "loss": {"type": "categorical_crossentropy", "from_logits": True, "labels": "integer"},
        "train": {"dtype": "float64", "epochs": 1, "threads": 1},
    }


def _with_layers(layers: list[dict[str, Any]]) -> dict[str, Any]:
    doc = residual_mlp()
    doc["model"]["layers"] = layers
    return doc


D8 = {"type": "dense", "units": 8}
OUT = {"type": "dense", "units": 3}

# (layers, the error's path, words the message must hold)
BAD_GRAPHS = [
    (
        [{**D8, "name": "dense_1"}, {"type": "add", "inputs": ["dense_1", "skip"]}, OUT],
        "model.layers[1].inputs[1]",
        ["no layer named 'skip'", "layers so far: input, dense_1"],
    ),
    (
        [{**D8, "inputs": ["later"]}, {**D8, "name": "later"}, OUT],
        "model.layers[0].inputs[0]",
        ["'later' is model.layers[1]", "order", "cycles"],
    ),
    ([{**D8, "name": "me", "inputs": ["me"]}, OUT], "model.layers[0].inputs[0]", ["not listed before"]),
    ([{**D8, "name": "a"}, {**D8, "name": "a"}, OUT], "model.layers[1].name", ["'a' is already taken", "unique"]),
    ([{**D8, "name": "input"}, OUT], "model.layers[0].name", ["names the model input"]),
    ([{**D8, "name": "x y"}, OUT], "model.layers[0].name", ["pattern"]),
    (
        [{**D8, "name": "unused"}, {**D8, "inputs": ["input"]}, OUT],
        "model.layers[0]",
        ["no later layer reads it", "not the output"],
    ),
    ([D8, {"type": "add"}, OUT], "model.layers[1].inputs", ["add takes 2 to 64 input(s)", "reads the previous"]),
    ([{**D8, "name": "a"}, {**D8, "inputs": ["a", "input"]}, OUT], "model.layers[1].inputs", ["exactly 1"]),
    (
        [{**D8, "name": "a"}, {"type": "dense", "units": 4, "name": "b"}, {"type": "add", "inputs": ["a", "b"]}, OUT],
        "model.layers[2].inputs",
        ["'a' gives [8]", "'b' gives [4]", "dense projection"],
    ),
    ([{**D8, "name": "a"}, {"type": "concatenate", "axis": 0, "inputs": ["a", "a"]}, OUT], "axis", ["batch axis"]),
    ([{**D8, "name": "a"}, {"type": "concatenate", "axis": 2, "inputs": ["a", "a"]}, OUT], "axis", ["-1 or 1..1"]),
    ([D8, {"type": "reshape", "target_shape": [3, 3]}, OUT], "target_shape", ["[8] (8 values)", "[3, 3] (9 values)"]),
    ([D8, {"type": "reshape", "target_shape": [2, 2, 2]}, OUT], "model.layers[2].type", ["dense on an image"]),
]


@pytest.mark.parametrize(("layers", "path", "needles"), BAD_GRAPHS)
def test_bad_graphs_name_the_field(layers: list, path: str, needles: list[str]) -> None:
    with pytest.raises(SpecError) as info:
        duofit.load_spec(_with_layers(layers))
    assert path in info.value.path, str(info.value)
    for needle in needles:
        assert needle in str(info.value), str(info.value)


def test_a_width_known_only_from_the_data_is_checked_with_the_data() -> None:
    spec = duofit.load_spec(_with_layers([{**D8, "name": "a"}, {"type": "add", "inputs": ["a", "input"]}, OUT]))
    with pytest.raises(DataError) as info:  # the data has 6 features, the dense layer 8 units
        initial_weights(spec, 6)
    assert info.value.path == "model.layers[1].inputs"
    assert "'a' gives [8]" in str(info.value) and "'input' gives [6]" in str(info.value)
    spec = duofit.load_spec(_with_layers([{"type": "reshape", "target_shape": [4, 2]}, {"type": "flatten"}, OUT]))
    with pytest.raises(DataError, match=r"cannot reshape \[6\] \(6 values\) to \[4, 2\]"):
        initial_weights(spec, 6)


def test_bad_graph_on_the_command_line_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_with_layers([{**D8, "name": "a"}, {"type": "add", "inputs": ["a", "b"]}, OUT])))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "model.layers[1].inputs[1]" in err and "Traceback" not in err


def test_sequential_shorthand_is_unchanged() -> None:
    spec = duofit.load_spec("examples/seed.toml")
    assert spec.model.is_sequential and spec.model.sources == [(-1,), (0,)]
    named = copy.deepcopy(tomllib.loads(Path("examples/seed.toml").read_text()))
    named["model"]["layers"][0]["name"] = "hidden"  # a name alone changes nothing
    named_spec = duofit.load_spec(named)
    assert named_spec.model.is_sequential
    a, b = initial_weights(spec, 2), initial_weights(named_spec, 2)
    assert list(a) == ["layers.0.kernel", "layers.0.bias", "layers.1.kernel", "layers.1.bias"] == list(b)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_shapes_follow_the_graph() -> None:
    spec = duofit.load_spec(residual_mlp())
    traced = trace_shapes(spec.model.layers, (6,))
    assert traced[3] == ([(8,), (8,)], (8,))  # add(stem, branch)
    assert traced[5] == ([(8,), (6,), (8,)], (22,))  # concatenate(act, input, stem)
    assert infer_shapes(spec.model.layers, None)[5] is None  # the input's width comes from the data
    image = duofit.load_spec(image_graph())
    shapes = infer_shapes(image.model.layers, (64,))
    assert shapes[4] == (8, 8, 4) and shapes[6] == (8, 4, 4) and shapes[9] == (128,)
    weights = initial_weights(duofit.load_spec(residual_mlp()), 6)
    assert weights["layers.6.kernel"].shape == (22, 3)  # fan-in of the concatenation
    assert not any(k.startswith(("layers.3.", "layers.5.")) for k in weights)  # merges have no weights


def test_reference_forward_of_a_residual_block() -> None:
    spec = duofit.load_spec(residual_mlp(dtype="float64"))
    w = initial_weights(spec, 6)
    x = np.random.default_rng(0).normal(size=(5, 6))
    stem = np.maximum(x @ w["layers.0.kernel"] + w["layers.0.bias"], 0)
    branch = np.tanh(stem @ w["layers.1.kernel"] + w["layers.1.bias"]) @ w["layers.2.kernel"] + w["layers.2.bias"]
    act = reference.activation("gelu", stem + branch)
    want = np.concatenate([act, x, stem], axis=1) @ w["layers.6.kernel"] + w["layers.6.bias"]
    np.testing.assert_allclose(reference.forward(spec, w, x), want, rtol=1e-14)


def _forward_and_roundtrip(backend: str, doc: dict[str, Any], roundtrip: bool) -> None:
    spec = duofit.load_spec(doc)
    plan = make_plan(spec, load_dataset(spec))
    x = plan.dataset.x_test[:16]
    probe = importlib.import_module(f"duofit.backends.{backend}.probe")
    want = reference.forward(spec, plan.weights, x)
    # strict: Keras' own gelu rounds its constants to float32 (the exact layer is strict mode's)
    got = probe.forward(spec, plan.weights, x, strict=True)
    np.testing.assert_allclose(got, want, rtol=RTOL_F64, atol=1e-13)
    if roundtrip:
        back = probe.roundtrip(spec, plan.weights, strict=True)
        assert sorted(back) == sorted(plan.weights)
        assert all(np.array_equal(back[k], plan.weights[k]) for k in plan.weights)
    loss, grads = probe.gradients(spec, plan.weights, x, plan.t_train[:16], strict=True)
    assert np.isfinite(loss) and sorted(grads) == sorted(k for k in plan.weights if "moving" not in k)


@pytest.mark.torch
@pytest.mark.parametrize("image", [False, True], ids=["residual_mlp", "image"])
def test_torch_graph_forward_matches_numpy(image: bool) -> None:
    # the probes' round trip reads a flat input's width off the first kernel; the image graph
    # starts with a reshape, so its round trip is the export one (test_torch_graph_export_round_trip)
    _forward_and_roundtrip("torch", image_graph() if image else residual_mlp(dtype="float64"), roundtrip=not image)


@pytest.mark.keras
@pytest.mark.parametrize("image", [False, True], ids=["residual_mlp", "image"])
def test_keras_graph_forward_matches_numpy(image: bool) -> None:
    # the probes' round trip reads a flat input's width off the first kernel; the image graph
    # starts with a reshape, so its round trip is the export one (test_keras_graph_export_round_trip)
    _forward_and_roundtrip("keras", image_graph() if image else residual_mlp(dtype="float64"), roundtrip=not image)


def _export_roundtrip(backend: str, tmp_path: Path) -> None:
    from duofit.common.registry import get_backend

    spec = duofit.load_spec(image_graph())
    plan = make_plan(spec, load_dataset(spec))
    target = get_backend(backend)
    for suffix in target.export_formats:
        path = tmp_path / f"model{suffix}"
        target.save_weights(spec, plan.weights, path, (64,))
        back = target.load_weights(spec, path, (64,))
        assert sorted(back) == sorted(plan.weights), suffix
        assert all(np.array_equal(back[k], plan.weights[k]) for k in plan.weights), suffix


@pytest.mark.torch
def test_torch_graph_export_round_trip(tmp_path: Path) -> None:
    _export_roundtrip("torch", tmp_path)


@pytest.mark.keras
def test_keras_graph_export_round_trip(tmp_path: Path) -> None:
    _export_roundtrip("keras", tmp_path)


def _assert_strict(report: Any) -> None:
    stages = {s.stage: s for s in report.stages}
    assert stages["trajectory"].max_rel <= STRICT_STEP_RTOL, report.text()
    assert stages["final_weights"].max_rel <= STRICT_WEIGHTS_RTOL, report.text()
    assert report.passed, report.text()


@pytest.mark.parity
@pytest.mark.slow
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_residual_mlp_strict_float64_parity(optimizer: str) -> None:
    from duofit.parity import parity

    doc = residual_mlp()
    doc["optimizer"] = OPTIMIZERS[optimizer]
    report = parity(doc, strict=True, epochs=PARITY_EPOCHS)
    _assert_strict(report)
    assert len(report.steps_frame()) == PARITY_EPOCHS * 6  # 10 epochs x 6 batches (192 training samples)


@pytest.mark.torch  # the reference side of the comparison
@pytest.mark.slow
@pytest.mark.parametrize("backend", KERAS_VARIANTS)
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_residual_mlp_strict_parity_on_keras_frameworks(backend: str, optimizer: str) -> None:
    from duofit.parity import parity

    doc = residual_mlp()
    doc["optimizer"] = OPTIMIZERS[optimizer]
    _assert_strict(parity(doc, strict=True, epochs=PARITY_EPOCHS, backends=("torch", backend)))


@pytest.mark.torch
def test_tools_run_on_a_graph_spec(tmp_path: Path) -> None:
    from duofit.parity.convert import convert
    from duofit.tuning.cv import cross_validate
    from duofit.tuning.sweep import sweep

    doc = residual_mlp(epochs=2)
    res = duofit.run(duofit.load_spec(residual_mlp(epochs=20)), "torch", out=tmp_path / "run")
    assert res.metrics["accuracy"] > 0.6
    done = convert(tmp_path / "run", to="torch", out=tmp_path / "conv")
    assert done["max_rel_diff"] <= 1e-6
    cv = cross_validate(doc, 2, ["torch"], isolate=False, out=tmp_path / "cv")
    assert "accuracy" in cv.table().index
    swept = sweep(doc, {"optimizer.lr": [0.01, 0.001]}, ["torch"], isolate=False)
    assert len(swept.table()) == 2


@pytest.mark.torch
def test_sklearn_estimator_on_a_graph_spec() -> None:
    from sklearn.datasets import load_iris

    from duofit.sklearn import DuofitClassifier

    spec = {k: v for k, v in residual_mlp(epochs=30).items() if k != "data"}
    x, y = load_iris(return_X_y=True)
    clf = DuofitClassifier(spec=spec).fit(x, y)  # the input is 4 wide, the output resized to 3 classes
    assert clf.score(x, y) > 0.8
    assert clf.weights_["layers.6.kernel"].shape == (8 + 4 + 8, 3)
