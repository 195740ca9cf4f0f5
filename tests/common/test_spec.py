from __future__ import annotations

import json
import typing

import pytest

import duofit
from duofit.common.diagnostics import spec_warnings
from duofit.common.errors import SpecError
from duofit.common.loader import format_loc, load_spec, spec_to_toml
from duofit.common.spec import LAYER_TYPES, AdamOptimizer, DenseLayer, LayerSpec, LossSpec, Spec, vocab

_IRIS = {
    "data": {"kind": "iris"},
    "model": {"layers": [{"type": "dense", "units": 3}]},
    "loss": {"type": "categorical_crossentropy"},
    "metrics": ["accuracy"],
}


def _members(union: object) -> set[type]:
    return set(typing.get_args(typing.get_args(union)[0]))


def test_seed_example_matches_the_tutorial() -> None:
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


def test_vocabulary_tables_cover_their_names() -> None:
    """Every property table of the vocabulary has exactly one row per name of its Literal."""
    assert tuple(vocab.METRICS) == vocab.METRIC_NAMES == typing.get_args(vocab.MetricName)
    assert set(vocab.CLASSIFICATION_METRICS) | set(vocab.REGRESSION_METRICS) == set(vocab.METRIC_NAMES)
    assert not set(vocab.CLASSIFICATION_METRICS) & set(vocab.REGRESSION_METRICS)
    assert tuple(vocab.DATA_KIND_TARGETS) == vocab.DATA_KINDS == typing.get_args(vocab.DataKind)
    assert vocab.REGRESSION_DATA_KINDS == ("make_regression", "diabetes", "csv_series", "sunspots", "co2")
    loss_tags = {typing.get_args(cls.model_fields["type"].annotation)[0] for cls in _members(LossSpec)}
    assert set(vocab.LOSS_TASKS) == loss_tags == set(typing.get_args(vocab.LossName))


def test_layer_registry_is_the_union() -> None:
    assert set(LAYER_TYPES) == _members(LayerSpec)
    tags = [typing.get_args(cls.model_fields["type"].annotation)[0] for cls in LAYER_TYPES]
    # 12 dense/conv2d/graph layers, 8 sequence layers (conv1d, pools, layer_norm, embeddings), 4 recurrent,
    # 1 attention
    assert len(tags) == len(set(tags)) == 25


@pytest.mark.parametrize(
    ("column", "better"),
    [
        ("loss", False),
        ("val_loss", False),
        ("val_mse", False),
        ("rmse", False),
        ("val_mae", False),
        ("val_r2", True),
        ("val_roc_auc", True),
        ("val_f1_weighted", True),
        ("precision_t0.3", True),
    ],
)
def test_higher_is_better_reads_the_metric_table(column: str, better: bool) -> None:
    assert vocab.higher_is_better(column) is better


@pytest.mark.parametrize("monitor", ["val_val_accuracy", "accuracy", "val_nope", "val_"])
def test_monitor_must_be_a_history_column(monitor: str) -> None:
    with pytest.raises(SpecError, match="is not a history column"):
        load_spec({**_IRIS, "train": {"early_stopping": {"monitor": monitor}}})


def test_regression_monitor_mode_follows_the_table() -> None:
    doc = {
        "data": {"kind": "diabetes"},
        "model": {"layers": [{"type": "dense", "units": 1}]},
        "loss": {"type": "huber"},
        "metrics": ["rmse", "r2"],
        "optimizer": {"type": "sgd", "schedule": {"type": "plateau", "monitor": "val_r2"}},
        "train": {"early_stopping": {"monitor": "val_rmse"}},
    }
    spec = Spec.model_validate(doc)
    assert spec.monitor_mode() == "min"
    assert spec.monitor_mode(spec.optimizer.schedule) == "max"  # type: ignore[arg-type]


def test_classification_loss_on_regression_data_names_the_loss() -> None:
    doc = {**_IRIS, "data": {"kind": "diabetes"}}
    with pytest.raises(SpecError, match=r"loss\.type: loss 'categorical_crossentropy' needs class labels"):
        load_spec(doc)


def test_regression_loss_on_class_labels_is_a_warning() -> None:
    doc = {**_IRIS, "loss": {"type": "mse"}, "metrics": []}
    assert any("on class labels" in w for w in spec_warnings(load_spec(doc), integer_target=True))
    doc["data"] = {"kind": "make_regression"}
    assert not any("on class labels" in w for w in spec_warnings(load_spec(doc), integer_target=True))
