"""Metric options in the spec: plain names or tables, checked against the task, one column each."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from duofit.common.errors import SpecError
from duofit.common.loader import load_spec, spec_to_toml
from duofit.common.spec import column_name, resolve_metrics
from duofit.tuning.search import objective_column


def _doc(metrics: list[Any], loss: dict[str, Any] | None = None, **train: Any) -> dict[str, Any]:
    doc = tomllib.loads(Path("examples/seed.toml").read_text())  # binary_crossentropy on logits
    doc["metrics"] = metrics
    if loss is not None:
        doc["loss"] = loss
        doc["data"] = {"kind": "iris"}
        doc["model"] = {"layers": [{"type": "dense", "units": 3}]}
    doc.setdefault("train", {}).update(train)
    return doc


CCE = {"type": "categorical_crossentropy", "from_logits": True}


def test_plain_names_keep_their_columns_and_tables_get_suffixes() -> None:
    spec = load_spec(
        _doc(["accuracy", {"name": "f1", "average": "binary"}, {"name": "precision", "threshold": 0.3}, "roc_auc"])
    )
    assert spec.metric_columns == ["accuracy", "f1", "precision_t0.3", "roc_auc"]
    spec = load_spec(_doc([{"name": "f1", "average": "weighted"}, {"name": "recall", "average": "macro"}], CCE))
    assert spec.metric_columns == ["f1_weighted", "recall"]
    assert [e.average for e in spec.metric_entries] == ["weighted", "macro"]


def test_column_rule() -> None:
    assert column_name("precision", "binary", 0.5) == "precision"  # default threshold: plain name
    assert column_name("precision", "binary", 0.35) == "precision_t0.35"
    assert column_name("f1", "multiclass", average="micro") == "f1_micro"
    assert column_name("f1", "multiclass", average="macro") == "f1"


def test_options_round_trip_through_toml() -> None:
    spec = load_spec(_doc(["f1", {"name": "f1", "threshold": 0.25}]))
    again = load_spec(tomllib.loads(spec_to_toml(spec)))
    assert again == spec
    assert again.metric_columns == ["f1", "f1_t0.25"]


@pytest.mark.parametrize(
    ("metrics", "loss", "path", "needles"),
    [
        ([{"name": "f1", "average": "weighted"}], None, "metrics[0].average", ("'weighted'", "allowed: binary")),
        (["accuracy", {"name": "f1", "average": "binary"}], CCE, "metrics[1].average", ("macro, micro, weighted",)),
        ([{"name": "roc_auc", "threshold": 0.3}], None, "metrics[0].threshold", ("probabilities", "remove")),
        ([{"name": "accuracy", "threshold": 0.3}], CCE, "metrics[0].threshold", ("binary", "argmax", "remove")),
        ([{"name": "accuracy", "average": "micro"}], CCE, "metrics[0].average", ("takes no average", "remove")),
        ([{"name": "f1", "threshold": 1.0}], None, "metrics[0].threshold", ("less than 1",)),
        ([{"name": "f1", "average": "samples"}], CCE, "metrics[0].average", ("'samples'", "'weighted'")),
        (
            [{"name": "f1", "colour": 1}],
            None,
            "metrics[0].colour",
            ("allowed keys here: average, name, pos_label, threshold",),
        ),
        ([{"name": "f1", "pos_label": "b"}], CCE, "metrics[0].pos_label", ("binary tasks only", "remove")),
        ([{"name": "r2"}], None, "metrics[0].name", ("'r2'", "binary_crossentropy", "roc_auc")),
        ([3], None, "metrics[0]", ("a metric is a name",)),
        (["f1", {"name": "f1", "threshold": 0.5}], None, "metrics[1]", ("'f1' is listed twice", "metrics[0]")),
    ],
)
def test_bad_options_name_the_field_the_allowed_values_and_the_fix(
    metrics: list[Any], loss: dict[str, Any] | None, path: str, needles: tuple[str, ...]
) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(_doc(metrics, loss))
    assert info.value.path == path
    msg = str(info.value)
    assert f"{path}:" in msg
    for needle in needles:
        assert needle in msg, (needle, msg)


def test_monitors_accept_option_columns() -> None:
    es = {"monitor": "val_f1_t0.25", "patience": 2}
    spec = load_spec(_doc(["f1", {"name": "f1", "threshold": 0.25}], early_stopping=es))
    assert spec.monitor_mode() == "max"
    with pytest.raises(SpecError) as info:
        load_spec(_doc(["f1"], early_stopping=es))
    assert info.value.path == "train.early_stopping.monitor"
    assert "metric columns: f1" in str(info.value)


def test_tuning_objective_accepts_option_columns() -> None:
    spec = load_spec(_doc([{"name": "f1", "average": "weighted"}, "accuracy"], CCE))
    assert objective_column(spec, None) == ("val_f1_weighted", "maximize")
    assert objective_column(spec, "f1_weighted") == ("val_f1_weighted", "maximize")
    with pytest.raises(SpecError, match="allowed: loss, f1_weighted, accuracy"):
        objective_column(spec, "f1")


def test_resolve_accepts_names_tables_and_entries() -> None:
    entries = resolve_metrics(["mae", {"name": "r2"}], "regression")
    assert resolve_metrics(entries, "regression") == entries
    assert [(e.name, e.column, e.average) for e in entries] == [("mae", "mae", None), ("r2", "r2", None)]
