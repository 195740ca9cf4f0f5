"""Token embeddings (``mask_zero``), learned positional embeddings and masked global pooling.

Framework-free first (shapes, mask flow, errors with field paths, initializers); then each
backend's forward pass against the numpy reference (float64, the masked average exact);
float64 strict parity torch vs Keras over 10 epochs (SGD, Adam, RMSprop) and on Keras-on-torch
and Keras-on-JAX for one combined model; and a deliberate layer_norm epsilon mismatch that
fails the forward stage naming its cause.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import duofit
from duofit.common.errors import DataError, SpecError
from duofit.common.spec.masks import mask_flow
from duofit.common.spec.shapes import infer_shapes
from tests import reference
from tests.models.test_graphs import OPTIMIZERS, PARITY_EPOCHS, _assert_strict, _forward_and_roundtrip
from tests.params import KERAS_VARIANTS

MAX_LEN = 24
VOCAB = 300


def text_model(**train: Any) -> dict[str, Any]:
    """Reviews as token ids: embedding (mask_zero) + positions, layer norm, masked mean and max, a conv branch."""
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
                {"type": "embedding", "input_dim": VOCAB, "output_dim": 8, "mask_zero": True},
                {"type": "positional_embedding", "max_len": MAX_LEN},
                {"type": "layer_norm", "name": "norm"},
                {"type": "dense", "units": 8, "activation": "tanh", "name": "ff"},
                {"type": "global_avg_pool1d", "name": "mean"},
                {"type": "conv1d", "filters": 4, "kernel_size": 3, "padding": "same", "inputs": ["norm"]},
                {"type": "global_max_pool1d", "name": "max"},
                {"type": "concatenate", "inputs": ["mean", "max"]},
                {"type": "dense", "units": 2},
            ]
        },
        "loss": {"type": "categorical_crossentropy", "from_logits": True, "labels": "integer"},
        "train": {"dtype": "float64", "epochs": 2, "batch_size": 64, "threads": 1, **train},
    }


def test_shapes_and_mask_flow() -> None:
    spec = duofit.load_spec(text_model())
    assert infer_shapes(spec.model.layers, spec.data.sample_shape) == [
        (24, 8), (24, 8), (24, 8), (24, 8), (8,), (24, 4), (4,), (12,), (2,)
    ]  # fmt: skip
    # the mask reaches the mean (through positions, layer norm and dense), not the conv branch's max
    assert mask_flow(spec.model.layers) == [False, True, True, True, True, True, False, False, False]


def _layers(*layers: dict[str, Any]) -> dict[str, Any]:
    doc = text_model()
    doc["model"]["layers"] = list(layers)
    return doc


EMB = {"type": "embedding", "input_dim": VOCAB, "output_dim": 4, "mask_zero": True}
POOL = {"type": "global_avg_pool1d"}
HEAD = {"type": "dense", "units": 2}

BAD = [
    (
        _layers(EMB, {"type": "positional_embedding", "max_len": 10}, POOL, HEAD),
        "model.layers[1].max_len",
        "set max_len >= 24",
    ),
    (
        _layers(
            {**EMB, "name": "e"}, {"type": "embedding", "input_dim": 9, "output_dim": 4, "inputs": ["e"]}, POOL, HEAD
        ),
        "model.layers[1].inputs",
        "must read the model input",
    ),
    (_layers(EMB, HEAD), "model.layers[1]", "re-weight the loss"),
    (_layers(EMB, {"type": "batch_norm"}, POOL, HEAD), "model.layers[1].type", "batch_norm"),
]


@pytest.mark.parametrize(("doc", "path", "needle"), BAD)
def test_bad_embedding_specs_name_the_field(doc: dict[str, Any], path: str, needle: str) -> None:
    with pytest.raises(SpecError) as info:
        duofit.load_spec(doc)
    assert path in str(info.value) and needle in str(info.value)


def test_embedding_on_float_features_is_refused() -> None:
    doc = _layers(EMB, POOL, HEAD)
    doc["data"] = {"kind": "digits", "sequence_shape": [8, 8]}
    with pytest.raises(SpecError, match=r"model.layers\[0\].type: embedding looks up integer token ids"):
        duofit.load_spec(doc)
    doc["data"] = {"kind": "iris"}  # flat floats: the width is known only with the data
    doc["model"]["layers"][-1]["units"] = 3
    with pytest.raises(DataError, match=r"model.layers\[0\].type: .*integer token ids"):
        from duofit.common.data import load_dataset

        load_dataset(duofit.load_spec(doc))


def test_initializers_are_the_named_defaults() -> None:
    from duofit.common.init import initial_weights

    doc = text_model()
    doc["model"]["layers"][1]["embeddings_init"] = "torch_embedding"
    w = initial_weights(duofit.load_spec(doc), (MAX_LEN,))
    table = w["layers.0.embeddings"]
    assert table.shape == (VOCAB, 8) and np.abs(table).max() <= 0.05  # Keras' "uniform"
    assert 0.8 < w["layers.1.embeddings"].std() < 1.2  # torch's N(0, 1)


def test_reference_masked_mean_ignores_padding() -> None:
    spec = duofit.load_spec(_layers(EMB, POOL, HEAD))
    from duofit.common.init import initial_weights

    w = initial_weights(spec, (MAX_LEN,))
    ids = np.zeros((2, MAX_LEN), dtype=np.int64)
    ids[0, :3], ids[1, :1] = [5, 6, 7], [9]
    out = reference.forward(spec, w, ids)
    table, kernel, bias = w["layers.0.embeddings"], w["layers.2.kernel"], w["layers.2.bias"]
    np.testing.assert_allclose(out[0], table[[5, 6, 7]].mean(axis=0) @ kernel + bias, rtol=1e-14)
    np.testing.assert_allclose(out[1], table[9] @ kernel + bias, rtol=1e-14)


@pytest.mark.torch
def test_torch_embedding_forward_matches_numpy() -> None:
    _forward_and_roundtrip("torch", text_model(), roundtrip=True)


@pytest.mark.keras
def test_keras_embedding_forward_matches_numpy() -> None:
    _forward_and_roundtrip("keras", text_model(), roundtrip=True)


@pytest.mark.parity
@pytest.mark.slow
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_embedding_strict_float64_parity(optimizer: str) -> None:
    from duofit.parity import parity

    doc = text_model()
    doc["optimizer"] = OPTIMIZERS[optimizer]
    _assert_strict(parity(doc, strict=True, epochs=PARITY_EPOCHS, backends=("torch", "keras")))


@pytest.mark.torch  # the reference side of the comparison
@pytest.mark.slow
@pytest.mark.parametrize("backend", KERAS_VARIANTS)
def test_embedding_strict_parity_on_keras_frameworks(backend: str) -> None:
    from duofit.parity import parity

    doc = text_model()
    doc["optimizer"] = OPTIMIZERS["adam"]
    _assert_strict(parity(doc, strict=True, epochs=PARITY_EPOCHS, backends=("torch", backend)))


@pytest.mark.parity
def test_layer_norm_epsilon_mismatch_names_its_cause() -> None:
    from duofit.parity import parity

    report = parity(text_model(), strict=True, epochs=1, overrides={"keras": ["model.layers[2].epsilon=0.001"]})
    stages = {s.stage: s for s in report.stages}
    assert not report.passed and stages["initial_weights"].status == "pass"
    assert stages["forward"].status == "fail"
    assert "layernorm_epsilon" in [c.id for c in stages["forward"].causes]


def _export_roundtrip(backend: str, tmp_path: Any) -> None:
    from duofit.backends.base import make_plan
    from duofit.common.data import load_dataset
    from duofit.common.registry import get_backend

    spec = duofit.load_spec(text_model())
    plan = make_plan(spec, load_dataset(spec))
    target = get_backend(backend)
    for suffix in target.export_formats:
        path = tmp_path / f"model{suffix}"
        target.save_weights(spec, plan.weights, path, (MAX_LEN,))
        back = target.load_weights(spec, path, (MAX_LEN,))
        assert sorted(back) == sorted(plan.weights), suffix
        assert all(np.array_equal(back[k], plan.weights[k]) for k in plan.weights), suffix


@pytest.mark.torch
def test_torch_embedding_export_round_trip(tmp_path: Any) -> None:
    _export_roundtrip("torch", tmp_path)


@pytest.mark.keras
def test_keras_embedding_export_round_trip(tmp_path: Any) -> None:
    _export_roundtrip("keras", tmp_path)
