"""The spec's vocabulary: every name a spec may use, written once.

The ``Literal`` types are the source (pydantic validates against them, mypy checks code
against them); the tuples and tables are derived from them. This module imports nothing
from duofit, so anything may read it.

Example:
    >>> METRICS["mse"].task, METRICS["mse"].higher_is_better, METRICS["r2"].higher_is_better
    ('regression', False, True)
    >>> higher_is_better("val_f1_weighted"), higher_is_better("val_loss")
    (True, False)
"""

from __future__ import annotations

from typing import Literal, NamedTuple, get_args

__all__ = [
    "ACTIVATIONS",
    "CLASSIFICATION_METRICS",
    "DATA_KINDS",
    "DATA_KIND_TARGETS",
    "INITIALIZERS",
    "LOSS_TASKS",
    "METRICS",
    "METRIC_NAMES",
    "REGRESSION_DATA_KINDS",
    "REGRESSION_METRICS",
    "ActivationName",
    "DataKind",
    "InitName",
    "LossName",
    "MetricInfo",
    "MetricName",
    "MetricTask",
    "Task",
    "VERDICTS",
    "Verdict",
    "check_monitor",
    "higher_is_better",
    "metric_of_column",
]

ActivationName = Literal["relu", "sigmoid", "tanh", "softmax", "gelu", "leaky_relu", "linear"]
InitName = Literal[
    "glorot_uniform",  # Keras default: U(-l, l), l = sqrt(6 / (fan_in + fan_out))
    "glorot_normal",  # Keras: truncated normal, std = sqrt(2 / (fan_in + fan_out)) / .8796
    "xavier_uniform",  # torch name of glorot_uniform (identical math)
    "xavier_normal",  # torch: plain normal, std = sqrt(2 / (fan_in + fan_out))
    "he_uniform",  # U(-l, l), l = sqrt(6 / fan_in)
    "he_normal",  # Keras: truncated normal, std = sqrt(2 / fan_in) / .8796
    "kaiming_uniform",  # torch name of he_uniform (identical math)
    "kaiming_normal",  # torch: plain normal, std = sqrt(2 / fan_in)
    "lecun_uniform",  # U(-l, l), l = sqrt(3 / fan_in)
    "lecun_normal",  # truncated normal, std = sqrt(1 / fan_in) / .8796
    "torch_linear",  # torch nn.Linear default: kernel U(+-1/sqrt(fan_in)); same for bias
    "uniform",  # Keras' "uniform" (RandomUniform): U(-0.05, 0.05), the keras.layers.Embedding default
    "torch_embedding",  # torch nn.Embedding default: N(0, 1)
    "zeros",
    "ones",
    "constant",
]
ACTIVATIONS: tuple[ActivationName, ...] = get_args(ActivationName)
INITIALIZERS: tuple[InitName, ...] = get_args(InitName)

# --------------------------------------------------------------------------- tasks and losses
Task = Literal["binary", "multiclass", "regression"]
# A run's one verdict, most severe first (duofit.common.verdict decides in this order).
Verdict = Literal["diverged", "unstable", "exploding", "vanishing", "overfitting", "underfitting", "fine"]
VERDICTS: tuple[Verdict, ...] = get_args(Verdict)
LossName = Literal["mse", "mae", "huber", "binary_crossentropy", "categorical_crossentropy"]
# Which task each loss trains for: "binary" and "multiclass" losses need class labels.
LOSS_TASKS: dict[LossName, Task] = {
    "mse": "regression",
    "mae": "regression",
    "huber": "regression",
    "binary_crossentropy": "binary",
    "categorical_crossentropy": "multiclass",
}

# --------------------------------------------------------------------------- data
DataKind = Literal[
    "make_classification",
    "make_regression",
    "make_moons",
    "make_blobs",
    "iris",
    "breast_cancer",
    "digits",
    "wine",
    "diabetes",
    "csv",
    "npz",  # arrays x and y of one .npz file
    "csv_series",  # windows over CSV columns (forecasting)
    "sunspots",  # windows over statsmodels' yearly sunspot numbers
    "co2",  # windows over statsmodels' weekly Mauna Loa CO2
    "csv_text",  # a CSV text column as token ids (vocabulary from the training part)
    "npy",  # features and targets in two .npy files, memory-mapped and read per batch
    "parquet",  # a Parquet file's columns, read in row groups and streamed per batch
]
DATA_KINDS: tuple[DataKind, ...] = get_args(DataKind)
# The target each data kind yields: class labels, a continuous value, or whatever a file's
# target column holds (its task comes from data.task or the loss).
DATA_KIND_TARGETS: dict[DataKind, Literal["labels", "continuous", "file"]] = {
    "make_classification": "labels",
    "make_regression": "continuous",
    "make_moons": "labels",
    "make_blobs": "labels",
    "iris": "labels",
    "breast_cancer": "labels",
    "digits": "labels",
    "wine": "labels",
    "diabetes": "continuous",
    "csv": "file",
    "npz": "file",
    "csv_series": "continuous",
    "sunspots": "continuous",
    "co2": "continuous",
    "csv_text": "file",
    "npy": "file",
    "parquet": "file",
}
REGRESSION_DATA_KINDS: tuple[DataKind, ...] = tuple(k for k, t in DATA_KIND_TARGETS.items() if t == "continuous")

# --------------------------------------------------------------------------- metrics
MetricTask = Literal["classification", "regression"]
MetricName = Literal["accuracy", "precision", "recall", "f1", "roc_auc", "mse", "rmse", "mae", "r2"]
METRIC_NAMES: tuple[MetricName, ...] = get_args(MetricName)


class MetricInfo(NamedTuple):
    """What the spec knows of a metric (its formula lives with the metric implementations).

    Attributes:
        task: ``"classification"`` (binary and multiclass) or ``"regression"``.
        higher_is_better: ``True`` for scores, ``False`` for errors (which are minimised).
        thresholded: Computed on labels, which a binary task takes from ``proba > threshold``
            (so the metric accepts a ``threshold`` option).
        averaged: A per-class score that multiclass tasks average (the ``average`` option).
    """

    task: MetricTask
    higher_is_better: bool
    thresholded: bool = False
    averaged: bool = False


# One row per metric name; loss columns are not metrics and are always minimised.
METRICS: dict[MetricName, MetricInfo] = {
    "accuracy": MetricInfo("classification", higher_is_better=True, thresholded=True),
    "precision": MetricInfo("classification", higher_is_better=True, thresholded=True, averaged=True),
    "recall": MetricInfo("classification", higher_is_better=True, thresholded=True, averaged=True),
    "f1": MetricInfo("classification", higher_is_better=True, thresholded=True, averaged=True),
    "roc_auc": MetricInfo("classification", higher_is_better=True),  # ranks probabilities: no threshold
    "mse": MetricInfo("regression", higher_is_better=False),
    "rmse": MetricInfo("regression", higher_is_better=False),
    "mae": MetricInfo("regression", higher_is_better=False),
    "r2": MetricInfo("regression", higher_is_better=True),
}
CLASSIFICATION_METRICS: tuple[MetricName, ...] = tuple(n for n, i in METRICS.items() if i.task == "classification")
REGRESSION_METRICS: tuple[MetricName, ...] = tuple(n for n, i in METRICS.items() if i.task == "regression")


def metric_of_column(column: str) -> MetricName | None:
    """The metric a history/result column belongs to; ``None`` for a loss or unknown column.

    A column is the metric name, optionally ``val_``-prefixed and with option suffixes
    (``val_f1_weighted``, ``val_recall_t0.3``).

    Example:
        >>> metric_of_column("val_f1_weighted"), metric_of_column("rmse"), metric_of_column("val_loss")
        ('f1', 'rmse', None)
    """
    base = column.removeprefix("val_")
    return next((m for m in METRIC_NAMES if base == m or base.startswith(f"{m}_")), None)


def higher_is_better(column: str) -> bool:
    """Whether larger values of a history/result column are better (losses and errors: no).

    Example:
        >>> higher_is_better("accuracy"), higher_is_better("val_mae"), higher_is_better("loss")
        (True, False, False)
    """
    metric = metric_of_column(column)
    return metric is not None and METRICS[metric].higher_is_better


def check_monitor(value: str) -> str:
    """Check that ``value`` names a monitorable history column (``loss``, ``val_loss``, ``val_<metric column>``).

    Raises:
        ValueError: not such a column (the message lists the accepted forms).

    Example:
        >>> check_monitor("val_f1_weighted")
        'val_f1_weighted'
    """
    known = value.removeprefix("val_") == "loss" or metric_of_column(value) is not None
    if not known or (value != "loss" and not value.startswith("val_")):
        raise ValueError(
            f"monitor {value!r} is not a history column; use 'loss', 'val_loss' or "
            "'val_<column>' with the column of a metric listed in `metrics` (e.g. 'val_accuracy', 'val_f1_weighted')"
        )
    return value
