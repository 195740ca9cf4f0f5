"""Charts of a benchmark CSV: ms/step bars with IQR, samples/s vs batch size, overhead ratios.

Example:
    Writes PNG files next to the CSV, so it is not run as a doctest.

    >>> paths = plot_results("benchmarks/results/bench-cpu.csv")   # doctest: +SKIP
    >>> sorted(paths)                                               # doctest: +SKIP
    ['markdown', 'ms_per_step', 'overhead', 'ratios', 'samples_per_s', 'summary']
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from duofit.bench.runners import RUNNERS
from duofit.bench.summary import RATIOS, load_results, overhead_ratios, summarize, write_summary
from duofit.common.errors import DataError
from duofit.common.io import atomic_write_bytes
from duofit.common.plots import fit_text_to_fonts

__all__ = ["plot_results"]

_ORDER = list(RUNNERS)  # fixed backend order and colours across charts


def _save(fig: Any, path: Path) -> None:
    fit_text_to_fonts(fig)  # a workload or backend name the font lacks draws no warning
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def _colors(backends: list[str]) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("tab10")
    return {b: cmap(_ORDER.index(b) % 10 if b in _ORDER else 9) for b in backends}


def _backends(table: Any) -> list[str]:
    present = set(table["backend"])
    return [b for b in _ORDER if b in present] + sorted(present - set(_ORDER))


def _per_workload(table: Any) -> tuple[list[str], list[str], dict[str, Any], Any, Any]:
    """One panel per workload, and the backends in chart order with their colors."""
    import matplotlib.pyplot as plt

    workloads = sorted(set(table["workload"]))
    backends = _backends(table)
    fig, axes = plt.subplots(1, len(workloads), figsize=(6.5 * len(workloads), 4.2), squeeze=False)
    return workloads, backends, _colors(backends), fig, axes


def _ms_bars(table: Any, path: Path) -> None:
    import matplotlib.pyplot as plt
    import numpy as np

    workloads, backends, colors, fig, axes = _per_workload(table)
    for ax, wl in zip(axes[0], workloads, strict=True):
        part = table[table["workload"] == wl]
        sizes = sorted(set(part["batch_size"]))
        width = 0.8 / max(len(backends), 1)
        for j, backend in enumerate(backends):
            rows = part[part["backend"] == backend].set_index("batch_size").reindex(sizes)
            x = np.arange(len(sizes)) + (j - (len(backends) - 1) / 2) * width
            med = rows["ms_per_step"].to_numpy(dtype=float)
            err = np.vstack([med - rows["ms_q25"].to_numpy(dtype=float), rows["ms_q75"].to_numpy(dtype=float) - med])
            ax.bar(x, med, width, yerr=err, capsize=2, label=backend, color=colors[backend])
        ax.set_xticks(np.arange(len(sizes)), [f"batch {s}" for s in sizes])
        ax.set_yscale("log")
        ax.set_ylabel("steady ms / step (median, IQR bars; log)")
        ax.set_title(wl)
        ax.grid(True, axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    _save(fig, path)
    plt.close(fig)


def _samples_lines(table: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    workloads, backends, colors, fig, axes = _per_workload(table)
    for ax, wl in zip(axes[0], workloads, strict=True):
        part = table[table["workload"] == wl]
        for backend in backends:
            rows = part[part["backend"] == backend].sort_values("batch_size")
            if rows.empty:
                continue
            low = rows["samples_per_s"] - rows["sps_q25"]
            high = rows["sps_q75"] - rows["samples_per_s"]
            ax.errorbar(
                rows["batch_size"],
                rows["samples_per_s"],
                yerr=[low.clip(lower=0), high.clip(lower=0)],
                marker="o",
                capsize=2,
                label=backend,
                color=colors[backend],
            )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel("training samples / s (median, IQR)")
        ax.set_title(wl)
        ax.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=8)
    _save(fig, path)
    plt.close(fig)


def _ratio_bars(ratios: Any, path: Path) -> None:
    import matplotlib.pyplot as plt
    import numpy as np

    names = [r.name for r in RATIOS if not ratios.empty and r.name in set(ratios["ratio"])]
    fig, axes = plt.subplots(1, max(len(names), 1), figsize=(4.2 * max(len(names), 1), 3.8), squeeze=False)
    for ax, name in zip(axes[0], names, strict=False):
        part = ratios[ratios["ratio"] == name]
        labels = [f"{w}\nbs {int(b)}" for w, b in zip(part["workload"], part["batch_size"], strict=True)]
        x = np.arange(len(part))
        value = part["value"].to_numpy(dtype=float)
        err = np.vstack([value - part["low"].to_numpy(dtype=float), part["high"].to_numpy(dtype=float) - value])
        colors = ["tab:green" if m else "tab:red" for m in part["met"]]
        ax.bar(x, value, yerr=err.clip(min=0), capsize=3, color=colors)
        target = next(r for r in RATIOS if r.name == name)
        ax.axhline(
            target.target, color="black", linestyle="--", linewidth=1, label=f"target {target.op} {target.target:g}"
        )
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set_xticks(x, labels, fontsize=8)
        ax.set_title(name, fontsize=10)
        ax.legend(fontsize=8)
    if not names:
        axes[0][0].text(0.5, 0.5, "no ratio: a pair of backends is missing", ha="center", va="center")
    _save(fig, path)
    plt.close(fig)


def plot_results(csv_path: str | Path, out_dir: str | Path | None = None) -> dict[str, Path]:
    """Write the PNG charts and the summary files (see :func:`~duofit.bench.summary.write_summary`).

    Files (in ``out_dir``, default the CSV's folder): ``<stem>_ms_per_step.png``,
    ``<stem>_samples_per_s.png``, ``<stem>_overhead.png``, plus the summary CSV/markdown.

    Raises:
        DataError: the CSV does not exist or has no rows.
    """
    import matplotlib

    matplotlib.use("Agg")
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DataError(f"benchmark CSV not found: {csv_path}", path="csv")
    frame = load_results(csv_path)
    if frame.empty:
        raise DataError(f"{csv_path} has no result rows yet; run the benchmark first", path="csv")
    folder = Path(out_dir) if out_dir is not None else csv_path.parent
    table = summarize(frame)
    paths = write_summary(csv_path, folder)
    stem = csv_path.stem
    paths["ms_per_step"] = folder / f"{stem}_ms_per_step.png"
    paths["samples_per_s"] = folder / f"{stem}_samples_per_s.png"
    paths["overhead"] = folder / f"{stem}_overhead.png"
    _ms_bars(table, paths["ms_per_step"])
    _samples_lines(table, paths["samples_per_s"])
    _ratio_bars(overhead_ratios(table), paths["overhead"])
    return paths
