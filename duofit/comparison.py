"""Several backends side by side: the :class:`Comparison`, its output folder, and its workers.

:func:`duofit.compare` (in :mod:`duofit.runner`) runs each backend in a worker process of its
own (:mod:`duofit.worker`), :func:`default_jobs` of them at a time (one per two cores). With
several workers at once each gets an equal share of the cores as intra-op threads
(:func:`worker_threads`) unless ``train.threads`` is set; the numbers are the same whatever the
number of workers (same initial weights, batch order and seeds in every process).

Example:
    >>> default_jobs() == max(1, available_cores() // 2)
    True
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from duofit.common.concurrent import WorkerJob, spawn_concurrently
from duofit.common.errors import DataError, SpecError
from duofit.common.result import RunResult
from duofit.common.spec import Spec

__all__ = [
    "Comparison",
    "ComparisonInterrupted",
    "available_cores",
    "check_out_folder",
    "default_jobs",
    "resolve_jobs",
    "run_workers",
    "worker_threads",
]


@dataclass
class Comparison:
    """Results of one spec on several backends.

    Attributes:
        spec: The spec.
        results: ``{backend: RunResult}`` in run order.
        skipped: ``{backend: reason}`` for backends that were not run.
        folder: Where the runs wrote their results (``folder/<backend>/``), if anywhere.
        jobs: How many backends ran at the same time (one worker process each).
        wall_s: Seconds from the start of :func:`~duofit.compare` to its last result.
    """

    spec: Spec
    results: dict[str, RunResult]
    skipped: dict[str, str]
    folder: Path | None = None
    jobs: int = 1
    wall_s: float = float("nan")

    def table(self) -> Any:
        """Side-by-side final test metrics, losses and times (``startup_s``, ``fit_s``, ``total_s``): a DataFrame."""
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


class ComparisonInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`compare`: the backends that finished are kept.

    With an output folder their results and the tables of those (``compare.csv``, ...) were
    written before this is raised. A ``KeyboardInterrupt``, so code that stops on Ctrl-C still does.

    Attributes:
        comparison: The backends that finished (``comparison.results``, possibly empty).
        unfinished: The backends that did not finish, in run order.
    """

    def __init__(self, comparison: Comparison, unfinished: list[str]) -> None:
        super().__init__(f"interrupted; not finished: {', '.join(unfinished)}")
        self.comparison = comparison
        self.unfinished = unfinished


def check_out_folder(folder: Path, spec: Spec) -> None:
    """Refuse an output folder that holds another spec's results (runs are told apart by ``spec.name``).

    The folder's own ``spec.json`` and its subfolders' (one per backend) are read; a folder
    of the same spec is overwritten, as a repeated ``compare`` does.

    Raises:
        DataError: a ``spec.json`` there names another spec (the folder and that name are given).

    Example:
        >>> import tempfile
        >>> from duofit.common.loader import load_spec
        >>> check_out_folder(Path(tempfile.mkdtemp()) / "new", load_spec("examples/seed.toml"))
    """
    for spec_file in [folder / "spec.json", *sorted(folder.glob("*/spec.json"))]:
        try:
            other = json.loads(spec_file.read_text(encoding="utf-8")).get("name")
        except (OSError, ValueError, AttributeError):
            continue  # not a result folder
        if other != spec.name:
            theirs = repr(other) if other else "an unnamed spec"
            raise DataError(
                f"output folder {folder} holds results of another spec, {theirs} ({spec_file}), not "
                f"{spec.name or 'this unnamed spec'!r}; choose another output folder (--out) or delete {folder}",
                path="out",
            )


def available_cores() -> int:
    """Cores this process may use (its CPU affinity where the system has one).

    Example:
        >>> available_cores() >= 1
        True
    """
    with contextlib.suppress(AttributeError):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_jobs() -> int:
    """Backends :func:`~duofit.compare` runs at the same time by default: one per two cores, at least one.

    Two cores per worker: a worker's start (interpreter, framework import) is mostly one core's
    work, its training uses the intra-op threads it is given (:func:`worker_threads`).
    """
    return max(1, available_cores() // 2)


def resolve_jobs(jobs: int | None, n_backends: int, isolate: bool = True) -> int:
    """How many backends run at once: ``jobs`` (``None``: :func:`default_jobs`), at most one per backend.

    Raises:
        SpecError: ``jobs`` is not a whole number >= 1, or above 1 with ``isolate=False`` (one
            process runs one backend at a time).

    Example:
        >>> resolve_jobs(4, n_backends=2), resolve_jobs(None, n_backends=3, isolate=False)
        (2, 1)
        >>> resolve_jobs(0, n_backends=2)
        Traceback (most recent call last):
        ...
        duofit.common.errors.SpecError: jobs: expected a whole number >= 1 (backends run at the same time); got 0
    """
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise SpecError(
            f"jobs: expected a whole number >= 1 (backends run at the same time); got {jobs!r}", path="jobs"
        )
    if not isolate:
        if jobs is not None and jobs > 1:
            raise SpecError(
                f"jobs: {jobs} backends at once need one process each; drop --in-process (isolate=False) "
                "or use --jobs 1",
                path="jobs",
            )
        return 1
    return max(1, min(default_jobs() if jobs is None else jobs, n_backends))


def worker_threads(spec: Spec, running: int, cores: int | None = None) -> int | None:
    """Intra-op threads for each of ``running`` workers at once: an equal share of the cores.

    ``None`` (the framework's default) when one worker runs at a time or the spec sets
    ``train.threads`` (then every run uses that).

    Example:
        >>> from duofit.common.loader import load_spec
        >>> spec = load_spec("examples/seed.toml")
        >>> worker_threads(spec, 2, cores=8), worker_threads(spec, 3, cores=2), worker_threads(spec, 1, cores=8)
        (4, 1, None)
    """
    if running <= 1 or spec.train.threads is not None:
        return None
    return max(1, (available_cores() if cores is None else cores) // running)


def _worker_job(
    spec: Spec, name: str, scratch: Path, folder: Path | None, jobs: int, progress: bool
) -> tuple[WorkerJob, Path]:
    """The worker that runs ``name`` and the folder it writes its result into (``folder/name`` or scratch)."""
    dest = folder / name if folder is not None else scratch / name
    options = ["--out", str(dest), "--jobs", str(jobs)]
    threads = worker_threads(spec, jobs)
    if threads is not None:
        options += ["--threads", str(threads)]
    if progress and jobs == 1:  # one bar at a time; with several workers a line per start and finish
        options.append("--progress")
    return WorkerJob("duofit.worker", spec, name, scratch / name, "run", tuple(options)), dest


def run_workers(
    spec: Spec,
    names: Sequence[str],
    scratch: Path,
    results: dict[str, RunResult],
    *,
    folder: Path | None = None,
    jobs: int = 1,
    progress: bool = False,
) -> None:
    """Run each backend of ``names`` in a worker process of its own, ``jobs`` at a time.

    Each worker writes its result straight into ``folder/<backend>/`` (or ``scratch/<backend>/``);
    it is read back into ``results`` as soon as that worker finishes, so that after Ctrl-C
    ``results`` holds the backends that finished. With ``progress`` one worker at a time shows
    its progress bar; several at a time print one line on standard error when each starts and
    finishes.

    Raises:
        DuofitError: a worker's error (its type and field path); the others are stopped.
        KeyboardInterrupt: Ctrl-C; the workers still running are stopped.
    """
    made = {name: _worker_job(spec, name, scratch, folder, jobs, progress) for name in names}
    width = max((len(name) for name in names), default=0)
    lines = progress and jobs > 1

    def started(job: WorkerJob) -> None:
        if lines:
            print(f"{job.backend:<{width}}  started", file=sys.stderr, flush=True)

    def done(job: WorkerJob) -> None:
        res = results[job.backend] = RunResult.load(made[job.backend][1])
        if lines:
            t = res.timings
            print(
                f"{job.backend:<{width}}  finished: startup {t.get('startup_s', float('nan')):.1f} s, "
                f"fit {t.get('fit_s', float('nan')):.1f} s",
                file=sys.stderr,
                flush=True,
            )

    spawn_concurrently([job for job, _ in made.values()], jobs, on_start=started, on_done=done)
