"""The ``metrics`` list: metric entries, their options and the column each one gets.

A spec's ``metrics`` list holds plain names (``"f1"``) or tables
(``{name = "f1", average = "weighted"}``). :func:`resolve_metrics` checks every entry against
the task and turns it into a :class:`MetricEntry` with all options filled in. Which metric
takes which option is :data:`~duofit.common.spec.vocab.METRICS`.

Column naming rule: the metric name, then ``_<average>`` when the average differs from the
task's default, then ``_t<threshold>`` when the threshold differs from 0.5 (the threshold as
Python's shortest ``repr``), then ``_pos_<label>`` when a ``pos_label`` is given. Default
options keep the plain name, so ``"f1"`` and ``{name = "f1", average = "macro"}`` are the same
column and existing monitors keep working.

``pos_label`` (binary tasks) names the class a metric scores as positive by its value in the
data (``"fraud"``, ``1``). Which classes exist is known only once the data is read, so an
entry resolved here keeps the label as written (``positive`` is ``None``);
:func:`duofit.common.metrics.bind_positive` turns it into the class index, or reports the
classes when the label is not one of them.

Example:
    >>> [e.column for e in resolve_metrics(["f1", {"name": "precision", "threshold": 0.3}], "binary")]
    ['f1', 'precision_t0.3']
    >>> resolve_metrics([{"name": "f1", "pos_label": "fraud"}], "binary")[0].column
    'f1_pos_fraud'
    >>> resolve_metrics([{"name": "f1", "average": "weighted"}], "multiclass")[0].column
    'f1_weighted'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag

from duofit.common.spec.base import FieldProblem, Fraction, SpecModel
from duofit.common.spec.vocab import CLASSIFICATION_METRICS, METRICS, REGRESSION_METRICS, MetricName

__all__ = [
    "AVERAGES",
    "AVERAGE_METRICS",
    "DEFAULT_AVERAGE",
    "DEFAULT_THRESHOLD",
    "THRESHOLD_METRICS",
    "MetricEntry",
    "MetricItem",
    "MetricSpec",
    "column_name",
    "resolve_metrics",
]

DEFAULT_THRESHOLD = 0.5  # probability above which a binary prediction is class 1 (the tutorial's rule)
THRESHOLD_METRICS = tuple(name for name, info in METRICS.items() if info.thresholded)
AVERAGE_METRICS = tuple(name for name, info in METRICS.items() if info.averaged)
# sklearn's `average` values per task; the first one is the default.
AVERAGES: dict[str, tuple[str, ...]] = {"binary": ("binary",), "multiclass": ("macro", "micro", "weighted")}
DEFAULT_AVERAGE = {task: values[0] for task, values in AVERAGES.items()}


class MetricSpec(SpecModel):
    """A metric with options, e.g. ``{name = "f1", average = "weighted"}``; a plain name is accepted too.

    Which options fit which metric and task is checked by the Spec (see
    :func:`resolve_metrics` in this module, which also names the result column).
    """

    name: MetricName
    threshold: Fraction | None = Field(
        default=None,
        description="Binary accuracy/precision/recall/f1: class 1 when probability > threshold (default 0.5).",
    )
    average: Literal["binary", "macro", "micro", "weighted"] | None = Field(
        default=None,
        description="Multiclass precision/recall/f1: sklearn's average, 'macro' (default), 'micro' or 'weighted'.",
    )
    pos_label: str | bool | int | float | None = Field(
        default=None,
        description="Binary metrics: the class scored as positive, as its value appears in the data (e.g. 'fraud'). "
        "Default: 1 for 0/1 (or -1/1, or boolean) targets, as sklearn; otherwise the training split's minority "
        "class.",
    )


def _metric_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "name"
    return "table" if isinstance(value, (dict, MetricSpec)) else None


MetricItem = Annotated[
    Union[Annotated[MetricName, Tag("name")], Annotated[MetricSpec, Tag("table")]],
    Discriminator(
        _metric_kind,
        custom_error_type="metric_entry",
        custom_error_message="a metric is a name ('f1') or a table ({name = 'f1', average = 'weighted'})",
    ),
]


@dataclass(frozen=True, repr=False)
class MetricEntry:
    """One metric with every option resolved for its task.

    Attributes:
        name: Metric name (``"f1"``).
        column: Result/history column (``"f1_weighted"``; ``val_`` is prefixed in the history).
        threshold: Binary decision threshold (``P(positive class) > threshold`` predicts it).
        average: sklearn's ``average``: ``"binary"`` for binary tasks, ``"macro"``/``"micro"``/
            ``"weighted"`` for multiclass, ``None`` for regression.
        pos_label: The ``pos_label`` option as written (a class's value in the data), or ``None``.
        positive: Binary tasks: the index (0 or 1) of the class scored as positive, set once
            the classes are known (:func:`duofit.common.metrics.bind_positive`); ``None``
            before that, which scores class 1 (and is refused when ``pos_label`` is set).

    Example:
        >>> MetricEntry("f1", "f1", 0.5, "binary").column
        'f1'
        >>> MetricEntry("f1", "f1_pos_fraud", 0.5, "binary", pos_label="fraud", positive=0)
        MetricEntry(name='f1', column='f1_pos_fraud', threshold=0.5, average='binary', pos_label='fraud', positive=0)
    """

    name: str
    column: str
    threshold: float = DEFAULT_THRESHOLD
    average: str | None = None
    pos_label: Any = None
    positive: int | None = None

    def __repr__(self) -> str:
        """The fields, the class options only when set (entries of other tasks print as before)."""
        options = (("pos_label", self.pos_label), ("positive", self.positive))
        extra = "".join(f", {k}={v!r}" for k, v in options if v is not None)
        return (
            f"MetricEntry(name={self.name!r}, column={self.column!r}, threshold={self.threshold!r}, "
            f"average={self.average!r}{extra})"
        )


def column_name(
    name: str, task: str, threshold: float | None = None, average: str | None = None, pos_label: Any = None
) -> str:
    """The column of a metric with options: suffixes only for non-default options.

    Example:
        >>> column_name("recall", "multiclass", average="micro"), column_name("f1", "binary", 0.25)
        ('recall_micro', 'f1_t0.25')
        >>> column_name("precision", "binary", 0.3, pos_label="legit")
        'precision_t0.3_pos_legit'
    """
    column = name
    if average is not None and average != DEFAULT_AVERAGE.get(task):
        column += f"_{average}"
    if threshold is not None and float(threshold) != DEFAULT_THRESHOLD:
        column += f"_t{float(threshold)!r}"
    if pos_label is not None:
        column += f"_pos_{pos_label}"
    return column


def _check_threshold(name: str, task: str, where: str) -> None:
    if task != "binary" or name not in THRESHOLD_METRICS:
        why = (
            "roc_auc ranks probabilities and takes no threshold"
            if name == "roc_auc"
            else f"a threshold applies to binary {'/'.join(THRESHOLD_METRICS)} only"
            + ("" if task == "binary" else f" (this is a {task} task: labels are the argmax)")
        )
        raise FieldProblem(f"{where}.threshold", f"{why}; remove `threshold` from {name!r}")


def _check_average(name: str, task: str, average: str, where: str, fits: str) -> None:
    choices = AVERAGES.get(task, ())
    if name not in AVERAGE_METRICS or not choices:
        raise FieldProblem(
            f"{where}.average",
            f"{name!r} takes no average (only {'/'.join(AVERAGE_METRICS)} of classification tasks do); "
            "remove `average`",
        )
    if average not in choices:
        raise FieldProblem(
            f"{where}.average",
            f"average {average!r} does not fit {fits}; allowed: {', '.join(choices)}"
            + (
                " (binary scores are for class 1; use a multiclass loss for macro/micro/weighted)"
                if task == "binary"
                else ""
            ),
        )


def _check_pos_label(name: str, task: str, where: str) -> None:
    if task != "binary":
        why = (
            "multiclass scores are averaged over the classes (the `average` option)"
            if task == "multiclass"
            else "regression has no classes"
        )
        raise FieldProblem(
            f"{where}.pos_label", f"pos_label applies to binary tasks only ({why}); remove `pos_label` from {name!r}"
        )


def _entry(item: Any, task: str, where: str, loss: str | None) -> MetricEntry:
    """Check one spec entry (plain name or table) against the task; ``where`` is its field path."""
    fits = f"loss {loss!r} ({task} task)" if loss else f"the {task} task"
    allowed = REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS
    if isinstance(item, str):
        name, threshold, average, pos_label, name_path = item, None, None, None, where
    else:
        table = item if isinstance(item, MetricSpec) else MetricSpec.model_validate(item)
        name, threshold, average, pos_label = table.name, table.threshold, table.average, table.pos_label
        name_path = f"{where}.name"
    if name not in allowed:
        raise FieldProblem(name_path, f"{name!r} does not fit {fits}; allowed: {', '.join(allowed)}")
    if threshold is not None:
        _check_threshold(name, task, where)
    if average is not None:
        _check_average(name, task, average, where, fits)
    if pos_label is not None:
        _check_pos_label(name, task, where)
    resolved_avg = (average or DEFAULT_AVERAGE[task]) if name in AVERAGE_METRICS and task in AVERAGES else None
    resolved_t = float(threshold) if threshold is not None else DEFAULT_THRESHOLD
    column = column_name(name, task, threshold, average, pos_label)
    return MetricEntry(name, column, resolved_t, resolved_avg, pos_label=pos_label)


def resolve_metrics(
    items: Sequence[Any], task: str, path: str = "metrics", loss: str | None = None
) -> list[MetricEntry]:
    """Resolve a spec's metric entries for ``task``; each column must be unique.

    Args:
        items: Plain names, :class:`MetricSpec` tables, dicts or already resolved
            :class:`MetricEntry` objects.
        task: ``binary``, ``multiclass`` or ``regression``.
        path: Field path of the list, for error messages.
        loss: The spec's loss type, named in error messages.

    Returns:
        One :class:`MetricEntry` per item, in order.

    Raises:
        FieldProblem: An entry does not fit the task (path such as ``metrics[2].average``).

    Example:
        >>> resolve_metrics(["accuracy"], "binary")
        [MetricEntry(name='accuracy', column='accuracy', threshold=0.5, average=None)]
    """
    if all(isinstance(item, MetricEntry) for item in items) and len({e.column for e in items}) == len(items):
        return list(items)  # already resolved (the per-epoch hot path passes spec.metric_entries)
    entries: list[MetricEntry] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        entry = item if isinstance(item, MetricEntry) else _entry(item, task, f"{path}[{i}]", loss)
        if entry.column in seen:
            raise FieldProblem(
                f"{path}[{i}]",
                f"column {entry.column!r} is listed twice (also {path}[{seen[entry.column]}]); remove one",
            )
        seen[entry.column] = i
        entries.append(entry)
    return entries
