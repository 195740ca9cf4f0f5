"""k-fold cross-validation of one spec on every backend, side by side.

Folds come from :mod:`duofit.tuning.folds` (seeded ``StratifiedKFold`` / ``KFold``, the
scaler fitted inside each fold). Fold ``i`` starts from fresh initial weights drawn by
the shared initializer with ``train.seed + i``, the same on every backend. Each backend
runs all its folds in one worker process of its own (``python -m duofit.tuning.worker``,
as ``duofit compare`` does with ``duofit.worker``), and the results come back as files.

Example:
    >>> cv = cross_validate("examples/seed.toml", n_folds=5)   # doctest: +SKIP
    >>> cv.table()                                             # doctest: +SKIP
                torch              keras
    accuracy    0.9560 ± 0.0146    0.9560 ± 0.0146
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from duofit.common.errors import BackendError
from duofit.common.isolated import run_worker, write_spec
from duofit.common.loader import load_spec
from duofit.common.registry import BACKENDS, check_installed, installed_backends
from duofit.common.result import RunResult
from duofit.common.spec import Spec
from duofit.tuning.fitting import run_on_dataset
from duofit.tuning.folds import Fold, make_folds, splitter_name

__all__ = ["STD_DDOF", "CVResult", "cross_validate", "fold_spec", "run_folds"]

# Spread across folds: numpy's default population std (ddof = 0), what the seed chapter's
# `scores.std()` and scikit-learn's cross-validation examples print.
STD_DDOF = 0

SpecLike = str | Path | Mapping[str, Any] | Spec


def fold_spec(spec: Spec, index: int) -> Spec:
    """The spec fold ``index`` trains: fresh initial weights from ``train.seed + index``.

    Example:
        >>> fold_spec(spec, 2).train.seed == spec.train.seed + 2   # doctest: +SKIP
        True
    """
    return spec.model_copy(update={"train": spec.train.model_copy(update={"seed": spec.train.seed + index})})


def run_folds(spec: Spec, folds: Sequence[Fold], backend: str, progress: bool = False) -> list[RunResult]:
    """Train every fold on one backend in this process.

    Example:
        >>> results = run_folds(spec, make_folds(spec, 3), "torch")   # doctest: +SKIP
    """
    results = []
    for fold in folds:
        bar = None
        if progress:
            from duofit.common.plots import progress_bar

            bar = progress_bar(f"{backend} fold {fold.index + 1}/{len(folds)}", spec.train.epochs)
        results.append(run_on_dataset(fold_spec(spec, fold.index), fold.dataset, backend, bar))
    return results


@dataclass
class CVResult:
    """Cross-validation results of one spec on several backends.

    Attributes:
        spec: The spec.
        folds: The folds (indices, scaler statistics, arrays).
        results: ``{backend: [RunResult per fold]}``.
        splitter: ``StratifiedKFold`` or ``KFold``.
        seed: The splitter's shuffling seed.
        skipped: ``{backend: reason}`` for backends that were not run.
    """

    spec: Spec
    folds: list[Fold]
    results: dict[str, list[RunResult]]
    splitter: str
    seed: int
    skipped: dict[str, str]

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
        """Long form: ``backend, metric, mean, std, min, max`` over the folds."""
        import pandas as pd

        table = self.fold_table()
        rows = []
        for backend in self.results:
            part = table[table["backend"] == backend]
            for name in self.metric_names:
                values = part[name].to_numpy(dtype=np.float64) if name in part else np.array([np.nan])
                rows.append(
                    {
                        "backend": backend,
                        "metric": name,
                        "mean": float(np.mean(values)),
                        "std": float(np.std(values, ddof=STD_DDOF)),
                        "min": float(np.min(values)),
                        "max": float(np.max(values)),
                        "folds": len(values),
                    }
                )
        return pd.DataFrame(rows)

    def table(self) -> Any:
        """``mean ± std`` per metric (rows) and backend (columns), as text cells."""
        summary = self.summary()
        text = [f"{m:.4f} ± {s:.4f}" for m, s in zip(summary["mean"], summary["std"], strict=True)]
        cells = summary.assign(cell=text)
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
        """Write ``cv_folds.csv``, ``cv_summary.csv``, ``cv_history.csv`` and ``<backend>/fold_<i>/``."""
        from duofit.common.io import atomic_write_text

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        for name, results in self.results.items():
            for i, res in enumerate(results):
                res.save(out / name / f"fold_{i + 1}")
        paths = {"folds": out / "cv_folds.csv", "summary": out / "cv_summary.csv", "history": out / "cv_history.csv"}
        atomic_write_text(paths["folds"], self.fold_table().to_csv(index=False))
        atomic_write_text(paths["summary"], self.summary().to_csv(index=False))
        atomic_write_text(paths["history"], self.histories().to_csv(index=False))
        return paths


def _run_worker(
    spec: Spec, backend: str, folder: Path, n_folds: int, seed: int, stratify: bool, progress: bool
) -> list[RunResult]:
    """All folds of one backend in a fresh Python process; results come back as files."""
    out = folder / "result"
    args = [str(write_spec(spec, folder)), backend, str(out), "--folds", str(n_folds), "--seed", str(seed)]
    args += [flag for flag, on in (("--no-stratify", not stratify), ("--progress", progress)) if on]
    run_worker("duofit.tuning.worker", args, out, backend, "cross-validation")
    return [RunResult.load(out / f"fold_{i + 1}") for i in range(n_folds)]


def _backend_names(backends: Sequence[str] | None) -> tuple[list[str], dict[str, str]]:
    skipped: dict[str, str] = {}
    if backends is not None:
        names = list(backends)
        for name in names:
            check_installed(name)
        return names, skipped
    names = installed_backends()
    for name in BACKENDS:
        if name not in names:
            skipped[name] = f"not installed: pip install 'duofit[{BACKENDS[name].extra}]'"
    if not names:
        raise BackendError("no backend is installed; pip install 'duofit[torch]' or 'duofit[tensorflow]'")
    return names, skipped


def cross_validate(
    spec: SpecLike,
    n_folds: int = 5,
    backends: Sequence[str] | None = None,
    *,
    seed: int | None = None,
    stratify: bool = True,
    isolate: bool = True,
    progress: bool = False,
    out: str | Path | None = None,
) -> CVResult:
    """k-fold cross-validation of a spec on several backends (default: every installed one).

    Args:
        spec: A spec file path, mapping or :class:`~duofit.Spec`.
        n_folds: Number of folds.
        backends: Backend names; ``None`` = all installed.
        seed: The splitter's shuffling seed (default ``data.split_seed``).
        stratify: ``StratifiedKFold`` for classification (``KFold`` when False or for regression).
        isolate: Run each backend in its own worker process (default; Keras picks its
            backend once per process).
        progress: Show a progress bar per fold.
        out: If given, save the results there (see :meth:`CVResult.save`).

    Returns:
        A :class:`CVResult`; ``.table()`` is ``mean ± std`` per metric and backend.

    Raises:
        SpecError, DataError: bad spec, data, or too many folds for the data.
        BackendNotInstalledError: a named backend is missing.

    Example:
        >>> cv = cross_validate("examples/seed.toml", n_folds=5, backends=["torch"])  # doctest: +SKIP
        >>> cv.summary().query("metric == 'accuracy'")                                # doctest: +SKIP
    """
    spec = load_spec(spec)
    seed = spec.data.split_seed if seed is None else int(seed)
    folds = make_folds(spec, n_folds, seed, stratify)  # fails fast on bad data, before any worker
    names, skipped = _backend_names(backends)
    results: dict[str, list[RunResult]] = {}
    with tempfile.TemporaryDirectory(prefix="duofit-cv-") as tmp:
        for name in names:
            if isolate:
                folder = Path(tmp) / name
                folder.mkdir()
                results[name] = _run_worker(spec, name, folder, n_folds, seed, stratify, progress)
            else:
                results[name] = run_folds(spec, folds, name, progress)
    cv = CVResult(
        spec=spec,
        folds=folds,
        results=results,
        splitter=splitter_name(folds[0].dataset.task, stratify),
        seed=seed,
        skipped=skipped,
    )
    if out is not None:
        cv.save(out)
    return cv
