"""An Optuna study for duofit: open or continue it, enqueue grid points, read its outcome.

A study keeps one spec, backend, objective and space (checked when it is continued); grid
points are enqueued by duofit itself so that a failed or killed point is simply run again.
Optuna is imported on first use.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Literal

from duofit.common.errors import SpecError
from duofit.common.paths import with_values
from duofit.common.spec import Spec
from duofit.tuning.space import SearchSpace

__all__ = [
    "PRUNER_STARTUP_TRIALS",
    "TPE_STARTUP_TRIALS",
    "Direction",
    "TuneResult",
    "FINISHED_STATES",
    "enqueue_grid",
    "finished_trials",
    "open_study",
    "study_counts",
    "tune_result",
]

TPE_STARTUP_TRIALS = 10  # Optuna's default: random trials before TPE starts modelling the space
PRUNER_STARTUP_TRIALS = 5  # Optuna MedianPruner's default: never prune before 5 trials have finished

Direction = Literal["minimize", "maximize"]


FINISHED_STATES = ("COMPLETE", "PRUNED")  # trials that count toward --total


def finished_trials(store: Any, name: str) -> int | None:
    """Finished (complete or pruned) trials of study ``name`` in ``store``; ``None`` if there is no such study.

    Example:
        Needs a storage, so it is not run as a doctest.

        >>> finished_trials(open_storage("sqlite:///results/seed/tune.db", None), "seed-torch")   # doctest: +SKIP
        12
    """
    import optuna

    try:
        study = optuna.load_study(study_name=name, storage=store)
    except KeyError:  # Optuna's error for a study name the storage does not hold
        return None
    counts = study_counts(study)
    return sum(counts.get(state, 0) for state in FINISHED_STATES)


def study_counts(study: Any) -> dict[str, int]:
    """Number of trials per state name (``COMPLETE``, ``PRUNED``, ``FAIL``, ``RUNNING``, ...).

    Example:
        Needs a study, so it is not run as a doctest.

        >>> study_counts(result.study)   # doctest: +SKIP
        {'COMPLETE': 23, 'PRUNED': 17}
    """
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts


@dataclass
class TuneResult:
    """Outcome of one ``tune`` call (the study may hold trials from other runs and workers).

    Attributes:
        study_name: The Optuna study name.
        storage: The storage URL.
        backend: The backend every trial ran on.
        metric: The optimised history column and ``direction``.
        counts: Trials per state in the whole study.
        ran: Trials this call started.
        best_value: Best objective value so far (``None`` without a finished trial).
        best_params: ``{field: value}`` of the best trial.
        best_trial: Its number.
        best_spec: The spec with the best values set.
        study: The Optuna study (for ``trials_dataframe()`` and plots).
    """

    study_name: str
    storage: str
    backend: str
    metric: str
    direction: str
    counts: dict[str, int]
    ran: int
    best_value: float | None
    best_params: dict[str, Any]
    best_trial: int | None
    best_spec: Spec | None
    study: Any = field(repr=False, default=None)


def _check_study(study: Any, spec: Spec, backend: str, column: str, direction: str, space: SearchSpace) -> None:
    """A study keeps one spec, backend, objective and space; refuse to mix another into it."""
    wanted = {"backend": backend, "metric": column, "fields": space.fields, "spec": spec.model_dump(mode="json")}
    attrs = study.user_attrs
    if study.direction.name.lower() != direction:
        raise SpecError(
            f"--study {study.study_name!r} {study.direction.name.lower()}s its objective, this run would "
            f"{direction} {column}; use another --study name",
            path="study",
        )
    for key, value in wanted.items():
        if key not in attrs:
            study.set_user_attr(key, value)
        elif attrs[key] != value:
            what = "spec" if key == "spec" else f"{key} ({attrs[key]!r} there, {value!r} here)"
            raise SpecError(
                f"--study {study.study_name!r} in this storage was run with a different {what}; "
                "use another --study name (or the same spec, backend, metric and space to continue it)",
                path="study",
            )


def _sampler(search: str, space: SearchSpace, seed: int) -> Any:
    import optuna

    if search in ("grid", "random"):  # grid: every trial is enqueued with fixed parameters (enqueue_grid)
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=TPE_STARTUP_TRIALS)


def _point(params: dict[str, Any], names: list[str]) -> tuple[Any, ...] | None:
    return tuple(params[n] for n in names) if all(n in params for n in names) else None


def enqueue_grid(study: Any, space: SearchSpace, want: int | None) -> int:
    """Enqueue the grid points no finished, running or waiting trial has; return the trials to run.

    The grid is enumerated here (every combination of the space's grid values, in the
    space's order) and each point is enqueued with fixed parameters, so a point whose trial
    failed or was killed (``FAIL``) is simply enqueued again by the next run, and the order
    does not depend on a sampler seed. (Optuna's GridSampler counts a failed point as
    visited, and identifies points by their index in a seed-shuffled list.) Trials left
    ``WAITING`` by a killed run are run first and count toward ``want``.

    Args:
        study: The Optuna study.
        space: The search space.
        want: Trials to run in this call; ``None`` = the rest of the grid.

    Example:
        Needs a study, so it is not run as a doctest.

        >>> enqueue_grid(study, space, None)   # doctest: +SKIP
        4
    """
    from optuna.trial import TrialState

    grid = space.grid()
    names = list(grid)
    taken: set[tuple[Any, ...]] = set()
    waiting = 0
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.WAITING:
            waiting += 1
            point = _point(t.system_attrs.get("fixed_params", {}), names)
        elif t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING):
            point = _point(t.params, names)
        else:  # FAIL: its point is run again
            continue
        if point is not None:
            taken.add(point)
    missing = [p for p in itertools.product(*grid.values()) if p not in taken]
    limit = len(missing) + waiting if want is None else min(want, len(missing) + waiting)
    new = missing[: max(0, limit - waiting)]
    for point in new:
        study.enqueue_trial(dict(zip(names, point, strict=True)))
    return min(limit, waiting + len(new))


def open_study(
    spec: Spec,
    space: SearchSpace,
    backend: str,
    store: Any,
    name: str,
    column: str,
    direction: Direction,
    search: str,
    prune: bool,
    seed: int,
) -> Any:
    """Create or load the study, check it matches this spec and objective, and attach the sampler and pruner.

    The sampler seed is offset by the trials the study already has, so that a continued
    study does not replay the first run's random draws.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    probe = optuna.create_study(storage=store, study_name=name, direction=direction, load_if_exists=True)
    _check_study(probe, spec, backend, column, direction, space)
    existing = len(probe.get_trials(deepcopy=False))
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS) if prune else optuna.pruners.NopPruner()
    )
    sampler = _sampler(search, space, seed + existing)
    return optuna.load_study(study_name=name, storage=store, sampler=sampler, pruner=pruner)


def tune_result(
    study: Any, spec: Spec, storage: str, backend: str, column: str, direction: str, ran: int
) -> TuneResult:
    """The outcome of a ``tune`` call: the study's best finished trial and its trial counts."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    best = None
    if done:
        best = max(done, key=lambda t: t.value) if direction == "maximize" else min(done, key=lambda t: t.value)
    params = dict(best.params) if best is not None else {}
    return TuneResult(
        study_name=study.study_name,
        storage=storage,
        backend=backend,
        metric=column,
        direction=direction,
        counts=study_counts(study),
        ran=max(0, ran),
        best_value=float(best.value) if best is not None else None,
        best_params=params,
        best_trial=best.number if best is not None else None,
        best_spec=with_values(spec, params) if best is not None else None,
        study=study,
    )
