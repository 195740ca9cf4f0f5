"""``train.epoch_metrics = "native"``: per-epoch history metrics from each framework's own metric objects.

The same spec runs twice per backend, with ``shared`` (duofit's numpy code) and ``native``
metrics. Training does not depend on the metrics, so both runs see the same validation
predictions and the history's metric columns must agree within the tolerances that
``tests/backends/test_native_metrics.py`` sets for each backend's metric module.
"""

from __future__ import annotations

import copy
import math
import tomllib
from typing import Any

import numpy as np
import pandas as pd
import pytest

import duofit
from duofit import SpecError
from duofit.common.data import load_dataset
from duofit.common.history import EpochRecorder
from tests.backends.test_native_metrics import (
    KERAS_AUC_SLACK,
    TORCH_ATOL,
    TORCH_RTOL,
    _auc_bucket_bound,
    _keras_tolerance,
)
from tests.conftest import EXAMPLES
from tests.params import CORE_BACKENDS

EPOCHS = 3


def _seed() -> dict[str, Any]:
    return tomllib.loads((EXAMPLES / "seed.toml").read_text(encoding="utf-8"))


def _binary() -> dict[str, Any]:
    doc = _seed()
    doc["metrics"] = ["accuracy", "precision", "recall", "f1", "roc_auc", {"name": "f1", "threshold": 0.3}]
    return doc


def _multiclass() -> dict[str, Any]:
    """Overlapping blobs (metrics well below 1), one-hot loss labels, every average."""
    doc = _seed()
    doc["data"] = {
        "kind": "make_blobs",
        "params": {"n_samples": 600, "centers": 4, "n_features": 5, "cluster_std": 4.0, "random_state": 3},
        "test_size": 0.25,
        "val_size": 0.25,
        "split_seed": 0,
    }
    doc["model"]["layers"][-1]["units"] = 4
    doc["loss"] = {"type": "categorical_crossentropy", "from_logits": True, "labels": "one_hot"}
    doc["metrics"] = [
        "accuracy",
        "roc_auc",
        {"name": "precision", "average": "macro"},
        {"name": "recall", "average": "micro"},
        {"name": "f1", "average": "weighted"},
    ]
    return doc


def _regression() -> dict[str, Any]:
    return tomllib.loads((EXAMPLES / "regression.toml").read_text(encoding="utf-8"))


CASES = {"binary": _binary, "multiclass": _multiclass, "regression": _regression}


def _run(backend: str, doc: dict[str, Any], source: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list]:
    """Run ``doc`` with ``train.epoch_metrics = source``; also return each epoch's validation outputs."""
    doc = copy.deepcopy(doc)
    doc["train"]["epoch_metrics"] = source
    seen: list[np.ndarray | None] = []
    end_epoch = EpochRecorder.end_epoch

    def spy(
        self: EpochRecorder, epoch: int, train_loss: float, val_loss: float, val_outputs: Any, *a: Any, **kw: Any
    ) -> Any:
        seen.append(None if val_outputs is None else np.array(val_outputs))
        return end_epoch(self, epoch, train_loss, val_loss, val_outputs, *a, **kw)

    monkeypatch.setattr(EpochRecorder, "end_epoch", spy)
    res = duofit.run(doc, backend=backend)
    monkeypatch.setattr(EpochRecorder, "end_epoch", end_epoch)
    return res, seen


@pytest.mark.parametrize("backend", CORE_BACKENDS)
@pytest.mark.parametrize("case", list(CASES))
def test_native_history_metrics_agree_with_the_shared_ones(
    backend: str, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = CASES[case]()
    doc["train"]["epochs"] = EPOCHS
    shared, shared_outputs = _run(backend, doc, "shared", monkeypatch)
    native, native_outputs = _run(backend, doc, "native", monkeypatch)
    assert shared.environment["epoch_metrics"] == "shared"
    assert native.environment["epoch_metrics"] == "native"
    spec = native.spec
    columns = [f"val_{c}" for c in spec.metric_columns]
    assert list(native.history.columns) == list(shared.history.columns)  # same columns, same order
    assert set(columns) <= set(native.history.columns)
    # training never reads the metrics: the same losses, hence the same validation predictions
    pd.testing.assert_frame_equal(
        native.history[["epoch", "loss", "val_loss"]], shared.history[["epoch", "loss", "val_loss"]]
    )
    assert len(shared_outputs) == len(native.history) == EPOCHS
    from_logits = bool(getattr(spec.loss, "from_logits", False))
    y_val = load_dataset(spec).y_val
    for entry in spec.metric_entries:
        column = f"val_{entry.column}"
        for epoch, (got, expected) in enumerate(zip(native.history[column], shared.history[column], strict=True)):
            assert math.isfinite(got), (column, epoch)
            if backend == "torch":
                assert got == pytest.approx(expected, rel=TORCH_RTOL, abs=TORCH_ATOL), (column, epoch)
            elif entry.name == "roc_auc":
                from duofit.backends.keras.metrics import AUC_THRESHOLDS

                bound = _auc_bucket_bound(spec.task, y_val, shared_outputs[epoch], from_logits, AUC_THRESHOLDS)
                assert bound < 0.02, "the bound is too loose to test anything"
                assert abs(got - expected) <= bound + KERAS_AUC_SLACK, (column, epoch, bound)
            else:
                assert abs(got - expected) <= _keras_tolerance(entry.name, expected), (column, epoch)
    if backend == "torch":
        assert native_outputs == [None] * EPOCHS  # the validation outputs never left the device
    else:
        for a, b in zip(native_outputs, shared_outputs, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", CORE_BACKENDS)
def test_early_stopping_on_a_native_metric(backend: str) -> None:
    doc = _binary()
    doc["train"].update(
        epochs=40,
        epoch_metrics="native",
        early_stopping={"monitor": "val_f1_t0.3", "patience": 2, "min_delta": 0.01, "restore_best": True},
    )
    res = duofit.run(doc, backend=backend)
    values = res.history["val_f1_t0.3"].to_numpy()
    assert res.stopped_epoch is not None and res.stopped_epoch < 40
    assert len(values) == res.stopped_epoch
    # Keras' rule with mode max: best = first epoch that beat the best so far by more than min_delta
    best, best_epoch = -math.inf, None
    for i, v in enumerate(values):
        if v - 0.01 > best:
            best, best_epoch = v, i + 1
    assert res.best_epoch == best_epoch
    assert res.stopped_epoch - res.best_epoch == 2  # stopped after `patience` epochs without improvement


def test_recorder_uses_precomputed_metrics() -> None:
    rec = EpochRecorder(["accuracy"], "binary", True, np.array([0, 1]), 1)
    rec.end_epoch(0, 1.0, 1.0, np.array([[5.0], [-5.0]]), 0.0, metrics={"accuracy": 0.75})
    row = rec.rows[0]
    assert row["val_accuracy"] == 0.75  # the backend's value, not the shared one (0.0 here)
    assert list(row) == ["epoch", "loss", "val_loss", "val_accuracy", "lr", "grad_norm", "epoch_s"]


def test_bad_epoch_metrics_value_names_field_and_choices() -> None:
    doc = _seed()
    doc["train"]["epoch_metrics"] = "framework"
    with pytest.raises(SpecError) as info:
        duofit.load_spec(doc)
    msg = str(info.value)
    assert "train.epoch_metrics" in msg
    assert "'shared'" in msg and "'native'" in msg
    assert duofit.load_spec(_seed()).train.epoch_metrics == "shared"  # the default
