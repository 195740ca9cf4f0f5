"""Shared pieces of the cv / tuning / sweep / scikit-learn tests: tiny specs and spaces.

Also tags every scikit-learn estimator check with its backend's marker (torch / keras),
so that tests/conftest.py skips or fails it like any other backend test.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "seed.toml"


def tiny_seed(epochs: int = 5, n_samples: int = 200) -> dict[str, Any]:
    """The seed spec, shrunk: fewer samples and epochs, one torch thread (tiny tensors)."""
    doc = tomllib.loads(SEED.read_text(encoding="utf-8"))
    doc["data"]["params"]["n_samples"] = n_samples
    doc["train"]["epochs"] = epochs
    doc["train"]["threads"] = 1
    return doc


TINY_SPACE: dict[str, Any] = {
    "params": [
        {"field": "optimizer.lr", "type": "float", "low": 1e-3, "high": 0.1, "log": True, "grid": [0.1, 0.01]},
        {"field": "model.layers[0].units", "type": "int", "low": 2, "high": 8, "grid": [2, 8]},
    ]
}


@pytest.fixture
def tiny_spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(tiny_seed()), encoding="utf-8")
    return path


@pytest.fixture
def tiny_space_file(tmp_path: Path) -> Path:
    path = tmp_path / "space.json"
    path.write_text(json.dumps(TINY_SPACE), encoding="utf-8")
    return path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if not Path(item.path).is_relative_to(here):
            continue
        callspec = getattr(item, "callspec", None)
        estimator = callspec.params.get("estimator") if callspec is not None else None
        backend = getattr(estimator, "backend", None)
        if backend in ("torch", "keras"):
            item.add_marker(getattr(pytest.mark, backend))
