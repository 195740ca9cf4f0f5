"""``python -m duofit``: the same command line as ``duofit`` (see :mod:`duofit.cli`)."""

from __future__ import annotations

import sys

from duofit.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
