"""``duofit import`` of a bad torch source: exit 2, one error paragraph, no traceback, nothing written."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from duofit.cli import main

pytestmark = pytest.mark.torch

FACTORIES = """
import torch
from torch import nn


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 1)

    def forward(self, x):
        if x.sum() > 0:  # control flow on a tensor's value: fx cannot trace it
            return self.fc(x)
        return -self.fc(x)


def raises():
    raise RuntimeError("no GPU here")


def not_a_module():
    return 42


def branchy():
    return Branchy()


def prelu():
    return nn.Sequential(nn.Linear(4, 3), nn.PReLU(), nn.Linear(3, 1))


def wide():
    return nn.Sequential(nn.Linear(5, 1))
"""

BASE = """
[data]
kind = "make_classification"
params = { n_samples = 100, n_features = 4, random_state = 0 }
[loss]
type = "binary_crossentropy"
from_logits = true
"""


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("bad_nets:raises", "the factory raised RuntimeError: no GPU here"),
        ("bad_nets:not_a_module", "returned a int, not a torch.nn.Module"),
        ("bad_nets:branchy", "fx"),
        ("bad_nets:prelu", "PReLU"),
        ("bad_nets:missing", "has no attribute 'missing'"),
        ("no_such_module:make", "no module 'no_such_module'"),
        ("model.pth", "never loads"),
        ("bad_nets:wide", "mat1 and mat2"),
    ],
)
def test_bad_torch_sources_exit_2_without_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], source: str, expected: str
) -> None:
    (tmp_path / "bad_nets.py").write_text(FACTORIES)
    (tmp_path / "base.toml").write_text(BASE)
    (tmp_path / "model.pth").write_bytes(b"\x80\x04never unpickled")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "bad_nets", raising=False)
    assert main(["import", source, "--base", "base.toml", "--out", "out/spec.toml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def good():
    from torch import nn

    return nn.Sequential(nn.Linear(4, 1))


@pytest.mark.parametrize(
    ("out", "expected"),
    [("spec.json", "must be a .toml file"), ("folder", "must be a .toml file"), ("taken/spec.toml", "exists")],
)
def test_bad_import_outputs_exit_2_before_reading_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], out: str, expected: str
) -> None:
    (tmp_path / "base.toml").write_text(BASE)
    (tmp_path / "folder").mkdir()
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "spec.toml").write_text("mine")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "good", good)
    source = f"{__name__}:good"
    assert main(["import", source, "--base", "base.toml", "--out", out]) == 2
    assert expected in capsys.readouterr().err
    assert (tmp_path / "taken" / "spec.toml").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base.toml", "folder", "taken"]
    assert main(["import", source, "--base", "base.toml", "--out", "taken/spec.toml", "--overwrite"]) == 0
    assert (tmp_path / "taken" / "spec.weights.npz").exists()


def test_export_into_a_folder_named_like_a_script_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "train.py").mkdir()
    seed = Path(__file__).resolve().parents[2] / "examples" / "seed.toml"
    assert main(["export", str(seed), "--to", "torch", "--out", str(tmp_path / "train.py")]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["train.py"]
