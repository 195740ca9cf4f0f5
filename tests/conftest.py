"""Test setup: backend markers skip (with the install hint) when a framework is missing.

With DUOFIT_REQUIRE_ALL_BACKENDS=1 (tox env `all`) a missing backend fails the test
instead of skipping it, so that env proves every test ran.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from duofit.common.registry import BACKENDS, is_installed

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
# marker -> backends it needs; "parity" compares the two reference backends (torch, keras on
# TensorFlow); tests of keras-torch / keras-jax carry their own markers
_MARKER_BACKENDS = {
    "torch": ("torch",),
    "keras": ("keras",),
    "keras_torch": ("keras-torch",),
    "keras_jax": ("keras-jax",),
    "parity": ("torch", "keras"),
}


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker, names in _MARKER_BACKENDS.items():
        if item.get_closest_marker(marker) is None:
            continue
        missing = [n for n in names if not is_installed(n)]
        if not missing:
            continue
        hints = ", ".join(f"{n} (pip install 'duofit[{BACKENDS[n].extra}]')" for n in missing)
        reason = f"needs backend {hints}"
        if os.environ.get("DUOFIT_REQUIRE_ALL_BACKENDS") == "1":
            pytest.fail(f"DUOFIT_REQUIRE_ALL_BACKENDS=1 but a test {reason}")
        pytest.skip(reason)


@pytest.fixture
def seed_spec_dict() -> dict:
    """The seed spec as a dict, shortened to a few epochs for fast tests."""
    import tomllib

    doc = tomllib.loads((EXAMPLES / "seed.toml").read_text())
    doc["train"]["epochs"] = 5
    return doc


@pytest.fixture(autouse=True)
def _chdir_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative paths in tests (examples/...) resolve from the repository root."""
    monkeypatch.chdir(ROOT)


# scikit-learn's array-API checks skip themselves unless SCIPY_ARRAY_API=1 is set before
# scipy is imported; duofit's estimators take numpy input only, so they are deselected
# instead of reported as skips (the `all` env must show no skipped test).
_DESELECT = ("check_array_api_input",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep = [item for item in items if not any(name in item.nodeid for name in _DESELECT)]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in keep])
        items[:] = keep
