"""Graph and sequence models through every workflow: convert, cv, tune, sweep, the sklearn estimators.

The same commands and estimators as for a chain of dense layers, with no special case per layer:
a residual MLP (``add``), recurrent and conv1d models on digits rows and series windows, and an
embedding (+ attention) text model on the shipped reviews. Tiny data and one or two epochs: these
tests check that the workflows run and stay honest (torch files load into plain ``torch.nn``
modules; series folds keep time order), not that the models learn much.
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from duofit.cli import main
from duofit.common.data import load_dataset, read_arrays
from duofit.common.errors import SpecError
from duofit.common.init import initial_weights
from duofit.common.loader import load_spec
from duofit.tuning.folds import make_folds, pooled_data, series_gap

from .test_attention import encoder

ROOT = Path(__file__).resolve().parents[2]
# float64 forward of the same weights through duofit's torch layers and through plain torch.nn
# modules: the same operations in another order (~1e-15); attention's scale differs by one ulp
# (cause mha_scale_constant), still far below this.
PLAIN_RTOL = 1e-10
# what `duofit convert` promises for float32 (duofit.parity.convert.CONVERT_RTOL)
CONVERT_RTOL = 1e-6


def example(name: str, **train: Any) -> dict[str, Any]:
    """An example spec as a dict, with ``train`` changes and its data path made absolute."""
    doc = tomllib.loads((ROOT / "examples" / f"{name}.toml").read_text(encoding="utf-8"))
    doc["train"].update(train)
    if "path" in doc["data"]:
        doc["data"]["path"] = str(ROOT / "examples" / doc["data"]["path"])
    return doc


def spec_file(tmp_path: Path, doc: dict[str, Any], name: str = "spec") -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return str(path)


def series_csv(tmp_path: Path, n: int = 80) -> str:
    """A rising series with a wiggle: later values are larger, so time order is visible in the targets."""
    t = np.arange(n, dtype=np.float64)
    path = tmp_path / "series.csv"
    pd.DataFrame({"level": t + np.sin(t), "rain": np.cos(0.3 * t)}).to_csv(path, index=False)
    return str(path)


def csv_series_doc(tmp_path: Path, layers: list[dict[str, Any]], **series: int) -> dict[str, Any]:
    return {
        "name": "series",
        "metrics": ["rmse"],
        "data": {
            "kind": "csv_series",
            "path": series_csv(tmp_path),
            "target": "level",
            "features": ["level", "rain"],
            "series": {"window": 6, **series},
            "standardize_target": True,
        },
        "model": {"layers": layers},
        "loss": {"type": "mse"},
        "optimizer": {"type": "adam", "lr": 0.01},
        "train": {"epochs": 2, "batch_size": 16},
    }


def text_encoder(**train: Any) -> dict[str, Any]:
    """The reviews as token ids through embedding (mask_zero), positions, one attention block, a masked mean."""
    doc = {**encoder(**{"epochs": 1, "dtype": "float32", **train}), "name": "encoder", "metrics": ["accuracy"]}
    doc["data"] = {**doc["data"], "path": str(ROOT / "examples" / "data" / "reviews.csv")}
    return doc


LSTM = [{"type": "lstm", "units": 4}, {"type": "dense", "units": 1}]
CONV1D = [
    {"type": "conv1d", "filters": 4, "kernel_size": 3, "activation": "relu"},
    {"type": "global_avg_pool1d"},
    {"type": "dense", "units": 1},
]


# ----------------------------------------------------------------------------- torch files
RECURRENT = {
    "lstm": ({"type": "lstm", "units": 5}, "LSTM", 5),
    "gru": ({"type": "gru", "units": 5}, "GRU", 5),
    "simple_rnn": ({"type": "simple_rnn", "units": 5}, "RNN", 5),
    "bidirectional": ({"type": "bidirectional", "layer": {"type": "lstm", "units": 3}}, "LSTM", 6),
}


def _digits_rows(layer: dict[str, Any]) -> Any:
    return load_spec(
        {
            "data": {"kind": "digits", "sequence_shape": [8, 8]},
            "model": {"layers": [layer, {"type": "dense", "units": 10}]},
            "loss": {"type": "categorical_crossentropy", "from_logits": True},
            "train": {"dtype": "float64"},
        }
    )


def _random_weights(spec: Any, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Initial shapes, random values: a zero bias would hide a misplaced one."""
    rng = np.random.default_rng(0)
    return {k: rng.normal(scale=0.3, size=v.shape) for k, v in initial_weights(spec, shape).items()}


@pytest.mark.torch
@pytest.mark.parametrize("case", sorted(RECURRENT))
def test_torch_file_loads_into_plain_torch_rnn_modules(case: str, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    from duofit.common.registry import get_backend

    layer, module, width = RECURRENT[case]
    spec = _digits_rows(layer)
    weights = _random_weights(spec, (8, 8))
    backend = get_backend("torch")
    path = tmp_path / "model.safetensors"
    backend.save_weights(spec, weights, path, (8, 8))
    state = load_file(str(path))
    rnn_state = {k[2:]: v for k, v in state.items() if k.startswith("0.")}
    assert "weight_ih_l0" in rnn_state and "kernel" not in rnn_state
    bidirectional = case == "bidirectional"
    units = width // 2 if bidirectional else width
    rnn = getattr(torch.nn, module)(8, units, batch_first=True, bidirectional=bidirectional).double()
    rnn.load_state_dict(rnn_state, strict=True)
    head = torch.nn.Linear(width, 10).double()
    head.load_state_dict({k[2:]: v for k, v in state.items() if k.startswith("1.")}, strict=True)

    x = np.random.default_rng(1).normal(size=(7, 8, 8))
    with torch.no_grad():
        _, hidden = rnn(torch.as_tensor(x))
        h_n = hidden[0] if module == "LSTM" else hidden
        last = torch.cat([h_n[0], h_n[1]], dim=-1) if bidirectional else h_n[-1]
        plain = head(last).numpy()
    ours = backend.forward(spec, weights, x)
    np.testing.assert_allclose(plain, ours, rtol=PLAIN_RTOL, atol=1e-12)
    for suffix in (".safetensors", ".npz"):
        backend.save_weights(spec, weights, tmp_path / f"m{suffix}", (8, 8))
        back = backend.load_weights(spec, tmp_path / f"m{suffix}", (8, 8))
        assert sorted(back) == sorted(weights)
        for name in weights:  # the round trip is exact, except torch's second bias summed into Keras' one
            np.testing.assert_allclose(back[name], weights[name], rtol=1e-15, atol=0, err_msg=name)


@pytest.mark.torch
def test_torch_file_loads_into_a_plain_multihead_attention(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    from duofit.common.registry import get_backend

    spec = load_spec(
        {
            "data": {"kind": "digits", "sequence_shape": [8, 8]},
            "model": {
                "layers": [
                    {"type": "multi_head_attention", "num_heads": 2, "key_dim": 4},  # 2 * 4 = the 8 features
                    {"type": "flatten"},
                    {"type": "dense", "units": 10},
                ]
            },
            "loss": {"type": "categorical_crossentropy", "from_logits": True},
            "train": {"dtype": "float64"},
        }
    )
    weights = _random_weights(spec, (8, 8))
    backend = get_backend("torch")
    path = tmp_path / "model.safetensors"
    backend.save_weights(spec, weights, path, (8, 8))
    state = load_file(str(path))
    attention = torch.nn.MultiheadAttention(8, 2, batch_first=True).double()
    attention.load_state_dict({k[2:]: v for k, v in state.items() if k.startswith("0.")}, strict=True)
    head = torch.nn.Linear(64, 10).double()
    head.load_state_dict({k[2:]: v for k, v in state.items() if k.startswith("2.")}, strict=True)
    x = torch.as_tensor(np.random.default_rng(1).normal(size=(5, 8, 8)))
    with torch.no_grad():
        out, _ = attention(x, x, x, need_weights=True)  # need_weights: the reference path, not a fused kernel
        plain = head(out.flatten(1)).numpy()
    np.testing.assert_allclose(plain, backend.forward(spec, weights, x.numpy()), rtol=PLAIN_RTOL, atol=1e-12)
    back = backend.load_weights(spec, path, (8, 8))
    assert all(np.allclose(back[k], weights[k], rtol=1e-15, atol=0) for k in weights)


@pytest.mark.torch
def test_torch_file_in_duofit_layout_still_loads(tmp_path: Path) -> None:
    """Files written before the plain torch names (Keras layout inside) keep loading."""
    from safetensors.torch import save_file

    from duofit.backends.torch.layers import build_model, set_weights
    from duofit.common.registry import get_backend

    spec = _digits_rows(RECURRENT["gru"][0])
    weights = _random_weights(spec, (8, 8))
    model, heads = build_model(spec, (8, 8), "float64")
    set_weights(heads, spec, weights)
    assert "0.recurrent_kernel" in model.state_dict()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "old.safetensors"))
    back = get_backend("torch").load_weights(spec, tmp_path / "old.safetensors", (8, 8))
    assert all(np.array_equal(back[k], weights[k]) for k in weights)


# ----------------------------------------------------------------------------- duofit convert
CONVERT_CASES = {
    "residual_mlp": lambda tmp: example("residual_mlp", epochs=1),
    "gru_digits_rows": lambda tmp: example("gru_digits_rows", epochs=1),
    "conv1d_series": lambda tmp: csv_series_doc(tmp, CONV1D),
    "lstm_series": lambda tmp: csv_series_doc(tmp, LSTM),
    "text_embedding": lambda tmp: example("text_embedding", epochs=1),
}


def _run_and_convert(tmp_path: Path, doc: dict[str, Any], hops: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """``duofit run`` on torch, then ``duofit convert`` hop by hop: (target, format) each."""
    src = tmp_path / "run"
    assert main(["run", spec_file(tmp_path, doc), "--backend", "torch", "-q", "-o", str(src)]) == 0
    manifests = []
    for i, (to, fmt) in enumerate(hops):
        out = tmp_path / f"hop{i}-{to}"
        assert main(["convert", str(src), "--to", to, "--format", fmt, "--out", str(out)]) == 0
        manifests.append(json.loads((out / "convert.json").read_text(encoding="utf-8")))
        src = out
    return manifests


@pytest.mark.torch
@pytest.mark.parametrize("case", sorted(CONVERT_CASES))
def test_convert_cli_on_graph_and_sequence_models(case: str, tmp_path: Path) -> None:
    hops = [("torch", ".safetensors"), ("torch", ".npz")]  # from weights.npz, then from the torch file
    first, second = _run_and_convert(tmp_path, CONVERT_CASES[case](tmp_path), hops)
    assert first["read_from"] == "weights.npz" and second["read_from"] == "torch file model.safetensors"
    assert first["max_rel_diff"] <= CONVERT_RTOL and second["max_rel_diff"] <= CONVERT_RTOL


@pytest.mark.parity
@pytest.mark.slow
@pytest.mark.parametrize("case", ["lstm_series", "conv1d_series", "text_encoder"])
def test_convert_torch_to_keras_and_back_on_sequence_models(case: str, tmp_path: Path) -> None:
    """torch -> Keras (weights file and whole .keras archive) -> torch: each hop reloads and predicts."""
    doc = text_encoder() if case == "text_encoder" else CONVERT_CASES[case](tmp_path)
    hops = [("keras", ".keras"), ("torch", ".safetensors"), ("keras", ".weights.h5"), ("torch", ".npz")]
    manifests = _run_and_convert(tmp_path, doc, hops)
    assert [m["read_from"].split()[0] for m in manifests] == ["weights.npz", "keras", "torch", "keras"]
    assert all(m["max_rel_diff"] <= CONVERT_RTOL for m in manifests), manifests


# ----------------------------------------------------------------------------- cv: time-series folds
def test_series_folds_keep_time_order_and_scale_on_their_past(tmp_path: Path) -> None:
    doc = csv_series_doc(tmp_path, LSTM)
    doc["data"]["val_size"] = 0.2
    spec = load_spec(doc)
    folds = make_folds(spec, 3)
    raw = pooled_data(spec).x
    starts = [int(f.test_idx.min()) for f in folds]
    assert starts == sorted(starts) and folds[-1].test_idx.max() == len(raw) - 1
    for fold in folds:
        for part in (fold.train_idx, fold.val_idx, fold.test_idx):
            assert np.array_equal(part, np.arange(part.min(), part.max() + 1))  # contiguous blocks
        # no validation or held-out window precedes a training window
        assert fold.train_idx.max() < fold.val_idx.min() <= fold.val_idx.max() < fold.test_idx.min()
        past = raw[fold.train_idx].reshape(-1, raw.shape[-1])  # the scaler saw the fold's training windows only
        np.testing.assert_allclose(fold.scaler_mean, past.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(fold.dataset.x_test, (raw[fold.test_idx] - past.mean(0)) / past.std(0), rtol=1e-9)


@pytest.mark.parametrize(("horizon", "stride"), [(1, 1), (3, 1), (4, 2)])
def test_series_folds_leave_no_training_target_after_a_held_out_input(
    tmp_path: Path, horizon: int, stride: int
) -> None:
    doc = csv_series_doc(tmp_path, LSTM, horizon=horizon, stride=stride)
    spec = load_spec(doc)
    window = spec.data.series.window
    assert series_gap(spec) == math.ceil(horizon / stride) - 1
    for fold in make_folds(spec, 3):
        last_target = int(fold.train_idx.max()) * stride + window - 1 + horizon
        first_now = int(fold.test_idx.min()) * stride + window - 1
        assert last_target <= first_now
        assert fold.test_idx.min() - fold.train_idx.max() - 1 == series_gap(spec)  # only that gap is dropped


def test_a_shuffled_splitter_on_a_series_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = load_spec(csv_series_doc(tmp_path, LSTM))
    for splitter in ("KFold", "StratifiedKFold"):
        with pytest.raises(SpecError) as err:
            make_folds(spec, 3, splitter=splitter)
        assert err.value.path == "splitter" and "leakage" in str(err.value) and "TimeSeriesSplit" in str(err.value)
    with pytest.raises(SpecError) as err:
        make_folds(spec, 3, seed=4)
    assert err.value.path == "seed" and "leave --seed out" in str(err.value)
    with pytest.raises(SpecError) as err:
        make_folds(load_spec(example("residual_mlp")), 3, splitter="TimeSeriesSplit")
    assert err.value.path == "splitter" and "no time order" in str(err.value)
    assert main(["cv", spec_file(tmp_path, csv_series_doc(tmp_path, LSTM)), "--splitter", "KFold"]) == 2
    captured = capsys.readouterr()
    assert "--splitter KFold" in captured.err and "Traceback" not in captured.err


# ----------------------------------------------------------------------------- cv, tune, sweep
CV_CASES = {
    "residual_mlp": (lambda tmp: example("residual_mlp", epochs=1), "StratifiedKFold"),
    "gru_digits_rows": (lambda tmp: example("gru_digits_rows", epochs=1), "StratifiedKFold"),
    "text_encoder": (lambda tmp: text_encoder(), "KFold"),
    "lstm_series": (lambda tmp: csv_series_doc(tmp, LSTM), "TimeSeriesSplit"),
}


@pytest.mark.torch
@pytest.mark.parametrize("case", sorted(CV_CASES))
def test_cv_cli_on_graph_and_sequence_models(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make, splitter = CV_CASES[case]
    out = tmp_path / "cv"
    argv = ["cv", spec_file(tmp_path, make(tmp_path)), "--folds", "2", "--backends", "torch", "--in-process"]
    assert main([*argv, "--quiet", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert splitter in stdout
    assert ("in time order" in stdout) == (splitter == "TimeSeriesSplit")
    folds = pd.read_csv(out / "cv_folds.csv")
    assert list(folds["fold"]) == [1, 2] and folds.notna().all().all()


def test_text_folds_build_their_vocabulary_from_their_training_texts() -> None:
    spec = load_spec(text_encoder())
    texts = pooled_data(spec).x
    for fold in make_folds(spec, 2):
        from duofit.common.data.text import build_vocabulary

        assert fold.dataset.vocabulary == build_vocabulary(texts[fold.train_idx], spec.data.text.max_vocab)


SWEEPS = {
    "residual_mlp": (lambda tmp: example("residual_mlp", epochs=1), "model.layers[1].units=32,64"),
    "lstm_series": (lambda tmp: csv_series_doc(tmp, LSTM), "model.layers[0].units=2,4"),
    "text_encoder": (lambda tmp: text_encoder(), "model.layers[2].num_heads=1,2"),
}


@pytest.mark.torch
@pytest.mark.parametrize("case", sorted(SWEEPS))
def test_sweep_cli_on_graph_and_sequence_models(case: str, tmp_path: Path) -> None:
    make, setting = SWEEPS[case]
    out = tmp_path / "sweep"
    argv = ["sweep", spec_file(tmp_path, make(tmp_path)), "--set", setting, "--backends", "torch"]
    assert main([*argv, "--in-process", "--quiet", "--out", str(out)]) == 0
    table = pd.read_csv(out / "sweep.csv")
    assert len(table) == 2 and table["final_loss"].notna().all()


TUNES = {
    "gru_digits_rows": (lambda tmp: example("gru_digits_rows", epochs=1), "model.layers[0].units", [8, 16]),
    "conv1d_series": (lambda tmp: csv_series_doc(tmp, CONV1D), "model.layers[0].filters", [2, 4]),
    "text_encoder": (lambda tmp: text_encoder(), "optimizer.lr", [0.01, 0.003]),
}


@pytest.mark.torch
@pytest.mark.parametrize("case", sorted(TUNES))
def test_tune_grid_on_graph_and_sequence_models(case: str, tmp_path: Path) -> None:
    make, field, grid = TUNES[case]
    kind = "float" if isinstance(grid[0], float) else "int"
    space = tmp_path / "space.toml"
    space.write_text(
        f'metric = "val_loss"\n[[params]]\nfield = "{field}"\ntype = "{kind}"\n'
        f"low = {min(grid)}\nhigh = {max(grid)}\ngrid = {grid}\n",
        encoding="utf-8",
    )
    argv = ["tune", spec_file(tmp_path, make(tmp_path)), "--space", str(space), "--search", "grid", "--trials", "2"]
    argv += ["--backend", "torch", "--storage", f"sqlite:///{tmp_path / 'tune.db'}", "--out", str(tmp_path / "out")]
    assert main([*argv, "--quiet"]) == 0
    trials = pd.read_csv(tmp_path / "out" / "trials.csv")
    assert len(trials) == 2 and sorted(trials[f"params_{field}"]) == sorted(grid)


# ----------------------------------------------------------------------------- scikit-learn estimators
def _without_data(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "data"}


@pytest.mark.torch
def test_sklearn_classifier_on_sequences_and_token_ids() -> None:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import cross_val_score

    from duofit.sklearn import DuofitClassifier

    x, y = load_digits(return_X_y=True)
    x, y = x[:400], y[:400]
    gru = _without_data(example("gru_digits_rows", epochs=8))
    rows = DuofitClassifier(spec=gru).fit(x.reshape(-1, 8, 8), y)  # 3-D: (samples, steps, features)
    assert rows.predict(x[:5].reshape(-1, 8, 8)).shape == (5,) and rows.score(x.reshape(-1, 8, 8), y) > 0.5
    flat = DuofitClassifier(spec=gru, data__sequence_shape=[8, 8]).fit(x, y)  # 2-D, reshaped by the spec
    np.testing.assert_allclose(flat.predict_proba(x), rows.predict_proba(x.reshape(-1, 8, 8)), rtol=1e-5, atol=1e-6)
    scores = cross_val_score(DuofitClassifier(spec=gru, train__epochs=2), x.reshape(-1, 8, 8), y, cv=2)
    assert scores.shape == (2,)

    spec = load_spec(text_encoder())
    data = load_dataset(spec)
    assert data.x_train.dtype.kind == "i"  # token ids
    text = DuofitClassifier(spec=text_encoder(epochs=8))  # its data section gives the ids' shape, is not loaded
    text.fit(data.x_train, data.y_train)
    proba = text.predict_proba(data.x_test)
    assert proba.shape == (len(data.x_test), 2) and np.allclose(proba.sum(axis=1), 1)
    assert text.score(data.x_train, data.y_train) > 0.6


@pytest.mark.torch
def test_sklearn_regressor_on_series_windows(tmp_path: Path) -> None:
    from duofit.sklearn import DuofitRegressor

    doc = csv_series_doc(tmp_path, CONV1D)
    x, y, _ = read_arrays(load_spec(doc))
    assert x.ndim == 3
    reg = DuofitRegressor(spec=_without_data(doc), train__epochs=30, data__standardize_target=True).fit(x, y)
    assert reg.predict(x).shape == y.shape and reg.score(x, y) > 0.5
