"""The torch loop's compiled and mixed-precision modes: ``train.compile`` and ``train.precision``.

- ``train.precision = "mixed_bfloat16"``: the model's forward runs under
  ``torch.autocast(device_type, dtype=torch.bfloat16)``; the parameters stay float32 (master
  weights: autocast casts a copy for each matmul/conv, ``torch/amp/autocast_mode.py``), the
  outputs are cast back to float32 before the loss, as Keras' ``Loss.__call__`` casts
  ``y_pred`` to the loss dtype (``keras/src/losses/loss.py``), and the optimizer updates the
  float32 parameters. Evaluation and test predictions run under the same autocast.
- ``train.compile = true``: the training step's forward, loss and penalty are one
  ``torch.compile`` function (backward through AOTAutograd; the optimizer step and the
  gradient-norm records stay eager). ``dynamic=False``: full batches and a partial last batch
  get one static-shape graph each. Evaluation stays eager (one pass per epoch; its
  compilation would cost more than it saves).

Example (skipped: pytest cannot collect doctests of a package named ``torch``):
    >>> step = train_step(model, loss_fn, None, None, spec.train, torch.device("cpu"), torch.float32)  # doctest: +SKIP
    >>> step(xb, tb, None).dtype  # doctest: +SKIP
    torch.float32
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Callable
from typing import Any

import torch

from duofit.common.errors import SpecError
from duofit.common.spec.train import TrainSpec

__all__ = ["AUTOCAST_DTYPES", "StepFn", "autocast", "check_compiler", "inference", "train_step"]

# train.precision -> the dtype torch.autocast computes in (None: no autocast)
AUTOCAST_DTYPES: dict[str, torch.dtype | None] = {"float32": None, "mixed_bfloat16": torch.bfloat16}

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
StepFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


def autocast(train: TrainSpec, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` in the spec's compute dtype on ``device`` (a no-op context in float32)."""
    dtype = AUTOCAST_DTYPES[train.precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def inference(
    model: torch.nn.Module, train: TrainSpec, device: torch.device, dtype: torch.dtype
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x -> outputs`` in the spec's precision, returned in ``dtype`` (the run's: float32 under autocast).

    Without autocast this is ``model`` itself (no wrapper on the eager float32/float64 path).
    """
    if AUTOCAST_DTYPES[train.precision] is None:
        return model

    def forward(x: torch.Tensor) -> torch.Tensor:
        with autocast(train, device):
            out = model(x)
        return out.to(dtype)

    return forward


def train_step(
    model: torch.nn.Module,
    loss_fn: LossFn,
    weighted: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None,
    penalty: Callable[[], torch.Tensor] | None,
    train: TrainSpec,
    device: torch.device,
    dtype: torch.dtype,
) -> StepFn:
    """``(xb, tb, wb) -> loss`` of one training batch: forward (autocast), loss, penalty; compiled if asked.

    Args:
        model: The model (its parameters in the run's dtype).
        loss_fn: The unweighted loss.
        weighted: The sample-weighted loss, used when a batch comes with weights ``wb``.
        penalty: The L1/L2 kernel penalty, added to the loss (``None``: none).
        train: ``precision`` (autocast) and ``compile`` (``torch.compile``).
        device: Where the model runs (the autocast device type).
        dtype: The run's dtype: outputs are cast to it before the loss.

    Raises:
        SpecError: ``train.compile`` on a CPU without the C++ compiler inductor needs.
    """
    forward = inference(model, train, device, dtype)

    def step(xb: torch.Tensor, tb: torch.Tensor, wb: torch.Tensor | None) -> torch.Tensor:
        out = forward(xb)
        loss = loss_fn(out, tb) if wb is None or weighted is None else weighted(out, tb, wb)
        return loss + penalty() if penalty is not None else loss

    if not train.compile:
        return step
    check_compiler(device)
    return torch.compile(step, dynamic=False)


def _cxx() -> str:
    """The C++ compiler inductor looks for: ``$CXX``, else ``g++`` (``clang++`` on macOS).

    Verified in ``torch/_inductor/config.py`` (``cpp.cxx``) and ``torch/_inductor/cpp_builder.py``
    (``get_cpp_compiler``), torch 2.13.
    """
    return os.environ.get("CXX", "clang++" if sys.platform == "darwin" else "g++")


def check_compiler(device: torch.device | str) -> None:
    """Refuse ``train.compile`` on a CPU where inductor cannot build its C++ kernels.

    Raises:
        SpecError: no C++ compiler found (exit 2), naming the compiler and the fix.
    """
    if torch.device(device).type != "cpu":
        return
    cxx = _cxx()
    if shutil.which(cxx) is None:
        raise SpecError(
            f"train.compile: torch.compile on the CPU builds C++ kernels (inductor) with {cxx!r}, which is not "
            "on PATH; install a C++ compiler (Debian/Ubuntu: apt-get install g++; macOS: xcode-select --install) "
            "or point the CXX environment variable at one, or set train.compile = false",
            path="train.compile",
        )
