"""Optuna internals the tuning storage relies on, gated on the Optuna version verified.

:class:`~duofit.tuning.storage.DurableStorage` reads trials through Optuna's private RDB
layer (``optuna.storages._rdb``: the SQLAlchemy models and ``_create_scoped_session``) and
extends the private ``RDBStorage._get_stale_trial_ids``, so that a trial whose process was
killed before its first heartbeat is failed like any stale one. See
:mod:`duofit.common.patches` for what happens with another Optuna version.

Example:
    Not run as a doctest: it imports Optuna's private storage modules (the ``tune`` extra).

    >>> models, scoped_session = rdb_internals()   # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from duofit.common.patches import Patch, apply_gate

__all__ = ["PATCHES", "RDB", "STALE_TRIALS", "VERIFIED", "check_stale_trials", "rdb_internals"]

VERIFIED = {"optuna": "5.0.0"}  # constraints.txt pin

RDB = Patch(
    "optuna_rdb_models",
    "optuna",
    VERIFIED["optuna"],
    "optuna.storages._rdb.models.TrialModel / optuna.storages._rdb.storage._create_scoped_session",
    "finds RUNNING trials that never wrote a heartbeat",
)
STALE_TRIALS = Patch(
    "optuna_stale_trial_ids",
    "optuna",
    VERIFIED["optuna"],
    "optuna.storages.RDBStorage._get_stale_trial_ids",
    "adds trials killed before their first heartbeat to Optuna's stale trials",
)
PATCHES = (RDB, STALE_TRIALS)


def rdb_internals() -> tuple[Any, Any]:
    """Optuna's RDB models module and its ``_create_scoped_session`` context manager.

    Raises:
        PatchError: this Optuna has no such private module or function.
    """
    try:
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session
    except ImportError:
        apply_gate(RDB, False)
        raise  # not reached: the gate raises
    apply_gate(RDB, hasattr(models, "TrialModel"))
    return models, _create_scoped_session


def check_stale_trials(storage_cls: type) -> None:
    """Gate the ``_get_stale_trial_ids`` override on Optuna's ``RDBStorage`` subclass ``storage_cls``."""
    apply_gate(STALE_TRIALS, callable(getattr(storage_cls, "_get_stale_trial_ids", None)))
