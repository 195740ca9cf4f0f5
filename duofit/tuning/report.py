"""What a tuning run leaves on disk, and the cross-backend comparison of best hyperparameters.

Files (each written atomically): ``trials.csv`` (every trial of the study: number, state,
value, parameters, test metrics, times), ``best_spec.toml`` (the spec with the best
values set; run it with ``duofit run``), ``best.json`` and ``optimization_history.png``
(objective per trial and the best so far).

Example:
    Needs a finished study, so it is not run as a doctest.

    >>> paths = save_tuning(result, "results/seed/tune/seed-torch")   # doctest: +SKIP
    >>> sorted(paths)                                                 # doctest: +SKIP
    ['best', 'best_spec', 'history_png', 'trials']
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from duofit.common.io import atomic_write_text, write_json
from duofit.common.loader import spec_to_toml
from duofit.common.plots import save_figure
from duofit.tuning.study import TuneResult

__all__ = ["AGREE_FACTOR", "AGREE_REL", "agreement", "load_best", "plot_history", "save_tuning", "trials_frame"]

# When do two backends' best values "agree"? Tuning is noisy, so exact equality is too strict.
# Log-scale floats: within a factor of 2 (one notch of a typical 1-2-5 / 10x learning-rate grid).
AGREE_FACTOR = 2.0
# Linear floats: within 10% of the range's typical magnitude. Integers and choices: equal.
AGREE_REL = 0.1


def trials_frame(result: TuneResult) -> Any:
    """Every trial of the study as a DataFrame (Optuna's ``trials_dataframe``, durations in seconds).

    Example:
        Needs a finished study, so it is not run as a doctest.

        >>> trials_frame(result)[["number", "state", "value"]]   # doctest: +SKIP
    """
    frame = result.study.trials_dataframe(
        attrs=("number", "state", "value", "params", "user_attrs", "datetime_start", "datetime_complete", "duration")
    )
    if "duration" in frame:
        frame["duration"] = frame["duration"].dt.total_seconds()
    return frame


def plot_history(result: TuneResult, path: str | Path) -> Path:
    """Objective value per finished trial and the best-so-far line, as a PNG.

    Example:
        Needs a finished study, so it is not run as a doctest.

        >>> plot_history(result, "optimization_history.png")   # doctest: +SKIP
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    trials = result.study.get_trials(deepcopy=False)
    done = [(t.number, t.value) for t in trials if t.state.name == "COMPLETE"]
    pruned = [
        (t.number, t.intermediate_values[max(t.intermediate_values)])
        for t in trials
        if t.state.name == "PRUNED" and t.intermediate_values
    ]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    if done:
        xs, ys = zip(*done, strict=True)
        ax.scatter(xs, ys, color="C0", s=18, label="trial")
        pick = max if result.direction == "maximize" else min
        best, line = None, []
        for y in ys:
            best = y if best is None else pick(best, y)
            line.append(best)
        ax.step(xs, line, where="post", color="C3", label="best so far")
    if pruned:
        xs, ys = zip(*pruned, strict=True)
        ax.scatter(xs, ys, color="0.6", marker="x", s=18, label="pruned (last reported)")
    ax.set(xlabel="trial", ylabel=result.metric, title=f"{result.study_name} ({result.backend}, {result.direction})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.grid(alpha=0.3)
    if done or pruned:
        ax.legend()
    return save_figure(fig, path)  # fits the texts to the fonts, then lays out


def save_tuning(result: TuneResult, folder: str | Path) -> dict[str, Path]:
    """Write ``trials.csv``, ``best.json``, ``best_spec.toml`` and ``optimization_history.png``.

    Returns:
        ``{"trials", "best", "best_spec", "history_png"}`` -> paths (``best_spec`` only with a finished trial).

    Example:
        Needs a finished study, so it is not run as a doctest.

        >>> save_tuning(result, "results/seed/tune/seed-torch")["best_spec"]   # doctest: +SKIP
        PosixPath('results/seed/tune/seed-torch/best_spec.toml')
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"trials": out / "trials.csv", "best": out / "best.json", "history_png": out / "optimization_history.png"}
    atomic_write_text(paths["trials"], trials_frame(result).to_csv(index=False))
    write_json(
        paths["best"],
        {
            "study": result.study_name,
            "storage": result.storage,
            "backend": result.backend,
            "metric": result.metric,
            "direction": result.direction,
            "best_value": result.best_value,
            "best_trial": result.best_trial,
            "best_params": result.best_params,
            "counts": result.counts,
        },
    )
    if result.best_spec is not None:
        paths["best_spec"] = out / "best_spec.toml"
        atomic_write_text(paths["best_spec"], spec_to_toml(result.best_spec))
    plot_history(result, paths["history_png"])
    return paths


def load_best(folder: str | Path) -> dict[str, Any]:
    """Read ``best.json`` written by :func:`save_tuning`.

    Example:
        Needs a finished study, so it is not run as a doctest.

        >>> load_best("results/seed/tune/seed-torch")["best_params"]   # doctest: +SKIP
        {'optimizer.lr': 0.0566, 'model.layers[0].units': 11, 'train.batch_size': 32}
    """
    return json.loads((Path(folder) / "best.json").read_text(encoding="utf-8"))


def _same(a: Any, b: Any, log: bool) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, float | int) or not isinstance(b, float | int):
        return bool(a == b)
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    if log and a > 0 and b > 0:
        return max(a, b) / min(a, b) <= AGREE_FACTOR
    scale = max(abs(a), abs(b)) or 1.0
    return abs(a - b) <= AGREE_REL * scale


def _text(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def agreement(best: Mapping[str, Mapping[str, Any]], log_fields: set[str]) -> Any:
    """Best value and parameters per backend side by side, with an ``agree`` column per field.

    Args:
        best: ``{backend: best.json contents}``.
        log_fields: Fields searched on a log scale (compared by ratio, see AGREE_FACTOR).

    Returns:
        DataFrame indexed by ``metric`` and each field, one column per backend plus ``agree``.

    Example:
        Needs finished studies, so it is not run as a doctest.

        >>> agreement({"torch": b1, "keras": b2}, {"optimizer.lr"})   # doctest: +SKIP
    """
    import pandas as pd

    names = list(best)
    fields = sorted({f for b in best.values() for f in b.get("best_params", {})})
    rows = []
    values = {n: _text(best[n].get("best_value")) for n in names}
    rows.append({"": f"best {next(iter(best.values())).get('metric', '')}", **values, "agree": ""})
    for f in fields:
        vals = {n: best[n].get("best_params", {}).get(f) for n in names}
        present = [v for v in vals.values() if v is not None]
        agree = len(present) == len(names) and all(_same(present[0], v, f in log_fields) for v in present[1:])
        rows.append({"": f, **{n: _text(v) for n, v in vals.items()}, "agree": "yes" if agree else "no"})
    frame = pd.DataFrame(rows).set_index("")
    frame.index.name = None
    return frame
