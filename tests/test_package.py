"""Package-level promises: lazy framework imports, backend tables cover the whole spec."""

from __future__ import annotations

import subprocess
import sys
import typing

import pytest

from duofit.common import spec as spec_module


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
    assert set(layers.LAYERS) == _members(spec_module.LayerSpec)
    assert set(losses.LOSSES) == _members(spec_module.LossSpec)
    assert set(optimizers.OPTIMIZERS) == _members(spec_module.OptimizerSpec)
    assert set(layers.ACTIVATIONS) == set(spec_module.ACTIVATIONS)
