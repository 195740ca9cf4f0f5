"""``duofit parity`` and ``duofit convert`` subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["add_commands"]

EXIT_PARITY_FAILED = 4  # the comparison ran, and at least one stage is over its tolerance


def _cmd_parity(args: argparse.Namespace) -> int:
    from duofit.common.choice import parse_names
    from duofit.common.loader import load_spec
    from duofit.parity import parity

    spec = load_spec(args.spec)
    overrides: dict[str, list[str]] = {}
    for item in args.set or []:
        backend, sep, assignment = item.partition(":")
        if not sep or "=" not in assignment:
            from duofit.common.errors import SpecError

            raise SpecError(f"--set {item!r}: expected BACKEND:FIELD=VALUE, e.g. keras:optimizer.decay_kind=decoupled")
        overrides.setdefault(backend, []).append(assignment)
    out = Path(args.out) if args.out else Path("results") / (spec.name or Path(args.spec).stem) / "parity"
    report = parity(
        spec,
        strict=args.strict,
        dtype=args.dtype,
        epochs=args.epochs,
        backends=tuple(parse_names(args.backends) or ()),
        overrides=overrides,
        out=out,
    )
    print(report.text())
    print(f"written: {out}/parity.json, parity.csv, steps.csv, parity.png")
    return 0 if report.passed else EXIT_PARITY_FAILED


def _cmd_convert(args: argparse.Namespace) -> int:
    from duofit.parity.convert import convert

    info = convert(args.src, to=args.to, out=args.out, fmt=args.format)
    print(
        f"wrote {info['target']} model to {args.out or Path(args.src).with_name(Path(args.src).name + '-' + args.to)}/"
        f"{info['file']} (read from {info['read_from']}); test predictions agree: max relative difference "
        f"{info['max_rel_diff']:.2e} <= {info['tolerance']:.0e}"
    )
    return 0


def add_commands(sub: Any) -> None:
    """Register ``parity`` and ``convert`` on the main parser's subparsers."""
    p = sub.add_parser("parity", help="same weights, same batches: compare two backends stage by stage")
    p.add_argument("spec", help="spec file (.toml or .json)")
    p.add_argument("--strict", action="store_true", help="float64 and identical math where the formulas differ")
    p.add_argument("--dtype", choices=["float32", "float64"], help="override train.dtype")
    p.add_argument("--epochs", type=int, help="override train.epochs")
    p.add_argument("--backends", default="torch,keras", help="the two backends to compare (default torch,keras)")
    p.add_argument(
        "--set",
        action="append",
        metavar="BACKEND:FIELD=VALUE",
        help="change a field for one backend only, e.g. keras:optimizer.decay_kind=decoupled",
    )
    p.add_argument("--out", "-o", help="output folder (default results/<spec name>/parity)")
    p.set_defaults(func=_cmd_parity)

    p = sub.add_parser("convert", help="export a trained run's weights to another backend, verified")
    p.add_argument("src", help="run folder (duofit run/compare output) or a previous convert folder")
    p.add_argument("--to", required=True, help="target backend: torch or keras")
    p.add_argument("--format", help="torch: .safetensors (default) or .npz; keras: .weights.h5 (default) or .keras")
    p.add_argument("--out", "-o", help="output folder (default <src>-<to>)")
    p.set_defaults(func=_cmd_convert)
