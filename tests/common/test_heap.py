"""Freed heap memory handed back between epochs: trims spaced by their cost, a no-op without glibc."""

from __future__ import annotations

import pytest

from duofit.common import heap
from duofit.common.history import EpochRecorder


class _Clock:
    """A perf_counter that advances only when told, and by ``cost`` inside a trim."""

    def __init__(self) -> None:
        self.now = 100.0
        self.cost = 0.0
        self.trims = 0

    def perf_counter(self) -> float:
        return self.now

    def trim(self, pad: int) -> int:
        assert pad == 0  # keep no padding at the top of the heap
        self.trims += 1
        self.now += self.cost
        return 1


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    c = _Clock()
    monkeypatch.setattr(heap.time, "perf_counter", c.perf_counter)
    monkeypatch.setattr(heap, "_malloc_trim", lambda: c.trim)
    return c


def test_a_trim_waits_until_the_time_since_the_last_one_pays_for_it(clock: _Clock) -> None:
    trimmer = heap.HeapTrimmer(budget=0.01)
    clock.cost = 0.002  # a trim takes 2 ms: the next one may run 200 ms later
    assert trimmer() and clock.trims == 1  # the first epoch end trims
    clock.now += 0.150
    assert not trimmer() and clock.trims == 1  # 2 ms would be 1.3% of 150 ms
    clock.now += 0.050
    assert trimmer() and clock.trims == 2  # 200 ms since the last trim ended: 1%
    clock.cost = 0.0005  # cheaper trims run more often
    clock.now += 0.199
    assert not trimmer()
    clock.now += 0.001
    assert trimmer() and clock.trims == 3
    clock.now += 0.060
    assert trimmer() and clock.trims == 4  # 0.5 ms is under 1% of 60 ms


def test_without_glibc_the_trimmer_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    heap._malloc_trim.cache_clear()
    monkeypatch.setattr(heap.sys, "platform", "darwin")
    try:
        trimmer = heap.HeapTrimmer()
        assert not trimmer.available
        assert not trimmer()
    finally:
        heap._malloc_trim.cache_clear()


def test_glibc_malloc_trim_is_found_on_linux() -> None:
    if not heap.sys.platform.startswith("linux"):
        pytest.skip("malloc_trim is glibc's")
    assert heap.HeapTrimmer().available  # the CI and benchmark hosts run glibc
    assert heap.HeapTrimmer(budget=1.0)()  # and the call itself succeeds


def test_every_recorded_epoch_end_offers_a_trim(clock: _Clock) -> None:
    rec = EpochRecorder([], "regression", False, None, epochs=3)
    clock.cost = 0.0
    for epoch in range(3):
        rec.end_epoch(epoch, train_loss=1.0, val_loss=1.0, val_outputs=None, seconds=0.1)
    assert clock.trims == 3  # free trims are always worth it


def test_training_ends_with_a_trim_whatever_the_budget(clock: _Clock) -> None:
    rec = EpochRecorder([], "regression", False, None, epochs=3)
    clock.cost = 10.0  # so costly that no epoch end in between may trim
    for epoch in range(3):
        rec.end_epoch(epoch, train_loss=1.0, val_loss=1.0, val_outputs=None, seconds=0.1)
    assert clock.trims == 2  # the first epoch end, then the last one (forced)


def test_a_stop_before_the_last_epoch_trims_too(clock: _Clock) -> None:
    rec = EpochRecorder([], "regression", False, None, epochs=10)
    clock.cost = 10.0
    rec.end_epoch(0, train_loss=1.0, val_loss=1.0, val_outputs=None, seconds=0.1)
    rec.end_epoch(1, train_loss=1.0, val_loss=1.0, val_outputs=None, seconds=0.1)
    assert clock.trims == 1
    decision = rec.end_epoch(2, train_loss=float("nan"), val_loss=1.0, val_outputs=None, seconds=0.1)
    assert decision.stop and clock.trims == 2  # diverged: training ends here
