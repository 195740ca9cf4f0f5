"""The class order of a classification run, and which class each binary metric scores as positive.

Targets are encoded in sorted order (``np.unique``, as scikit-learn's ``LabelEncoder``): class
index ``i`` is ``classes[i]``, and a binary model's sigmoid output is the probability of index 1.
The encoding never depends on which class a metric scores: the split, the training and the
saved outputs are the same whichever class is called positive, and changing ``pos_label``
never changes the model.

The class a binary metric scores as positive (its :attr:`~duofit.common.spec.MetricEntry.positive`):

1. its ``pos_label`` option, the class's value in the data (``"fraud"``);
2. else, for 0/1, -1/1 or boolean targets, the class 1 (``True``): scikit-learn's convention;
3. else the minority class of the training split (on a tie, the second in sorted order): what
   such data is usually about (fraud, churn, a disease). It is recorded with the result and
   printed, so nobody reads an F1 on the wrong class.

A metric whose positive class is index 0 reads ``(1 - y, 1 - p)`` in place of ``(y, p)`` (the
one rule, :func:`duofit.common.metrics.registry.flips`), so every metric formula stays written
for class 1, and ``threshold`` applies to the probability of the positive class.

Example:
    >>> import numpy as np
    >>> order = class_order("binary", np.array(["fraud", "legit"]), np.array([1] * 95 + [0] * 5))
    >>> print(order.line())
    classes: 0 = 'fraud', 1 = 'legit' (positive: 'fraud', the minority class of the training split, 5 of 100)
    >>> class_order("binary", np.array([0, 1]), np.array([0, 0, 1])).positive
    1
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from duofit.common.errors import DataError
from duofit.common.spec import MetricEntry

__all__ = ["MAX_CLASSES_SHOWN", "SKLEARN_POSITIVE_SETS", "ClassOrder", "bind_positive", "class_order"]

# scikit-learn's `_check_pos_label_consistency`: for these label sets the positive class is 1
# (True) by default; for any other pair sklearn asks for `pos_label`.
SKLEARN_POSITIVE_SETS = ({0, 1}, {-1, 1})
# Classes listed in a class-order line (one line; digits' 10 classes still fit).
MAX_CLASSES_SHOWN = 12


@dataclass(frozen=True)
class ClassOrder:
    """Index -> original label of a classification run, and the binary metrics' positive class.

    Attributes:
        classes: Original label values (Python values), index ``i`` is class ``i``.
        positive: Binary tasks: the index scored as positive by metrics without a
            ``pos_label``; ``None`` for multiclass.
        reason: Why that class is positive (printed beside it).

    Example:
        >>> ClassOrder(("a", "b", "c")).index_of("b", "metrics[0].pos_label")
        1
    """

    classes: tuple[Any, ...]
    positive: int | None = None
    reason: str = ""

    @property
    def positive_label(self) -> Any:
        """The original value of the positive class (``None`` for multiclass)."""
        return None if self.positive is None else self.classes[self.positive]

    @property
    def plain(self) -> bool:
        """Nothing worth printing: the labels are their own indices and class 1 is positive."""
        return all(c == i for i, c in enumerate(self.classes)) and self.positive in (None, 1)

    def line(self) -> str:
        """One line for the output: ``classes: 0 = 'legit', 1 = 'fraud' (positive: 'fraud', ...)``."""
        shown = [f"{i} = {c!r}" for i, c in enumerate(self.classes[:MAX_CLASSES_SHOWN])]
        if len(self.classes) > MAX_CLASSES_SHOWN:
            shown.append(f"... ({len(self.classes)} classes)")
        text = "classes: " + ", ".join(shown)
        if self.positive is not None:
            text += f" (positive: {self.positive_label!r}, {self.reason})"
        return text

    def index_of(self, label: Any, where: str) -> int:
        """The index of the class whose value is ``label`` (``1`` also finds ``"1"``, and back).

        Raises:
            DataError: ``label`` is no class; the message lists the classes (path ``where``).
        """
        for i, c in enumerate(self.classes):
            if c == label and isinstance(c, str) == isinstance(label, str):
                return i
        for i, c in enumerate(self.classes):
            if str(c) == str(label):
                return i
        listed = ", ".join(repr(c) for c in self.classes[:MAX_CLASSES_SHOWN])
        raise DataError(
            f"{where}: {label!r} is not a class of the target; its classes are {listed}. Set pos_label to one of them",
            path=where,
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready mapping (``result.json``'s ``class_order``)."""
        return {"classes": list(self.classes), "positive": self.positive, "reason": self.reason}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> ClassOrder | None:
        """The order :meth:`to_json` wrote (``None`` stays ``None``: regression, older results)."""
        if not data:
            return None
        return cls(tuple(data["classes"]), data.get("positive"), data.get("reason", ""))


def _default_positive(classes: tuple[Any, ...], y_train: np.ndarray) -> tuple[int, str]:
    """The positive class of metrics without ``pos_label``, and why (see the module docstring)."""
    if any(set(classes) == labels for labels in SKLEARN_POSITIVE_SETS):
        return 1, f"scikit-learn's convention for {classes[0]!r}/{classes[1]!r} labels"
    counts = np.bincount(np.asarray(y_train, dtype=np.int64), minlength=2)
    n = int(counts.sum())
    if counts[0] == counts[1]:
        return 1, f"the classes are balanced in the training split ({counts[1]} of {n}): the second in sorted order"
    minority = int(np.argmin(counts))
    return minority, f"the minority class of the training split, {counts[minority]} of {n}"


def class_order(task: str, classes: np.ndarray | None, y_train: np.ndarray) -> ClassOrder | None:
    """The class order of a run: ``None`` for regression; the positive class for binary tasks.

    Args:
        task: ``binary``, ``multiclass`` or ``regression``.
        classes: Original label values in index order (:attr:`duofit.common.data.Dataset.classes`).
        y_train: The training split's class indices (the minority rule reads them).
    """
    if task == "regression" or classes is None:
        return None
    values = tuple(np.asarray(classes).tolist())
    if task != "binary":
        return ClassOrder(values)
    positive, reason = _default_positive(values, y_train)
    return ClassOrder(values, positive, reason)


def bind_positive(entries: Sequence[MetricEntry], order: ClassOrder | None) -> list[MetricEntry]:
    """Resolved entries with their positive class index set (binary tasks; others unchanged).

    ``entries[i]`` is the spec's ``metrics[i]`` (error paths name it so).

    Raises:
        DataError: a ``pos_label`` that is not a class, naming ``metrics[i].pos_label`` and the classes.

    Example:
        >>> from duofit.common.spec import resolve_metrics
        >>> order = ClassOrder(("fraud", "legit"), positive=0, reason="the minority class")
        >>> entries = resolve_metrics(["f1", {"name": "f1", "pos_label": "legit"}], "binary")
        >>> [e.positive for e in bind_positive(entries, order)]
        [0, 1]
    """
    if order is None or order.positive is None:
        return list(entries)
    bound = []
    for i, e in enumerate(entries):
        positive = order.positive if e.pos_label is None else order.index_of(e.pos_label, f"metrics[{i}].pos_label")
        bound.append(replace(e, positive=positive))
    return bound
