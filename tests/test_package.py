"""Package-level promises: lazy framework imports, backend tables cover the whole spec."""

from __future__ import annotations

import subprocess
import sys
import typing

import pytest

from duofit.common import spec as spec_module


@pytest.mark.smoke
def test_import_duofit_imports_no_framework() -> None:
    code = (
        "import duofit, sys; duofit.load_spec('examples/seed.toml'); duofit.available_backends(); "
        "bad = [m for m in ('torch', 'tensorflow', 'keras', 'jax') if m in sys.modules]; "
        "assert not bad, bad; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def _members(union: object) -> set[type]:
    args = typing.get_args(union)
    inner = typing.get_args(args[0]) if args and typing.get_origin(args[0]) is typing.Union else args
    return {a for a in inner if isinstance(a, type)}


@pytest.mark.parametrize(
    "backend", [pytest.param("torch", marks=pytest.mark.torch), pytest.param("keras", marks=pytest.mark.keras)]
)
def test_backend_tables_cover_every_spec_type(backend: str) -> None:
    """Adding a layer/loss/optimizer/activation to the spec fails here until every backend has it."""
    import importlib

    layers = importlib.import_module(f"duofit.backends.{backend}.layers")
    losses = importlib.import_module(f"duofit.backends.{backend}.losses")
    optimizers = importlib.import_module(f"duofit.backends.{backend}.optimizers")
    metrics = importlib.import_module(f"duofit.backends.{backend}.metrics")
    assert set(layers.LAYERS) == _members(spec_module.LayerSpec)
    assert set(losses.LOSSES) == _members(spec_module.LossSpec)
    assert set(optimizers.OPTIMIZERS) == _members(spec_module.OptimizerSpec)
    assert set(layers.ACTIVATIONS) == set(spec_module.ACTIVATIONS)
    assert set(metrics.METRICS) == set(typing.get_args(spec_module.MetricName)) == set(spec_module.METRIC_NAMES)


def test_native_metric_modules_are_twins() -> None:
    """torch and keras ``metrics.py`` export the same names (read from source: no framework needed)."""
    import ast
    from pathlib import Path

    def exported(backend: str) -> set[str]:
        tree = ast.parse((Path(spec_module.__file__).parents[2] / "backends" / backend / "metrics.py").read_text())
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets):
                return set(ast.literal_eval(node.value))
        raise AssertionError(f"{backend}/metrics.py has no __all__")

    shared = {"DEFAULT_BATCH", "METRICS", "NativeMetric", "collect", "make_metric", "native_metrics"}
    assert shared <= exported("torch")
    assert shared <= exported("keras")
