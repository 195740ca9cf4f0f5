"""The shared batch order drawn one epoch at a time: bit-identical to the old ``(epochs, n)`` array, memory ``O(n)``."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import duofit
from duofit import DataError
from duofit.backends.base import make_plan
from duofit.common.data import BatchOrder, batch_order, load_dataset
from duofit.porting.bundle import bundle_arrays


def _old_batch_order(n: int, epochs: int, seed: int, shuffle: bool = True) -> np.ndarray:
    """The order as duofit materialised it before: every epoch's permutation up front."""
    if not shuffle:
        return np.tile(np.arange(n, dtype=np.int64), (epochs, 1))
    rng = np.random.default_rng([seed, 0x0DE7])
    return np.stack([rng.permutation(n) for _ in range(epochs)]).astype(np.int64)


@pytest.mark.parametrize("seed", [0, 7, 42, 2**32 - 1])
@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("n", [1, 5, 257])
def test_every_epoch_equals_the_old_array(seed: int, shuffle: bool, n: int) -> None:
    old = _old_batch_order(n, 6, seed, shuffle)
    order = BatchOrder(n, 6, seed, shuffle)
    assert order.shape == old.shape
    for e, perm in enumerate(order):  # consecutive epochs: the cursor
        assert perm.dtype == np.int64
        np.testing.assert_array_equal(perm, old[e])
    for e in (3, 0, 5, 5, 1, 4, 4):  # random access: redrawn from the seed, or from the state before the last
        np.testing.assert_array_equal(order.epoch(e), old[e])
    np.testing.assert_array_equal(order.array(), old)
    np.testing.assert_array_equal(batch_order(n, 6, seed, shuffle), old)
    np.testing.assert_array_equal(order[2, 1:4], old[2, 1:4])  # the old array's indexing still reads


@pytest.mark.parametrize("start", [1, 3, 5])
def test_a_resumed_run_continues_at_its_epoch(start: int) -> None:
    old = _old_batch_order(40, 6, seed=3)
    resumed = BatchOrder(40, 6, seed=3)  # a fresh process: nothing drawn yet
    np.testing.assert_array_equal(np.stack(list(resumed.epochs_from(start))), old[start:])
    np.testing.assert_array_equal(resumed.array(start), old[start:])


def test_an_epoch_handed_out_is_the_callers_own() -> None:
    order = BatchOrder(10, 2, seed=0)
    first = order.epoch(0)
    first[:] = 0  # a caller may write into its copy
    np.testing.assert_array_equal(order.epoch(0), _old_batch_order(10, 2, 0)[0])


def test_out_of_range_epochs_are_refused() -> None:
    with pytest.raises(IndexError, match="epoch 3 of a batch order with 3 epochs"):
        BatchOrder(4, 3, seed=0).epoch(3)


def test_memory_does_not_grow_with_epochs() -> None:
    """A million epochs of a million samples (8 TB as the old array): one epoch's order in memory."""
    n = 1_000_000
    tracemalloc.start()
    try:
        order = BatchOrder(n, 1_000_000, seed=0)
        for e in range(3):
            assert len(order.epoch(e)) == n
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * 8 * n  # one epoch's draw, handed to the caller: no copy kept beside it


def test_a_plan_has_no_cap_on_epochs_times_samples() -> None:
    doc = {
        "data": {"kind": "make_moons", "params": {"n_samples": 1000}},
        "model": {"layers": [{"type": "dense", "units": 1}]},
        "loss": {"type": "binary_crossentropy", "from_logits": True},
        "train": {"epochs": 1_000_000},
    }
    spec = duofit.load_spec(doc)
    plan = make_plan(spec, load_dataset(spec))  # 8e8 order entries: refused while the order was one array
    assert plan.order.shape == (1_000_000, 800)
    with pytest.raises(DataError, match="exported script loads every epoch's batch order") as info:
        bundle_arrays(spec)  # the exported script's bundle still holds every epoch's order
    assert info.value.path == "train.epochs"
