"""Recurrent layers: simple_rnn, lstm, gru, bidirectional.

Framework-free first (spec errors with field paths, shapes, initial weights); then each
backend's forward pass against the numpy reference (``tests/reference_rnn.py``) and the weight
layout translation; then float64 strict parity and a deliberate mismatch naming its cause.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import duofit
from duofit.backends.base import make_plan
from duofit.common.data import load_dataset
from duofit.common.errors import DataError, SpecError
from duofit.common.init import initial_weights
from duofit.common.spec.layers_rnn import LSTMLayer, rnn_parameters
from tests import reference_rnn
from tests.models.test_graphs import OPTIMIZERS, PARITY_EPOCHS, _assert_strict
from tests.params import KERAS_VARIANTS

# float64 forward vs numpy: summation order only, over a few steps.
RTOL_F64 = 1e-12

CASES: dict[str, dict[str, Any]] = {
    "simple_rnn_seq": {"type": "simple_rnn", "units": 5, "return_sequences": True},
    "simple_rnn_relu": {"type": "simple_rnn", "units": 4, "activation": "relu"},
    "lstm_seq": {"type": "lstm", "units": 4, "return_sequences": True},
    "lstm_last_torch_init": {
        "type": "lstm",
        "units": 3,
        "kernel_init": "torch_rnn",
        "recurrent_init": "torch_rnn",
        "bias_init": "torch_rnn",
        "unit_forget_bias": False,
    },
    "gru_seq": {"type": "gru", "units": 4, "return_sequences": True, "bias_init": "torch_rnn"},
    "gru_last": {"type": "gru", "units": 3, "bias_init": "torch_rnn"},
    "bidirectional_lstm_seq": {
        "type": "bidirectional",
        "layer": {"type": "lstm", "units": 3, "return_sequences": True, "bias_init": "torch_rnn"},
    },
    "bidirectional_gru_sum": {"type": "bidirectional", "merge": "sum", "layer": {"type": "gru", "units": 3}},
}


def rnn_doc(layer: dict[str, Any], **train: Any) -> dict[str, Any]:
    """A sequence classifier: 12 features as 4 steps of 3, one recurrent layer, a dense head."""
    head: list[dict[str, Any]] = [{"type": "flatten"}] if _sequences(layer) else []
    return {
        "data": {
            "kind": "make_classification",
            "params": {"n_samples": 150, "n_features": 12, "n_informative": 6, "n_classes": 3, "random_state": 0},
            "sequence_shape": [4, 3],
            "test_size": 0.2,
        },
        "model": {"layers": [layer, *head, {"type": "dense", "units": 3}]},
        "loss": {"type": "categorical_crossentropy", "from_logits": True, "labels": "integer"},
        "metrics": ["accuracy"],
        "train": {"epochs": 2, "batch_size": 32, "threads": 1, "dtype": "float64", **train},
    }


def _sequences(layer: dict[str, Any]) -> bool:
    return bool(layer.get("return_sequences") or layer.get("layer", {}).get("return_sequences"))


# ----------------------------------------------------------------------------- framework-free


@pytest.mark.parametrize(
    ("layer", "path", "needle"),
    [
        ({"type": "bidirectional", "layer": {"type": "dense", "units": 3}}, "model.layers[0].layer", "recurrent"),
        ({"type": "lstm", "units": 3, "dropout": 0.2}, "model.layers[0].dropout", "dropout"),
        ({"type": "gru", "units": 3, "bias_init": "orthogonal"}, "model.layers[0].bias_init", "torch_rnn"),
    ],
)
def test_bad_recurrent_specs_name_the_field(layer: dict[str, Any], path: str, needle: str) -> None:
    with pytest.raises(SpecError) as err:
        duofit.load_spec(rnn_doc(layer))
    assert err.value.path.startswith(path) and needle in str(err.value)


def test_rnn_on_flat_input_names_the_layer_and_the_fix() -> None:
    doc = rnn_doc({"type": "lstm", "units": 3})
    del doc["data"]["sequence_shape"]
    spec = duofit.load_spec(doc)  # flat data: its width is known only with the data
    with pytest.raises(DataError) as err:
        make_plan(spec, load_dataset(spec))
    assert err.value.path == "model.layers[0].type" and "sequence_shape" in str(err.value)


def test_initial_weights_follow_keras_and_torch_defaults() -> None:
    spec = duofit.load_spec(rnn_doc(CASES["lstm_seq"]))
    w = initial_weights(spec, (4, 3))
    r = w["layers.0.recurrent_kernel"]
    np.testing.assert_allclose(r @ r.T, np.eye(4), atol=1e-12)  # orthogonal rows, Keras' recurrent default
    assert np.all(np.abs(w["layers.0.kernel"]) <= np.sqrt(6 / (3 + 16)))  # glorot on the stacked kernel
    assert w["layers.0.bias"].tolist() == [0.0] * 4 + [1.0] * 4 + [0.0] * 8  # unit_forget_bias
    torch_like = initial_weights(duofit.load_spec(rnn_doc(CASES["lstm_last_torch_init"])), (4, 3))
    assert all(np.abs(v).max() <= 1 / np.sqrt(3) for v in torch_like.values() if v.shape[-1] == 12)
    gru = initial_weights(duofit.load_spec(rnn_doc(CASES["gru_last"])), (4, 3))
    assert gru["layers.0.bias"].shape == (2, 9)
    lstm = spec.model.layers[0]
    assert isinstance(lstm, LSTMLayer)
    assert rnn_parameters(lstm, 3) == sum(v.size for k, v in w.items() if k.startswith("layers.0."))


# ----------------------------------------------------------------------------- backends vs numpy


def forward_matches(backend: str, layer: dict[str, Any]) -> None:
    """One recurrent layer's forward against numpy, its weight round trip and its gradient names."""
    spec = duofit.load_spec(rnn_doc(layer))
    plan = make_plan(spec, load_dataset(spec))
    x = plan.dataset.x_test[:8]
    probe = importlib.import_module(f"duofit.backends.{backend}.probe")
    want = reference_rnn.forward(spec, plan.weights, x)
    np.testing.assert_allclose(probe.forward(spec, plan.weights, x, strict=True), want, rtol=RTOL_F64, atol=1e-13)
    back = probe.roundtrip(spec, plan.weights, strict=True)
    assert sorted(back) == sorted(plan.weights)
    assert all(np.array_equal(back[k], plan.weights[k]) for k in plan.weights)
    loss, grads = probe.gradients(spec, plan.weights, x, plan.t_train[:8], strict=True)
    assert np.isfinite(loss) and sorted(grads) == sorted(plan.weights)


@pytest.mark.torch
@pytest.mark.parametrize("name", sorted(CASES))
def test_torch_recurrent_forward_matches_numpy(name: str) -> None:
    forward_matches("torch", CASES[name])


@pytest.mark.keras
@pytest.mark.parametrize("name", sorted(CASES))
def test_keras_recurrent_forward_matches_numpy(name: str) -> None:
    forward_matches("keras", CASES[name])


def _export_roundtrip(backend: str, tmp_path: Path) -> None:
    from duofit.common.registry import get_backend

    spec = duofit.load_spec(rnn_doc(CASES["bidirectional_lstm_seq"]))
    weights = initial_weights(spec, (4, 3))
    target = get_backend(backend)
    for suffix in target.export_formats:
        path = tmp_path / f"model{suffix}"
        target.save_weights(spec, weights, path, (4, 3))
        back = target.load_weights(spec, path, (4, 3))
        assert sorted(back) == sorted(weights), suffix
        assert all(np.array_equal(back[k], weights[k]) for k in weights), suffix


@pytest.mark.torch
def test_torch_recurrent_export_round_trip(tmp_path: Path) -> None:
    _export_roundtrip("torch", tmp_path)


@pytest.mark.keras
def test_keras_recurrent_export_round_trip(tmp_path: Path) -> None:
    _export_roundtrip("keras", tmp_path)


@pytest.mark.torch
@pytest.mark.parametrize("kind", ["simple_rnn", "lstm", "gru"])
def test_layout_translation_to_plain_torch_modules(kind: str) -> None:
    import torch

    from duofit.backends.torch.rnn import keras_to_torch, torch_to_keras

    spec = duofit.load_spec(rnn_doc({"type": kind, "units": 3, "return_sequences": True, "bias_init": "torch_rnn"}))
    layer = spec.model.layers[0]
    w = {k.split(".", 2)[2]: v for k, v in initial_weights(spec, (4, 3)).items() if k.startswith("layers.0.")}
    state = keras_to_torch(layer, w)  # type: ignore[arg-type]
    back = torch_to_keras(layer, state)  # type: ignore[arg-type]
    assert all(np.array_equal(back[k], w[k]) for k in w)  # round trip exact (second bias is zero)
    module = {"simple_rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind](
        3, 3, batch_first=True
    ).double()
    module.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()})
    x = np.random.default_rng(1).normal(size=(5, 4, 3))
    got = module(torch.as_tensor(x))[0].detach().numpy()
    np.testing.assert_allclose(got, reference_rnn.recurrent(layer, w, x), rtol=RTOL_F64, atol=1e-13)  # type: ignore[arg-type]


@pytest.mark.torch
def test_torch_refuses_what_its_cells_cannot_compute() -> None:
    from duofit.backends.torch.probe import forward

    for layer, field in [
        ({"type": "gru", "units": 3, "reset_after": False}, "reset_after"),
        ({"type": "lstm", "units": 3, "recurrent_activation": "hard_sigmoid"}, "recurrent_activation"),
    ]:
        spec = duofit.load_spec(rnn_doc(layer))
        w = initial_weights(spec, (4, 3))
        with pytest.raises(SpecError) as err:
            forward(spec, w, np.zeros((2, 4, 3)))
        assert err.value.path.endswith(field) and "torch" in str(err.value)


# ----------------------------------------------------------------------------- parity


@pytest.mark.parity
@pytest.mark.slow
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("name", ["lstm_seq", "gru_last", "bidirectional_gru_sum", "simple_rnn_relu"])
def test_recurrent_strict_float64_parity(name: str, optimizer: str) -> None:
    from duofit.parity import parity

    doc = rnn_doc(CASES[name])
    doc["optimizer"] = OPTIMIZERS[optimizer]
    _assert_strict(parity(doc, strict=True, epochs=PARITY_EPOCHS))


@pytest.mark.torch  # the reference side of the comparison
@pytest.mark.slow
@pytest.mark.parametrize("backend", KERAS_VARIANTS)
@pytest.mark.parametrize("name", ["lstm_seq", "gru_last"])
def test_recurrent_strict_parity_on_keras_frameworks(backend: str, name: str) -> None:
    from duofit.parity import parity

    doc = rnn_doc(CASES[name])
    doc["optimizer"] = OPTIMIZERS["adam"]
    _assert_strict(parity(doc, strict=True, epochs=PARITY_EPOCHS, backends=("torch", backend)))


@pytest.mark.parity
@pytest.mark.parametrize(
    ("layer", "setting", "stage", "cause"),
    [
        (CASES["lstm_seq"], "model.layers[0].unit_forget_bias=false", "initial_weights", "lstm_unit_forget_bias"),
        (CASES["gru_last"], "model.layers[0].reset_after=false", "initial_weights", "gru_reset_after"),
        (
            CASES["lstm_seq"],
            'model.layers[0].recurrent_activation="hard_sigmoid"',
            "forward",
            "rnn_activation_defaults",
        ),
    ],
)
def test_deliberate_recurrent_mismatch_names_its_cause(
    layer: dict[str, Any], setting: str, stage: str, cause: str
) -> None:
    from duofit.parity import parity

    report = parity(rnn_doc(layer), strict=True, epochs=1, overrides={"keras": [setting]})
    failed = next(s for s in report.stages if s.status == "fail")
    assert failed.stage == stage, report.text()
    assert cause in {c.id for c in failed.causes}, report.text()


@pytest.mark.torch
def test_tools_run_on_a_recurrent_spec(tmp_path: Path) -> None:
    from duofit.parity.convert import convert
    from duofit.tuning.cv import cross_validate
    from duofit.tuning.sweep import sweep

    doc = rnn_doc(CASES["gru_last"], epochs=2, dtype="float32")
    trained = rnn_doc(CASES["gru_last"], epochs=30)
    trained["optimizer"] = OPTIMIZERS["adam"]
    res = duofit.run(duofit.load_spec(trained), "torch", out=tmp_path / "run")
    assert res.metrics["accuracy"] > 0.5
    done = convert(tmp_path / "run", to="torch", out=tmp_path / "conv")
    assert done["max_rel_diff"] <= 1e-6
    cv = cross_validate(doc, 2, ["torch"], isolate=False, out=tmp_path / "cv")
    assert "accuracy" in cv.table().index
    swept = sweep(doc, {"optimizer.lr": [0.01, 0.001]}, ["torch"], isolate=False)
    assert len(swept.table()) == 2


@pytest.mark.torch
def test_sklearn_estimator_on_a_recurrent_spec() -> None:
    from sklearn.datasets import load_iris

    from duofit.sklearn import DuofitClassifier

    spec = {k: v for k, v in rnn_doc(CASES["lstm_seq"], epochs=30).items() if k != "data"}
    spec["model"]["layers"].insert(0, {"type": "reshape", "target_shape": [4, 1]})  # iris' 4 features as 4 steps
    x, y = load_iris(return_X_y=True)
    clf = DuofitClassifier(spec=spec).fit(x, y)
    assert clf.score(x, y) > 0.7
    assert clf.weights_["layers.1.kernel"].shape == (1, 16)
