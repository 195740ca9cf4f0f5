"""Charts and a markdown summary of a benchmark CSV: ``python benchmarks/plot.py results/bench.csv``.

Writes ``<stem>_ms_per_step.png``, ``<stem>_samples_per_s.png``, ``<stem>_overhead.png``,
``<stem>_summary.md``, ``<stem>_summary.csv`` and ``<stem>_ratios.csv`` next to the CSV
(or into ``--out``).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from duofit.bench.cli import standalone

if __name__ == "__main__":
    sys.exit(standalone("plot", sys.argv[1:], prog="benchmarks/plot.py"))
