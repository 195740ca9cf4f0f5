from __future__ import annotations

import json

import pytest

import duofit
from duofit.common.loader import format_loc, load_spec, spec_to_toml
from duofit.common.spec import AdamOptimizer, DenseLayer, Spec


def test_seed_example_matches_the_seed_chapter() -> None:
    spec = load_spec("examples/seed.toml")
    assert spec.data.kind == "make_classification"
    assert spec.data.params == {
        "n_samples": 1000,
        "n_features": 2,
        "n_informative": 2,
        "n_redundant": 0,
        "n_clusters_per_class": 1,
        "random_state": 42,
    }
    assert (spec.data.test_size, spec.data.split_seed, spec.data.standardize) == (0.2, 42, True)
    assert [type(layer) for layer in spec.model.layers] == [DenseLayer, DenseLayer]
    assert spec.model.layers[0].units == 10 and spec.model.layers[0].activation == "relu"
    assert spec.loss.type == "binary_crossentropy" and spec.loss.from_logits
    assert isinstance(spec.optimizer, AdamOptimizer) and spec.optimizer.lr == 0.01
    assert (spec.train.epochs, spec.train.batch_size) == (100, 32)
    assert spec.metrics == ["accuracy", "precision", "recall", "f1", "roc_auc"]
    assert spec.task == "binary"


def test_spec_is_frozen() -> None:
    spec = load_spec("examples/seed.toml")
    with pytest.raises(Exception, match="frozen"):
        spec.train.epochs = 3  # type: ignore[misc]


def test_defaults_live_in_the_spec() -> None:
    spec = load_spec(
        {
            "data": {"kind": "iris"},
            "model": {"layers": [{"type": "dense", "units": 3}]},
            "loss": {"type": "categorical_crossentropy"},
        }
    )
    assert spec.optimizer.type == "adam" and spec.optimizer.epsilon == 1e-8
    assert spec.train.dtype == "float32" and spec.train.device == "cpu" and spec.train.shuffle
    assert spec.model.layers[0].kernel_init.name == "glorot_uniform"
    assert spec.model.layers[0].bias_init.name == "zeros"


def test_toml_roundtrip_and_json_schema(tmp_path) -> None:
    spec = load_spec("examples/seed.toml")
    path = tmp_path / "again.toml"
    path.write_text(spec_to_toml(spec))
    assert load_spec(path) == spec
    schema = duofit.Spec.model_json_schema()
    assert {"data", "model", "loss", "optimizer", "train", "metrics"} <= set(schema["properties"])
    json.dumps(schema)


def test_initializer_accepts_string_or_table() -> None:
    layer = DenseLayer.model_validate(
        {"type": "dense", "units": 2, "kernel_init": "he_uniform", "bias_init": {"name": "constant", "value": 0.1}}
    )
    assert layer.kernel_init.name == "he_uniform"
    assert layer.bias_init.value == 0.1


def test_format_loc_drops_union_tags() -> None:
    assert format_loc(("model", "layers", 2, "dense", "units")) == "model.layers[2].units"
    assert format_loc(("optimizer", "sgd", "lr")) == "optimizer.lr"
    assert format_loc(("metrics", 0)) == "metrics[0]"


def test_monitor_mode_auto() -> None:
    base = {
        "data": {"kind": "iris"},
        "model": {"layers": [{"type": "dense", "units": 3}]},
        "loss": {"type": "categorical_crossentropy"},
        "metrics": ["accuracy"],
    }
    spec = Spec.model_validate({**base, "train": {"early_stopping": {"monitor": "val_accuracy"}}})
    assert spec.monitor_mode() == "max"
    spec = Spec.model_validate({**base, "train": {"early_stopping": {"monitor": "val_loss"}}})
    assert spec.monitor_mode() == "min"
