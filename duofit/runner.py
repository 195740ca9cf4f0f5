"""Run a spec on one backend (``run``) or on every installed backend (``compare``).

``compare`` runs each backend in its own process (KERAS_BACKEND is read once per
process), several at a time when there are cores for them (``jobs``; :mod:`duofit.comparison`);
each writes its result once, into ``out/<backend>/`` when an output folder is given, and the
parent reads it back from those plain files (CSV, JSON, npz: no pickle).

Example:
    Not run as a doctest: it trains a model on every installed backend.

    >>> import duofit
    >>> res = duofit.run("examples/seed.toml", backend="torch")    # doctest: +SKIP
    >>> cmp = duofit.compare("examples/seed.toml")                 # doctest: +SKIP
    >>> cmp.table()                                                # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from duofit.backends.base import Backend, FitOutput, TrainPlan, make_plan
from duofit.common.choice import resolve_backends
from duofit.common.data import STREAMED_KINDS, Dataset, load_dataset, read_arrays
from duofit.common.diagnostics import diagnose
from duofit.common.envinfo import base_environment
from duofit.common.errors import SpecError
from duofit.common.history import EpochRecorder, ProgressFn, recorder_for
from duofit.common.loader import load_spec
from duofit.common.metrics import bind_positive, class_order, score_outputs, warn_undefined
from duofit.common.optstate import restore_recorder
from duofit.common.registry import get_backend
from duofit.common.result import RunResult
from duofit.common.resume import resume_point
from duofit.common.spec import Spec
from duofit.comparison import Comparison, ComparisonInterrupted, check_out_folder, resolve_jobs, run_workers

# Comparison, ComparisonInterrupted and check_out_folder live in duofit.comparison (kept importable from here)
__all__ = ["Comparison", "ComparisonInterrupted", "check_out_folder", "compare", "run"]

SpecLike = str | Path | Mapping[str, Any] | Spec


def _timings(fit_timings: dict[str, Any], total_s: float, startup_s: float) -> dict[str, float]:
    """The result's timings; ``startup_s``: before training began (framework import, data, plan)."""
    epochs = [float(s) for s in fit_timings.get("epoch_s", [])]
    return {
        "total_s": total_s,
        "startup_s": startup_s,
        "build_s": float(fit_timings["build_s"]),
        "fit_s": float(fit_timings["fit_s"]),
        "predict_s": float(fit_timings["predict_s"]),
        "first_epoch_s": epochs[0] if epochs else float("nan"),
        # steady state: median epoch after the first (graph building / warm-up excluded)
        "steady_epoch_s": float(np.median(epochs[1:])) if len(epochs) > 1 else float("nan"),
        # the first epoch's one-time cost (tracing, compilation): first epoch minus the steady epoch
        "compile_s": float(fit_timings.get("compile_s", float("nan"))),
    }


def _run_environment(
    spec: Spec, backend: str, module: Backend, fitted_env: Mapping[str, Any], has_epoch_metrics: bool
) -> dict[str, Any]:
    """What a run records about where it ran: machine, framework, the fit's own notes, the spec's settings."""
    env = {**base_environment(), **module.environment(spec.train.device), **fitted_env}
    env.update({"backend": backend, "dtype": spec.train.dtype, "batch_size": spec.train.batch_size})
    env["epoch_metrics"] = spec.train.epoch_metrics if has_epoch_metrics else "none"  # the history's source
    # who chose the intra-op thread count in ``threads`` (a compare worker overwrites it when it set them)
    env["threads_set_by"] = "train.threads" if spec.train.threads is not None else "framework default"
    return env


def _run_result(
    spec: Spec,
    backend: str,
    module: Backend,
    dataset: Dataset,
    fitted: FitOutput,
    recorder: EpochRecorder,
    t0: float,
    startup_s: float,
) -> RunResult:
    """A finished fit as a :class:`~duofit.RunResult`: test metrics, timings since ``t0``, diagnostics.

    Test targets, predictions and metrics are in the original target units (a standardized
    regression target is mapped back); the history stays in the units the model trained on.
    """
    from_logits = bool(getattr(spec.loss, "from_logits", False))
    y_test, outputs = dataset.in_target_units(dataset.y_test), dataset.in_target_units(np.asarray(fitted.test_outputs))
    order = class_order(dataset.task, dataset.classes, dataset.y_train)
    scores = score_outputs(spec.metric_entries, spec.task, y_test, outputs, from_logits, order=order)
    metrics = scores.values
    result = RunResult(
        backend=backend,
        spec=spec,
        history=recorder.frame(),
        metrics=metrics,
        predictions=outputs,
        y_test=y_test,
        timings=_timings(fitted.timings, time.perf_counter() - t0, startup_s),
        environment=_run_environment(spec, backend, module, fitted.environment, bool(recorder.metric_names)),
        weights=fitted.weights,
        best_epoch=recorder.best_epoch,
        stopped_epoch=recorder.stopped_epoch,
        diverged=recorder.diverged,
        message=recorder.message,
        steps=fitted.steps,
        class_order=order,
        optimizer_state=fitted.optimizer_state,
    )
    result.diagnostics = diagnose(
        spec, result.history, dataset.y_train, dataset.n_classes, recorder.diverged, recorder.message
    )
    result.diagnostics["undefined_metrics"] = scores.undefined  # {column: why it is NaN}
    result.diagnostics["left_out_classes"] = scores.left_out  # {column: classes an average left out}
    warn_undefined(scores.undefined, prefix=f"{backend}: ", stacklevel=3, left_out=scores.left_out)
    return result


def run(
    spec: SpecLike,
    backend: str = "torch",
    *,
    progress: bool | ProgressFn | None = None,
    out: str | Path | None = None,
    record_steps: bool = False,
    strict: bool = False,
    dataset: Dataset | None = None,
    resume_from: str | Path | None = None,
) -> RunResult:
    """Train a spec on one backend, in this process.

    Args:
        spec: A spec file path, mapping or :class:`~duofit.Spec`.
        backend: ``"torch"`` or ``"keras"`` (see :func:`duofit.available_backends`).
        progress: ``True``: a progress bar on stderr; ``False`` or ``None``: none (as in
            :func:`compare`); or a callback ``(epoch, epochs, history_row)`` called after each epoch.
        out: If given, the result is also saved into this folder.
        record_steps: Also record each step's gradient and parameter norms (``result.steps``).
        strict: Parity mode (see :mod:`duofit.parity.strict`): identical math where the
            frameworks' formulas differ.
        dataset: Train on these prepared arrays (a cross-validation fold, an estimator's
            X/y) instead of loading the data the spec names; ``spec.data`` is then not read.
        resume_from: Continue training from a run folder (``duofit run``/``compare``) or a
            ``duofit convert`` folder: its weights and optimizer state (``optimizer.npz``: moments,
            step count, the schedule's position) after its ``epochs_done`` epochs; the epochs from
            there up to ``spec.train.epochs`` run over the same batch order as an uninterrupted run,
            on any backend. The history holds those epochs only (numbered as in the whole run).

    Returns:
        A :class:`~duofit.RunResult`. A run whose loss became non-finite returns with
        ``diverged = True`` and a ``message`` saying where and what to change.

    Raises:
        SpecError, DataError: invalid spec or data (message names the field), or a
            ``progress`` that is neither a bool, ``None`` nor a callable; a ``resume_from``
            folder without optimizer state, of a spec with another model or optimizer, or
            that trained ``spec.train.epochs`` epochs already.
        BackendNotInstalledError: the backend's framework is missing (names the extra).

    Example:
        Not run as a doctest: it trains a model and needs Keras installed.

        >>> res = run("examples/seed.toml", backend="keras")  # doctest: +SKIP
        >>> res.history.tail(1)                                # doctest: +SKIP
    """
    t0 = time.perf_counter()
    spec = load_spec(spec)
    report = _progress_fn(progress, backend, spec.train.epochs)
    module = get_backend(backend)
    dataset = load_dataset(spec) if dataset is None else dataset
    plan = _plan(spec, dataset, record_steps=record_steps, strict=strict, resume_from=resume_from)
    recorder = _recorder(plan, report)
    startup_s = time.perf_counter() - t0  # framework import, data, initial weights and batch order
    fitted = module.fit(plan, recorder)
    result = _run_result(spec, backend, module, dataset, fitted, recorder, t0, startup_s)
    if out is not None:
        result.save(out)
    return result


def _plan(
    spec: Spec, dataset: Dataset, *, record_steps: bool, strict: bool, resume_from: str | Path | None
) -> TrainPlan:
    """The run's plan; with ``resume_from``, from that folder's weights and optimizer state (``resume_point``)."""
    plan = make_plan(spec, dataset, record_steps=record_steps, strict=strict)
    if resume_from is None:
        return plan
    weights, state = resume_point(Path(resume_from), spec, plan.weights)
    return dataclasses.replace(plan, weights=weights, start_epoch=state.epochs_done, optimizer_state=state)


def _recorder(plan: TrainPlan, report: ProgressFn | None) -> EpochRecorder:
    """The run's epoch recorder, at a resumed plan's schedule and early-stopping position.

    Each binary metric is bound to its positive class (``pos_label`` checked before training).
    """
    spec, dataset = plan.spec, plan.dataset
    recorder = recorder_for(
        spec,
        dataset.y_val,
        report,
        plan.steps_per_epoch,
        y_train=dataset.y_train,
        n_classes=dataset.n_classes,
        w_train=dataset.w_train,
    )
    entries = bind_positive(spec.metric_entries, class_order(dataset.task, dataset.classes, dataset.y_train))
    recorder.metric_names = entries if recorder.metric_names else []
    if plan.optimizer_state is not None:
        restore_recorder(recorder, plan.optimizer_state)
    return recorder


def _progress_fn(progress: bool | ProgressFn | None, label: str, epochs: int) -> ProgressFn | None:
    """``progress`` as a per-epoch callback: ``True`` a bar, ``False``/``None`` none, a callable itself.

    Raises:
        SpecError: anything else.

    Example:
        >>> _progress_fn(False, "torch", 10) is None and _progress_fn(None, "torch", 10) is None
        True
    """
    if progress is None or isinstance(progress, bool):
        if not progress:
            return None
        from duofit.common.plots import progress_bar

        return progress_bar(label, epochs)
    if callable(progress):
        return progress
    raise SpecError(
        f"progress: expected True (a progress bar), False/None (none) or a callable (epoch, epochs, row); "
        f"got {type(progress).__name__}",
        path="progress",
    )


def compare(
    spec: SpecLike,
    backends: Sequence[str] | None = None,
    *,
    out: str | Path | None = None,
    isolate: bool = True,
    progress: bool = False,
    jobs: int | None = None,
) -> Comparison:
    """Run a spec on several backends (default: every installed one).

    Args:
        spec: A spec file path, mapping or :class:`~duofit.Spec`.
        backends: Backend names; ``None`` = all installed. A named backend that is not
            installed raises ``BackendNotInstalledError``.
        out: If given, each run writes its result into ``out/<backend>/`` and the
            comparison's tables and plot go there too (see :meth:`Comparison.save`). A folder
            holding another spec's results is refused (:func:`check_out_folder`).
        isolate: Run each backend in its own process (recommended; Keras picks its
            backend once per process).
        progress: ``True``: a progress bar per backend (one worker at a time) or a line per
            backend start and finish (several at once); ``False`` or ``None``: none (as in :func:`run`).
        jobs: How many backends run at the same time, each in its own process (``None``: one
            per two cores, :func:`duofit.comparison.default_jobs`). With several at once each
            worker gets ``cores // jobs`` intra-op threads unless ``train.threads`` is set; the
            numbers are the same for any ``jobs``. ``isolate=False`` runs one at a time.

    Returns:
        A :class:`Comparison`; ``cmp.table()`` is the side-by-side table (``startup_s``: the
        worker's start, framework import and data; ``fit_s``: training), ``cmp.wall_s`` the
        time it all took.

    Raises:
        ComparisonInterrupted: Ctrl-C; the backends that finished are kept (and written).
        DataError: ``out`` holds another spec's results, or bad data.
        SpecError: ``jobs`` below 1, or above 1 with ``isolate=False``.

    Example:
        Not run as a doctest: it trains a model on every installed backend.

        >>> cmp = compare("examples/seed.toml", jobs=2)           # doctest: +SKIP
        >>> cmp.table()[["accuracy", "startup_s", "fit_s"]]       # doctest: +SKIP
    """
    t0 = time.perf_counter()
    spec = load_spec(spec)
    if progress is not None and not isinstance(progress, bool):
        raise SpecError("progress: compare takes True or False (a bar per backend); a callback needs run()")
    folder = Path(out) if out is not None else None
    if folder is not None:
        check_out_folder(folder, spec)
    dataset = _checked_data(spec, isolate)  # fail fast on bad data, before any worker starts
    names, skipped = resolve_backends(backends)
    running = resolve_jobs(jobs, len(names), isolate)
    results: dict[str, RunResult] = {}
    try:
        if isolate:
            with tempfile.TemporaryDirectory(prefix="duofit-") as tmp:
                run_workers(spec, names, Path(tmp), results, folder=folder, jobs=running, progress=bool(progress))
        else:
            for name in names:
                dest = folder / name if folder is not None else None
                results[name] = run(spec, name, out=dest, dataset=dataset, progress=progress)
    except KeyboardInterrupt:
        partial = _comparison(spec, names, results, skipped, folder, running, t0)
        if folder is not None and partial.results:
            partial.save(folder)
        raise ComparisonInterrupted(partial, [n for n in names if n not in results]) from None
    cmp = _comparison(spec, names, results, skipped, folder, running, t0)
    if folder is not None:
        cmp.save(folder)
    return cmp


def _checked_data(spec: Spec, isolate: bool) -> Dataset | None:
    """The prepared data for in-process runs; with worker processes only checked, then dropped.

    Each worker prepares its own copy, so the parent holds nothing while they run. A streamed
    kind (``npy``, ``parquet``) is checked as far as opening its files goes (shapes, dtypes, row
    counts, targets): the passes over every value (NaN check, scaler) are the workers', and a
    bad value they find comes back as the same error with its field path.
    """
    if not isolate:
        return load_dataset(spec)
    if spec.data.kind in STREAMED_KINDS:
        read_arrays(spec)
    else:
        load_dataset(spec)
    return None


def _comparison(
    spec: Spec,
    names: Sequence[str],
    results: Mapping[str, RunResult],
    skipped: dict[str, str],
    folder: Path | None,
    jobs: int,
    t0: float,
) -> Comparison:
    """The comparison of the backends that finished, in ``names`` order, ``t0`` seconds after compare began."""
    done = {name: results[name] for name in names if name in results}
    return Comparison(spec, done, skipped, folder, jobs=jobs, wall_s=time.perf_counter() - t0)
