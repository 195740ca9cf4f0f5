"""``duofit port``: import + export + parity into one folder, exit 0 / 4, and nothing half-written on bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from duofit.cli import main

pytestmark = pytest.mark.parity

MLP_BASE = """
name = "port-mlp"
[data]
kind = "make_classification"
params = { n_samples = 300, n_features = 4, random_state = 0 }
[train]
epochs = 2
batch_size = 32
"""

GRU_BASE = """
name = "port-gru"
[data]
kind = "digits"
sequence_shape = [8, 8]
stratify = true
[train]
epochs = 1
batch_size = 32
"""


def _keras():  # type: ignore[no-untyped-def]
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    keras.utils.set_random_seed(0)
    return keras


def _mlp_archive(tmp_path: Path) -> Path:
    k = _keras()
    model = k.Sequential([k.Input((4,)), k.layers.Dense(8, activation="relu"), k.layers.Dense(1)])
    model.compile(optimizer=k.optimizers.SGD(0.05, momentum=0.9), loss=k.losses.BinaryCrossentropy(from_logits=True))
    model.save(tmp_path / "mlp.keras")
    (tmp_path / "mlp_base.toml").write_text(MLP_BASE)
    return tmp_path / "mlp.keras"


def _port(tmp_path: Path, source: Path, base: str, out: str, *extra: str) -> int:
    return main(
        ["port", str(source), "--to", "torch", "--base", str(tmp_path / base), "--out", str(tmp_path / out), *extra]
    )


def test_a_keras_model_ported_to_torch_trains_the_same(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = _mlp_archive(tmp_path)
    assert _port(tmp_path, source, "mlp_base.toml", "port") == 0
    out = tmp_path / "port"
    assert {p.name for p in out.iterdir()} == {
        "spec.toml", "spec.weights.npz", "train_torch.py", "train_torch.npz", "parity", "README.md", "port.json"
    }  # fmt: skip
    manifest = json.loads((out / "port.json").read_text())
    assert manifest["passed"] and manifest["source_framework"] == "keras" and manifest["target"] == "torch"
    assert any("optimizer taken from the source model" in n for n in manifest["notes"])
    assert (out / "parity" / "parity.json").exists()
    readme = (out / "README.md").read_text()
    assert "trains the same as the keras model" in readme and "(f) final metrics" in readme
    assert "PASS" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".port-")] == []


def test_a_port_that_differs_exits_4_and_names_the_cause(tmp_path: Path) -> None:
    k = _keras()
    model = k.Sequential([k.Input((8, 8)), k.layers.GRU(32), k.layers.Dense(10)])
    model.compile(optimizer=k.optimizers.Adam(0.005), loss=k.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.save(tmp_path / "gru.keras")
    (tmp_path / "gru_base.toml").write_text(GRU_BASE)
    assert _port(tmp_path, tmp_path / "gru.keras", "gru_base.toml", "port") == 4
    manifest = json.loads((tmp_path / "port" / "port.json").read_text())
    assert not manifest["passed"] and "trajectory" in manifest["failed_stages"]
    assert "adam_epsilon_hat" in manifest["causes"]
    readme = (tmp_path / "port" / "README.md").read_text()
    assert "does not train the same" in readme and "cause [adam_epsilon_hat]" in readme and "--strict" in readme


def test_bad_input_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = _mlp_archive(tmp_path)
    (tmp_path / "with_model.toml").write_text(MLP_BASE + '[[model.layers]]\ntype = "dense"\nunits = 1\n')
    assert _port(tmp_path, source, "with_model.toml", "port") == 2
    assert "a base spec has no [model]" in capsys.readouterr().err
    assert not (tmp_path / "port").exists()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    assert _port(tmp_path, source, "mlp_base.toml", "busy") == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    assert main(["port", str(source), "--to", "keras", "--base", str(tmp_path / "mlp_base.toml"), "--out", "x"]) == 2
    assert "already a keras model" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".port-")] == []
