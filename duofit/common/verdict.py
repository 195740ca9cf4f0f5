"""One verdict per run, from the pitfall rules' evidence, in one order for every backend.

The order is the severity a user should act on first: ``diverged`` > ``unstable`` >
``exploding`` > ``vanishing`` > ``overfitting`` > ``underfitting`` > ``fine``. Only the
verdict is reported: a diverged run is not also "underfitting", and an unstable run's huge
loss is not also "overfitting". The verdict keeps its measured evidence (``message``, which
does not repeat the name) and the fix that fits it (``fix``). :func:`describe` is the one
line every command prints.

Example:
    >>> from duofit.common.loader import load_spec
    >>> spec = load_spec("examples/seed.toml")
    >>> evidence = {"underfitting": {"flag": True, "final_loss_over_baseline": 0.95,
    ...                              "final_val_loss_over_baseline": 0.97}}
    >>> decide(spec, evidence, diverged=False)["name"]
    'underfitting'
    >>> decide(spec, {}, diverged=False)["name"]
    'fine'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from duofit.common.spec import DenseLayer, Spec
from duofit.common.spec.vocab import VERDICTS

__all__ = ["VERDICTS", "decide", "describe", "fallback_verdict"]

Evidence = dict[str, Any]


def _lr(spec: Spec) -> str:
    return f"{spec.optimizer.lr:g}"


def _diverged(spec: Spec, ev: Evidence, message: str | None) -> tuple[str, str]:
    return (
        message or "training diverged",
        f"lower optimizer.lr (now {_lr(spec)}) or set optimizer.clipnorm (e.g. 1.0)",
    )


def _unstable(spec: Spec, ev: Evidence, message: str | None) -> tuple[str, str]:
    d = ev["unstable"]
    parts = []
    if d["epochs_above_reference"]:
        parts.append(
            f"validation loss above a model that learned nothing ({d['reference_loss']:.4g}) in "
            f"{d['epochs_above_reference']} of {d['epochs']} epochs"
        )
    if d["jumps"]:
        parts.append(f"{d['jumps']} upward jump(s) of more than 2x from one epoch to the next")
    parts.append(f"worst {d['worst_val_loss']:.4g}")
    return (
        "; ".join(parts),
        f"the learning rate is too high: lower optimizer.lr (now {_lr(spec)}), e.g. by 10x",
    )


def _exploding(spec: Spec, ev: Evidence, message: str | None) -> tuple[str, str]:
    d = ev["exploding"]
    return (
        f"the gradient norm grew {d['growth']:.0f}x to {d['max_grad_norm']:.3g}",
        f"lower optimizer.lr (now {_lr(spec)}) or set optimizer.clipnorm (e.g. 1.0)",
    )


def _saturating(spec: Spec) -> bool:
    return any(isinstance(x, DenseLayer) and x.activation in ("sigmoid", "tanh") for x in spec.model.layers[:-1])


def _vanishing(spec: Spec, ev: Evidence, message: str | None) -> tuple[str, str]:
    d = ev["vanishing"]
    fix = (
        "replace sigmoid/tanh hidden activations with relu, use he_* initialisers or batch_norm"
        if _saturating(spec)
        else f"units may be dead or the steps too small: raise optimizer.lr (now {_lr(spec)}) a little, "
        "use he_* initialisers or batch_norm"
    )
    return (
        f"median gradient norm {d['median_grad_norm_last_third']:.2g} over the last third of the "
        "epochs while the training loss stayed near a constant predictor's",
        fix,
    )


def _overfitting(spec: Spec, ev: Evidence, message: str | None) -> tuple[str, str]:
    d = ev["overfitting"]
    return (
        f"from epoch {d['started_epoch']} the smoothed validation loss rose {d['rise']:.0%} above its minimum "
        f"(noise +/-{d['noise']:.1%}) while the training loss kept falling",
        "early stopping (train.early_stopping), dropout, l2 regularisation or more data",
    )


def _underfitting(spec: Spec, ev: Evidence, message: str | None) -> tuple[str, str]:
    d = ev["underfitting"]
    return (
        f"final training loss {d['final_loss_over_baseline']:.0%} and validation loss "
        f"{d['final_val_loss_over_baseline']:.0%} of a constant predictor's",
        "a bigger model, more epochs or a larger learning rate",
    )


Describe = Callable[[Spec, Evidence, "str | None"], tuple[str, str]]
_DESCRIBE: dict[str, Describe] = {
    "diverged": _diverged,
    "unstable": _unstable,
    "exploding": _exploding,
    "vanishing": _vanishing,
    "overfitting": _overfitting,
    "underfitting": _underfitting,
}


def _fired(name: str, ev: Evidence, diverged: bool) -> bool:
    if name == "diverged":
        return diverged
    rule = ev.get(name)
    return bool(isinstance(rule, dict) and rule.get("flag"))


def decide(spec: Spec, evidence: Evidence, diverged: bool, message: str | None = None) -> dict[str, Any]:
    """The run's one verdict: the most severe rule that fired, its evidence and its fix.

    Args:
        spec: The spec that was run (for the learning rate and activations in the advice).
        evidence: The rules' results (:func:`duofit.common.diagnostics.diagnose_history`).
        diverged: Whether training stopped as diverged.
        message: The divergence message (where and how training diverged).

    Returns:
        ``{"name", "message", "fix", "epoch"}``; ``epoch`` is where the problem starts, if known.
    """
    for name in VERDICTS[:-1]:
        if _fired(name, evidence, diverged):
            text, fix = _DESCRIBE[name](spec, evidence, message)
            epoch = evidence.get("overfitting", {}).get("started_epoch") if name == "overfitting" else None
            return {"name": name, "message": text, "fix": fix, "epoch": epoch}
    return {"name": "fine", "message": "no training problem detected", "fix": "", "epoch": None}


def fallback_verdict(diverged: bool, message: str | None) -> dict[str, Any]:
    """The verdict of a result saved before verdicts existed: diverged or fine."""
    if diverged:
        return {"name": "diverged", "message": message or "training diverged", "fix": "", "epoch": None}
    return {"name": "fine", "message": "no verdict recorded", "fix": "", "epoch": None}


def describe(verdict: dict[str, Any]) -> str:
    """The verdict as one printed line: name, evidence and fix (a diverged run's evidence is its error).

    Example:
        >>> describe({"name": "unstable", "message": "validation loss above ...", "fix": "lower optimizer.lr"})
        'unstable: validation loss above ...; fix: lower optimizer.lr'
        >>> describe({"name": "fine", "message": "no training problem detected", "fix": ""})
        'fine: no training problem detected'
    """
    name, fix = verdict["name"], verdict.get("fix", "")
    text = "see the error below" if name == "diverged" else verdict.get("message", "")
    return f"{name}: {text}" + (f"; fix: {fix}" if fix else "")
