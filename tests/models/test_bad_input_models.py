"""Bad input for graphs and sequence layers: each a SpecError or DataError with the field path and the fix.

Unknown layer types and names, cycles, duplicate and unused layers, shapes that cannot connect
(both shapes in the message), a ``bidirectional`` around a non-recurrent layer, ``mask_zero``
without integer inputs, a window longer than the series, an empty vocabulary, an embedding
table smaller than the vocabulary; the command line exits 2 without a traceback. Then what is
*not* an error: ``causal`` cross-attention (every backend computes Keras' top-left aligned mask)
and a ``bidirectional`` layer without biases (strict float64 parity). Last, the torch backend's
refusals name the layer by its index.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tomli_w

import duofit
from duofit.backends.base import make_plan
from duofit.cli import main
from duofit.common.data import load_dataset
from duofit.common.errors import DataError, SpecError
from duofit.common.init import initial_weights
from tests.models.test_graphs import OPTIMIZERS, PARITY_EPOCHS, _assert_strict
from tests.models.test_rnn import forward_matches, rnn_doc
from tests.params import KERAS_VARIANTS

REVIEWS = Path(__file__).resolve().parents[2] / "examples" / "data" / "reviews.csv"
VOCAB = 50


def _doc(layers: list[dict[str, Any]], data: dict[str, Any] | None = None, units: int = 3) -> dict[str, Any]:
    """A small classifier: 12 features as 4 steps of 3 (or ``data``), the given layers, ``units`` classes."""
    default = {
        "kind": "make_classification",
        "params": {"n_samples": 90, "n_features": 12, "n_informative": 6, "n_classes": 3, "random_state": 0},
        "sequence_shape": [4, 3],
    }
    return {
        "data": data or default,
        "model": {"layers": [*layers, {"type": "dense", "units": units}]},
        "loss": {"type": "categorical_crossentropy", "from_logits": True},
        "train": {"epochs": 1, "batch_size": 16},
    }


def _flat() -> dict[str, Any]:
    """Flat data: its width (6) is known only when the data is there."""
    params = {"n_samples": 90, "n_features": 6, "n_informative": 3, "n_classes": 3, "random_state": 0}
    return {"kind": "make_classification", "params": params}


TEXT = {
    "kind": "csv_text",
    "path": str(REVIEWS),
    "target": "sentiment",
    "text": {"column": "review", "max_len": 10, "max_vocab": VOCAB},
}
EMB: dict[str, Any] = {"type": "embedding", "input_dim": VOCAB, "output_dim": 4}
D4: dict[str, Any] = {"type": "dense", "units": 4}

# (layers, data, the error's path, words the message must hold: the shapes, the allowed values, the fix)
SPEC_ERRORS: list[tuple[list[dict[str, Any]], dict[str, Any] | None, str, list[str]]] = [
    ([{"type": "lstmm", "units": 4}], None, "model.layers[0].type", ["unknown type 'lstmm'", "'lstm'", "'gru'"]),
    (
        [{**D4, "name": "a"}, {**D4, "name": "b"}, {"type": "add", "inputs": ["a", "skip"]}],
        None,
        "model.layers[2].inputs[1]",
        ["no layer named 'skip'", "layers so far: input, a, b", "name = "],
    ),
    (
        [{**D4, "name": "stem"}, {**D4, "inputs": ["stm"]}],
        None,
        "model.layers[1].inputs[0]",
        ["no layer named 'stm'", "did you mean 'stem'?"],
    ),
    (
        [{**D4, "inputs": ["later"]}, {**D4, "name": "later"}],
        None,
        "model.layers[0].inputs[0]",
        ["'later' is model.layers[1]", "not listed before", "cycles"],
    ),
    (
        [{**D4, "name": "me", "inputs": ["me"]}],
        None,
        "model.layers[0].inputs[0]",
        ["this layer itself", "cycle", "earlier one of: input"],
    ),
    (
        [{**D4, "name": "a"}, {**D4, "name": "a"}],
        None,
        "model.layers[1].name",
        ["'a' is already taken by model.layers[0]", "rename"],
    ),
    (
        [{**D4, "name": "side"}, {**D4, "inputs": ["input"]}],
        None,
        "model.layers[0]",
        ["no later layer reads it (dense 'side')", "inputs, or remove it"],
    ),
    (
        [
            {"type": "lstm", "units": 4, "return_sequences": True, "name": "a"},
            {"type": "gru", "units": 4, "name": "b"},
            {"type": "add", "inputs": ["a", "b"]},
        ],
        None,
        "model.layers[2].inputs",
        ["'a' gives [4, 4]", "'b' gives [4]", "make the sizes equal"],
    ),
    (
        [{"type": "flatten", "name": "a"}, {"type": "concatenate", "inputs": ["a", "input"]}],
        None,
        "model.layers[1].inputs",
        ["'a' [12]", "'input' [4, 3]", "need one rank"],
    ),
    (
        [{**D4, "name": "a"}, {"type": "concatenate", "axis": 1, "inputs": ["a", "input"]}],
        None,
        "model.layers[1].inputs",
        ["'a' gives [4, 4]", "'input' gives [4, 3]", "equal sizes"],
    ),
    (
        [
            {"type": "dense", "units": 5, "name": "q"},
            {"type": "multi_head_attention", "num_heads": 2, "key_dim": 2, "inputs": ["q", "input"]},
            {"type": "global_avg_pool1d"},
        ],
        None,
        "model.layers[1].inputs[1]",
        ["query [4, 5]", "value [4, 3]", "units = 5"],
    ),
    ([{"type": "reshape", "target_shape": [5, 2]}], None, "model.layers[0].target_shape", ["[4, 3] (12", "(10"]),
    (
        [{"type": "lstm", "units": 4}],
        {"kind": "digits", "image_shape": [8, 8, 1]},
        "model.layers[0].type",
        ["got [8, 8, 1]", "sequence_shape", "reshape"],
    ),
    (
        [{"type": "bidirectional", "layer": {"type": "dense", "units": 3}}],
        None,
        "model.layers[0].layer.type",
        ["wraps one recurrent layer, got 'dense'", "'simple_rnn', 'lstm', 'gru'"],
    ),
    (
        [{"type": "bidirectional", "layer": "lstm"}],
        None,
        "model.layers[0].layer",
        ["must be a table", "{type = 'lstm', units = 16}"],
    ),
    (
        [{"type": "bidirectional", "layer": {"type": "gru", "units": 3, "name": "inner"}}],
        None,
        "model.layers[0].layer",
        ["takes no name or inputs", "set them on the bidirectional"],
    ),
    (
        [{**EMB, "mask_zero": True}, {"type": "global_avg_pool1d"}],
        None,
        "model.layers[0].type",
        ["integer token ids", "mask_zero", "got [4, 3]", "csv_text", "remove data.sequence_shape"],
    ),
    (
        [{**EMB, "input_dim": 10}, {"type": "global_avg_pool1d"}],
        TEXT,
        "model.layers[0].input_dim",
        ["is 10", "max_vocab - 1 = 49", "set input_dim = 50", "max_vocab = 10"],
    ),
    (
        [EMB, {"type": "positional_embedding", "max_len": 5}, {"type": "global_avg_pool1d"}],
        TEXT,
        "model.layers[1].max_len",
        ["10 steps", "max_len = 5", "set max_len >= 10"],
    ),
    (
        # the padding mask reaches the query (through a dense) but not the value (a reshape drops it)
        [
            {**EMB, "mask_zero": True, "name": "e"},
            {**D4, "name": "q"},
            {"type": "flatten", "inputs": ["e"]},
            {"type": "reshape", "target_shape": [10, 4], "name": "v"},
            {"type": "multi_head_attention", "num_heads": 2, "key_dim": 2, "inputs": ["q", "v"]},
            {"type": "global_avg_pool1d"},
        ],
        TEXT,
        "model.layers[4].inputs",
        ["only one of query and value: the query ('q'), not the value ('v')", "set mask_zero = false"],
    ),
]


def _spec_doc(layers: list[dict[str, Any]], data: dict[str, Any] | None) -> dict[str, Any]:
    units = 2 if data is TEXT else 10 if data and data.get("kind") == "digits" else 3
    return _doc(copy.deepcopy(layers), copy.deepcopy(data), units)


@pytest.mark.parametrize(("layers", "data", "path", "words"), SPEC_ERRORS)
def test_spec_errors_name_the_field_the_shapes_and_the_fix(
    layers: list[dict[str, Any]], data: dict[str, Any] | None, path: str, words: list[str]
) -> None:
    with pytest.raises(SpecError) as info:
        duofit.load_spec(_spec_doc(layers, data))
    assert info.value.path == path, str(info.value)
    assert f"  {path}: " in str(info.value)
    for word in words:
        assert word in str(info.value), f"{word!r} not in:\n{info.value}"


def _series_csv(tmp_path: Path, rows: int = 30) -> Path:
    path = tmp_path / "series.csv"
    t = np.arange(rows) / 3
    path.write_text("a,b\n" + "".join(f"{np.sin(v):.5f},{np.cos(v):.5f}\n" for v in t), encoding="utf-8")
    return path


def _data_errors(tmp_path: Path) -> list[tuple[dict[str, Any], str, list[str]]]:
    """(spec document, the DataError's path, words in its message), each raised by load_dataset."""
    texts = tmp_path / "texts.csv"  # no word of two or more letters or digits
    texts.write_text("text,label\n" + "".join(f"a ! ? {i % 2},{i % 2}\n" for i in range(20)), encoding="utf-8")
    floats = tmp_path / "floats.npz"
    rng = np.random.default_rng(0)
    np.savez(floats, x=rng.normal(size=(30, 5)), y=np.arange(30) % 2)
    masked: list[dict[str, Any]] = [{**EMB, "mask_zero": True}, {"type": "global_avg_pool1d"}]
    series = {"kind": "csv_series", "path": str(_series_csv(tmp_path)), "target": "a", "series": {"window": 40}}
    window = {**_doc([{"type": "lstm", "units": 3}], series, 1), "loss": {"type": "mse"}}
    text = {**TEXT, "path": str(texts), "target": "label", "text": {"column": "text", "max_vocab": VOCAB}}
    vocab = _doc([EMB, {"type": "global_avg_pool1d"}], text, 2)
    return [
        (_doc(masked, _flat(), 3), "model.layers[0].type", ["mask_zero", "integer token ids", "shape [6]"]),
        (_doc(masked, {"kind": "npz", "path": str(floats)}, 2), "model.layers[0].type", ["mask_zero", "float"]),
        (window, "data.series.window", ["window of 40 steps", "the series has 30", "use window <= 29"]),
        (vocab, "data.text.column", ["vocabulary is empty", "check that the column holds the texts"]),
    ]


def test_data_errors_name_the_field_and_the_fix(tmp_path: Path) -> None:
    for doc, path, words in _data_errors(tmp_path):
        with pytest.raises(DataError) as info:
            load_dataset(duofit.load_spec(doc))
        assert info.value.path == path and str(info.value).startswith(f"{path}: "), str(info.value)
        for word in words:
            assert word in str(info.value), f"{word!r} not in:\n{info.value}"


def test_shapes_known_only_with_the_data_fail_with_both_shapes() -> None:
    """Flat data of a width the spec does not tell: the graph is checked again when the data is there."""
    doc = _doc([{**D4, "name": "a"}, {"type": "add", "inputs": ["a", "input"]}], _flat())
    spec = duofit.load_spec(doc)
    with pytest.raises(DataError) as info:
        make_plan(spec, load_dataset(spec))
    assert info.value.path == "model.layers[1].inputs"
    assert "'a' gives [4]" in str(info.value) and "'input' gives [6]" in str(info.value)


def _write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "spec.toml"
    path.write_bytes(tomli_w.dumps(doc).encode())
    return path


def test_cli_validate_exits_2_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = [(_spec_doc(layers, data), path) for layers, data, path, _ in SPEC_ERRORS]
    cases += [(doc, path) for doc, path, _ in _data_errors(tmp_path)]
    for doc, path in cases:
        assert main(["validate", str(_write(tmp_path, doc))]) == 2, path
        err = capsys.readouterr().err
        assert f"{path}: " in err and "Traceback" not in err, err


def test_causal_cross_attention_is_no_error() -> None:
    """Every backend computes Keras' causal mask for cross-attention too (tril of [query steps, value steps])."""
    doc = _doc(
        [
            {"type": "conv1d", "filters": 3, "kernel_size": 2, "name": "v"},
            {"type": "multi_head_attention", "num_heads": 1, "key_dim": 2, "causal": True, "inputs": ["input", "v"]},
            {"type": "flatten"},
        ]
    )
    spec = duofit.load_spec(doc)
    assert initial_weights(spec, (4, 3))["layers.1.query_kernel"].shape == (3, 1, 2)


# ----------------------------------------------------------------------------- bidirectional without biases
NO_BIAS = {"type": "bidirectional", "layer": {"type": "lstm", "units": 3, "use_bias": False, "return_sequences": True}}
NO_BIAS_GRU = {"type": "bidirectional", "merge": "sum", "layer": {"type": "gru", "units": 3, "use_bias": False}}


def test_bidirectional_without_bias_has_no_bias_weights() -> None:
    spec = duofit.load_spec(rnn_doc(NO_BIAS))
    weights = initial_weights(spec, (4, 3))
    assert sorted(k for k in weights if k.startswith("layers.0.")) == [
        "layers.0.backward_kernel",
        "layers.0.backward_recurrent_kernel",
        "layers.0.forward_kernel",
        "layers.0.forward_recurrent_kernel",
    ]


@pytest.mark.torch
@pytest.mark.parametrize("layer", [NO_BIAS, NO_BIAS_GRU], ids=["lstm", "gru_sum"])
def test_torch_bidirectional_without_bias_matches_numpy(layer: dict[str, Any]) -> None:
    forward_matches("torch", layer)


@pytest.mark.keras
@pytest.mark.parametrize("layer", [NO_BIAS, NO_BIAS_GRU], ids=["lstm", "gru_sum"])
def test_keras_bidirectional_without_bias_matches_numpy(layer: dict[str, Any]) -> None:
    forward_matches("keras", layer)


@pytest.mark.parity
@pytest.mark.slow
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_bidirectional_without_bias_strict_float64_parity(optimizer: str) -> None:
    from duofit.parity import parity

    doc = rnn_doc(NO_BIAS_GRU)
    doc["optimizer"] = OPTIMIZERS[optimizer]
    _assert_strict(parity(doc, strict=True, epochs=PARITY_EPOCHS))


@pytest.mark.torch  # the reference side of the comparison
@pytest.mark.slow
@pytest.mark.parametrize("backend", KERAS_VARIANTS)
def test_bidirectional_without_bias_strict_parity_on_keras_frameworks(backend: str) -> None:
    from duofit.parity import parity

    doc = rnn_doc(NO_BIAS)
    doc["optimizer"] = OPTIMIZERS["adam"]
    _assert_strict(parity(doc, strict=True, epochs=PARITY_EPOCHS, backends=("torch", backend)))


# ----------------------------------------------------------------------------- the torch backend's refusals
TORCH_REFUSALS: list[tuple[list[dict[str, Any]], str, str]] = [
    (
        [D4, {"type": "reshape", "target_shape": [4, 4]}, {"type": "lstm", "units": 3, "activation": "relu"}],
        "model.layers[2].activation",
        "computes only tanh",
    ),
    (
        [{"type": "bidirectional", "layer": {"type": "gru", "units": 3, "reset_after": False}}],
        "model.layers[0].layer.reset_after",
        "use reset_after = true",
    ),
    (
        [D4, {"type": "lstm", "units": 3, "recurrent_activation": "hard_sigmoid"}],
        "model.layers[1].recurrent_activation",
        "use recurrent_activation = 'sigmoid'",
    ),
]


@pytest.mark.torch
@pytest.mark.parametrize(("layers", "path", "needle"), TORCH_REFUSALS)
def test_torch_refusals_name_the_layer_index(layers: list[dict[str, Any]], path: str, needle: str) -> None:
    from duofit.backends.torch.probe import forward

    spec = duofit.load_spec(_doc(copy.deepcopy(layers)))
    with pytest.raises(SpecError) as info:
        forward(spec, initial_weights(spec, (4, 3)), np.zeros((2, 4, 3)))
    assert info.value.path == path and str(info.value).startswith(f"{path}: ") and needle in str(info.value)
    assert "the torch backend's" in str(info.value)


@pytest.mark.torch
def test_cli_run_on_torch_exits_2_naming_the_layer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    layers, path, _ = TORCH_REFUSALS[0]
    assert main(["run", str(_write(tmp_path, _doc(copy.deepcopy(layers)))), "--backend", "torch", "-q"]) == 2
    err = capsys.readouterr().err
    assert f"error: {path}: " in err and "Traceback" not in err, err
    graph = _doc([{**D4, "name": "a"}, {"type": "add", "inputs": ["a", "input"]}], _flat())
    assert main(["run", str(_write(tmp_path, graph)), "--backend", "torch", "-q"]) == 2
    err = capsys.readouterr().err
    assert "model.layers[1].inputs: " in err and "[6]" in err and "Traceback" not in err, err
