"""The worker-process plumbing shared by ``compare``, ``cv``, ``parity`` and ``tune``: errors cross
the process boundary with their type, message and field path; a crash is reported with its output;
a result is written once, by its worker."""

from __future__ import annotations

from pathlib import Path

import pytest

from duofit.common.errors import BackendNotInstalledError, DataError, DuofitError, SpecError
from duofit.common.isolated import ERROR_FILE, raise_from_file, report_errors, run_worker


def _raise(exc: Exception):  # type: ignore[no-untyped-def]
    def body() -> None:
        raise exc

    return body


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (SpecError("optimizer.lr: must be > 0 (got -1)", path="optimizer.lr"), 2),
        (DataError("data.params.n_samples: too large", path="data.params.n_samples"), 2),
        (BackendNotInstalledError("keras", "tensorflow", "tensorflow"), 2),
    ],
)
def test_a_worker_error_is_raised_again_with_type_message_and_path(tmp_path: Path, exc: Exception, code: int) -> None:
    assert report_errors(tmp_path, _raise(exc)) == code
    with pytest.raises(type(exc)) as info:
        raise_from_file(tmp_path, "keras", "run")
    assert str(info.value) == str(exc)
    if isinstance(exc, (SpecError, DataError)):
        assert info.value.path == exc.path  # type: ignore[attr-defined]


def test_no_error_file_after_success(tmp_path: Path) -> None:
    assert report_errors(tmp_path, lambda: None) == 0
    assert not (tmp_path / ERROR_FILE).exists()


def test_a_worker_that_crashes_is_reported_with_its_exit_code_and_output(tmp_path: Path) -> None:
    with pytest.raises(DuofitError) as info:  # no such module: python exits 1, writes no error file
        run_worker("duofit.common.no_such_worker", [], tmp_path, "torch", "run")
    assert "backend 'torch' failed in its run worker process (exit code 1)" in str(info.value)
    with pytest.raises(DuofitError) as info:
        raise_from_file(tmp_path, "torch", "cross-validation", output="x" * 5000 + "about to fail\n", code=7)
    message = str(info.value)
    assert "'torch'" in message and "cross-validation worker" in message and "exit code 7" in message
    assert message.endswith("about to fail\n") and len(message) < 2200  # only the end of the output


@pytest.mark.parity
def test_a_parity_worker_error_keeps_its_type_and_field_path(tmp_path: Path) -> None:
    """The parent's data load passes; the torch worker's spec (an override) fails in the worker."""
    from duofit.parity import parity

    with pytest.raises(DataError) as info:
        parity("examples/seed.toml", epochs=1, overrides={"torch": ["data.params.nosuch=1"]})
    assert info.value.path == "data.params.nosuch"
    assert str(info.value).startswith("torch: ")  # which of the two backends found it
    assert "make_classification has no parameter 'nosuch'" in str(info.value)


def test_worker_main_reports_a_spec_error_with_its_path(tmp_path: Path) -> None:
    from duofit.common.isolated import worker_main, write_spec
    from duofit.common.loader import load_spec

    spec_file = write_spec(load_spec("examples/seed.toml"), tmp_path)

    def body(spec, backend, folder, args) -> None:  # type: ignore[no-untyped-def]
        raise SpecError(f"train.epochs: bad for {backend}", path="train.epochs")

    assert worker_main("duofit.worker", [str(spec_file), "torch", str(tmp_path)], body) == 2
    with pytest.raises(SpecError) as info:
        raise_from_file(tmp_path, "torch", "run")
    assert info.value.path == "train.epochs" and str(info.value) == "train.epochs: bad for torch"


def test_a_worker_that_streams_its_output_is_reported_without_quoting_it(tmp_path: Path) -> None:
    with pytest.raises(DuofitError) as info:
        run_worker("duofit.common.no_such_worker", [], tmp_path, "torch", "tune", capture=False)
    assert str(info.value) == "backend 'torch' failed in its tune worker process (exit code 1); its output is above"


@pytest.mark.parity
def test_a_multi_backend_tune_worker_error_keeps_its_type_and_field_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parent checks the spec, space and storage but loads no data: the torch worker finds the
    bad data parameter, the keras worker never starts, and the CLI prints one paragraph (exit 2)."""
    import json
    import tomllib

    from duofit.cli import build_parser, main

    doc = tomllib.loads(Path("examples/seed.toml").read_text(encoding="utf-8"))
    doc["data"]["params"]["nosuch"] = 1
    spec = tmp_path / "bad.json"
    spec.write_text(json.dumps(doc), encoding="utf-8")
    argv = ["tune", str(spec), "--space", "examples/space.toml", "--backend", "torch,keras", "--trials", "1"]
    argv += ["--storage", f"sqlite:///{tmp_path / 'tune.db'}", "--out", str(tmp_path / "out")]
    args = build_parser().parse_args(argv)
    with pytest.raises(DataError) as info:
        args.func(args)
    assert info.value.path == "data.params.nosuch"
    assert "make_classification has no parameter 'nosuch'" in str(info.value)
    assert not (tmp_path / "out" / "keras").exists()

    monkeypatch.delenv("DUOFIT_DEBUG", raising=False)
    capsys.readouterr()
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert err.startswith("error: ") and "make_classification has no parameter 'nosuch'" in err
    assert "Traceback" not in out + err


@pytest.mark.parity
def test_parity_writes_each_run_once_into_its_final_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With an output folder the workers write the runs there; the parent writes only the report files."""
    from duofit.common.result import RunResult
    from duofit.parity import parity

    saved: list[Path] = []
    save = RunResult.save

    def counting_save(self: RunResult, folder: str | Path) -> None:
        saved.append(Path(folder))
        save(self, folder)

    monkeypatch.setattr(RunResult, "save", counting_save)
    report = parity("examples/seed.toml", epochs=1, out=tmp_path / "p")
    assert saved == []  # in this process: the runs were written by the workers
    names = {"parity.json", "parity.csv", "steps.csv", "parity.png", "torch", "keras"}
    assert {p.name for p in (tmp_path / "p").iterdir()} == names
    assert RunResult.load(tmp_path / "p" / "keras").steps["loss"].size == report.results["keras"].steps["loss"].size
    report.save(tmp_path / "again")  # elsewhere: the runs are written there too
    assert sorted(saved) == [tmp_path / "again" / "keras", tmp_path / "again" / "torch"]
