"""k-fold cross-validation of one spec on every backend, side by side.

Folds come from :mod:`duofit.tuning.folds` (seeded ``StratifiedKFold`` / ``KFold``;
``TimeSeriesSplit`` in time order for windows of a series; the scaler fitted inside each
fold). Fold ``i`` starts from fresh initial weights drawn by
the shared initializer with ``train.seed + i``, the same on every backend. Each backend
runs all its folds in one worker process of its own (``python -m duofit.tuning.worker``,
as ``duofit compare`` does with ``duofit.worker``); each fold's result is written once (into
``out/<backend>/fold_<i>/`` when an output folder is given) and read back from those files.

A metric undefined on a held-out fold (``nan``: e.g. precision when nothing was predicted
positive there) is left out of that metric's mean, never averaged as 0: the summary counts
those folds (``undefined``), the table says "3 of 5 folds" beside such a mean, and one
warning per metric and backend says how many folds and why (:meth:`CVResult.undefined_notes`).

Example:
    Not run as a doctest: it trains a model per fold on every installed backend.

    >>> cv = cross_validate("examples/seed.toml", n_folds=5)   # doctest: +SKIP
    >>> cv.table()                                             # doctest: +SKIP
                torch              keras
    accuracy    0.9560 ± 0.0146    0.9560 ± 0.0146
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from duofit.common.choice import resolve_backends
from duofit.common.isolated import spawn
from duofit.common.loader import load_spec
from duofit.common.metrics import UndefinedMetricWarning
from duofit.common.result import RunResult
from duofit.common.spec import Spec
from duofit.tuning.fitting import run_on_dataset
from duofit.tuning.folds import Fold, choose_splitter, make_folds

__all__ = ["STD_DDOF", "CVResult", "cross_validate", "fold_spec", "run_folds"]

# Spread across folds: numpy's default population std (ddof = 0), what the tutorial's
# `scores.std()` and scikit-learn's cross-validation examples print.
STD_DDOF = 0

SpecLike = str | Path | Mapping[str, Any] | Spec


def fold_spec(spec: Spec, index: int) -> Spec:
    """The spec fold ``index`` trains: fresh initial weights from ``train.seed + index``.

    Example:
        >>> from duofit.common.loader import load_spec
        >>> spec = load_spec("examples/seed.toml")
        >>> fold_spec(spec, 2).train.seed == spec.train.seed + 2
        True
    """
    return spec.model_copy(update={"train": spec.train.model_copy(update={"seed": spec.train.seed + index})})


def run_folds(
    spec: Spec, folds: Sequence[Fold], backend: str, progress: bool = False, out: Path | None = None
) -> list[RunResult]:
    """Train every fold on one backend in this process.

    Args:
        spec: The spec.
        folds: The folds (:func:`~duofit.tuning.folds.make_folds`).
        backend: Backend name.
        progress: Show a progress bar per fold.
        out: If given, each fold's result is written into ``out/fold_<i>/``.

    Example:
        Not run as a doctest: it trains three models and needs torch installed.

        >>> results = run_folds(spec, make_folds(spec, 3), "torch")   # doctest: +SKIP
    """
    results = []
    for fold in folds:
        bar = None
        if progress:
            from duofit.common.plots import progress_bar

            bar = progress_bar(f"{backend} fold {fold.index + 1}/{len(folds)}", spec.train.epochs)
        with warnings.catch_warnings():  # said once per metric over the folds (CVResult.undefined_notes)
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            result = run_on_dataset(fold_spec(spec, fold.index), fold.dataset, backend, bar)
        if out is not None:
            result.save(out / f"fold_{fold.index + 1}")
        results.append(result)
    return results


@dataclass
class CVResult:
    """Cross-validation results of one spec on several backends.

    Attributes:
        spec: The spec.
        folds: The folds (indices, scaler statistics, arrays).
        results: ``{backend: [RunResult per fold]}``.
        splitter: ``StratifiedKFold``, ``KFold`` or ``TimeSeriesSplit``.
        seed: The splitter's shuffling seed (``None`` for ``TimeSeriesSplit``, which does not shuffle).
        skipped: ``{backend: reason}`` for backends that were not run.
        folder: Where the runs wrote their results (``folder/<backend>/fold_<i>/``), if anywhere.
    """

    spec: Spec
    folds: list[Fold]
    results: dict[str, list[RunResult]]
    splitter: str
    seed: int | None
    skipped: dict[str, str]
    folder: Path | None = None

    @property
    def metric_names(self) -> list[str]:
        """The summarised columns: the spec's metrics, then the held-out fold's final loss."""
        return [*self.spec.metric_columns, "final_val_loss"]

    def fold_table(self) -> Any:
        """One row per backend and fold: sizes, seed, test metrics, epochs, losses, time."""
        import pandas as pd

        rows = []
        for backend, results in self.results.items():
            for fold, res in zip(self.folds, results, strict=True):
                summary = res.summary()
                rows.append(
                    {
                        "backend": backend,
                        "fold": fold.index + 1,
                        "init_seed": res.spec.train.seed,
                        "n_train": len(fold.train_idx),
                        "n_val": 0 if fold.dataset.val_is_test else len(fold.val_idx),
                        "n_test": len(fold.test_idx),
                        **{k: v for k, v in summary.items() if k != "backend"},
                    }
                )
        return pd.DataFrame(rows)

    def summary(self) -> Any:
        """Long form: ``backend, metric, mean, std, min, max, folds, undefined`` over the folds.

        ``mean`` .. ``max`` are over the folds where the value is defined; ``undefined``
        counts the others (``nan``); all undefined gives ``nan``.
        """
        import pandas as pd

        table = self.fold_table()
        rows = []
        for backend in self.results:
            part = table[table["backend"] == backend]
            for name in self.metric_names:
                values = part[name].to_numpy(dtype=np.float64) if name in part else np.array([np.nan])
                defined = values[~np.isnan(values)]
                some = defined.size > 0
                rows.append(
                    {
                        "backend": backend,
                        "metric": name,
                        "mean": float(np.mean(defined)) if some else float("nan"),
                        "std": float(np.std(defined, ddof=STD_DDOF)) if some else float("nan"),
                        "min": float(np.min(defined)) if some else float("nan"),
                        "max": float(np.max(defined)) if some else float("nan"),
                        "folds": len(values),
                        "undefined": len(values) - int(defined.size),
                    }
                )
        return pd.DataFrame(rows)

    def undefined_notes(self) -> list[str]:
        """One line per metric and backend with undefined folds: how many, the mean's folds, and why.

        Example: ``precision (torch): undefined in 2 of 5 folds, mean over 3 (fold 2: no sample
        was predicted positive)``.
        """
        notes = []
        for row in self.summary().itertuples():
            if not row.undefined or row.metric not in self.spec.metric_columns:
                continue
            results = self.results[str(row.backend)]
            whys = [(i + 1, r.diagnostics.get("undefined_metrics", {}).get(row.metric)) for i, r in enumerate(results)]
            why = next((f"fold {i}: {w}" for i, w in whys if w), "the folds' runs diverged")
            mean = f"mean over {row.folds - row.undefined}" if row.undefined < row.folds else "no mean"
            notes.append(
                f"{row.metric} ({row.backend}): undefined in {row.undefined} of {row.folds} folds, {mean} ({why})"
            )
        return notes

    def table(self) -> Any:
        """``mean ± std`` per metric (rows) and backend (columns), as text cells.

        A mean over fewer folds than were run says so: ``0.9000 ± 0.0100 (3 of 5 folds)``;
        with none: ``undefined in all 5 folds``.
        """
        summary = self.summary()
        columns = (summary["mean"], summary["std"], summary["folds"], summary["undefined"])
        cells = summary.assign(cell=[_cell(*values) for values in zip(*columns, strict=True)])
        return cells.pivot(index="metric", columns="backend", values="cell").reindex(
            index=self.metric_names, columns=list(self.results)
        )

    def histories(self) -> Any:
        """Every fold's history in long form with ``backend`` and ``fold`` columns."""
        import pandas as pd

        frames = [
            res.history.assign(backend=name, fold=i + 1)
            for name, results in self.results.items()
            for i, res in enumerate(results)
        ]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def save(self, folder: str | Path) -> dict[str, Path]:
        """Write ``cv_folds.csv``, ``cv_summary.csv``, ``cv_history.csv`` and ``<backend>/fold_<i>/``.

        The fold folders are written only when the runs did not already write them there.
        """
        from duofit.common.io import atomic_write_text

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        if self.folder is None or self.folder.resolve() != out.resolve():
            for name, results in self.results.items():
                for i, res in enumerate(results):
                    res.save(out / name / f"fold_{i + 1}")
        paths = {"folds": out / "cv_folds.csv", "summary": out / "cv_summary.csv", "history": out / "cv_history.csv"}
        atomic_write_text(paths["folds"], self.fold_table().to_csv(index=False))
        atomic_write_text(paths["summary"], self.summary().to_csv(index=False))
        atomic_write_text(paths["history"], self.histories().to_csv(index=False))
        return paths


def _cell(mean: float, std: float, folds: int, undefined: int) -> str:
    """One cell of :meth:`CVResult.table`: ``mean ± std``, and over how many folds when not all."""
    if undefined == folds:
        return f"undefined in all {folds} folds"
    return f"{mean:.4f} ± {std:.4f}" + (f" ({folds - undefined} of {folds} folds)" if undefined else "")


def _run_isolated(
    spec: Spec,
    backend: str,
    folder: Path,
    out: Path | None,
    n_folds: int,
    split: tuple[int | None, bool, str],
    progress: bool,
) -> list[RunResult]:
    """All folds of one backend in a fresh Python process; it writes them under ``out`` (or ``folder``).

    ``split`` is ``(seed, stratify, splitter)`` as :func:`~duofit.tuning.folds.make_folds` takes
    them: the worker rebuilds the same folds.
    """
    seed, stratify, splitter = split
    options = ["--folds", str(n_folds), "--splitter", splitter, *([] if seed is None else ["--seed", str(seed)])]
    options += [flag for flag, on in (("--no-stratify", not stratify), ("--progress", progress)) if on]
    if out is not None:
        options += ["--out", str(out)]
    spawn("duofit.tuning.worker", spec, backend, folder, "cross-validation", options)
    where = out if out is not None else folder
    return [RunResult.load(where / f"fold_{i + 1}") for i in range(n_folds)]


def _run_backends(
    spec: Spec,
    folds: list[Fold],
    names: Sequence[str],
    folder: Path | None,
    *,
    isolate: bool,
    split: tuple[int | None, bool, str],
    progress: bool,
) -> dict[str, list[RunResult]]:
    """Every fold on each named backend, in a worker process per backend when ``isolate``."""
    results: dict[str, list[RunResult]] = {}
    with tempfile.TemporaryDirectory(prefix="duofit-cv-") as tmp:
        for name in names:
            dest = folder / name if folder is not None else None
            if isolate:
                results[name] = _run_isolated(spec, name, Path(tmp) / name, dest, len(folds), split, progress)
            else:
                results[name] = run_folds(spec, folds, name, progress, out=dest)
    return results


def cross_validate(
    spec: SpecLike,
    n_folds: int = 5,
    backends: Sequence[str] | None = None,
    *,
    seed: int | None = None,
    stratify: bool = True,
    splitter: str = "auto",
    isolate: bool = True,
    progress: bool = False,
    out: str | Path | None = None,
) -> CVResult:
    """k-fold cross-validation of a spec on several backends (default: every installed one).

    Args:
        spec: A spec file path, mapping or :class:`~duofit.Spec`.
        n_folds: Number of folds.
        backends: Backend names; ``None`` = all installed.
        seed: The splitter's shuffling seed (default ``data.split_seed``); refused for windows of a
            series, which are never shuffled.
        stratify: ``StratifiedKFold`` for classification (``KFold`` when False or for regression).
        splitter: ``"auto"`` (default: ``TimeSeriesSplit`` for windows of a series, in time order;
            else as ``stratify`` says), or ``StratifiedKFold``, ``KFold``, ``TimeSeriesSplit``
            (:func:`~duofit.tuning.folds.choose_splitter` refuses a shuffled one on a series).
        isolate: Run each backend in its own worker process (default; Keras picks its
            backend once per process).
        progress: Show a progress bar per fold.
        out: If given, each fold's result is written into ``out/<backend>/fold_<i>/`` and
            the tables go there too (see :meth:`CVResult.save`).

    Returns:
        A :class:`CVResult`; ``.table()`` is ``mean ± std`` per metric and backend.

    Raises:
        SpecError, DataError: bad spec, data, a splitter the data cannot take, or too many folds for the data.
        BackendNotInstalledError: a named backend is missing.

    Example:
        Not run as a doctest: it trains five models and needs torch installed.

        >>> cv = cross_validate("examples/seed.toml", n_folds=5, backends=["torch"])  # doctest: +SKIP
        >>> cv.summary().query("metric == 'accuracy'")                                # doctest: +SKIP
    """
    spec = load_spec(spec)
    seed = None if seed is None else int(seed)
    folds = make_folds(spec, n_folds, seed, stratify, splitter)  # fails fast on bad data, before any worker
    name = choose_splitter(spec, folds[0].dataset.task, splitter, stratify, seed)
    if name != "TimeSeriesSplit":
        seed = spec.data.split_seed if seed is None else seed
    names, skipped = resolve_backends(backends)
    folder = Path(out) if out is not None else None
    results = _run_backends(
        spec, folds, names, folder, isolate=isolate, split=(seed, stratify, name), progress=progress
    )
    cv = CVResult(
        spec=spec,
        folds=folds,
        results=results,
        splitter=name,
        seed=seed,
        skipped=skipped,
        folder=folder,
    )
    if folder is not None:
        cv.save(folder)
    for note in cv.undefined_notes():
        warnings.warn(note, UndefinedMetricWarning, stacklevel=2)
    return cv
