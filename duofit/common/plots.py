"""Plots (matplotlib, Agg backend, files only) and the terminal progress bar."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from duofit.common.history import ProgressFn

__all__ = ["plot_histories", "progress_bar", "save_figure"]

_METRIC_PREFERENCE = ("val_accuracy", "val_f1", "val_roc_auc", "val_r2", "val_rmse", "val_mse", "val_mae")


def plot_histories(
    histories: Mapping[str, Any],
    path: str | Path,
    title: str = "",
    events: Mapping[str, Mapping[str, int | None]] | None = None,
) -> Path:
    """Loss curves (train solid, validation dashed) per backend, plus the main metric.

    Args:
        histories: ``{backend: history DataFrame}``.
        path: PNG file to write.
        title: Figure title.
        events: ``{backend: {"best": epoch, "stopped": epoch, "diverged": epoch}}``; early-stop
            best epochs are marked with a dotted line, divergence with an x.

    Returns:
        The PNG path.

    Example:
        Needs a run's history, so it is not run as a doctest.

        >>> plot_histories({"torch": res.history}, "curves.png")  # doctest: +SKIP
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = next((m for m in _METRIC_PREFERENCE if any(m in h.columns for h in histories.values())), None)
    ncols = 2 if metric else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6 * ncols, 4.2), squeeze=False)
    ax = axes[0][0]
    for i, (name, hist) in enumerate(histories.items()):
        color = f"C{i}"
        width = 3.0 if i == 0 else 1.2  # identical curves stay visible: the first one is drawn wide
        ax.plot(hist["epoch"], hist["loss"], color=color, lw=width, alpha=0.8, label=f"{name} train")
        ax.plot(hist["epoch"], hist["val_loss"], color=color, lw=width, alpha=0.8, ls="--", label=f"{name} validation")
        if metric and metric in hist.columns:
            axes[0][1].plot(hist["epoch"], hist[metric], color=color, lw=width, alpha=0.8, label=name)
        _mark_events(ax, name, hist, color, (events or {}).get(name, {}))
    ax.set(xlabel="epoch", ylabel="loss", title="loss")
    if any(h["loss"].abs().max() > 100 * max(h["loss"].abs().min(), 1e-12) for h in histories.values()):
        ax.set_yscale("log")  # a diverging or exploding run spans orders of magnitude
    axes[0][0].legend()
    axes[0][0].grid(alpha=0.3)
    if metric:
        axes[0][1].set(xlabel="epoch", ylabel=metric, title=metric)
        axes[0][1].legend()
        axes[0][1].grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def _mark_events(ax: Any, name: str, hist: Any, color: str, ev: Mapping[str, int | None]) -> None:
    """Mark a backend's early-stopping best epoch (dotted line) and its divergence (an x on the last finite loss)."""
    best, stopped, diverged = ev.get("best"), ev.get("stopped"), ev.get("diverged")
    if best and stopped:
        ax.axvline(best, color=color, ls=":", lw=1.2, label=f"{name} early stop: best epoch {best}")
    if diverged:
        finite = hist["loss"].where(hist["loss"].abs() < float("inf")).dropna()
        y = float(finite.iloc[-1]) if len(finite) else 0.0
        ax.plot(
            [diverged],
            [y],
            marker="x",
            ms=12,
            mew=3,
            color=color,
            ls="none",
            label=f"{name} diverged at epoch {diverged}",
        )


def save_figure(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG atomically (temp file + rename) and close it.

    Example:
        Needs a matplotlib figure and writes a file, so it is not run as a doctest.

        >>> save_figure(fig, "results/curves.png")  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    tmp.replace(path)
    return path


def progress_bar(label: str, epochs: int) -> ProgressFn:
    """A tqdm bar on stderr, advanced once per epoch, showing the latest losses."""
    from tqdm import tqdm

    bars: list[Any] = []  # created at the first epoch, so errors before training print cleanly

    def update(epoch: int, total: int, row: dict[str, float]) -> None:
        if not bars:
            bars.append(tqdm(total=epochs, desc=label, unit="epoch", leave=False, dynamic_ncols=True))
        bar = bars[0]
        bar.update(epoch - bar.n)
        bar.set_postfix(loss=f"{row['loss']:.4f}", val_loss=f"{row['val_loss']:.4f}", refresh=False)
        if epoch >= total:
            bar.close()

    return update
