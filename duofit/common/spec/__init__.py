"""The backend-neutral experiment spec: validated, frozen pydantic models.

All defaults live here, never in a backend. Every value means the same math on
every backend; where a framework's own default or formula differs, the backend
translates (see each backend's ``layers.py`` / ``losses.py`` / ``optimizers.py``).

One module per section: :mod:`~duofit.common.spec.data`, :mod:`~duofit.common.spec.layers`
and :mod:`~duofit.common.spec.model`, :mod:`~duofit.common.spec.loss`,
:mod:`~duofit.common.spec.optimizer` (with schedules), :mod:`~duofit.common.spec.metrics`
(entries, options and columns), :mod:`~duofit.common.spec.train`; the names a spec may use
are in :mod:`~duofit.common.spec.vocab`, shape inference in :mod:`~duofit.common.spec.shapes`,
and :mod:`~duofit.common.spec.root` holds :class:`Spec` and its cross-section checks.

Example:
    >>> from duofit.common.spec import Spec
    >>> spec = Spec.model_validate({
    ...     "data": {"kind": "iris"},
    ...     "model": {"layers": [{"type": "dense", "units": 3}]},
    ...     "loss": {"type": "categorical_crossentropy", "from_logits": True},
    ...     "metrics": ["accuracy"],
    ... })
    >>> spec.optimizer.type, spec.train.epochs
    ('adam', 10)
"""

from __future__ import annotations

from duofit.common.spec.base import MAX_EPOCHS, MAX_SAMPLES, MAX_UNITS, FieldProblem
from duofit.common.spec.data import DataSpec
from duofit.common.spec.layers import (
    ActivationLayer,
    AddLayer,
    AvgPool2DLayer,
    BatchNormLayer,
    ConcatenateLayer,
    Conv2DLayer,
    DenseLayer,
    DropoutLayer,
    FlattenLayer,
    GlobalAvgPool2DLayer,
    InitSpec,
    MaxPool2DLayer,
    ReshapeLayer,
)
from duofit.common.spec.layerset import LAYER_TYPES, LayerSpec
from duofit.common.spec.loss import BCELoss, CCELoss, HuberLoss, LossSpec, MAELoss, MSELoss
from duofit.common.spec.metrics import (
    DEFAULT_THRESHOLD,
    MetricEntry,
    MetricItem,
    MetricSpec,
    column_name,
    resolve_metrics,
)
from duofit.common.spec.model import ModelSpec
from duofit.common.spec.optimizer import (
    AdamOptimizer,
    AdamWOptimizer,
    CosineSchedule,
    ExponentialSchedule,
    OptimizerSpec,
    PlateauSchedule,
    RMSpropOptimizer,
    ScheduleSpec,
    SGDOptimizer,
    StepSchedule,
)
from duofit.common.spec.root import Spec
from duofit.common.spec.train import EarlyStoppingSpec, TrainSpec
from duofit.common.spec.vocab import (
    ACTIVATIONS,
    CLASSIFICATION_METRICS,
    DATA_KIND_TARGETS,
    DATA_KINDS,
    INITIALIZERS,
    LOSS_TASKS,
    METRIC_NAMES,
    METRICS,
    REGRESSION_METRICS,
    MetricInfo,
    MetricName,
    MetricTask,
    higher_is_better,
)

__all__ = [
    "ACTIVATIONS",
    "CLASSIFICATION_METRICS",
    "DATA_KINDS",
    "DATA_KIND_TARGETS",
    "DEFAULT_THRESHOLD",
    "INITIALIZERS",
    "LAYER_TYPES",
    "LOSS_TASKS",
    "MAX_EPOCHS",
    "MAX_SAMPLES",
    "MAX_UNITS",
    "METRICS",
    "METRIC_NAMES",
    "REGRESSION_METRICS",
    "ActivationLayer",
    "AdamOptimizer",
    "AdamWOptimizer",
    "AddLayer",
    "AvgPool2DLayer",
    "BCELoss",
    "BatchNormLayer",
    "CCELoss",
    "ConcatenateLayer",
    "Conv2DLayer",
    "CosineSchedule",
    "DataSpec",
    "DenseLayer",
    "DropoutLayer",
    "EarlyStoppingSpec",
    "ExponentialSchedule",
    "FieldProblem",
    "FlattenLayer",
    "GlobalAvgPool2DLayer",
    "HuberLoss",
    "InitSpec",
    "LayerSpec",
    "LossSpec",
    "MAELoss",
    "MSELoss",
    "MaxPool2DLayer",
    "MetricEntry",
    "MetricInfo",
    "MetricItem",
    "MetricName",
    "MetricSpec",
    "MetricTask",
    "ModelSpec",
    "OptimizerSpec",
    "PlateauSchedule",
    "RMSpropOptimizer",
    "ReshapeLayer",
    "SGDOptimizer",
    "ScheduleSpec",
    "Spec",
    "StepSchedule",
    "TrainSpec",
    "column_name",
    "higher_is_better",
    "resolve_metrics",
]
