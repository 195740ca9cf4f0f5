"""Tuning studies: grid, random, Bayesian with pruning, resuming, outputs, both backends."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from duofit.cli import main
from duofit.common.errors import SpecError
from duofit.common.loader import load_spec
from duofit.tuning.report import agreement, save_tuning
from duofit.tuning.search import objective_column, tune
from duofit.tuning.space import load_space

from .conftest import TINY_SPACE, tiny_seed

pytestmark = pytest.mark.torch


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'tune.db'}"


def test_objective_column_and_direction() -> None:
    spec = load_spec(tiny_seed())
    assert objective_column(spec, None) == ("val_accuracy", "maximize")
    assert objective_column(spec, "val_loss") == ("val_loss", "minimize")
    with pytest.raises(SpecError, match="allowed: loss, accuracy"):
        objective_column(spec, "r2")


def test_grid_search_runs_every_point_once_and_writes_results(tmp_path: Path) -> None:
    spec, space = load_spec(tiny_seed()), load_space(TINY_SPACE)
    res = tune(spec, space, "torch", search="grid", storage=_url(tmp_path), study_name="g")
    assert res.counts == {"COMPLETE": 4} and res.ran == 4
    seen = {(t.params["optimizer.lr"], t.params["model.layers[0].units"]) for t in res.study.trials}
    assert seen == {(0.1, 2), (0.1, 8), (0.01, 2), (0.01, 8)}
    again = tune(spec, space, "torch", search="grid", storage=_url(tmp_path), study_name="g")
    assert again.ran == 0 and again.counts == {"COMPLETE": 4}  # a finished grid is not re-run
    paths = save_tuning(res, tmp_path / "out")
    trials = pd.read_csv(paths["trials"])
    assert len(trials) == 4 and "params_optimizer.lr" in trials and "user_attrs_test_accuracy" in trials
    best = load_spec(paths["best_spec"])
    assert best.optimizer.lr == res.best_params["optimizer.lr"]
    assert paths["history_png"].stat().st_size > 1000


def test_grid_points_of_killed_trials_are_run_again(tmp_path: Path) -> None:
    """A trial killed mid-run is FAIL; its grid point is run again (Optuna's GridSampler would skip it)."""
    import optuna

    from duofit.tuning.storage import open_storage

    spec, space = load_spec(tiny_seed()), load_space(TINY_SPACE)
    tune(spec, space, "torch", search="grid", n_trials=1, storage=_url(tmp_path), study_name="g")
    study = optuna.load_study(
        study_name="g", storage=open_storage(_url(tmp_path)), sampler=optuna.samplers.GridSampler(space.grid())
    )
    dead = study.ask()  # killed before it suggested its parameters: only its grid_id is stored
    study.tell(dead, state=optuna.trial.TrialState.FAIL)
    late = study.ask()  # killed after suggesting them
    space.suggest(late)
    study.tell(late, state=optuna.trial.TrialState.FAIL)

    res = tune(spec, space, "torch", search="grid", storage=_url(tmp_path), study_name="g")
    assert res.ran == 3 and res.counts == {"COMPLETE": 4, "FAIL": 2}
    done = [
        (t.params["optimizer.lr"], t.params["model.layers[0].units"]) for t in res.study.trials if t.value is not None
    ]
    assert sorted(done) == sorted({(0.1, 2), (0.1, 8), (0.01, 2), (0.01, 8)})  # every point once
    assert tune(spec, space, "torch", search="grid", storage=_url(tmp_path), study_name="g").ran == 0


def test_random_search_is_seeded_and_additive(tmp_path: Path) -> None:
    spec, space = load_spec(tiny_seed()), load_space(TINY_SPACE)
    a = tune(spec, space, "torch", search="random", n_trials=3, storage=_url(tmp_path), study_name="r", seed=1)
    b = tune(spec, space, "torch", search="random", n_trials=3, storage=_url(tmp_path), study_name="r", seed=1)
    assert a.counts == {"COMPLETE": 3} and b.counts == {"COMPLETE": 6}  # the same command again continues
    lrs = [t.params["optimizer.lr"] for t in b.study.trials]
    assert len(set(lrs)) == 6  # the second run does not replay the first run's draws
    c = tune(spec, space, "torch", search="random", n_trials=3, storage=_url(tmp_path / "other"), seed=1)
    assert [t.params for t in c.study.trials] == [t.params for t in b.study.trials[:3]]  # same seed, same draws


def test_resume_continues_to_the_requested_total(tmp_path: Path) -> None:
    spec, space = load_spec(tiny_seed()), load_space(TINY_SPACE)
    first = tune(spec, space, "torch", search="bayes", total_trials=3, storage=_url(tmp_path), study_name="t")
    assert first.ran == 3
    second = tune(spec, space, "torch", search="bayes", total_trials=5, storage=_url(tmp_path), study_name="t")
    assert second.ran == 2 and sum(second.counts.values()) == 5
    third = tune(spec, space, "torch", search="bayes", total_trials=5, storage=_url(tmp_path), study_name="t")
    assert third.ran == 0


def test_bayes_reports_each_epoch_and_prunes_bad_trials(tmp_path: Path) -> None:
    doc = tiny_seed(epochs=8)
    space = load_space(
        {"params": [{"field": "optimizer.lr", "type": "categorical", "choices": [1e-5, 0.05]}], "metric": "loss"}
    )
    res = tune(load_spec(doc), space, "torch", search="bayes", n_trials=12, storage=_url(tmp_path), seed=0)
    trials = res.study.trials
    assert all(len(t.intermediate_values) >= 1 for t in trials)  # per-epoch val_loss reached Optuna
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    assert pruned, "no trial was pruned"
    assert all(t.params["optimizer.lr"] == 1e-5 for t in pruned)  # only the hopeless learning rate
    assert all(t.user_attrs["pruned_at_epoch"] < 8 for t in pruned)
    assert res.best_params == {"optimizer.lr": 0.05}


def test_a_study_refuses_another_spec_or_metric(tmp_path: Path) -> None:
    spec, space = load_spec(tiny_seed()), load_space(TINY_SPACE)
    tune(spec, space, "torch", search="random", n_trials=1, storage=_url(tmp_path), study_name="s")
    other = load_spec(tiny_seed(epochs=6))
    with pytest.raises(SpecError, match="different spec"):
        tune(other, space, "torch", search="random", n_trials=1, storage=_url(tmp_path), study_name="s")
    with pytest.raises(SpecError, match="different metric"):
        tune(spec, space, "torch", n_trials=1, storage=_url(tmp_path), study_name="s", metric="f1")


@pytest.mark.keras
def test_keras_study_in_process(tmp_path: Path) -> None:
    spec, space = load_spec(tiny_seed()), load_space(TINY_SPACE)
    res = tune(spec, space, "keras", search="random", n_trials=2, storage=_url(tmp_path), seed=0)
    assert res.counts == {"COMPLETE": 2} and res.study_name == "seed-keras"
    assert {t.user_attrs["backend"] for t in res.study.trials} == {"keras"}


def test_agreement_table() -> None:
    best = {
        "torch": {"metric": "val_accuracy", "best_value": 0.95, "best_params": {"optimizer.lr": 0.010, "u": 8}},
        "keras": {"metric": "val_accuracy", "best_value": 0.95, "best_params": {"optimizer.lr": 0.015, "u": 4}},
    }
    table = agreement(best, {"optimizer.lr"})
    assert table.loc["optimizer.lr", "agree"] == "yes" and table.loc["u", "agree"] == "no"


def test_tune_cli_twice_continues_the_study(
    tiny_spec_file: Path, tiny_space_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["tune", str(tiny_spec_file), "--space", str(tiny_space_file), "--search", "bayes", "--trials", "2"]
    argv += ["--backend", "torch", "--storage", _url(tmp_path), "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "4 trials (4 complete); ran 2 now" in out
    assert "best val_accuracy" in out
    assert len(pd.read_csv(tmp_path / "out" / "trials.csv")) == 4
