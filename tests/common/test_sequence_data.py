"""Data for sequences: .npz arrays, images as row sequences, windows of a series, texts as token ids.

Framework-free tests check the arrays every backend receives (shapes, dtypes, time order,
scalers and vocabularies fitted on the training part only) and the errors; the marked ones
train end to end on one backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import duofit
import duofit.common.data as data_module
from duofit import DataError, SpecError
from duofit.cli import main
from duofit.common.data import features, load_dataset, prepare
from duofit.common.data.series import make_windows, window_count
from duofit.common.data.split import given_parts, time_parts
from duofit.common.data.text import OOV_ID, PAD_ID, build_vocabulary, encode_texts
from duofit.common.spec.data import SeriesSpec

MLP = [{"type": "flatten"}, {"type": "dense", "units": 4, "activation": "relu"}, {"type": "dense", "units": 1}]


def _spec(data: dict[str, Any], loss: str = "mse", layers: list[dict[str, Any]] | None = None, **train: Any) -> Any:
    return duofit.load_spec(
        {
            "data": data,
            "model": {"layers": layers or MLP},
            "loss": {"type": loss},
            "train": {"epochs": 2, "batch_size": 16, **train},
        }
    )


def _npz(tmp_path: Path, **arrays: Any) -> Path:
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    return path


def _series_csv(tmp_path: Path, n: int = 60) -> Path:
    t = np.arange(n, dtype=np.float64)
    frame = pd.DataFrame({"temp": t + 0.5 * np.sin(t), "rain": np.cos(t), "city": ["a"] * n})  # temp rises
    path = tmp_path / "series.csv"
    frame.to_csv(path, index=False)
    return path


def _texts_csv(tmp_path: Path, rows: list[tuple[str, str]]) -> Path:
    path = tmp_path / "texts.csv"
    pd.DataFrame(rows, columns=["review", "label"]).to_csv(path, index=False)
    return path


def _assert_error(exc: DataError | SpecError, path: str, *words: str) -> None:
    assert exc.path == path, str(exc)
    assert "cannot read" not in str(exc) or "cannot read" in words, str(exc)  # not wrapped twice
    for word in words:
        assert word in str(exc), str(exc)


# --------------------------------------------------------------------------- npz
@pytest.mark.parametrize("shape", [(40, 3), (40, 5, 3)])
def test_npz_float_arrays_keep_their_shape(tmp_path: Path, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    path = _npz(tmp_path, x=rng.normal(3.0, 2.0, shape), y=rng.normal(size=shape[0]), extra=np.zeros(2))
    ds = load_dataset(_spec({"kind": "npz", "path": str(path)}))
    assert ds.x_train.shape[1:] == shape[1:] and ds.x_train.dtype == np.float64
    assert len(ds.x_train) + len(ds.x_test) == shape[0]
    axes = (0, 1) if len(shape) == 3 else (0,)  # sequences: one mean per feature over every step
    np.testing.assert_allclose(ds.x_train.mean(axis=axes), 0.0, atol=1e-12)


def test_npz_images_need_image_shape(tmp_path: Path) -> None:
    x, y = np.random.default_rng(0).normal(size=(30, 4, 4, 2)), np.arange(30) % 2
    path = _npz(tmp_path, x=x, y=y)
    with pytest.raises(DataError) as err:
        load_dataset(_spec({"kind": "npz", "path": str(path)}, loss="binary_crossentropy"))
    _assert_error(err.value, "data.image_shape", "[4, 4, 2]")
    ds = load_dataset(_spec({"kind": "npz", "path": str(path), "image_shape": [4, 4, 2]}, loss="binary_crossentropy"))
    assert ds.input_shape == (4, 4, 2)


def test_npz_path_is_relative_to_the_spec_file(tmp_path: Path) -> None:
    (tmp_path / "arrays").mkdir()
    np.savez(tmp_path / "arrays" / "d.npz", x=np.ones((10, 2)) * np.arange(10)[:, None], y=np.arange(10.0))
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(
        '[data]\nkind = "npz"\npath = "arrays/d.npz"\n[[model.layers]]\ntype = "dense"\nunits = 1\n'
        '[loss]\ntype = "mse"\n'
    )
    assert load_dataset(duofit.load_spec(spec_file)).x_train.shape == (8, 2)


def test_npz_token_ids_stay_integers_and_need_an_embedding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = np.random.default_rng(0).integers(0, 50, size=(30, 7))
    path = _npz(tmp_path, x=ids.astype(np.int32), y=np.arange(30) % 2)
    spec = _spec({"kind": "npz", "path": str(path)}, loss="binary_crossentropy")
    with pytest.raises(DataError) as err:
        load_dataset(spec)
    _assert_error(err.value, "model.layers[0].type", "embedding", "save x as float")
    monkeypatch.setattr(features, "TOKEN_INPUT_LAYERS", ("flatten",))  # stands in for the embedding layer
    ds = load_dataset(spec)
    assert ds.x_train.dtype == np.int64 and ds.scaler is None  # never standardized, never cast
    assert set(np.unique(np.concatenate([ds.x_train, ds.x_test]))) <= set(ids.ravel().tolist())


@pytest.mark.parametrize(
    ("arrays", "words"),
    [
        ({"features": np.ones((4, 2)), "y": np.ones(4)}, ["no array 'x'", "features, y"]),
        ({"x": np.ones((4, 2)), "y": np.ones(5)}, ["y of d.npz has shape [5]", "4 samples"]),
        ({"x": np.array([[1.0, np.nan], [1.0, 2.0]]), "y": np.ones(2)}, ["NaN", "sample 0"]),
        ({"x": np.array([["a", "b"]] * 3), "y": np.ones(3)}, ["csv_text"]),
        ({"x": np.ones(4), "y": np.ones(4)}, ["x[:, None]"]),
        ({"x": np.ones((4, 2, 2), dtype=np.int64), "y": np.ones(4)}, ["token ids of shape (samples, steps)"]),
        ({"x": -np.ones((4, 2), dtype=np.int64), "y": np.ones(4)}, ["negative token ids"]),
        ({"x": np.ones((4, 2)), "y": np.array([1.0, np.inf, 0, 0])}, ["y of d.npz holds NaN"]),
    ],
)
def test_npz_errors_name_the_file_and_the_fix(tmp_path: Path, arrays: dict[str, Any], words: list[str]) -> None:
    path = _npz(tmp_path, **arrays)
    with pytest.raises(DataError) as err:
        load_dataset(_spec({"kind": "npz", "path": str(path)}))
    _assert_error(err.value, "data.path", *words)


def test_npz_object_arrays_are_not_unpickled(tmp_path: Path) -> None:
    path = _npz(tmp_path, x=np.array([{"a": 1}, None], dtype=object), y=np.ones(2))
    with pytest.raises(DataError) as err:
        load_dataset(_spec({"kind": "npz", "path": str(path)}))
    _assert_error(err.value, "data.path", "Python objects", "does not unpickle")


def test_npz_missing_or_not_an_archive(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_dataset(_spec({"kind": "npz", "path": str(tmp_path / "none.npz")}))
    np.save(tmp_path / "one.npy", np.ones(3))
    with pytest.raises(DataError) as err:
        load_dataset(_spec({"kind": "npz", "path": str(tmp_path / "one.npy")}))
    _assert_error(err.value, "data.path", "numpy.savez")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(DataError) as err:
        load_dataset(_spec({"kind": "npz", "path": str(tmp_path / "junk.npz")}))
    _assert_error(err.value, "data.path", "cannot read", "numpy.savez")


def test_npz_unpacked_size_is_capped_before_loading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    np.savez_compressed(tmp_path / "big.npz", x=np.zeros((1000, 10)), y=np.zeros(1000))
    assert (tmp_path / "big.npz").stat().st_size < 8 * 1000  # compressed far below its 88 kB of values
    monkeypatch.setattr(data_module, "MAX_DATA_ELEMENTS", 1000)
    with pytest.raises(DataError) as err:
        load_dataset(_spec({"kind": "npz", "path": str(tmp_path / "big.npz")}))
    _assert_error(err.value, "data.path", "unpack to", "MAX_DATA_ELEMENTS")


# --------------------------------------------------------------------------- images as row sequences
def test_digits_as_row_sequences() -> None:
    layers = [{"type": "flatten"}, {"type": "dense", "units": 10}]
    ds = load_dataset(_spec({"kind": "digits", "sequence_shape": [8, 8]}, "categorical_crossentropy", layers))
    flat = load_dataset(_spec({"kind": "digits", "standardize": False}, "categorical_crossentropy", layers))
    assert ds.x_train.shape[1:] == (8, 8) and len(ds.x_train) == len(flat.x_train)
    # one mean per pixel column over all rows, from the training part only
    raw_train = flat.x_train.reshape(-1, 8, 8)
    np.testing.assert_allclose(ds.scaler.mean_, raw_train.reshape(-1, 8).mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(ds.x_train.mean(axis=(0, 1)), 0.0, atol=1e-12)
    assert abs(ds.x_test.mean(axis=(0, 1))).max() > 1e-6  # the test part is scaled, not refitted


def test_sequence_shape_errors() -> None:
    layers = [{"type": "flatten"}, {"type": "dense", "units": 10}]
    with pytest.raises(DataError) as err:
        load_dataset(_spec({"kind": "digits", "sequence_shape": [8, 7]}, "categorical_crossentropy", layers))
    _assert_error(err.value, "data.sequence_shape", "56 values", "64 features")
    with pytest.raises(SpecError) as spec_err:
        _spec({"kind": "digits", "sequence_shape": [8, 8], "image_shape": [8, 8, 1]}, "categorical_crossentropy")
    _assert_error(spec_err.value, "data.sequence_shape", "not both")


# --------------------------------------------------------------------------- windows of a series
def test_windows_and_their_targets() -> None:
    values = np.arange(10.0)[:, None]
    x, y = make_windows(values, values[:, 0] * 10, SeriesSpec(window=3, horizon=2, stride=3))
    assert x[:, :, 0].tolist() == [[0, 1, 2], [3, 4, 5]] and y.tolist() == [40, 70]
    assert window_count(10, SeriesSpec(window=3, horizon=2, stride=3)) == 2
    assert window_count(4, SeriesSpec(window=4)) == 0


def test_time_parts_keep_order() -> None:
    parts = time_parts(20, test_size=0.2, val_size=0.1)
    assert parts.train.tolist() == list(range(14)) and parts.val.tolist() == [14, 15] and parts.test[0] == 16
    assert not parts.val_is_test and time_parts(20, 0.2, 0.0).val_is_test


def test_csv_series_split_in_time_order_and_scaled_on_training_windows(tmp_path: Path) -> None:
    path = _series_csv(tmp_path)
    data = {"kind": "csv_series", "path": str(path), "target": "temp", "series": {"window": 5}, "val_size": 0.2}
    ds = load_dataset(_spec(data))
    assert ds.x_train.shape[1:] == (5, 1) and ds.feature_names == ("temp",)
    # the target rises over time: every training target precedes every validation and test one
    assert ds.y_train.max() < ds.y_val.min() and ds.y_val.max() < ds.y_test.min()
    # the scaler saw the training windows only
    raw = pd.read_csv(path)["temp"].to_numpy()
    train_windows = make_windows(raw[:, None], raw, SeriesSpec(window=5))[0][: len(ds.x_train)]
    np.testing.assert_allclose(ds.scaler.mean_, [train_windows.mean()], rtol=1e-12)
    # editing the latest values (test windows only) leaves the training arrays unchanged
    frame = pd.read_csv(path)
    frame.loc[len(frame) - 5 :, "temp"] = 1e3
    frame.to_csv(path, index=False)
    np.testing.assert_array_equal(load_dataset(_spec(data)).x_train, ds.x_train)


def test_csv_series_several_columns(tmp_path: Path) -> None:
    data = {
        "kind": "csv_series",
        "path": str(_series_csv(tmp_path)),
        "target": "temp",
        "features": ["temp", "rain"],
        "series": {"window": 6, "horizon": 3, "stride": 2},
    }
    ds = load_dataset(_spec(data))
    assert ds.x_train.shape[1:] == (6, 2) and len(ds.x_train) + len(ds.x_test) == window_count(
        60, SeriesSpec(**data["series"])
    )


@pytest.mark.parametrize(
    ("data", "path", "words"),
    [
        ({"target": "temp", "series": {"window": 60}}, "data.series.window", ["61 steps", "has 60", "window <= 59"]),
        ({"target": "temp", "series": {"window": 59}}, "data.series", ["makes 1 window(s)", "shorter window"]),
        ({"target": "snow", "series": {"window": 3}}, "data.target", ["'snow'", "temp, rain, city"]),
        ({"target": "city", "series": {"window": 3}, "features": ["temp"]}, "data.target", ["not numeric"]),
        ({"target": "temp", "series": {"window": 3}, "features": ["city"]}, "data.features", ["non-numeric"]),
    ],
)
def test_csv_series_errors(tmp_path: Path, data: dict[str, Any], path: str, words: list[str]) -> None:
    with pytest.raises(DataError) as err:
        load_dataset(_spec({"kind": "csv_series", "path": str(_series_csv(tmp_path)), **data}))
    _assert_error(err.value, path, *words)


def test_sunspots_windows() -> None:
    pytest.importorskip("statsmodels")
    ds = load_dataset(_spec({"kind": "sunspots", "series": {"window": 12}, "test_size": 0.2}))
    n = window_count(309, SeriesSpec(window=12))
    assert ds.x_train.shape == (n - int(np.ceil(0.2 * n)), 12, 1) and ds.feature_names == ("SUNACTIVITY",)
    ds2 = load_dataset(_spec({"kind": "co2", "series": {"window": 52, "stride": 4}}))
    assert ds2.x_train.shape[1:] == (52, 1) and np.isfinite(ds2.x_train).all()  # the gaps are interpolated


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"kind": "sunspots"}, "data.series"),
        ({"kind": "iris", "series": {"window": 3}}, "data.series"),
        ({"kind": "sunspots", "series": {"window": 0}}, "data.series.window"),
        ({"kind": "csv_series", "path": "a.csv", "series": {"window": 3}}, "data.target"),
        ({"kind": "sunspots", "series": {"window": 3}, "path": "a.csv"}, "data.path"),
    ],
)
def test_series_spec_errors(data: dict[str, Any], path: str) -> None:
    with pytest.raises(SpecError) as err:
        _spec(data)
    assert err.value.path == path, str(err.value)


# --------------------------------------------------------------------------- texts as token ids
def test_vocabulary_by_frequency_and_encoding() -> None:
    vocab = build_vocabulary(["b a a", "cc a bb", "bb"], max_vocab=4)  # single letters are not words
    assert vocab == ("<pad>", "<oov>", "bb", "cc")
    ids = encode_texts(["cc bb zz", "bb"], vocab, max_len=2)
    assert ids.tolist() == [[3, 2], [2, PAD_ID]] and ids.dtype == np.int64
    pre = encode_texts(["cc bb zz", "bb"], vocab, max_len=2, padding="pre")
    assert pre.tolist() == [[2, OOV_ID], [PAD_ID, 2]]


def _text_rows() -> list[tuple[str, str]]:
    good, bad = ["great sound", "solid build", "lovely screen"], ["awful sound", "broken hinge", "weak battery"]
    return [(good[i % 3] + " indeed", "pos") if i % 2 else (bad[i % 3] + " sadly", "neg") for i in range(40)]


def test_text_vocabulary_comes_from_the_training_part(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(features, "TOKEN_INPUT_LAYERS", ("flatten",))  # stands in for the embedding layer
    rows = _text_rows()
    path = _texts_csv(tmp_path, rows)
    data = {"kind": "csv_text", "path": str(path), "target": "label", "text": {"column": "review", "max_len": 4}}
    spec = _spec(data, "binary_crossentropy")
    x = np.asarray([r for r, _ in rows], dtype=object)
    rows_train = np.arange(0, 30)
    parts = given_parts(spec, np.zeros(40), rows_train, np.arange(30, 40), seed=0, stratify=False)
    x[35] = "zebra unicorn"  # words only a test row holds
    ds = prepare(spec, x, np.asarray([lab for _, lab in rows]), parts=parts)
    assert "zebra" not in ds.vocabulary and ds.vocabulary[:2] == ("<pad>", "<oov>")
    assert ds.x_test[5].tolist() == [OOV_ID, OOV_ID, PAD_ID, PAD_ID]
    assert ds.x_train.dtype == np.int64 and ds.x_train.shape == (30, 4) and ds.scaler is None
    assert ds.input_shape == (4,) and ds.x_train.max() < len(ds.vocabulary)
    full = load_dataset(spec)  # the spec's own split, through the CSV reader
    assert full.x_train.shape[1] == 4 and full.classes.tolist() == ["neg", "pos"]


def test_text_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = {"column": "review"}
    path = _texts_csv(tmp_path, _text_rows())
    base = {"kind": "csv_text", "path": str(path), "target": "label"}
    with pytest.raises(DataError) as err:  # today's first layers cannot take ids
        load_dataset(_spec({**base, "text": text}, "binary_crossentropy"))
    _assert_error(err.value, "model.layers[0].type", "embedding")
    monkeypatch.setattr(features, "TOKEN_INPUT_LAYERS", ("flatten",))
    empty = _texts_csv(tmp_path, [("a ! ?", "pos"), ("b .", "neg")] * 10)
    with pytest.raises(DataError) as err:
        load_dataset(_spec({**base, "path": str(empty), "text": text}, "binary_crossentropy"))
    _assert_error(err.value, "data.text.column", "no word", "vocabulary is empty")
    with pytest.raises(DataError) as err:
        load_dataset(_spec({**base, "text": {"column": "body"}}, "binary_crossentropy"))
    _assert_error(err.value, "data.text.column", "'body'", "review, label")
    with pytest.raises(SpecError) as spec_err:
        _spec({**base, "text": {"column": "review", "max_len": 0}}, "binary_crossentropy")
    assert spec_err.value.path == "data.text.max_len"


def test_bad_sequence_data_exits_2_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(
        f'[data]\nkind = "csv_series"\npath = "{_series_csv(tmp_path)}"\ntarget = "temp"\nseries = {{ window = 99 }}\n'
        '[[model.layers]]\ntype = "flatten"\n[[model.layers]]\ntype = "dense"\nunits = 1\n[loss]\ntype = "mse"\n'
    )
    assert main(["run", str(spec_file), "--backend", "torch"]) == 2
    err = capsys.readouterr().err
    assert "data.series.window" in err and "Traceback" not in err


# --------------------------------------------------------------------------- end to end
@pytest.mark.torch
def test_npz_features_train_on_torch(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 3))
    path = _npz(tmp_path, x=x, y=(x[:, 0] > 0).astype(np.int64))
    spec = duofit.load_spec(
        {
            "data": {"kind": "npz", "path": str(path)},
            "model": {"layers": [{"type": "dense", "units": 1}]},
            "loss": {"type": "binary_crossentropy", "from_logits": True},
            "metrics": ["accuracy"],
            "optimizer": {"type": "adam", "lr": 0.05},
            "train": {"epochs": 30, "batch_size": 16},
        }
    )
    res = duofit.run(spec, backend="torch")
    assert res.metrics["accuracy"] >= 0.8


@pytest.mark.torch
def test_csv_series_windows_train_on_torch(tmp_path: Path) -> None:
    data = {"kind": "csv_series", "path": str(_series_csv(tmp_path)), "target": "temp", "series": {"window": 6}}
    spec = duofit.load_spec(
        {
            "data": {**data, "standardize_target": True},
            "model": {"layers": MLP},
            "loss": {"type": "mse"},
            "metrics": ["r2"],
            "train": {"epochs": 30, "batch_size": 16},
        }
    )
    res = duofit.run(spec, backend="torch")
    assert res.predictions.shape == (len(load_dataset(spec).x_test), 1) and np.isfinite(res.metrics["r2"])
    assert res.history["loss"].iloc[-1] < res.history["loss"].iloc[0]


@pytest.mark.keras
def test_csv_series_windows_train_on_keras(tmp_path: Path) -> None:
    data = {"kind": "csv_series", "path": str(_series_csv(tmp_path)), "target": "temp", "series": {"window": 6}}
    res = duofit.run(_spec(data, epochs=5), backend="keras")
    assert np.isfinite(res.history["loss"]).all() and res.history["loss"].iloc[-1] < res.history["loss"].iloc[0]


def test_sample_shape_known_from_the_spec_matches_the_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(features, "TOKEN_INPUT_LAYERS", ("flatten",))
    path = _series_csv(tmp_path)
    texts = _texts_csv(tmp_path, _text_rows())
    layers = [{"type": "flatten"}, {"type": "dense", "units": 10}]
    specs = [
        _spec(
            {
                "kind": "csv_series",
                "path": str(path),
                "target": "temp",
                "features": ["temp", "rain"],
                "series": {"window": 4},
            }
        ),
        _spec({"kind": "digits", "sequence_shape": [8, 8]}, "categorical_crossentropy", layers),
        _spec(
            {"kind": "csv_text", "path": str(texts), "target": "label", "text": {"column": "review", "max_len": 5}},
            "binary_crossentropy",
        ),
    ]
    for spec in specs:
        assert load_dataset(spec).input_shape == spec.data.sample_shape
    assert _spec({"kind": "npz", "path": "a.npz"}).data.sample_shape is None  # known from the file only


def test_shipped_reviews_are_the_generators_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import runpy

    shipped = Path(__file__).parents[2] / "examples" / "data" / "reviews.csv"
    runpy.run_path(str(shipped.with_name("make_reviews.py")))["main"](tmp_path / "reviews.csv")
    assert (tmp_path / "reviews.csv").read_bytes() == shipped.read_bytes()
    monkeypatch.setattr(features, "TOKEN_INPUT_LAYERS", ("flatten",))
    data = {
        "kind": "csv_text",
        "path": str(shipped),
        "target": "sentiment",
        "text": {"column": "review", "max_len": 40},
    }
    ds = load_dataset(_spec(data, "binary_crossentropy"))
    assert (
        ds.x_train.shape == (320, 40)
        and 50 < len(ds.vocabulary) < 200
        and ds.classes.tolist() == ["negative", "positive"]
    )
