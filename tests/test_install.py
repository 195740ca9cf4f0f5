"""Install smoke tests: what one tox env installed is exactly what duofit reports and can run.

Each single-backend tox env (torch, keras, keras-torch, keras-jax) runs these, beside its own
backend's tests; ``all`` runs them with every backend. The env names what it installed in
``DUOFIT_EXPECT_BACKENDS`` (comma-separated); outside tox every backend that is importable is
expected, so the tests still check the same promises in a developer's venv.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from duofit.common.registry import BACKENDS, installed_backends

pytestmark = pytest.mark.smoke


def _expected() -> list[str]:
    raw = os.environ.get("DUOFIT_EXPECT_BACKENDS", "")
    if not raw:
        return installed_backends()
    names = [n.strip() for n in raw.split(",") if n.strip()]
    assert set(names) <= set(BACKENDS), f"DUOFIT_EXPECT_BACKENDS names unknown backends: {names}"
    return [n for n in BACKENDS if n in names]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "duofit.cli", *args], capture_output=True, text=True, check=False, timeout=300
    )


def test_installed_backends_are_what_the_env_installed() -> None:
    assert installed_backends() == _expected()


def test_backends_json_reports_the_install() -> None:
    out = _cli("backends", "--json")
    assert out.returncode == 0, out.stderr
    rows = {row["name"]: row for row in json.loads(out.stdout)}
    assert [name for name, row in rows.items() if row["installed"]] == _expected()


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_run_or_install_hint(backend: str, tmp_path: os.PathLike[str]) -> None:
    """An installed backend trains the seed spec for two epochs; a missing one exits 2 with the pip hint."""
    doc = tomllib.loads(Path("examples/seed.toml").read_text())
    doc["train"]["epochs"] = 2
    spec = Path(tmp_path) / "seed2.json"
    spec.write_text(json.dumps(doc))
    out = _cli("run", str(spec), "--backend", backend, "--quiet", "--out", str(Path(tmp_path) / "out"))
    assert "Traceback" not in out.stderr
    if backend in _expected():
        assert out.returncode == 0, out.stderr
        assert "accuracy" in out.stdout
    else:
        assert out.returncode == 2
        assert f"pip install 'duofit[{BACKENDS[backend].extra}]'" in out.stderr
