"""Sweeps: the example file, --set parsing, both backends side by side, table and figure."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from duofit.cli import main
from duofit.common.errors import SpecError
from duofit.tuning.sweep import is_sweep_file, load_sweep, sweep

from .conftest import tiny_seed

# Same initial weights and batches on both backends: final losses agree to float32 drift.
LOSS_PARITY = 1e-3


def test_example_sweep_file_is_the_seed_lr_challenge() -> None:
    assert is_sweep_file("examples/lr_sweep.toml") and not is_sweep_file("examples/seed.toml")
    spec, values = load_sweep("examples/lr_sweep.toml")
    assert spec.name == "seed" and values == {"optimizer.lr": [0.1, 0.01, 0.001]}


def test_bad_sweep_file(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('[sweep]\nspec = "x.toml"\nvalues = 1\n', encoding="utf-8")
    with pytest.raises(SpecError, match=r"sweep.values: unknown key; allowed: spec, set"):
        load_sweep(path)


def test_bad_field_fails_before_any_run() -> None:
    with pytest.raises(SpecError, match=r"optimizer\.lrr"):
        sweep(tiny_seed(), {"optimizer.lrr": [0.1]}, ["torch"])


@pytest.mark.torch
def test_sweep_in_process_grid_of_two_fields(tmp_path: Path) -> None:
    res = sweep(tiny_seed(), {"optimizer.lr": [0.1, 0.01], "train.batch_size": [32, 64]}, ["torch"], isolate=False)
    table = res.table()
    assert len(table) == 4 and list(table.columns[:3]) == ["optimizer.lr", "train.batch_size", "backend"]
    assert set(zip(table["optimizer.lr"], table["train.batch_size"], strict=True)) == {
        (0.1, 32),
        (0.1, 64),
        (0.01, 32),
        (0.01, 64),
    }


@pytest.mark.parity
@pytest.mark.slow
def test_sweep_cli_both_backends(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps(tiny_seed()), encoding="utf-8")
    sweep_file = tmp_path / "lr.toml"
    sweep_file.write_text('[sweep]\nspec = "tiny.json"\nset = { "optimizer.lr" = [0.1, 0.001] }\n', encoding="utf-8")
    out = tmp_path / "out"
    assert main(["sweep", str(sweep_file), "--backends", "torch,keras", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "optimizer.lr" in printed and "keras" in printed and "torch" in printed
    table = pd.read_csv(out / "sweep.csv")
    assert len(table) == 4
    losses = table.pivot(index="optimizer.lr", columns="backend", values="final_loss")
    assert (losses["torch"] - losses["keras"]).abs().max() < LOSS_PARITY
    assert losses.loc[0.1, "torch"] < losses.loc[0.001, "torch"]  # 5 epochs: the larger step learns faster
    history = pd.read_csv(out / "sweep_history.csv")
    assert set(history["backend"]) == {"torch", "keras"} and len(history) == 4 * 5
    assert (out / "sweep_curves.png").stat().st_size > 1000


@pytest.mark.torch
def test_sweep_cli_prints_verdicts_and_exits_3_when_every_run_diverged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tiny_seed(epochs=3)
    doc["optimizer"] = {"type": "sgd", "lr": 0.1}  # lr 1e5 and more: the loss is huge or NaN in epoch 1
    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps(doc), encoding="utf-8")
    out = tmp_path / "out"
    args = ["sweep", str(spec), "--backends", "torch", "--in-process", "--quiet", "--out", str(out)]
    assert main([*args, "--set", "optimizer.lr=1e5,1e6"]) == 3
    printed = capsys.readouterr()
    assert "verdict" in printed.out and "every run of the sweep diverged (2 runs)" in printed.err
    assert list(pd.read_csv(out / "sweep.csv")["verdict"]) == ["diverged", "diverged"]
    assert main([*args, "--set", "optimizer.lr=1e5,0.1"]) == 0  # some diverged: noted, exit 0
    assert "note: torch diverged at optimizer.lr=100000.0" in capsys.readouterr().out
    verdicts = pd.read_csv(out / "sweep.csv").set_index("optimizer.lr")["verdict"]
    assert verdicts[1e5] == "diverged" and verdicts[0.1] != "diverged"
    assert (out / "sweep_curves.png").stat().st_size > 1000
