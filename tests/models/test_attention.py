"""multi_head_attention: self- and cross-attention, causal and padding masks, Keras' per-head layout.

Framework-free first (errors with field paths, shapes, parameter count, initial weights); then
each backend's forward pass against the numpy reference (``tests/reference_attention.py``), the
translation to torch's packed ``nn.MultiheadAttention``, float64 strict parity torch vs Keras
over 10 epochs (SGD, Adam, RMSprop) and on Keras-on-torch and Keras-on-JAX for one model.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pytest

import duofit
from duofit.backends.base import make_plan
from duofit.common.data import load_dataset
from duofit.common.errors import SpecError
from duofit.common.init import initial_weights
from duofit.common.spec.layers_attention import MultiHeadAttentionLayer, attention_parameters
from tests import reference_attention
from tests.models.test_graphs import OPTIMIZERS, PARITY_EPOCHS, _assert_strict
from tests.params import KERAS_VARIANTS

# float64 forward vs numpy: summation order only (einsums of a few terms, one softmax).
RTOL_F64 = 1e-12
ATOL_F64 = 1e-13
MAX_LEN = 24  # 61% of the reviews are padded at this length, so the masks matter
VOCAB = 200
WIDTH = 8


def encoder(*, causal: bool = False, **train: Any) -> dict[str, Any]:
    """Reviews as token ids: embedding (mask_zero) + positions, one encoder block, masked mean, a dense head."""
    return {
        "data": {
            "kind": "csv_text",
            "path": "examples/data/reviews.csv",
            "target": "sentiment",
            "text": {"column": "review", "max_len": MAX_LEN, "max_vocab": VOCAB},
            "test_size": 0.25,
            "split_seed": 0,
        },
        "model": {
            "layers": [
                {"type": "embedding", "input_dim": VOCAB, "output_dim": WIDTH, "mask_zero": True},
                {"type": "positional_embedding", "max_len": MAX_LEN, "name": "x"},
                {"type": "multi_head_attention", "num_heads": 2, "key_dim": 3, "causal": causal, "name": "att"},
                {"type": "add", "inputs": ["x", "att"]},
                {"type": "layer_norm", "name": "h"},
                {"type": "dense", "units": WIDTH, "activation": "relu", "name": "ff"},
                {"type": "add", "inputs": ["h", "ff"]},
                {"type": "global_avg_pool1d"},
                {"type": "dense", "units": 2},
            ]
        },
        "loss": {"type": "categorical_crossentropy", "from_logits": True, "labels": "integer"},
        "train": {"dtype": "float64", "epochs": 2, "batch_size": 64, "threads": 1, **train},
    }


def cross(**train: Any) -> dict[str, Any]:
    """Digits as 8 rows of 8: 8 query steps attend (causally) to 4 pooled value steps; no bias, value_dim 3."""
    return {
        "data": {"kind": "digits", "sequence_shape": [8, 8], "test_size": 0.2, "split_seed": 0},
        "model": {
            "layers": [
                {"type": "dense", "units": WIDTH, "activation": "tanh", "name": "q"},
                {"type": "avg_pool1d", "pool_size": 2, "inputs": ["input"], "name": "v"},
                {
                    "type": "multi_head_attention",
                    "num_heads": 3,
                    "key_dim": 2,
                    "value_dim": 3,
                    "use_bias": False,
                    "causal": True,
                    "inputs": ["q", "v"],
                },
                {"type": "flatten"},
                {"type": "dense", "units": 10},
            ]
        },
        "loss": {"type": "categorical_crossentropy", "from_logits": True, "labels": "integer"},
        "train": {"dtype": "float64", "epochs": 2, "batch_size": 128, "threads": 1, **train},
    }


def two_blocks(**train: Any) -> dict[str, Any]:
    """The encoder with a second attention block after the first residual (the mask must reach it)."""
    doc = encoder(**train)
    layers = doc["model"]["layers"]
    layers[6]["name"] = "x1"
    layers[7:7] = [
        {"type": "multi_head_attention", "num_heads": 2, "key_dim": 3, "name": "att2"},
        {"type": "add", "inputs": ["x1", "att2"]},
    ]
    return doc


MODELS = {
    "encoder": encoder,
    "encoder_causal": lambda **t: encoder(causal=True, **t),
    "cross": cross,
    "two_blocks": two_blocks,
}


def _with(doc: dict[str, Any], index: int, **fields: Any) -> dict[str, Any]:
    doc["model"]["layers"][index].update(fields)
    return doc


# ----------------------------------------------------------------------------- framework-free


@pytest.mark.parametrize(
    ("doc", "path", "needle"),
    [
        (_with(encoder(), 2, dropout=0.1), "model.layers[2].dropout", "dropout"),
        (_with(encoder(), 2, inputs=["x", "x", "x"]), "model.layers[2].inputs", "1 to 2"),
        (_with(cross(), 2, inputs=["q", "nowhere"]), "model.layers[2].inputs[1]", "nowhere"),
        (_with(encoder(), 2, num_heads=0), "model.layers[2].num_heads", "greater than 0"),
    ],
)
def test_bad_attention_specs_name_the_field(doc: dict[str, Any], path: str, needle: str) -> None:
    with pytest.raises(SpecError) as err:
        duofit.load_spec(doc)
    assert err.value.path.startswith(path), err.value.path
    assert needle in str(err.value)


def test_value_of_another_width_names_both_shapes() -> None:
    doc = cross()
    doc["model"]["layers"][0]["units"] = 5
    with pytest.raises(SpecError) as err:
        duofit.load_spec(doc)
    assert err.value.path == "model.layers[2].inputs[1]"
    assert "[8, 5]" in str(err.value) and "[4, 8]" in str(err.value)


def test_mask_on_only_one_input_is_refused() -> None:
    doc = encoder()
    doc["model"]["layers"][2]["inputs"] = ["x", "v"]
    doc["model"]["layers"].insert(2, {"type": "conv1d", "filters": WIDTH, "kernel_size": 1, "name": "v"})
    with pytest.raises(SpecError) as err:
        spec = duofit.load_spec(doc)
        make_plan(spec, load_dataset(spec))
    assert "only one of query and value" in str(err.value)


def test_weights_follow_keras_layout_and_glorot_fans() -> None:
    spec = duofit.load_spec(cross())
    w = {k.split(".", 2)[2]: v for k, v in initial_weights(spec, (8, 8)).items() if k.startswith("layers.2.")}
    assert {k: v.shape for k, v in w.items()} == {
        "query_kernel": (8, 3, 2),
        "key_kernel": (8, 3, 2),
        "value_kernel": (8, 3, 3),
        "output_kernel": (3, 3, 8),
    }
    assert np.abs(w["query_kernel"]).max() <= np.sqrt(6 / (8 + 6))  # fan_in E, fan_out heads * key_dim
    assert np.abs(w["output_kernel"]).max() <= np.sqrt(6 / (9 + 8))
    layer = spec.model.layers[2]
    assert isinstance(layer, MultiHeadAttentionLayer)
    assert attention_parameters(layer, 8) == sum(v.size for v in w.values())
    full = initial_weights(duofit.load_spec(encoder()), (MAX_LEN,))
    assert full["layers.2.query_bias"].shape == (2, 3) and not full["layers.2.output_bias"].any()


def test_reference_causal_row_zero_sees_only_step_zero() -> None:
    spec = duofit.load_spec(cross())
    layer = spec.model.layers[2]
    assert isinstance(layer, MultiHeadAttentionLayer)
    w = {k.split(".", 2)[2]: v for k, v in initial_weights(spec, (8, 8)).items() if k.startswith("layers.2.")}
    rng = np.random.default_rng(0)
    q, v = rng.normal(size=(2, 8, 8)), rng.normal(size=(2, 4, 8))
    out = reference_attention.attention(layer, w, q, v)
    v2 = v.copy()
    v2[:, 1:] = 0.0  # later value steps cannot reach query step 0
    np.testing.assert_allclose(reference_attention.attention(layer, w, q, v2)[:, 0], out[:, 0], rtol=1e-14)
    one = np.einsum("bf,fnd->bnd", v[:, 0], w["value_kernel"])  # step 0 attends to key 0 only
    np.testing.assert_allclose(out[:, 0], np.einsum("bnd,nde->be", one, w["output_kernel"]), rtol=1e-12)


# ----------------------------------------------------------------------------- backends vs numpy


def _forward_matches(backend: str, name: str) -> None:
    spec = duofit.load_spec(MODELS[name]())
    plan = make_plan(spec, load_dataset(spec))
    x = plan.dataset.x_test[:16]
    probe = importlib.import_module(f"duofit.backends.{backend}.probe")
    want = reference_attention.forward(spec, plan.weights, x)
    got = probe.forward(spec, plan.weights, x, strict=True)
    np.testing.assert_allclose(got, want, rtol=RTOL_F64, atol=ATOL_F64)
    loss, grads = probe.gradients(spec, plan.weights, x, plan.t_train[:16], strict=True)
    assert np.isfinite(loss) and sorted(grads) == sorted(plan.weights)


@pytest.mark.torch
@pytest.mark.parametrize("name", sorted(MODELS))
def test_torch_attention_forward_matches_numpy(name: str) -> None:
    _forward_matches("torch", name)


@pytest.mark.keras
@pytest.mark.parametrize("name", sorted(MODELS))
def test_keras_attention_forward_matches_numpy(name: str) -> None:
    _forward_matches("keras", name)


@pytest.mark.torch
def test_translation_to_packed_torch_multihead_attention() -> None:
    import torch

    from duofit.backends.torch.attention import keras_to_torch, torch_to_keras

    layer = MultiHeadAttentionLayer(type="multi_head_attention", num_heads=2, key_dim=4)
    rng = np.random.default_rng(3)
    w = {k: rng.normal(size=v.shape) for k, v in initial_weights_for(layer, WIDTH).items()}
    state = keras_to_torch(layer, w)
    back = torch_to_keras(layer, state)
    assert sorted(back) == sorted(w) and all(np.array_equal(back[k], w[k]) for k in w)  # exact round trip
    module = torch.nn.MultiheadAttention(WIDTH, 2, batch_first=True).double()
    module.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()})
    x = rng.normal(size=(3, 5, WIDTH))
    valid = np.ones((3, 5), dtype=bool)
    valid[1, 3:] = False
    # torch: True = masked (the opposite polarity); it leaves padded queries unmasked, so compare valid rows
    got = module(*(torch.as_tensor(x),) * 3, key_padding_mask=torch.as_tensor(~valid))[0].detach().numpy()
    want = reference_attention.attention(layer, w, x, x, valid)
    np.testing.assert_allclose(got[valid], want[valid], rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="num_heads \\* key_dim"):
        keras_to_torch(MultiHeadAttentionLayer(type="multi_head_attention", num_heads=2, key_dim=3), w)


def initial_weights_for(layer: MultiHeadAttentionLayer, width: int) -> dict[str, np.ndarray]:
    """One layer's weights (the shared sampler) for a query of ``width`` features."""
    from duofit.common.init import WEIGHT_INITS

    return WEIGHT_INITS[MultiHeadAttentionLayer](layer, np.random.default_rng(0), (5, width))


# ----------------------------------------------------------------------------- parity


@pytest.mark.parity
@pytest.mark.slow
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("name", ["encoder", "cross", "two_blocks"])
def test_attention_strict_float64_parity(name: str, optimizer: str) -> None:
    from duofit.parity import parity

    doc = MODELS[name]()
    doc["optimizer"] = OPTIMIZERS[optimizer]
    _assert_strict(parity(doc, strict=True, epochs=PARITY_EPOCHS, backends=("torch", "keras")))


@pytest.mark.torch  # the reference side of the comparison
@pytest.mark.slow
@pytest.mark.parametrize("backend", KERAS_VARIANTS)
def test_attention_strict_parity_on_keras_frameworks(backend: str) -> None:
    from duofit.parity import parity

    doc = encoder()
    doc["optimizer"] = OPTIMIZERS["adam"]
    _assert_strict(parity(doc, strict=True, epochs=PARITY_EPOCHS, backends=("torch", backend)))


@pytest.mark.parity
@pytest.mark.parametrize(
    ("setting", "stage", "cause"),
    [
        ("model.layers[2].causal=true", "forward", "mha_mask_polarity"),
        ("model.layers[0].mask_zero=false", "forward", "mha_mask_polarity"),
        ("model.layers[2].key_dim=4", "initial_weights", "mha_key_dim"),
    ],
)
def test_deliberate_attention_mismatch_names_its_cause(setting: str, stage: str, cause: str) -> None:
    from duofit.parity import parity

    report = parity(encoder(), strict=True, epochs=1, overrides={"keras": [setting]}, backends=("torch", "keras"))
    failed = next(s for s in report.stages if s.status == "fail")
    assert failed.stage == stage, report.text()
    assert cause in {c.id for c in failed.causes}, report.text()


@pytest.mark.parity
def test_keras_float32_scale_is_named_outside_strict_mode() -> None:
    from duofit.parity import parity

    report = parity(cross(), strict=False, epochs=1, backends=("torch", "keras"))
    forward = next(s for s in report.stages if s.stage == "forward")
    assert forward.max_rel > 1e-10, report.text()  # float32(1/sqrt(2)) in Keras' own layer
    assert "keras_mha_scale_float32" in {c.id for c in forward.causes}, report.text()


def _export_roundtrip(backend: str, tmp_path: Any) -> None:
    from duofit.common.registry import get_backend

    spec = duofit.load_spec(cross())
    weights = initial_weights(spec, (8, 8))
    target = get_backend(backend)
    for suffix in target.export_formats:
        path = tmp_path / f"model{suffix}"
        target.save_weights(spec, weights, path, (8, 8))
        back = target.load_weights(spec, path, (8, 8))
        assert sorted(back) == sorted(weights), suffix
        assert all(np.array_equal(back[k], weights[k]) for k in weights), suffix


@pytest.mark.torch
def test_torch_attention_export_round_trip(tmp_path: Any) -> None:
    _export_roundtrip("torch", tmp_path)


@pytest.mark.keras
def test_keras_attention_export_round_trip(tmp_path: Any) -> None:
    _export_roundtrip("keras", tmp_path)


@pytest.mark.torch
def test_tools_run_on_an_attention_spec(tmp_path: Any) -> None:
    from duofit.parity.convert import convert
    from duofit.tuning.cv import cross_validate
    from duofit.tuning.sweep import sweep

    doc = {**encoder(epochs=1, dtype="float32"), "metrics": ["accuracy"]}
    duofit.run(duofit.load_spec(doc), "torch", out=tmp_path / "run")
    assert convert(tmp_path / "run", to="torch", out=tmp_path / "conv")["max_rel_diff"] <= 1e-6
    assert len(sweep(doc, {"optimizer.lr": [0.01, 0.001]}, ["torch"], isolate=False).table()) == 2
    assert "accuracy" in cross_validate(doc, 2, ["torch"], isolate=False, out=tmp_path / "cv").table().index


@pytest.mark.torch
def test_sklearn_estimator_on_an_attention_spec() -> None:
    from sklearn.datasets import load_digits

    from duofit.sklearn import DuofitClassifier

    spec = {k: v for k, v in cross(epochs=15, dtype="float32").items() if k != "data"}
    spec["model"]["layers"] = [
        {"type": "reshape", "target_shape": [8, 8]},  # the 64 pixels as 8 rows of 8
        {"type": "multi_head_attention", "num_heads": 2, "key_dim": 4},
        {"type": "flatten"},
        {"type": "dense", "units": 10},
    ]
    spec["optimizer"] = OPTIMIZERS["adam"]
    x, y = load_digits(return_X_y=True)
    clf = DuofitClassifier(spec=spec).fit(x[:600] / 16, y[:600])
    assert clf.score(x[600:900] / 16, y[600:900]) > 0.8
    assert clf.weights_["layers.1.query_kernel"].shape == (8, 2, 4)


@pytest.mark.torch
def test_key_bias_gradient_is_zero_up_to_rounding() -> None:
    """softmax ignores a per-row constant, so the key bias gets no gradient (cause attention_key_bias_null_gradient)."""
    from duofit.backends.torch import probe
    from duofit.parity.causes_attention import null_gradient_weights

    spec = duofit.load_spec(two_blocks())
    plan = make_plan(spec, load_dataset(spec))
    _, grads = probe.gradients(spec, plan.weights, plan.dataset.x_train[:32], plan.t_train[:32], strict=True)
    assert null_gradient_weights(spec) == ["layers.2.key_bias", "layers.7.key_bias"]
    for i in (2, 7):
        assert np.abs(grads[f"layers.{i}.key_bias"]).max() < 1e-15
        assert np.abs(grads[f"layers.{i}.query_bias"]).max() > 1e-6  # the other biases do learn
