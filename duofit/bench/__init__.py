"""Benchmarks: duofit's backends against hand-written loops, one fresh process per cell, CSV out.

``python benchmarks/run.py --quick`` (or ``duofit bench run --quick``) runs the matrix and
writes ``results/bench-quick.csv`` plus a summary; ``python benchmarks/plot.py CSV`` draws
the charts. Importing this package imports no framework and no pandas.

Example:
    >>> from duofit.bench import plan_matrix
    >>> plan = plan_matrix("quick", backends=["numpy-lean"])
    >>> plan.cells[0].workload
    'seed'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from duofit.bench.runners import RUNNERS, RunnerInfo
from duofit.bench.schema import COLUMN_DOCS, COLUMNS, SCHEMA_VERSION
from duofit.common.lazy import lazy_getattr

if TYPE_CHECKING:
    from duofit.bench.matrix import MatrixReport, run_matrix
    from duofit.bench.plan import SUITES, MatrixPlan, plan_matrix
    from duofit.bench.plot import plot_results
    from duofit.bench.summary import overhead_ratios, summarize, write_summary

__all__ = [
    "COLUMNS",
    "COLUMN_DOCS",
    "RUNNERS",
    "SCHEMA_VERSION",
    "SUITES",
    "MatrixPlan",
    "MatrixReport",
    "RunnerInfo",
    "overhead_ratios",
    "plan_matrix",
    "plot_results",
    "run_matrix",
    "summarize",
    "write_summary",
]

_LAZY = {
    "SUITES": "duofit.bench.plan",
    "MatrixPlan": "duofit.bench.plan",
    "MatrixReport": "duofit.bench.matrix",
    "plan_matrix": "duofit.bench.plan",
    "run_matrix": "duofit.bench.matrix",
    "plot_results": "duofit.bench.plot",
    "overhead_ratios": "duofit.bench.summary",
    "summarize": "duofit.bench.summary",
    "write_summary": "duofit.bench.summary",
}


__getattr__ = lazy_getattr("duofit.bench", _LAZY)  # import the matrix, summary and plotting modules on first use
