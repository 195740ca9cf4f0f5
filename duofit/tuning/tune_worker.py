"""Tune one backend and print its trials: in this process, or as a worker of ``duofit tune``.

``duofit tune --backend B`` calls :func:`tune_one` here; with several backends, each runs in
a fresh interpreter (see :mod:`duofit.common.isolated`)::

    python -m duofit.tuning.tune_worker SPEC.json BACKEND FOLDER --space FILE --storage URL --study NAME --out DIR

The worker's output streams to the terminal (one line per trial, then the study's summary);
on a DuofitError, ``FOLDER/error.json`` and a non-zero exit code, and the parent raises the
same error (type, message, field path).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from duofit.common.isolated import worker_main
from duofit.common.spec import Spec

__all__ = ["main", "tune_one", "worker_options"]


def _trial_printer(backend: str, column: str, quiet: bool) -> Any:
    def show(study: Any, trial: Any) -> None:
        if quiet:
            return
        params = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
        value = f"{column}={trial.value:.4f}" if trial.value is not None else "no value"
        if trial.state.name == "PRUNED" and trial.intermediate_values:
            last = max(trial.intermediate_values)
            value = f"{column}={trial.intermediate_values[last]:.4f} at epoch {last}"
        try:
            best = f"best {study.best_value:.4f} (trial {study.best_trial.number})"
        except ValueError:
            best = "no finished trial yet"
        print(f"[{backend}] trial {trial.number:>3} {trial.state.name:<8} {value}  {params}  | {best}", flush=True)

    return show


def tune_one(args: argparse.Namespace, spec: Spec, backend: str, study: str, out: Path) -> int:
    """Run (or continue) ``study`` on ``backend``, print each trial and the best values, save the results.

    Args:
        args: The ``duofit tune`` options (``space``, ``search``, ``trials``, ``total``, ``storage``,
            ``metric``, ``seed``, ``prune``, ``heartbeat``, ``quiet``).
        spec: The spec to tune.
        backend: One backend name.
        study: The study's name in the storage.
        out: Where ``trials.csv``, the best spec and the plots go.

    Returns:
        The exit code, 0.
    """
    from duofit.tuning.report import save_tuning
    from duofit.tuning.search import objective_column, tune
    from duofit.tuning.space import load_space

    space = load_space(args.space, spec)
    column, _ = objective_column(spec, args.metric or space.metric)
    res = tune(
        spec,
        space,
        backend,
        search=args.search,
        n_trials=args.trials,
        total_trials=args.total,
        storage=args.storage,
        study_name=study,
        metric=args.metric,
        seed=args.seed,
        prune=args.prune,
        heartbeat_s=args.heartbeat or None,
        callback=_trial_printer(backend, column, args.quiet),
    )
    paths = save_tuning(res, out)
    counts = ", ".join(f"{v} {k.lower()}" for k, v in sorted(res.counts.items()))
    print(f"study {res.study_name!r} ({res.storage}): {sum(res.counts.values())} trials ({counts}); ran {res.ran} now")
    if res.best_value is None:
        print("no finished trial yet: no best spec")
    else:
        print(f"best {res.metric} = {res.best_value:.4f} ({res.direction}) at trial {res.best_trial}:")
        for key, value in res.best_params.items():
            print(f"  {key} = {value}")
    print("written: " + ", ".join(str(p) for p in paths.values()))
    return 0


def worker_options(args: argparse.Namespace, study: str, out: Path) -> list[str]:
    """The worker's command-line options that carry ``args`` (the ``duofit tune`` options).

    Example:
        >>> ns = argparse.Namespace(space="s.toml", search="grid", storage="sqlite:///t.db", seed=0, heartbeat=10,
        ...                         trials=2, total=None, metric=None, prune=False, quiet=True)
        >>> worker_options(ns, "seed-torch", Path("out"))[-4:]
        ['--trials', '2', '--no-prune', '--quiet']
    """
    opts = ["--space", args.space, "--search", args.search, "--storage", args.storage, "--study", study]
    opts += ["--out", str(out), "--seed", str(args.seed), "--heartbeat", str(args.heartbeat)]
    for flag, value in (("--trials", args.trials), ("--total", args.total), ("--metric", args.metric)):
        if value is not None:
            opts += [flag, str(value)]
    if args.prune is not None:
        opts.append("--prune" if args.prune else "--no-prune")
    if args.quiet:
        opts.append("--quiet")
    return opts


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--space", required=True)
    parser.add_argument("--search", required=True)
    parser.add_argument("--storage", required=True)
    parser.add_argument("--study", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--heartbeat", type=int, required=True)
    parser.add_argument("--trials", type=int)
    parser.add_argument("--total", type=int)
    parser.add_argument("--metric")
    prune = parser.add_mutually_exclusive_group()
    prune.add_argument("--prune", dest="prune", action="store_true", default=None)
    prune.add_argument("--no-prune", dest="prune", action="store_false")
    parser.add_argument("--quiet", action="store_true")


def _body(spec: Spec, backend: str, folder: Path, args: argparse.Namespace) -> None:
    tune_one(args, spec, backend, args.study, Path(args.out))


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code.

    Example:
        Runs a whole study, so it is not run as a doctest.

        >>> main(["spec.json", "torch", "tmp", "--space", "s.toml", "--search", "bayes"])  # doctest: +SKIP
        0
    """
    return worker_main("duofit.tuning.tune_worker", argv, _body, _options)


if __name__ == "__main__":
    sys.exit(main())
