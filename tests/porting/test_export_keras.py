"""The exported Keras script (compile + fit) trains exactly as ``duofit run --backend keras``, without duofit."""

from __future__ import annotations

from pathlib import Path

import pytest

from duofit.common.errors import SpecError
from duofit.common.spec import Spec
from duofit.porting.export_keras import render, write
from tests.porting.exported import (
    assert_commands_exist,
    check_same,
    lint_specs,
    probability_spec,
    ruff_clean,
    seed_features,
    short_spec,
    variant,
)

EXAMPLES = [
    "seed",
    "residual_mlp",
    "digits_cnn",
    "gru_digits_rows",
    "lstm_sunspots",
    "conv1d_sunspots",
    "text_embedding",
    "text_transformer",
    "resnet_digits",
]


def _check_same(spec: Spec, tmp_path: Path, strict: bool = False) -> dict:
    """Export to Keras, run the script without duofit, and compare with ``duofit.run`` on the keras backend."""
    script = tmp_path / "train_keras.py"
    assert write(spec, script, strict=strict) == [script, script.with_suffix(".npz")]
    got, ref = check_same(spec, script, "keras", strict=strict)
    assert got["best_epoch"] == ref.best_epoch and got["stopped_epoch"] == ref.stopped_epoch
    return got


# ---- framework-free: the script's text ------------------------------------------------------


@pytest.mark.parametrize("strict", [False, True], ids=["plain", "strict"])
def test_every_example_rendersruff_clean(strict: bool, tmp_path: Path) -> None:
    for name in EXAMPLES:
        spec = short_spec(name, 1)
        if strict and name == "text_transformer":
            continue  # strict attention is refused (test below)
        script = tmp_path / f"{name}.py"
        script.write_text(render(spec, f"{name}.npz", strict=strict))
        ruff_clean(script)


@pytest.mark.parametrize("strict", [False, True], ids=["plain", "strict"])
def test_more_specs_render_ruff_clean_and_name_real_commands(strict: bool, tmp_path: Path) -> None:
    for name, spec in lint_specs().items():
        script = tmp_path / f"{name}.py"
        script.write_text(render(spec, f"{name}.npz", strict=strict))
        ruff_clean(script)
        assert assert_commands_exist(script.read_text())


def test_every_layer_type_has_keras_code() -> None:
    from duofit.common.spec import LAYER_TYPES
    from duofit.porting.keras_code import LAYER_CODE

    assert set(LAYER_CODE) == set(LAYER_TYPES)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "rmsprop"])
def test_strict_updates_renderruff_clean(optimizer: str, tmp_path: Path) -> None:
    spec = variant(
        short_spec("seed", 1),
        optimizer={"type": optimizer, "momentum": 0.5} if optimizer != "adam" else {"type": optimizer},
    )
    script = tmp_path / "strict.py"
    script.write_text(render(spec, "strict.npz", strict=True))
    ruff_clean(script)


def test_script_spells_out_the_translations() -> None:
    text = render(short_spec("text_transformer", 1), "t.npz")
    assert "keras.layers.LayerNormalization(axis=-1, epsilon=1e-05" in text  # Keras' default would be 1e-3
    assert "keras.layers.Embedding(2000, 16, mask_zero=False" in text  # the mask is explicit
    assert "padding_mask = keras.ops.not_equal(inputs, 0)" in text
    assert "attention_mask=attention_mask" in text and "mask=padding_mask" in text
    assert '"att1": [\n        "init/layers.2.query_kernel",' in text  # the spec's layer names
    assert "import duofit" not in text and "from duofit" not in text
    features = variant(
        short_spec("seed", 1),
        model={
            "layers": [
                {"type": "dense", "units": 4, "activation": "leaky_relu"},
                {"type": "batch_norm"},
                {"type": "dense", "units": 1},
            ]
        },
        optimizer={"type": "sgd", "clipnorm": 1.0},
    )
    text = render(features, "f.npz")
    assert "keras.layers.LeakyReLU(negative_slope=0.01" in text  # Keras' default slope is 0.2
    assert "keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-05" in text  # 1 - torch's 0.1
    assert "global_clipnorm=1.0" in text  # the spec's clipnorm is a global norm
    strict = render(features, "f.npz", strict=True)
    assert "Strict mode: this script uses duofit's strict formulas" in strict.split('"""')[1]
    assert "class ExactSGD(" in strict and "ExactLeakyReLU(negative_slope=0.01" in strict


@pytest.mark.parametrize(
    ("sections", "path", "strict"),
    [
        ({"optimizer": {"type": "adam", "schedule": {"type": "plateau"}}}, "optimizer.schedule.type", False),
        ({"optimizer": {"type": "adam", "weight_decay": 0.01}}, "optimizer.weight_decay", False),
    ],
    ids=["plateau", "coupled-l2"],
)
def test_unsupported_settings_are_refused_by_field(sections: dict, path: str, strict: bool, tmp_path: Path) -> None:
    spec = variant(short_spec("seed", 1), **sections)
    # the field, what the export cannot write, what to do instead
    with pytest.raises(SpecError, match=r"\S+: duofit export --to keras does not support .+ yet; \S.+") as info:
        write(spec, tmp_path / "train_keras.py", strict=strict)
    assert info.value.path == path
    assert not list(tmp_path.iterdir())  # nothing written half-way


def test_strict_attention_is_refused_by_layer(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="multi_head_attention") as info:
        write(short_spec("text_transformer", 1), tmp_path / "train_keras.py", strict=True)
    assert info.value.path == "model.layers[2]"
    assert not list(tmp_path.iterdir())


# ---- Keras: the script trains as duofit does ------------------------------------------------


@pytest.mark.keras
def test_seed_script_trains_as_duofit(tmp_path: Path) -> None:
    _check_same(short_spec("seed", 2), tmp_path)


@pytest.mark.keras
@pytest.mark.slow
@pytest.mark.parametrize("name", EXAMPLES[1:])
def test_model_examples_train_as_duofit(name: str, tmp_path: Path) -> None:
    _check_same(short_spec(name, 1), tmp_path)


SEED_FEATURES = seed_features("gelu")


@pytest.mark.keras
@pytest.mark.slow
def test_training_features_follow_duofit(tmp_path: Path) -> None:
    optimizer = {
        "type": "adamw",
        "lr": 0.01,
        "weight_decay": 0.01,
        "clipnorm": 0.5,
        "schedule": {"type": "step", "step_size": 1, "gamma": 0.5},
    }
    train = {
        "epochs": 3,
        "dtype": "float64",
        "batch_size": 64,
        "early_stopping": {"monitor": "val_f1", "patience": 1, "min_delta": 0.5},
    }
    spec = variant(short_spec("seed", 1), optimizer=optimizer, train=train, **SEED_FEATURES)
    got = _check_same(spec, tmp_path)
    assert len(got["history"]) == 2  # stopped early, as duofit's recorder decides


@pytest.mark.keras
@pytest.mark.parametrize(
    "optimizer",
    [
        {
            "type": "sgd",
            "lr": 0.05,
            "momentum": 0.9,
            "nesterov": True,
            "weight_decay": 0.01,
            "clipvalue": 0.5,
            "schedule": {"type": "cosine", "t_max": 2, "eta_min": 0.001},
        },
        pytest.param(
            {"type": "adam", "lr": 0.01, "amsgrad": True, "weight_decay": 0.01, "decay_kind": "decoupled"},
            marks=pytest.mark.slow,
            id="adam",
        ),
        pytest.param(
            {"type": "rmsprop", "lr": 0.01, "momentum": 0.5, "centered": True, "weight_decay": 0.001},
            marks=pytest.mark.slow,
            id="rmsprop",
        ),
    ],
    ids=["sgd", "adam", "rmsprop"],
)
def test_strict_export_writes_the_update_and_matches_strict_run(optimizer: dict, tmp_path: Path) -> None:
    train = {"epochs": 2, "batch_size": 64}  # float32: strict makes it float64
    spec = variant(short_spec("seed", 1), optimizer=optimizer, train=train, **SEED_FEATURES)
    write(spec, tmp_path / "train_keras.py", strict=True)
    source = (tmp_path / "train_keras.py").read_text()
    assert 'DTYPE = "float64"' in source and "keras.optimizers." not in source.split("def make_optimizer")[1]
    strict_spec = spec.model_copy(update={"train": spec.train.model_copy(update={"dtype": "float64"})})
    _check_same(strict_spec, tmp_path, strict=True)


@pytest.mark.keras
@pytest.mark.parametrize(
    ("task", "labels"),
    [("binary", "integer"), pytest.param("multiclass", "one_hot", marks=pytest.mark.slow)],
    ids=["binary", "multiclass"],
)
def test_probability_losses_train_as_duofit(task: str, labels: str, tmp_path: Path) -> None:
    _check_same(probability_spec(task, labels), tmp_path)
