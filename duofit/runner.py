"""Run a spec on one backend (``run``) or on every installed backend (``compare``).

``compare`` runs each backend in its own process (KERAS_BACKEND is read once per
process); each writes its result once, into ``out/<backend>/`` when an output folder is
given, and the parent reads it back from those plain files (CSV, JSON, npz: no pickle).

Example:
    Not run as a doctest: it trains a model on every installed backend.

    >>> import duofit
    >>> res = duofit.run("examples/seed.toml", backend="torch")    # doctest: +SKIP
    >>> cmp = duofit.compare("examples/seed.toml")                 # doctest: +SKIP
    >>> cmp.table()                                                # doctest: +SKIP
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from duofit.backends.base import Backend, FitOutput, make_plan
from duofit.common.choice import resolve_backends
from duofit.common.data import Dataset, load_dataset
from duofit.common.diagnostics import diagnose
from duofit.common.envinfo import base_environment
from duofit.common.history import EpochRecorder, ProgressFn, recorder_for
from duofit.common.isolated import spawn
from duofit.common.loader import load_spec
from duofit.common.metrics import compute_metrics
from duofit.common.registry import get_backend
from duofit.common.result import RunResult
from duofit.common.spec import Spec

__all__ = ["Comparison", "compare", "run"]

SpecLike = str | Path | Mapping[str, Any] | Spec


def _timings(fit_timings: dict[str, Any], total_s: float) -> dict[str, float]:
    epochs = [float(s) for s in fit_timings.get("epoch_s", [])]
    return {
        "total_s": total_s,
        "build_s": float(fit_timings["build_s"]),
        "fit_s": float(fit_timings["fit_s"]),
        "predict_s": float(fit_timings["predict_s"]),
        "first_epoch_s": epochs[0] if epochs else float("nan"),
        # steady state: median epoch after the first (graph building / warm-up excluded)
        "steady_epoch_s": float(np.median(epochs[1:])) if len(epochs) > 1 else float("nan"),
    }


def _run_environment(
    spec: Spec, backend: str, module: Backend, fitted_env: Mapping[str, Any], has_epoch_metrics: bool
) -> dict[str, Any]:
    """What a run records about where it ran: machine, framework, the fit's own notes, the spec's settings."""
    env = {**base_environment(), **module.environment(spec.train.device), **fitted_env}
    env.update({"backend": backend, "dtype": spec.train.dtype, "batch_size": spec.train.batch_size})
    env["epoch_metrics"] = spec.train.epoch_metrics if has_epoch_metrics else "none"  # the history's source
    return env


def _run_result(
    spec: Spec,
    backend: str,
    module: Backend,
    dataset: Dataset,
    fitted: FitOutput,
    recorder: EpochRecorder,
    t0: float,
) -> RunResult:
    """A finished fit as a :class:`~duofit.RunResult`: test metrics, timings since ``t0``, diagnostics."""
    from_logits = bool(getattr(spec.loss, "from_logits", False))
    metrics = compute_metrics(spec.metrics, spec.task, dataset.y_test, fitted.test_outputs, from_logits)
    result = RunResult(
        backend=backend,
        spec=spec,
        history=recorder.frame(),
        metrics=metrics,
        predictions=np.asarray(fitted.test_outputs),
        y_test=dataset.y_test,
        timings=_timings(fitted.timings, time.perf_counter() - t0),
        environment=_run_environment(spec, backend, module, fitted.environment, bool(recorder.metric_names)),
        weights=fitted.weights,
        best_epoch=recorder.best_epoch,
        stopped_epoch=recorder.stopped_epoch,
        diverged=recorder.diverged,
        message=recorder.message,
        steps=fitted.steps,
    )
    result.diagnostics = diagnose(spec, result.history, dataset.y_train, dataset.n_classes, recorder.diverged)
    return result


def run(
    spec: SpecLike,
    backend: str = "torch",
    *,
    progress: ProgressFn | None = None,
    out: str | Path | None = None,
    record_steps: bool = False,
    strict: bool = False,
    dataset: Dataset | None = None,
) -> RunResult:
    """Train a spec on one backend, in this process.

    Args:
        spec: A spec file path, mapping or :class:`~duofit.Spec`.
        backend: ``"torch"`` or ``"keras"`` (see :func:`duofit.available_backends`).
        progress: Optional callback ``(epoch, epochs, history_row)`` called after each epoch.
        out: If given, the result is also saved into this folder.
        record_steps: Also record each step's gradient and parameter norms (``result.steps``).
        strict: Parity mode (see :mod:`duofit.parity.strict`): identical math where the
            frameworks' formulas differ.
        dataset: Train on these prepared arrays (a cross-validation fold, an estimator's
            X/y) instead of loading the data the spec names; ``spec.data`` is then not read.

    Returns:
        A :class:`~duofit.RunResult`. A run whose loss became non-finite returns with
        ``diverged = True`` and a ``message`` saying where and what to change.

    Raises:
        SpecError, DataError: invalid spec or data (message names the field).
        BackendNotInstalledError: the backend's framework is missing (names the extra).

    Example:
        Not run as a doctest: it trains a model and needs Keras installed.

        >>> res = run("examples/seed.toml", backend="keras")  # doctest: +SKIP
        >>> res.history.tail(1)                                # doctest: +SKIP
    """
    t0 = time.perf_counter()
    spec = load_spec(spec)
    module = get_backend(backend)
    if dataset is None:
        dataset = load_dataset(spec)
    plan = make_plan(spec, dataset, record_steps=record_steps, strict=strict)
    recorder = recorder_for(spec, dataset.y_val, progress, plan.steps_per_epoch)
    fitted = module.fit(plan, recorder)
    result = _run_result(spec, backend, module, dataset, fitted, recorder, t0)
    if out is not None:
        result.save(out)
    return result


@dataclass
class Comparison:
    """Results of one spec on several backends.

    Attributes:
        spec: The spec.
        results: ``{backend: RunResult}`` in run order.
        skipped: ``{backend: reason}`` for backends that were not run.
        folder: Where the runs wrote their results (``folder/<backend>/``), if anywhere.
    """

    spec: Spec
    results: dict[str, RunResult]
    skipped: dict[str, str]
    folder: Path | None = None

    def table(self) -> Any:
        """Side-by-side final test metrics, losses and times (a pandas DataFrame)."""
        import pandas as pd

        return pd.DataFrame([r.summary() for r in self.results.values()]).set_index("backend")

    def histories(self) -> Any:
        """All histories in long form with a ``backend`` column."""
        import pandas as pd

        frames = [r.history.assign(backend=name) for name, r in self.results.items()]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def save(self, folder: str | Path) -> dict[str, Path]:
        """Write ``compare.csv``, ``history.csv``, ``loss_curves.png`` and one folder per backend.

        The per-backend folders are written only when the runs did not already write them
        there (``compare(..., out=folder)`` has each run write its own).
        """
        from duofit.common.io import atomic_write_text
        from duofit.common.plots import plot_histories

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        if self.folder is None or self.folder.resolve() != out.resolve():
            for name, res in self.results.items():
                res.save(out / name)
        paths = {"table": out / "compare.csv", "history": out / "history.csv", "plot": out / "loss_curves.png"}
        atomic_write_text(paths["table"], self.table().to_csv())
        atomic_write_text(paths["history"], self.histories().to_csv(index=False))
        plot_histories(
            {n: r.history for n, r in self.results.items()},
            paths["plot"],
            title=self.spec.name or "",
            events={n: r.events() for n, r in self.results.items()},
        )
        return paths


def _run_isolated(spec: Spec, backend: str, folder: Path, out: Path | None, show_progress: bool) -> RunResult:
    """Run one backend in a fresh Python process; it writes its result into ``out`` (or ``folder``)."""
    options = ["--progress"] if show_progress else []
    if out is not None:
        options += ["--out", str(out)]
    spawn("duofit.worker", spec, backend, folder, "run", options)
    return RunResult.load(out if out is not None else folder)


def compare(
    spec: SpecLike,
    backends: Sequence[str] | None = None,
    *,
    out: str | Path | None = None,
    isolate: bool = True,
    progress: bool = False,
) -> Comparison:
    """Run a spec on several backends (default: every installed one).

    Args:
        spec: A spec file path, mapping or :class:`~duofit.Spec`.
        backends: Backend names; ``None`` = all installed. A named backend that is not
            installed raises ``BackendNotInstalledError``.
        out: If given, each run writes its result into ``out/<backend>/`` and the
            comparison's tables and plot go there too (see :meth:`Comparison.save`).
        isolate: Run each backend in its own process (recommended; Keras picks its
            backend once per process).
        progress: Show a progress bar per backend.

    Returns:
        A :class:`Comparison`; ``cmp.table()`` is the side-by-side table.

    Example:
        Not run as a doctest: it trains a model on every installed backend.

        >>> cmp = compare("examples/seed.toml")          # doctest: +SKIP
        >>> cmp.table()[["accuracy", "fit_s"]]           # doctest: +SKIP
    """
    spec = load_spec(spec)
    dataset = load_dataset(spec)  # fail fast on bad data, before any worker starts
    names, skipped = resolve_backends(backends)
    folder = Path(out) if out is not None else None
    results: dict[str, RunResult] = {}
    with tempfile.TemporaryDirectory(prefix="duofit-") as tmp:
        for name in names:
            dest = folder / name if folder is not None else None
            if isolate:
                results[name] = _run_isolated(spec, name, Path(tmp) / name, dest, progress)
            else:
                results[name] = run(spec, name, out=dest, dataset=dataset)
    cmp = Comparison(spec=spec, results=results, skipped=skipped, folder=folder)
    if folder is not None:
        cmp.save(folder)
    return cmp
