"""torch internals duofit relies on, each gated on the torch version it was verified against.

``torch._foreach_norm`` and ``torch._foreach_mul_`` (private, undocumented) run one
kernel for a whole list of tensors instead of one per tensor: the global gradient norm
recorded every epoch, Keras-style clipping and decoupled weight decay. See
:mod:`duofit.common.patches` for what happens with another torch version.

Example (skipped: pytest cannot collect doctests of a package named ``torch``):
    >>> [round(float(n), 4) for n in foreach_norm([torch.ones(3), torch.ones(1)])]  # doctest: +SKIP
    [1.7321, 1.0]
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import torch

from duofit.common.patches import Patch, apply_gate

__all__ = ["FOREACH", "PATCHES", "VERIFIED", "foreach_mul_", "foreach_norm"]

VERIFIED = {"torch": "2.13.0"}  # constraints.txt pin

FOREACH = Patch(
    "torch_foreach",
    "torch",
    VERIFIED["torch"],
    "torch._foreach_norm / torch._foreach_mul_",
    "one kernel per list of tensors for gradient norms, clipping and weight decay",
)
PATCHES = (FOREACH,)


@cache
def _foreach(name: str) -> Callable[..., Any]:
    """``torch.<name>``, gated once per process (the callers run once per epoch or step)."""
    fn = getattr(torch, name, None)
    apply_gate(FOREACH, fn is not None)
    return fn  # type: ignore[return-value]


def foreach_norm(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """The 2-norm of each tensor (``torch._foreach_norm``)."""
    return _foreach("_foreach_norm")(tensors)


def foreach_mul_(tensors: list[torch.Tensor], scalar: float | torch.Tensor) -> None:
    """Multiply every tensor in place by ``scalar`` (``torch._foreach_mul_``)."""
    _foreach("_foreach_mul_")(tensors, scalar)
