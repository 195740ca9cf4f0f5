"""Sweeps: one spec over a list of values for a field (or several), on every backend.

``duofit sweep examples/seed.toml --set optimizer.lr=0.1,0.01,0.001`` runs the
tutorial's learning-rate challenge; a sweep file holds the same in TOML:

```toml
[sweep]
spec = "seed.toml"                          # relative to this file
set = { "optimizer.lr" = [0.1, 0.01, 0.001] }
```

Several ``--set`` fields give every combination (scikit-learn's ``ParameterGrid``). Each
combination is a :func:`duofit.compare` (one worker process per backend); the results
are one table and one figure with every loss curve overlaid.

Example:
    Trains a model per value and backend, so it is not run as a doctest.

    >>> res = sweep("examples/seed.toml", {"optimizer.lr": [0.1, 0.01, 0.001]})  # doctest: +SKIP
    >>> res.table()[["optimizer.lr", "backend", "accuracy"]]                    # doctest: +SKIP
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from duofit.common.errors import SpecError
from duofit.common.loader import load_spec
from duofit.common.paths import parse_path, with_values
from duofit.common.plots import LossPanel, Mark, panel_grid, save_figure
from duofit.common.spec import Spec
from duofit.runner import Comparison, compare

__all__ = [
    "MAX_SWEEP_RUNS",
    "VERDICT_MARKERS",
    "SweepResult",
    "is_sweep_file",
    "load_sweep",
    "plot_sweep",
    "sweep",
]

MAX_SWEEP_RUNS = 1000  # combinations of one sweep; beyond this it is a tuning job (duofit tune)
_SAFE = re.compile(r"[^A-Za-z0-9._=,-]+")
# How each verdict is marked on the sweep plot ("fine" is not marked; another name gets "o").
VERDICT_MARKERS = {
    "diverged": "X",
    "unstable": "v",
    "exploding": "^",
    "vanishing": "_",
    "overfitting": "o",
    "underfitting": "s",
}


def is_sweep_file(path: str | Path) -> bool:
    """True for a TOML file whose only top-level table is ``[sweep]``.

    Example:
        >>> is_sweep_file("examples/lr_sweep.toml"), is_sweep_file("examples/seed.toml")
        (True, False)
    """
    p = Path(path)
    if p.suffix.lower() != ".toml" or not p.is_file():
        return False
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return False
    return set(doc) == {"sweep"}


def load_sweep(path: str | Path) -> tuple[Spec, dict[str, list[Any]]]:
    """Read a sweep file: the spec it names (relative to the file) and its ``set`` table.

    Raises:
        SpecError: unknown keys, a missing spec, or values that are not lists.

    Example:
        >>> spec, values = load_sweep("examples/lr_sweep.toml")
        >>> values
        {'optimizer.lr': [0.1, 0.01, 0.001]}
    """
    p = Path(path)
    doc = tomllib.loads(p.read_text(encoding="utf-8")).get("sweep", {})
    unknown = sorted(set(doc) - {"spec", "set"})
    if unknown:
        raise SpecError(f"{p}: sweep.{unknown[0]}: unknown key; allowed: spec, set", path=f"sweep.{unknown[0]}")
    if not isinstance(doc.get("spec"), str):
        raise SpecError(f'{p}: sweep.spec: give the spec file, e.g. spec = "seed.toml"', path="sweep.spec")
    table = doc.get("set")
    if not isinstance(table, dict) or not table:
        raise SpecError(
            f'{p}: sweep.set: give field = [values], e.g. set = {{ "optimizer.lr" = [0.1, 0.01] }}', path="sweep.set"
        )
    values: dict[str, list[Any]] = {}
    for key, vals in table.items():
        if not isinstance(vals, list) or not vals:
            raise SpecError(f"{p}: sweep.set.{key}: give a non-empty list of values", path=f"sweep.set.{key}")
        values[key] = vals
    return load_spec(p.parent / doc["spec"]), values


def _label(setting: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in setting.items())


@dataclass
class SweepResult:
    """Every combination's comparison.

    Attributes:
        spec: The base spec.
        fields: The swept field paths.
        runs: ``[(setting, Comparison)]`` in run order; ``setting`` is ``{field: value}``.
    """

    spec: Spec
    fields: list[str]
    runs: list[tuple[dict[str, Any], Comparison]]

    def table(self) -> Any:
        """One row per combination and backend: the values, test metrics, losses, epochs, time, verdict."""
        import pandas as pd

        rows = []
        for setting, cmp in self.runs:
            for name, res in cmp.results.items():
                summary = res.summary()
                rows.append({**setting, **summary, "backend": name})
        frame = pd.DataFrame(rows)
        first = [*self.fields, "backend"]
        return frame[first + [c for c in frame.columns if c not in first]]

    def histories(self) -> Any:
        """Every run's history in long form, with the swept values and ``backend`` columns."""
        import pandas as pd

        frames = [
            res.history.assign(backend=name, **{k: v for k, v in setting.items()})
            for setting, cmp in self.runs
            for name, res in cmp.results.items()
        ]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def save(self, folder: str | Path) -> dict[str, Path]:
        """Write ``sweep.csv``, ``sweep_history.csv``, ``sweep_curves.png`` and one folder per run."""
        from duofit.common.io import atomic_write_text

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        for setting, cmp in self.runs:
            cmp.save(out / _SAFE.sub("_", _label(setting)))
        paths = {"table": out / "sweep.csv", "history": out / "sweep_history.csv", "plot": out / "sweep_curves.png"}
        atomic_write_text(paths["table"], self.table().to_csv(index=False))
        atomic_write_text(paths["history"], self.histories().to_csv(index=False))
        plot_sweep(self, paths["plot"])
        return paths


def plot_sweep(result: SweepResult, path: str | Path) -> Path:
    """Training and validation loss of every run, overlaid: one color per value, one line style per backend.

    A run whose verdict is not ``fine`` has it in its label and a marker (:data:`VERDICT_MARKERS`)
    where it starts, on the curve's last finite value at or before that epoch.

    Example:
        Needs a finished sweep, so it is not run as a doctest.

        >>> plot_sweep(res, "sweep_curves.png")   # doctest: +SKIP
    """
    styles = ["-", "--", ":", "-."]
    fig, axes = panel_grid(2, panel_size=(6.0, 4.4))
    panels = [
        LossPanel(ax, title=title, log=True)
        for ax, title in zip(axes, ("training loss", "validation loss"), strict=True)
    ]
    backends: list[str] = []
    for i, (setting, cmp) in enumerate(result.runs):
        for name, res in cmp.results.items():
            if name not in backends:
                backends.append(name)
            k = backends.index(name)
            # the first backend wide and pale, the others thin on top: identical curves stay visible
            look = {"color": f"C{i % 10}", "linestyle": styles[k % len(styles)], "linewidth": 2.8 if k == 0 else 1.2}
            look["alpha"] = 0.45 if k == 0 else 1.0
            verdict = res.verdict
            shown = verdict["name"] != "fine"
            label = f"{_label(setting)} ({name}{', ' + verdict['name'] if shown else ''})"
            mark = Mark(None, verdict.get("epoch"), VERDICT_MARKERS.get(verdict["name"], "o")) if shown else None
            stop = res.stopped_epoch if res.diverged else None
            for panel, column in zip(panels, ("loss", "val_loss"), strict=True):
                panel.add(res.history["epoch"], res.history[column], stop=stop, mark=mark, label=label, **look)
    panels[0].finish(legend=False)
    panels[1].finish(legend_size=8)
    fig.suptitle(f"{result.spec.name or 'sweep'}: {', '.join(result.fields)}")
    return save_figure(fig, path)


def sweep(
    spec: Spec | str | Path | Mapping[str, Any],
    values: Mapping[str, Sequence[Any]],
    backends: Sequence[str] | None = None,
    *,
    isolate: bool = True,
    progress: bool = False,
    out: str | Path | None = None,
) -> SweepResult:
    """Run a spec for every combination of field values on every backend.

    Args:
        spec: The base spec (file, mapping or Spec).
        values: ``{dotted field path: [values]}``.
        backends: Backend names; ``None`` = all installed.
        isolate: One worker process per backend and combination (as ``compare``).
        progress: Progress bars.
        out: If given, save there (see :meth:`SweepResult.save`).

    Returns:
        A :class:`SweepResult`.

    Raises:
        SpecError: an unknown field or a value the spec refuses (checked before any run).

    Example:
        Trains on the torch backend, so it is not run as a doctest.

        >>> sweep("examples/seed.toml", {"optimizer.lr": [0.1, 0.01]}, ["torch"]).table()   # doctest: +SKIP
    """
    from sklearn.model_selection import ParameterGrid

    base = load_spec(spec)
    if not values:
        raise SpecError("nothing to sweep: give --set FIELD=V1,V2,...", path="set")
    for key in values:
        parse_path(key)
    grid = list(ParameterGrid({k: list(v) for k, v in values.items()}))
    if len(grid) > MAX_SWEEP_RUNS:
        raise SpecError(f"the sweep has {len(grid):,} combinations (limit {MAX_SWEEP_RUNS:,})", path="set")
    fields = list(values)
    settings = [{k: setting[k] for k in fields} for setting in grid]
    specs = [with_values(base, s, source="--set") for s in settings]  # every value checked before any run
    runs = [
        (setting, compare(one, backends, isolate=isolate, progress=progress))
        for setting, one in zip(settings, specs, strict=True)
    ]
    result = SweepResult(spec=base, fields=fields, runs=runs)
    if out is not None:
        result.save(out)
    return result
