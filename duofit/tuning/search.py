"""Hyperparameter search on one backend with Optuna: grid, random, or Bayesian (TPE) with pruning.

Each trial sets the space's fields on the spec (:mod:`duofit.tuning.space`), trains it in
this process with :func:`duofit.run`, and reports the per-epoch validation metric to
Optuna through the run's ``progress`` callback, so a poor trial is pruned mid-training
(Bayesian search). The objective is the last epoch's validation metric (the early-stopping
epoch when the spec restores the best weights).

Studies live in a database: an SQLite file by default, or any SQLAlchemy URL (PostgreSQL
lets several machines share one study). Running the same command again continues the
same study: ``--trials 20`` twice gives 40 trials. Every trial is committed when it
finishes, so killing the process loses only the trial that was running; a heartbeat marks
that one ``FAIL`` once it has been silent for twice the heartbeat interval.

Example:
    A study trains models, so it is not run as a doctest.

    >>> from duofit.tuning.space import load_space                             # doctest: +SKIP
    >>> spec = duofit.load_spec("examples/seed.toml")                          # doctest: +SKIP
    >>> res = tune(spec, load_space("examples/space.toml", spec), "torch",
    ...            search="bayes", n_trials=20, storage="sqlite:///tune.db")   # doctest: +SKIP
    >>> res.best_params                                                        # doctest: +SKIP
    {'optimizer.lr': 0.0123, ...}
"""

from __future__ import annotations

import logging
import math
import os
import re
import socket
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from duofit.common.errors import DuofitError, SpecError
from duofit.common.metrics.registry import REGISTRY
from duofit.common.paths import with_values
from duofit.common.registry import check_installed
from duofit.common.spec import Spec
from duofit.tuning.space import SearchSpace
from duofit.tuning.storage import HEARTBEAT_S, open_storage
from duofit.tuning.study import (
    FINISHED_STATES,
    Direction,
    TuneResult,
    enqueue_grid,
    open_study,
    study_counts,
    tune_result,
)

__all__ = [
    "DEFAULT_TRIALS",
    "PRUNER_WARMUP_FRACTION",
    "SEARCHES",
    "objective_column",
    "tune",
]

SEARCHES = ("grid", "random", "bayes")
DEFAULT_TRIALS = 20  # trials per call for random / Bayesian search when neither --trials nor --total is given
_FAILED_TRIAL = re.compile(r"^Trial \d+ failed")  # how Optuna starts its records of a failed trial
# A trial is not judged during its first 10% of epochs: early epochs of every learning rate look alike.
PRUNER_WARMUP_FRACTION = 0.1


def objective_column(spec: Spec, metric: str | None) -> tuple[str, Direction]:
    """The history column a study optimises and its direction.

    Args:
        spec: The spec.
        metric: A metric column (``"accuracy"``, ``"val_accuracy"``, ``"val_f1_weighted"``) or
            ``"val_loss"``; ``None`` = the spec's first metric, or ``val_loss`` when it lists none.

    Returns:
        ``(column, "maximize" | "minimize")``.

    Raises:
        SpecError: the metric is not in the spec's ``metrics`` (lists what is allowed).

    Example:
        >>> from duofit.common.loader import load_spec
        >>> objective_column(load_spec("examples/seed.toml"), None)
        ('val_accuracy', 'maximize')
    """
    entries = {e.column: e for e in spec.metric_entries}
    name = metric or (f"val_{next(iter(entries))}" if entries else "val_loss")
    base = name.removeprefix("val_")
    if base != "loss" and base not in entries:
        allowed = ", ".join(["loss", *entries])
        raise SpecError(
            f"--metric: {name!r} is not one of the spec's metric columns; allowed: {allowed}", path="metric"
        )
    if base != "loss" and not spec.train.history_metrics:
        raise SpecError(
            f"--metric {name!r} needs per-epoch metrics; set train.history_metrics = true or use --metric val_loss",
            path="train.history_metrics",
        )
    maximize = base != "loss" and REGISTRY[entries[base].name].higher_is_better  # f1_weighted is an f1; loss: min
    return f"val_{base}", ("maximize" if maximize else "minimize")


def _objective(
    spec: Spec, space: SearchSpace, backend: str, column: str, prune: bool, search: str
) -> Callable[[Any], float]:
    import optuna

    from duofit.runner import run

    warmup = max(1, math.ceil(PRUNER_WARMUP_FRACTION * spec.train.epochs))
    worker = f"{socket.gethostname()}:{os.getpid()}"  # which process ran a trial (distributed studies)

    def objective(trial: Any) -> float:
        values = space.suggest(trial)
        trial_spec = with_values(spec, values, source=f"trial {trial.number}")
        trial.set_user_attr("backend", backend)
        trial.set_user_attr("search", search)
        trial.set_user_attr("worker", worker)

        def report(epoch: int, epochs: int, row: dict[str, float]) -> None:
            value = row.get(column, math.nan)
            if not prune or not math.isfinite(value):
                return
            trial.report(value, epoch)
            if epoch > warmup and trial.should_prune():
                trial.set_user_attr("pruned_at_epoch", epoch)
                raise optuna.TrialPruned(f"pruned at epoch {epoch}: {column} = {value:.4g}")

        res = run(trial_spec, backend, progress=report)
        trial.set_user_attr("epochs_run", len(res.history))
        trial.set_user_attr("fit_s", round(float(res.timings["fit_s"]), 4))
        for name, value in res.metrics.items():
            trial.set_user_attr(f"test_{name}", None if math.isnan(value) else float(value))
        if res.diverged:
            trial.set_user_attr("diverged", True)
            raise optuna.TrialPruned(res.message or "diverged")
        rows = res.history
        if res.best_epoch is not None and res.spec.train.early_stopping is not None:
            if res.spec.train.early_stopping.restore_best:
                rows = rows[rows["epoch"] == res.best_epoch]
        value = float(rows[column].iloc[-1]) if column in rows else math.nan
        if not math.isfinite(value):
            raise optuna.TrialPruned(f"{column} is not finite ({value})")
        return value

    return objective


def tune(
    spec: Spec,
    space: SearchSpace,
    backend: str = "torch",
    *,
    search: str = "bayes",
    n_trials: int | None = None,
    total_trials: int | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    metric: str | None = None,
    seed: int = 0,
    prune: bool | None = None,
    heartbeat_s: int | None = HEARTBEAT_S,
    callback: Callable[[Any, Any], None] | None = None,
) -> TuneResult:
    """Run (or continue) a study on one backend, in this process.

    Args:
        spec: The base spec; the space's fields are set on it per trial.
        space: The search space (checked against ``spec`` here).
        backend: ``"torch"`` or ``"keras"``.
        search: ``"grid"``, ``"random"`` or ``"bayes"`` (TPE).
        n_trials: Trials to add in this call (default: the rest of the grid for grid search, else 20).
        total_trials: Instead, run until the study holds this many finished (complete or
            pruned) trials, counting other workers' too.
        storage: SQLAlchemy URL or SQLite file path (default ``sqlite:///results/<spec name>/tune.db``).
        study_name: Default ``<spec name>-<backend>``.
        metric: Objective (see :func:`objective_column`); default: the space's ``metric``,
            else the spec's first metric.
        seed: Sampler seed; a continued study offsets it by the trials it already has,
            so a second run does not replay the first one's random draws.
        prune: Median pruning on the per-epoch validation metric (default: on for ``bayes`` only).
        heartbeat_s: Heartbeat interval; ``None`` turns stale-trial detection off.
        callback: Called as ``callback(study, frozen_trial)`` after every trial.

    Returns:
        A :class:`TuneResult`.

    Raises:
        SpecError: bad search name, metric, storage or study mismatch.
        KeyboardInterrupt: Ctrl-C; the trials that finished are in the study, the running one
            is marked ``FAIL`` (run again by the next call); see :func:`~duofit.tuning.study.finished_trials`.

    See the module's example (a study trains models, so it is not run as a doctest).
    """
    _check_counts(search, n_trials, total_trials)
    check_installed(backend)
    space.check(spec)
    column, direction = objective_column(spec, metric or space.metric)
    prune = (search == "bayes") if prune is None else prune
    storage = storage or f"sqlite:///results/{spec.name or 'study'}/tune.db"
    name = study_name or f"{spec.name or 'study'}-{backend}"
    study = open_study(
        spec, space, backend, open_storage(storage, heartbeat_s), name, column, direction, search, prune, seed
    )
    todo = _trials_to_run(study, space, search, n_trials, total_trials)
    ran: list[int] = []
    if todo > 0:
        objective = _objective(spec, space, backend, column, prune, search)
        _optimize(study, objective, todo, _callbacks(ran, total_trials, callback))
    return tune_result(study, spec, storage, backend, column, direction, ran=len(ran))


def _optimize(study: Any, objective: Callable[[Any], float], todo: int, callbacks: list[Any]) -> None:
    """Run ``todo`` trials, without Optuna's warnings about its experimental features.

    Ctrl-C stops the running trial (Optuna marks it ``FAIL``, so the next run repeats it) and
    is raised again; Optuna's report of it (a traceback) is not printed (:func:`_reported_by_caller`).
    """
    import optuna

    with warnings.catch_warnings(), _reported_by_caller():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.optimize(objective, n_trials=todo, callbacks=callbacks)


class _RaisedAgain(logging.Filter):
    """Drops Optuna's records of a trial stopped by Ctrl-C or a duofit error: ``tune`` raises both again.

    Optuna logs such a trial twice: "Trial N failed with parameters ... because of the
    following error" with the traceback, then "Trial N failed with value None." without it;
    the second is recognised by the trial number of the first.
    """

    def __init__(self) -> None:
        super().__init__()
        self.dropped: set[str] = set()  # "Trial N failed" of the trials whose error is raised again

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        head = _FAILED_TRIAL.match(record.getMessage())
        if isinstance(error, (KeyboardInterrupt, DuofitError)):
            if head:
                self.dropped.add(head.group(0))
            return False
        return not (head and head.group(0) in self.dropped)


@contextmanager
def _reported_by_caller() -> Iterator[None]:
    """Silence Optuna's "Trial N failed ... because of the following error" (and traceback) for errors raised again.

    The filter sits on the handlers of Optuna's library logger (``optuna``), for the block only.
    """
    handlers = list(logging.getLogger("optuna").handlers)
    quiet = _RaisedAgain()
    for handler in handlers:
        handler.addFilter(quiet)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(quiet)


def _check_counts(search: str, n_trials: int | None, total_trials: int | None) -> None:
    """Refuse an unknown search and negative trial counts."""
    if search not in SEARCHES:
        raise SpecError(f"--search: unknown search {search!r}; allowed: {', '.join(SEARCHES)}", path="search")
    if (n_trials is not None and n_trials < 0) or (total_trials is not None and total_trials < 0):
        raise SpecError("--trials / --total must be >= 0", path="trials")


def _trials_to_run(study: Any, space: SearchSpace, search: str, n_trials: int | None, total_trials: int | None) -> int:
    """Trials this call runs: up to ``total_trials`` finished, else ``n_trials``, else the default.

    Grid search enqueues its points here and runs at most the rest of the grid.
    """
    finished = sum(study_counts(study).get(s, 0) for s in FINISHED_STATES)
    want: int | None = None  # neither given: the rest of the grid, or DEFAULT_TRIALS
    if total_trials is not None:
        want = max(0, total_trials - finished)
    elif n_trials is not None:
        want = n_trials
    if search == "grid":
        return enqueue_grid(study, space, want)
    return DEFAULT_TRIALS if want is None else want


def _callbacks(ran: list[int], total_trials: int | None, callback: Callable[[Any, Any], None] | None) -> list[Any]:
    """Optuna callbacks: record this call's trial numbers in ``ran``, stop at ``total_trials``, then ``callback``."""
    import optuna

    callbacks: list[Any] = [lambda _study, trial: ran.append(trial.number)]
    if total_trials is not None:
        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        callbacks.append(optuna.study.MaxTrialsCallback(total_trials, states=states))
    if callback is not None:
        callbacks.append(callback)
    return callbacks
