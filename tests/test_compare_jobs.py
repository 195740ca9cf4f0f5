"""``compare --jobs N``: backend workers side by side, startup time apart from fit time.

- several workers run at once (at most ``jobs``), in order; an error in one stops the others and
  reaches the parent with its type and field path; Ctrl-C stops them all;
- the numbers do not depend on ``jobs`` (same initial weights, batch order and seeds everywhere);
- every result records ``startup_s`` apart from ``fit_s``, the workers at once and who set the threads.
"""

from __future__ import annotations

import json
import os
import time
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from duofit.common.concurrent import WorkerJob, spawn_concurrently
from duofit.common.errors import SpecError
from duofit.common.isolated import SPAWNED_AT_ENV, seconds_since_spawn
from duofit.common.loader import load_spec
from duofit.comparison import resolve_jobs, worker_threads
from tests.test_cli import _cli

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "examples" / "seed.toml"

# A stand-in worker (no framework): ``python -m fakeworker SPEC BACKEND FOLDER MODE [PEERS...]``.
FAKE_WORKER = """
import json, os, signal, sys, time
from pathlib import Path

signal.signal(signal.SIGINT, signal.default_int_handler)  # as duofit's workers do (isolated.worker_main)
spec, backend, folder, mode, *peers = sys.argv[1:]
folder = Path(folder)
(folder.parent / f"{backend}.start").write_text(os.environ.get("DUOFIT_SPAWNED_AT", ""))
if mode == "peers":  # wait (a little) until every peer has started too
    deadline = time.monotonic() + float(peers[0])
    while time.monotonic() < deadline and not all((folder.parent / f"{p}.start").exists() for p in peers[1:]):
        time.sleep(0.05)
    saw = all((folder.parent / f"{p}.start").exists() for p in peers[1:])
    (folder / "saw_peers").write_text(str(saw))
elif mode in ("error", "interrupted"):  # once the sleeper sleeps (a SIGINT during its imports would print a traceback)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not list(folder.parent.glob("*.ready")):
        time.sleep(0.05)
if mode == "error":
    error = {"type": "SpecError", "message": "train.epochs: bad", "path": "train.epochs"}
    (folder / "error.json").write_text(json.dumps(error))
    sys.exit(2)
elif mode == "interrupted":
    sys.exit(130)
elif mode == "sleep":
    try:
        (folder.parent / f"{backend}.ready").write_text("")
        time.sleep(60)
    except KeyboardInterrupt:
        (folder / "stopped").write_text("SIGINT")
        sys.exit(130)
(folder / "done").write_text("ok")
"""


@pytest.fixture
def fake_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The stand-in worker module on the workers' PYTHONPATH; returns the jobs' parent folder."""
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "fakeworker.py").write_text(FAKE_WORKER, encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path / "mods"), os.environ.get("PYTHONPATH", "")]))
    (tmp_path / "jobs").mkdir()
    return tmp_path / "jobs"


def _job(jobs_dir: Path, backend: str, *options: str) -> WorkerJob:
    return WorkerJob("fakeworker", load_spec(SEED), backend, jobs_dir / backend, "run", options)


# --------------------------------------------------------------------------- how many at once
def test_jobs_and_threads_follow_the_cores() -> None:
    spec = load_spec(SEED)
    assert resolve_jobs(8, n_backends=4) == 4 and resolve_jobs(1, n_backends=4) == 1
    assert worker_threads(spec, 2, cores=2) == 1 and worker_threads(spec, 4, cores=16) == 4
    assert worker_threads(spec, 1, cores=16) is None  # one at a time: the framework's default, as before
    own = load_spec({**spec.model_dump(), "train": {**spec.train.model_dump(), "threads": 3}})
    assert worker_threads(own, 2, cores=16) is None  # train.threads wins


@pytest.mark.parametrize(("jobs", "isolate", "says"), [(0, True, "got 0"), (2, False, "drop --in-process")])
def test_bad_jobs_name_the_field_and_the_fix(jobs: int, isolate: bool, says: str) -> None:
    with pytest.raises(SpecError) as info:
        resolve_jobs(jobs, n_backends=2, isolate=isolate)
    assert info.value.path == "jobs" and says in str(info.value)


def test_bad_jobs_on_the_command_line_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = _cli(capsys, "compare", str(SEED), "--backends", "torch", "--jobs", "0", "--out", str(tmp_path))
    assert code == 2 and "Traceback" not in err and "jobs: expected a whole number >= 1" in err


# --------------------------------------------------------------------------- the workers
@pytest.mark.parametrize(("max_jobs", "together"), [(2, True), (1, False)])
def test_workers_run_side_by_side_up_to_max_jobs(fake_worker: Path, max_jobs: int, together: bool) -> None:
    wait = "20" if together else "1"  # side by side each sees the other start; one at a time the first gives up
    jobs = [_job(fake_worker, name, "peers", wait, "a", "b") for name in ("a", "b")]
    started: list[str] = []
    done: list[str] = []
    spawn_concurrently(
        jobs, max_jobs, on_start=lambda j: started.append(j.backend), on_done=lambda j: done.append(j.backend)
    )
    assert started == ["a", "b"] and sorted(done) == ["a", "b"]
    saw = {name: (fake_worker / name / "saw_peers").read_text() for name in ("a", "b")}
    assert saw == ({"a": "True", "b": "True"} if together else {"a": "False", "b": "True"})
    assert float((fake_worker / "a.start").read_text()) > 0  # the worker was told when it was started


def test_an_error_stops_the_others_and_keeps_its_type_and_path(
    fake_worker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import duofit.common.isolated as isolated

    monkeypatch.setattr(isolated, "INTERRUPT_GRACE_S", 5.0)
    jobs = [_job(fake_worker, "slow", "sleep"), _job(fake_worker, "bad", "error"), _job(fake_worker, "never", "x")]
    t0 = time.perf_counter()
    with pytest.raises(SpecError) as info:
        spawn_concurrently(jobs, 2)
    assert info.value.path == "train.epochs" and str(info.value) == "train.epochs: bad"
    assert (fake_worker / "slow" / "stopped").read_text() == "SIGINT"  # interrupted at once, not after 60 s
    assert time.perf_counter() - t0 < 30
    assert not (fake_worker / "never.start").exists()  # no new worker after an error


def test_a_worker_interrupted_alone_interrupts_the_others(fake_worker: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import duofit.common.isolated as isolated

    monkeypatch.setattr(isolated, "INTERRUPT_GRACE_S", 0.5)
    jobs = [_job(fake_worker, "slow", "sleep"), _job(fake_worker, "stop", "interrupted")]
    with pytest.raises(KeyboardInterrupt, match="'stop': its run worker process was interrupted"):
        spawn_concurrently(jobs, 2)
    assert (fake_worker / "slow" / "stopped").read_text() == "SIGINT"  # given the grace, then our own SIGINT


def test_seconds_since_spawn_reads_the_parents_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SPAWNED_AT_ENV, repr(time.time() - 2.0))
    since = seconds_since_spawn()
    assert since is not None and 2.0 <= since < 60
    monkeypatch.setenv(SPAWNED_AT_ENV, "not a time")
    assert seconds_since_spawn() is None


# --------------------------------------------------------------------------- real backends
def _small(tmp_path: Path, epochs: int = 4) -> Path:
    doc = tomllib.loads(SEED.read_text(encoding="utf-8"))
    doc["data"]["params"]["n_samples"] = 300
    doc["train"]["epochs"] = epochs
    path = tmp_path / "small.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


@pytest.mark.parity
def test_compare_gives_the_same_numbers_for_any_jobs(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from duofit.common.result import RunResult
    from duofit.runner import compare

    spec = _small(tmp_path)
    one = compare(spec, ["torch", "keras"], out=tmp_path / "one", jobs=1)
    two = compare(spec, ["torch", "keras"], out=tmp_path / "two", jobs=2, progress=True)
    assert (one.jobs, two.jobs) == (1, 2) and two.wall_s > 0
    err = capfd.readouterr().err
    assert "torch  started" in err and "keras  finished: startup " in err  # a line per start and finish
    for name in ("torch", "keras"):
        a, b = one.results[name], two.results[name]
        assert a.metrics == b.metrics, name
        np.testing.assert_array_equal(a.predictions, b.predictions, err_msg=name)
        for col in ("loss", "val_loss"):
            np.testing.assert_array_equal(a.history[col].to_numpy(), b.history[col].to_numpy(), err_msg=name)
        for key in a.weights:
            np.testing.assert_array_equal(a.weights[key], b.weights[key], err_msg=f"{name} {key}")
        saved: Any = RunResult.load(tmp_path / "two" / name)
        assert saved.timings["startup_s"] > 0 and saved.timings["fit_s"] > 0
        assert saved.timings["total_s"] >= saved.timings["startup_s"] + saved.timings["fit_s"]  # the worker's time
        assert saved.environment["compare_jobs"] == 2
        assert saved.environment["threads_set_by"].startswith("compare (2 workers at once")
        assert one.results[name].environment["threads_set_by"] == "framework default"
    table = (tmp_path / "two" / "compare.csv").read_text(encoding="utf-8").splitlines()
    assert "startup_s" in table[0].split(",") and "fit_s" in table[0].split(",")


@pytest.mark.torch
def test_an_interrupted_concurrent_compare_keeps_the_backends_that_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while keras-jax still runs: torch's result (read back as it finished) is kept and written."""
    import duofit.runner as runner

    def workers(spec: Any, names: Any, scratch: Path, results: dict[str, Any], **kwargs: Any) -> None:
        results["torch"] = runner.run(spec, "torch", out=kwargs["folder"] / "torch")
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "resolve_backends", lambda names: (["torch", "keras-jax"], {}))
    monkeypatch.setattr(runner, "run_workers", workers)
    with pytest.raises(runner.ComparisonInterrupted) as info:
        runner.compare(_small(tmp_path, epochs=2), out=tmp_path / "o", jobs=2)
    assert list(info.value.comparison.results) == ["torch"] and info.value.unfinished == ["keras-jax"]
    assert (tmp_path / "o" / "compare.csv").read_text(encoding="utf-8").splitlines()[1].startswith("torch,")


@pytest.mark.torch
def test_a_run_records_its_startup_apart_from_its_fit(tmp_path: Path) -> None:
    from duofit.runner import run

    res = run(_small(tmp_path, epochs=2), "torch")
    assert 0 < res.timings["startup_s"] < res.timings["total_s"]
    assert res.summary()["startup_s"] == res.timings["startup_s"]
