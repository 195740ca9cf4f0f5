"""The command line: exit codes, one-paragraph errors on stderr, never a traceback.

Exit codes: 0 success, 2 bad input (spec, data, backend), 3 training diverged.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from duofit.cli import main
from duofit.common import registry

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "examples" / "seed.toml"


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    """DUOFIT_DEBUG=1 re-raises internal errors; these tests check the user-facing behaviour."""
    monkeypatch.delenv("DUOFIT_DEBUG", raising=False)


def _seed() -> dict[str, Any]:
    return tomllib.loads(SEED.read_text(encoding="utf-8"))


def _write_json(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _subprocess(*argv: str, timeout: float = 60) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DUOFIT_DEBUG"}
    proc = subprocess.run(
        [sys.executable, "-m", "duofit.cli", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr


def _assert_user_error(code: int, out: str, err: str, *needles: str, exit_code: int = 2) -> None:
    assert code == exit_code, f"exit code {code}, expected {exit_code}\nstdout:\n{out}\nstderr:\n{err}"
    assert err.startswith("error:"), f"stderr does not start with 'error:':\n{err}"
    assert "Traceback" not in out and "Traceback" not in err
    for needle in needles:
        assert needle in err, f"stderr does not mention {needle!r}:\n{err}"


# --------------------------------------------------------------------------- error files
@pytest.fixture
def bad_field_spec(tmp_path: Path) -> Path:
    doc = _seed()
    doc["optimizer"]["lr"] = -1
    return _write_json(tmp_path / "bad_lr.json", doc)


@pytest.fixture
def unknown_key_spec(tmp_path: Path) -> Path:
    doc = _seed()
    doc["train"]["epoch"] = 5  # typo of epochs
    return _write_json(tmp_path / "typo.json", doc)


@pytest.fixture
def bad_csv_spec(tmp_path: Path) -> Path:
    csv = tmp_path / "data.csv"
    csv.write_text("a,b,y\n" + "".join(f"{i},{2 * i},{i % 2}\n" for i in range(20)), encoding="utf-8")
    doc = {
        "data": {"kind": "csv", "path": "data.csv", "target": "label"},  # relative to the spec file
        "model": {"layers": [{"type": "dense", "units": 1}]},
        "loss": {"type": "binary_crossentropy", "from_logits": True},
        "train": {"epochs": 1},
    }
    return _write_json(tmp_path / "csv_spec.json", doc)


@pytest.fixture
def non_numeric_csv_spec(tmp_path: Path) -> Path:
    csv = tmp_path / "text.csv"
    csv.write_text("a,b,y\n" + "".join(f"{i},x{i},{i % 2}\n" for i in range(20)), encoding="utf-8")
    doc = {
        "data": {"kind": "csv", "path": str(csv), "target": "y"},
        "model": {"layers": [{"type": "dense", "units": 1}]},
        "loss": {"type": "binary_crossentropy"},
    }
    return _write_json(tmp_path / "text_spec.json", doc)


@pytest.fixture
def torch_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the torch backend look uninstalled (its requirement cannot be found)."""
    info = registry.BACKENDS["torch"]
    monkeypatch.setitem(registry.BACKENDS, "torch", dataclasses.replace(info, requires=("duofit_no_such_framework",)))


# --------------------------------------------------------------------------- in-process errors
@pytest.mark.parametrize("command", ["validate", "run", "compare"])
def test_bad_spec_field(capsys: pytest.CaptureFixture[str], bad_field_spec: Path, command: str) -> None:
    code, out, err = _cli(capsys, command, str(bad_field_spec))
    _assert_user_error(code, out, err, "optimizer.lr", "-1", "greater than 0")


@pytest.mark.parametrize("command", ["validate", "run"])
def test_unknown_key(capsys: pytest.CaptureFixture[str], unknown_key_spec: Path, command: str) -> None:
    code, out, err = _cli(capsys, command, str(unknown_key_spec))
    _assert_user_error(code, out, err, "train.epoch", "unknown key 'epoch'", "epochs")


def test_bad_toml_syntax(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    spec_file = tmp_path / "broken.toml"
    spec_file.write_text("[data\nkind = 'iris'\n", encoding="utf-8")
    code, out, err = _cli(capsys, "validate", str(spec_file))
    _assert_user_error(code, out, err, "not valid TOML", str(spec_file))


@pytest.mark.parametrize("command", ["validate", "compare"])
def test_bad_csv_missing_column(capsys: pytest.CaptureFixture[str], bad_csv_spec: Path, command: str) -> None:
    code, out, err = _cli(capsys, command, str(bad_csv_spec))
    _assert_user_error(code, out, err, "data.target", "'label'", "a, b, y")


def test_bad_csv_non_numeric(capsys: pytest.CaptureFixture[str], non_numeric_csv_spec: Path) -> None:
    code, out, err = _cli(capsys, "validate", str(non_numeric_csv_spec))
    _assert_user_error(code, out, err, "data.features", "non-numeric")


@pytest.mark.parametrize("command", ["validate", "run", "compare"])
def test_missing_spec_file(capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str) -> None:
    missing = tmp_path / "nowhere.toml"
    code, out, err = _cli(capsys, command, str(missing))
    _assert_user_error(code, out, err, "not found", str(missing))


def test_run_unknown_backend(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(capsys, "run", "examples/seed.toml", "--backend", "nope")
    _assert_user_error(code, out, err, "'nope'", "keras, keras-jax, keras-torch, torch")


def test_compare_unknown_backend(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = _cli(capsys, "compare", "examples/seed.toml", "--backends", "nope", "--out", str(tmp_path / "o"))
    _assert_user_error(code, out, err, "'nope'", "keras, keras-jax, keras-torch, torch")


@pytest.mark.usefixtures("torch_missing")
def test_run_backend_not_installed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = _cli(capsys, "run", "examples/seed.toml", "--backend", "torch", "--out", str(tmp_path / "o"), "-q")
    _assert_user_error(code, out, err, "pip install 'duofit[torch]'", "'duofit_no_such_framework'")
    assert not (tmp_path / "o").exists()  # nothing was trained or written


@pytest.mark.usefixtures("torch_missing")
def test_compare_backend_not_installed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = _cli(
        capsys, "compare", "examples/seed.toml", "--backends", "torch", "--out", str(tmp_path / "o"), "-q"
    )
    _assert_user_error(code, out, err, "pip install 'duofit[torch]'")


@pytest.mark.usefixtures("torch_missing")
def test_backends_lists_missing_backend(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(capsys, "backends")
    assert code == 0 and err == ""
    torch_line = next(line for line in out.splitlines() if line.startswith("torch"))
    assert "missing: pip install 'duofit[torch]'" in torch_line


# --------------------------------------------------------------------------- in-process success
def test_validate_seed(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(capsys, "validate", "examples/seed.toml")
    assert code == 0, err
    assert "valid" in out and "task binary" in out and "2 features" in out
    assert "800 train" in out and "200 test" in out
    assert err == ""


def test_schema_is_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(capsys, "schema")
    assert code == 0
    schema = json.loads(out)
    assert {"data", "model", "loss"} <= set(schema["properties"])
    assert {"data", "model", "loss"} <= set(schema["required"])


def test_backends_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(capsys, "backends", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [row["name"] for row in rows] == list(registry.BACKENDS)
    for row in rows:
        assert row["installed"] == registry.is_installed(row["name"])
        assert row["extra"] == registry.BACKENDS[row["name"]].extra


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run"])  # the spec argument is missing
    assert info.value.code == 2
    _, err = capsys.readouterr()
    assert "Traceback" not in err and "spec" in err


# --------------------------------------------------------------------------- real subprocesses
def test_subprocess_validate_seed() -> None:
    code, out, err = _subprocess("validate", "examples/seed.toml")
    assert code == 0, err
    assert "valid" in out
    assert "Traceback" not in out + err


def test_subprocess_bad_spec_field(bad_field_spec: Path) -> None:
    code, out, err = _subprocess("validate", str(bad_field_spec))
    _assert_user_error(code, out, err, "optimizer.lr")


def test_subprocess_unknown_backend() -> None:
    code, out, err = _subprocess("run", "examples/seed.toml", "--backend", "nope", "-q")
    _assert_user_error(code, out, err, "'nope'", "keras, keras-jax, keras-torch, torch")


def test_subprocess_bad_csv(bad_csv_spec: Path) -> None:
    code, out, err = _subprocess("validate", str(bad_csv_spec))
    _assert_user_error(code, out, err, "data.target")


# --------------------------------------------------------------------------- training (torch)
def _tiny_spec(tmp_path: Path) -> Path:
    doc = _seed()
    doc["data"]["params"]["n_samples"] = 200
    doc["train"]["epochs"] = 2
    return _write_json(tmp_path / "tiny.json", doc)


@pytest.mark.torch
def test_run_torch_writes_results(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_dir = tmp_path / "o"
    code, out, err = _cli(capsys, "run", str(_tiny_spec(tmp_path)), "--backend", "torch", "--out", str(out_dir), "-q")
    assert code == 0, err
    assert "Traceback" not in out + err
    for name in ("history.csv", "result.json", "weights.npz", "loss_curves.png"):
        assert (out_dir / name).is_file(), f"{name} missing from {sorted(p.name for p in out_dir.iterdir())}"
    result = json.loads((out_dir / "result.json").read_text(encoding="utf-8"))
    assert result["backend"] == "torch" and result["diverged"] is False
    history_lines = (out_dir / "history.csv").read_text(encoding="utf-8").strip().splitlines()
    assert len(history_lines) == 1 + 2  # header + one row per epoch
    assert "backend: torch" in out


@pytest.mark.torch
def test_run_torch_divergence_exits_3(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    doc = _seed()
    doc["optimizer"] = {"type": "sgd", "lr": 1e6}
    doc["train"]["epochs"] = 5
    spec_file = _write_json(tmp_path / "diverge.json", doc)
    out_dir = tmp_path / "o"
    code, out, err = _cli(capsys, "run", str(spec_file), "--backend", "torch", "--out", str(out_dir), "-q")
    _assert_user_error(code, out, err, "diverged", "optimizer.lr", exit_code=3)
    for name in ("history.csv", "result.json", "weights.npz", "loss_curves.png"):
        assert (out_dir / name).is_file(), f"{name} missing after divergence"
    result = json.loads((out_dir / "result.json").read_text(encoding="utf-8"))
    assert result["diverged"] is True and "diverged" in result["message"]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import duofit

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"duofit {duofit.__version__}"


def test_python_dash_m_duofit_is_the_cli() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "duofit", "validate", "examples/seed.toml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "valid" in proc.stdout and "Traceback" not in proc.stderr
