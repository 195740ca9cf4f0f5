"""Bad input that only the data reveals: each a DataError with the field path and the fix, before any model is built.

Shapes the spec alone cannot check (flat data of a width only the data tells, npz sequences)
are traced again with the data's sample shape as soon as the data is prepared, so ``duofit
validate`` refuses what ``duofit run`` would, with the spec-time check's path and message.
Token ids beyond an embedding's table (or negative), and float features where an embedding
reads the input, are refused in the data preparation. An error inside a ``bidirectional``'s
wrapped layer reads ``model.layers[i].layer.<field>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tomli_w

import duofit
from duofit.cli import main
from duofit.common.data import load_dataset, prepare
from duofit.common.errors import DataError, SpecError

N = 24  # samples: enough for the default split, small enough to stay fast
VOCAB = 10  # the embedding's input_dim in the token-id cases


def _npz(tmp_path: Path, x: np.ndarray, name: str = "d.npz") -> Path:
    path = tmp_path / name
    np.savez(path, x=x, y=np.arange(len(x)) % 2)
    return path


def _doc(path: Path, layers: list[dict[str, Any]], data: dict[str, Any] | None = None) -> dict[str, Any]:
    """A binary classifier on the npz file, the given layers, then one logit."""
    return {
        "data": {"kind": "npz", "path": str(path), **(data or {})},
        "model": {"layers": [*layers, {"type": "dense", "units": 1}]},
        "loss": {"type": "binary_crossentropy", "from_logits": True},
        "train": {"epochs": 1, "batch_size": 8},
    }


def _validate(tmp_path: Path, doc: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    spec_file = tmp_path / "spec.toml"
    spec_file.write_bytes(tomli_w.dumps(doc).encode())
    code = main(["validate", str(spec_file)])
    return code, capsys.readouterr().err


ADD_SKIP: list[dict[str, Any]] = [{"type": "dense", "units": 3, "name": "a"}, {"type": "add", "inputs": ["a", "input"]}]

# (x of the npz file, layers, the error's path, words of the message: both shapes, the fix)
SHAPE_CASES: list[tuple[np.ndarray, list[dict[str, Any]], str, list[str]]] = [
    (np.ones((N, 4)), ADD_SKIP, "model.layers[1].inputs", ["'a' gives [3]", "'input' gives [4]", "dense projection"]),
    (
        np.ones((N, 5, 2)),
        [*ADD_SKIP, {"type": "flatten"}],
        "model.layers[1].inputs",
        ["'a' gives [5, 3]", "'input' gives [5, 2]", "(data: [5, 2] per sample)"],
    ),
    (np.ones((N, 6)), [{"type": "lstm", "units": 2}], "model.layers[0].type", ["lstm needs sequence input", "[6]"]),
]


@pytest.mark.parametrize("case", range(len(SHAPE_CASES)))
def test_validate_traces_shapes_with_the_data(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: int) -> None:
    """Valid as a spec (the width is unknown), refused by `validate` once the data is read: exit 2, no traceback."""
    x, layers, path, words = SHAPE_CASES[case]
    doc = _doc(_npz(tmp_path, x), layers)
    duofit.load_spec(doc)  # the spec alone passes
    code, err = _validate(tmp_path, doc, capsys)
    assert code == 2 and "Traceback" not in err, err
    assert f"{path}: " in err, err
    for word in words:
        assert word in err, f"{word!r} not in:\n{err}"


def test_data_time_message_is_the_spec_time_message(tmp_path: Path) -> None:
    """The same layers fail at spec time (data.sequence_shape given) and at data time (npz sequences) alike."""
    layers = [*ADD_SKIP, {"type": "flatten"}]
    with pytest.raises(SpecError) as at_spec:
        duofit.load_spec(_doc(_npz(tmp_path, np.ones((N, 10))), layers, {"sequence_shape": [5, 2]}))
    with pytest.raises(DataError) as at_data:
        load_dataset(duofit.load_spec(_doc(_npz(tmp_path, np.ones((N, 5, 2)), "seq.npz"), layers)))
    spec_path, spec_message = at_spec.value.problems[0]
    assert at_data.value.path == spec_path == "model.layers[1].inputs"
    assert str(at_data.value) == f"{spec_path}: {spec_message} (data: [5, 2] per sample)"


EMB: dict[str, Any] = {"type": "embedding", "input_dim": VOCAB, "output_dim": 3}
POOL: dict[str, Any] = {"type": "global_avg_pool1d"}


def test_token_ids_beyond_the_table_name_input_dim_the_largest_id_and_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = np.arange(N * 4).reshape(N, 4) % VOCAB
    ids[3, 2] = 12  # two ids past the table's last row (9)
    ids[7, 0] = 11
    doc = _doc(_npz(tmp_path, ids), [EMB, POOL])
    with pytest.raises(DataError) as info:
        load_dataset(duofit.load_spec(doc))
    message = str(info.value)
    assert info.value.path == "model.layers[0].input_dim" and message.startswith("model.layers[0].input_dim: ")
    for word in ["is 10 (ids 0..9)", "go up to 12", "2 id(s) out of range", "input_dim >= 13", "re-index the ids"]:
        assert word in message, f"{word!r} not in:\n{message}"
    code, err = _validate(tmp_path, doc, capsys)
    assert code == 2 and "Traceback" not in err and "input_dim >= 13" in err, err
    ids[3, 2] = ids[7, 0] = VOCAB - 1  # the largest id that fits
    load_dataset(duofit.load_spec(_doc(_npz(tmp_path, ids, "ok.npz"), [EMB, POOL])))


def test_a_later_embedding_reading_the_input_is_checked_too(tmp_path: Path) -> None:
    """Every embedding reads the model input: the smallest table decides, and the error names its index."""
    ids = np.full((N, 4), 15)
    layers = [
        {**EMB, "input_dim": 20, "name": "wide"},
        {**EMB, "name": "narrow", "inputs": ["input"]},
        {"type": "add", "inputs": ["wide", "narrow"]},
        POOL,
    ]
    with pytest.raises(DataError, match=r"^model\.layers\[1\]\.input_dim: is 10 .* go up to 15"):
        load_dataset(duofit.load_spec(_doc(_npz(tmp_path, ids), layers)))


def test_negative_token_ids_are_refused(tmp_path: Path) -> None:
    """From an npz file (its reader) and from given arrays (the scikit-learn path): the smallest id, the fix."""
    ids = np.ones((N, 4), dtype=np.int64)
    ids[0, 0] = -2
    doc = _doc(_npz(tmp_path, ids), [EMB, POOL])
    with pytest.raises(DataError, match=r"negative token ids \(min -2\)"):
        load_dataset(duofit.load_spec(doc))
    with pytest.raises(DataError, match=r"token ids must be >= 0 \(0 pads\), found -2: re-index"):
        prepare(
            duofit.load_spec(_doc(_npz(tmp_path, np.ones((N, 4), dtype=np.int64), "ok.npz"), [EMB, POOL])),
            ids,
            np.arange(N) % 2,
        )


@pytest.mark.parametrize(("values", "hint"), [(np.ones((N, 4)), True), (np.full((N, 4), 0.5), False)])
def test_float_features_into_an_embedding_are_refused(tmp_path: Path, values: np.ndarray, hint: bool) -> None:
    """Floats where an embedding reads the input; whole-number floats get the cast to int64 as the fix."""
    with pytest.raises(DataError) as info:
        load_dataset(duofit.load_spec(_doc(_npz(tmp_path, values), [EMB, POOL])))
    message = str(info.value)
    assert info.value.path == "model.layers[0].type" and "looks up integer token ids" in message, message
    assert "float features of shape [4]" in message
    assert ("x.astype('int64')" in message) is hint, message


def test_bidirectional_errors_name_the_wrapped_field() -> None:
    """The wrapped layer's union tag ('lstm') stays out of the path."""
    doc = {
        "data": {"kind": "make_classification", "sequence_shape": [4, 5]},
        "model": {
            "layers": [
                {"type": "dense", "units": 5},
                {"type": "bidirectional", "layer": {"type": "lstm", "units": -1}},
                {"type": "dense", "units": 1},
            ]
        },
        "loss": {"type": "binary_crossentropy"},
    }
    with pytest.raises(SpecError) as info:
        duofit.load_spec(doc)
    assert info.value.path == "model.layers[1].layer.units", str(info.value)
    assert "model.layers[1].layer.units: Input should be greater than 0 (got -1)" in str(info.value)
    doc["model"]["layers"][1]["layer"] = {"type": "lstmm", "units": 2}
    with pytest.raises(SpecError) as info:
        duofit.load_spec(doc)
    assert info.value.path == "model.layers[1].layer.type", str(info.value)


@pytest.mark.torch
def test_run_refuses_out_of_range_ids_before_torch_indexes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`duofit run` on the torch backend: exit 2 with the message, not torch's IndexError."""
    ids = np.arange(N * 4).reshape(N, 4) % (VOCAB + 3)
    spec_file = tmp_path / "spec.toml"
    spec_file.write_bytes(tomli_w.dumps(_doc(_npz(tmp_path, ids), [EMB, POOL])).encode())
    code = main(["run", str(spec_file), "--backend", "torch", "--quiet", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "IndexError" not in err and "Traceback" not in err, err
    assert "model.layers[0].input_dim" in err and "input_dim >= 13" in err, err
