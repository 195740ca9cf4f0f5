"""Fixed source blocks of an exported torch script: probability losses, strict optimizers.

:mod:`duofit.porting.export_torch` assembles the script from these blocks, the per-layer code
(:mod:`duofit.porting.torch_code`) and the numpy metrics both exporters paste
(:mod:`duofit.porting.script_metrics`). Every block is ruff-formatted module-level code.

- ``PROB_LOSSES``: cross-entropy on probabilities clipped to ``[1e-7, 1 - 1e-7]`` as Keras does
  (``duofit/backends/torch/losses.py``; torch's ``BCELoss`` clamps ``log(p)`` at -100 instead),
  one function per loss type; the script assigns ``LOSS`` right after the function it names.
- ``STRICT_OPTIMIZERS``: the update of ``torch.optim``'s single-tensor SGD / Adam / RMSprop written
  out, the operation sequence duofit's strict mode runs on Keras too (``duofit/backends/keras/exact.py``),
  and Keras' global-norm clipping formula that the torch backend uses in strict mode.

Example:
    >>> name, block = PROB_LOSSES["binary_crossentropy"]
    >>> name, compile(block, "losses", "exec") is not None
    ('bce_on_probabilities', True)
"""

from __future__ import annotations

__all__ = ["PROB_LOSSES", "STRICT_CLIP", "STRICT_OPTIMIZERS"]

_EPSILON = """
EPSILON = 1e-7  # Keras clips probabilities to [1e-7, 1 - 1e-7]; torch's BCELoss clamps log(p) at -100 instead
"""

_BCE = '''

def bce_on_probabilities(p: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of probabilities, clipped as Keras clips them."""
    p = p.clamp(EPSILON, 1.0 - EPSILON)
    return -(target * torch.log(p) + (1.0 - target) * torch.log(1.0 - p)).mean()
'''

_CCE = '''

def cce_on_probabilities(p: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Categorical cross-entropy of probabilities: Keras renormalises each row, then clips."""
    if target.dtype == torch.long:  # class indices: log of the clipped probabilities, renormalised by the softmax
        return F.cross_entropy(torch.log(p.clamp(EPSILON, 1.0 - EPSILON)), target)
    p = (p / p.sum(dim=-1, keepdim=True)).clamp(EPSILON, 1.0 - EPSILON)
    return -(target * torch.log(p)).sum(dim=-1).mean()
'''

# loss type (from_logits = false) -> (the function's name, its source: EPSILON and the function)
PROB_LOSSES: dict[str, tuple[str, str]] = {
    "binary_crossentropy": ("bce_on_probabilities", _EPSILON + _BCE),
    "categorical_crossentropy": ("cce_on_probabilities", _EPSILON + _CCE),
}

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
