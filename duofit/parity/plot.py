"""The parity plot: both per-step loss trajectories and their relative difference (log axis)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from duofit.common.plots import LossPanel, Mark, save_figure

if TYPE_CHECKING:
    from duofit.common.result import RunResult
    from duofit.parity.report import ParityReport

__all__ = ["plot_trajectories"]

# Exact agreement would vanish from a log axis: it is drawn at this floor.
_FLOOR = 1e-18


def _diverged_step(res: RunResult) -> int | None:
    """The first step of the epoch a diverged run stopped in (its steps from there leave the y-range)."""
    if not res.diverged or not res.stopped_epoch or not len(res.history):
        return None
    per_epoch = -(-len(res.steps.get("loss", [])) // len(res.history))
    return (res.stopped_epoch - 1) * per_epoch + 1


def plot_trajectories(report: ParityReport, path: str | Path) -> Path:
    """Write the two-panel PNG and return its path.

    Example:
        Needs a parity report, so it is not run as a doctest.

        >>> plot_trajectories(report, "parity.png")  # doctest: +SKIP
    """
    from duofit.common.plots import pyplot

    frame = report.steps_frame()
    a, b = report.backends
    fig, (top, bottom) = pyplot().subplots(2, 1, figsize=(9, 6.5), sharex=True)
    title = f"{a} vs {b}: {report.spec.train.dtype}{', strict' if report.strict else ''}"
    panel = LossPanel(top, title=title, xlabel="", ylabel="training loss per step")
    looks: list[dict[str, Any]] = [{"lw": 2.5, "alpha": 0.6}, {"lw": 1.0}]
    for name, look in zip((a, b), looks, strict=True):
        res = report.results[name]
        stop = _diverged_step(res)
        mark = Mark(f"{name} diverged (epoch {res.stopped_epoch})") if stop else None
        panel.add(frame["step"], frame[f"{name}_loss"], stop=stop, mark=mark, label=name, **look)
    panel.finish()
    rel = frame["loss_rel_diff"].to_numpy(dtype=float)
    rel = np.where(np.isfinite(rel), np.maximum(rel, _FLOOR), np.nan)
    single = {"marker": "o"} if np.count_nonzero(np.isfinite(rel)) < 2 else {}
    bottom.semilogy(frame["step"], rel, lw=1.0, color="C3", label="|a-b| / max(|a|,|b|)", **single)
    traj = next(s for s in report.stages if s.stage == "trajectory")
    tolerance = traj.tolerance or _FLOOR
    bottom.axhline(tolerance, color="k", ls="--", lw=1, label=f"tolerance {tolerance:.0e}")
    bottom.set(xlabel="optimizer step", ylabel="relative difference")
    bottom.legend()
    bottom.grid(alpha=0.3, which="both")
    return save_figure(fig, path)
