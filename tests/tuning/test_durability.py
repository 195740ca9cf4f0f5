"""A tuning study killed with SIGKILL at 20 random moments in a row loses no finished trial,
leaves no trial RUNNING forever, and the next run continues it."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.reliability.killing import KILL_ROUNDS, KillLog, kill_rounds

from .conftest import ROOT, TINY_SPACE, tiny_seed

pytestmark = [pytest.mark.torch, pytest.mark.slow]

HEARTBEAT_S = 1  # a killed trial is marked FAIL once silent for 2 heartbeats
KILL_WINDOW_S = (0.3, 8.0)  # start-up (3-6 s: torch, optuna), study creation, trials, commits
WAIT_S = 180  # generous bound for the final run on a loaded 2-core machine


def _states(url: str, study: str) -> dict[int, tuple[str, float | None]]:
    import optuna

    try:
        trials = optuna.load_study(study_name=study, storage=url).get_trials(deepcopy=False)
    except KeyError:  # the study does not exist yet (killed before it was created)
        return {}
    return {t.number: (t.state.name, t.value) for t in trials}


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_sigkill_at_random_points_loses_no_finished_trial(tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(tiny_seed(epochs=40, n_samples=300)), encoding="utf-8")
    space = tmp_path / "space.json"
    space.write_text(json.dumps(TINY_SPACE), encoding="utf-8")
    db = tmp_path / "tune.db"
    url = f"sqlite:///{db}"
    cmd = [sys.executable, "-m", "duofit.cli", "tune", str(spec), "--space", str(space), "--backend", "torch"]
    cmd += ["--search", "random", "--storage", url, "--study", "k", "--heartbeat", str(HEARTBEAT_S), "--quiet"]
    cmd += ["--out", str(tmp_path / "out")]
    env = {k: v for k, v in os.environ.items() if k != "DUOFIT_DEBUG"}
    finished: dict[int, float | None] = {}
    mid_trial: list[int] = []  # rounds whose kill left a trial RUNNING

    def check(i: int, log: KillLog) -> None:
        note = log.note()
        if db.exists():
            with sqlite3.connect(db) as conn:
                assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",), note
        states = _states(url, "k")
        for number, value in finished.items():
            assert states[number] == ("COMPLETE", value), note  # nothing finished was lost or changed
        finished.update({n: v for n, (s, v) in states.items() if s == "COMPLETE"})
        if any(s == "RUNNING" for s, _ in states.values()):
            mid_trial.append(i)

    log = kill_rounds([*cmd, "--trials", "1000"], KILL_WINDOW_S, check, env=env, cwd=ROOT)
    assert len(log.delays) == KILL_ROUNDS and all(log.killed), log.note()
    before = _states(url, "k")
    time.sleep(2.5 * HEARTBEAT_S)  # past the grace period: every killed trial is stale

    again = subprocess.run([*cmd, "--trials", "2"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=WAIT_S)
    note = f"{log.note()} (rounds that left a trial RUNNING: {mid_trial})"
    assert again.returncode == 0, f"{note}\n{again.stderr}"
    after = _states(url, "k")
    for number, value in finished.items():
        assert after[number] == ("COMPLETE", value), note
    for number, (state, _) in before.items():
        if state == "RUNNING":  # killed mid-trial, found stale by the heartbeat (or its absence)
            assert after[number][0] == "FAIL", note
    new = [n for n in after if n not in before]
    assert len(new) == 2 and all(after[n][0] == "COMPLETE" for n in new), note
    assert not [n for n, (s, _) in after.items() if s == "RUNNING"], note
    assert "ran 2 now" in again.stdout, note
    assert mid_trial, note  # at least one kill landed inside a trial (the point of the test)
