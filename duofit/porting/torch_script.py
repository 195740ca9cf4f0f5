"""Fixed source blocks of an exported torch script: metrics in numpy, probability losses, strict optimizers.

:mod:`duofit.porting.export_torch` assembles the script from these blocks and the per-layer
code (:mod:`duofit.porting.torch_code`). Every block is ruff-formatted module-level code.

- ``*_METRICS``: duofit's metric definitions (``duofit/common/metrics/fast.py``, equal to the
  sklearn references to 1e-12): binary scores of one positive class at a threshold, ROC-AUC as
  Mann-Whitney U with average ranks; multiclass ``macro``/``micro``/``weighted`` averages over
  the classes present, leaving out undefined ratios (sklearn's ``zero_division=np.nan``);
  regression errors averaged uniformly over the outputs.
- ``PROB_LOSSES``: cross-entropy on probabilities clipped to ``[1e-7, 1 - 1e-7]`` as Keras does
  (``duofit/backends/torch/losses.py``; torch's ``BCELoss`` clamps ``log(p)`` at -100 instead).
- ``STRICT_OPTIMIZERS``: the update of ``torch.optim``'s single-tensor SGD / Adam / RMSprop written
  out, the operation sequence duofit's strict mode runs on Keras too (``duofit/backends/keras/exact.py``),
  and Keras' global-norm clipping formula that the torch backend uses in strict mode.

Example:
    >>> compile(BINARY_METRICS, "metrics", "exec") is not None
    True
"""

from __future__ import annotations

__all__ = [
    "BINARY_METRICS",
    "MULTICLASS_METRICS",
    "PROB_LOSSES",
    "REGRESSION_METRICS",
    "STRICT_CLIP",
    "STRICT_OPTIMIZERS",
]

_COUNTS = '''
def ratio(num: float, den: float) -> float:
    """The ratio num / den; NaN when it is undefined (den = 0), as duofit reports it."""
    return num / den if den else math.nan
'''

BINARY_METRICS = (
    _COUNTS
    + '''

def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function without overflow."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0, e) / (1.0 + e)


def binary_scores(true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of one positive class (boolean masks: is / predicted positive)."""
    tp = int(np.count_nonzero(pred & true))
    fp = int(np.count_nonzero(pred)) - tp
    fn = int(np.count_nonzero(true)) - tp
    return {
        "accuracy": ratio(true.size - fp - fn, true.size),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
    }


def roc_auc(true: np.ndarray, score: np.ndarray) -> float:
    """ROC-AUC as the Mann-Whitney U statistic, ties sharing their average rank."""
    n_pos = int(np.count_nonzero(true))
    n_neg = true.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = np.argsort(score, kind="mergesort")
    _, first, counts = np.unique(score[order], return_index=True, return_counts=True)
    ranks = np.empty(score.size)
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)
    return (float(ranks[true].sum()) - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
'''
)

MULTICLASS_METRICS = (
    _COUNTS
    + '''

def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted by the row maximum."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def class_scores(y: np.ndarray, pred: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per-class (numerator, denominator) of precision, recall and F1 over the classes present, and the support."""
    cm = np.bincount(y * k + pred, minlength=k * k).reshape(k, k).astype(np.float64)
    present = (cm.sum(axis=0) + cm.sum(axis=1)) > 0  # classes in the labels or the predictions
    tp = np.diag(cm)[present]
    fp, fn = cm.sum(axis=0)[present] - tp, cm.sum(axis=1)[present] - tp
    return {
        "precision": np.stack([tp, tp + fp]),
        "recall": np.stack([tp, tp + fn]),
        "f1": np.stack([2 * tp, 2 * tp + fp + fn]),
        "support": tp + fn,
    }


def averaged(fractions: np.ndarray, support: np.ndarray, average: str) -> float:
    """The sklearn average of per-class ratios, leaving out the undefined ones (zero_division=np.nan)."""
    num, den = fractions
    if average == "micro":
        return ratio(float(num.sum()), float(den.sum()))
    defined = den != 0
    if not defined.any():
        return math.nan
    values = num[defined] / den[defined]
    if average == "weighted" and support[defined].sum() > 0:
        return float((values * support[defined]).sum() / support[defined].sum())
    return float(values.mean())


def auc_binary(true: np.ndarray, score: np.ndarray) -> float:
    """ROC-AUC of one class as the Mann-Whitney U statistic, ties sharing their average rank."""
    n_pos = int(np.count_nonzero(true))
    n_neg = true.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = np.argsort(score, kind="mergesort")
    _, first, counts = np.unique(score[order], return_index=True, return_counts=True)
    ranks = np.empty(score.size)
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)
    return (float(ranks[true].sum()) - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def roc_auc(y: np.ndarray, proba: np.ndarray) -> float:
    """One-vs-rest macro ROC-AUC over the classes present in y (probabilities renormalised over them)."""
    if y.size == 0 or y.min() == y.max():
        return math.nan
    present = np.unique(y)
    if present.size < proba.shape[1]:
        proba = proba[:, present] / proba[:, present].sum(axis=1, keepdims=True)
        y = np.searchsorted(present, y)
        if present.size == 2:
            return auc_binary(y == 1, proba[:, 1])
    return float(np.mean([auc_binary(y == c, proba[:, c]) for c in range(proba.shape[1])]))
'''
)

REGRESSION_METRICS = '''
def regression_scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """MSE, RMSE, MAE and R^2, averaged uniformly over the outputs (R^2 NaN for a constant target)."""
    err = pred - y
    ss_tot = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    mse = float(np.mean(err**2, axis=0).mean())
    r2 = float((1 - (err**2).sum(axis=0) / ss_tot).mean()) if y.size and ss_tot.all() else math.nan
    return {"mse": mse, "rmse": math.sqrt(mse), "mae": float(np.mean(np.abs(err))), "r2": r2}
'''

PROB_LOSSES = '''
EPSILON = 1e-7  # Keras clips probabilities to [1e-7, 1 - 1e-7]; torch's BCELoss clamps log(p) at -100 instead


def bce_on_probabilities(p: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of probabilities, clipped as Keras clips them."""
    p = p.clamp(EPSILON, 1.0 - EPSILON)
    return -(target * torch.log(p) + (1.0 - target) * torch.log(1.0 - p)).mean()


def cce_on_probabilities(p: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Categorical cross-entropy of probabilities: Keras renormalises each row, then clips."""
    if target.dtype == torch.long:  # class indices: log of the clipped probabilities, renormalised by the softmax
        return F.cross_entropy(torch.log(p.clamp(EPSILON, 1.0 - EPSILON)), target)
    p = (p / p.sum(dim=-1, keepdim=True)).clamp(EPSILON, 1.0 - EPSILON)
    return -(target * torch.log(p)).sum(dim=-1).mean()
'''

STRICT_CLIP = '''
@torch.no_grad()
def clip_by_global_norm(params: list[nn.Parameter], clipnorm: float) -> None:
    """Keras' global-norm clipping, g * c * min(1 / |g|, 1 / c) (torch's clip_grad_norm_ adds 1e-6 to |g|)."""
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.sqrt(sum((g * g).sum() for g in grads))
    scale = clipnorm * torch.minimum(1.0 / norm, torch.as_tensor(1.0 / clipnorm, dtype=norm.dtype))
    for g in grads:
        g.mul_(scale)
'''

_STRICT_BASE = '''
class StrictOptimizer:
    """The optimizer update written out, every hyperparameter a Python float (exact in float64).

    The same operation sequence as torch.optim's single-tensor implementation, which duofit's
    strict mode also runs on Keras (Keras' own Adam adds epsilon before the bias correction and
    rounds its hyperparameters to float32).
    """

    def __init__(self, params: list[nn.Parameter], lr: float, weight_decay: float, decoupled: bool) -> None:
        self.params, self.lr, self.weight_decay, self.decoupled = params, lr, weight_decay, decoupled
        self.state = [{} for _ in params]  # per-parameter buffers, created at the first step
        self.t = 0

    def zero_grad(self) -> None:
        """Forget the gradients of the last step."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        self.t += 1
        for p, state in zip(self.params, self.state, strict=True):
            if p.grad is None:
                continue
            g = p.grad
            if self.weight_decay and self.decoupled:  # AdamW: w <- w * (1 - lr * wd)
                p.mul_(1.0 - self.lr * self.weight_decay)
            elif self.weight_decay:  # coupled L2: g <- g + wd * w
                g = g.add(p, alpha=self.weight_decay)
            self.update(p, g, state)

    def update(self, p: torch.Tensor, g: torch.Tensor, state: dict[str, torch.Tensor]) -> None:
        """The optimizer's own update of one parameter."""
        raise NotImplementedError
'''

_STRICT_SGD = '''

class StrictSGD(StrictOptimizer):
    """torch.optim.SGD: buf = momentum * buf + g; w -= lr * (g + momentum * buf if nesterov else buf)."""

    momentum = $momentum
    nesterov = $nesterov

    def update(self, p: torch.Tensor, g: torch.Tensor, state: dict[str, torch.Tensor]) -> None:
        """The step w -= lr * g, g smoothed by the momentum buffer."""
        if self.momentum:
            if "buf" not in state:
                state["buf"] = g.clone()  # torch starts the buffer at the first gradient
            else:
                state["buf"].mul_(self.momentum).add_(g)
            g = g.add(state["buf"], alpha=self.momentum) if self.nesterov else state["buf"]
        p.add_(g, alpha=-self.lr)
'''

_STRICT_ADAM = '''

class StrictAdam(StrictOptimizer):
    """torch.optim.Adam / AdamW: w -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps), eps after the bias correction."""

    beta1, beta2, eps, amsgrad = $beta1, $beta2, $eps, $amsgrad

    def update(self, p: torch.Tensor, g: torch.Tensor, state: dict[str, torch.Tensor]) -> None:
        """Adam's moment estimates and bias-corrected step."""
        if not state:
            state.update(m=torch.zeros_like(p), v=torch.zeros_like(p), v_max=torch.zeros_like(p))
        m, v = state["m"], state["v"]
        m.lerp_(g, 1.0 - self.beta1)
        v.mul_(self.beta2).addcmul_(g, g, value=1.0 - self.beta2)
        bias_correction1 = 1.0 - self.beta1**self.t
        bias_correction2 = 1.0 - self.beta2**self.t
        if self.amsgrad:
            torch.maximum(state["v_max"], v, out=state["v_max"])
            v = state["v_max"]
        denom = (v.sqrt() / bias_correction2**0.5).add_(self.eps)
        p.addcdiv_(m, denom, value=-self.lr / bias_correction1)
'''

_STRICT_RMSPROP = '''

class StrictRMSprop(StrictOptimizer):
    """torch.optim.RMSprop: w -= lr * g / (sqrt(v [- mean(g)^2]) + eps), with an optional momentum buffer."""

    rho, eps, momentum, centered = $rho, $eps, $momentum, $centered

    def update(self, p: torch.Tensor, g: torch.Tensor, state: dict[str, torch.Tensor]) -> None:
        """RMSprop's running average of g^2 and scaled step."""
        if not state:
            state.update(v=torch.zeros_like(p), g_avg=torch.zeros_like(p), buf=torch.zeros_like(p))
        v = state["v"]
        v.mul_(self.rho).addcmul_(g, g, value=1.0 - self.rho)
        if self.centered:
            state["g_avg"].lerp_(g, 1.0 - self.rho)
            avg = v.addcmul(state["g_avg"], state["g_avg"], value=-1.0).sqrt_().add_(self.eps)
        else:
            avg = v.sqrt().add_(self.eps)
        if self.momentum:
            state["buf"].mul_(self.momentum).addcdiv_(g, avg)
            p.add_(state["buf"], alpha=-self.lr)
        else:
            p.addcdiv_(g, avg, value=-self.lr)
'''

# optimizer type -> (the written-out class's name, its source with $-placeholders for the spec's settings)
STRICT_OPTIMIZERS: dict[str, tuple[str, str]] = {
    "sgd": ("StrictSGD", _STRICT_BASE + _STRICT_SGD),
    "adam": ("StrictAdam", _STRICT_BASE + _STRICT_ADAM),
    "adamw": ("StrictAdam", _STRICT_BASE + _STRICT_ADAM),
    "rmsprop": ("StrictRMSprop", _STRICT_BASE + _STRICT_RMSPROP),
}
