"""Rough edges a new user hits: conversion folders, ``progress``, Ctrl-C, output folders, noise.

- ``convert`` writes beside the run in ``converted/<src>-to-<dst>``, never into a backend's folder;
- ``progress`` means the same in ``run`` and ``compare`` (a bool; ``run`` also takes a callback);
- Ctrl-C: ``tune`` exits 130 with one line (trials finished, how to resume), ``compare`` keeps
  the backends that finished, a worker process stops without a traceback;
- ``compare`` refuses an output folder holding another spec's results;
- TensorFlow's start-up banners are hidden unless ``--verbose``; Keras on torch or JAX never
  imports TensorFlow; ``duofit backends`` aligns its columns; ``parity`` shows progress.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

from duofit.common.errors import DataError, SpecError
from tests.test_cli import _cli

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "examples" / "seed.toml"
BANNERS = ("absl::InitializeLog", "oneDNN custom operations")


@pytest.fixture(autouse=True)
def _plain_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No traceback re-raising (DUOFIT_DEBUG) and no --verbose left over from another test."""
    monkeypatch.delenv("DUOFIT_DEBUG", raising=False)
    monkeypatch.setenv("DUOFIT_VERBOSE", "0")  # restored afterwards, also when a test's --verbose sets it


def _tiny(tmp_path: Path, name: str = "seed", epochs: int = 3, n_samples: int = 200) -> Path:
    doc = tomllib.loads(SEED.read_text(encoding="utf-8"))
    doc["name"] = name
    doc["data"]["params"]["n_samples"] = n_samples
    doc["train"]["epochs"] = epochs
    doc["train"]["threads"] = 1
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def _python(code: str, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in ("DUOFIT_DEBUG", "DUOFIT_VERBOSE")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout
    )


# --------------------------------------------------------------------------- convert's folder
def test_default_convert_folder_cannot_be_a_backend_folder() -> None:
    from duofit.common.registry import BACKENDS
    from duofit.parity.convert import default_out

    for src in BACKENDS:
        for to in BACKENDS:
            out = default_out(Path("results/seed") / src, to)
            assert out.parent == Path("results/seed/converted") and out.name not in BACKENDS
    assert default_out("results/seed/keras", "torch") != Path("results/seed/keras-torch")


@pytest.mark.torch
def test_convert_after_a_run_writes_into_converted_and_says_where(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run_dir = tmp_path / "seed" / "torch"
    code, _, err = _cli(capsys, "run", str(_tiny(tmp_path)), "--backend", "torch", "--out", str(run_dir), "-q")
    assert code == 0, err
    code, out, err = _cli(capsys, "convert", str(run_dir), "--to", "torch")
    assert code == 0, err
    expected = tmp_path / "seed" / "converted" / "torch-to-torch"
    assert (expected / "convert.json").is_file() and f"to {expected}/model.safetensors" in out
    assert sorted(p.name for p in (tmp_path / "seed").iterdir()) == ["converted", "torch"]


# --------------------------------------------------------------------------- progress
def test_progress_that_is_not_a_bool_or_callable_is_a_spec_error() -> None:
    import duofit

    with pytest.raises(SpecError, match=r"progress: expected True .* got str"):
        duofit.run(SEED, "torch", progress="yes")  # type: ignore[arg-type]
    with pytest.raises(SpecError, match=r"compare takes True or False"):
        duofit.compare(SEED, ["torch"], progress=lambda *a: None)  # type: ignore[arg-type]


@pytest.mark.torch
def test_run_progress_is_a_bool_or_a_callback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import duofit

    spec = _tiny(tmp_path, epochs=2)
    assert len(duofit.run(spec, "torch", progress=False).history) == 2
    capsys.readouterr()
    duofit.run(spec, "torch", progress=True)
    assert "torch" in capsys.readouterr().err  # the bar's label
    calls: list[tuple[int, int]] = []
    duofit.run(spec, "torch", progress=lambda epoch, epochs, row: calls.append((epoch, epochs)))
    assert calls == [(1, 2), (2, 2)]


# --------------------------------------------------------------------------- compare's output folder
def test_compare_refuses_a_folder_with_another_specs_results(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "results"
    (out / "torch").mkdir(parents=True)
    (out / "torch" / "spec.json").write_text(json.dumps({"name": "multiclass"}), encoding="utf-8")
    code, _, err = _cli(capsys, "compare", str(SEED), "--backends", "torch", "--out", str(out), "-q")
    assert code == 2 and "Traceback" not in err
    assert f"output folder {out} holds results of another spec, 'multiclass'" in err
    assert "choose another output folder (--out) or delete" in err


def test_compare_overwrites_a_folder_of_the_same_spec(tmp_path: Path) -> None:
    from duofit.common.loader import load_spec
    from duofit.runner import check_out_folder

    spec = load_spec(SEED)
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "spec.json").write_text(spec.model_dump_json(), encoding="utf-8")
    (tmp_path / "notes").mkdir()  # folders without a spec.json are not results
    check_out_folder(tmp_path, spec)
    with pytest.raises(DataError) as info:
        check_out_folder(tmp_path, load_spec({**spec.model_dump(), "name": None}))
    assert info.value.path == "out" and "'seed'" in str(info.value)


# --------------------------------------------------------------------------- Ctrl-C
def _interrupt_second_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    """compare() runs torch for real, then Ctrl-C arrives while the second backend runs."""
    import duofit.runner as runner

    real_run = runner.run

    def run(spec: Any, backend: str, **kwargs: Any) -> Any:
        if backend != "torch":
            raise KeyboardInterrupt
        return real_run(spec, backend, **kwargs)

    monkeypatch.setattr(runner, "resolve_backends", lambda names: (["torch", "keras-jax"], {}))
    monkeypatch.setattr(runner, "run", run)


@pytest.mark.torch
def test_an_interrupted_compare_keeps_the_backends_that_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from duofit.runner import ComparisonInterrupted, compare

    _interrupt_second_backend(monkeypatch)
    with pytest.raises(ComparisonInterrupted) as info:
        compare(_tiny(tmp_path), out=tmp_path / "o", isolate=False)
    assert list(info.value.comparison.results) == ["torch"] and info.value.unfinished == ["keras-jax"]
    assert (tmp_path / "o" / "torch" / "result.json").is_file()
    table = (tmp_path / "o" / "compare.csv").read_text(encoding="utf-8").splitlines()
    assert len(table) == 2 and table[1].startswith("torch,")


@pytest.mark.torch
def test_compare_interrupted_on_the_command_line_says_which_did_not_finish(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _interrupt_second_backend(monkeypatch)
    out = tmp_path / "o"
    code, _, err = _cli(capsys, "compare", str(_tiny(tmp_path)), "--out", str(out), "--in-process", "-q")
    assert code == 130 and "Traceback" not in err
    assert (
        err.strip() == f"interrupted: not finished: keras-jax; kept: {out}/compare.csv and {out}/<backend>/ for torch"
    )


def test_a_worker_stops_on_ctrl_c_without_a_traceback(tmp_path: Path) -> None:
    from duofit.common.isolated import write_spec
    from duofit.common.loader import load_spec

    spec_file = write_spec(load_spec(SEED), tmp_path)
    code = (
        "import sys\nfrom duofit.common.isolated import worker_main\n"
        "def body(spec, backend, folder, args):\n    raise KeyboardInterrupt\n"
        f"sys.exit(worker_main('w', [{str(spec_file)!r}, 'torch', {str(tmp_path)!r}], body))\n"
    )
    proc = _python(code, timeout=60)
    assert proc.returncode == 130 and "Traceback" not in proc.stderr and proc.stderr == ""


def test_a_worker_interrupted_alone_interrupts_the_parent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from duofit.common.isolated import run_worker

    fake_python = tmp_path / "python"
    fake_python.write_text("#!/bin/sh\nexit 130\n", encoding="utf-8")
    fake_python.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake_python))
    with pytest.raises(KeyboardInterrupt, match="'torch': its run worker process was interrupted"):
        run_worker("duofit.worker", [], tmp_path, "torch", "run")


def _default_sigint() -> None:
    """Ctrl-C as a terminal delivers it, even where the test runner's process ignores SIGINT (a child inherits that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.skipif(not hasattr(signal, "SIGINT"), reason="needs POSIX signals")
def test_after_ctrl_c_a_worker_that_does_not_stop_is_interrupted(monkeypatch: pytest.MonkeyPatch) -> None:
    import duofit.common.isolated as isolated

    monkeypatch.setattr(isolated, "INTERRUPT_GRACE_S", 0.5)
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,  # a child of a process that ignores SIGINT would ignore it too
    )
    assert child.stdout is not None and child.stdout.readline() == "up\n"
    t0 = time.perf_counter()
    isolated._wind_down(child)
    assert child.returncode is not None and time.perf_counter() - t0 < 10
    assert child.returncode != -signal.SIGKILL  # stopped by our SIGINT, not killed


def _ignore_sigint() -> None:
    """Start the child with SIGINT ignored, as a background job of a script or a runner's worker would."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _catches_sigint(pid: int) -> bool:
    """Whether process ``pid`` has a handler for SIGINT installed (``SigCgt`` in /proc/PID/status)."""
    status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(caught & (1 << (signal.SIGINT - 1)))


@pytest.mark.torch
@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads the signal mask from /proc")
def test_a_worker_started_with_sigint_ignored_still_stops_on_sigint(tmp_path: Path) -> None:
    import duofit

    spec = duofit.load_spec(
        {
            "data": {"kind": "make_classification", "params": {"n_samples": 200}},
            "model": {"layers": [{"type": "dense", "units": 1}]},
            "loss": {"type": "binary_crossentropy"},
            "train": {"epochs": 100_000, "batch_size": 8},
        }
    )
    (tmp_path / "spec.json").write_text(spec.model_dump_json(), encoding="utf-8")
    child = subprocess.Popen(
        [sys.executable, "-m", "duofit.worker", str(tmp_path / "spec.json"), "torch", str(tmp_path / "w")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ignore_sigint,
    )
    try:
        deadline = time.monotonic() + 60
        while not _catches_sigint(child.pid) and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert child.poll() is None, child.stderr.read() if child.stderr else ""
        child.send_signal(signal.SIGINT)  # what the parent sends to stop a worker after Ctrl-C
        # 130: stopped by KeyboardInterrupt; -SIGINT: a SIGINT that arrived before the worker's own
        # handling began ends it as Python ends on an unhandled Ctrl-C. The parent reads both as
        # interrupted (isolated.run_worker); ignoring it would leave the worker running.
        assert child.wait(timeout=60) in (130, -signal.SIGINT)
        assert child.stderr is not None and "Traceback" not in child.stderr.read()
    finally:
        child.kill()
        child.wait()


@pytest.mark.torch
@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "killpg"), reason="needs POSIX process groups")
def test_interrupted_tune_exits_130_with_one_line(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) while trial 1 trains."""
    space = tmp_path / "space.json"
    space.write_text(
        json.dumps(
            {
                "params": [
                    {"field": "optimizer.lr", "type": "float", "low": 1e-3, "high": 0.1, "grid": [0.1, 0.01, 0.001]}
                ]
            }
        ),
        encoding="utf-8",
    )
    spec = _tiny(tmp_path, epochs=400)
    storage = tmp_path / "tune.db"
    cmd = [
        sys.executable,
        "-m",
        "duofit",
        "tune",
        str(spec),
        "--space",
        str(space),
        "--search",
        "grid",
        "--backend",
        "torch",
        "--storage",
        str(storage),
        "--study",
        "s",
        "--out",
        str(tmp_path / "t"),
    ]
    env = {k: v for k, v in os.environ.items() if k != "DUOFIT_DEBUG"}
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=_default_sigint,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "trial   0 COMPLETE" in first, first + (proc.stderr.read() if proc.stderr else "")
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Trial 1 failed" not in err  # Optuna's report of the interrupt
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert (
        lines[0].startswith("interrupted: trials finished: 1 in study 's'") and "Run the same command again" in lines[0]
    )


# --------------------------------------------------------------------------- output noise
def test_backends_columns_fit_the_longest_name(capsys: pytest.CaptureFixture[str]) -> None:
    from duofit.common.backends_info import backend_rows

    code, out, _ = _cli(capsys, "backends")
    assert code == 0
    rows = backend_rows()
    lines = [line for line in out.splitlines() if not line.lstrip().startswith("devices:")]
    starts = {line.index(row["framework"], len(row["name"])) for line, row in zip(lines, rows, strict=True)}
    assert len(starts) == 1 and starts.pop() > max(len(r["name"]) for r in rows)


def test_verbose_is_an_option_of_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(capsys, "validate", str(SEED), "--verbose")
    assert code == 0 and "valid" in out and os.environ.get("DUOFIT_VERBOSE") == "1"


_BANNER_CODE = """
import os, sys
from duofit.backends.kerasenv import native_banners_hidden
with native_banners_hidden():
    os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
    os.write(2, b"I0000 00:00:1796019379.299054    4274 port.cc:153] oneDNN custom operations are on.\\n")
    os.write(2, b"a real warning\\n")
    print("python stderr", file=sys.stderr)
print("done", file=sys.stderr)
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_start_up_banners_are_hidden_unless_verbose(verbose: bool) -> None:
    proc = _python(_BANNER_CODE, env={"DUOFIT_VERBOSE": "1" if verbose else "0"}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines()[-3:] == ["a real warning", "python stderr", "done"]  # the rest, in order
    assert [banner in proc.stderr for banner in BANNERS] == [verbose, verbose]


@pytest.mark.keras
def test_keras_prints_no_tensorflow_banner(tmp_path: Path) -> None:
    code = f"import duofit; duofit.run({str(_tiny(tmp_path, epochs=1))!r}, 'keras')"
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    assert not any(b in proc.stderr for b in BANNERS), proc.stderr


_NO_TF_CODE = """
import sys, tempfile, pathlib
import duofit
from duofit.common.data import load_dataset
from duofit.common.loader import load_spec
from duofit.common.registry import get_backend
from duofit.parity.worker import probe
backend, spec = sys.argv[1], load_spec(sys.argv[2])
ds = load_dataset(spec)
probe(spec, ds, backend, strict=False)                       # what parity records
res = duofit.run(spec, backend=backend, record_steps=True)   # a fit
folder = pathlib.Path(tempfile.mkdtemp())
for fmt in (".weights.h5", ".keras"):                        # what convert writes and reads
    get_backend(backend).save_weights(spec, res.weights, folder / f"model{fmt}", ds.x_train.shape[1:])
    get_backend(backend).load_weights(spec, folder / f"model{fmt}", ds.x_train.shape[1:])
print(sorted(m for m in ("tensorflow", "jax", "torch") if m in sys.modules))
"""


@pytest.mark.parametrize(
    ("backend", "framework"),
    [
        pytest.param("keras-jax", "jax", marks=pytest.mark.keras_jax),
        pytest.param("keras-torch", "torch", marks=pytest.mark.keras_torch),
    ],
)
def test_keras_on_torch_or_jax_never_imports_tensorflow(tmp_path: Path, backend: str, framework: str) -> None:
    spec = _tiny(tmp_path, epochs=2, n_samples=100)
    env = {k: v for k, v in os.environ.items() if k != "DUOFIT_DEBUG"}
    proc = subprocess.run(
        [sys.executable, "-c", _NO_TF_CODE, backend, str(spec)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    loaded = proc.stdout.strip().splitlines()[-1]
    assert "tensorflow" not in loaded and framework in loaded, loaded
    assert not any(b in proc.stderr for b in BANNERS), proc.stderr


@pytest.mark.parity
@pytest.mark.slow
def test_parity_shows_which_backend_runs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = _cli(capsys, "parity", str(_tiny(tmp_path, epochs=1, n_samples=100)), "--out", str(tmp_path / "p"))
    assert code in (0, 4), err
    assert "parity [1/2] torch: probing the first step, then training 1 epochs" in err
    assert "parity [2/2] keras: done in" in err and "stage" in out


def test_parity_quiet_shows_no_progress(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import duofit.parity

    seen: dict[str, Any] = {}

    class Report:
        passed = True

        def text(self) -> str:
            return "report"

    def parity(spec: Any, **kwargs: Any) -> Report:
        seen.update(kwargs)
        return Report()

    monkeypatch.setattr(duofit.parity, "parity", parity)
    for flags, shown in (([], True), (["-q"], False)):
        code, out, _ = _cli(capsys, "parity", str(SEED), "--out", "unused", *flags)
        assert code == 0 and out.startswith("report") and seen["progress"] is shown


def test_parity_set_naming_an_unknown_backend_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(capsys, "parity", str(SEED), "--set", "nosuch:optimizer.lr=0.1")
    assert code == 2 and "expected FIELD=VALUE (both backends) or BACKEND:FIELD=VALUE" in err
