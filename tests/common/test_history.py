from __future__ import annotations

import math

import pytest

from duofit.common.history import EpochRecorder
from duofit.common.spec import EarlyStoppingSpec

SEQUENCES = [
    [1.0, 0.9, 0.95, 0.97, 0.85, 0.86, 0.87, 0.88, 0.7],
    [1.0, 1.0, 1.0, 1.0],
    [0.5, 0.4, 0.399, 0.398, 0.3979, 0.3978],
    [3.0, 2.0, float("nan"), 1.0],
]


def _ours(values: list[float], patience: int, min_delta: float, mode: str) -> tuple[int | None, int | None]:
    rec = EpochRecorder(
        [],
        "regression",
        False,
        None,
        len(values),
        EarlyStoppingSpec(monitor="val_loss", patience=patience, min_delta=min_delta),
        mode=mode,
    )
    for epoch, value in enumerate(values):
        # val_loss carries the monitored value; train loss stays finite
        rec.rows  # noqa: B018
        decision = rec.end_epoch(epoch, 1.0, value if not math.isnan(value) else 1e9, None, 0.0)
        if decision.stop:
            break
    return rec.stopped_epoch, rec.best_epoch


@pytest.mark.keras
@pytest.mark.parametrize("values", SEQUENCES[:3])
@pytest.mark.parametrize(("patience", "min_delta"), [(0, 0.0), (1, 0.0), (2, 0.0), (2, 0.005)])
def test_early_stopping_matches_keras_callback(values: list[float], patience: int, min_delta: float) -> None:
    """Our stopper and keras.callbacks.EarlyStopping stop after the same epoch."""
    import keras

    class _Model:
        stop_training = False

        def get_weights(self) -> list:
            return []

    cb = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, min_delta=min_delta, mode="min")
    cb.set_model(_Model())  # type: ignore[arg-type]
    cb.on_train_begin()
    keras_stop = None
    for epoch, value in enumerate(values):
        cb.on_epoch_end(epoch, {"val_loss": value})
        if cb.model.stop_training:
            keras_stop = epoch + 1
            break
    stopped, _ = _ours(values, patience, min_delta, "min")
    assert stopped == keras_stop


def test_best_epoch_and_max_mode() -> None:
    rec = EpochRecorder(
        ["accuracy"], "binary", True, None, 10, EarlyStoppingSpec(monitor="val_loss", patience=1), mode="max"
    )
    for epoch, value in enumerate([0.1, 0.5, 0.4, 0.3]):
        decision = rec.end_epoch(epoch, 1.0, value, None, 0.0)
        if decision.stop:
            break
    assert rec.best_epoch == 2 and rec.stopped_epoch == 3 and rec.restore_best


def test_divergence_message_names_epoch_and_fix() -> None:
    rec = EpochRecorder([], "regression", False, None, 5)
    rec.end_epoch(0, 2.5, 2.0, None, 0.0)
    decision = rec.end_epoch(1, float("inf"), float("nan"), None, 0.0)
    assert decision.stop and rec.diverged and rec.stopped_epoch == 2
    assert "epoch 2" in rec.message and "2.5" in rec.message and "lr" in rec.message
    assert not rec.restore_best
