"""Plots (matplotlib, Agg backend, files only) and the terminal progress bar.

Every figure duofit draws goes through the helpers here, so every chart follows the same rules:

- :class:`LossPanel` draws curves that may diverge. Its y-range comes from the values before
  divergence (a last loss of 1e7 does not flatten the rest), integer ticks mark epochs or steps,
  a curve with a single point gets a marker, and a run's mark (divergence, a verdict) sits at
  its last finite value, on the chart's edge when that value is off the chart.
- :func:`panel_grid` sizes a grid to its panels: no empty cell is drawn.
- :func:`save_figure` makes every text drawable with the installed fonts (a font that has the
  glyphs, else the missing characters are left out) before it lays out and writes the figure,
  so a name such as ``"实验 🚀"`` draws no warning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from duofit.common.history import ProgressFn
from duofit.common.plotfonts import fit_text_to_fonts

__all__ = [
    "LossPanel",
    "Mark",
    "fit_text_to_fonts",
    "panel_grid",
    "plot_histories",
    "progress_bar",
    "pyplot",
    "save_figure",
]

_METRIC_PREFERENCE = ("val_accuracy", "val_f1", "val_roc_auc", "val_r2", "val_rmse", "val_mse", "val_mae")
# A loss axis turns logarithmic when the values it shows span more than two orders of magnitude.
LOG_SPAN = 100.0
# Values up to one span of the regular values beyond their range stay on the chart (on a log
# axis at least one decade); farther ones (a diverging run's last epochs) leave it and their
# mark is drawn on the edge.
HEADROOM = 1.0
# Room above and below the shown values, as matplotlib's default ``axes.ymargin``.
MARGIN = 0.05
_MARK_SIZE = 12  # points; wider than the lines so a mark on top of a curve stays visible


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (files only, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def panel_grid(n: int, *, ncols: int = 2, panel_size: tuple[float, float] = (6.0, 4.2)) -> tuple[Any, list[Any]]:
    """A figure with ``n`` panels in a grid of at most ``ncols`` columns; unused cells are removed.

    Example:
        >>> fig, axes = panel_grid(3)
        >>> len(axes), len(fig.axes)
        (3, 3)
    """
    n = max(n, 1)
    cols = min(n, ncols)
    rows = -(-n // cols)
    fig, grid = pyplot().subplots(rows, cols, figsize=(panel_size[0] * cols, panel_size[1] * rows), squeeze=False)
    cells = list(grid.flat)
    for ax in cells[n:]:
        fig.delaxes(ax)
    return fig, cells[:n]


@dataclass(frozen=True)
class Mark:
    """A point marked on a curve: divergence or a verdict.

    Attributes:
        label: Legend text (``None``: the mark is drawn without a legend entry).
        at: The x where it starts; the mark sits on the last finite value at or before it
            (``None``: the curve's last finite value).
        marker: A matplotlib marker.
    """

    label: str | None = None
    at: float | None = None
    marker: str = "x"


@dataclass
class _Curve:
    x: np.ndarray
    y: np.ndarray
    stop: float | None
    mark: Mark | None
    color: Any


class LossPanel:
    """One axes of curves over epochs (or steps) whose y-range ignores a divergence.

    Add every curve, then call :meth:`finish` once: it sets the scale and range, the integer
    x ticks, the marks, the grid and the legend.

    Example:
        >>> fig, (ax,) = panel_grid(1)
        >>> panel = LossPanel(ax, title="loss")
        >>> panel.add([1, 2, 3], [0.7, 0.5, 3e7], stop=3, mark=Mark("diverged at epoch 3"), label="train")
        >>> lo, hi = panel.finish()
        >>> hi < 1.0   # the range follows the values before divergence
        True
    """

    def __init__(
        self, ax: Any, *, title: str = "", xlabel: str = "epoch", ylabel: str = "loss", log: bool | None = None
    ):
        """Label the axes.

        Args:
            ax: The matplotlib axes.
            title: Panel title.
            xlabel: X axis label.
            ylabel: Y axis label.
            log: Force the y scale (``None``: logarithmic when the shown values span more than LOG_SPAN).
        """
        self.ax = ax
        self.log = log
        self._curves: list[_Curve] = []
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel)

    def add(self, x: Any, y: Any, *, stop: float | None = None, mark: Mark | None = None, **style: Any) -> None:
        """Draw one curve.

        Args:
            x: Epochs or steps.
            y: Values; non-finite ones are gaps.
            stop: The x where the run diverged: values from there on do not set the y-range.
            mark: A point to mark (see :class:`Mark`).
            **style: matplotlib line properties (``label``, ``color``, ``ls``...).
        """
        xs = np.asarray(x, dtype=float)
        ys = np.asarray(y, dtype=float)
        ys = np.where(np.isfinite(ys), ys, np.nan)
        if np.count_nonzero(np.isfinite(ys)) < 2:
            style.setdefault("marker", "o")  # a single point is invisible as a line
        (line,) = self.ax.plot(xs, ys, **style)
        self._curves.append(_Curve(xs, ys, stop, mark, line.get_color()))

    def finish(self, *, legend: bool = True, legend_size: float | None = None) -> tuple[float, float] | None:
        """Set scale, range, ticks, marks, grid and legend; return the y-limits (``None``: no finite value)."""
        from matplotlib.ticker import MaxNLocator

        limits = self._set_range()
        top = limits[1] if limits else 1.0
        for curve in self._curves:
            if curve.mark is not None:
                self._draw_mark(curve, curve.mark, limits, top)
        self.ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # one epoch: tick 1
        self.ax.grid(alpha=0.3)
        if legend and self.ax.get_legend_handles_labels()[0]:
            self.ax.legend(fontsize=legend_size)
        return limits

    def _values(self, regular: bool) -> np.ndarray:
        parts = []
        for c in self._curves:
            keep = np.isfinite(c.y)
            if regular and c.stop is not None:
                keep &= c.x < c.stop
            parts.append(c.y[keep])
        return np.concatenate(parts) if parts else np.empty(0)

    def _set_range(self) -> tuple[float, float] | None:
        shown_all = self._values(regular=False)
        regular = self._values(regular=True)
        if not regular.size:
            regular = shown_all
        log = self.log
        if log is None:
            log = bool(regular.size) and regular.min() > 0 and regular.max() > LOG_SPAN * regular.min()
        if log:
            self.ax.set_yscale("log")
            shown_all, regular = shown_all[shown_all > 0], regular[regular > 0]
        if not regular.size:
            return None
        lo, hi = _show_range(regular, shown_all, log)
        self.ax.set_ylim(lo, hi)
        return lo, hi

    def _draw_mark(self, curve: _Curve, mark: Mark, limits: tuple[float, float] | None, top: float) -> None:
        keep = np.isfinite(curve.y)
        if mark.at is not None:
            keep &= curve.x <= mark.at
        label = mark.label
        if keep.any():
            i = int(np.flatnonzero(keep)[-1])
            x, y = float(curve.x[i]), float(curve.y[i])
        else:  # no finite value to sit on: the top edge where the curve starts
            x = float(mark.at if mark.at is not None else (curve.x[0] if curve.x.size else 1.0))
            y, label = top, label and f"{label} (no finite value)"
        if limits is not None and not limits[0] <= y <= limits[1]:
            edge = limits[1] if y > limits[1] else limits[0]
            side = "above" if y > limits[1] else "below"
            label = label and f"{label} ({y:.3g}, {side} the chart)"
            y = edge
        self.ax.plot(
            [x], [y], marker=mark.marker, ms=_MARK_SIZE, mew=3, color=curve.color, ls="none", label=label, clip_on=False
        )


def _show_range(regular: np.ndarray, values: np.ndarray, log: bool) -> tuple[float, float]:
    """Y-limits: the regular values, plus the others within HEADROOM of them, with MARGIN room."""
    scale = np.log10 if log else (lambda v: v)
    lo, hi = float(scale(regular.min())), float(scale(regular.max()))
    span = hi - lo
    if log:
        room = max(span * HEADROOM, 1.0)
    else:
        room = span * HEADROOM if span > 0 else max(abs(hi), 1e-12)
    scaled = scale(values)
    near = scaled[(scaled >= lo - room) & (scaled <= hi + room)]
    lo, hi = min(lo, float(near.min(initial=lo))), max(hi, float(near.max(initial=hi)))
    pad = (hi - lo) * MARGIN if hi > lo else (0.5 if log else max(abs(hi) * 0.1, 1e-12))
    lo, hi = lo - pad, hi + pad
    return (10**lo, 10**hi) if log else (lo, hi)


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
            best epochs are marked with a dotted line, divergence with an x on the last finite loss.

    Returns:
        The PNG path.

    Example:
        Needs a run's history, so it is not run as a doctest.

        >>> plot_histories({"torch": res.history}, "curves.png")  # doctest: +SKIP
    """
    metric = _main_metric(histories)
    fig, axes = panel_grid(2 if metric else 1)
    loss = LossPanel(axes[0], title="loss")
    score = LossPanel(axes[1], title=metric, ylabel=metric, log=False) if metric else None
    for i, (name, hist) in enumerate(histories.items()):
        ev = (events or {}).get(name, {})
        stop = ev.get("diverged")
        # identical curves stay visible: the first one is drawn wide
        style: dict[str, Any] = {"color": f"C{i}", "lw": 3.0 if i == 0 else 1.2, "alpha": 0.8}
        mark = Mark(f"{name} diverged at epoch {stop}") if stop else None
        loss.add(hist["epoch"], hist["loss"], stop=stop, mark=mark, label=f"{name} train", **style)
        loss.add(hist["epoch"], hist["val_loss"], stop=stop, label=f"{name} validation", ls="--", **style)
        if score is not None and metric in hist.columns:
            score.add(hist["epoch"], hist[metric], stop=stop, label=name, **style)
        best, stopped = ev.get("best"), ev.get("stopped")
        if best and stopped:
            axes[0].axvline(best, color=style["color"], ls=":", lw=1.2, label=f"{name} early stop: best epoch {best}")
    loss.finish()
    if score is not None:
        score.finish()
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def _main_metric(histories: Mapping[str, Any]) -> str | None:
    """The first preferred metric with a finite value in some history (an all-NaN panel would be empty)."""
    for metric in _METRIC_PREFERENCE:
        for hist in histories.values():
            if metric in hist.columns and np.isfinite(np.asarray(hist[metric], dtype=float)).any():
                return metric
    return None


def save_figure(fig: Any, path: str | Path, dpi: int = 110, *, layout: bool = True) -> Path:
    """Fit the texts to the installed fonts, lay out, save as PNG atomically (temp file + rename), close.

    Example:
        Needs a matplotlib figure and writes a file, so it is not run as a doctest.

        >>> save_figure(fig, "results/curves.png")  # doctest: +SKIP
    """
    plt = pyplot()
    fit_text_to_fonts(fig)
    if layout:
        fig.tight_layout()
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
