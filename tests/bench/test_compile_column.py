"""The ``compile_s`` column: written by every cell, read back empty from files older than it."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from duofit.bench.schema import ADDED_COLUMNS, COLUMNS, SCHEMA_VERSION, BenchFileError, append_row, read_rows


def test_older_layout_reads_with_the_added_column_empty_and_is_never_appended_to(tmp_path: Path) -> None:
    old = [c for c in COLUMNS if c not in ADDED_COLUMNS]
    path = tmp_path / "v2.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(old)
        writer.writerow(["2" if c == "schema_version" else ("a\nb" if c == "epoch_eval" else c) for c in old])
    (row,) = read_rows(path)
    assert row["compile_s"] == "" and row["workload"] == "workload" and row["epoch_eval"] == "a\nb"
    assert row["schema_version"] == "2" and SCHEMA_VERSION == 3
    with pytest.raises(BenchFileError, match="schema version 3"):
        append_row(path, {"workload": "seed"})


def test_compile_s_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    append_row(path, {"cell_id": "seed|duofit-torch|compile", "first_epoch_s": 15.5, "compile_s": 15.3})
    assert read_rows(path)[0]["compile_s"] == "15.3"
