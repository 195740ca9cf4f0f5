"""Pitfall evidence computed from a run's history: the same rules for every backend.

Each rule measures one thing and says whether it fired; :mod:`duofit.common.verdict`
turns the rules into the run's one verdict. The rules (the tutorial's "Common Pitfalls"):

- ``exploding``: the gradient norm grew to :data:`EXPLODING_GROWTH` times its first-epoch
  value (scale-free: a regression on raw targets starts with large norms), or training diverged;
- ``vanishing``: the gradient norm stayed below :data:`VANISHING_GRAD_NORM` over the last
  third of the epochs while the training loss never fell well below a constant predictor's;
- ``unstable``: the validation loss was repeatedly worse than a model that learned nothing,
  or jumped up by :data:`UNSTABLE_SWING` times from one epoch to the next, repeatedly;
- ``overfitting``: a sustained, significant rise of the smoothed validation loss after its
  minimum while the training loss kept falling (see :func:`overfitting_evidence`);
- ``underfitting``: the last epochs' training and validation losses are both at least
  :data:`UNDERFIT_RATIO` of a constant predictor's loss;
- ``warnings``: loss / output / task mismatches visible in the spec and data.

Two reference losses anchor the rules: the *baseline* (the best constant prediction: the
training mean or median for regression, the class prior for classification) and the
*untrained* loss (an all-zero output: uniform class probabilities, a zero prediction). The
larger of the two is the loss of a model that learned nothing (:func:`reference_loss`).

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
    "DIVERGENCE_RATIO",
    "EXPLODING_GROWTH",
    "OVERFIT_MIN_RISE",
    "OVERFIT_NOISE_SIGMAS",
    "OVERFIT_PATIENCE",
    "UNDERFIT_RATIO",
    "UNSTABLE_MARGIN",
    "UNSTABLE_SWING",
    "UNSTABLE_TRAIN_RATIO",
    "VANISHING_GRAD_NORM",
    "baseline_loss",
    "diagnose",
    "diagnose_history",
    "divergence_limit",
    "reference_loss",
    "spec_warnings",
    "untrained_loss",
]

# Divergence: an epoch loss above this multiple of the loss of a model that learned nothing.
# On a balanced binary task that is 693 nats per sample (the true class predicted with
# probability below e^-693); for MSE, errors ~32 standard deviations of the target. No model
# that is still learning gets there and float32 noise cannot push one across it, while the
# learning rates that blow up put the loss 1e5-1e7 times above (Adam lr = 1e4 on the seed
# problem: 4e7 in epoch 1). Losses between 1 and 1000 times are the "unstable" rule's.
DIVERGENCE_RATIO = 1000.0
# Healthy training shrinks the gradient norm; growth by two orders of magnitude over the
# first epoch's value means the updates are amplifying themselves (lr too high).
EXPLODING_GROWTH = 100.0
# Below this, weights barely move (lr * 1e-6 per step); flagged only while the best
# training loss stayed above VANISHING_LOSS_RATIO of the baseline (a model whose loss fell
# well has converged, it is not stuck).
VANISHING_GRAD_NORM = 1e-6
VANISHING_LOSS_RATIO = 0.5
# Unstable: validation loss above UNSTABLE_MARGIN x the loss of a model that learned nothing
# (10% above, so float32 noise around the reference never counts) ...
UNSTABLE_MARGIN = 1.1
# ... or jumping up by this factor from one epoch to the next (while above half the reference;
# tiny converged losses doubling is not instability) ...
UNSTABLE_SWING = 2.0
UNSTABLE_SWING_FLOOR = 0.5
# ... in at least this many epochs and this fraction of the run: "repeatedly", not once.
UNSTABLE_MIN_EPOCHS = 3
UNSTABLE_FRACTION = 0.2
# Validation losses above the reference count as instability only while the median training
# loss is at least this fraction of the reference: an overfitting model's validation loss also
# climbs above it, but its training loss falls towards 0 (the overfitting examples: < 0.001;
# lr too high on the seed problem: 0.65-12).
UNSTABLE_TRAIN_RATIO = 0.5
# Overfitting: the smoothed validation loss (centred running median over OVERFIT_WINDOW
# epochs) ends at least OVERFIT_PATIENCE epochs after its minimum, ...
OVERFIT_PATIENCE = 5
OVERFIT_WINDOW = 5
# ... above the minimum by at least this fraction (a few percent is not overfitting) ...
OVERFIT_MIN_RISE = 0.10
# ... and by more than this many noise sigmas (robust: 1.4826 x the median absolute deviation
# of the validation loss around its smoothed curve), so a flat noisy curve never fires.
OVERFIT_NOISE_SIGMAS = 3.0
# Underfitting: the last epochs' losses (median of UNDERFIT_LAST) within 80% of a constant
# predictor's loss.
UNDERFIT_RATIO = 0.8
UNDERFIT_LAST = 3


def baseline_loss(spec: Spec, y_train: np.ndarray, n_classes: int | None) -> float:
    """Loss of the best constant prediction under the spec's loss (no features used)."""
    t = spec.loss.type
    y = np.asarray(y_train)
    if t == "mse":
        return float(np.mean((y - y.mean(axis=0)) ** 2))
    if t == "mae":
        return float(np.mean(np.abs(y - np.median(y, axis=0))))
    if isinstance(spec.loss, HuberLoss):
        return _huber(y - np.median(y, axis=0), spec.loss.delta)
    prior = np.bincount(y.astype(np.int64).ravel(), minlength=int(n_classes or 2)) / y.size
    prior = prior[prior > 0]
    return float(-(prior * np.log(prior)).sum())  # cross-entropy of predicting the class prior


def _huber(d: np.ndarray, delta: float) -> float:
    d = np.abs(d)
    return float(np.mean(np.where(d <= delta, 0.5 * d**2, delta * (d - 0.5 * delta))))


def untrained_loss(spec: Spec, y_train: np.ndarray, n_classes: int | None) -> float:
    """Loss of an all-zero output: a zero prediction, or uniform class probabilities.

    Example:
        >>> from duofit.common.loader import load_spec
        >>> spec = load_spec("examples/regression.toml")
        >>> untrained_loss(spec, np.array([3.0, 5.0]), None)
        17.0
    """
    y = np.asarray(y_train, dtype=np.float64)
    t = spec.loss.type
    if t == "mse":
        return float(np.mean(y**2))
    if t == "mae":
        return float(np.mean(np.abs(y)))
    if isinstance(spec.loss, HuberLoss):
        return _huber(y, spec.loss.delta)
    return float(math.log(max(2, int(n_classes or 2))))


def reference_loss(spec: Spec, y_train: np.ndarray, n_classes: int | None) -> float:
    """The loss of a model that learned nothing: the larger of the baseline and the untrained loss."""
    return max(baseline_loss(spec, y_train, n_classes), untrained_loss(spec, y_train, n_classes))


def divergence_limit(spec: Spec, y_train: np.ndarray, n_classes: int | None) -> float:
    """The epoch loss beyond which training counts as diverged (``inf``: only non-finite losses)."""
    ratio = spec.train.divergence_threshold or DIVERGENCE_RATIO
    return float(ratio * reference_loss(spec, y_train, n_classes)) if math.isfinite(ratio) else math.inf


def _running_median(values: np.ndarray, window: int) -> np.ndarray:
    """Centred running median; the window shrinks at the ends (never reads past them)."""
    half = window // 2
    return np.array([np.median(values[max(0, i - half) : i + half + 1]) for i in range(len(values))])


def overfitting_evidence(epochs: np.ndarray, loss: np.ndarray, val: np.ndarray) -> dict[str, Any]:
    """Whether the validation loss rose in a sustained, significant way after its minimum.

    Example:
        >>> e = np.arange(1, 21)
        >>> falling = np.linspace(1.0, 0.1, 20)
        >>> u_shape = np.r_[np.linspace(1.0, 0.5, 10), np.linspace(0.55, 1.0, 10)]
        >>> overfitting_evidence(e, falling, u_shape)["flag"], overfitting_evidence(e, falling, falling)["flag"]
        (True, False)
    """
    out: dict[str, Any] = {"flag": False, "started_epoch": None, "rise": math.nan, "noise": math.nan}
    out.update(patience=OVERFIT_PATIENCE, min_rise=OVERFIT_MIN_RISE)
    if len(val) < OVERFIT_PATIENCE + 2 or not (np.isfinite(val).all() and np.isfinite(loss).all()):
        return out
    smooth_val = _running_median(val, OVERFIT_WINDOW)
    smooth_loss = _running_median(loss, OVERFIT_WINDOW)
    best = int(np.argmin(smooth_val))
    low = float(smooth_val[best])
    lo = max(0, best - OVERFIT_WINDOW // 2)
    best = lo + int(np.argmin(val[lo : best + OVERFIT_WINDOW // 2 + 1]))  # the epoch itself, not its window
    rise = float(smooth_val[-1] - low)
    noise = 1.4826 * float(np.median(np.abs(val - smooth_val)))
    out.update(rise=rise / low if low > 0 else math.nan, noise=noise / low if low > 0 else math.nan)
    if (
        len(val) - 1 - best >= OVERFIT_PATIENCE
        and rise > OVERFIT_MIN_RISE * low
        and rise > OVERFIT_NOISE_SIGMAS * noise
        and smooth_loss[-1] < smooth_loss[best]
    ):
        out.update(flag=True, started_epoch=int(epochs[best]) + 1)
    return out


def unstable_evidence(loss: np.ndarray, val: np.ndarray, reference: float) -> dict[str, Any]:
    """Epochs with the validation loss above a model that learned nothing, and upward jumps.

    Example:
        >>> val = np.array([0.5, 2.0, 0.6, 2.5, 0.7, 3.0])
        >>> unstable_evidence(np.full(6, 0.6), val, reference=0.69)["flag"]
        True
    """
    finite = val[np.isfinite(val)]
    train = loss[np.isfinite(loss)]
    learning = bool(train.size and np.median(train) >= UNSTABLE_TRAIN_RATIO * reference)
    above = int(np.sum(finite > UNSTABLE_MARGIN * reference))
    prev, cur = finite[:-1], finite[1:]
    jumps = int(np.sum((cur > UNSTABLE_SWING * prev) & (cur > UNSTABLE_SWING_FLOOR * reference)))
    rises = bool(np.any(cur > UNSTABLE_MARGIN * prev))  # a slow learner from a bad start only falls
    needed = max(UNSTABLE_MIN_EPOCHS, math.ceil(UNSTABLE_FRACTION * len(finite)))
    flag = bool((above >= needed and rises and learning) or jumps >= needed)
    worst = float(finite.max()) if finite.size else math.nan
    return {
        "flag": flag,
        "epochs_above_reference": above,
        "jumps": jumps,
        "epochs": int(finite.size),
        "needed": needed,
        "reference_loss": reference,
        "worst_val_loss": worst,
    }


def diagnose_history(history: Any, baseline: float, diverged: bool, reference: float | None = None) -> dict[str, Any]:
    """Rule evidence from a history DataFrame (columns ``epoch, loss, val_loss[, grad_norm]``)."""
    loss = history["loss"].to_numpy(dtype=float)
    val = history["val_loss"].to_numpy(dtype=float)
    grad = history["grad_norm"].to_numpy(dtype=float) if "grad_norm" in history else np.full(len(loss), np.nan)
    epochs = history["epoch"].to_numpy() if "epoch" in history else np.arange(1, len(loss) + 1)
    reference = baseline if reference is None else reference
    out: dict[str, Any] = {"baseline_loss": baseline, "reference_loss": reference}

    finite_grad = grad[np.isfinite(grad)]
    worst = float(finite_grad.max()) if finite_grad.size else math.nan
    growth = worst / finite_grad[0] if finite_grad.size and finite_grad[0] > 0 else math.nan
    exploding = diverged or bool(math.isfinite(growth) and growth >= EXPLODING_GROWTH)
    out["exploding"] = {"flag": exploding, "max_grad_norm": worst, "growth": growth, "threshold": EXPLODING_GROWTH}

    tail = grad[-max(1, len(grad) // 3) :]
    tail = tail[np.isfinite(tail)]
    median_tail = float(np.median(tail)) if tail.size else math.nan
    finite_loss = loss[np.isfinite(loss)]
    stuck = bool(finite_loss.size and finite_loss.min() >= VANISHING_LOSS_RATIO * baseline)
    vanishing = bool(tail.size and median_tail < VANISHING_GRAD_NORM and stuck)
    out["vanishing"] = {"flag": vanishing, "median_grad_norm_last_third": median_tail, "threshold": VANISHING_GRAD_NORM}
    out["unstable"] = unstable_evidence(loss, val, reference)
    out["overfitting"] = overfitting_evidence(epochs, loss, val)

    last_loss = float(np.median(loss[-UNDERFIT_LAST:])) if len(loss) else math.nan
    last_val = float(np.median(val[-UNDERFIT_LAST:])) if len(val) else math.nan
    under = bool(
        math.isfinite(last_loss)
        and math.isfinite(last_val)
        and last_loss >= UNDERFIT_RATIO * baseline
        and last_val >= UNDERFIT_RATIO * baseline
    )
    out["underfitting"] = {
        "flag": under,
        "final_loss_over_baseline": last_loss / baseline if baseline > 0 else math.nan,
        "final_val_loss_over_baseline": last_val / baseline if baseline > 0 else math.nan,
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


def diagnose(
    spec: Spec,
    history: Any,
    y_train: np.ndarray,
    n_classes: int | None,
    diverged: bool,
    message: str | None = None,
) -> dict[str, Any]:
    """All diagnostics of one run: rule evidence, the one verdict, and spec warnings."""
    from duofit.common.verdict import decide

    base = baseline_loss(spec, y_train, n_classes)
    ref = reference_loss(spec, y_train, n_classes)
    out: dict[str, Any] = {"baseline_loss": base, "reference_loss": ref}
    if len(history):
        out = diagnose_history(history, base, diverged, ref)
    out["verdict"] = decide(spec, out, diverged, message)
    integer_target = bool(np.all(np.asarray(y_train) == np.round(np.asarray(y_train))))
    out["warnings"] = spec_warnings(spec, integer_target)
    return out
