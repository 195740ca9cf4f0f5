"""Safe files: no code runs from a file duofit reads, and nothing is written outside the output folder.

1. A scan of every module under ``duofit/`` (code only: comments and docstrings are ignored)
   for pickle and its relatives, ``eval``/``exec``/``compile``/``__import__`` builtins, shell
   execution, ``torch.load`` without ``weights_only=True``, ``allow_pickle=True``,
   ``safe_mode=False`` and ``load_model`` without an explicit ``safe_mode=True``. The scanner
   is tested on known-bad snippets first, so a passing scan means something.
2. Files duofit reads back refuse pickled content (``load_npz``) and ``save_npz`` refuses to
   write object arrays.
3. Output paths are confined: ``duofit.common.io.confined`` refuses ``..``, absolute paths and
   symlinks that leave the root; a spec ``name`` (which becomes ``results/<name>/``) cannot
   contain a path; ``RunResult.save`` writes only its fixed file names into the folder.
"""

from __future__ import annotations

import ast
import io
import re
import sys
import tokenize
from pathlib import Path

import numpy as np
import pytest

import duofit
from duofit import SpecError
from duofit.common.io import confined, load_npz, save_npz

PACKAGE = Path(duofit.__file__).resolve().parent

# Modules that deserialize code or arbitrary objects: none of them may be imported by duofit.
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal", "jsonpickle"}
# Builtins that run code given as text, and functions that run a shell.
UNSAFE_BUILTINS = {"eval", "exec", "compile", "__import__", "execfile"}
UNSAFE_CALLS = {"os.system", "os.popen", "pd.read_pickle", "pandas.read_pickle", "yaml.load", "yaml.unsafe_load"}
# Textual patterns, matched on code tokens only (comments and strings removed): what SECURITY.md rules out.
TEXT_PATTERNS = {
    "pickle": re.compile(r"\bpickle\b"),  # allow_pickle is one identifier: not matched
    "eval(": re.compile(r"(?<![\w.])eval\s*\("),  # model.eval() is a method: not matched
    "exec(": re.compile(r"(?<![\w.])exec\s*\("),
    "allow_pickle=True": re.compile(r"allow_pickle\s*=\s*True"),
    "safe_mode=False": re.compile(r"safe_mode\s*=\s*False"),
}


def _dotted(node: ast.AST) -> str:
    """``a.b.c`` for a Name/Attribute chain, else ``""``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else node.attr
    return ""


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_const(node: ast.expr | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def _code_only(source: str) -> str:
    """The source with comments and string literals blanked out (positions kept)."""
    lines = [list(line) for line in source.splitlines(keepends=True)]
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in (tokenize.COMMENT, tokenize.STRING):
            continue
        (srow, scol), (erow, ecol) = tok.start, tok.end
        for row in range(srow, erow + 1):
            line = lines[row - 1]
            start = scol if row == srow else 0
            end = ecol if row == erow else len(line)
            for col in range(start, end):
                if line[col] != "\n":
                    line[col] = " "
    return "".join("".join(line) for line in lines)


def scan(source: str, filename: str = "<snippet>") -> list[str]:
    """Every unsafe construct in ``source``, as ``file:line: what`` strings."""
    problems: list[str] = []
    tree = ast.parse(source, filename)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in UNSAFE_MODULES:
                    problems.append(f"{filename}:{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNSAFE_MODULES:
            problems.append(f"{filename}:{node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if isinstance(node.func, ast.Name) and name in UNSAFE_BUILTINS:
                problems.append(f"{filename}:{node.lineno}: builtin {name}()")
            if name in UNSAFE_CALLS or name.endswith((".to_pickle", ".read_pickle")):
                problems.append(f"{filename}:{node.lineno}: {name}()")
            if name in ("torch.load",) and not _is_const(_keyword(node, "weights_only"), True):
                problems.append(f"{filename}:{node.lineno}: torch.load without weights_only=True")
            if name.endswith("load_model") and not _is_const(_keyword(node, "safe_mode"), True):
                problems.append(f"{filename}:{node.lineno}: {name} without safe_mode=True")
            if _is_const(_keyword(node, "allow_pickle"), True):
                problems.append(f"{filename}:{node.lineno}: allow_pickle=True")
            if _is_const(_keyword(node, "safe_mode"), False):
                problems.append(f"{filename}:{node.lineno}: safe_mode=False")
            if _is_const(_keyword(node, "shell"), True):
                problems.append(f"{filename}:{node.lineno}: subprocess with shell=True")
    code = _code_only(source)
    for what, pattern in TEXT_PATTERNS.items():
        if pattern.search(code):
            problems.append(f"{filename}: code contains {what!r}")
    return problems


BAD_SNIPPETS = {
    "import pickle": "import pickle\n",
    "from pickle": "from pickle import loads\n",
    "joblib": "import joblib\n",
    "eval": "x = eval('1 + 1')\n",
    "exec": "exec(text)\n",
    "compile": "code = compile(text, 'f', 'exec')\n",
    "__import__": "m = __import__(name)\n",
    "torch.load": "import torch\nw = torch.load(path)\n",
    "torch.load weights_only=False": "import torch\nw = torch.load(path, weights_only=False)\n",
    "np.load allow_pickle": "import numpy as np\na = np.load(path, allow_pickle=True)\n",
    "keras safe_mode=False": "m = keras.saving.load_model(path, safe_mode=False)\n",
    "keras load_model default": "m = keras.models.load_model(path)\n",
    "read_pickle": "import pandas as pd\nf = pd.read_pickle(path)\n",
    "to_pickle": "frame.to_pickle(path)\n",
    "shell": "import subprocess\nsubprocess.run(cmd, shell=True)\n",
    "os.system": "import os\nos.system(cmd)\n",
}
GOOD_SNIPPETS = {
    "method eval": "model.eval()\n",
    "docstring": '"""No pickle anywhere; we never eval( or exec( a file."""\n',
    "comment": "x = 1  # pickle and eval( are banned\n",
    "np.load allow_pickle=False": "import numpy as np\na = np.load(path, allow_pickle=False)\n",
    "torch.load weights_only=True": "import torch\nw = torch.load(path, weights_only=True)\n",
    "keras safe_mode=True": "m = keras.saving.load_model(path, safe_mode=True, compile=False)\n",
}


@pytest.mark.parametrize("snippet", list(BAD_SNIPPETS.values()), ids=list(BAD_SNIPPETS))
def test_scanner_flags_unsafe_code(snippet: str) -> None:
    assert scan(snippet), f"the scanner missed: {snippet!r}"


@pytest.mark.parametrize("snippet", list(GOOD_SNIPPETS.values()), ids=list(GOOD_SNIPPETS))
def test_scanner_allows_safe_code(snippet: str) -> None:
    assert scan(snippet) == []


def test_package_has_no_unsafe_code() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20, f"expected the duofit package under {PACKAGE}"
    problems = [p for f in files for p in scan(f.read_text(encoding="utf-8"), str(f.relative_to(PACKAGE.parent)))]
    assert problems == [], "unsafe constructs in duofit/:\n" + "\n".join(problems)


# --------------------------------------------------------------------------- files read back
def test_load_npz_refuses_pickled_object_arrays(tmp_path: Path) -> None:
    path = tmp_path / "weights.npz"
    np.savez(path, ok=np.arange(3), evil=np.array([{"a": 1}], dtype=object))  # object arrays are pickled
    with pytest.raises(ValueError, match="allow_pickle"):
        load_npz(path)


def test_save_npz_refuses_object_arrays(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="object"):
        save_npz(tmp_path / "w.npz", {"evil": np.array([object()], dtype=object)})
    assert not (tmp_path / "w.npz").exists()


# --------------------------------------------------------------------------- confinement
@pytest.mark.parametrize(
    "relative",
    ["..", "../x", "a/../../x", "a/b/../../../x", "./../x", "/etc/passwd", "/tmp/x", "//x"],
)
def test_confined_refuses_escapes(tmp_path: Path, relative: str) -> None:
    root = tmp_path / "out"
    root.mkdir()
    with pytest.raises(ValueError, match="leaves the output folder"):
        confined(root, relative)


@pytest.mark.parametrize(("relative", "expected"), [("a.csv", "a.csv"), ("a/b.csv", "a/b.csv"), ("a/../b", "b")])
def test_confined_keeps_inside_paths(tmp_path: Path, relative: str, expected: str) -> None:
    root = tmp_path / "out"
    root.mkdir()
    assert confined(root, relative) == (root / expected).resolve()


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_confined_refuses_symlink_out(tmp_path: Path) -> None:
    root = tmp_path / "out"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)  # a link inside the root that points outside it
    with pytest.raises(ValueError, match="leaves the output folder"):
        confined(root, "link/secret.txt")


@pytest.mark.parametrize(
    "name", ["../../escape", "/tmp/abs", "a/b", "a\\b", "..", ".", "C:evil", "x\x00y", "tab\tname"]
)
def test_spec_name_cannot_be_a_path(seed_spec_dict: dict, name: str) -> None:
    # the CLI writes to results/<name>/ (and tuning names studies after it)
    seed_spec_dict["name"] = name
    with pytest.raises(SpecError) as info:
        duofit.load_spec(seed_spec_dict)
    assert info.value.path == "name" and "folder name" in str(info.value)


@pytest.mark.parametrize("name", ["seed", "my run-1.2_b", "", "été", "a.b"])
def test_spec_name_plain_names_are_fine(seed_spec_dict: dict, name: str) -> None:
    seed_spec_dict["name"] = name
    assert duofit.load_spec(seed_spec_dict).name == name


def test_spec_object_with_escaping_name_is_refused_too(seed_spec_dict: dict) -> None:
    # a Spec built without load_spec (Spec.model_validate) is re-checked when run() loads it
    seed_spec_dict["name"] = "../../escape"
    spec = duofit.Spec.model_validate(seed_spec_dict)
    with pytest.raises(SpecError) as info:
        duofit.load_spec(spec)
    assert info.value.path == "name"


def test_result_save_writes_only_its_own_files(tmp_path: Path, seed_spec_dict: dict) -> None:
    import pandas as pd

    from duofit.common.result import RunResult

    spec = duofit.load_spec(seed_spec_dict)
    result = RunResult(
        backend="torch",
        spec=spec,
        history=pd.DataFrame({"epoch": [1], "loss": [0.5], "val_loss": [0.6]}),
        metrics={"accuracy": 0.9},
        predictions=np.zeros((4, 1)),
        y_test=np.zeros(4, dtype=np.int64),
        timings={"total_s": 1.0},
        environment={},
        weights={"layers.0.kernel": np.zeros((2, 10))},
    )
    out = tmp_path / "out"
    result.save(out)
    written = {p.relative_to(out).as_posix() for p in out.rglob("*")}
    expected = {"history.csv", "result.json", "spec.json", "weights.npz", "predictions.npz", "steps.npz"}
    assert written == expected, f"unexpected files: {written ^ expected}"
    assert {p.name for p in tmp_path.iterdir()} == {"out"}, "something was written next to the output folder"
