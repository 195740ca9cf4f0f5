"""The ``train`` section: epochs, batches, seed, numeric type, device and early stopping.

Example:
    >>> TrainSpec().epochs, EarlyStoppingSpec(monitor="val_f1").patience
    (10, 5)
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from duofit.common.spec.base import MAX_SAMPLES, EpochCount, Epochs, NonNegFloat, SpecModel
from duofit.common.spec.vocab import check_monitor

__all__ = ["EarlyStoppingSpec", "TrainSpec"]


class EarlyStoppingSpec(SpecModel):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs."""

    monitor: str = "val_loss"
    mode: Literal["auto", "min", "max"] = "auto"
    patience: EpochCount = 5
    min_delta: NonNegFloat = 0.0
    restore_best: bool = True

    @field_validator("monitor")
    @classmethod
    def _monitor_name(cls, value: str) -> str:
        return check_monitor(value)


class TrainSpec(SpecModel):
    """How to train: epochs, batches, seed, numeric type and device."""

    epochs: Epochs = 10
    batch_size: Annotated[int, Field(gt=0, le=MAX_SAMPLES)] = 32
    shuffle: bool = True
    seed: int = 0
    dtype: Literal["float32", "float64"] = "float32"
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    threads: Annotated[int, Field(gt=0, le=1024)] | None = Field(
        default=None, description="Intra-op threads for every framework (default: framework's)."
    )
    history_metrics: bool = Field(
        default=True,
        description="Compute `metrics` on the validation split after every epoch (where: `epoch_metrics`).",
    )
    epoch_metrics: Literal["shared", "native"] = Field(
        default="shared",
        description="Where the per-epoch validation metrics are computed (with history_metrics = true and "
        "`metrics` listed): 'shared' = duofit's numpy code on each backend's validation outputs, identical "
        "on every backend; 'native' = the framework's own metric objects: keras.metrics on the Keras "
        "backends (updated in the epoch-end callback), duofit's torch-tensor metrics on the torch backend "
        "(accumulated on the device, read back with the epoch's losses in one transfer).",
    )
    early_stopping: EarlyStoppingSpec | None = None
    divergence_threshold: Annotated[float, Field(gt=1.0)] | None = Field(
        default=None,
        description="Stop as diverged (exit 3, like a non-finite loss) when the epoch's training or validation "
        "loss exceeds this multiple of the loss of a model that learned nothing (the larger of a constant "
        "predictor's and an all-zero output's). Default 1000 (duofit.common.diagnostics.DIVERGENCE_RATIO); "
        "`inf` keeps only the non-finite check.",
    )
