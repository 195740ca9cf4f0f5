"""Honest metrics: which class a binary metric scores, and metrics undefined on a split.

The reference is scikit-learn on the original labels (``pos_label``); the numpy fast path,
the native metrics and an end-to-end run on a 950/50 "legit"/"fraud" CSV must agree with it.
"""

from __future__ import annotations

import importlib
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sklearn.metrics as skm

from duofit.cli import main
from duofit.common.data.targets import split_warnings
from duofit.common.errors import DataError
from duofit.common.loader import load_spec
from duofit.common.metrics import (
    ClassOrder,
    EpochMetrics,
    UndefinedMetricWarning,
    bind_positive,
    class_order,
    compute_metrics,
    probabilities,
    undefined_reasons,
)
from duofit.common.metrics.undefined import AVERAGE_REASON
from duofit.common.result import RunResult
from duofit.common.spec import resolve_metrics
from duofit.common.spec.metrics import AVERAGES as TASK_AVERAGES

FRAUD = ClassOrder(("fraud", "legit"), positive=0, reason="the minority class")
BINARY_NAMES: list[Any] = [
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    {"name": "f1", "threshold": 0.3},
    {"name": "f1", "pos_label": "legit"},
    {"name": "recall", "threshold": 0.7, "pos_label": "fraud"},
]


def _sk_reference(y_str: np.ndarray, p_fraud: np.ndarray) -> dict[str, float]:
    """sklearn on the original labels: each column of BINARY_NAMES, positive class as named."""

    def labels(pos: str, t: float = 0.5) -> np.ndarray:
        other = "legit" if pos == "fraud" else "fraud"
        p = p_fraud if pos == "fraud" else 1 - p_fraud
        return np.where(p > t, pos, other)

    return {
        "accuracy": skm.accuracy_score(y_str, labels("fraud")),
        "precision": skm.precision_score(y_str, labels("fraud"), pos_label="fraud"),
        "recall": skm.recall_score(y_str, labels("fraud"), pos_label="fraud"),
        "f1": skm.f1_score(y_str, labels("fraud"), pos_label="fraud"),
        "roc_auc": skm.roc_auc_score(y_str == "fraud", p_fraud),
        "f1_t0.3": skm.f1_score(y_str, labels("fraud", 0.3), pos_label="fraud"),
        "f1_pos_legit": skm.f1_score(y_str, labels("legit"), pos_label="legit"),
        "recall_t0.7_pos_fraud": skm.recall_score(y_str, labels("fraud", 0.7), pos_label="fraud"),
    }


def _fraud_data(seed: int, n: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Encoded labels (0 = 'fraud', 1 = 'legit', sorted), the strings, and logits of P('legit')."""
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=n) > 0.1).astype(np.int64)
    logits = rng.normal(size=(n, 1)) * 2 + (y[:, None] * 2 - 1) * rng.uniform(0.5, 2)
    return y, np.array(["fraud", "legit"])[y], logits


# --------------------------------------------------------------------------- which class is positive
def test_default_positive_class_follows_sklearn_for_0_1_labels_else_the_minority() -> None:
    few_zeros = np.array([0] * 5 + [1] * 95)
    for classes in (np.array([0, 1]), np.array([-1, 1]), np.array([False, True]), np.array([0.0, 1.0])):
        order = class_order("binary", classes, few_zeros)
        assert order is not None and order.positive == 1 and "scikit-learn" in order.reason, classes
    order = class_order("binary", np.array(["fraud", "legit"]), few_zeros)
    assert order is not None and order.positive_label == "fraud" and "minority" in order.reason
    assert class_order("binary", np.array([3, 7]), 1 - few_zeros).positive_label == 7  # type: ignore[union-attr]
    balanced = class_order("binary", np.array(["a", "b"]), np.array([0, 1, 0, 1]))
    assert balanced is not None and balanced.positive_label == "b" and "balanced" in balanced.reason
    assert class_order("regression", None, np.zeros(3)) is None
    iris = class_order("multiclass", np.array([0, 1, 2]), np.array([0, 1, 2]))
    assert iris is not None and iris.positive is None and iris.plain
    assert not order.plain and order.line() == (
        "classes: 0 = 'fraud', 1 = 'legit' (positive: 'fraud', the minority class of the training split, 5 of 100)"
    )


@pytest.mark.parametrize("seed", range(6))
def test_pos_label_and_default_positive_match_sklearn_pos_label(seed: int) -> None:
    y, y_str, logits = _fraud_data(seed)
    p_fraud = 1 - probabilities("binary", logits, True)
    got = compute_metrics(BINARY_NAMES, "binary", y, logits, from_logits=True, order=FRAUD)
    want = _sk_reference(y_str, p_fraud)
    assert list(got) == list(want)
    for column, value in want.items():
        assert got[column] == pytest.approx(value, rel=1e-12), column
    # class 1 ('legit') is what the same metrics scored before: a different number
    assert got["f1"] != pytest.approx(compute_metrics(["f1"], "binary", y, logits, True)["f1"])


@pytest.mark.parametrize("seed", range(25))
def test_fast_path_equals_the_reference_with_either_positive_class(seed: int) -> None:
    y, _, logits = _fraud_data(seed, n=int(np.random.default_rng(seed).integers(2, 120)))
    if seed % 5 == 0:
        logits = np.round(logits)  # ties, and probabilities at the threshold
    if seed == 3:
        y = np.ones_like(y)  # no 'fraud' at all: recall, f1, roc_auc undefined
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        want = compute_metrics(BINARY_NAMES, "binary", y, logits, from_logits=True, order=FRAUD)
    got = EpochMetrics(BINARY_NAMES, "binary", y, from_logits=True, order=FRAUD)(logits)
    assert list(got) == list(want)
    for column, value in want.items():
        assert (math.isnan(value) and math.isnan(got[column])) or got[column] == pytest.approx(value, rel=1e-12)


def test_a_pos_label_that_is_no_class_lists_the_classes() -> None:
    entries = resolve_metrics(["f1", {"name": "recall", "pos_label": "Fraud"}], "binary")
    with pytest.raises(DataError) as info:
        bind_positive(entries, FRAUD)
    assert info.value.path == "metrics[1].pos_label"
    assert "'Fraud' is not a class" in str(info.value) and "'fraud', 'legit'" in str(info.value)
    numeric = ClassOrder((0, 1), positive=1, reason="sklearn")
    bound = bind_positive(resolve_metrics([{"name": "f1", "pos_label": "0"}], "binary"), numeric)
    assert bound[0].positive == 0  # "0" written as a string finds the class 0


def test_an_unbound_pos_label_is_refused_not_scored_on_class_1() -> None:
    with pytest.raises(ValueError, match="not bound to the data's classes"):
        compute_metrics([{"name": "f1", "pos_label": "fraud"}], "binary", np.array([0, 1]), np.array([0.2, 0.9]), False)


# --------------------------------------------------------------------------- undefined metrics
UNDEFINED_CASES = [
    # (task, names, y, outputs as probabilities / predictions, column, words of the reason)
    ("binary", ["precision"], [0, 1, 1], [0.1, 0.2, 0.3], "precision", "no sample was predicted positive"),
    ("binary", ["recall"], [0, 0, 0], [0.1, 0.9, 0.3], "recall", "no positive sample"),
    ("binary", ["f1"], [0, 0, 0], [0.1, 0.2, 0.3], "f1", "none was predicted positive"),
    ("binary", ["roc_auc"], [1, 1, 1], [0.1, 0.9, 0.3], "roc_auc", "one class only"),
    ("multiclass", ["roc_auc"], [2, 2], [[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]], "roc_auc", "one class only"),
    ("regression", ["r2"], [2.0, 2.0, 2.0], [1.0, 2.0, 3.0], "r2", "constant"),
]


@pytest.mark.parametrize(("task", "names", "y", "scores", "column", "words"), UNDEFINED_CASES)
def test_undefined_metrics_are_nan_with_a_warning_never_zero(
    task: str, names: list[str], y: list[Any], scores: list[Any], column: str, words: str
) -> None:
    y_arr, s = np.asarray(y), np.asarray(scores, dtype=np.float64)
    outputs = s.reshape(len(s), -1)
    with pytest.warns(UndefinedMetricWarning, match=f"{column} is undefined on the test split: .*{words}"):
        got = compute_metrics(names, task, y_arr, outputs, from_logits=False)
    assert math.isnan(got[column])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the per-epoch path: nan, no warning
        assert math.isnan(EpochMetrics(names, task, y_arr, from_logits=False)(outputs)[column])


def test_defined_metrics_warn_nothing() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = compute_metrics(["precision"], "binary", np.array([0, 1]), np.array([[0.2], [0.9]]), False)
    assert got == {"precision": 1.0}


def test_split_warnings_name_the_split_the_counts_and_the_fix() -> None:
    spec = load_spec(
        {
            "data": {"kind": "make_moons", "test_size": 0.1, "val_size": 0.1},
            "model": {"layers": [{"type": "dense", "units": 1}]},
            "loss": {"type": "binary_crossentropy"},
        }
    )
    classes = np.array(["fraud", "legit"])
    assert split_warnings(spec, np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]), False, classes) == []
    [message] = split_warnings(spec, np.array([0, 1, 1, 1]), np.array([0, 1, 0, 1]), False, classes)
    assert message.startswith("the validation split holds fewer than 2 samples of a class ('fraud': 1, 'legit': 3)")
    assert message.endswith("raise data.val_size (now 0.1) or add data")
    regression = load_spec(
        {
            "data": {"kind": "diabetes"},
            "model": {"layers": [{"type": "dense", "units": 1}]},
            "loss": {"type": "mse"},
        }
    )
    [message] = split_warnings(regression, np.array([1.0]), np.array([1.0]), True, None)
    assert "test split (also the validation split) holds 1 sample(s)" in message and "data.test_size" in message


# --------------------------------------------------------------------------- results and commands
def _tiny_result(order: ClassOrder | None) -> RunResult:
    spec = load_spec(
        {
            "data": {"kind": "make_moons"},
            "model": {"layers": [{"type": "dense", "units": 1}]},
            "loss": {"type": "binary_crossentropy", "from_logits": True},
        }
    )
    history = pd.DataFrame({"epoch": [1], "loss": [0.5], "val_loss": [0.6]})
    return RunResult(
        backend="torch",
        spec=spec,
        history=history,
        metrics={"accuracy": 1.0},
        predictions=np.zeros((2, 1), dtype=np.float32),
        y_test=np.array([0, 1]),
        timings={"fit_s": 0.1},
        environment={},
        class_order=order,
    )


def test_the_class_order_is_saved_in_result_json_and_predictions_npz(tmp_path: Path) -> None:
    folder = _tiny_result(FRAUD).save(tmp_path / "run")
    meta = json.loads((folder / "result.json").read_text(encoding="utf-8"))
    assert meta["class_order"] == {"classes": ["fraud", "legit"], "positive": 0, "reason": "the minority class"}
    with np.load(folder / "predictions.npz", allow_pickle=False) as npz:
        assert npz["classes"].tolist() == ["fraud", "legit"] and int(npz["positive"]) == 0
    assert RunResult.load(folder).class_order == FRAUD
    plain = _tiny_result(None).save(tmp_path / "regression")
    assert RunResult.load(plain).class_order is None


def _fraud_csv(folder: Path, n_fraud: int = 50, n: int = 1000, **spec: Any) -> Path:
    """A 950/50 'legit'/'fraud' CSV (fraud shifted on both features) and a spec file for it."""
    rng = np.random.default_rng(0)
    label = np.array(["legit"] * (n - n_fraud) + ["fraud"] * n_fraud)
    rng.shuffle(label)
    shift = (label == "fraud") * 2.5
    pd.DataFrame({"a": rng.normal(size=n) + shift, "b": rng.normal(size=n) + shift, "label": label}).to_csv(
        folder / "fraud.csv", index=False
    )
    metrics = spec.pop("metrics", '["accuracy", "precision", "recall", "f1", "roc_auc"]')
    last = spec.pop("last", "")
    text = f"""name = "fraud"
metrics = {metrics}
[data]
kind = "csv"
path = "{(folder / "fraud.csv").as_posix()}"
target = "label"
test_size = {spec.pop("test_size", 0.2)}
[[model.layers]]
type = "dense"
units = 8
activation = "relu"
[[model.layers]]
type = "dense"
units = 1
{last}
[loss]
type = "binary_crossentropy"
from_logits = true
[optimizer]
type = "adam"
lr = 0.05
[train]
epochs = {spec.pop("epochs", 2)}
history_metrics = true
"""
    path = folder / "fraud.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_validate_prints_the_classes_and_the_spec_and_split_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _fraud_csv(tmp_path, n_fraud=6, n=200, test_size=0.05, last='activation = "sigmoid"')
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{path}: valid. task binary, 2 features")
    assert out[1].startswith("classes: 0 = 'fraud', 1 = 'legit' (positive: 'fraud', the minority class")
    assert any("from_logits = true" in line and "a second time" in line for line in out[2:]), out
    small = [line for line in out if "test split (also the validation split) holds fewer than 2" in line]
    assert small and small[0].startswith("warning: ") and "'fraud': 1" in small[0] and "data.test_size" in small[0]


def test_validate_refuses_a_pos_label_that_is_no_class(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _fraud_csv(tmp_path, metrics='["accuracy", {name = "f1", pos_label = "Fraud"}]')
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "metrics[1].pos_label" in err and "'fraud', 'legit'" in err and "Traceback" not in err


@pytest.mark.torch
def test_a_950_50_fraud_csv_is_scored_on_fraud_not_legit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: f1 = 0.995 (scored on 'legit'); now on 'fraud', as sklearn's pos_label='fraud'."""
    path = _fraud_csv(tmp_path, epochs=15, metrics='["f1", "roc_auc", {name = "f1", pos_label = "legit"}]')
    assert main(["run", str(path), "-q", "-o", str(tmp_path / "out")]) == 0
    assert "classes: 0 = 'fraud', 1 = 'legit' (positive: 'fraud', the minority class" in capsys.readouterr().out
    res = RunResult.load(tmp_path / "out")
    labels = np.array(res.class_order.classes)[res.y_test]  # type: ignore[union-attr]
    p_legit = probabilities("binary", res.predictions, from_logits=True)
    predicted = np.where(p_legit > 0.5, "legit", "fraud")
    assert res.metrics["f1"] == pytest.approx(skm.f1_score(labels, predicted, pos_label="fraud"), rel=1e-12)
    assert res.metrics["f1_pos_legit"] == pytest.approx(skm.f1_score(labels, predicted, pos_label="legit"))
    assert 0.3 < res.metrics["f1"] < res.metrics["f1_pos_legit"] - 0.02  # the rare class is the harder one
    assert res.metrics["roc_auc"] == pytest.approx(skm.roc_auc_score(labels == "fraud", 1 - p_legit))
    last = res.history.iloc[-1]  # the per-epoch fast path scores the same class (validation = test split)
    assert last["val_f1"] == pytest.approx(res.metrics["f1"], rel=1e-12)


@pytest.mark.torch
def test_torch_native_metrics_flip_and_report_undefined_like_the_reference() -> None:
    _native_agrees("torch", tolerance=1e-12)


@pytest.mark.keras
def test_keras_native_metrics_flip_and_report_undefined_like_the_reference() -> None:
    _native_agrees("keras", tolerance=1e-6)  # float32 counts; F1Score's epsilon (see test_native_metrics)


def _native_agrees(backend: str, tolerance: float) -> None:
    mod = importlib.import_module(f"duofit.backends.{backend}.metrics")
    names = [n for n in BINARY_NAMES if n != "roc_auc"]  # Keras' AUC is a Riemann sum: test_native_metrics
    y, _, logits = _fraud_data(0)
    entries = bind_positive(resolve_metrics(names, "binary"), FRAUD)
    cases = [(y, logits), (np.ones_like(y), logits), (y, np.full_like(logits, 9.0))]  # no fraud; none predicted
    for y_case, out in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            want = compute_metrics(entries, "binary", y_case, out, True)
        got = mod.native_metrics(entries, "binary", y_case, out.astype(np.float32), True, batch_size=64)
        for column, value in want.items():
            if math.isnan(value):
                assert math.isnan(got[column]), (column, got[column])
            else:
                assert got[column] == pytest.approx(value, abs=tolerance), column
    regression = mod.native_metrics(["r2"], "regression", np.full(8, 3.0), np.arange(8.0).reshape(-1, 1), False)
    assert math.isnan(regression["r2"])


def test_cv_means_skip_undefined_folds_and_say_how_many() -> None:
    from duofit.tuning.cv import CVResult
    from duofit.tuning.folds import make_folds

    spec = load_spec(Path(__file__).parents[2] / "examples" / "seed.toml").model_copy(
        update={"metrics": ["accuracy", "precision"]}
    )
    folds = make_folds(spec, 3)
    nan = float("nan")
    results = []
    for accuracy, precision in ((0.9, 0.8), (0.8, nan), (0.7, 0.6)):
        res = _tiny_result(None)
        res.metrics = {"accuracy": accuracy, "precision": precision}
        if math.isnan(precision):
            res.diagnostics = {"undefined_metrics": {"precision": "no sample was predicted positive"}}
        results.append(res)
    cv = CVResult(spec=spec, folds=folds, results={"torch": results}, splitter="StratifiedKFold", seed=0, skipped={})
    summary = cv.summary().set_index("metric")
    assert summary.loc["precision", "mean"] == pytest.approx(0.7)  # over the 2 defined folds, not (0.8 + 0 + 0.6) / 3
    assert (summary.loc["precision", "undefined"], summary.loc["accuracy", "undefined"]) == (1, 0)
    assert cv.table().loc["precision", "torch"] == "0.7000 ± 0.1000 (2 of 3 folds)"
    assert cv.table().loc["accuracy", "torch"] == "0.8000 ± 0.0816"
    assert cv.undefined_notes() == [
        "precision (torch): undefined in 1 of 3 folds, mean over 2 (fold 2: no sample was predicted positive)"
    ]


# --------------------------------------------------------------------------- multiclass averages
AVERAGES = TASK_AVERAGES["multiclass"]  # macro, micro, weighted
AVERAGED: list[Any] = [{"name": n, "average": a} for n in ("precision", "recall", "f1") for a in AVERAGES]
SKLEARN = {"precision": skm.precision_score, "recall": skm.recall_score, "f1": skm.f1_score}


def _column(name: str, average: str) -> str:
    return name if average == "macro" else f"{name}_{average}"


def _unseen_class_data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random multiclass logits whose last class is never predicted; some seeds drop a class from y."""
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(6, 200)), int(rng.integers(3, 7))
    y = rng.integers(0, k, size=n)
    if seed % 3 == 0:
        y = np.where(y == 0, 1, y)  # class 0 absent from y (it may still be predicted: recall undefined)
    out = rng.normal(size=(n, k)) + np.eye(k)[y] * rng.uniform(0, 2)
    out[:, -1] = -50.0  # never the argmax: its precision is undefined
    return y, out


@pytest.mark.parametrize("seed", range(30))
def test_multiclass_averages_leave_undefined_classes_out_as_sklearn_zero_division_nan(seed: int) -> None:
    y, out = _unseen_class_data(seed)
    labels = out.argmax(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        got = compute_metrics(AVERAGED, "multiclass", y, out, from_logits=True)
    fast = EpochMetrics(AVERAGED, "multiclass", y, from_logits=True)(out)
    for name, score in SKLEARN.items():
        for average in AVERAGES:
            column = _column(name, average)
            want = score(y, labels, average=average, zero_division=np.nan)
            assert got[column] == pytest.approx(want, rel=1e-12), column
            assert fast[column] == pytest.approx(want, rel=1e-12), column
    # the class never predicted no longer pulls the precision down as a 0
    assert got["precision"] >= skm.precision_score(y, labels, average="macro", zero_division=0)
    assert got["precision_micro"] == skm.accuracy_score(y, labels)  # micro sums counts: unaffected


# (y, predicted labels, classes, {column: value}): hand-checked averages with classes left out
LEFT_OUT_CASES = [
    # class 2 never predicted: precision (1 + 1/3) / 2 (zero_division=0 said 4/9), weighted the same
    ([0, 1, 2, 2], [0, 1, 1, 1], 3, {"precision": 2 / 3, "precision_weighted": 2 / 3, "recall": 2 / 3}),
    # class 2 predicted, absent from y: recall (1 + 1/2) / 2; weighted recall gives it weight 0 anyway
    ([0, 1, 1], [0, 1, 2], 3, {"recall": 0.75, "recall_weighted": 2 / 3, "precision": 2 / 3}),
    # weighted: the only class with support is left out; sklearn then averages the rest unweighted
    ([0, 0], [1, 1], 2, {"precision_weighted": 0.0, "precision": 0.0, "recall": 0.0}),
]


@pytest.mark.parametrize(("y", "labels", "k", "want"), LEFT_OUT_CASES)
def test_left_out_classes_by_hand(y: list[int], labels: list[int], k: int, want: dict[str, float]) -> None:
    y_arr, out = np.asarray(y), np.eye(k)[labels] * 5.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        got = compute_metrics(AVERAGED, "multiclass", y_arr, out, from_logits=True)
    fast = EpochMetrics(AVERAGED, "multiclass", y_arr, from_logits=True)(out)
    for column, value in want.items():
        assert got[column] == pytest.approx(value, rel=1e-12) == fast[column], column


def test_one_warning_names_the_metric_and_the_classes_left_out() -> None:
    order = ClassOrder(("setosa", "versicolor", "virginica", "other"))
    y = np.array([0, 1, 2, 2, 1, 0])
    out = np.eye(4)[[0, 1, 1, 1, 3, 0]] * 5.0  # 'virginica' never predicted; 'other' predicted, not in y
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compute_metrics(AVERAGED, "multiclass", y, out, from_logits=True, order=order, split="validation")
    messages = sorted(str(w.message) for w in caught)
    assert all(w.category is UndefinedMetricWarning for w in caught)
    assert messages == [
        "precision on the validation split: class 'virginica' was never predicted, so its precision is "
        "undefined and left out of the macro average (not counted as 0)",
        "precision_weighted on the validation split: class 'virginica' was never predicted, so its precision "
        "is undefined and left out of the weighted average (not counted as 0)",
        "recall on the validation split: class 'other' was absent from the split, so its recall is undefined "
        "and left out of the macro average (not counted as 0)",
    ]  # recall_weighted: 'other' weighs 0 anyway; f1 and micro: nothing undefined
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the per-epoch path says nothing
        EpochMetrics(AVERAGED, "multiclass", y, from_logits=True, order=order)(out)


def test_every_class_left_out_is_nan_with_the_reason() -> None:
    entries = resolve_metrics(AVERAGED, "multiclass")
    empty = EpochMetrics(entries, "multiclass", np.zeros(0, dtype=np.int64), from_logits=True)(np.zeros((0, 3)))
    assert all(math.isnan(v) for v in empty.values()), empty
    assert undefined_reasons(empty, entries) == dict.fromkeys(empty, AVERAGE_REASON)


@pytest.mark.torch
@pytest.mark.parametrize("seed", range(10))
def test_torch_native_averages_leave_undefined_classes_out(seed: int) -> None:
    from duofit.backends.torch.metrics import native_metrics

    y, out = _unseen_class_data(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        want = compute_metrics(AVERAGED, "multiclass", y, out, from_logits=True)
    got = native_metrics(AVERAGED, "multiclass", y, out, True, batch_size=16)
    assert got == pytest.approx(want, rel=1e-12)
    empty = native_metrics(AVERAGED, "multiclass", np.zeros(0, dtype=np.int64), np.zeros((0, 3)), True)
    assert all(math.isnan(v) for v in empty.values()), empty


@pytest.mark.keras
def test_keras_native_precision_and_recall_averages_leave_undefined_classes_out() -> None:
    from duofit.backends.keras.metrics import native_metrics

    names = [e for e in AVERAGED if e["name"] != "f1"]  # F1Score: its own macro rule (module docstring)
    for seed in range(4):
        y, out = _unseen_class_data(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            want = compute_metrics(names, "multiclass", y, out, from_logits=True)
        got = native_metrics(names, "multiclass", y, out.astype(np.float32), True, batch_size=16)
        assert got == pytest.approx(want, abs=2.5e-7), seed  # float32 counts: test_native_metrics' bound


@pytest.mark.torch
def test_run_warns_and_records_a_class_left_out_of_the_average(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rare class 'c' drawn like 'a' is never predicted: the run says so and keeps it out of the mean."""
    rng = np.random.default_rng(0)
    label = np.array(["a"] * 140 + ["b"] * 140 + ["c"] * 20)
    shift = (label == "b") * 3.0
    frame = {"x1": rng.normal(size=300) + shift, "x2": rng.normal(size=300) + shift, "label": label}
    pd.DataFrame(frame).to_csv(tmp_path / "three.csv", index=False)
    spec = {
        "metrics": ["precision", {"name": "precision", "average": "weighted"}, "f1"],
        "data": {"kind": "csv", "path": str(tmp_path / "three.csv"), "target": "label"},
        "model": {"layers": [{"type": "dense", "units": 3}]},
        "loss": {"type": "categorical_crossentropy", "from_logits": True, "labels": "integer"},
        "optimizer": {"type": "adam", "lr": 0.05},
        "train": {"epochs": 5},
    }
    (tmp_path / "three.json").write_text(json.dumps(spec), encoding="utf-8")
    assert main(["run", str(tmp_path / "three.json"), "-q", "-o", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "warning: torch: precision on the test split: class 'c' was never predicted" in err
    res = RunResult.load(tmp_path / "out")
    assert set(res.diagnostics["left_out_classes"]) == {"precision", "precision_weighted"}
    labels = res.predictions.argmax(axis=1)
    assert 2 not in labels
    want = skm.precision_score(res.y_test, labels, average="macro", zero_division=np.nan)
    assert res.metrics["precision"] == pytest.approx(want, rel=1e-12)
    assert res.metrics["precision"] > skm.precision_score(res.y_test, labels, average="macro", zero_division=0)
