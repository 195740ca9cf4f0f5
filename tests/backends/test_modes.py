"""Compiled and mixed-precision modes (train.compile, train.precision): spec rules, refusals, torch runs."""

from __future__ import annotations

import math
import shutil
import tomllib
from typing import Any

import numpy as np
import pytest

import duofit
from duofit.backends.base import compile_seconds
from duofit.common.errors import SpecError
from duofit.common.spec.train import TrainSpec
from duofit.parity.strict import strict_spec

HAS_CXX = shutil.which("g++") is not None or shutil.which("c++") is not None
NO_CXX = "no C++ compiler on PATH: torch.compile's inductor builds its CPU kernels with one (apt-get install g++)"


def _seed(epochs: int = 3, **train: Any) -> duofit.Spec:
    with open("examples/seed.toml", "rb") as fh:
        doc = tomllib.load(fh)
    doc["train"].update(epochs=epochs, **train)
    return duofit.load_spec(doc)


def test_precision_needs_float32_and_names_the_field() -> None:
    with pytest.raises(SpecError, match="needs dtype = 'float32'") as err:
        _seed(dtype="float64", precision="mixed_bfloat16")
    assert err.value.path == "train.precision"
    assert _seed(precision="mixed_bfloat16").train.compute_dtype == "bfloat16"
    assert TrainSpec().precision == "float32" and TrainSpec().compile is False


def test_strict_mode_refuses_mixed_precision() -> None:
    with pytest.raises(SpecError, match="strict parity runs in float64") as err:
        strict_spec(_seed(precision="mixed_bfloat16"))
    assert err.value.path == "train.precision"


@pytest.mark.keras
def test_keras_modes_table() -> None:
    from duofit.backends.keras.modes import jit_compile_setting, layer_dtype

    assert layer_dtype(TrainSpec(precision="mixed_bfloat16")) == "mixed_bfloat16"
    assert layer_dtype(TrainSpec()) == "float32"
    assert jit_compile_setting(TrainSpec(), "tensorflow") == "auto"  # Keras' own choice when off
    assert jit_compile_setting(TrainSpec(compile=True), "tensorflow") is True
    with pytest.raises(SpecError, match="not supported on backend 'keras-torch'") as err:
        jit_compile_setting(TrainSpec(compile=True), "torch")
    assert err.value.path == "train.compile"


def test_compile_seconds_is_first_epoch_over_the_steady_one() -> None:
    assert compile_seconds([2.0, 0.5, 0.7, 0.6]) == pytest.approx(1.4)
    assert compile_seconds([0.4, 0.5, 0.6]) == 0.0  # a first epoch faster than the rest: nothing to compile
    assert math.isnan(compile_seconds([1.0]))


@pytest.mark.torch
def test_torch_mixed_precision_trains_in_bfloat16_with_float32_master_weights() -> None:
    import torch

    from duofit.backends.torch.layers import build_model
    from duofit.backends.torch.modes import inference

    spec = _seed(epochs=2, precision="mixed_bfloat16")
    model, _ = build_model(spec, (2,), "float32")
    x = torch.randn(64, 2)
    with torch.no_grad():
        mixed = inference(model, spec.train, torch.device("cpu"), torch.float32)(x)
        plain = model(x)
    assert mixed.dtype == torch.float32 and all(p.dtype == torch.float32 for p in model.parameters())
    gap = float((mixed - plain).abs().max() / plain.abs().max())
    assert 0 < gap < 2**-6  # bfloat16 rounding, not float32's and not a formula
    res = duofit.run(spec, backend="torch")
    ref = duofit.run(_seed(epochs=2), backend="torch")
    assert res.environment["precision"] == "mixed_bfloat16" and res.predictions.dtype == np.float32
    assert np.all(np.isfinite(res.history["loss"]))
    assert abs(res.history["loss"].iloc[-1] - ref.history["loss"].iloc[-1]) < 1e-2
    assert not np.array_equal(res.history["loss"], ref.history["loss"])
    assert {w.dtype for w in res.weights.values()} == {np.dtype("float32")}


@pytest.mark.torch
def test_torch_compile_refused_without_a_compiler(monkeypatch: pytest.MonkeyPatch) -> None:
    from duofit.backends.torch.modes import check_compiler

    monkeypatch.setenv("CXX", "duofit-no-such-compiler++")
    with pytest.raises(SpecError, match="'duofit-no-such-compiler\\+\\+', which is not on PATH") as err:
        check_compiler("cpu")
    assert err.value.path == "train.compile" and "apt-get install g++" in str(err.value)
    check_compiler("cuda")  # inductor's GPU kernels are Triton: no host compiler asked for


@pytest.mark.torch
@pytest.mark.slow
@pytest.mark.skipif(not HAS_CXX, reason=NO_CXX)
def test_torch_compile_matches_eager_and_reports_compile_time() -> None:
    eager = duofit.run(_seed(epochs=3), backend="torch")
    compiled = duofit.run(_seed(epochs=3, compile=True), backend="torch")
    assert compiled.environment["torch_compile"] is True and eager.environment["torch_compile"] is False
    np.testing.assert_allclose(compiled.history["loss"], eager.history["loss"], rtol=1e-5)
    assert compiled.metrics == pytest.approx(eager.metrics, abs=0.01)
    assert compiled.timings["compile_s"] > compiled.timings["steady_epoch_s"]  # compilation is in epoch 1
    assert compiled.timings["first_epoch_s"] > compiled.timings["compile_s"] > 0


@pytest.mark.slow
@pytest.mark.skipif(not HAS_CXX, reason=NO_CXX)
def test_torch_compile_trains_recurrent_layers_as_eager() -> None:
    """A compiled step with an LSTM (eager inside it: torch 2.13's compiled oneDNN LSTM backward fails) and a GRU."""
    with open("examples/gru_digits_rows.toml", "rb") as fh:
        doc = tomllib.load(fh)
    doc["model"]["layers"] = [
        {"type": "lstm", "units": 8, "return_sequences": True},
        {"type": "gru", "units": 8},
        {"type": "dense", "units": 10},
    ]
    doc["train"].update(epochs=2)
    eager = duofit.run(duofit.load_spec(doc), backend="torch")
    doc["train"].update(compile=True)
    compiled = duofit.run(duofit.load_spec(doc), backend="torch")
    assert compiled.environment["torch_compile"] is True
    np.testing.assert_allclose(compiled.history["loss"], eager.history["loss"], rtol=1e-5)
