"""The ``metrics`` list: metric entries, their options and the column each one gets.

A spec's ``metrics`` list holds plain names (``"f1"``) or tables
(``{name = "f1", average = "weighted"}``). :func:`resolve_metrics` checks every entry against
the task and turns it into a :class:`MetricEntry` with all options filled in. Which metric
takes which option is :data:`~duofit.common.spec.vocab.METRICS`.

Column naming rule: the metric name, then ``_<average>`` when the average differs from the
task's default, then ``_t<threshold>`` when the threshold differs from 0.5 (the threshold as
Python's shortest ``repr``). Default options keep the plain name, so ``"f1"`` and
``{name = "f1", average = "macro"}`` are the same column and existing monitors keep working.

Example:
    >>> [e.column for e in resolve_metrics(["f1", {"name": "precision", "threshold": 0.3}], "binary")]
    ['f1', 'precision_t0.3']
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


@dataclass(frozen=True)
class MetricEntry:
    """One metric with every option resolved for its task.

    Attributes:
        name: Metric name (``"f1"``).
        column: Result/history column (``"f1_weighted"``; ``val_`` is prefixed in the history).
        threshold: Binary decision threshold (``proba > threshold`` is class 1).
        average: sklearn's ``average``: ``"binary"`` for binary tasks, ``"macro"``/``"micro"``/
            ``"weighted"`` for multiclass, ``None`` for regression.

    Example:
        >>> MetricEntry("f1", "f1", 0.5, "binary").column
        'f1'
    """

    name: str
    column: str
    threshold: float = DEFAULT_THRESHOLD
    average: str | None = None


def column_name(name: str, task: str, threshold: float | None = None, average: str | None = None) -> str:
    """The column of a metric with options: suffixes only for non-default options.

    Example:
        >>> column_name("recall", "multiclass", average="micro"), column_name("f1", "binary", 0.25)
        ('recall_micro', 'f1_t0.25')
    """
    column = name
    if average is not None and average != DEFAULT_AVERAGE.get(task):
        column += f"_{average}"
    if threshold is not None and float(threshold) != DEFAULT_THRESHOLD:
        column += f"_t{float(threshold)!r}"
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


def _entry(item: Any, task: str, where: str, loss: str | None) -> MetricEntry:
    """Check one spec entry (plain name or table) against the task; ``where`` is its field path."""
    fits = f"loss {loss!r} ({task} task)" if loss else f"the {task} task"
    allowed = REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS
    if isinstance(item, str):
        name, threshold, average, name_path = item, None, None, where
    else:
        table = item if isinstance(item, MetricSpec) else MetricSpec.model_validate(item)
        name, threshold, average, name_path = table.name, table.threshold, table.average, f"{where}.name"
    if name not in allowed:
        raise FieldProblem(name_path, f"{name!r} does not fit {fits}; allowed: {', '.join(allowed)}")
    if threshold is not None:
        _check_threshold(name, task, where)
    if average is not None:
        _check_average(name, task, average, where, fits)
    resolved_avg = (average or DEFAULT_AVERAGE[task]) if name in AVERAGE_METRICS and task in AVERAGES else None
    resolved_t = float(threshold) if threshold is not None else DEFAULT_THRESHOLD
    return MetricEntry(name, column_name(name, task, threshold, average), resolved_t, resolved_avg)


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
