"""Summary (median, IQR), overhead ratios against duofit's targets, markdown and charts."""

from __future__ import annotations

from pathlib import Path

import pytest

from duofit.bench.plot import plot_results
from duofit.bench.schema import append_row
from duofit.bench.summary import load_results, overhead_ratios, summarize

# steady ms/step of three repeats per backend (seed, batch 32)
MS = {
    "duofit-torch": (1.00, 1.02, 0.98),
    "lean-torch": (0.95, 0.96, 0.94),
    "seed-loop": (2.0, 2.1, 1.9),
    "duofit-keras": (0.40, 0.41, 0.39),
    "keras-tuned": (0.30, 0.31, 0.29),
    "keras-naive-fit": (4.0, 4.2, 3.8),
}


@pytest.fixture
def results(tmp_path: Path) -> Path:
    out = tmp_path / "bench.csv"
    for backend, values in MS.items():
        for repeat, ms in enumerate(values):
            for batch in (32, 128):
                append_row(
                    out,
                    {
                        "cell_id": f"seed|{backend}|cpu|t2|float32|bs{batch}|e10|r{repeat}",
                        "workload": "seed",
                        "backend": backend,
                        "device": "cpu",
                        "threads": 2,
                        "dtype": "float32",
                        "batch_size": batch,
                        "epochs": 10,
                        "repeat": repeat,
                        "steady_ms_per_step": ms * 32 / batch,
                        "steady_loop_ms_per_step": ms * 32 / batch * 0.9,
                        "samples_per_s": batch / ms * 1e3,
                        "first_epoch_s": 0.5,
                        "mfu": 0.01,
                        "final_train_loss": 0.2,
                        "test_metric_name": "accuracy",
                        "test_metric": 0.93,
                        "host_busy_pct": 3.0,
                    },
                )
    return out


def test_medians_iqr_and_ratios(results: Path) -> None:
    table = summarize(load_results(results))
    row = table[(table.backend == "duofit-torch") & (table.batch_size == 32)].iloc[0]
    assert row.repeats == 3
    assert row.ms_per_step == pytest.approx(1.00)
    assert row.ms_iqr == pytest.approx(0.02)  # quartiles of (0.98, 1.00, 1.02): 0.99 and 1.01
    ratios = overhead_ratios(table).set_index(["batch_size", "ratio"])
    lean = ratios.loc[(32, "duofit-torch / lean-torch")]
    assert lean.value == pytest.approx(1.00 / 0.95)
    assert not lean.met  # 1.053 > 1.05
    assert lean.low < lean.value < lean.high
    assert ratios.loc[(32, "seed-loop / duofit-torch")].value == pytest.approx(2.0)
    assert ratios.loc[(32, "seed-loop / duofit-torch")].met
    assert ratios.loc[(32, "duofit-keras / keras-tuned")].value == pytest.approx(0.40 / 0.30)
    assert not ratios.loc[(32, "duofit-keras / keras-tuned")].met
    assert ratios.loc[(32, "keras-naive-fit / duofit-keras")].value == pytest.approx(10.0)
    assert ratios.loc[(32, "keras-naive-fit / duofit-keras")].met
    assert len(ratios) == 8  # four ratios x two batch sizes


def test_plot_writes_charts_and_markdown(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "charts"
    paths = plot_results(results, out)
    for key in ("ms_per_step", "samples_per_s", "overhead"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", key
    md = paths["markdown"].read_text(encoding="utf-8")
    assert "| seed | 32 | keras-tuned |" in md  # fastest on seed at batch 32
    assert "duofit-torch / lean-torch" in md and "| no |" in md and "| yes |" in md
