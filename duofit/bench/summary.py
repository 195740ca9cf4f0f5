"""From the per-repeat CSV to medians with IQR, overhead ratios against the targets, and markdown.

Every number is a median over the repeats of a configuration; the IQR (75th - 25th
percentile) says how much the repeats disagree. A ratio is a ratio of medians, with a
conservative band from the quartiles (``low = q25(a) / q75(b)``, ``high = q75(a) / q25(b)``).

Example:
    Prints a long table, so it is not run as a doctest.

    >>> frame = load_results("benchmarks/results/bench-cpu.csv")    # doctest: +SKIP
    >>> table = summarize(frame)                                      # doctest: +SKIP
    >>> ratios = overhead_ratios(table)                               # doctest: +SKIP
    >>> print(markdown(table, ratios))                                # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from duofit.bench.schema import read_rows
from duofit.bench.suites import EMPTY_WORKLOAD
from duofit.common.io import atomic_write_text

__all__ = [
    "CONFIG",
    "CONTENDED_PCT",
    "RATIOS",
    "WORKLOAD_TARGETS",
    "Ratio",
    "load_results",
    "markdown",
    "overhead_ratios",
    "summarize",
    "write_summary",
]

# One comparison = one configuration; `variant` keeps compiled, bf16 and scale rows apart.
CONFIG = ["workload", "variant", "device", "threads", "dtype", "batch_size", "epochs"]
# Text columns a file may leave empty (older layouts lack them): read as "" so they group.
_TEXT_COLUMNS = ("variant", "data_kind", "precision", "device_sync")
# A repeat during which other processes used more than this share of the host's cores is
# counted as contended: on 2 cores, one busy core (50%) made 2-thread torch steps ~10x slower here.
CONTENDED_PCT = 10.0
_KEY = [*CONFIG, "backend"]
_MEDIANS = [
    "steady_loop_ms_per_step",
    "samples_per_s",
    "first_epoch_s",
    "total_wall_s",
    "import_s",
    "achieved_gflops",
    "mfu",
    "mfu_best_peak",
    "peak_rss_mb",
    "peak_device_mem_mb",
    "final_train_loss",
    "test_metric",
    "compile_s",
    "steps_per_epoch",
]


@dataclass(frozen=True)
class Ratio:
    """``slower / faster`` of two backends' steady ms/step, and duofit's target for it.

    Attributes:
        name: Column label.
        numerator, denominator: Backend names.
        op: ``<=`` (an overhead that must stay small) or ``>=`` (a speed-up that must be large).
        target: The threshold.
    """

    name: str
    numerator: str
    denominator: str
    op: str
    target: float

    def target_for(self, workload: str) -> float:
        """The target on ``workload`` (:data:`WORKLOAD_TARGETS`, else :attr:`target`)."""
        return WORKLOAD_TARGETS.get((workload, self.name), self.target)

    def met(self, value: float, workload: str = "") -> bool:
        """Whether ``value`` meets the target on ``workload``."""
        target = self.target_for(workload)
        return value <= target if self.op == "<=" else value >= target


# duofit's overhead targets against the hand-written loops, set for the seed workload on CPU.
RATIOS = (
    Ratio("duofit-torch / lean-torch", "duofit-torch", "lean-torch", "<=", 1.05),
    Ratio("seed-loop / duofit-torch", "seed-loop", "duofit-torch", ">=", 1.5),
    Ratio("duofit-keras / keras-tuned", "duofit-keras", "keras-tuned", "<=", 1.15),
    Ratio("keras-naive-fit / duofit-keras", "keras-naive-fit", "duofit-keras", ">=", 5.0),
)
# Targets that differ on a workload: on the model workloads (sequence, attention, residual) the
# Keras overhead target is 1.10 against the tuned fit (duofit's own goal for those models).
WORKLOAD_TARGETS: dict[tuple[str, str], float] = {
    (workload, "duofit-keras / keras-tuned"): 1.10
    for workload in ("lstm_sunspots", "gru_digits_rows", "text_transformer", "resnet_digits")
}


def load_results(path: str | Path) -> Any:
    """Read a benchmark CSV into a typed pandas DataFrame (schema checked first)."""
    import pandas as pd

    rows = read_rows(path)  # clear error for a foreign or older file
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    for col in frame.columns:
        converted = pd.to_numeric(frame[col], errors="coerce")
        if col not in _TEXT_COLUMNS and converted.notna().sum() == (frame[col] != "").sum():
            frame[col] = converted
    return frame


def summarize(frame: Any) -> Any:
    """One row per configuration and backend: repeats, median and IQR of steady ms/step, other medians."""
    import pandas as pd

    frame = frame[frame["workload"] != EMPTY_WORKLOAD] if not frame.empty else frame  # no steady state
    if frame.empty:
        return pd.DataFrame()
    frame = frame.copy()
    for col in (c for c in CONFIG if c not in frame):  # a frame built by hand may lack the newer key columns
        frame[col] = ""
    # MFU against the best peak measured for this CPU and thread count anywhere in the file: a
    # peak measured while other processes were busy would make every MFU of its run look better.
    best = pd.to_numeric(frame["peak_gflops"], errors="coerce").groupby([frame["cpu_model"], frame["threads"]])
    frame["mfu_best_peak"] = pd.to_numeric(frame["achieved_gflops"], errors="coerce") / best.transform("max")
    groups = frame.groupby(_KEY, sort=True)
    ms = groups["steady_ms_per_step"]
    table = pd.DataFrame(
        {
            "repeats": groups.size(),
            "ms_per_step": ms.median(),
            "ms_q25": ms.quantile(0.25),
            "ms_q75": ms.quantile(0.75),
        }
    )
    table["ms_iqr"] = table["ms_q75"] - table["ms_q25"]
    sps = groups["samples_per_s"]
    table["sps_q25"], table["sps_q75"] = sps.quantile(0.25), sps.quantile(0.75)
    for col in _MEDIANS:
        table[col] = pd.to_numeric(groups[col].median(), errors="coerce")
    table["test_metric_name"] = groups["test_metric_name"].first()
    busy = pd.to_numeric(frame["other_busy_pct"], errors="coerce").fillna(0.0) > CONTENDED_PCT
    table["contended"] = busy.groupby([frame[k] for k in _KEY]).sum().astype(int)
    table["other_busy_pct_max"] = groups["other_busy_pct"].max()
    return table.reset_index()


def overhead_ratios(summary: Any) -> Any:
    """Each :data:`RATIOS` entry for every configuration that has both backends.

    Columns: the configuration, ``ratio``, ``low``/``high`` (quartile band), ``loop_ratio``
    (duofit's own loop timer, i.e. without its per-epoch history metrics), ``target``, ``met``.
    """
    import pandas as pd

    columns = [*CONFIG, "ratio", "value", "low", "high", "loop_value", "target", "met"]
    rows = []
    if summary.empty:
        return pd.DataFrame(columns=columns)  # a header-only CSV, still readable by any CSV reader
    for config, group in summary.groupby(CONFIG, sort=True):
        by = group.set_index("backend")
        for r in RATIOS:
            if r.numerator not in by.index or r.denominator not in by.index:
                continue
            a, b = by.loc[r.numerator], by.loc[r.denominator]
            value = a["ms_per_step"] / b["ms_per_step"]
            row = dict(zip(CONFIG, config, strict=True))
            workload = str(row.get("workload", ""))
            row.update(
                ratio=r.name,
                value=value,
                low=a["ms_q25"] / b["ms_q75"],
                high=a["ms_q75"] / b["ms_q25"],
                loop_value=a["steady_loop_ms_per_step"] / b["steady_loop_ms_per_step"],
                target=f"{r.op} {r.target_for(workload):g}",
                met=r.met(value, workload),
            )
            rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _md_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(summary: Any, ratios: Any) -> str:
    """Markdown tables: per-backend medians, the fastest backend per configuration, the ratios."""
    if summary.empty:
        return "_no results_\n"
    parts = [
        "### Steady state per backend (median of repeats; IQR = q75 - q25; n (c): c repeats ran while other "
        f"processes used > {CONTENDED_PCT:g}% of the host)\n",
        _steady_table(summary),
        "\n*MFU against the best matmul peak measured for this CPU and thread count in the file.",
        "\n\n### Fastest backend per configuration\n",
        _fastest_table(summary),
    ]
    if not ratios.empty:
        parts.append(
            "\n\n### Overhead ratios (steady ms/step; duofit's targets, set for the seed workload; "
            "Keras <= 1.10 on the model workloads)\n"
        )
        parts.append(_ratio_table(ratios))
    return "\n".join(parts) + "\n"


def _label(row: Any) -> str:
    """The workload with its variant: ``seed``, ``seed [compile]``, ``scale_mlp [n1e6-npy]``."""
    variant = str(getattr(row, "variant", "") or "")
    return f"{row.workload} [{variant}]" if variant else str(row.workload)


def _steady_table(summary: Any) -> str:
    """One row per workload, batch size and backend: medians of the steady state."""
    rows = [
        [
            _label(s),
            int(s.batch_size),
            s.backend,
            f"{int(s.repeats)} ({int(s.contended)})" if s.contended else int(s.repeats),
            s.ms_per_step,
            s.ms_iqr,
            s.samples_per_s,
            s.first_epoch_s,
            s.total_wall_s,
            s.mfu_best_peak,
            s.final_train_loss,
            f"{s.test_metric_name} {_fmt(s.test_metric)}",
        ]
        for s in summary.itertuples()
    ]
    header = ["workload", "batch", "backend", "n", "ms/step", "IQR", "samples/s", "first epoch s", "total s", "MFU*"]
    return _md_table([*header, "final loss", "test metric"], rows)


def _fastest_table(summary: Any) -> str:
    """One row per configuration with two backends or more: the fastest, the runner-up, keras vs torch."""
    win_rows = []
    for _, group in summary.groupby(CONFIG, sort=True):
        ranked = group.sort_values("ms_per_step")
        if len(ranked) < 2:
            continue
        first, second = ranked.iloc[0], ranked.iloc[1]
        torch_keras = ""
        by = group.set_index("backend")
        if {"duofit-torch", "duofit-keras"} <= set(by.index):
            tk = by.loc["duofit-keras", "ms_per_step"] / by.loc["duofit-torch", "ms_per_step"]
            torch_keras = f"{tk:.2f}"
        win_rows.append(
            [
                first.workload,
                first.variant,
                int(first.batch_size),
                first.backend,
                first.ms_per_step,
                second.backend,
                second.ms_per_step / first.ms_per_step,
                torch_keras,
            ]
        )
    header = ["workload", "variant", "batch", "fastest", "ms/step", "runner-up", "runner-up / fastest"]
    return _md_table([*header, "duofit-keras / duofit-torch"], win_rows)


def _ratio_table(ratios: Any) -> str:
    """One row per overhead ratio: value, quartile band, loop-timer value, target, met."""
    rat_rows = [
        [
            _label(r),
            int(r.batch_size),
            r.ratio,
            r.value,
            f"{r.low:.3g}-{r.high:.3g}",
            r.loop_value,
            r.target,
            "yes" if r.met else "no",
        ]
        for r in ratios.itertuples()
    ]
    header = ["workload", "batch", "ratio", "value", "quartile band", "loop-timer value", "target", "met"]
    return _md_table(header, rat_rows)


def write_summary(csv_path: str | Path, out_dir: str | Path | None = None) -> dict[str, Path]:
    """Write ``<stem>_summary.csv``, ``<stem>_ratios.csv`` and ``<stem>_summary.md`` next to the CSV.

    With scale rows also ``<stem>_memory.csv`` (and ``<stem>_streaming.csv`` when both data kinds
    ran), with compiled rows ``<stem>_compile.csv``; their tables are appended to the markdown
    (:mod:`duofit.bench.scale_summary`).

    Example:
        Writes files next to the CSV, so it is not run as a doctest.

        >>> write_summary("results/bench-quick.csv")   # doctest: +SKIP
        {'summary': PosixPath('results/bench-quick_summary.csv'), ...}
    """
    from duofit.bench.scale_summary import compile_table, memory_table, scale_markdown, streaming_table

    csv_path = Path(csv_path)
    folder = Path(out_dir) if out_dir is not None else csv_path.parent
    frame = load_results(csv_path)
    table = summarize(frame)
    ratios = overhead_ratios(table)
    memory = memory_table(frame)
    extra = {"memory": memory, "streaming": streaming_table(memory), "compile": compile_table(table)}
    paths = {
        "summary": folder / f"{csv_path.stem}_summary.csv",
        "ratios": folder / f"{csv_path.stem}_ratios.csv",
        "markdown": folder / f"{csv_path.stem}_summary.md",
    }
    atomic_write_text(paths["summary"], table.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(paths["ratios"], ratios.to_csv(index=False, float_format="%.6g"))
    for name, part in extra.items():
        if not part.empty:
            paths[name] = folder / f"{csv_path.stem}_{name}.csv"
            atomic_write_text(paths[name], part.to_csv(index=False, float_format="%.6g"))
    text = markdown(table, ratios) if not table.empty else ""
    atomic_write_text(
        paths["markdown"], "\n".join(t for t in (text, scale_markdown(*extra.values())) if t) or "_no results_\n"
    )
    return paths
