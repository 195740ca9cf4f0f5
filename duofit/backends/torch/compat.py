"""torch internals duofit relies on, each gated on the torch version it was verified against.

- ``torch._foreach_norm`` and ``torch._foreach_mul_`` (private, undocumented) run one
  kernel for a whole list of tensors instead of one per tensor: the global gradient norm
  recorded every epoch, Keras-style clipping and decoupled weight decay.
- ``torch._VF.lstm`` / ``gru`` / ``rnn_tanh`` / ``rnn_relu``: the recurrent ops that
  ``nn.LSTM.forward`` and its siblings call (``torch/nn/modules/rnn.py``), here with weights
  translated from duofit's layout; calling them directly instead of through
  ``torch.func.functional_call`` saves its per-call module re-parametrisation (about 10 % of a
  GRU training step on the digits rows).

See
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

__all__ = ["FOREACH", "PATCHES", "RNN_OPS", "VERIFIED", "eager_rnn_op", "foreach_mul_", "foreach_norm", "rnn_op"]

VERIFIED = {"torch": "2.13.0"}  # constraints.txt pin

FOREACH = Patch(
    "torch_foreach",
    "torch",
    VERIFIED["torch"],
    "torch._foreach_norm / torch._foreach_mul_",
    "one kernel per list of tensors for gradient norms, clipping and weight decay",
)
RNN_OPS = Patch(
    "torch_vf_rnn",
    "torch",
    VERIFIED["torch"],
    "torch._VF.lstm / gru / rnn_tanh / rnn_relu (input, hx, flat_weights, has_biases, num_layers, dropout, "
    "train, bidirectional, batch_first)",
    "the recurrent layers run torch's own RNN kernels on duofit-layout weights without functional_call",
)
PATCHES = (FOREACH, RNN_OPS)


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


@cache
def rnn_op(name: str) -> Callable[..., Any]:
    """``torch._VF.<name>`` (``lstm``, ``gru``, ``rnn_tanh``, ``rnn_relu``), gated once per process.

    Called as ``op(x, hx, flat_weights, has_biases, 1, 0.0, train, False, True)`` (one layer, no
    dropout, one direction, batch first), exactly as ``nn.RNNBase`` subclasses call it; ``hx`` is
    ``(h0, c0)`` for ``lstm``. Returns ``(output, h_n)`` (``lstm``: ``(output, h_n, c_n)``).
    """
    fn = getattr(getattr(torch, "_VF", None), name, None)
    apply_gate(RNN_OPS, fn is not None)
    return fn  # type: ignore[return-value]


@cache
def eager_rnn_op(name: str) -> Callable[..., Any]:
    """:func:`rnn_op` kept out of ``torch.compile``'s graph (``torch.compiler.disable``: a graph break).

    With torch 2.13 on the CPU a compiled training step through ``torch._VF.lstm`` fails in its
    backward (``TypeError: expected Tensor() for op: torch.ops.aten.mkldnn_rnn_layer.default``:
    oneDNN's LSTM workspace is ``None`` in the compiled backward; pytorch/pytorch#185163, open).
    Run eagerly inside the compiled step, the LSTM keeps its own autograd and the layers around
    it are still compiled. ``gru`` (no oneDNN path) compiles as it is: the GRU workload's steps
    ran 2.6 x faster compiled (0.92 against 2.41 ms on 2 CPU cores), so only ``lstm`` takes this.
    """
    return torch.compiler.disable(rnn_op(name), recursive=True)
