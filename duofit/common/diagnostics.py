"""Pitfall diagnostics computed from a run's history: the same rules for every backend.

Flags (the tutorial's "Common Pitfalls"):

- ``exploding``: training diverged, or the gradient norm grew to :data:`EXPLODING_GROWTH` times
  its first-epoch value (scale-free: a regression on raw targets starts with large norms);
- ``vanishing``: the gradient norm stayed below :data:`VANISHING_GRAD_NORM` over the last
  epochs while the loss was still near the baseline (a converged model is not flagged);
- ``overfitting``: validation loss rose for at least :data:`OVERFIT_PATIENCE` epochs after its
  minimum, by more than :data:`OVERFIT_MIN_RISE`, while training loss kept falling;
- ``underfitting``: final training and validation losses are both at least
  :data:`UNDERFIT_RATIO` of the loss of a constant baseline (the training mean for
  regression, the class prior for classification);
- ``warnings``: loss / output / task mismatches visible in the spec and data.

Example:
    >>> import pandas as pd
    >>> h = pd.DataFrame({"epoch": [1, 2, 3], "loss": [0.7, 0.69, 0.69], "val_loss": [0.7, 0.7, 0.7],
    ...                   "grad_norm": [0.1, 0.1, 0.1]})
    >>> diagnose_history(h, baseline=0.693, diverged=False)["underfitting"]["flag"]
    True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from duofit.common.spec import DATA_KIND_TARGETS, ActivationLayer, DenseLayer, HuberLoss, Spec

__all__ = [
    "EXPLODING_GROWTH",
    "OVERFIT_MIN_RISE",
    "OVERFIT_PATIENCE",
    "UNDERFIT_RATIO",
    "VANISHING_GRAD_NORM",
    "baseline_loss",
    "diagnose",
    "diagnose_history",
    "spec_warnings",
]

# Healthy training shrinks the gradient norm; growth by two orders of magnitude over the
# first epoch's value means the updates are amplifying themselves (lr too high).
EXPLODING_GROWTH = 100.0
# Below this, weights barely move (lr * 1e-6 per step); flagged only while the loss is still
# at least VANISHING_LOSS_RATIO of the baseline, i.e. the model has not learned.
VANISHING_GRAD_NORM = 1e-6
VANISHING_LOSS_RATIO = 0.5
# Overfitting: validation loss rising for this many epochs after its minimum ...
OVERFIT_PATIENCE = 5
# ... by at least this fraction of the minimum (noise of a few percent is not overfitting).
OVERFIT_MIN_RISE = 0.10
# Underfitting: final losses within 80% of a constant predictor's loss.
UNDERFIT_RATIO = 0.8


def baseline_loss(spec: Spec, y_train: np.ndarray, n_classes: int | None) -> float:
    """Loss of the best constant prediction under the spec's loss (no features used)."""
    t = spec.loss.type
    y = np.asarray(y_train)
    if t == "mse":
        return float(np.mean((y - y.mean(axis=0)) ** 2))
    if t == "mae":
        return float(np.mean(np.abs(y - np.median(y, axis=0))))
    if isinstance(spec.loss, HuberLoss):
        delta = spec.loss.delta
        d = np.abs(y - np.median(y, axis=0))
        return float(np.mean(np.where(d <= delta, 0.5 * d**2, delta * (d - 0.5 * delta))))
    prior = np.bincount(y.astype(np.int64), minlength=int(n_classes or 2)) / len(y)
    prior = prior[prior > 0]
    return float(-(prior * np.log(prior)).sum())  # cross-entropy of predicting the class prior


def diagnose_history(history: Any, baseline: float, diverged: bool) -> dict[str, Any]:
    """Flags from a history DataFrame (columns ``epoch, loss, val_loss[, grad_norm]``)."""
    loss = history["loss"].to_numpy(dtype=float)
    val = history["val_loss"].to_numpy(dtype=float)
    grad = history["grad_norm"].to_numpy(dtype=float) if "grad_norm" in history else np.full(len(loss), np.nan)
    n = len(loss)
    out: dict[str, Any] = {"baseline_loss": baseline}

    finite_grad = grad[np.isfinite(grad)]
    worst = float(finite_grad.max()) if finite_grad.size else math.nan
    growth = worst / finite_grad[0] if finite_grad.size and finite_grad[0] > 0 else math.nan
    exploding = diverged or bool(math.isfinite(growth) and growth >= EXPLODING_GROWTH)
    out["exploding"] = {"flag": exploding, "max_grad_norm": worst, "growth": growth, "threshold": EXPLODING_GROWTH}

    tail = grad[-max(1, n // 3) :]
    tail = tail[np.isfinite(tail)]
    median_tail = float(np.median(tail)) if tail.size else math.nan
    stuck = n > 0 and math.isfinite(loss[-1]) and loss[-1] >= VANISHING_LOSS_RATIO * baseline
    vanishing = bool(tail.size and median_tail < VANISHING_GRAD_NORM and stuck)
    out["vanishing"] = {"flag": vanishing, "median_grad_norm_last_third": median_tail, "threshold": VANISHING_GRAD_NORM}

    over: dict[str, Any] = {"flag": False, "started_epoch": None, "patience": OVERFIT_PATIENCE}
    finite_val = np.isfinite(val)
    if n and finite_val.any():
        best = int(np.nanargmin(np.where(finite_val, val, np.nan)))
        rising = n - 1 - best
        if (
            rising >= OVERFIT_PATIENCE
            and val[-1] > val[best] * (1 + OVERFIT_MIN_RISE)
            and math.isfinite(loss[-1])
            and loss[-1] < loss[best]
        ):
            over.update(flag=True, started_epoch=int(history["epoch"].iloc[best]) + 1)
    out["overfitting"] = over

    under = bool(
        n
        and math.isfinite(loss[-1])
        and math.isfinite(val[-1])
        and loss[-1] >= UNDERFIT_RATIO * baseline
        and val[-1] >= UNDERFIT_RATIO * baseline
    )
    out["underfitting"] = {
        "flag": under,
        "final_loss_over_baseline": float(loss[-1] / baseline) if n and baseline > 0 else math.nan,
        "threshold": UNDERFIT_RATIO,
    }
    return out


def spec_warnings(spec: Spec, integer_target: bool) -> list[str]:
    """Loss / output / task combinations that are legal but probably wrong."""
    out: list[str] = []
    last_act = None
    for layer in spec.model.layers:
        if isinstance(layer, (DenseLayer, ActivationLayer)) and getattr(layer, "activation", None) not in (
            None,
            "linear",
        ):
            last_act = layer.activation
        elif isinstance(layer, DenseLayer):
            last_act = None
    loss = spec.loss
    logits = getattr(loss, "from_logits", None)
    if logits is True and last_act in ("sigmoid", "softmax"):
        out.append(f"loss.from_logits = true but the model ends in {last_act}: the loss applies it a second time")
    if logits is False and last_act not in ("sigmoid", "softmax"):
        out.append(
            "loss.from_logits = false but the model does not end in sigmoid/softmax: its outputs are clipped to "
            "[1e-7, 1-1e-7] as probabilities; set from_logits = true"
        )
    if spec.task == "regression" and integer_target and DATA_KIND_TARGETS[spec.data.kind] == "labels":
        out.append(f"regression loss {loss.type!r} on class labels: use a cross-entropy loss for classification")
    if spec.task == "regression" and last_act in ("sigmoid", "softmax"):
        out.append(f"regression output ends in {last_act}: predictions are bounded to (0, 1)")
    return out


def diagnose(spec: Spec, history: Any, y_train: np.ndarray, n_classes: int | None, diverged: bool) -> dict[str, Any]:
    """All diagnostics of one run: flags, thresholds and warnings."""
    base = baseline_loss(spec, y_train, n_classes)
    out: dict[str, Any] = diagnose_history(history, base, diverged) if len(history) else {"baseline_loss": base}
    integer_target = bool(np.all(np.asarray(y_train) == np.round(np.asarray(y_train))))
    out["warnings"] = spec_warnings(spec, integer_target)
    return out
