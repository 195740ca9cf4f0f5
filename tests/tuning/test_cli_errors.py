"""Bad input to `duofit cv | tune | sweep`: exit code 2, one paragraph naming the problem, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from duofit.cli import main

from .conftest import ROOT

SPACE = "examples/space.toml"


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DUOFIT_DEBUG", raising=False)


def _bad_space(tmp_path: Path) -> str:
    path = tmp_path / "space.json"
    path.write_text(json.dumps({"params": [{"field": "optimizer.lrr", "type": "float", "low": 0.1, "high": 1}]}))
    return str(path)


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["sweep", "examples/seed.toml", "--set", "optimizer.lrr=0.1"], ["optimizer.lrr", "allowed keys here"]),
        (["sweep", "examples/seed.toml", "--set", "optimizer.lr"], ["FIELD=VALUE"]),
        (["sweep", "examples/seed.toml"], ["nothing to sweep"]),
        (["cv", "examples/seed.toml", "--folds", "1"], ["--folds", "2 <= folds"]),
        (["cv", "examples/seed.toml", "--backends", "jax"], ["unknown backend 'jax'"]),
        (["tune", "examples/seed.toml", "--space", "{bad}"], ["params[0]", "optimizer.lrr"]),
        (["tune", "examples/seed.toml", "--space", "missing.toml"], ["search-space file not found"]),
        (["tune", "examples/seed.toml", "--space", SPACE, "--trials", "1", "--total", "2"], ["--total"]),
        (["tune", "examples/seed.toml", "--space", SPACE, "--metric", "r2"], ["--metric"]),
        (
            ["tune", "examples/seed.toml", "--space", SPACE, "--storage", "{pg}"],
            ["--storage", "cannot open the database"],
        ),
    ],
)
def test_bad_input_exits_2(argv: list[str], needles: list[str], tmp_path: Path, capsys) -> None:
    pg = f"postgresql+psycopg2://nobody@127.0.0.1:{_closed_port()}/none"
    argv = [a.replace("{bad}", _bad_space(tmp_path)).replace("{pg}", pg) for a in argv]
    if "--storage" in argv and "psycopg2" in argv[-1]:
        pytest.importorskip("psycopg2")
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, f"exit {code}\n{out}\n{err}"
    assert err.startswith("error:") and "Traceback" not in err + out
    for needle in needles:
        assert needle in err, err


def test_real_process_prints_no_traceback() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DUOFIT_DEBUG"}
    proc = subprocess.run(
        [sys.executable, "-m", "duofit.cli", "sweep", "examples/seed.toml", "--set", "model.layers[7].units=3"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2 and "index out of range" in proc.stderr and "Traceback" not in proc.stderr


def test_commands_are_registered() -> None:
    from duofit.cli import build_parser

    help_text = build_parser().format_help()
    for command in ("cv", "tune", "sweep"):
        assert command in help_text
