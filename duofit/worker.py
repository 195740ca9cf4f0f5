"""Worker process: ``python -m duofit.worker SPEC.json BACKEND FOLDER [--out DIR] [--progress] [--threads N] ...``.

Runs one backend in a fresh interpreter (see :mod:`duofit.common.isolated`) and writes the
RunResult files into ``--out`` (the result's final folder) or ``FOLDER``; on a
DuofitError, ``FOLDER/error.json`` and a non-zero exit code. Used by ``compare`` so that each Keras
backend gets its own process, ``--jobs K`` of them at a time (recorded), each with ``--threads N`` intra-op
threads (set before the framework runs anything). The result's ``startup_s`` counts from the
moment the parent started this process (interpreter, imports, framework, data), and so does
``total_s``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from duofit.common.isolated import result_folder, seconds_since_spawn, worker_main
from duofit.common.spec import Spec

__all__ = ["main"]


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", help="the result's final folder (default FOLDER)")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--threads", type=int, help="intra-op threads (default: train.threads or the framework's)")
    parser.add_argument("--jobs", type=int, help="how many workers the parent runs at once (recorded)")


def _body(spec: Spec, backend: str, folder: Path, args: argparse.Namespace) -> None:
    from duofit.common.registry import get_backend
    from duofit.runner import run

    if args.threads is not None and spec.train.threads is None:  # train.threads wins: the trainers set it
        get_backend(backend).init_threads(args.threads)
    progress = None
    if args.progress:
        from duofit.common.plots import progress_bar

        progress = progress_bar(backend, spec.train.epochs)
    before_run = seconds_since_spawn()  # interpreter, duofit's imports (and the framework's, with --threads)
    result = run(spec, backend, progress=progress)
    if before_run is not None:  # the process' whole time: total_s stays >= startup_s + fit_s
        result.timings["startup_s"] += before_run
        result.timings["total_s"] += before_run
    env = result.environment
    if args.jobs is not None:
        env["compare_jobs"] = args.jobs
    if args.threads is not None and spec.train.threads is None:
        env["threads_set_by"] = f"compare ({args.jobs or '?'} workers at once: {args.threads} each)"
    result.save(result_folder(folder, args.out))


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    return worker_main("duofit.worker", argv, _body, _options)


if __name__ == "__main__":
    sys.exit(main())
