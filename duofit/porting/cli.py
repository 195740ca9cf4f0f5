"""``duofit import``, ``duofit export`` and ``duofit port`` subcommands."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["add_commands"]

EXIT_PARITY_FAILED = 4  # the port was written, and its parity check found a difference (named in its README)


def _importable_here() -> None:
    """Let a factory ``module:function`` be found in the current folder, as ``python -m`` would."""
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())


def _cmd_import(args: argparse.Namespace) -> int:
    from duofit.porting.sources import import_source, save_imported, spec_outputs

    spec_outputs(args.out, overwrite=args.overwrite)  # before the model is read
    _importable_here()
    with tempfile.TemporaryDirectory(prefix="duofit-import-") as tmp:
        spec, notes, imported = import_source(args.source, args.base, Path(tmp) / "weights.npz")
        header = f"Imported by duofit import from {args.source}"
        spec_path, weights = save_imported(spec, args.out, header=header, overwrite=args.overwrite)
    print(
        f"imported {imported.framework} model {args.source}: {len(spec.model.layers)} layers, "
        f"{sum(v.size for v in imported.weights.values()):,} parameters"
    )
    for note in notes:
        print(f"  note: {note}")
    print(f"written: {spec_path} and {weights}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from duofit.porting.export import export_script

    files = export_script(args.spec, args.to, args.out, strict=args.strict)
    print(f"written: {', '.join(str(f) for f in files)}")
    print(f"run it: python {files[0]} --history history.json")
    return 0


def _cmd_port(args: argparse.Namespace) -> int:
    from duofit.porting.port import port

    _importable_here()
    result = port(
        args.source, args.to, args.base, args.out, strict=args.strict, epochs=args.epochs, overwrite=args.overwrite
    )
    print(result["report"])
    for note in result["notes"]:
        print(f"  note: {note}")
    print(f"written: {result['out']}/ ({', '.join(result['files'])}, parity/, README.md, port.json)")
    return 0 if result["passed"] else EXIT_PARITY_FAILED


def add_commands(sub: Any) -> None:
    """Register ``import``, ``export`` and ``port``."""
    p = sub.add_parser("import", help="read a .keras archive or a torch module factory into a spec (+ its weights)")
    p.add_argument("source", help="model.keras, or a torch factory module:function (called with no arguments)")
    p.add_argument(
        "--base", required=True, help="a spec without a model: the data, and the loss etc. if the source has none"
    )
    p.add_argument("--out", "-o", required=True, help="the spec file to write (.toml); its weights go beside it")
    p.add_argument("--overwrite", action="store_true", help="replace an existing spec and weight file")
    p.set_defaults(func=_cmd_import)

    p = sub.add_parser("export", help="write a standalone torch or Keras training script for a spec")
    p.add_argument("spec")
    p.add_argument("--to", required=True, choices=("torch", "keras"))
    p.add_argument("--out", "-o", required=True, help="the script (.py); its data (.npz) goes beside it")
    p.add_argument("--strict", action="store_true", help="write duofit's strict-mode formulas (float64) as code")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("port", help="import a model, export it to the other framework, and check parity")
    p.add_argument("source", help="model.keras, or a torch factory module:function")
    p.add_argument("--to", required=True, choices=("torch", "keras"))
    p.add_argument("--base", required=True, help="a spec without a model (the data, the training settings)")
    p.add_argument("--out", "-o", required=True, help="the port folder (spec, script, parity report, README)")
    p.add_argument("--strict", action="store_true", help="compare in strict mode (float64, identical formulas)")
    p.add_argument("--epochs", type=int, default=None, help="override train.epochs for the parity check")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")
    p.set_defaults(func=_cmd_port)
