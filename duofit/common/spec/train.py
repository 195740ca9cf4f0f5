"""The ``train`` section: epochs, batches, seed, dtype, device, compiled and mixed-precision modes, early stopping.

Example:
    >>> TrainSpec().epochs, EarlyStoppingSpec(monitor="val_f1").patience
    (10, 5)
    >>> TrainSpec(precision="mixed_bfloat16").compute_dtype, TrainSpec().compile
    ('bfloat16', False)
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from duofit.common.spec.base import MAX_SAMPLES, EpochCount, Epochs, FieldProblem, NonNegFloat, SpecModel
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
    compile: bool = Field(
        default=False,
        description="Compile the training step: torch.compile (inductor; on CPU it needs a C++ compiler) for the "
        "torch loop, jit_compile=True (XLA) for Keras on TensorFlow and JAX. Off: each framework's default "
        "(torch eager, TensorFlow graphs without XLA on a CPU-only host, JAX always XLA). The first epoch then "
        "includes the compilation; result timings report it apart (compile_s).",
    )
    precision: Literal["float32", "mixed_bfloat16"] = Field(
        default="float32",
        description="'mixed_bfloat16': layers compute in bfloat16 with float32 weights (master weights), losses and "
        "optimizer updates in float32: torch.autocast(bfloat16) around forward and loss, Keras' "
        "'mixed_bfloat16' dtype policy. Needs dtype = 'float32'; parity then uses bfloat16 tolerances.",
    )
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

    @property
    def compute_dtype(self) -> str:
        """The dtype layers compute in: ``bfloat16`` under mixed precision, else ``dtype``."""
        return "bfloat16" if self.precision == "mixed_bfloat16" else self.dtype

    @model_validator(mode="after")
    def _precision_fits_dtype(self) -> TrainSpec:
        if self.precision != "float32" and self.dtype != "float32":
            raise FieldProblem(
                "precision",
                f"precision = {self.precision!r} keeps float32 master weights, so it needs dtype = 'float32' "
                f"(got dtype = {self.dtype!r}); set dtype = 'float32', "
                f"or precision = 'float32' to train in {self.dtype}",
            )
        return self
