"""Constants shared by the benchmark tests."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TINY_EPOCHS = 3  # the minimum: one warm-up epoch + two steady epochs
PEAK = 256  # a small peak matmul keeps each test run quick (MFU values are not checked)
