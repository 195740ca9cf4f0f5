"""Collection of the docstring examples: ``pytest --doctest-modules duofit -p no:cacheprovider``.

A module whose framework is not installed is not collected, so the examples of everything
else run in the lint env, which installs no framework. ``keras_torch`` and ``keras_jax`` are
never collected: Keras picks its framework once per process, the ``keras`` backend (on
TensorFlow) is collected instead, and those two packages carry no examples.
Every example sees ``np`` (numpy) without importing it.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import pytest

_FRAMEWORK_MODULES = {
    "duofit/backends/torch": ("torch",),
    "duofit/backends/keras": ("keras", "tensorflow"),
    "duofit/bench/torch_loops.py": ("torch",),
    "duofit/bench/keras_loops.py": ("keras", "tensorflow"),
    "duofit/bench/torch_models.py": ("torch",),
    "duofit/bench/keras_models.py": ("keras", "tensorflow"),
}

collect_ignore = ["duofit/backends/keras_torch", "duofit/backends/keras_jax"] + [
    path
    for path, frameworks in _FRAMEWORK_MODULES.items()
    if any(importlib.util.find_spec(name) is None for name in frameworks)
]


@pytest.fixture(autouse=True)
def _doctest_numpy(doctest_namespace: dict[str, Any]) -> None:
    doctest_namespace["np"] = np
