"""Keras internals duofit relies on, each gated on the Keras version it was verified against.

- :data:`FLOAT64` / :func:`keep_float64`: Keras 3's type promotion maps every float64
  result to float32 on all frameworks but TensorFlow, "to be aligned with JAX's default
  behavior" (``keras/src/backend/common/dtypes.py``, ``BIT64_TO_BIT32_DTYPE``):
  ``ops.matmul`` of two float64 tensors runs in float32 (3e-6 relative error measured on
  the digits MLP), so a float64 spec would silently train in float32. duofit keeps float64
  (recorded in the run's environment as ``keras_float64``); float32 runs are unaffected.
- :data:`ALL_REDUCE` / :class:`SkipAllReduce`: on TensorFlow, Keras' optimizer all-reduces
  the gradients through ``tf.custom_gradient`` even without a distribution strategy; that
  entry in TensorFlow's global gradient registry is never freed and kept each run's
  train-step graph alive (about 4.7 MiB per ``fit``;
  tests/reliability/test_resource_hygiene.py). The mixin skips it when no strategy is active.
- :data:`NO_TENSORFLOW` / :func:`hide_tensorflow`: Keras on torch or JAX imports TensorFlow
  whenever it is installed, to seed it too (``keras.utils.set_random_seed`` asks
  ``keras.src.utils.module_utils.tensorflow.available``, "since many workflows leverage
  tf.data"): a second framework in the process, its start-up time and its banners. duofit
  feeds Keras numpy arrays, never ``tf.data``, so on torch and JAX Keras is told TensorFlow
  is absent.
- :data:`ATTENTION_MASKS` / :func:`keep_input_masks`: ``MultiHeadAttention.call`` clears the
  Keras mask of the tensors it reads, in place (``backend.set_keras_mask(query, None)`` in
  ``keras/src/layers/attention/multi_head_attention.py``), so at run time a residual ``add`` that
  reads the same tensor sees no mask and drops it (``base_merge.py`` ``compute_mask``) and a
  second attention block attends to the padding, although the built model says the mask flows
  (cause ``keras_mha_clears_input_mask``). duofit's attention layer puts the masks back.

See :mod:`duofit.common.patches` for what happens with another Keras version.

Example (skipped: it changes process-wide Keras state):
    >>> keep_float64()   # doctest: +SKIP
    False
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from duofit.common.patches import Patch, apply_gate

__all__ = [
    "ALL_REDUCE",
    "ATTENTION_MASKS",
    "FLOAT64",
    "NO_TENSORFLOW",
    "PATCHES",
    "VERIFIED",
    "SkipAllReduce",
    "check_all_reduce",
    "hide_tensorflow",
    "keep_float64",
    "keep_input_masks",
]

VERIFIED = {"keras": "3.15.1"}  # constraints.txt pin

FLOAT64 = Patch(
    "keras_keep_float64",
    "keras",
    VERIFIED["keras"],
    "keras.src.backend.common.dtypes.BIT64_TO_BIT32_DTYPE",
    "float64 results would be demoted to float32 on torch and JAX",
)
ALL_REDUCE = Patch(
    "keras_skip_all_reduce",
    "keras",
    VERIFIED["keras"],
    "keras.src.backend.tensorflow.optimizer.TFOptimizer._all_reduce_sum_gradients",
    "without a distribution strategy its tf.custom_gradient keeps every run's graph alive",
)
NO_TENSORFLOW = Patch(
    "keras_no_tensorflow",
    "keras",
    VERIFIED["keras"],
    "keras.src.utils.module_utils.tensorflow._available",
    "Keras on torch or JAX would import TensorFlow (when installed) just to seed it",
)
ATTENTION_MASKS = Patch(
    "keras_attention_keeps_input_masks",
    "keras",
    VERIFIED["keras"],
    "keras.src.backend.get_keras_mask / set_keras_mask",
    "MultiHeadAttention.call deletes its inputs' padding masks, so later attention blocks run unmasked",
)
PATCHES = (FLOAT64, ALL_REDUCE, NO_TENSORFLOW, ATTENTION_MASKS)


def keep_input_masks(call: Callable[[], Any], *inputs: Any) -> Any:
    """Run ``call()`` and put back the Keras masks ``inputs`` carried before it.

    Raises:
        PatchError: this Keras has no ``get_keras_mask`` / ``set_keras_mask`` in ``keras.src.backend``.
    """
    from keras.src import backend

    get, put = getattr(backend, "get_keras_mask", None), getattr(backend, "set_keras_mask", None)
    apply_gate(ATTENTION_MASKS, get is not None and put is not None)
    assert get is not None and put is not None
    tensors = [t for t in inputs if t is not None]
    masks = [get(t) for t in tensors]
    try:
        return call()
    finally:
        for tensor, mask in zip(tensors, masks, strict=True):
            if mask is not None:
                put(tensor, mask)


def keep_float64() -> bool:
    """Let Keras-on-torch/JAX compute float64 ops in float64; True if a change was needed.

    Raises:
        PatchError: this Keras has no ``BIT64_TO_BIT32_DTYPE`` table.
    """
    from keras.src.backend.common import dtypes

    table = getattr(dtypes, "BIT64_TO_BIT32_DTYPE", None)
    apply_gate(FLOAT64, isinstance(table, dict))
    assert isinstance(table, dict)
    if table.get("float64") == "float64":
        return False
    table["float64"] = "float64"
    return True


def hide_tensorflow(framework: str) -> bool:
    """On torch or JAX, make Keras treat TensorFlow as not installed; True if a change was made.

    Nothing changes on TensorFlow, or when TensorFlow is already imported (the user's own code).

    Raises:
        PatchError: this Keras has no lazy ``tensorflow`` module with an ``_available`` flag.
    """
    if framework == "tensorflow" or "tensorflow" in sys.modules:
        return False
    from keras.src.utils import module_utils

    lazy: Any = getattr(module_utils, "tensorflow", None)
    # vars(), not hasattr: the lazy module imports TensorFlow on any attribute it lacks
    apply_gate(NO_TENSORFLOW, lazy is not None and "_available" in vars(lazy))
    lazy._available = False
    return True


def check_all_reduce(optimizer_cls: type) -> None:
    """Gate :class:`SkipAllReduce` for a Keras-on-TensorFlow optimizer class.

    Raises:
        PatchError: the class has no ``_all_reduce_sum_gradients`` to override.
    """
    apply_gate(ALL_REDUCE, hasattr(optimizer_cls, "_all_reduce_sum_gradients"))


class SkipAllReduce:
    """Optimizer mixin (TensorFlow only): no gradient all-reduce without a distribution strategy."""

    built: bool  # Keras' optimizer attribute (declared for type checkers of the subclass)

    def _all_reduce_sum_gradients(self, grads_and_vars: Any) -> Any:
        import tensorflow as tf

        if not tf.distribute.has_strategy():
            return list(grads_and_vars)
        return super()._all_reduce_sum_gradients(grads_and_vars)  # type: ignore[misc]
