"""Helpers of the exported-script tests: shorten an example, run a script without duofit, compare with duofit.run."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from duofit.common.loader import load_spec
from duofit.common.result import RunResult
from duofit.common.spec import Spec

ROOT = Path(__file__).resolve().parents[2]
RUFF = Path(sys.executable).with_name("ruff")
# float64 on the same CPU kernels: the per-step losses differ only by rounding order (torch's fused
# vs. single-tensor optimizer kernels; on Keras they come out bit for bit equal); a translation
# error shows up at 1e-6 or more
RTOL = 1e-12
# The scripts' metrics are numpy closed forms of duofit's (sklearn) references, equal to 1e-12
# (tests/common/test_metrics.py), on outputs equal to RTOL
METRIC_TOL = 1e-9

# a standalone run: duofit made unimportable in the child process
RUNNER = (
    "import sys, runpy; sys.modules['duofit'] = None; sys.argv = sys.argv[1:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


def short_spec(name: str, epochs: int, **optimizer: object) -> Spec:
    """Example ``name`` trained for ``epochs`` in float64 (optimizer fields replaced by ``optimizer``)."""
    spec = load_spec(ROOT / "examples" / f"{name}.toml")
    if spec.data.kind == "sunspots":  # the series ships with statsmodels (the `series` extra; the `all` env has it)
        pytest.importorskip("statsmodels")
    update: dict[str, object] = {"train": spec.train.model_copy(update={"epochs": epochs, "dtype": "float64"})}
    if optimizer:
        update["optimizer"] = spec.optimizer.model_copy(update=optimizer)
    return spec.model_copy(update=update)


def variant(base: Spec, **sections: dict) -> Spec:
    """``base`` with sections replaced (validated again, as a spec file would be)."""
    data = base.model_dump(mode="json", exclude_none=True)
    data.update(sections)
    return load_spec(data)


def seed_features(activation: str) -> dict:
    """A ``model`` section for the seed data with batch norm, dropout, leaky_relu and kernel penalties."""
    return {
        "model": {
            "layers": [
                {"type": "dense", "units": 16, "activation": activation, "l2": 0.001},
                {"type": "batch_norm", "momentum": 0.2},
                {"type": "dropout", "rate": 0.3},
                {"type": "dense", "units": 8, "activation": "leaky_relu", "l1": 0.0005},
                {"type": "dense", "units": 1},
            ]
        },
    }


def probability_spec(task: str, labels: str = "integer") -> Spec:
    """A spec whose loss reads probabilities (``from_logits = false``): a sigmoid or softmax last layer.

    ``task`` is ``"binary"`` (the seed data) or ``"multiclass"`` (the digits, ``labels`` as given).
    """
    if task == "binary":
        base, last, loss = short_spec("seed", 2), {"units": 1, "activation": "sigmoid"}, {"type": "binary_crossentropy"}
    else:
        base, last = short_spec("multiclass", 1), {"units": 10, "activation": "softmax"}
        loss = {"type": "categorical_crossentropy", "labels": labels}
    layers = [{"type": "dense", "units": 8, "activation": "relu"}, {"type": "dense", **last}]
    return variant(base, model={"layers": layers}, loss={**loss, "from_logits": False})


def bidirectional_spec(first: dict, second: dict, epochs: int = 1) -> Spec:
    """The digits as 8 steps of 8 pixels through two bidirectional layers (the first returns sequences), float64.

    ``first`` / ``second`` are ``{"type": ..., "merge": ...}`` (the wrapped layer's type and the merge).
    """
    layers = [
        {
            "type": "bidirectional",
            "layer": {"type": first["type"], "units": 4, "return_sequences": True},
            "merge": first["merge"],
        },
        {"type": "bidirectional", "layer": {"type": second["type"], "units": 3}, "merge": second["merge"]},
        {"type": "dense", "units": 10},
    ]
    return variant(
        short_spec("gru_digits_rows", epochs),
        model={"layers": layers},
        optimizer={"type": "adam", "lr": 0.01},
        train={"epochs": epochs, "batch_size": 64, "dtype": "float64"},
    )


def lint_specs() -> dict[str, Spec]:
    """Specs whose scripts once were not ruff-clean: no metrics, a standardized regression target,
    probability losses, named layers whose Keras call is split after the constructor, bidirectional layers.
    """
    regression = short_spec("regression", 1)
    data = regression.data.model_dump(mode="json", exclude_none=True)
    named = [
        {"type": "conv1d", "name": "c", "filters": 4, "kernel_size": 3},
        {"type": "global_avg_pool1d", "name": "mean"},
        {"type": "dense", "name": "fc", "units": 10},
    ]
    return {
        "no_metrics": variant(short_spec("seed", 1), metrics=[]),
        "no_metrics_multiclass": variant(short_spec("multiclass", 1), metrics=[]),
        "standardized_target": variant(regression, data={**data, "standardize_target": True}),
        "binary_probabilities": probability_spec("binary"),
        "multiclass_probabilities": probability_spec("multiclass", "one_hot"),
        "named_conv1d": variant(short_spec("gru_digits_rows", 1), model={"layers": named}),
        "bidirectional": bidirectional_spec({"type": "lstm", "merge": "concat"}, {"type": "gru", "merge": "sum"}),
    }


def run_script(script: Path) -> dict:
    """Run ``script`` with duofit unimportable; return the history JSON it writes."""
    history = script.with_name("history.json")
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, str(script), "--history", str(history)],
        capture_output=True,
        text=True,
        cwd=script.parent,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "epoch 1/" in proc.stdout
    return json.loads(history.read_text())


def check_same(spec: Spec, script: Path, backend: str, strict: bool = False) -> tuple[dict, RunResult]:
    """Run the exported ``script`` and compare it with ``duofit.run(spec, backend=...)``.

    Per-step, epoch and validation losses to :data:`RTOL`; per-epoch validation metrics and test
    metrics to :data:`METRIC_TOL`. Returns the script's history and duofit's result.
    """
    import duofit

    got = run_script(script)
    ref = duofit.run(spec, backend=backend, strict=strict)
    want_steps = np.asarray(ref.steps["loss"], dtype=np.float64)
    np.testing.assert_allclose(np.asarray(got["step_loss"]), want_steps, rtol=RTOL, atol=0)
    hist = ref.history
    np.testing.assert_allclose([r["loss"] for r in got["history"]], hist["loss"], rtol=RTOL)
    np.testing.assert_allclose([r["val_loss"] for r in got["history"]], hist["val_loss"], rtol=RTOL)
    for column in hist.columns:
        if column.startswith("val_") and column != "val_loss":
            np.testing.assert_allclose([r[column] for r in got["history"]], hist[column], rtol=METRIC_TOL)
    for column, value in ref.metrics.items():
        assert got["test_metrics"][column] == pytest.approx(value, rel=METRIC_TOL, abs=METRIC_TOL, nan_ok=True)
    return got, ref


def assert_commands_exist(text: str) -> list[str]:
    """Every ```duofit <command> ...``` a script's text names exists, with each of its ``--options``.

    Returns the commands found (a test asserts there are some).
    """
    from duofit.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    found = re.findall(r"`duofit ([a-z]+)([^`]*)`", text)
    for name, rest in found:
        assert name in commands, f"`duofit {name}` is not a command ({sorted(commands)})"
        options = {o for a in commands[name]._actions for o in a.option_strings}
        for flag in re.findall(r"--[a-z][a-z-]*", rest):
            assert flag in options, f"`duofit {name}` has no {flag} ({sorted(options)})"
    return [f"duofit {name}{rest}" for name, rest in found]


def ruff_clean(script: Path) -> None:
    """``ruff check`` and ``ruff format --check`` pass on ``script`` with the project's settings."""
    if not RUFF.exists():
        pytest.skip(f"ruff is not installed beside {sys.executable}")
    config = ["--config", str(ROOT / "pyproject.toml")]
    for args in (["check", *config, str(script)], ["format", "--check", *config, str(script)]):
        proc = subprocess.run([str(RUFF), *args], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
