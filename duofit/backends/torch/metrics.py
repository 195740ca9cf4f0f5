"""Spec metrics -> torch metric objects that accumulate on the device.

Each object has ``update(outputs, targets)`` (raw model outputs and class indices or
regression targets, one batch), ``compute()`` (a 0-d tensor, still on the device) and
``reset()``. ``update`` never reads a value back to the host (no ``.item()``, no boolean
indexing, no ``bincount``, whose CUDA kernel syncs to size its output): the per-step cost is
a few kernel launches; :func:`collect` reads every result with one transfer at the end.

Formulas mirror the reference (:mod:`duofit.common.metrics.reference`, sklearn) in float64: confusion
counts in int64 (a binary precision/recall/F1 with a zero denominator is ``nan``; a multiclass
macro or weighted average leaves out the classes whose score is undefined, as sklearn's
``zero_division=np.nan`` does, and is ``nan`` with none left), exact ROC-AUC from average
ranks (Mann-Whitney, ties counted half; classes absent from ``y_true`` are dropped and the
scores renormalised, as the reference does),
regression sums with Chan's parallel variance update (r2 of a constant target is ``nan``).
A binary metric whose positive class is 0 reads ``(1 - y, 1 - p)``
(:func:`duofit.common.metrics.registry.flips`). Non-finite outputs give ``nan``, as the
reference does.

Example:
    >>> import numpy as np
    >>> y, out = np.array([1, 0, 0, 1]), np.array([[2.0], [-1.0], [0.5], [-3.0]])
    >>> native_metrics(["accuracy", {"name": "f1", "threshold": 0.1}], "binary", y, out, True)
    {'accuracy': 0.5, 'f1_t0.1': 0.4}
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import torch

from duofit.common.errors import unsupported
from duofit.common.metrics.native import feed_batches
from duofit.common.metrics.registry import REGISTRY, Reads, flips
from duofit.common.spec import MetricEntry

__all__ = ["DEFAULT_BATCH", "METRICS", "NativeMetric", "collect", "make_metric", "native_metrics"]

DEFAULT_BATCH = 256  # batch size native_metrics feeds; any size gives the same values


class NativeMetric(Protocol):
    """What every native torch metric provides."""

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None: ...  # noqa: D102
    def compute(self) -> torch.Tensor: ...  # noqa: D102
    def reset(self) -> None: ...  # noqa: D102


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den``, 0 where ``den`` is 0 (a term that the caller weighs 0)."""
    return torch.where(den != 0, num / torch.where(den != 0, den, torch.ones_like(den)), torch.zeros_like(num))


def _class_average(num: torch.Tensor, den: torch.Tensor, support: torch.Tensor, weighted: bool) -> torch.Tensor:
    """Mean of the per-class ratios ``num / den`` over the classes where ``den > 0`` (no host sync).

    As sklearn's ``zero_division=np.nan`` (``_nanaverage``): a class whose ratio is undefined
    is left out with its weight; ``weighted`` weighs by ``support``, unweighted when the
    classes left all have support 0; ``nan`` when no class is left. A class absent from both
    the labels and the predictions has ``den == 0`` too, so only the classes sklearn scores count.
    """
    defined = (den != 0).to(torch.float64)
    weights = support * defined if weighted else defined
    weights = torch.where(weights.sum() > 0, weights, defined)
    return (_ratio(num, den) * weights).sum() / weights.sum()  # 0 / 0 = nan: no class left


def _defined_ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den``, ``nan`` where ``den`` is 0 (an undefined binary score, as the reference)."""
    return torch.where(den != 0, num / torch.where(den != 0, den, torch.ones_like(den)), torch.full_like(num, math.nan))


def _probabilities(task: str, outputs: torch.Tensor, from_logits: bool) -> torch.Tensor:
    """As the reference: float64 probabilities, ``[n]`` binary, ``[n, k]`` multiclass."""
    z = outputs.to(torch.float64)
    if task == "binary":
        z = z.reshape(-1)
        return torch.sigmoid(z) if from_logits else z.clamp(0.0, 1.0)
    if from_logits:
        return torch.softmax(z, dim=1)
    total = z.sum(dim=1, keepdim=True)
    return z / torch.where(total == 0, torch.ones_like(total), total)


class _Base:
    def __init__(self, entry: MetricEntry, task: str, from_logits: bool, n_classes: int, device: Any) -> None:
        self.entry, self.task, self.from_logits = entry, task, from_logits
        self.flipped = flips(entry, task)
        self.k = 2 if task == "binary" else n_classes
        self.device = torch.device(device)
        self.reset()

    def reset(self) -> None:
        self.finite = torch.ones((), dtype=torch.bool, device=self.device)

    def _scored(self, outputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Probabilities and class indices as the formulas read them (turned around when class 0 is positive)."""
        p = _probabilities(self.task, outputs, self.from_logits)
        y = targets.reshape(-1).long()
        return (1.0 - p, 1 - y) if self.flipped else (p, y)

    def _nan_unless_finite(self, value: torch.Tensor) -> torch.Tensor:
        return torch.where(self.finite, value, torch.full_like(value, float("nan")))


class LabelMetric(_Base):
    """accuracy / precision / recall / f1 from a confusion matrix of thresholded or argmax labels."""

    def reset(self) -> None:
        super().reset()
        self.cm = torch.zeros(self.k * self.k, dtype=torch.int64, device=self.device)

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        p, y = self._scored(outputs, targets)
        self.finite &= torch.isfinite(p).all()
        labels = (p > self.entry.threshold).long() if self.task == "binary" else p.argmax(dim=1)
        index = y * self.k + labels
        self.cm.index_add_(0, index, torch.ones_like(index))

    def compute(self) -> torch.Tensor:
        cm = self.cm.reshape(self.k, self.k).to(torch.float64)
        if self.entry.name == "accuracy":
            return self._nan_unless_finite(torch.trace(cm) / cm.sum())
        tp = torch.diagonal(cm)
        fp, fn = cm.sum(dim=0) - tp, cm.sum(dim=1) - tp
        num, den = {"precision": (tp, tp + fp), "recall": (tp, tp + fn), "f1": (2 * tp, 2 * tp + fp + fn)}[
            self.entry.name
        ]
        average = self.entry.average
        if average == "binary":
            value = _defined_ratio(num[1], den[1])
        elif average == "micro":
            value = _defined_ratio(num.sum(), den.sum())
        else:  # macro or weighted over the classes whose score is defined
            value = _class_average(num, den, tp + fn, weighted=average == "weighted")
        return self._nan_unless_finite(value)


def _auc(positive: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
    """Mann-Whitney U / (n_pos * n_neg) with average ranks for ties (= trapezoidal ROC-AUC)."""
    n_pos = positive.sum().to(torch.float64)
    n_neg = positive.numel() - n_pos
    sorted_scores, order = torch.sort(score, stable=True)
    _, inverse, counts = torch.unique_consecutive(sorted_scores, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).to(torch.float64)
    avg_rank = ends - (counts.to(torch.float64) - 1) / 2  # 1-based average rank of each tie group
    ranks = torch.empty_like(score)
    ranks[order] = avg_rank[inverse]
    auc = ((ranks * positive).sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return torch.where((n_pos > 0) & (n_neg > 0), auc, torch.full_like(auc, float("nan")))


class RocAuc(_Base):
    """Exact ROC-AUC on probabilities (binary, or one-vs-rest macro); keeps the scores on the device."""

    def reset(self) -> None:
        super().reset()
        self.scores: list[torch.Tensor] = []
        self.targets: list[torch.Tensor] = []

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        p, y = self._scored(outputs, targets)
        self.finite &= torch.isfinite(p).all()
        self.scores.append(p)
        self.targets.append(y)

    def compute(self) -> torch.Tensor:
        nan = torch.tensor(float("nan"), dtype=torch.float64, device=self.device)
        if not self.scores:
            return nan
        p, y = torch.cat(self.scores), torch.cat(self.targets)
        if self.task == "binary":
            return self._nan_unless_finite(_auc(y == 1, p))
        present = torch.unique(y)  # the end of the epoch: data-dependent shapes are fine here
        if present.numel() < 2:
            return nan
        if present.numel() < p.shape[1]:  # as the reference: score the present classes only
            p = p[:, present] / p[:, present].sum(dim=1, keepdim=True)
            y = torch.searchsorted(present, y)
            if present.numel() == 2:
                return self._nan_unless_finite(_auc(y == 1, p[:, 1]))
        per_class = torch.stack([_auc(y == c, p[:, c]) for c in range(p.shape[1])])
        return self._nan_unless_finite(per_class.mean())


class RegressionMetric(_Base):
    """mse / rmse / mae / r2 (uniform average over outputs) from running float64 sums."""

    def reset(self) -> None:
        super().reset()
        self.n = 0  # sample count: known from shapes, so never read back from the device
        self.sse = self.sae = self.mean = self.m2 = torch.zeros((), dtype=torch.float64, device=self.device)

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        pred = outputs.to(torch.float64).reshape(outputs.shape[0], -1)
        y = targets.to(torch.float64).reshape(pred.shape[0], -1)
        self.finite &= torch.isfinite(pred).all()
        err = pred - y
        self.sse = self.sse + (err**2).sum(dim=0)
        self.sae = self.sae + err.abs().sum(dim=0)
        nb = y.shape[0]
        mb = y.mean(dim=0)
        delta = mb - self.mean  # Chan et al.: merge the batch's mean and sum of squares
        total = self.n + nb
        self.m2 = self.m2 + ((y - mb) ** 2).sum(dim=0) + delta**2 * (self.n * nb / total)
        self.mean = self.mean + delta * (nb / total)
        self.n = total

    def compute(self) -> torch.Tensor:
        n = max(self.n, 1)
        name = self.entry.name
        if name in ("mse", "rmse"):
            mse = self.sse.mean() / n
            value = mse.sqrt() if name == "rmse" else mse
        elif name == "mae":
            value = self.sae.mean() / n
        else:  # r2; a constant target (of any output) leaves it undefined: nan, as the reference
            value = (1 - _defined_ratio(self.sse, self.m2)).mean()
        return self._nan_unless_finite(value)


MetricFactory = Callable[[MetricEntry, str, bool, int, Any], NativeMetric]

# One class per input a metric reads (the registry's `reads`): it holds every formula of those metrics.
_BY_READS: dict[Reads, MetricFactory] = {
    "labels": LabelMetric,
    "probabilities": RocAuc,
    "predictions": RegressionMetric,
}
METRICS: dict[str, MetricFactory] = {name: _BY_READS[metric.reads] for name, metric in REGISTRY.items()}


def make_metric(entry: MetricEntry, task: str, from_logits: bool, n_classes: int = 2, device: Any = "cpu") -> Any:
    """The native torch metric for one resolved metric entry.

    Args:
        entry: A resolved entry (``spec.metric_entries``).
        task: ``binary``, ``multiclass`` or ``regression``.
        from_logits: Whether the model outputs logits.
        n_classes: Number of output units (multiclass).
        device: Where the state lives (the model's device).

    Example:
        >>> from duofit.common.spec import resolve_metrics
        >>> m = make_metric(resolve_metrics(["mae"], "regression")[0], "regression", False)
        >>> m.update(torch.tensor([[1.0], [3.0]]), torch.tensor([2.0, 2.0])); float(m.compute())
        1.0
    """
    factory = METRICS.get(entry.name)
    if factory is None:
        raise unsupported("torch", f"metric {entry.column!r}", entry.name, METRICS)
    return factory(entry, task, from_logits, n_classes, device)


def collect(metrics: Mapping[str, NativeMetric]) -> dict[str, float]:
    """Every metric's result as a float, read from the device in one transfer.

    Example:
        >>> collect({})
        {}
    """
    if not metrics:
        return {}
    values = torch.stack([m.compute().to(torch.float64).reshape(()) for m in metrics.values()])
    return dict(zip(metrics, values.cpu().tolist(), strict=True))


def native_metrics(
    names: Sequence[Any],
    task: str,
    y_true: np.ndarray,
    outputs: np.ndarray,
    from_logits: bool,
    batch_size: int = DEFAULT_BATCH,
    device: Any = "cpu",
) -> dict[str, float]:
    """Metrics from the torch metric objects, fed ``outputs`` in batches of ``batch_size``.

    The arguments are :func:`duofit.common.metrics.native.feed_batches`'s, plus ``from_logits``
    (whether ``outputs`` are logits) and ``device`` (where the metric state lives).

    Example:
        >>> native_metrics(["r2"], "regression", np.array([1.0, 2.0]), np.array([[1.0], [2.0]]), False)
        {'r2': 1.0}
    """
    return feed_batches(
        names,
        task,
        torch.as_tensor(np.asarray(y_true), device=device),
        torch.as_tensor(np.asarray(outputs), device=device),
        make=lambda entry, k: make_metric(entry, task, from_logits, k, device),
        update=lambda metric, y, out: metric.update(out, y),
        collect=collect,
        batch_size=batch_size,
    )
