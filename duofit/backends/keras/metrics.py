"""Spec metrics -> Keras metric objects (``keras.metrics``), the twin of the torch module.

Each object is a ``keras.metrics.Metric`` (usable in ``compile(metrics=...)``) named after
the metric's column. It takes what a duofit model and ``fit`` see: raw outputs (logits or
probabilities, per ``from_logits``) and class indices (``[n]``/``[n, 1]``), one-hot labels
or regression targets; :class:`OnOutputs` turns them into what the wrapped Keras metric
expects (probabilities; ``[n, 1]`` binary labels; one-hot multiclass labels), in Keras ops
only, so it runs in the compiled step on every Keras backend.

Which Keras metric (differences from the sklearn reference in brackets):

- binary: ``BinaryAccuracy(threshold)``, ``Precision(thresholds)``, ``Recall(thresholds)``,
  ``F1Score(threshold)`` [adds ``epsilon()`` = 1e-7 to its denominators],
  ``AUC(num_thresholds=AUC_THRESHOLDS)`` [trapezoids between fixed thresholds: a
  Riemann-sum approximation of the exact ROC-AUC].
- multiclass: ``CategoricalAccuracy``; precision/recall: ``Precision``/``Recall(top_k=1)``
  for ``micro``, per-class ``Precision``/``Recall(top_k=1, class_id=c)`` averaged over the
  classes whose score is defined for ``macro``/``weighted`` (a class never predicted, or
  absent from the labels, is left out, as sklearn's ``zero_division=np.nan``; ``nan`` with
  none left: :class:`PerClassAverage`); ``F1Score(average)`` [epsilon; its macro average
  also counts classes absent from both labels and predictions, as 0];
  ``AUC(multi_label=True)`` [one-vs-rest macro, Riemann sum; a class absent from the
  labels scores 0 where the reference drops it].
- regression: ``MeanSquaredError``, ``RootMeanSquaredError``, ``MeanAbsoluteError``,
  ``R2Score`` [float32 running sums; for a constant target it gives 0 or nan, which
  :class:`OnOutputs` makes ``nan``, as the reference].

All state is float32 (Keras' default metric dtype). Non-finite outputs give ``nan``, as
the reference does; so do the metrics the reference leaves undefined, which
:class:`OnOutputs` counts itself (Keras returns 0 there): a binary precision without
predicted positives, recall without positives, F1 without either, r2 of a constant target
(per output). A binary metric whose positive class is 0 is fed ``(1 - y, 1 - p)``
(:func:`duofit.common.metrics.registry.flips`). ``tests/backends/test_native_metrics.py``
bounds each difference.

Example:
    >>> import numpy as np
    >>> y, out = np.array([1, 0, 0, 1]), np.array([[2.0], [-1.0], [0.5], [-3.0]])
    >>> got = native_metrics(["accuracy", {"name": "f1", "threshold": 0.1}], "binary", y, out, True)
    >>> {k: round(v, 6) for k, v in got.items()}                      # F1Score's epsilon: 0.39999995
    {'accuracy': 0.5, 'f1_t0.1': 0.4}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from duofit.common.errors import unsupported
from duofit.common.metrics.native import feed_batches
from duofit.common.metrics.registry import REGISTRY, flips
from duofit.common.spec import MetricEntry

__all__ = [
    "AUC_THRESHOLDS",
    "DEFAULT_BATCH",
    "METRICS",
    "NativeMetric",
    "OnOutputs",
    "PerClassAverage",
    "collect",
    "make_metric",
    "native_metrics",
]

DEFAULT_BATCH = 256  # batch size native_metrics feeds; any size gives the same values (up to float32)
# Thresholds of keras.metrics.AUC (Keras' default is 200). Scores between two neighbouring
# thresholds count as tied, so the error is at most half the share of (positive, negative)
# pairs that fall into one bucket; 1000 buckets cost nothing at duofit's sizes.
AUC_THRESHOLDS = 1000

NativeMetric = keras.metrics.Metric


class PerClassAverage(keras.metrics.Metric):
    """Multiclass precision or recall averaged over classes from per-class Keras metrics.

    Args:
        kind: ``"precision"`` or ``"recall"``.
        average: ``"macro"`` (mean over the classes) or ``"weighted"`` (by each class's support).
        n_classes: Number of classes.

    Takes one-hot labels and probabilities; each class is counted by a
    ``Precision``/``Recall(top_k=1, class_id=c)`` (the argmax class is the prediction).
    A class whose score is undefined (precision: never predicted; recall: absent from the
    labels) is left out of the average, as sklearn's ``zero_division=np.nan``; weighted
    falls back to the plain mean when the classes left all have support 0; no class left
    gives ``nan``.
    """

    def __init__(self, kind: str, average: str, n_classes: int, name: str | None = None) -> None:
        super().__init__(name=name or f"{kind}_{average}")
        self.kind, self.average, self.n_classes = kind, average, n_classes
        self.precisions = [keras.metrics.Precision(top_k=1, class_id=c) for c in range(n_classes)]
        self.recalls = [keras.metrics.Recall(top_k=1, class_id=c) for c in range(n_classes)]

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:  # noqa: D102
        for m in (*self.precisions, *self.recalls):
            m.update_state(y_true, y_pred, sample_weight)

    def result(self) -> Any:  # noqa: D102
        tp = ops.concatenate([m.true_positives for m in self.precisions])
        fp = ops.concatenate([m.false_positives for m in self.precisions])
        fn = ops.concatenate([m.false_negatives for m in self.recalls])
        den = tp + (fp if self.kind == "precision" else fn)
        defined = ops.cast(den > 0, tp.dtype)  # classes absent from labels and predictions too
        weights = (tp + fn) * defined if self.average == "weighted" else defined
        weights = ops.where(ops.sum(weights) > 0, weights, defined)
        total = ops.sum(weights)
        value = ops.divide_no_nan(ops.sum(ops.divide_no_nan(tp, den) * weights), total)
        return ops.where(total > 0, value, ops.full_like(value, float("nan")))

    def reset_state(self) -> None:  # noqa: D102
        for m in (*self.precisions, *self.recalls):
            m.reset_state()


# A binary metric is undefined when the sum of these counts is 0: its denominator, as
# predicted = tp + fp (precision), actual = tp + fn (recall), both = 2 tp + fp + fn (F1).
_BINARY_DENOMINATORS: dict[str, tuple[str, ...]] = {
    "precision": ("predicted",),
    "recall": ("actual",),
    "f1": ("predicted", "actual"),
}


class OnOutputs(keras.metrics.Metric):
    """A Keras metric fed raw model outputs and duofit labels (see the module docstring).

    Args:
        inner: The Keras metric to feed.
        task: ``binary``, ``multiclass`` or ``regression``.
        from_logits: Whether the outputs are logits.
        n_classes: Number of output units (multiclass).
        name: The metric's name (its column).
        entry: The resolved entry (its positive class, and which undefined case to watch);
            ``None``: class 1 is positive and the inner metric's value is kept as it is.
    """

    def __init__(
        self,
        inner: keras.metrics.Metric,
        task: str,
        from_logits: bool,
        n_classes: int,
        name: str,
        entry: MetricEntry | None = None,
    ) -> None:
        super().__init__(name=name)
        self.inner, self.task, self.from_logits, self.n_classes = inner, task, from_logits, n_classes
        self.flipped = entry is not None and flips(entry, task)
        self.denominators = _BINARY_DENOMINATORS.get(entry.name, ()) if entry is not None and task == "binary" else ()
        self.threshold = entry.threshold if entry is not None else 0.5
        self.watch_constant = entry is not None and entry.name == "r2"
        self.nonfinite = self.add_variable(shape=(), initializer="zeros", name="nonfinite")
        self.predicted = self.add_variable(shape=(), initializer="zeros", name="predicted_positives")
        self.actual = self.add_variable(shape=(), initializer="zeros", name="actual_positives")
        self.y_low: Any = None  # per-output running min / max of the target (r2), made on the first batch
        self.y_high: Any = None

    def _track_range(self, y: Any) -> None:
        """Running per-output min and max of the target: r2 is undefined where they are equal."""
        if self.y_low is None:
            k = int(y.shape[-1])  # known when traced (as keras.metrics.R2Score builds its own state)
            low, high = keras.initializers.Constant(float("inf")), keras.initializers.Constant(float("-inf"))
            self.y_low = self.add_variable(shape=(k,), initializer=low, name="target_min")
            self.y_high = self.add_variable(shape=(k,), initializer=high, name="target_max")
        self.y_low.assign(ops.minimum(self.y_low, ops.min(y, axis=0)))
        self.y_high.assign(ops.maximum(self.y_high, ops.max(y, axis=0)))

    def _undefined(self) -> Any:
        """A boolean scalar: the reference leaves this metric undefined on what was fed."""
        counts = {"predicted": self.predicted, "actual": self.actual}
        undefined = ops.convert_to_tensor(False)
        if self.denominators:
            undefined = sum((counts[kind] for kind in self.denominators), ops.zeros(())) == 0
        if self.y_low is not None:
            undefined = ops.logical_or(undefined, ops.any(self.y_low == self.y_high))
        return undefined

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:  # noqa: D102
        y_pred = ops.cast(y_pred, self.dtype)
        if self.task == "regression":
            p = ops.reshape(y_pred, (ops.shape(y_pred)[0], -1))
            y = ops.reshape(ops.cast(y_true, self.dtype), ops.shape(p))
        elif self.task == "binary":
            p = ops.reshape(y_pred, (-1, 1))
            p = ops.sigmoid(p) if self.from_logits else ops.clip(p, 0.0, 1.0)
            y = ops.reshape(ops.cast(y_true, self.dtype), (-1, 1))
            if self.flipped:  # class 0 is the positive class: score it as class 1
                p, y = 1.0 - p, 1.0 - y
            self.predicted.assign(self.predicted + ops.sum(ops.cast(p > self.threshold, self.dtype)))
            self.actual.assign(self.actual + ops.sum(y))
        else:
            if self.from_logits:
                p = ops.softmax(y_pred, axis=-1)
            else:
                total = ops.sum(y_pred, axis=-1, keepdims=True)
                p = y_pred / ops.where(total == 0, ops.ones_like(total), total)
            one_hot = len(y_true.shape) == 2 and y_true.shape[-1] == self.n_classes and self.n_classes > 1
            y = ops.cast(y_true, self.dtype) if one_hot else ops.one_hot(ops.reshape(y_true, (-1,)), self.n_classes)
        if self.watch_constant:
            self._track_range(y)
        self.nonfinite.assign(self.nonfinite + ops.sum(ops.cast(ops.logical_not(ops.isfinite(p)), self.dtype)))
        self.inner.update_state(y, p, sample_weight)

    def result(self) -> Any:  # noqa: D102
        value = ops.cast(ops.reshape(self.inner.result(), ()), self.dtype)
        nan = ops.logical_or(self.nonfinite > 0, self._undefined())
        return ops.where(nan, ops.full_like(value, float("nan")), value)

    def reset_state(self) -> None:  # noqa: D102
        for variable in (self.nonfinite, self.predicted, self.actual):
            variable.assign(0.0)
        if self.y_low is not None:
            self.y_low.assign(ops.full(self.y_low.shape, float("inf"), dtype=self.dtype))
            self.y_high.assign(ops.full(self.y_high.shape, float("-inf"), dtype=self.dtype))
        self.inner.reset_state()


Factory = Callable[[MetricEntry, str, int], keras.metrics.Metric]


def _accuracy(entry: MetricEntry, task: str, k: int) -> keras.metrics.Metric:
    if task == "binary":
        return keras.metrics.BinaryAccuracy(threshold=entry.threshold)
    return keras.metrics.CategoricalAccuracy()


def _precision_recall(entry: MetricEntry, task: str, k: int) -> keras.metrics.Metric:
    cls = keras.metrics.Precision if entry.name == "precision" else keras.metrics.Recall
    if task == "binary":
        return cls(thresholds=entry.threshold)
    if entry.average == "micro":
        return cls(top_k=1)  # every sample predicts its argmax class: micro precision = recall = accuracy
    return PerClassAverage(entry.name, entry.average or "macro", k)


def _f1(entry: MetricEntry, task: str, k: int) -> keras.metrics.Metric:
    if task == "binary":  # one column of labels: the micro average is the positive class's F1
        return keras.metrics.F1Score(average="micro", threshold=float(entry.threshold))
    return keras.metrics.F1Score(average=entry.average or "macro", threshold=None)  # None: argmax


def _roc_auc(entry: MetricEntry, task: str, k: int) -> keras.metrics.Metric:
    if task == "binary":
        return keras.metrics.AUC(num_thresholds=AUC_THRESHOLDS)
    return keras.metrics.AUC(num_thresholds=AUC_THRESHOLDS, multi_label=True, num_labels=k)


_FACTORIES: dict[str, Factory] = {
    "accuracy": _accuracy,
    "precision": _precision_recall,
    "recall": _precision_recall,
    "f1": _f1,
    "roc_auc": _roc_auc,
    "mse": lambda entry, task, k: keras.metrics.MeanSquaredError(),
    "rmse": lambda entry, task, k: keras.metrics.RootMeanSquaredError(),
    "mae": lambda entry, task, k: keras.metrics.MeanAbsoluteError(),
    "r2": lambda entry, task, k: keras.metrics.R2Score(),
}
# In the registry's order; a registry name without a Keras metric fails here, at import.
METRICS: dict[str, Factory] = {name: _FACTORIES[name] for name in REGISTRY}


def make_metric(entry: MetricEntry, task: str, from_logits: bool, n_classes: int = 2, device: Any = None) -> Any:
    """The Keras metric for one resolved metric entry, fed raw outputs and duofit labels.

    Args:
        entry: A resolved entry (``spec.metric_entries``).
        task: ``binary``, ``multiclass`` or ``regression``.
        from_logits: Whether the model outputs logits.
        n_classes: Number of output units (multiclass).
        device: Unused (Keras places metric variables itself); kept so the torch twin's calls work.

    Example:
        >>> from duofit.common.spec import resolve_metrics
        >>> m = make_metric(resolve_metrics(["mae"], "regression")[0], "regression", False)
        >>> m.update_state(np.array([2.0, 2.0]), np.array([[1.0], [3.0]])); float(m.result())
        1.0
    """
    factory = METRICS.get(entry.name)
    if factory is None:
        raise unsupported("keras", f"metric {entry.column!r}", entry.name, METRICS)
    return OnOutputs(factory(entry, task, n_classes), task, from_logits, n_classes, name=entry.column, entry=entry)


def collect(metrics: Mapping[str, keras.metrics.Metric]) -> dict[str, float]:
    """Every metric's result as a float.

    Example:
        >>> collect({})
        {}
    """
    return {name: float(ops.convert_to_numpy(m.result())) for name, m in metrics.items()}


def native_metrics(
    names: Sequence[Any],
    task: str,
    y_true: np.ndarray,
    outputs: np.ndarray,
    from_logits: bool,
    batch_size: int = DEFAULT_BATCH,
    device: Any = None,
) -> dict[str, float]:
    """Metrics from the Keras metric objects, fed float32 ``outputs`` in batches of ``batch_size``.

    The arguments are :func:`duofit.common.metrics.native.feed_batches`'s, plus ``from_logits``
    (whether ``outputs`` are logits) and ``device`` (unused, see :func:`make_metric`).

    Example:
        >>> native_metrics(["r2"], "regression", np.array([1.0, 2.0]), np.array([[1.0], [2.0]]), False)
        {'r2': 1.0}
    """
    return feed_batches(
        names,
        task,
        np.asarray(y_true),
        np.asarray(outputs, dtype=np.float32),
        make=lambda entry, k: make_metric(entry, task, from_logits, k),
        update=lambda metric, y, out: metric.update_state(y, out),
        collect=collect,
        batch_size=batch_size,
    )
