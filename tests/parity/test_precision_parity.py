"""Parity in the compiled and mixed-precision modes: tolerances, causes, and torch vs Keras runs."""

from __future__ import annotations

import shutil
import tomllib
from typing import Any

import pytest

import duofit
from duofit.common.overrides import apply_overrides
from duofit.parity import parity
from duofit.parity.causes import matching_causes
from duofit.parity.causes_precision import BF16_UNIT_ROUNDOFF
from duofit.parity.report import TOLERANCES, tolerance_key

HAS_CXX = shutil.which("g++") is not None or shutil.which("c++") is not None


def _seed(epochs: int = 3, **train: Any) -> duofit.Spec:
    with open("examples/seed.toml", "rb") as fh:
        doc = tomllib.load(fh)
    doc["train"].update(epochs=epochs, **train)
    return duofit.load_spec(doc)


def test_mixed_precision_has_bfloat16_tolerances_and_causes() -> None:
    plain, mixed = _seed(), _seed(precision="mixed_bfloat16")
    assert tolerance_key(plain) == "float32" and tolerance_key(mixed) == "mixed_bfloat16"
    bf16 = TOLERANCES["mixed_bfloat16"]
    assert BF16_UNIT_ROUNDOFF == 2.0**-8
    assert TOLERANCES["float32"]["forward"] < bf16["forward"] <= bf16["trajectory"] <= bf16["final_weights"]
    ids = [c.id for c in matching_causes(mixed, mixed, strict=False, stage="forward")]
    assert ids[:2] == ["bf16_bias_rounding", "bf16_float32_ops"] and "bfloat16_rounding" in ids
    assert "bfloat16_rounding" not in {c.id for c in matching_causes(plain, plain, False, "forward")}
    compiled = _seed(compile=True)
    assert "compiled_kernels" in {c.id for c in matching_causes(compiled, plain, False, "trajectory")}
    assert "compiled_kernels" not in {c.id for c in matching_causes(plain, plain, False, "trajectory")}


@pytest.mark.parity
def test_mixed_bfloat16_torch_vs_keras_passes_bfloat16_tolerances() -> None:
    report = parity(_seed(epochs=3, precision="mixed_bfloat16"))
    assert report.passed, report.text()
    forward = next(s for s in report.stages if s.stage == "forward")
    assert forward.tolerance == TOLERANCES["mixed_bfloat16"]["forward"]
    assert all(r.environment["precision"] == "mixed_bfloat16" for r in report.results.values())


@pytest.mark.parity
def test_deliberate_precision_mismatch_fails_and_names_the_casts() -> None:
    """A float32 Keras run against a mixed-precision torch run: float32 tolerances, bfloat16 causes named."""
    spec = _seed(epochs=1)
    report = parity(
        spec, backends=("keras", "torch"), overrides={"torch": ['train.precision="mixed_bfloat16"']}, epochs=1
    )
    forward = next(s for s in report.stages if s.stage == "forward")
    assert forward.status == "fail" and forward.tolerance == TOLERANCES["float32"]["forward"]
    assert forward.max_rel < TOLERANCES["mixed_bfloat16"]["forward"]  # a bfloat16 rounding, not a formula
    ids = [c.id for c in forward.causes]
    assert {"bf16_bias_rounding", "bf16_float32_ops", "bfloat16_rounding"} <= set(ids)
    assert "bf16_bias_rounding" in report.text()
    assert apply_overrides(spec, ['train.precision="mixed_bfloat16"']).train.precision == "mixed_bfloat16"


@pytest.mark.parity
@pytest.mark.slow
@pytest.mark.skipif(not HAS_CXX, reason="no C++ compiler on PATH: torch.compile's inductor needs one on the CPU")
def test_compiled_torch_vs_xla_keras_passes_float32_tolerances() -> None:
    report = parity(_seed(epochs=2, compile=True))
    assert report.passed, report.text()
    assert report.results["torch"].environment["torch_compile"] is True
    assert report.results["keras"].environment["jit_compile"] is True
    trajectory = next(s for s in report.stages if s.stage == "trajectory")
    assert trajectory.tolerance == TOLERANCES["float32"]["trajectory"]
