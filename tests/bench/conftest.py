"""Shared pieces of the benchmark tests: a tiny plan that runs in about a second per cell."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.helpers import ROOT


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    """DUOFIT_DEBUG=1 re-raises internal errors; these tests check the user-facing behaviour."""
    monkeypatch.delenv("DUOFIT_DEBUG", raising=False)


@pytest.fixture
def workloads_dir(tmp_path: Path) -> Path:
    """A folder with one small workload (the seed problem on 300 samples)."""
    folder = tmp_path / "workloads"
    folder.mkdir()
    text = (ROOT / "benchmarks" / "workloads" / "seed.toml").read_text(encoding="utf-8")
    (folder / "tiny.toml").write_text(text.replace("n_samples = 1000", "n_samples = 300"), encoding="utf-8")
    return folder
