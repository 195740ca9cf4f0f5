"""Worker process: ``python -m duofit.worker SPEC.json BACKEND FOLDER [--out DIR] [--progress]``.

Runs one backend in a fresh interpreter (see :mod:`duofit.common.isolated`) and writes the
RunResult files into ``--out`` (the result's final folder) or ``FOLDER``; on a
DuofitError, ``FOLDER/error.json`` and a non-zero exit code. Used by ``compare`` so that each Keras
backend gets its own process.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from duofit.common.isolated import result_folder, worker_main
from duofit.common.spec import Spec

__all__ = ["main"]


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", help="the result's final folder (default FOLDER)")
    parser.add_argument("--progress", action="store_true")


def _body(spec: Spec, backend: str, folder: Path, args: argparse.Namespace) -> None:
    from duofit.runner import run

    progress = None
    if args.progress:
        from duofit.common.plots import progress_bar

        progress = progress_bar(backend, spec.train.epochs)
    run(spec, backend, progress=progress, out=result_folder(folder, args.out))


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    return worker_main("duofit.worker", argv, _body, _options)


if __name__ == "__main__":
    sys.exit(main())
