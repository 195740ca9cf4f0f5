"""Cross-validation worker: ``python -m duofit.tuning.worker SPEC.json BACKEND FOLDER --folds K [--seed S]``.

Runs every fold of one backend in a fresh interpreter (see :mod:`duofit.common.isolated`)
and writes each fold's RunResult into ``fold_<i>/`` under ``--out`` (default ``FOLDER``); on a
DuofitError, ``FOLDER/error.json`` and a non-zero exit code. The folds are rebuilt here from the spec
and the seed, identically to the parent's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from duofit.common.isolated import result_folder, worker_main
from duofit.common.spec import Spec

__all__ = ["main"]


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--folds", type=int, required=True)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--no-stratify", action="store_true")
    parser.add_argument("--splitter", default="auto")
    parser.add_argument("--out", help="the results' final folder (default FOLDER)")
    parser.add_argument("--progress", action="store_true")


def _body(spec: Spec, backend: str, folder: Path, args: argparse.Namespace) -> None:
    from duofit.tuning.cv import run_folds
    from duofit.tuning.folds import make_folds

    folds = make_folds(spec, args.folds, args.seed, stratify=not args.no_stratify, splitter=args.splitter)
    run_folds(spec, folds, backend, args.progress, out=result_folder(folder, args.out))


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code.

    Example:
        >>> main(["spec.json", "torch", "tmp", "--folds", "5", "--seed", "42"])  # doctest: +SKIP
        0
    """
    return worker_main("duofit.tuning.worker", argv, _body, _options)


if __name__ == "__main__":
    sys.exit(main())
