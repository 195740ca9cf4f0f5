"""Run the benchmark matrix: ``python benchmarks/run.py --quick`` (see ``--help``).

Thin wrapper around ``duofit bench run``; each cell runs in its own process and appends one
row to the CSV (default ``results/bench-<suite>.csv``), then a summary is written next to it.

Examples:
    python benchmarks/run.py --quick
    python benchmarks/run.py --suite full --repeats 5 --out results/bench.csv --resume
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from duofit.bench.cli import standalone

if __name__ == "__main__":
    sys.exit(standalone("run", sys.argv[1:], prog="benchmarks/run.py"))
