"""Where tuning studies live: an SQLite file by default, or any SQLAlchemy database URL.

An SQLite file needs no server and survives a killed process (each finished trial is
committed); PostgreSQL (``postgresql+psycopg2://user@host/db``) lets processes on several
machines work on one study. A heartbeat thread marks a trial whose process died as
``FAIL`` once it has been silent for twice the interval, so a resumed study does not wait
on it. A process killed in the few milliseconds between creating a trial and writing its
first heartbeat leaves a ``RUNNING`` trial with no heartbeat at all, which Optuna never
marks stale; :class:`DurableStorage` treats such a trial as stale once it is older than the
grace period, so no kill point leaves a trial ``RUNNING`` forever.

Example:
    Not run as a doctest: it creates a database file.

    >>> storage = open_storage("results/seed/tune.db")   # doctest: +SKIP
"""

from __future__ import annotations

import datetime
import time
import warnings
from pathlib import Path
from typing import Any

from duofit.common.errors import SpecError
from duofit.tuning.compat import check_stale_trials, rdb_internals

__all__ = ["HEARTBEAT_S", "open_storage", "stale_without_heartbeat", "storage_url"]

HEARTBEAT_S = 10  # a running trial writes a heartbeat this often; silent for 2x -> marked FAIL
SQLITE_TIMEOUT_S = 60  # wait this long for another connection's write lock (the heartbeat thread) before failing
TABLE_CREATION_TRIES = 5  # fresh database opened by several workers at once: retry the loser's CREATE TABLE


def storage_url(storage: str) -> str:
    """A plain file path becomes an SQLite URL; an SQLite file's folder is created.

    Example:
        >>> storage_url("postgresql+psycopg2://me@db.example/tuning")
        'postgresql+psycopg2://me@db.example/tuning'
    """
    from sqlalchemy.engine import make_url

    url = storage if "://" in storage else f"sqlite:///{Path(storage).resolve()}"
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy.exc.ArgumentError and friends: the URL is malformed
        raise SpecError(f"--storage {storage!r} is not a database URL ({exc})", path="storage") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    return url


def stale_without_heartbeat(storage: Any, study_id: int, grace_s: float) -> list[int]:
    """Ids of ``RUNNING`` trials that never wrote a heartbeat and started over ``grace_s`` ago.

    A live trial writes its first heartbeat milliseconds after it is created, so a trial
    without one after the grace period belongs to a process that died in between.
    ``datetime_start`` is written by the creating process with ``datetime.now()``, so the
    comparison uses this machine's clock the same way.

    Example:
        Not run as a doctest: it needs an open storage holding a study.

        >>> stale_without_heartbeat(storage, study_id=1, grace_s=20)   # doctest: +SKIP
        [7]
    """
    from optuna.trial import TrialState

    models, _create_scoped_session = rdb_internals()

    cutoff = datetime.datetime.now() - datetime.timedelta(seconds=grace_s)
    with _create_scoped_session(storage.scoped_session) as session:  # read-only; Optuna fails the trials
        rows = (
            session.query(models.TrialModel)
            .filter(models.TrialModel.state == TrialState.RUNNING)
            .filter(models.TrialModel.study_id == study_id)
            .all()
        )
        return [
            row.trial_id
            for row in rows
            if not row.heartbeats and row.datetime_start is not None and row.datetime_start < cutoff
        ]


def _durable_class() -> type:
    """RDBStorage whose stale-trial check also catches trials killed before their first heartbeat."""
    import optuna

    check_stale_trials(optuna.storages.RDBStorage)

    class DurableStorage(optuna.storages.RDBStorage):
        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            ids = list(super()._get_stale_trial_ids(study_id))
            grace = self.grace_period if self.grace_period is not None else 2 * (self.heartbeat_interval or 0)
            ids += [i for i in stale_without_heartbeat(self, study_id, grace) if i not in ids]
            return ids

    return DurableStorage


def open_storage(storage: str, heartbeat_s: int | None = HEARTBEAT_S) -> Any:
    """An Optuna RDB storage for an SQLAlchemy URL (or an SQLite file path).

    Two workers may open a fresh database at the same moment; creating the tables is
    retried so the loser of that race simply uses the winner's tables.

    Raises:
        SpecError: malformed URL, missing database driver, or unreachable server.

    Example:
        Not run as a doctest: it creates a database file.

        >>> open_storage("sqlite:///results/tune.db")   # doctest: +SKIP
    """
    import optuna
    import sqlalchemy.exc

    url = storage_url(storage)
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": SQLITE_TIMEOUT_S}
    else:
        kwargs["pool_pre_ping"] = True
    last: Exception | None = None
    for attempt in range(TABLE_CREATION_TRIES):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return _durable_class()(
                    url,
                    engine_kwargs=kwargs,
                    heartbeat_interval=heartbeat_s,
                    grace_period=2 * heartbeat_s if heartbeat_s else None,
                )
        except ModuleNotFoundError as exc:
            raise SpecError(
                f"--storage {storage!r} needs the database driver {exc.name!r}; for PostgreSQL: "
                "pip install 'duofit[tune-postgres]' (psycopg2-binary)",
                path="storage",
            ) from None
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as exc:
            last = exc  # another worker is creating the same tables right now
            time.sleep(0.5 * (attempt + 1))
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.ArgumentError, ValueError) as exc:
            raise SpecError(f"--storage {storage!r}: cannot open the database: {exc}", path="storage") from None
    raise SpecError(f"--storage {storage!r}: cannot create the study tables: {last}", path="storage")
