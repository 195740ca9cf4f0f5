"""The model workloads in the benchmark: FLOPs of the new layers, the stock-layer baselines, the suite."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from duofit.bench.flops import forward_flops_per_sample
from duofit.bench.measure import baseline_problem, mlp_of
from duofit.bench.plan import plan_matrix
from duofit.bench.stock import STOCK_CHECKS, stock_graph, stock_problem
from duofit.bench.summary import RATIOS
from duofit.common.data import load_dataset
from duofit.common.loader import load_spec

ROOT = Path(__file__).resolve().parents[2]
WORKLOADS = ROOT / "benchmarks" / "workloads"
MODELS = ("lstm_sunspots", "gru_digits_rows", "text_transformer", "resnet_digits")


def _spec(name: str):  # type: ignore[no-untyped-def]
    return load_spec(WORKLOADS / f"{name}.toml")


def test_lstm_flops_by_hand() -> None:
    """12 steps of 4 gates x 16 units x (1 input + 16 recurrent) multiply-adds, then dense 16 -> 1."""
    expected = 2 * 12 * 4 * 16 * (1 + 16) + 2 * 16 * 1
    assert forward_flops_per_sample(_spec("lstm_sunspots"), 12, (12, 1)) == expected


def test_transformer_flops_by_hand() -> None:
    """Per attention block: four 16x16 projections at 40 steps, q.k and p.v over 40x40 for 2 heads of 8;
    the feed-forward dense 16 -> 16 at 40 steps; the classifier 16 -> 2. Two blocks."""
    steps, width = 40, 16
    attention = 4 * steps * width * width + 2 * steps * steps * width
    block = attention + steps * width * width
    expected = 2 * (2 * block + width * 2)
    assert forward_flops_per_sample(_spec("text_transformer"), steps, (steps,)) == expected


@pytest.mark.parametrize("name", MODELS)
def test_every_model_workload_runs_in_the_graph_baselines(name: str) -> None:
    spec = _spec(name)
    assert stock_problem(spec) is None
    for backend in ("lean-torch", "seed-loop", "keras-tuned", "keras-naive-fit"):
        assert baseline_problem(spec, backend) is None
    assert "cannot run model.layers[0]" in str(baseline_problem(spec, "numpy-lean"))


def test_a_layer_without_a_stock_form_names_the_layer_and_the_stock_list() -> None:
    spec = load_spec(ROOT / "examples" / "conv1d_sunspots.toml")
    problem = str(baseline_problem(spec, "lean-torch"))
    assert "model.layers[0] (type 'conv1d')" in problem and "lstm" in problem and "Use a duofit-* backend" in problem


def test_models_suite_plans_every_duofit_backend_against_both_lean_baselines() -> None:
    plan = plan_matrix("models", backends=["duofit-torch", "lean-torch"], repeats=1)
    assert {c.workload for c in plan.cells} == set(MODELS)
    assert {c.backend for c in plan.cells} == {"duofit-torch", "lean-torch"}


def test_keras_target_is_tighter_on_the_model_workloads() -> None:
    keras = next(r for r in RATIOS if r.name == "duofit-keras / keras-tuned")
    assert keras.target_for("text_transformer") == 1.10 and keras.target_for("seed") == keras.target
    assert keras.met(1.12, "seed") and not keras.met(1.12, "text_transformer")


@pytest.mark.torch
@pytest.mark.parametrize("name", ["gru_digits_rows", "resnet_digits", "text_transformer"])
def test_flops_equal_torch_flop_counter_on_the_stock_model(name: str) -> None:
    """torch's own FlopCounterMode on the stock model (attention through the math kernel, which it
    counts; its CPU flash kernel and the fused LSTM are not counted by it) gives the same FLOPs."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from duofit.bench.torch_models import StockNet, channels_first

    spec = _spec(name)
    shape = {"gru_digits_rows": (8, 8), "resnet_digits": (8, 8, 1), "text_transformer": (40,)}[name]
    tokens = name == "text_transformer"
    net = StockNet(stock_graph(spec, shape, tokens))
    x = torch.randint(1, 2000, (3, *shape)) if tokens else channels_first(torch.randn(3, *shape))
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        net(x)
    assert counter.get_total_flops() / 3 == forward_flops_per_sample(spec, 0, shape)


@pytest.mark.torch
@pytest.mark.parametrize("name", MODELS)
def test_lean_torch_trains_every_model_workload(name: str) -> None:
    from duofit.bench.torch_loops import lean_torch

    if name == "lstm_sunspots":
        pytest.importorskip("statsmodels")  # the series extra (installed in the `all` env)

    spec = _spec(name)
    ds = load_dataset(spec)
    mlp = dataclasses.replace(mlp_of(spec, ds, "lean-torch"), epochs=2)
    m = lean_torch(mlp, ds, "cpu")
    assert len(m.epoch_ends) == 2 and m.final_train_loss == m.final_train_loss  # finite, not NaN
    assert m.test_outputs.shape[0] == len(ds.x_test)


@pytest.mark.keras
@pytest.mark.parametrize("name", ["text_transformer", "resnet_digits"])
def test_keras_tuned_trains_the_graph_workloads(name: str) -> None:
    from duofit.bench.keras_loops import keras_tuned

    spec = _spec(name)
    ds = load_dataset(spec)
    mlp = dataclasses.replace(mlp_of(spec, ds, "keras-tuned"), epochs=2)
    m = keras_tuned(mlp, ds, "cpu")
    assert len(m.epoch_ends) == 2 and m.test_outputs.shape == (len(ds.x_test), 2 if "text" in name else 10)


@pytest.mark.parity
def test_both_stock_builders_cover_the_same_layer_types() -> None:
    from duofit.bench.keras_models import KERAS_STOCK
    from duofit.bench.torch_models import TORCH_STOCK

    assert set(TORCH_STOCK) == set(KERAS_STOCK) == set(STOCK_CHECKS)
