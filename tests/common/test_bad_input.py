"""Bad input fails with the right duofit error and a message that says where and what.

Every case asserts the exact exception class, the field path (in the message and, for
spec/data errors, in ``exc.path``) and the bad value and/or what is allowed.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import duofit
from duofit import BackendError, BackendNotInstalledError, DataError, SpecError
from duofit.common import registry
from duofit.common.data import load_dataset

SEED = Path(__file__).resolve().parents[2] / "examples" / "seed.toml"


def _seed() -> dict[str, Any]:
    return tomllib.loads(SEED.read_text(encoding="utf-8"))


def _spec_error(source: Any) -> SpecError:
    with pytest.raises(SpecError) as info:
        duofit.load_spec(source)
    assert type(info.value) is SpecError
    return info.value


def _data_error(doc: dict[str, Any]) -> DataError:
    spec = duofit.load_spec(doc)  # the spec itself is valid; the data is not
    with pytest.raises(DataError) as info:
        load_dataset(spec)
    assert type(info.value) is DataError
    return info.value


def _assert_names(exc: Exception, path: str, needles: tuple[str, ...]) -> None:
    msg = str(exc)
    assert path in msg, f"message does not name the field path {path!r}:\n{msg}"
    assert exc.path == path, f"exc.path is {exc.path!r}, expected {path!r}"  # type: ignore[attr-defined]
    for needle in needles:
        assert needle in msg, f"message does not mention {needle!r}:\n{msg}"


# --------------------------------------------------------------------------- spec values
def _set(*keys: Any, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        node: Any = doc
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return mutate


def _insert_dropout(doc: dict[str, Any]) -> None:
    doc["model"]["layers"].insert(1, {"type": "dropout", "rate": 1.5})


def _regression_with_cce(doc: dict[str, Any]) -> None:
    doc["data"] = {"kind": "make_regression", "params": {"n_samples": 50, "n_features": 2}}
    doc["loss"] = {"type": "categorical_crossentropy"}
    doc["metrics"] = []


def _accuracy_with_mse(doc: dict[str, Any]) -> None:
    doc["loss"] = {"type": "mse"}
    doc["metrics"] = ["accuracy"]


SPEC_CASES = [
    # unknown type names: the path is the `type` field, the message lists the allowed names
    pytest.param(
        _set("model", "layers", 0, "type", value="conv9"),
        "model.layers[0].type",
        ("'conv9'", "dense", "dropout", "batch_norm"),
        id="unknown-layer-type",
    ),
    pytest.param(
        _set("loss", "type", value="hinge"),
        "loss.type",
        ("'hinge'", "binary_crossentropy", "categorical_crossentropy", "mse"),
        id="unknown-loss-type",
    ),
    pytest.param(
        _set("optimizer", "type", value="lbfgs"),
        "optimizer.type",
        ("'lbfgs'", "sgd", "adam", "rmsprop"),
        id="unknown-optimizer-type",
    ),
    pytest.param(
        _set("metrics", value=["bogus"]),
        "metrics[0]",
        ("'bogus'", "accuracy", "roc_auc", "r2"),
        id="unknown-metric",
    ),
    # out-of-range numbers: the message gives the value and the bound
    pytest.param(
        _set("model", "layers", 0, "units", value=0),
        "model.layers[0].units",
        ("got 0", "greater than 0"),
        id="zero-units",
    ),
    pytest.param(
        _set("model", "layers", 0, "units", value=-3),
        "model.layers[0].units",
        ("got -3", "greater than 0"),
        id="negative-units",
    ),
    pytest.param(
        _set("optimizer", "lr", value=-0.1),
        "optimizer.lr",
        ("-0.1", "greater than 0"),
        id="negative-lr",
    ),
    pytest.param(
        _set("optimizer", "lr", value=0),
        "optimizer.lr",
        ("got 0", "greater than 0"),
        id="zero-lr",
    ),
    pytest.param(
        _set("optimizer", "lr", value=float("nan")),
        "optimizer.lr",
        ("nan", "finite"),
        id="nan-lr",
    ),
    pytest.param(
        _set("optimizer", "lr", value=float("inf")),
        "optimizer.lr",
        ("inf", "finite"),
        id="inf-lr",
    ),
    pytest.param(
        _set("train", "epochs", value=0),
        "train.epochs",
        ("got 0", "greater than 0"),
        id="zero-epochs",
    ),
    pytest.param(
        _set("train", "batch_size", value=-1),
        "train.batch_size",
        ("got -1", "greater than 0"),
        id="negative-batch-size",
    ),
    pytest.param(
        _insert_dropout,
        "model.layers[1].rate",
        ("1.5", "less than 1"),
        id="dropout-rate-1.5",
    ),
    pytest.param(
        _set("data", "test_size", value=1.2),
        "data.test_size",
        ("1.2", "less than 1"),
        id="test-size-1.2",
    ),
    # cross-field checks: the path is the field to change, not "(top level)"
    pytest.param(
        _regression_with_cce,
        "loss.type",
        ("categorical_crossentropy", "make_regression", "'mse'"),
        id="cce-on-make-regression",
    ),
    pytest.param(
        _accuracy_with_mse,
        "metrics[0]",
        ("'accuracy'", "'mse'", "rmse", "r2"),
        id="accuracy-with-mse",
    ),
    pytest.param(
        _set("metrics", value=["r2"]),
        "metrics[0]",
        ("'r2'", "binary_crossentropy", "accuracy", "roc_auc"),
        id="r2-with-bce",
    ),
    pytest.param(
        _set("model", "layers", 1, "units", value=3),
        "model.layers[1].units",
        ("binary_crossentropy", "units = 3", "units = 1"),
        id="bce-with-3-units",
    ),
    # unknown keys: named, with the keys allowed at that place
    pytest.param(
        _set("colour", value="red"),
        "colour",
        ("unknown key 'colour'", "data", "model", "loss", "optimizer", "train"),
        id="unknown-key-top-level",
    ),
    pytest.param(
        _set("data", "colour", value="red"),
        "data.colour",
        ("unknown key 'colour'", "kind", "params", "test_size", "split_seed"),
        id="unknown-key-data",
    ),
    pytest.param(
        _set("model", "layers", 0, "colour", value="red"),
        "model.layers[0].colour",
        ("unknown key 'colour'", "allowed keys", "units", "activation", "kernel_init"),
        id="unknown-key-layer",
    ),
    pytest.param(
        _set("model", "layers", 1, "colour", value="red"),
        "model.layers[1].colour",
        ("unknown key 'colour'", "allowed keys", "units", "use_bias"),
        id="unknown-key-second-layer",
    ),
    pytest.param(
        _set("train", "colour", value="red"),
        "train.colour",
        ("unknown key 'colour'", "epochs", "batch_size", "seed"),
        id="unknown-key-train",
    ),
    pytest.param(
        _set("optimizer", value={"type": "sgd", "lr": 0.1, "colour": 1}),
        "optimizer.colour",
        ("unknown key 'colour'", "lr", "momentum", "nesterov"),
        id="unknown-key-sgd-optimizer",
    ),
    pytest.param(
        _set("train", "early_stopping", value={"patience": 2, "colour": 1}),
        "train.early_stopping.colour",
        ("unknown key 'colour'", "patience", "monitor"),
        id="unknown-key-early-stopping",
    ),
]


@pytest.mark.parametrize(("mutate", "path", "needles"), SPEC_CASES)
def test_bad_spec_value(mutate: Callable[[dict[str, Any]], None], path: str, needles: tuple[str, ...]) -> None:
    doc = _seed()
    mutate(doc)
    exc = _spec_error(doc)
    _assert_names(exc, path, needles)
    assert exc.problems and exc.problems[0][0] == path


def test_nan_lr_in_json_file(tmp_path: Path) -> None:
    doc = _seed()
    doc["optimizer"]["lr"] = float("nan")
    spec_file = tmp_path / "nan_lr.json"
    spec_file.write_text(json.dumps(doc), encoding="utf-8")  # json.dumps writes the literal NaN
    assert "NaN" in spec_file.read_text(encoding="utf-8")
    exc = _spec_error(spec_file)
    _assert_names(exc, "optimizer.lr", ("nan", "finite", str(spec_file)))


def test_unknown_key_reports_every_problem() -> None:
    doc = _seed()
    doc["colour"] = "red"
    doc["train"]["epochs"] = 0
    exc = _spec_error(doc)
    paths = {p for p, _ in exc.problems}
    assert {"colour", "train.epochs"} <= paths
    assert "colour" in str(exc) and "train.epochs" in str(exc)


# --------------------------------------------------------------------------- spec files
def test_missing_spec_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    exc = _spec_error(missing)
    assert "not found" in str(exc) and str(missing) in str(exc)


def test_wrong_extension(tmp_path: Path) -> None:
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text("data:\n  kind: iris\n", encoding="utf-8")
    exc = _spec_error(spec_file)
    msg = str(exc)
    assert "'.yaml'" in msg and ".toml" in msg and ".json" in msg and str(spec_file) in msg


def test_invalid_toml_syntax(tmp_path: Path) -> None:
    spec_file = tmp_path / "broken.toml"
    spec_file.write_text("[data\nkind = 'iris'\n", encoding="utf-8")
    exc = _spec_error(spec_file)
    msg = str(exc)
    assert "not valid TOML" in msg and "line 1" in msg and str(spec_file) in msg


def test_invalid_json_syntax(tmp_path: Path) -> None:
    spec_file = tmp_path / "broken.json"
    spec_file.write_text('{"data": }', encoding="utf-8")
    exc = _spec_error(spec_file)
    assert "not valid JSON" in str(exc) and "line 1" in str(exc)


def test_non_utf8_bytes(tmp_path: Path) -> None:
    spec_file = tmp_path / "latin1.toml"
    spec_file.write_bytes(b"name = '\xff\xfe'\n")
    exc = _spec_error(spec_file)
    assert "UTF-8" in str(exc) and str(spec_file) in str(exc)


def test_json_top_level_list(tmp_path: Path) -> None:
    spec_file = tmp_path / "list.json"
    spec_file.write_text("[1, 2, 3]", encoding="utf-8")
    exc = _spec_error(spec_file)
    assert "top level" in str(exc) and str(spec_file) in str(exc)


def test_same_document_as_json_is_accepted(tmp_path: Path) -> None:
    spec_file = tmp_path / "seed.json"
    spec_file.write_text(json.dumps(_seed()), encoding="utf-8")
    from_json = duofit.load_spec(spec_file)
    from_toml = duofit.load_spec(SEED)
    assert from_json == from_toml
    assert from_json.optimizer.lr == 0.01 and from_json.train.epochs == 100


# --------------------------------------------------------------------------- data
def _csv_doc(path: Path, loss: str = "binary_crossentropy", units: int = 1, **data: Any) -> dict[str, Any]:
    return {
        "data": {"kind": "csv", "path": str(path), "target": "y", **data},
        "model": {"layers": [{"type": "dense", "units": units}]},
        "loss": {"type": loss},
    }


def _write(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def _binary_csv(tmp_path: Path) -> Path:
    return _write(tmp_path / "binary.csv", "a,b,y", [f"{i},{2 * i},{i % 2}" for i in range(20)])


def test_csv_missing_target_column(tmp_path: Path) -> None:
    exc = _data_error(_csv_doc(_binary_csv(tmp_path), target="label"))
    _assert_names(exc, "data.target", ("'label'", "a, b, y"))


def test_csv_non_numeric_feature(tmp_path: Path) -> None:
    csv = _write(tmp_path / "text.csv", "a,b,y", [f"{i},x{i},{i % 2}" for i in range(20)])
    exc = _data_error(_csv_doc(csv))
    _assert_names(exc, "data.features", ("non-numeric", "b"))


def test_csv_missing_values(tmp_path: Path) -> None:
    rows = [f"{i},{'' if i == 5 else i},{i % 2}" for i in range(20)]
    csv = _write(tmp_path / "holes.csv", "a,b,y", rows)
    exc = _data_error(_csv_doc(csv))
    # row i = 5 is line 7 of the file (header is line 1); the file is the thing to fix
    assert exc.path == "data.path"
    msg = str(exc)
    assert msg.startswith("data")
    assert "missing values" in msg and "line 7" in msg and "holes.csv" in msg


def test_csv_empty_file(tmp_path: Path) -> None:
    csv = tmp_path / "empty.csv"
    csv.write_text("", encoding="utf-8")
    exc = _data_error(_csv_doc(csv))
    _assert_names(exc, "data.path", ("empty", "empty.csv"))


def test_csv_header_only(tmp_path: Path) -> None:
    csv = _write(tmp_path / "header.csv", "a,b,y", [])
    exc = _data_error(_csv_doc(csv))
    _assert_names(exc, "data.path", ("no rows", "header.csv"))


def test_csv_file_not_found(tmp_path: Path) -> None:
    exc = _data_error(_csv_doc(tmp_path / "gone.csv"))
    _assert_names(exc, "data.path", ("not found", "gone.csv"))


def test_csv_single_class(tmp_path: Path) -> None:
    csv = _write(tmp_path / "one.csv", "a,b,y", [f"{i},{i},1" for i in range(20)])
    exc = _data_error(_csv_doc(csv))
    _assert_names(exc, "data.target", ("single class", "[1]"))


def test_csv_features_name_missing_column(tmp_path: Path) -> None:
    exc = _data_error(_csv_doc(_binary_csv(tmp_path), features=["a", "zz"]))
    _assert_names(exc, "data.features", ("zz", "binary.csv"))


def test_csv_output_units_do_not_match_classes(tmp_path: Path) -> None:
    csv = _write(tmp_path / "three.csv", "a,b,y", [f"{i},{2 * i},{i % 3}" for i in range(30)])
    exc = _data_error(_csv_doc(csv, loss="categorical_crossentropy", units=2))
    _assert_names(exc, "model.layers[0].units", ("units = 2", "3 classes", "units = 3"))


def test_csv_output_units_path_points_at_last_dense(tmp_path: Path) -> None:
    csv = _write(tmp_path / "three.csv", "a,b,y", [f"{i},{2 * i},{i % 3}" for i in range(30)])
    doc = _csv_doc(csv, loss="categorical_crossentropy")
    doc["model"]["layers"] = [
        {"type": "dense", "units": 8, "activation": "relu"},
        {"type": "dropout", "rate": 0.1},
        {"type": "dense", "units": 4},
    ]
    exc = _data_error(doc)
    _assert_names(exc, "model.layers[2].units", ("units = 4", "3 classes", "units = 3"))


def test_csv_bce_on_three_classes(tmp_path: Path) -> None:
    csv = _write(tmp_path / "three.csv", "a,b,y", [f"{i},{2 * i},{i % 3}" for i in range(30)])
    exc = _data_error(_csv_doc(csv))
    _assert_names(exc, "loss.type", ("binary_crossentropy", "3", "categorical_crossentropy"))


def test_csv_classification_loss_on_continuous_target(tmp_path: Path) -> None:
    csv = _write(tmp_path / "cont.csv", "a,b,y", [f"{i},{2 * i},{0.37 * i + 0.1:.2f}" for i in range(20)])
    exc = _data_error(_csv_doc(csv, loss="categorical_crossentropy", units=2))
    _assert_names(exc, "loss.type", ("categorical_crossentropy", "continuous", "'mse'"))


def test_csv_regression_loss_on_text_target(tmp_path: Path) -> None:
    csv = _write(tmp_path / "labels.csv", "a,b,y", [f"{i},{2 * i},{'cat' if i % 2 else 'dog'}" for i in range(20)])
    exc = _data_error(_csv_doc(csv, loss="mse"))
    _assert_names(exc, "data.target", ("'mse'", "numeric", "dog"))


def test_generator_param_not_accepted() -> None:
    doc = _seed()
    doc["data"]["params"]["n_sample"] = 100  # typo of n_samples
    exc = _data_error(doc)
    _assert_names(exc, "data.params.n_sample", ("make_classification", "'n_sample'", "n_samples", "n_features"))


def test_bundled_data_takes_no_params() -> None:
    doc = {
        "data": {"kind": "iris", "params": {"n_samples": 10}},
        "model": {"layers": [{"type": "dense", "units": 3}]},
        "loss": {"type": "categorical_crossentropy"},
    }
    exc = _data_error(doc)
    _assert_names(exc, "data.params", ("'iris'", "no params"))


# --------------------------------------------------------------------------- backends
def test_unknown_backend_name() -> None:
    with pytest.raises(BackendError) as info:
        registry.get_backend("nope")
    assert type(info.value) is BackendError
    msg = str(info.value)
    assert "'nope'" in msg and "keras, keras-jax, keras-torch, torch" in msg


def test_unknown_backend_in_run() -> None:
    with pytest.raises(BackendError) as info:
        duofit.run(_seed(), backend="nope")
    assert type(info.value) is BackendError
    assert "'nope'" in str(info.value) and "keras, keras-jax, keras-torch, torch" in str(info.value)


@pytest.mark.parametrize(("name", "extra"), [("torch", "torch"), ("keras", "tensorflow")])
def test_backend_not_installed_via_registry(monkeypatch: pytest.MonkeyPatch, name: str, extra: str) -> None:
    info = registry.BACKENDS[name]
    monkeypatch.setitem(registry.BACKENDS, name, dataclasses.replace(info, requires=("duofit_no_such_framework",)))
    assert not registry.is_installed(name)
    assert name not in registry.installed_backends()
    with pytest.raises(BackendNotInstalledError) as exc_info:
        registry.get_backend(name)
    exc = exc_info.value
    assert type(exc) is BackendNotInstalledError
    assert isinstance(exc, ImportError) and isinstance(exc, BackendError)
    msg = str(exc)
    assert f"pip install 'duofit[{extra}]'" in msg
    assert "'duofit_no_such_framework'" in msg and f"{name!r}" in msg
    assert (exc.backend, exc.missing, exc.extra) == (name, "duofit_no_such_framework", extra)


def test_backend_not_installed_via_find_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def fake_find_spec(name: str, package: str | None = None) -> Any:
        return None if name == "tensorflow" else real_find_spec(name, package)

    monkeypatch.setattr(registry.importlib.util, "find_spec", fake_find_spec)
    with pytest.raises(BackendNotInstalledError) as exc_info:
        registry.check_installed("keras")
    msg = str(exc_info.value)
    assert "pip install 'duofit[tensorflow]'" in msg and "'tensorflow'" in msg


def test_backend_not_installed_in_compare(monkeypatch: pytest.MonkeyPatch) -> None:
    info = registry.BACKENDS["torch"]
    monkeypatch.setitem(registry.BACKENDS, "torch", dataclasses.replace(info, requires=("duofit_no_such_framework",)))
    doc = copy.deepcopy(_seed())
    doc["data"]["params"]["n_samples"] = 60
    with pytest.raises(BackendNotInstalledError) as exc_info:
        duofit.compare(doc, ["torch"], isolate=False)
    assert "pip install 'duofit[torch]'" in str(exc_info.value)


def test_backend_listed_twice_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    from duofit.cli import main

    assert main(["compare", "examples/seed.toml", "--backends", "torch,torch"]) == 2
    err = capsys.readouterr().err
    assert "--backends: 'torch' listed more than once" in err and "Traceback" not in err


def test_backend_listed_twice_in_compare() -> None:
    with pytest.raises(BackendError) as info:
        duofit.compare(_seed(), ["torch", "torch"], isolate=False)
    assert "backends: 'torch' listed more than once" in str(info.value)
