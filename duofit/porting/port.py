"""``duofit port``: import a model, write its training script for the other framework, prove parity.

One folder holds everything: the spec and the model's weights, the standalone training
script for the target framework (with its data), the parity report between the source's
framework and the target (every stage, and the named causes where they differ), and a short
README. The folder is built aside and moved into place only when complete, so a failed or
killed port leaves nothing half-written.

Example:
    Needs both frameworks, so not run as a doctest:

    >>> result = port("model.keras", to="torch", base="base.toml", out="port/")  # doctest: +SKIP
    >>> result["passed"]  # doctest: +SKIP
    True
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from duofit.common.errors import SpecError
from duofit.common.io import atomic_write_text, write_json
from duofit.common.loader import load_spec
from duofit.porting.export import EXPORTERS, export_script
from duofit.porting.sources import import_source, save_imported, source_framework

if TYPE_CHECKING:
    from duofit.parity.report import ParityReport

__all__ = ["PORT_FILES", "port"]

# What a port folder holds, for the README and the tests
PORT_FILES = ("spec.toml", "spec.weights.npz", "train_{to}.py", "train_{to}.npz", "parity/", "README.md", "port.json")


def _checked_out(out: str | Path, overwrite: bool) -> Path:
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise SpecError(f"--out: {path} exists and is not a folder", path="out")
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise SpecError(f"--out: {path} exists and is not empty; choose a new folder or pass --overwrite", path="out")
    return path


def _readme(source: str, src_fw: str, to: str, notes: list[str], report: ParityReport, strict: bool) -> str:
    verdict = "trains the same" if report.passed else "does not train the same (see the causes below)"
    lines = [
        f"# Port of {source} ({src_fw}) to {to}",
        "",
        f"The {to} training script `train_{to}.py` {verdict} as the {src_fw} model, "
        f"checked by `duofit parity` ({'strict: float64 and identical formulas' if strict else 'default mode'}).",
        "",
        "## Files",
        "- `spec.toml`: the model as a duofit spec; `spec.weights.npz`: its weights (the start of training)",
        f"- `train_{to}.py` + `train_{to}.npz`: standalone {to} training script and its data; "
        f"run `python train_{to}.py --history history.json`",
        "- `parity/`: the parity report (parity.json, parity.csv, steps.csv, parity.png) and both runs",
        "",
        "## What was carried over",
    ]
    lines += [f"- {note}" for note in notes] or ["- the layers and weights; nothing else needed a choice"]
    lines += ["", "## Parity", "", "```", report.text(), "```", ""]
    if not report.passed:
        lines += [
            "The causes above say what the two frameworks compute differently. To check that the port itself is "
            "exact, compare with identical formulas in float64: add `--strict` (every stage should then agree to "
            "about 1e-12); the strict script is `duofit export spec.toml --to " + to + " --strict`.",
            "",
        ]
    lines += [
        "Check again after a change: "
        f"`duofit parity spec.toml --backends {src_fw},{to}{' --strict' if strict else ''}`",
        "",
    ]
    return "\n".join(lines)


def _run_parity(spec_path: Path, backends: tuple[str, str], strict: bool, epochs: int | None, folder: Path) -> Any:
    from duofit.parity import parity

    return parity(load_spec(spec_path), strict=strict, epochs=epochs, backends=backends, out=folder)


def port(
    source: Any,
    to: str,
    base: str | Path | Mapping[str, Any] | None,
    out: str | Path,
    *,
    strict: bool = False,
    epochs: int | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Port ``source`` to framework ``to`` into the folder ``out``.

    Args:
        source: A ``.keras`` archive, a torch ``module:function`` factory, or a live model.
        to: ``"torch"`` or ``"keras"``: the other framework.
        base: The base spec (data and the settings the source does not state).
        out: The port folder; refused when it exists and is not empty, unless ``overwrite``.
        strict: Compare in strict mode (float64, identical formulas) and export strict code.
        epochs: Override ``train.epochs`` for the parity check.
        overwrite: Replace a non-empty ``out``.

    Returns:
        The manifest written as ``port.json``: source, target, passed, failing stages,
        cause ids, notes, files, and ``out``.

    Raises:
        SpecError / DataError: bad source, base or target (nothing is written).
    """
    src_fw = source_framework(source)
    if to not in EXPORTERS:
        raise SpecError(f"--to: unknown target {to!r}; allowed: {', '.join(sorted(EXPORTERS))}", path="to")
    if to == src_fw:
        raise SpecError(f"--to: the model is already a {src_fw} model; port it to the other framework", path="to")
    folder = _checked_out(out, overwrite)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".port-", dir=folder.parent) as tmp:
        stage = Path(tmp) / "port"
        stage.mkdir()
        manifest, report = _write_port(stage, source, base, (src_fw, to), strict, epochs)
        if folder.exists():
            shutil.rmtree(folder)
        shutil.move(str(stage), str(folder))
    return {**manifest, "out": str(folder), "report": report.text()}


def _write_port(
    stage: Path,
    source: Any,
    base: str | Path | Mapping[str, Any] | None,
    pair: tuple[str, str],
    strict: bool,
    epochs: int | None,
) -> tuple[dict[str, Any], ParityReport]:
    """Import, export, check parity and describe it, all inside ``stage``; the manifest and the report."""
    src_fw, to = pair
    label = str(source) if isinstance(source, (str, Path)) else f"a live {type(source).__name__}"
    spec, notes, _ = import_source(source, base, stage / "imported.npz")
    spec_path, weights_path = save_imported(spec, stage / "spec.toml", header=f"Imported by duofit port from {label}")
    (stage / "imported.npz").unlink()
    files = export_script(spec_path, to, stage / f"train_{to}.py", strict=strict)
    report = _run_parity(spec_path, pair, strict, epochs, stage / "parity")
    if epochs is not None:
        notes = [*notes, f"parity checked over {epochs} epochs (--epochs); the script trains {spec.train.epochs}"]
    atomic_write_text(stage / "README.md", _readme(label, src_fw, to, notes, report, strict))
    failed = [s for s in report.stages if s.status == "fail"]
    manifest = {
        "source": label,
        "source_framework": src_fw,
        "target": to,
        "strict": strict,
        "passed": report.passed,
        "failed_stages": [s.stage for s in failed],
        "causes": sorted({c.id for s in failed for c in s.causes}),
        "notes": notes,
        "files": sorted(p.name for p in [spec_path, weights_path, *files]),
    }
    write_json(stage / "port.json", manifest)
    return manifest, report
