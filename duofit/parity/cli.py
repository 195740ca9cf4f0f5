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

    spec, overrides = _split_sets(load_spec(args.spec), args.set or [])
    out = Path(args.out) if args.out else Path("results") / (spec.name or Path(args.spec).stem) / "parity"
    report = parity(
        spec,
        strict=args.strict,
        dtype=args.dtype,
        epochs=args.epochs,
        backends=tuple(parse_names(args.backends) or ()),
        overrides=overrides,
        out=out,
        progress=not args.quiet,
    )
    print(report.text())
    print(f"written: {out}/parity.json, parity.csv, steps.csv, parity.png")
    return 0 if report.passed else EXIT_PARITY_FAILED


def _names_a_backend(item: str) -> bool:
    """Whether a FIELD=VALUE item starts with a backend name instead of a spec section (``keras-optimizer.lr``)."""
    from duofit.common.registry import BACKENDS
    from duofit.common.spec import Spec

    head = item.split("=", 1)[0].split(".", 1)[0].split("[", 1)[0]
    return head not in Spec.model_fields and any(head.startswith(name) for name in BACKENDS)


def _split_sets(spec: Any, items: list[str]) -> tuple[Any, dict[str, list[str]]]:
    """``--set`` items: ``FIELD=VALUE`` changes the spec of both backends, ``BACKEND:FIELD=VALUE`` one backend's.

    Returns:
        The spec with the shared items applied, and ``{backend: [FIELD=VALUE, ...]}``.

    Example:
        >>> from duofit.common.loader import load_spec
        >>> spec, per = _split_sets(load_spec("examples/seed.toml"),
        ...                         ["optimizer.weight_decay=0.01", "keras:optimizer.decay_kind=decoupled"])
        >>> spec.optimizer.weight_decay, per
        (0.01, {'keras': ['optimizer.decay_kind=decoupled']})
    """
    from duofit.common.errors import SpecError
    from duofit.common.overrides import apply_overrides
    from duofit.common.registry import BACKENDS

    shared: list[str] = []
    per_backend: dict[str, list[str]] = {}
    for item in items:
        backend, sep, assignment = item.partition(":")
        if sep and backend in BACKENDS and "=" in assignment:
            per_backend.setdefault(backend, []).append(assignment)
        elif "=" in item and not (sep and "=" not in backend) and not _names_a_backend(item):
            # FIELD=VALUE (a value may hold a colon)
            shared.append(item)
        else:
            raise SpecError(
                f"--set {item!r}: expected FIELD=VALUE (both backends) or BACKEND:FIELD=VALUE (one backend), "
                f"e.g. optimizer.weight_decay=0.01 or keras:optimizer.decay_kind=decoupled; "
                f"backends: {', '.join(BACKENDS)}",
                path="set",
            )
    return apply_overrides(spec, shared), per_backend


def _cmd_convert(args: argparse.Namespace) -> int:
    from duofit.parity.convert import convert

    info = convert(args.src, to=args.to, out=args.out, fmt=args.format)
    print(
        f"wrote {info['target']} model to {info['out']}/"
        f"{info['file']} (read from {info['read_from']}); test predictions agree: max relative difference "
        f"{info['max_rel_diff']:.2e} <= {info['tolerance']:.0e}"
    )
    state = info.get("optimizer_state")
    if state:
        print(
            f"carried the {state['optimizer']} state after step {state['step']} (epoch {state['epochs_done']}: "
            f"{', '.join(state['slots']) or 'no slots'}) to {info['out']}/{state['file']}; continue training with "
            f"duofit run SPEC --backend {info['target']} --resume-from {info['out']}"
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
        metavar="[BACKEND:]FIELD=VALUE",
        help="change a field for both backends (optimizer.weight_decay=0.01) or one only "
        "(keras:optimizer.decay_kind=decoupled)",
    )
    p.add_argument("--out", "-o", help="output folder (default results/<spec name>/parity)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines and bars (the report only)")
    p.set_defaults(func=_cmd_parity)

    p = sub.add_parser("convert", help="export a trained run's weights to another backend, verified")
    p.add_argument("src", help="run folder (duofit run/compare output) or a previous convert folder")
    p.add_argument("--to", required=True, help="target backend: torch or keras")
    p.add_argument("--format", help="torch: .safetensors (default) or .npz; keras: .weights.h5 (default) or .keras")
    p.add_argument("--out", "-o", help="output folder (default <results>/converted/<src>-to-<to>, beside <src>)")
    p.set_defaults(func=_cmd_convert)
