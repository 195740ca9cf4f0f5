"""The scale and compile summaries: memory targets per data set, streaming throughput, where compiling pays off.

Framework-free (pandas). Every number is a median over the repeats of its configuration.

* :func:`memory_table`: per backend, data kind and size, peak RSS at the fewest and the
  most epochs, their ratio (target :data:`MEMORY_GROWTH_MAX`), the in-memory bound
  ``IN_MEMORY_FACTOR x data + the framework's empty-process row`` and the streaming cap
  (:data:`NPY_PEAK_MB_MAX` at :data:`NPY_CAP_SAMPLES` samples).
* :func:`streaming_table`: memory-mapped (``npy``) samples/s over in-memory (``npz``) samples/s
  on the same data at batch :data:`STREAM_BATCH` (target :data:`STREAM_THROUGHPUT_MIN`).
* :func:`compile_table`: compiled vs eager rows of the same configuration: steady ms/step, the
  first epoch, ``compile_s`` and the epochs after which compiling has paid for itself.

Example:
    >>> import pandas as pd
    >>> rows = [dict(workload="empty", backend="duofit-torch", peak_rss_mb=400.0),
    ...         dict(workload="scale_mlp", backend="duofit-torch", data_kind="npz", n_samples=10**6,
    ...              batch_size=1024, epochs=4, peak_rss_mb=560.0, data_mb=80.1, samples_per_s=1e6),
    ...         dict(workload="scale_mlp", backend="duofit-torch", data_kind="npz", n_samples=10**6,
    ...              batch_size=1024, epochs=40, peak_rss_mb=570.0, data_mb=80.1, samples_per_s=1e6)]
    >>> row = memory_table(pd.DataFrame(rows)).iloc[0]
    >>> round(float(row.growth), 3), bool(row.growth_met), round(float(row.bound_mb), 1), bool(row.bound_met)
    (1.018, True, 560.2, False)
"""

from __future__ import annotations

import math
from typing import Any

from duofit.bench.suites import EMPTY_WORKLOAD

__all__ = [
    "IN_MEMORY_FACTOR",
    "MEMORY_GROWTH_MAX",
    "NPY_CAP_SAMPLES",
    "NPY_PEAK_MB_MAX",
    "STREAM_BATCH",
    "STREAM_THROUGHPUT_MIN",
    "compile_table",
    "memory_table",
    "scale_markdown",
    "streaming_table",
]

# duofit's memory and streaming targets (the scale suite's acceptance figures):
MEMORY_GROWTH_MAX = 1.10  # peak RSS at the most epochs / at the fewest: memory must not grow with epochs
IN_MEMORY_FACTOR = 2.0  # in-memory peak <= 2 x the float32 data + the framework's empty-process peak
NPY_CAP_SAMPLES = 10**7  # the streaming cap applies to 1e7 x 20 float32 (800 MB on disk) ...
NPY_PEAK_MB_MAX = 1.5e9 / 2**20  # ... read memory-mapped: peak RSS <= 1.5 GB (1430.5 MiB)
STREAM_BATCH = 1024  # streaming throughput is compared at this batch size ...
STREAM_THROUGHPUT_MIN = 0.8  # ... npy samples/s >= 0.8 x in-memory samples/s on the same data

_SCALE_KEY = ["backend", "device", "threads", "data_kind", "n_samples", "batch_size"]


def _num(frame: Any, col: str) -> Any:
    import pandas as pd

    return pd.to_numeric(frame[col], errors="coerce") if col in frame else pd.Series(math.nan, index=frame.index)


def _baselines(frame: Any) -> dict[str, float]:
    """Median peak RSS of each backend's empty-process rows."""
    empty = frame[frame["workload"] == EMPTY_WORKLOAD]
    return {str(k): float(v) for k, v in _num(empty, "peak_rss_mb").groupby(empty["backend"]).median().items()}


def memory_table(frame: Any) -> Any:
    """One row per backend, data kind, size and batch: peak RSS at the fewest/most epochs and the targets met.

    Rows of a generated data set (``data_kind`` npz/npy with ``n_samples``) count; the other
    rows are ignored. Columns: the key, ``data_mb``, ``baseline_mb`` (the backend's empty row),
    ``epochs_low``/``epochs_high``, ``peak_low_mb``/``peak_high_mb``, ``growth`` (high / low),
    ``growth_met``, ``bound_mb``/``bound_met`` (npz), ``cap_met`` (npy at 1e7),
    ``samples_per_s`` at the most epochs and ``mib_per_data_mib`` (:func:`_with_marginal`).
    """
    import pandas as pd

    if frame.empty or "data_kind" not in frame:
        return pd.DataFrame()
    rows = frame[frame["data_kind"].isin(["npz", "npy"]) & (frame["workload"] != EMPTY_WORKLOAD)].copy()
    if rows.empty:
        return pd.DataFrame()
    for col in ("peak_rss_mb", "data_mb", "samples_per_s", "epochs", "n_samples", "batch_size"):
        rows[col] = _num(rows, col)
    for col in (c for c in _SCALE_KEY if c not in rows):  # rows built by hand may leave the machine out
        rows[col] = ""
    base = _baselines(frame)
    out = []
    for key, group in rows.groupby(_SCALE_KEY, sort=True):
        by_epochs = group.groupby("epochs")
        peak, sps = by_epochs["peak_rss_mb"].median(), by_epochs["samples_per_s"].median()
        low, high = peak.index.min(), peak.index.max()
        row = dict(zip(_SCALE_KEY, key, strict=True))
        baseline = base.get(str(row["backend"]), math.nan)
        data_mb = float(group["data_mb"].median())
        growth = peak[high] / peak[low] if high != low else math.nan
        bound = IN_MEMORY_FACTOR * data_mb + baseline if row["data_kind"] == "npz" else math.nan
        capped = row["data_kind"] == "npy" and row["n_samples"] >= NPY_CAP_SAMPLES
        row.update(
            data_mb=data_mb,
            baseline_mb=baseline,
            epochs_low=int(low),
            epochs_high=int(high),
            peak_low_mb=float(peak[low]),
            peak_high_mb=float(peak[high]),
            growth=growth,
            growth_met=bool(growth <= MEMORY_GROWTH_MAX) if not math.isnan(growth) else None,
            bound_mb=bound,
            bound_met=bool(peak.max() <= bound) if not math.isnan(bound) else None,
            cap_met=bool(peak.max() <= NPY_PEAK_MB_MAX) if capped else None,
            samples_per_s=float(sps[high]),
        )
        out.append(row)
    return _with_marginal(pd.DataFrame(out))


def _with_marginal(table: Any) -> Any:
    """Add ``mib_per_data_mib``: extra peak RSS per extra MiB of data, against the same setup's smallest set.

    It separates what grows with the data from the fixed runtime cost (thread pools, kernels,
    autograd buffers) that the empty-process row does not include: 1 means one copy of the data.
    """
    if table.empty:
        return table
    table = table.sort_values([*(k for k in _SCALE_KEY if k != "n_samples"), "n_samples"]).reset_index(drop=True)
    setup = [k for k in _SCALE_KEY if k != "n_samples"]
    first = table.groupby(setup)[["peak_high_mb", "data_mb"]].transform("first")
    extra_data = table["data_mb"] - first["data_mb"]
    table["mib_per_data_mib"] = (table["peak_high_mb"] - first["peak_high_mb"]) / extra_data.where(extra_data > 0)
    return table


def streaming_table(memory: Any) -> Any:
    """Streaming (npy) over in-memory (npz) samples/s per backend and size at batch :data:`STREAM_BATCH`."""
    import pandas as pd

    if memory.empty:
        return pd.DataFrame()
    at = memory[memory["batch_size"] == STREAM_BATCH]
    key = ["backend", "device", "threads", "n_samples"]
    out = []
    for k, group in at.groupby(key, sort=True):
        by = group.set_index("data_kind")["samples_per_s"]
        if "npy" in by.index and "npz" in by.index:
            ratio = float(by["npy"] / by["npz"])
            out.append({**dict(zip(key, k, strict=True)), "npz_sps": by["npz"], "npy_sps": by["npy"],
                        "ratio": ratio, "met": ratio >= STREAM_THROUGHPUT_MIN})  # fmt: skip
    return pd.DataFrame(out)


def _eager_variant(variant: str) -> str:
    """The variant of the same configuration without ``compile``: ``n1e6-npz-compile`` -> ``n1e6-npz``."""
    parts = [p for p in str(variant).split("-") if p and p != "compile"]
    return "-".join(parts)


def compile_table(summary: Any) -> Any:
    """Compiled rows against the eager rows of the same configuration and backend (from :func:`summarize`).

    ``break_even_epochs`` = extra first-epoch time / steady time saved per epoch: after that many
    epochs compiling has paid for itself (``inf``: compiled steps are not faster).
    """
    import pandas as pd

    if summary.empty or "variant" not in summary:
        return pd.DataFrame()
    compiled = summary[summary["variant"].astype(str).str.split("-").apply(lambda parts: "compile" in parts)]
    # epochs too: a compiled 40-epoch row is set against the eager 40-epoch row, not a 4-epoch one
    key = ["workload", "device", "threads", "dtype", "batch_size", "epochs", "backend"]
    key = [col for col in key if col in summary]
    out = []
    for _, c in compiled.iterrows():
        match = summary[(summary["variant"] == _eager_variant(c["variant"]))]
        for col in key:
            match = match[match[col] == c[col]]
        if match.empty:
            continue
        e = match.iloc[0]
        saved_per_epoch = (float(e["ms_per_step"]) - float(c["ms_per_step"])) * float(c["steps_per_epoch"]) / 1e3
        extra = float(c["first_epoch_s"]) - float(e["first_epoch_s"])
        out.append({
            **{k: c[k] for k in key},
            "eager_ms": float(e["ms_per_step"]),
            "compiled_ms": float(c["ms_per_step"]),
            "speedup": float(e["ms_per_step"]) / float(c["ms_per_step"]),
            "eager_first_s": float(e["first_epoch_s"]),
            "compiled_first_s": float(c["first_epoch_s"]),
            "compile_s": float(c.get("compile_s", math.nan)),
            "break_even_epochs": extra / saved_per_epoch if saved_per_epoch > 0 else math.inf,
        })  # fmt: skip
    return pd.DataFrame(out)


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows])


def scale_markdown(memory: Any, streaming: Any, compiled: Any) -> str:
    """Markdown sections for whichever of the three tables has rows ("" when none has)."""
    parts = []
    if not memory.empty:
        parts.append(
            f"### Memory (peak RSS, MiB; targets: growth <= {MEMORY_GROWTH_MAX:g}, in-memory <= "
            f"{IN_MEMORY_FACTOR:g} x data + empty process, npy at 1e7 <= {NPY_PEAK_MB_MAX:.0f} MiB)\n"
        )
        header = ["backend", "kind", "samples", "data MiB", "empty MiB", "epochs", "peak (fewest)", "peak (most)"]
        header += ["growth", "growth met", "bound", "bound met", "npy cap met", "MiB per data MiB", "samples/s"]
        parts.append(_table(header, [
            [r.backend, r.data_kind, int(r.n_samples), r.data_mb, r.baseline_mb, f"{r.epochs_low}/{r.epochs_high}",
             r.peak_low_mb, r.peak_high_mb, r.growth, r.growth_met, r.bound_mb, r.bound_met, r.cap_met,
             r.mib_per_data_mib, r.samples_per_s]
            for r in memory.itertuples()
        ]))  # fmt: skip
    if not streaming.empty:
        parts.append(
            f"\n\n### Streaming throughput (batch {STREAM_BATCH}; target npy / npz >= {STREAM_THROUGHPUT_MIN:g})\n"
        )
        parts.append(_table(["backend", "samples", "npz samples/s", "npy samples/s", "npy / npz", "met"], [
            [r.backend, int(r.n_samples), r.npz_sps, r.npy_sps, r.ratio, bool(r.met)] for r in streaming.itertuples()
        ]))  # fmt: skip
    if not compiled.empty:
        parts.append("\n\n### Compiled vs eager (steady ms/step; break-even: epochs after which compiling paid off)\n")
        parts.append(_table(
            ["workload", "batch", "backend", "eager ms", "compiled ms", "speedup", "first epoch eager s",
             "first epoch compiled s", "compile_s", "break-even epochs"],
            [[r.workload, int(r.batch_size), r.backend, r.eager_ms, r.compiled_ms, r.speedup, r.eager_first_s,
              r.compiled_first_s, r.compile_s, r.break_even_epochs] for r in compiled.itertuples()],
        ))  # fmt: skip
    return "\n".join(parts) + ("\n" if parts else "")
