"""Cross-validation worker: ``python -m duofit.tuning.worker SPEC.json BACKEND OUTDIR --folds K --seed S``.

Runs every fold of one backend in a fresh interpreter (as ``duofit.worker`` runs one
spec for ``compare``) and writes each fold's RunResult into ``OUTDIR/fold_<i>/``, or
``OUTDIR/error.json`` (type, message) with a non-zero exit code. The folds are rebuilt
here from the spec and the seed, identically to the parent's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from duofit.common.isolated import report_errors

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code.

    Example:
        >>> main(["spec.json", "torch", "out", "--folds", "5", "--seed", "42"])  # doctest: +SKIP
        0
    """
    parser = argparse.ArgumentParser(prog="python -m duofit.tuning.worker")
    parser.add_argument("spec")
    parser.add_argument("backend")
    parser.add_argument("outdir")
    parser.add_argument("--folds", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--no-stratify", action="store_true")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    from duofit.common.spec import Spec
    from duofit.tuning.cv import run_folds
    from duofit.tuning.folds import make_folds

    def body() -> None:
        spec = Spec.model_validate_json(Path(args.spec).read_text(encoding="utf-8"))
        folds = make_folds(spec, args.folds, args.seed, stratify=not args.no_stratify)
        for fold, res in zip(folds, run_folds(spec, folds, args.backend, args.progress), strict=True):
            res.save(out / f"fold_{fold.index + 1}")

    return report_errors(out, body)


if __name__ == "__main__":
    sys.exit(main())
