"""Distributed tuning: two worker processes share one study in a real PostgreSQL server.

The fixture starts PostgreSQL on loopback (a temporary data folder, a free port, fsync off)
and stops it afterwards. Where PostgreSQL is missing and the tests run as root, it installs
Debian's ``postgresql`` package first; the test is skipped, with the reason, only when that
is impossible. The server refuses to run as root, so it runs as the ``postgres`` user.
"""

from __future__ import annotations

import collections
import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT, TINY_SPACE, tiny_seed

pytestmark = [pytest.mark.torch, pytest.mark.slow]

INSTALL_TIMEOUT_S = 900  # apt-get update + install on a fresh machine
WORKER_TIMEOUT_S = 300
TRIALS_PER_WORKER = 4


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("initdb")
    return Path(which).resolve().parent if which else None


def _install_postgres() -> str | None:
    """Install Debian's postgresql package; returns why it could not, or None."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "PostgreSQL (initdb, pg_ctl) is not installed, and installing it needs root and apt-get"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"]):
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"`{' '.join(cmd)}` failed: {exc}"
        if proc.returncode != 0:
            return f"`{' '.join(cmd)}` failed (exit {proc.returncode}): {proc.stderr[-400:]}"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    pytest.importorskip("psycopg2", reason="psycopg2-binary is not installed: pip install 'duofit[tune-postgres]'")
    bindir = _pg_bin()
    if bindir is None:
        reason = _install_postgres()
        bindir = _pg_bin()
        if bindir is None:
            pytest.skip(f"cannot run PostgreSQL: {reason or 'initdb not found after installing postgresql'}")
    as_user: dict[str, Any] = {}
    if os.geteuid() == 0:  # postgres refuses to run as root: switch to the postgres user
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        as_user = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
    home = Path(tempfile.mkdtemp(prefix="duofit-pg-"))
    if as_user:
        os.chown(home, as_user["user"], as_user["group"])
    data, port = home / "data", _free_port()

    def pg(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, cwd=home, capture_output=True, text=True, timeout=120, check=False, **as_user)

    init = pg(str(bindir / "initdb"), "-D", str(data), "-U", "duofit", "--auth=trust", "--no-sync", "-E", "UTF8")
    assert init.returncode == 0, init.stderr
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
    pg_ctl = str(bindir / "pg_ctl")
    start = pg(pg_ctl, "-D", str(data), "-l", str(home / "log"), "-w", "-t", "60", "-o", options, "start")
    assert start.returncode == 0, start.stderr + (home / "log").read_text()
    try:
        yield f"postgresql+psycopg2://duofit@127.0.0.1:{port}/postgres"
    finally:
        pg(pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(home, ignore_errors=True)


def test_two_workers_record_every_trial_exactly_once(postgres_url: str, tmp_path: Path) -> None:
    import optuna

    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(tiny_seed(epochs=10)), encoding="utf-8")
    space = tmp_path / "space.json"
    space.write_text(json.dumps(TINY_SPACE), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "DUOFIT_DEBUG"}
    workers = []
    for i in range(2):
        cmd = [sys.executable, "-m", "duofit.cli", "tune", str(spec), "--space", str(space), "--backend", "torch"]
        cmd += ["--search", "random", "--seed", str(i), "--trials", str(TRIALS_PER_WORKER), "--storage", postgres_url]
        cmd += ["--study", "shared", "--quiet", "--out", str(tmp_path / f"w{i}")]
        pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
        workers.append(subprocess.Popen(cmd, cwd=ROOT, env=env, **pipes))
    outputs = [w.communicate(timeout=WORKER_TIMEOUT_S) for w in workers]
    for w, (out, err) in zip(workers, outputs, strict=True):
        assert w.returncode == 0, f"stdout:\n{out}\nstderr:\n{err}"
        assert f"ran {TRIALS_PER_WORKER} now" in out

    trials = optuna.load_study(study_name="shared", storage=postgres_url).get_trials()
    assert len(trials) == 2 * TRIALS_PER_WORKER
    assert sorted(t.number for t in trials) == list(range(2 * TRIALS_PER_WORKER))  # each number once, no gaps
    assert len({t._trial_id for t in trials}) == len(trials)
    assert all(t.state.name == "COMPLETE" and t.value is not None for t in trials)
    per_worker = collections.Counter(t.user_attrs["worker"] for t in trials)
    assert sorted(per_worker.values()) == [TRIALS_PER_WORKER, TRIALS_PER_WORKER]  # two processes, 4 trials each
