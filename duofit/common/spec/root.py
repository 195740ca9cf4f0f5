"""The whole experiment (:class:`Spec`) and every check that spans its sections.

Each section validates its own fields; what needs two sections at once (the loss and the
data's target, the metrics and the monitors, the layers and the image shape) is checked
here, in :data:`CROSS_CHECKS` order: the first failing check names its field.

Example:
    >>> spec = Spec.model_validate({
    ...     "data": {"kind": "iris"},
    ...     "model": {"layers": [{"type": "dense", "units": 3}]},
    ...     "loss": {"type": "categorical_crossentropy", "from_logits": True},
    ...     "metrics": ["accuracy", {"name": "f1", "average": "weighted"}],
    ... })
    >>> spec.optimizer.type, spec.train.epochs, spec.task, spec.metric_columns
    ('adam', 10, 'multiclass', ['accuracy', 'f1_weighted'])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from pydantic import Field, model_validator

from duofit.common.spec.base import FieldProblem, SpecModel
from duofit.common.spec.data import MIN_VOCAB, DataSpec
from duofit.common.spec.layers import DenseLayer
from duofit.common.spec.layers_embedding import EmbeddingLayer
from duofit.common.spec.loss import LossSpec
from duofit.common.spec.metrics import MetricEntry, MetricItem, resolve_metrics
from duofit.common.spec.model import ModelSpec
from duofit.common.spec.optimizer import AdamOptimizer, OptimizerSpec, PlateauSchedule
from duofit.common.spec.shapes import infer_shapes
from duofit.common.spec.train import EarlyStoppingSpec, TrainSpec
from duofit.common.spec.vocab import LOSS_TASKS, REGRESSION_DATA_KINDS, Task, higher_is_better

__all__ = ["CROSS_CHECKS", "Spec"]

_LOSS_MONITORS = ("loss", "val_loss")


class Spec(SpecModel):
    """A whole experiment. Load one with :func:`duofit.load_spec`."""

    name: str | None = Field(default=None, max_length=200)
    metrics: Annotated[list[MetricItem], Field(max_length=20)] = Field(
        default_factory=list,
        description="Metric names, or tables with options: {name = 'f1', average = 'weighted'}, "
        "{name = 'precision', threshold = 0.3}.",
    )
    data: DataSpec
    model: ModelSpec
    loss: LossSpec
    optimizer: OptimizerSpec = AdamOptimizer(type="adam")
    train: TrainSpec = TrainSpec()

    @property
    def task(self) -> Task:
        """The task the loss trains for: ``binary``, ``multiclass`` or ``regression``."""
        return LOSS_TASKS[self.loss.type]

    @model_validator(mode="after")
    def _cross_checks(self) -> Spec:
        columns = [e.column for e in resolve_metrics(self.metrics, self.task, loss=self.loss.type)]
        for check in CROSS_CHECKS:
            check(self, columns)
        return self

    @property
    def metric_entries(self) -> list[MetricEntry]:
        """The metrics with every option resolved.

        Example:
            >>> spec = Spec.model_validate({"data": {"kind": "wine"}, "loss": {"type": "categorical_crossentropy"},
            ...     "model": {"layers": [{"type": "dense", "units": 3}]},
            ...     "metrics": [{"name": "f1", "average": "weighted"}]})
            >>> spec.metric_entries
            [MetricEntry(name='f1', column='f1_weighted', threshold=0.5, average='weighted')]
        """
        return resolve_metrics(self.metrics, self.task)

    @property
    def metric_columns(self) -> list[str]:
        """Result and history column of each metric (``val_`` prefixed in the history).

        Example:
            >>> spec = Spec.model_validate({"data": {"kind": "breast_cancer"},
            ...     "model": {"layers": [{"type": "dense", "units": 1}]}, "loss": {"type": "binary_crossentropy"},
            ...     "metrics": ["accuracy", {"name": "precision", "threshold": 0.3}]})
            >>> spec.metric_columns
            ['accuracy', 'precision_t0.3']
        """
        return [e.column for e in self.metric_entries]

    def monitor_mode(self, settings: EarlyStoppingSpec | PlateauSchedule | None = None) -> str:
        """Resolved mode of a monitor (``min`` for losses/errors, ``max`` for scores).

        Args:
            settings: Early stopping or plateau settings; default: ``train.early_stopping``.

        Example:
            >>> spec = Spec.model_validate({"data": {"kind": "diabetes"}, "loss": {"type": "mse"},
            ...     "model": {"layers": [{"type": "dense", "units": 1}]}, "metrics": ["mae", "r2"],
            ...     "train": {"early_stopping": {"monitor": "val_r2"}}})
            >>> spec.monitor_mode(), spec.monitor_mode(EarlyStoppingSpec(monitor="val_mae"))
            ('max', 'min')
        """
        es = settings if settings is not None else self.train.early_stopping
        if es is None:
            return "min"
        if es.mode != "auto":
            return es.mode
        return "max" if higher_is_better(es.monitor) else "min"


def _target_fits_loss(spec: Spec, columns: list[str]) -> None:
    task = spec.task
    regression_data = spec.data.kind in REGRESSION_DATA_KINDS or spec.data.task == "regression"
    if regression_data and task != "regression":
        raise FieldProblem(
            "loss.type",
            f"loss {spec.loss.type!r} needs class labels, but data kind {spec.data.kind!r} "
            "has a continuous target; use loss type 'mse', 'mae' or 'huber'",
        )
    if spec.data.task not in ("auto", "regression") and task != spec.data.task:
        raise FieldProblem(
            "data.task", f"data.task = {spec.data.task!r} but loss {spec.loss.type!r} trains a {task} task"
        )
    _regression_only_data(spec)


def _regression_only_data(spec: Spec) -> None:
    """Several target columns and a target scaler need a regression loss."""
    if spec.task == "regression":
        return
    fix = f"loss {spec.loss.type!r} trains a {spec.task} task on one column of class labels"
    if len(spec.data.target_columns) > 1:
        raise FieldProblem(
            "data.target",
            f"{len(spec.data.target_columns)} target columns make a multi-output regression, but {fix}; "
            "name one target column, or use loss type 'mse', 'mae' or 'huber'",
        )
    if spec.data.standardize_target:
        raise FieldProblem(
            "data.standardize_target",
            f"standardize_target scales a regression target, but {fix}; remove it (allowed only with "
            "loss type 'mse', 'mae' or 'huber')",
        )


def _layers_fit_input(spec: Spec, columns: list[str]) -> None:
    infer_shapes(spec.model.layers, spec.data.sample_shape)  # raises FieldProblem naming the layer


def _embeddings_cover_vocabulary(spec: Spec, columns: list[str]) -> None:
    """Texts become ids below ``data.text.max_vocab``: every embedding table must have a row for each."""
    text = spec.data.text
    if text is None:
        return
    for i, layer in enumerate(spec.model.layers):
        if isinstance(layer, EmbeddingLayer) and layer.input_dim < text.max_vocab:
            smaller = f", or data.text.max_vocab = {layer.input_dim}" if layer.input_dim >= MIN_VOCAB else ""
            raise FieldProblem(
                f"model.layers[{i}].input_dim",
                f"is {layer.input_dim}, but the texts become token ids up to data.text.max_vocab - 1 = "
                f"{text.max_vocab - 1} (0 pads, 1 is out-of-vocabulary, then the words): set input_dim = "
                f"{text.max_vocab}{smaller}",
            )


def _monitors_are_metrics(spec: Spec, columns: list[str]) -> None:
    listed = f" (metric columns: {', '.join(columns) or 'none'})"
    sched = spec.optimizer.schedule
    if isinstance(sched, PlateauSchedule) and sched.monitor not in _LOSS_MONITORS:
        if sched.monitor[4:] not in columns or not spec.train.history_metrics:
            raise FieldProblem(
                "optimizer.schedule.monitor",
                f"{sched.monitor!r} needs {sched.monitor[4:]!r} in `metrics` and train.history_metrics = true" + listed,
            )
    es = spec.train.early_stopping
    if es is not None and es.monitor not in _LOSS_MONITORS:
        if es.monitor[4:] not in columns:
            raise FieldProblem(
                "train.early_stopping.monitor", f"{es.monitor!r} needs {es.monitor[4:]!r} in `metrics`" + listed
            )
        if not spec.train.history_metrics:
            raise FieldProblem("train.history_metrics", "early stopping on a metric needs history_metrics = true")


def _output_fits_loss(spec: Spec, columns: list[str]) -> None:
    last_idx = spec.model.last_dense_index
    last_dense = spec.model.layers[last_idx]
    assert isinstance(last_dense, DenseLayer)
    if spec.task == "binary" and last_dense.units != 1:
        raise FieldProblem(
            f"model.layers[{last_idx}].units",
            f"binary_crossentropy needs one output unit; the last dense layer has "
            f"units = {last_dense.units}. Use units = 1, or categorical_crossentropy",
        )


# The checks that span sections, in order; each gets the spec and its metric columns.
CROSS_CHECKS: tuple[Callable[[Spec, list[str]], None], ...] = (
    _target_fits_loss,
    _layers_fit_input,
    _embeddings_cover_vocabulary,
    _monitors_are_metrics,
    _output_fits_loss,
)
