"""The spec's metrics as numpy source for an exported script (no framework, no scikit-learn).

Same definitions as duofit's own (:mod:`duofit.common.metrics.fast`, checked against the
scikit-learn reference in ``duofit/common/metrics/reference.py``): probabilities from the raw
outputs (sigmoid/softmax of logits, or clipped/renormalised probabilities); binary metrics score
the class the run resolved as positive (a metric whose positive class is 0 reads ``(1 - y, 1 - p)``)
at its threshold (``p > threshold``); precision/recall/F1 are ``nan`` where undefined
(scikit-learn's ``zero_division=np.nan``), and a multiclass macro/weighted average leaves out the
classes whose score is undefined; ROC-AUC is the exact Mann-Whitney statistic (one-vs-rest macro
for multiclass); the regression metrics average uniformly over outputs. Framework-neutral: any
exporter pastes it (:func:`metrics_source`) with its constants (:func:`metric_constants`), and
the script calls ``compute_metrics(METRICS, y, outputs, FROM_LOGITS)``.

Example:
    >>> import math
    >>> import numpy as np
    >>> namespace = {"math": math, "np": np}
    >>> exec(metrics_source("binary"), namespace)
    >>> y, out = np.array([1, 0, 0, 0]), np.array([[2.0], [-1.0], [0.5], [-3.0]])
    >>> entries = [{"column": "accuracy", "name": "accuracy", "threshold": 0.5, "average": "binary", "positive": 1}]
    >>> namespace["compute_metrics"](entries, y, out, True)
    {'accuracy': 0.75}
"""

from __future__ import annotations

from collections.abc import Sequence

from duofit.common.data import Dataset
from duofit.common.metrics import bind_positive, class_order
from duofit.common.spec import MetricEntry, Spec
from duofit.porting.codegen import py_str

__all__ = ["metric_constants", "metric_entries", "metric_entries_source", "metrics_source"]

_PROBABILITIES = {
    "binary": '''

def probabilities(outputs: np.ndarray, from_logits: bool) -> np.ndarray:
    """P(class 1) per sample from the raw outputs (sigmoid of logits, or clipped probabilities)."""
    z = np.asarray(outputs, dtype=np.float64).reshape(len(outputs))
    if not from_logits:
        return np.clip(z, 0.0, 1.0)
    e = np.exp(-np.abs(z))  # a stable sigmoid: no overflow for large |z|
    return np.where(z >= 0, 1.0, e) / (1.0 + e)
''',
    "multiclass": '''

def probabilities(outputs: np.ndarray, from_logits: bool) -> np.ndarray:
    """Class probabilities per sample (softmax of logits, or renormalised probabilities)."""
    z = np.asarray(outputs, dtype=np.float64)
    if not from_logits:
        total = z.sum(axis=1, keepdims=True)
        return z / np.where(total == 0, 1.0, total)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
''',
}

_AUC = '''

def auc(positive: np.ndarray, score: np.ndarray) -> float:
    """Exact ROC-AUC: the Mann-Whitney U statistic with average ranks for ties."""
    n_pos = int(np.count_nonzero(positive))
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = np.argsort(score, kind="mergesort")
    _, first, counts = np.unique(score[order], return_index=True, return_counts=True)
    ranks = np.empty(score.size)
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)
    return (float(ranks[positive].sum()) - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
'''

_BINARY = '''

def ratio(num: float, den: float) -> float:
    """The fraction num / den; nan when it is undefined (den == 0)."""
    return num / den if den else math.nan


def compute_metrics(entries: list[dict], y: np.ndarray, outputs: np.ndarray, from_logits: bool) -> dict[str, float]:
    """Every metric of ``entries`` on raw model outputs (class indices ``y``)."""
    p = probabilities(outputs, from_logits)
    if not np.isfinite(p).all():
        return {e["column"]: math.nan for e in entries}
    values = {}
    for e in entries:
        # a metric whose positive class is 0 scores class 0 as class 1: (1 - y, 1 - p)
        y_e, p_e = (y, p) if e["positive"] == 1 else (1 - y, 1.0 - p)
        positive = y_e == 1
        if e["name"] == "roc_auc":
            values[e["column"]] = auc(positive, p_e)
            continue
        predicted = p_e > e["threshold"]
        tp = int(np.count_nonzero(predicted & positive))
        fp = int(np.count_nonzero(predicted)) - tp
        fn = int(np.count_nonzero(positive)) - tp
        values[e["column"]] = {
            "accuracy": ratio(len(y_e) - fp - fn, len(y_e)),
            "precision": ratio(tp, tp + fp),
            "recall": ratio(tp, tp + fn),
            "f1": ratio(2 * tp, 2 * tp + fp + fn),
        }[e["name"]]
    return values
'''

_MULTICLASS = '''

def averaged(num: np.ndarray, den: np.ndarray, support: np.ndarray, average: str) -> float:
    """A per-class ratio averaged as scikit-learn does, leaving out the classes where it is undefined."""
    if average == "micro":
        return float(num.sum()) / float(den.sum()) if den.sum() else math.nan
    defined = den != 0
    if not defined.any():
        return math.nan
    ratios = num[defined] / den[defined]
    if average == "weighted" and support[defined].sum() > 0:
        return float((ratios * support[defined]).sum() / support[defined].sum())
    return float(ratios.mean())


def roc_auc_ovr(y: np.ndarray, p: np.ndarray) -> float:
    """One-vs-rest macro ROC-AUC over the classes present in ``y`` (probabilities renormalised over them)."""
    if y.size == 0 or y.min() == y.max():
        return math.nan
    present = np.unique(y)
    if present.size < p.shape[1]:
        p = p[:, present] / p[:, present].sum(axis=1, keepdims=True)
        y = np.searchsorted(present, y)
        if present.size == 2:
            return auc(y == 1, p[:, 1])
    return float(np.mean([auc(y == c, p[:, c]) for c in range(p.shape[1])]))


def compute_metrics(entries: list[dict], y: np.ndarray, outputs: np.ndarray, from_logits: bool) -> dict[str, float]:
    """Every metric of ``entries`` on raw model outputs (class indices ``y``)."""
    p = probabilities(outputs, from_logits)
    if not np.isfinite(p).all():
        return {e["column"]: math.nan for e in entries}
    k = p.shape[1]
    cm = np.bincount(y * k + p.argmax(axis=1), minlength=k * k).reshape(k, k).astype(np.float64)
    scored = (cm.sum(axis=0) + cm.sum(axis=1)) > 0  # the classes in the labels or the predictions
    tp = np.diag(cm)[scored]
    fp = cm.sum(axis=0)[scored] - tp
    fn = cm.sum(axis=1)[scored] - tp
    fractions = {"precision": (tp, tp + fp), "recall": (tp, tp + fn), "f1": (2 * tp, 2 * tp + fp + fn)}
    values = {}
    for e in entries:
        if e["name"] == "accuracy":
            values[e["column"]] = float(np.trace(cm)) / float(cm.sum()) if cm.sum() else math.nan
        elif e["name"] == "roc_auc":
            values[e["column"]] = roc_auc_ovr(y, p)
        else:
            values[e["column"]] = averaged(*fractions[e["name"]], tp + fn, e["average"])
    return values
'''

_REGRESSION = '''

def compute_metrics(entries: list[dict], y: np.ndarray, outputs: np.ndarray, from_logits: bool) -> dict[str, float]:
    """Every metric of ``entries`` on predictions ``outputs`` against targets ``y`` (uniform over outputs)."""
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    pred = np.asarray(outputs, dtype=np.float64).reshape(len(y), -1)
    if not np.isfinite(pred).all():
        return {e["column"]: math.nan for e in entries}
    err = pred - y
    ss_tot = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    formulas = {
        "mse": lambda: float(np.mean(err**2, axis=0).mean()),
        "rmse": lambda: float(np.sqrt(np.mean(err**2, axis=0).mean())),
        "mae": lambda: float(np.mean(np.abs(err))),
        # nan when an output's target is constant (no variance to compare with)
        "r2": lambda: float((1 - (err**2).sum(axis=0) / ss_tot).mean()) if y.size and ss_tot.all() else math.nan,
    }
    return {e["column"]: formulas[e["name"]]() for e in entries}
'''

_SOURCES = {
    "binary": _PROBABILITIES["binary"] + _AUC + _BINARY,
    "multiclass": _PROBABILITIES["multiclass"] + _AUC + _MULTICLASS,
    "regression": _REGRESSION,
}


def metrics_source(task: str) -> str:
    """Numpy source defining ``compute_metrics(entries, y, outputs, from_logits) -> {column: value}``.

    The code needs ``math`` and ``numpy as np`` imported; it starts with two blank lines, so it
    pastes after the imports or another top-level definition.
    """
    return _SOURCES[task]


def metric_entries_source(entries: Sequence[MetricEntry]) -> str:
    """The resolved metric entries as a Python list literal (one dict per line), for ``METRICS = ...``.

    Example:
        >>> print(metric_entries_source([MetricEntry("f1", "f1", 0.5, "binary", positive=1)]))
        [
            {"column": "f1", "name": "f1", "threshold": 0.5, "average": "binary", "positive": 1},
        ]
    """
    if not entries:
        return "[]"
    lines = []
    for e in entries:
        average = py_str(e.average)
        positive = e.positive if e.positive is not None else 1
        lines.append(
            f'    {{"column": "{e.column}", "name": "{e.name}", "threshold": {float(e.threshold)!r}, '
            f'"average": {average}, "positive": {positive}}},'
        )
    return "[\n" + "\n".join(lines) + "\n]"


def metric_entries(spec: Spec, dataset: Dataset) -> list[MetricEntry]:
    """The spec's metrics as duofit resolves them for ``dataset`` (a binary metric's positive class bound)."""
    return bind_positive(spec.metric_entries, class_order(dataset.task, dataset.classes, dataset.y_train))


def metric_constants(spec: Spec, entries: Sequence[MetricEntry]) -> list[str]:
    """The script's ``FROM_LOGITS`` and ``METRICS`` assignments, which ``compute_metrics`` reads.

    Example:
        >>> from duofit.common.loader import load_spec
        >>> metric_constants(load_spec("examples/seed.toml"), [])[::2]
        ['FROM_LOGITS = True', 'METRICS = []']
    """
    return [
        f"FROM_LOGITS = {bool(getattr(spec.loss, 'from_logits', False))}",
        "# the metrics as duofit resolved them for this data (positive: the class a binary metric scores)",
        f"METRICS = {metric_entries_source(entries)}",
    ]
