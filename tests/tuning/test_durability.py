"""A tuning process killed mid-trial loses no finished trial, and the next run continues."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import ROOT, TINY_SPACE, tiny_seed

pytestmark = [pytest.mark.torch, pytest.mark.slow]

HEARTBEAT_S = 1  # a killed trial is marked FAIL once silent for 2 heartbeats
WAIT_S = 120  # generous bound for a loaded 2-core machine; the loop exits as soon as the state is reached


def _states(url: str, study: str) -> dict[int, tuple[str, float | None]]:
    import optuna

    try:
        trials = optuna.load_study(study_name=study, storage=url).get_trials(deepcopy=False)
    except KeyError:  # the study does not exist yet
        return {}
    return {t.number: (t.state.name, t.value) for t in trials}


def test_sigkill_mid_trial_loses_no_finished_trial(tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(tiny_seed(epochs=60, n_samples=400)), encoding="utf-8")
    space = tmp_path / "space.json"
    space.write_text(json.dumps(TINY_SPACE), encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    cmd = [sys.executable, "-m", "duofit.cli", "tune", str(spec), "--space", str(space), "--backend", "torch"]
    cmd += ["--search", "random", "--storage", url, "--study", "k", "--heartbeat", str(HEARTBEAT_S), "--quiet"]
    cmd += ["--out", str(tmp_path / "out")]
    env = {k: v for k, v in os.environ.items() if k != "DUOFIT_DEBUG"}

    proc = subprocess.Popen([*cmd, "--trials", "100"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            states = _states(url, "k")
            done = [n for n, (s, _) in states.items() if s == "COMPLETE"]
            if len(done) >= 2 and any(s == "RUNNING" for s, _ in states.values()):
                break
            assert proc.poll() is None, "the tuning process ended before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail("no running trial after two finished ones")
        proc.send_signal(signal.SIGKILL)  # mid-trial: no cleanup, no final write
    finally:
        proc.kill()
        proc.wait(timeout=30)

    before = _states(url, "k")
    finished = {n: v for n, (s, v) in before.items() if s == "COMPLETE"}
    running = [n for n, (s, _) in before.items() if s == "RUNNING"]
    assert len(finished) >= 2 and len(running) == 1
    time.sleep(2.5 * HEARTBEAT_S)  # past the grace period: the killed trial is stale

    again = subprocess.run([*cmd, "--trials", "2"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=WAIT_S)
    assert again.returncode == 0, again.stderr
    after = _states(url, "k")
    for number, value in finished.items():
        assert after[number] == ("COMPLETE", value)  # nothing finished was lost or changed
    assert after[running[0]][0] == "FAIL"  # the killed trial, found stale by the heartbeat
    new = [n for n in after if n not in before]
    assert len(new) == 2 and all(after[n][0] == "COMPLETE" for n in new)
    assert "ran 2 now" in again.stdout
