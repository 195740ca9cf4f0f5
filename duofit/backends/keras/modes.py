"""Keras' compiled and mixed-precision modes: ``train.compile`` and ``train.precision``.

- ``train.precision = "mixed_bfloat16"``: every layer gets Keras' ``"mixed_bfloat16"`` dtype
  policy (compute bfloat16, variables float32: ``keras/src/dtype_policies/dtype_policy.py``),
  per layer rather than with the process-wide ``keras.config.set_dtype_policy``, so nothing
  leaks into the next run of the process. Layers cast their float32 variables to bfloat16 when
  they read them (``autocast``), losses cast the bfloat16 outputs to their float32 dtype
  (``keras/src/losses/loss.py`` ``Loss.__call__``) and the optimizer updates the float32
  variables. Outputs handed to duofit (validation, test, probes) are cast back to the run's
  dtype: bfloat16 -> float32 is exact.
- ``train.compile = true``: ``model.compile(jit_compile=True)``: XLA on TensorFlow, ``jax.jit``
  on JAX (Keras' default there already). Refused on torch (:data:`COMPILE_REFUSED`). Off:
  ``"auto"``, Keras' own choice (``keras/src/trainers/trainer.py`` ``_resolve_auto_jit_compile``: no XLA on a
  CPU-only TensorFlow host, XLA on a GPU and on JAX, eager on torch).

Example:
    >>> from duofit.common.spec.train import TrainSpec
    >>> layer_dtype(TrainSpec(precision="mixed_bfloat16")), layer_dtype(TrainSpec(dtype="float64"))
    ('mixed_bfloat16', 'float64')
    >>> jit_compile_setting(TrainSpec(), "tensorflow"), jit_compile_setting(TrainSpec(compile=True), "jax")
    ('auto', True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from duofit.common.errors import SpecError
from duofit.common.spec.train import TrainSpec

__all__ = ["COMPILE_REFUSED", "LAYER_POLICIES", "jit_compile_setting", "layer_dtype", "run_dtype_outputs"]

# train.precision -> the Keras dtype policy every layer gets (None: the run's dtype, e.g. "float32")
LAYER_POLICIES: dict[str, str | None] = {"float32": None, "mixed_bfloat16": "mixed_bfloat16"}

# framework -> why train.compile is refused there (the others get jit_compile=True)
COMPILE_REFUSED: dict[str, str] = {
    "torch": "Keras on torch compiles its train step with torch.compile (keras/src/backend/torch/trainer.py "
    "make_train_function), and the compiled step writes duofit's per-step records past their end "
    "(IndexError, measured with Keras 3.15.1 and torch 2.13 on the CPU)",
}


def layer_dtype(train: TrainSpec) -> str:
    """The ``dtype`` argument of every Keras layer: a mixed policy's name or the run's dtype."""
    return LAYER_POLICIES[train.precision] or train.dtype


def jit_compile_setting(train: TrainSpec, framework: str) -> bool | str:
    """``model.compile(jit_compile=...)`` for ``train.compile`` on ``framework`` (``keras.backend.backend()``).

    Raises:
        SpecError: ``train.compile`` where it is refused (:data:`COMPILE_REFUSED`), naming the backend and
            the alternatives.
    """
    if not train.compile:
        return "auto"
    reason = COMPILE_REFUSED.get(framework)
    if reason is not None:
        backend = "keras" if framework == "tensorflow" else f"keras-{framework}"
        raise SpecError(
            f"train.compile = true is not supported on backend {backend!r}: {reason}; compile with backend "
            "'torch' (torch.compile of duofit's loop), 'keras' or 'keras-jax' (XLA), or set train.compile = false",
            path="train.compile",
        )
    return True


def run_dtype_outputs(outputs: Any, dtype: str) -> np.ndarray:
    """Model outputs as numpy in the run's dtype (a mixed policy's bfloat16 outputs -> float32, exact)."""
    out = np.asarray(outputs)
    return out if out.dtype == np.dtype(dtype) else out.astype(dtype)
