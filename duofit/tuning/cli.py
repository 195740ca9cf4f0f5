"""Subcommands ``duofit cv``, ``duofit tune`` and ``duofit sweep`` (added by ``duofit.cli``).

Handlers follow ``duofit/cli.py``'s conventions: they return an exit code and raise
``DuofitError`` subclasses for bad input (printed as one paragraph, exit code 2).

Example:
    Trains five models on every backend, so it is not run as a doctest.

    >>> from duofit.cli import main
    >>> main(["cv", "examples/seed.toml", "--folds", "5"])    # doctest: +SKIP
    0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from duofit.common.choice import parse_names
from duofit.common.errors import SpecError

__all__ = ["add_commands"]

EXIT_DIVERGED = 3  # as duofit/cli.py: training diverged (results are still written)
EXIT_INTERRUPTED = 130  # as duofit/cli.py: Ctrl-C (128 + SIGINT)
_FIXED_LIMIT = 1e6  # table values at least this large print in scientific notation


def _print_frame(frame: Any, digits: int = 4) -> None:
    import pandas as pd

    def fmt(value: float) -> str:  # a diverged run's 1e30 loss stays readable
        return f"{value:.{digits}f}" if abs(value) < _FIXED_LIMIT else f"{value:.{digits}g}"

    with pd.option_context("display.max_columns", 60, "display.width", 200, "display.float_format", fmt):
        print(frame.to_string())


def _spec_name(spec: Any, path: str) -> str:
    return spec.name or Path(path).stem


# --------------------------------------------------------------------------- cv
def _cmd_cv(args: argparse.Namespace) -> int:
    from duofit.common.loader import load_spec
    from duofit.tuning.cv import STD_DDOF, cross_validate

    spec = load_spec(args.spec)
    out = Path(args.out) if args.out else Path("results") / _spec_name(spec, args.spec) / "cv"
    cv = cross_validate(
        spec,
        args.folds,
        parse_names(args.backends),
        seed=args.seed,
        stratify=not args.no_stratify,
        splitter=args.splitter,
        isolate=not args.in_process,
        progress=not args.quiet,
        out=out,
    )
    for name, reason in cv.skipped.items():
        print(f"skipped {name}: {reason}")
    n = 1 + max(int(f.test_idx.max()) for f in cv.folds)  # the pooled samples' count: the last is held out
    how = (
        "in time order: each fold trains on the windows before its held-out block, never on later ones"
        if cv.seed is None
        else f"shuffle, seed {cv.seed}"
    )
    print(
        f"{args.folds}-fold cross-validation of {_spec_name(spec, args.spec)}: {n} samples, {cv.splitter} "
        f"({how}); scaler fitted on each fold's training part; "
        f"fold i starts from the shared initial weights of train.seed + i"
    )
    cols = ["backend", "fold", "n_train", "n_test", *spec.metric_columns, "epochs", "final_val_loss", "fit_s"]
    table = cv.fold_table()
    _print_frame(table[[c for c in cols if c in table]].set_index(["backend", "fold"]))
    print(f"\nmean ± std over {args.folds} folds (std with ddof={STD_DDOF}); metrics on each held-out fold:")
    print(cv.table().to_string())
    print(f"written: {out}/cv_folds.csv, {out}/cv_summary.csv, {out}/cv_history.csv, {out}/<backend>/fold_<i>/")
    diverged = [(b, i + 1) for b, rs in cv.results.items() for i, r in enumerate(rs) if r.diverged]
    for backend, fold in diverged:
        print(f"error: {backend} fold {fold}: {cv.results[backend][fold - 1].message}", file=sys.stderr)
    return EXIT_DIVERGED if diverged else 0


# --------------------------------------------------------------------------- tune
def _tune_many(args: argparse.Namespace, spec: Any, backends: list[str], study: str) -> int:
    """One worker process per backend (:mod:`duofit.tuning.tune_worker`), then the best values side by side.

    Each worker prints its trials as they finish; an error in one (its type and field path
    kept) stops the command before the next backend starts.
    """
    import tempfile

    from duofit.common.isolated import spawn
    from duofit.tuning.report import agreement, load_best
    from duofit.tuning.space import load_space
    from duofit.tuning.tune_worker import worker_options

    space = load_space(args.space, spec)  # bad input fails here, once
    best: dict[str, Any] = {}
    default_root = Path("results") / _spec_name(spec, args.spec) / "tune"
    with tempfile.TemporaryDirectory(prefix="duofit-tune-") as tmp:
        for backend in backends:
            name = f"{study}-{backend}"
            out = Path(args.out) / backend if args.out else default_root / name
            options = worker_options(args, name, out)
            spawn("duofit.tuning.tune_worker", spec, backend, Path(tmp) / backend, "tune", options, capture=False)
            best[backend] = load_best(out)
    log_fields = {p.field for p in space.params if getattr(p, "log", False)}
    print("\nbest hyperparameters per backend (same space, same search):")
    print(agreement(best, log_fields).to_string())
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
    from duofit.common.choice import resolve_backends
    from duofit.common.loader import load_spec

    spec = load_spec(args.spec)
    name = _spec_name(spec, args.spec)
    backends, _ = resolve_backends(parse_names(args.backend))
    if args.trials is not None and args.total is not None:
        raise SpecError("give --trials (trials to add) or --total (trials the study should reach), not both")
    args.storage = args.storage or f"sqlite:///results/{name}/tune.db"
    # bad input is reported here, once, before any backend process starts
    from duofit.tuning.search import objective_column
    from duofit.tuning.space import load_space
    from duofit.tuning.storage import open_storage
    from duofit.tuning.tune_worker import tune_one

    objective_column(spec, args.metric or load_space(args.space, spec).metric)
    open_storage(args.storage, heartbeat_s=None)
    if len(backends) == 1:
        study = args.study or f"{name}-{backends[0]}"
        out = Path(args.out) if args.out else Path("results") / name / "tune" / study
        return _interruptible(args.storage, [study], lambda: tune_one(args, spec, backends[0], study, out))
    from duofit.common.data import read_arrays

    read_arrays(spec)  # bad data and data warnings once here: the backend processes stay quiet about them
    studies = [f"{args.study or name}-{backend}" for backend in backends]  # as _tune_many names them
    return _interruptible(args.storage, studies, lambda: _tune_many(args, spec, backends, args.study or name))


def _interruptible(storage: str, studies: list[str], command: Any) -> int:
    """Run ``command()``; after Ctrl-C, one line: the trials each study has finished and how to resume.

    Returns:
        The command's exit code, or 130 after Ctrl-C (no traceback).
    """
    try:
        return int(command())
    except KeyboardInterrupt:
        pass
    from duofit.tuning.storage import open_storage
    from duofit.tuning.study import finished_trials

    store = open_storage(storage, heartbeat_s=None)
    counts = [(study, finished_trials(store, study)) for study in studies]
    done = ", ".join(f"{n} in study {study!r}" for study, n in counts if n is not None) or "none"
    print(
        f"interrupted: trials finished: {done} ({storage}); the running trial counts as failed. "
        "Run the same command again to continue (--total N: until N trials have finished)",
        file=sys.stderr,
    )
    return EXIT_INTERRUPTED


# --------------------------------------------------------------------------- sweep
def _cmd_sweep(args: argparse.Namespace) -> int:
    from duofit.common.loader import load_spec
    from duofit.common.paths import parse_values
    from duofit.tuning.sweep import is_sweep_file, load_sweep, sweep

    if is_sweep_file(args.spec):
        spec, values = load_sweep(args.spec)
    else:
        spec, values = load_spec(args.spec), {}
    for assignment in args.set or []:
        key, vals = parse_values(assignment)
        values[key] = vals
    out = Path(args.out) if args.out else Path("results") / _spec_name(spec, args.spec) / "sweep"
    res = sweep(spec, values, parse_names(args.backends), isolate=not args.in_process, progress=not args.quiet, out=out)
    table = res.table()
    cols = [*res.fields, "backend", *spec.metric_columns, "epochs", "final_loss", "final_val_loss", "verdict", "fit_s"]
    _print_frame(table[[c for c in cols if c in table]].set_index([*res.fields, "backend"]))
    print(f"written: {out}/sweep.csv, {out}/sweep_history.csv, {out}/sweep_curves.png, one folder per run")
    return _sweep_verdicts(res)


def _sweep_verdicts(res: Any) -> int:
    """A note per run whose verdict is not ``fine``; exit 3 when every run diverged."""
    runs = [(setting, name, r) for setting, cmp in res.runs for name, r in cmp.results.items()]
    for setting, name, r in runs:
        verdict = r.verdict
        where = ", ".join(f"{f}={v}" for f, v in setting.items())
        if verdict["name"] == "diverged":
            print(f"note: {name} diverged at {where} (the table keeps it; lower the value to avoid it)")
        elif verdict["name"] != "fine":
            fix = f"; {verdict['fix']}" if verdict.get("fix") else ""
            print(f"note: {name} at {where}: {verdict.get('message') or verdict['name']}{fix}")
    if runs and all(r.diverged for _, _, r in runs):
        first = runs[0][2].message or "training diverged"
        print(f"error: every run of the sweep diverged ({len(runs)} runs); the first: {first}", file=sys.stderr)
        return EXIT_DIVERGED
    return 0


def add_commands(subparsers: Any) -> None:
    """Add ``cv``, ``tune`` and ``sweep`` to duofit's argument parser.

    Example:
        >>> import argparse
        >>> sub = argparse.ArgumentParser().add_subparsers()
        >>> add_commands(sub)
    """
    p = subparsers.add_parser("cv", help="k-fold cross-validation on every backend (mean ± std per metric)")
    p.add_argument("spec", help="spec file (.toml or .json)")
    p.add_argument("--folds", "-k", type=int, default=5, help="number of folds (default 5)")
    p.add_argument("--seed", type=int, help="splitter shuffling seed (default: the spec's data.split_seed)")
    p.add_argument("--no-stratify", action="store_true", help="KFold instead of StratifiedKFold for classification")
    p.add_argument(
        "--splitter",
        default="auto",
        help="auto (default: TimeSeriesSplit for windows of a series, else StratifiedKFold / KFold), "
        "StratifiedKFold, KFold or TimeSeriesSplit; a shuffled splitter on a series is refused (leakage)",
    )
    p.add_argument("--backends", help="comma-separated backend names (default: all installed)")
    p.add_argument("--out", "-o", help="output folder (default results/<spec name>/cv)")
    p.add_argument("--in-process", action="store_true", help="run backends in this process (default: one each)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_cv)

    p = subparsers.add_parser("tune", help="hyperparameter search (grid, random, Bayesian) with Optuna")
    p.add_argument("spec", help="spec file (.toml or .json)")
    p.add_argument("--space", required=True, help="search-space file (see examples/space.toml)")
    p.add_argument("--search", default="bayes", choices=["grid", "random", "bayes"], help="default bayes (TPE)")
    p.add_argument("--trials", type=int, help="trials to add now (default: the rest of the grid, or 20)")
    p.add_argument("--total", type=int, help="run until the study has this many finished trials (all workers)")
    p.add_argument("--backend", "--backends", "-b", help="backend(s), comma-separated (default: all installed)")
    p.add_argument("--storage", help="SQLAlchemy URL or SQLite file (default sqlite:///results/<name>/tune.db)")
    p.add_argument("--study", help="study name (default <spec name>-<backend>); the same name continues it")
    p.add_argument("--metric", help="objective: a spec metric or val_loss (default: the space's, else the first)")
    p.add_argument("--seed", type=int, default=0, help="sampler seed (default 0)")
    prune = p.add_mutually_exclusive_group()
    prune.add_argument("--prune", dest="prune", action="store_true", default=None, help="median pruning (bayes: on)")
    prune.add_argument("--no-prune", dest="prune", action="store_false", help="never prune")
    p.add_argument("--heartbeat", type=int, default=10, help="seconds between heartbeats; 0 = off (default 10)")
    p.add_argument("--out", "-o", help="output folder (default results/<name>/tune/<study>)")
    p.add_argument("--quiet", "-q", action="store_true", help="no line per trial")
    p.set_defaults(func=_cmd_tune)

    p = subparsers.add_parser(
        "sweep",
        help="run a spec over values of a field on every backend",
        description="Run a spec over values of a field on every backend; the table gives each run's verdict. "
        "Exit code 3 when every run diverged (results are still written), 0 otherwise.",
    )
    p.add_argument("spec", help="spec file, or a sweep file with a [sweep] table (see examples/lr_sweep.toml)")
    p.add_argument("--set", action="append", metavar="FIELD=V1,V2", help="e.g. optimizer.lr=0.1,0.01,0.001")
    p.add_argument("--backends", help="comma-separated backend names (default: all installed)")
    p.add_argument("--out", "-o", help="output folder (default results/<spec name>/sweep)")
    p.add_argument("--in-process", action="store_true", help="run backends in this process (default: one each)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_sweep)
