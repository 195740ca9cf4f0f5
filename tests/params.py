"""Backend names as pytest parameters, each with the marker that skips it when not installed."""

from __future__ import annotations

import pytest

__all__ = ["ALL_BACKENDS", "CORE_BACKENDS", "KERAS_VARIANTS"]

CORE_BACKENDS = [pytest.param("torch", marks=pytest.mark.torch), pytest.param("keras", marks=pytest.mark.keras)]
# Keras 3 on torch and on JAX: same Keras code as "keras", another framework underneath; they
# run in their own processes in these tests (KERAS_BACKEND is fixed once per process)
KERAS_VARIANTS = [
    pytest.param("keras-torch", marks=pytest.mark.keras_torch),
    pytest.param("keras-jax", marks=pytest.mark.keras_jax),
]
ALL_BACKENDS = CORE_BACKENDS + KERAS_VARIANTS
