"""The parity plot: both per-step loss trajectories and their relative difference (log axis)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from duofit.common.plots import save_figure

if TYPE_CHECKING:
    from duofit.parity.report import ParityReport

__all__ = ["plot_trajectories"]


def plot_trajectories(report: ParityReport, path: str | Path) -> Path:
    """Write the two-panel PNG and return its path.

    Example:
        Needs a parity report, so it is not run as a doctest.

        >>> plot_trajectories(report, "parity.png")  # doctest: +SKIP
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = report.steps_frame()
    a, b = report.backends
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
    top.plot(frame["step"], frame[f"{a}_loss"], lw=2.5, alpha=0.6, label=a)
    top.plot(frame["step"], frame[f"{b}_loss"], lw=1.0, label=b)
    top.set(
        ylabel="training loss per step",
        title=f"{a} vs {b}: {report.spec.train.dtype}{', strict' if report.strict else ''}",
    )
    top.legend()
    top.grid(alpha=0.3)
    rel = frame["loss_rel_diff"].to_numpy()
    floor = 1e-18  # exact agreement would vanish from a log axis: draw it at the floor
    bottom.semilogy(frame["step"], np.maximum(rel, floor), lw=1.0, color="C3", label="|a-b| / max(|a|,|b|)")
    traj = next(s for s in report.stages if s.stage == "trajectory")
    bottom.axhline(traj.tolerance or floor, color="k", ls="--", lw=1, label=f"tolerance {traj.tolerance:.0e}")
    bottom.set(xlabel="optimizer step", ylabel="relative difference")
    bottom.legend()
    bottom.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return save_figure(fig, path)
