"""``duofit bench run|plot|list``, and the entry points of ``benchmarks/run.py`` / ``benchmarks/plot.py``.

Handlers return an exit code and raise :class:`~duofit.common.errors.DuofitError`
subclasses for bad input; :func:`standalone` maps them to messages without a traceback,
as ``duofit``'s own ``main`` does.

Example:
    Prints the whole plan, so it is not run as a doctest.

    >>> standalone("run", ["--quick", "--backends", "numpy-lean", "--dry-run"])  # doctest: +SKIP
    0
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from duofit.common.errors import SpecError, report_errors_to_stderr

if TYPE_CHECKING:
    from duofit.bench.plan import MatrixPlan

__all__ = ["add_commands", "add_plot_arguments", "add_run_arguments", "standalone"]

EXIT_CELLS_FAILED = 1


def _names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [t.strip() for t in text.split(",") if t.strip()]
    return names or None


def _ints(text: str | None, option: str) -> list[int] | None:
    names = _names(text)
    if names is None:
        return None
    try:
        return [int(n) for n in names]
    except ValueError:
        raise SpecError(f"{option}: {text!r} is not a comma-separated list of integers; e.g. {option} 32,256") from None


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``bench run`` (shared by ``benchmarks/run.py``)."""
    from duofit.bench.plan import SUITES

    p.add_argument("--suite", default=None, help=f"one of {', '.join(SUITES)} (default quick)")
    p.add_argument("--quick", action="store_true", help="same as --suite quick; replaces its CSV unless --resume")
    p.add_argument("--workloads", help="comma-separated workload names or spec paths (default: the suite's)")
    p.add_argument("--backends", help="comma-separated benchmark backends (default: every installed one)")
    p.add_argument("--batch-sizes", help="comma-separated batch sizes (default: the suite's)")
    p.add_argument("--epochs", type=int, help="epochs per run (default: the suite's)")
    p.add_argument("--repeats", type=int, help="repeats of every cell (default: quick 1, full 5)")
    p.add_argument("--threads", type=int, help="intra-op threads for every framework (default: available cores)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: the suite's; gpu: cuda, others cpu)")
    p.add_argument("--dtype", help="float32 or float64 (default: the workload's)")
    p.add_argument("--out", "-o", help="CSV file (default results/bench-<suite>.csv)")
    p.add_argument("--resume", action="store_true", help="continue the CSV: skip cells it already has")
    p.add_argument("--overwrite", action="store_true", help="replace an existing CSV")
    p.add_argument("--cell-timeout", type=float, default=None, help="seconds before a cell is killed (default 900)")
    p.add_argument(
        "--wait-idle", type=float, default=0.0, help="wait up to S seconds for an idle host before each cell"
    )
    p.add_argument("--peak-size", type=int, help="matrix size of the peak matmul (default 2048)")
    p.add_argument("--workloads-dir", help="folder of named workload specs (default benchmarks/workloads)")
    p.add_argument(
        "--modes",
        help="comma-separated training modes for the duofit backends: eager (as written), compile, bf16 "
        "(default: the suite's; full/models: eager,compile; gpu: eager,compile,bf16)",
    )
    p.add_argument(
        "--samples", help="scale suite: comma-separated data set sizes (default 10000,100000,1000000,10000000)"
    )
    p.add_argument("--max-samples", type=int, help="scale suite: leave out the sizes above N (a quick run)")
    p.add_argument("--data-kinds", help="scale suite: npz (in memory) and/or npy (memory-mapped) (default both)")
    p.add_argument(
        "--data-cache",
        help="scale suite: folder of the generated data sets (default $DUOFIT_BENCH_DATA or "
        "~/.cache/duofit/bench-data)",
    )
    p.add_argument("--dry-run", action="store_true", help="list the cells with an estimated time each, and exit")


def add_plot_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``bench plot`` (shared by ``benchmarks/plot.py``)."""
    p.add_argument("csv", help="benchmark CSV written by bench run")
    p.add_argument("--out", "-o", help="folder for the PNGs and summary (default: the CSV's folder)")


def cmd_run(args: argparse.Namespace) -> int:
    """Plan and run the matrix, then write the summary files next to the CSV."""
    from duofit.bench.matrix import DEFAULT_CELL_TIMEOUT_S, plan_matrix, run_matrix
    from duofit.bench.runners import RUNNERS
    from duofit.bench.summary import write_summary
    from duofit.common.choice import parse_names

    suite = "quick" if args.quick else (args.suite or "quick")
    if args.quick and args.suite not in (None, "quick"):
        raise SpecError(f"--quick contradicts --suite {args.suite}; use one of them")
    if args.dtype is not None and args.dtype not in ("float32", "float64"):
        raise SpecError(f"--dtype: unknown {args.dtype!r}; allowed: float32, float64")
    plan = plan_matrix(
        suite,
        workloads=_names(args.workloads),
        backends=parse_names(args.backends, list(RUNNERS), kind="benchmark backend"),
        batch_sizes=_ints(args.batch_sizes, "--batch-sizes"),
        epochs=args.epochs,
        repeats=args.repeats,
        threads=args.threads,
        device=args.device,
        dtype=args.dtype,
        workloads_dir=args.workloads_dir,
        modes=_names(args.modes),
        samples=_ints(args.samples, "--samples"),
        max_samples=args.max_samples,
        data_kinds=_names(args.data_kinds),
        data_cache=args.data_cache,
        require_device=not args.dry_run,
    )
    for name, reason in plan.skipped.items():
        what = name if name.startswith(("mode ", "data kind ", "npz at ")) else f"backend {name}"
        print(f"skipped {what}: {reason}")
    if args.dry_run:
        _print_dry_run(plan)
        return 0
    out = Path(args.out or f"results/bench-{suite}.csv")
    overwrite = args.overwrite or (args.quick and not args.resume)
    timeout = args.cell_timeout if args.cell_timeout is not None else DEFAULT_CELL_TIMEOUT_S
    if timeout <= 0:
        raise SpecError(f"--cell-timeout must be > 0 seconds (got {timeout})")
    if args.peak_size is not None and args.peak_size < 1:
        raise SpecError(f"--peak-size must be a positive integer (got {args.peak_size})")
    if args.wait_idle < 0:
        raise SpecError(f"--wait-idle must be >= 0 seconds (got {args.wait_idle})")
    report = run_matrix(
        plan,
        out,
        resume=args.resume,
        overwrite=overwrite,
        cell_timeout=timeout,
        wait_idle_s=args.wait_idle,
        peak_size=args.peak_size,
    )
    paths = write_summary(out)
    print(f"rows: {out} ({len(report.ran)} new, {len(report.already_done)} already there)")
    print(f"summary: {paths['markdown']}, {paths['summary']}, {paths['ratios']}")
    for cell_id, error in report.failed:
        print(f"error: cell {cell_id} failed: {error}", file=sys.stderr)
    if report.failed:
        print(f"error: {len(report.failed)} cells failed; rerun with --resume to retry them", file=sys.stderr)
        return EXIT_CELLS_FAILED
    return 0


def _print_dry_run(plan: MatrixPlan) -> None:
    """Each cell with its estimated seconds, then the total against the suite's budget."""
    from duofit.bench.estimate import estimate_plan, run_fixed_s
    from duofit.bench.schema import COLUMNS, SCHEMA_VERSION

    seconds = estimate_plan(plan)
    for cell, s in zip(plan.cells, seconds, strict=True):
        print(f"{cell.cell_id}  ~{s:.0f} s")
    total = sum(seconds) + run_fixed_s(plan)
    print(
        f"{len(plan.cells)} cells, {plan.threads} threads, device {plan.device}: estimated {total:.0f} s "
        f"(~{total / 60:.1f} min; duofit/bench/estimate.py says how); rows of {len(COLUMNS)} columns "
        f"(schema {SCHEMA_VERSION})"
    )


def cmd_plot(args: argparse.Namespace) -> int:
    """Write the PNG charts and the summary of a benchmark CSV."""
    from duofit.bench.plot import plot_results

    paths = plot_results(args.csv, args.out)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """Print suites, workloads and benchmark backends (with install status)."""
    from duofit.bench.plan import SUITES, WORKLOADS_DIR, workload_names
    from duofit.bench.runners import RUNNERS, missing_module

    for name, suite in SUITES.items():
        parts = [f"{w.name} (epochs {w.epochs}, batch {','.join(map(str, w.batch_sizes))})" for w in suite.workloads]
        modes = ",".join(m or "eager" for m in suite.modes)
        data = f"; samples {','.join(map(str, suite.samples))} as {','.join(suite.data_kinds)}" if suite.samples else ""
        print(f"suite {name}: {'; '.join(parts)}; repeats {suite.repeats}; {suite.device}; modes {modes}{data}")
    print(f"workloads in {WORKLOADS_DIR}: {', '.join(workload_names())}")
    for name, info in RUNNERS.items():
        missing = missing_module(name)
        status = "installed" if missing is None else f"missing {missing!r}"
        print(f"backend {name:<16} {info.impl:<8} {info.framework:<10} {status}; per epoch: {info.epoch_eval}")
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``bench`` (with ``run``, ``plot``, ``list``) to duofit's command line."""
    p = subparsers.add_parser("bench", help="benchmark matrix: duofit vs hand-written loops, CSV + charts")
    sub = p.add_subparsers(dest="bench_command", required=True)
    run = sub.add_parser("run", help="run the benchmark matrix, one process per cell; CSV + summary")
    add_run_arguments(run)
    run.set_defaults(func=cmd_run)
    plot = sub.add_parser("plot", help="PNG charts and a markdown summary of a benchmark CSV")
    add_plot_arguments(plot)
    plot.set_defaults(func=cmd_plot)
    lst = sub.add_parser("list", help="suites, workloads and benchmark backends")
    lst.set_defaults(func=cmd_list)


_STANDALONE: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "run": (add_run_arguments, cmd_run),
    "plot": (add_plot_arguments, cmd_plot),
}


def standalone(command: str, argv: list[str] | None = None, prog: str | None = None) -> int:
    """Entry point of ``benchmarks/run.py`` and ``benchmarks/plot.py``; returns the exit code.

    Errors print one paragraph without a traceback (``DUOFIT_DEBUG=1`` shows it): exit 2 for
    bad input, 1 for a failed cell or an internal error, 130 when interrupted.
    """
    add, handler = _STANDALONE[command]
    parser = argparse.ArgumentParser(prog=prog or f"duofit bench {command}")
    add(parser)
    args = parser.parse_args(argv)
    return report_errors_to_stderr(
        lambda: handler(args), "interrupted; the CSV holds every finished cell (continue with --resume)"
    )
