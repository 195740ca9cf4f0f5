"""Plots from hand-made histories: divergence marks, clipped ranges, markers, ticks, panels, fonts.

Every test runs with warnings turned into errors: a plot duofit draws warns about nothing
(a missing glyph, identical axis limits, a legend without entries).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from duofit.common import plotfonts, plots
from duofit.common.loader import load_spec
from duofit.common.plots import LossPanel, Mark, panel_grid, plot_histories, pyplot, save_figure
from duofit.common.result import RunResult
from duofit.parity.plot import plot_trajectories
from duofit.parity.report import ParityReport, StageResult
from duofit.runner import Comparison
from duofit.tuning.sweep import SweepResult, plot_sweep

NAME = "实验 🚀"  # CJK and an emoji: the default font (DejaVu Sans) has neither


@pytest.fixture(autouse=True)
def _warnings_are_errors() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The figures the plot functions save (written to disk as usual, then inspected)."""
    saved: list[Any] = []

    def keep(fig: Any, path: str | Path, *args: Any, **kwargs: Any) -> Path:
        saved.append(fig)
        plotfonts.fit_text_to_fonts(fig)
        fig.canvas.draw()  # what savefig does: measures and draws every text
        return Path(path)

    for module in ("duofit.common.plots", "duofit.tuning.sweep", "duofit.parity.plot"):
        monkeypatch.setattr(f"{module}.save_figure", keep)
    return saved


def history(losses: list[float], val: list[float] | None = None, **metrics: list[float]) -> pd.DataFrame:
    n = len(losses)
    return pd.DataFrame({"epoch": np.arange(1, n + 1), "loss": losses, "val_loss": val or losses, **metrics})


def marks(ax: Any) -> list[Any]:
    """The marker-only lines of an axes (marks), as opposed to the curves."""
    return [line for line in ax.get_lines() if line.get_linestyle() == "None"]


def run_result(hist: pd.DataFrame, verdict: str = "fine", stopped: int | None = None, **kw: Any) -> RunResult:
    diagnostics = {"verdict": {"name": verdict, "message": f"{verdict}: measured", "fix": "", "epoch": stopped}}
    return RunResult(
        backend="torch",
        spec=load_spec("examples/seed.toml"),
        history=hist,
        metrics={},
        predictions=np.zeros(0),
        y_test=np.zeros(0),
        timings={},
        environment={},
        diverged=verdict == "diverged",
        stopped_epoch=stopped,
        diagnostics=diagnostics,
        **kw,
    )


def test_divergence_mark_sits_on_the_last_finite_value() -> None:
    fig, (ax,) = panel_grid(1)
    panel = LossPanel(ax)
    panel.add([1, 2, 3, 4], [0.7, 0.6, 0.5, np.nan], stop=4, mark=Mark("diverged at epoch 4"), label="train")
    panel.finish()
    (mark,) = marks(ax)
    assert (mark.get_xdata()[0], mark.get_ydata()[0]) == (3.0, 0.5)
    pyplot().close(fig)


def test_huge_final_loss_does_not_squash_the_curve_and_is_marked_on_the_edge() -> None:
    fig, (ax,) = panel_grid(1)
    panel = LossPanel(ax)
    panel.add([1, 2, 3, 4], [0.7, 0.6, 0.5, 2.8e7], stop=4, mark=Mark("diverged at epoch 4"), label="train")
    limits = panel.finish()
    assert limits is not None and limits[1] < 1.0 and ax.get_yscale() == "linear"
    (mark,) = marks(ax)
    assert mark.get_xdata()[0] == 4.0 and mark.get_ydata()[0] == pytest.approx(limits[1])
    assert "2.8e+07, above the chart" in mark.get_label()
    pyplot().close(fig)


def test_a_moderate_last_value_stays_on_the_chart() -> None:
    fig, (ax,) = panel_grid(1)
    panel = LossPanel(ax)
    panel.add([1, 2, 3], [0.7, 0.5, 0.8], stop=3, mark=Mark("diverged"))
    lo, hi = panel.finish() or (0.0, 0.0)
    (mark,) = marks(ax)
    assert lo < 0.5 and hi > 0.8 and mark.get_ydata()[0] == 0.8
    pyplot().close(fig)


def test_one_epoch_curves_have_markers_and_the_ticks_are_integers() -> None:
    fig, (ax,) = panel_grid(1)
    panel = LossPanel(ax)
    panel.add([1], [0.7], label="one epoch")
    panel.add([1, 2], [0.7, 0.6], label="two epochs")
    panel.finish()
    one, two = ax.get_lines()
    assert one.get_marker() == "o" and two.get_marker() == "None"
    fig.canvas.draw()
    ticks = [t for t in ax.get_xticks() if 1 <= t <= 2]
    assert ticks and all(float(t).is_integer() for t in ticks)
    pyplot().close(fig)


def test_a_one_epoch_panel_has_integer_ticks() -> None:
    fig, (ax,) = panel_grid(1)
    panel = LossPanel(ax)
    panel.add([1], [0.7])
    panel.finish()
    fig.canvas.draw()
    visible = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert visible == [1.0]
    pyplot().close(fig)


def test_a_run_with_no_finite_value_is_marked_at_the_top() -> None:
    fig, (ax,) = panel_grid(1)
    panel = LossPanel(ax)
    panel.add([1], [np.nan], stop=1, mark=Mark("diverged at epoch 1"))
    panel.add([1, 2], [0.7, 0.6])
    _, hi = panel.finish() or (0.0, 0.0)
    (mark,) = marks(ax)
    assert mark.get_ydata()[0] == hi and "no finite value" in mark.get_label()
    pyplot().close(fig)


def test_panel_grid_draws_no_empty_cell() -> None:
    for n, shape in ((1, (1, 1)), (2, (1, 2)), (3, (2, 2))):
        fig, axes = panel_grid(n)
        assert len(axes) == len(fig.axes) == n
        assert axes[-1].get_subplotspec().get_gridspec().get_geometry() == shape
        pyplot().close(fig)


def test_history_plot_of_a_diverged_run(tmp_path: Path, figures: list[Any]) -> None:
    torch = history([0.7, 0.6, 3e7], [0.69, 0.65, np.inf], val_accuracy=[0.5, 0.8, np.nan])
    keras = history([0.7], val_accuracy=[0.5])
    plot_histories({"torch": torch, "keras": keras}, tmp_path / "c.png", NAME, {"torch": {"diverged": 3}})
    (fig,) = figures
    loss, _ = fig.axes
    assert loss.get_ylim()[1] < 1.0
    (mark,) = marks(loss)
    assert mark.get_xdata()[0] == 3.0 and "torch diverged at epoch 3" in mark.get_label()
    keras_lines = [line for line in loss.get_lines() if line.get_label().startswith("keras")]
    assert keras_lines and all(line.get_marker() == "o" for line in keras_lines)


def test_history_plot_has_no_empty_metric_panel(tmp_path: Path, figures: list[Any]) -> None:
    plot_histories({"torch": history([0.7, 0.6], val_roc_auc=[np.nan, np.nan])}, tmp_path / "c.png")
    assert len(figures[0].axes) == 1


def test_sweep_plot_marks_verdicts(tmp_path: Path, figures: list[Any]) -> None:
    spec = load_spec("examples/seed.toml")
    runs = [
        ({"optimizer.lr": 1e4}, run_result(history([2.8e7]), "diverged", stopped=1)),
        ({"optimizer.lr": 10.0}, run_result(history([0.7, 0.9, 0.6], [0.7, 2.0, 0.9]), "unstable")),
        ({"optimizer.lr": 0.01}, run_result(history([0.7, 0.5, 0.4]))),
    ]
    res = SweepResult(spec, ["optimizer.lr"], [(s, Comparison(spec, {"torch": r}, {})) for s, r in runs])
    plot_sweep(res, tmp_path / "s.png")
    train, val = figures[0].axes
    labels = [line.get_label() for line in val.get_lines() if not line.get_label().startswith("_")]
    assert labels == [
        "optimizer.lr=10000.0 (torch, diverged)",
        "optimizer.lr=10.0 (torch, unstable)",
        "optimizer.lr=0.01 (torch)",
    ]
    assert sorted(m.get_marker() for m in marks(train)) == ["X", "v"]
    assert train.get_ylim()[1] < 10  # the diverged run's 2.8e7 leaves the chart; its mark sits on the edge
    assert list(res.table()["verdict"]) == ["diverged", "unstable", "fine"]


def test_parity_plot_of_a_diverged_run(tmp_path: Path, figures: list[Any]) -> None:
    spec = load_spec("examples/seed.toml")
    steps = {"torch": np.array([0.7, 0.6, 0.5, 0.4, np.inf]), "keras": np.array([0.7, 0.6, 0.5, 0.4, 9e9])}
    results = {
        name: run_result(history([0.6, 0.4, np.nan]), "diverged", stopped=3, steps={"loss": loss})
        for name, loss in steps.items()
    }
    trajectory = StageResult("trajectory", 1.0, 1.0, 1e-4, "fail")
    report = ParityReport(spec, ("torch", "keras"), False, [], [trajectory], results)
    plot_trajectories(report, tmp_path / "p.png")
    top, _ = figures[0].axes
    assert top.get_ylim()[1] < 1.0
    assert sorted(m.get_xdata()[0] for m in marks(top)) == [4.0, 5.0]  # torch: last finite; keras: 9e9 on the edge


def test_a_name_the_font_lacks_draws_no_warning(tmp_path: Path) -> None:
    fig, (ax,) = panel_grid(1)
    ax.plot([1, 2], [1, 2], label=f"{NAME} torch")
    ax.legend()
    fig.suptitle(NAME)
    save_figure(fig, tmp_path / "f.png")  # warnings are errors in this module
    assert (tmp_path / "f.png").stat().st_size > 1000


def test_characters_no_font_has_are_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plotfonts, "_families", lambda: ())  # as on a machine with no other font
    fig = pyplot().figure()
    title = fig.suptitle(f"{NAME} loss")
    plots.fit_text_to_fonts(fig)
    assert title.get_text() == "loss"
    fig.canvas.draw()
    pyplot().close(fig)


def test_an_installed_font_with_the_glyph_is_used() -> None:
    from matplotlib.font_manager import FontProperties, findfont

    default = plotfonts._charmap(findfont(FontProperties()))
    props = FontProperties()
    elsewhere = [
        chr(c)
        for family in plotfonts._families()
        for c in sorted(plotfonts._covered(props, [family]) - default)
        if c > 0x2000 and chr(c).isprintable()
    ]
    if not elsewhere:
        pytest.skip("no installed font has a glyph the default font lacks")
    fig = pyplot().figure()
    title = fig.suptitle(f"a {elsewhere[0]} b")
    plots.fit_text_to_fonts(fig)
    assert title.get_text() == f"a {elsewhere[0]} b" and len(title.get_fontfamily()) == 2
    fig.canvas.draw()
    pyplot().close(fig)
