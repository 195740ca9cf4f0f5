"""A trial whose process died before its first heartbeat is still found stale."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from duofit.tuning.storage import open_storage, stale_without_heartbeat

pytestmark = pytest.mark.slow

GRACE_S = 2  # open_storage(heartbeat_s=1) -> grace period of two heartbeats


def _running_trial(storage, study_id: int, started: datetime.datetime) -> int:
    """A RUNNING trial created the way Optuna does, but with no heartbeat ever written."""
    import optuna

    template = optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING)
    trial_id = storage.create_new_trial(study_id, template_trial=template)
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    with _create_scoped_session(storage.scoped_session) as session:
        row = session.get(models.TrialModel, trial_id)
        row.datetime_start = started
    return trial_id


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_trial_without_heartbeat_is_stale_only_after_the_grace_period(tmp_path: Path) -> None:
    import optuna

    storage = open_storage(str(tmp_path / "t.db"), heartbeat_s=1)
    study = optuna.create_study(storage=storage, study_name="s")
    now = datetime.datetime.now()
    old = _running_trial(storage, study._study_id, now - datetime.timedelta(seconds=10 * GRACE_S))
    fresh = _running_trial(storage, study._study_id, now)
    live = _running_trial(storage, study._study_id, now - datetime.timedelta(seconds=10 * GRACE_S))
    storage.record_heartbeat(live)  # a live process that has written its heartbeat just now

    assert stale_without_heartbeat(storage, study._study_id, GRACE_S) == [old]
    optuna.storages.fail_stale_trials(study)
    states = {t._trial_id: t.state.name for t in study.get_trials(deepcopy=False)}
    assert states == {old: "FAIL", fresh: "RUNNING", live: "RUNNING"}
