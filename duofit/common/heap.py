"""Handing freed heap memory back to the system between epochs (glibc's ``malloc_trim``).

A training process frees as much as it allocates each epoch (batches, gathered rows, the
framework's temporaries), but glibc keeps freed memory in its arenas: after the framework
frees one large block, its dynamic ``mmap`` threshold rises and later batch-sized blocks come
from the arenas, whose free pages stay resident. Peak RSS then creeps up with the epochs
(a Keras run on 1e5 rows: +1.5 MiB from epoch 4 to 40, +3-5 MiB by epoch 400) although
nothing is kept. :class:`HeapTrimmer` calls ``malloc_trim(0)`` at an epoch end, which
returns those pages, but only as often as its cost allows: a trim (about 0.5-1 ms in a
Keras process) runs when the time since the previous one is at least its cost divided by
:data:`TRIM_BUDGET`, so trimming never takes more than that share of the training time, besides
one trim when training ends (``force``). (The
pages a trim returns are faulted in again when reused, a cost outside the budget; measured on the
seed workload it is a few pages a trim, about a microsecond.)

Only glibc has ``malloc_trim``; elsewhere (macOS, Windows, musl) the trimmer does nothing.

Example:
    >>> trimmer = HeapTrimmer(budget=1.0)
    >>> trimmer.available == bool(_malloc_trim())
    True
    >>> trimmer() == trimmer.available  # the first epoch end trims (where it can)
    True
"""

from __future__ import annotations

import ctypes
import sys
import time
from collections.abc import Callable
from functools import cache

__all__ = ["TRIM_BUDGET", "HeapTrimmer"]

# Share of the wall time between trims that trimming may take. 0.2%: a fifth of the 1%
# resolution of the benchmark's overhead ratios (duofit-torch / lean-torch <= 1.05), so trimming
# never shows in them; a 1% budget trimmed after almost every 5-15 ms epoch of the seed workload
# (0.1 ms a trim in a torch process), about 1% of its time. A Keras process (0.5-1 ms a trim)
# still trims every 0.25-0.5 s: every 10-25 epochs of 1e5 rows, all of its freed pages each time.
TRIM_BUDGET = 0.002


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    """The C library's ``malloc_trim`` (glibc), or ``None`` where it has none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):  # musl and other C libraries
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


class HeapTrimmer:
    """Calls ``malloc_trim(0)`` when the time since the last trim pays for it (see the module docstring).

    Args:
        budget: Largest share of the time between trims that a trim may take.
    """

    def __init__(self, budget: float = TRIM_BUDGET) -> None:
        self.budget = budget
        self._trim = _malloc_trim()
        self._cost = 0.0  # seconds the last trim took
        self._last = time.perf_counter()

    @property
    def available(self) -> bool:
        """Whether this C library can trim (glibc)."""
        return self._trim is not None

    def __call__(self, force: bool = False) -> bool:
        """Trim now if enough time has passed since the last trim, or ``force``; returns whether it trimmed.

        ``force``: training ends (its last epoch, or a stop). A run's peak is often reached after
        training (test outputs, metrics, results), on top of what training left resident, so one
        trim then is worth its cost whatever the budget.
        """
        if self._trim is None:
            return False
        start = time.perf_counter()
        if not force and start - self._last < self._cost / self.budget:
            return False
        self._trim(0)
        self._last = time.perf_counter()
        self._cost = self._last - start
        return True
