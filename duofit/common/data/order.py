"""The shared batch order, one epoch at a time: memory ``O(n)``, whatever the number of epochs.

Every backend trains epoch ``e`` on ``order.epoch(e)``: a permutation of the training rows
drawn from one numpy stream, ``default_rng([seed, 0x0DE7])``, by ``rng.permutation(n)`` once
per epoch, in epoch order. Epoch ``e``'s order therefore needs the stream advanced ``e`` times;
:class:`BatchOrder` keeps a cursor (the generator after the last epoch it drew), so consecutive
epochs cost ``O(n)`` each, the last epoch asked for again is redrawn from the generator's state
before it (no order is kept: a 1e7-sample run's is 64 MB), and any other epoch (resume at
epoch ``e``, a probe of epoch 0 after training) redraws from the seed. The
orders are bit-identical to the ``(epochs, n)`` array :func:`batch_order` materialises (the
exported training scripts still load that array: they are small-data tools).

``rng.permutation`` draws a data-dependent number of values (bounded integers with rejection),
so the stream cannot be skipped ahead without drawing (numpy ``Generator.permutation`` ->
``shuffle``: ``random_interval`` per element, ``numpy/random/_generator.pyx``).

Example:
    >>> order = BatchOrder(5, epochs=3, seed=0)
    >>> order.shape
    (3, 5)
    >>> bool((order.epoch(2) == batch_order(5, 3, seed=0)[2]).all())
    True
    >>> BatchOrder(3, 2, seed=0, shuffle=False)[1].tolist()
    [0, 1, 2]
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any, cast

import numpy as np

__all__ = ["ORDER_STREAM", "BatchOrder", "batch_order"]

# Second word of the order stream's seed: a stream of its own, separate from the initial weights'.
ORDER_STREAM = 0x0DE7


def _draw(rng: np.random.Generator, n: int) -> np.ndarray:
    """The next epoch's order from ``rng``: ``permutation(n)`` as int64 (already int64 on 64-bit hosts)."""
    return rng.permutation(n).astype(np.int64, copy=False)


def _restored(state: Mapping[str, Any]) -> np.random.Generator:
    """A generator in a saved ``bit_generator.state`` (of the bit generator it names: PCG64 for ``default_rng``)."""
    bits = getattr(np.random, state["bit_generator"])()
    bits.state = cast(Any, state)  # numpy's stubs type the setter narrower than the getter
    return np.random.Generator(bits)


class BatchOrder:
    """Epoch ``e``'s sample order, drawn when asked for (see the module docstring).

    Batch ``b`` of epoch ``e`` is ``order.epoch(e)[b*bs:(b+1)*bs]``. Indexing as the old array
    is kept for callers and tests: ``order[e]`` is ``epoch(e)``, ``order[e, cols]`` is
    ``epoch(e)[cols]``. Thread-safe: a ``tf.data`` generator may draw from another thread.

    Args:
        n: Number of training samples.
        epochs: Number of epochs.
        seed: ``train.seed``.
        shuffle: If False every epoch is ``0..n-1``.
    """

    def __init__(self, n: int, epochs: int, seed: int, shuffle: bool = True) -> None:
        self.n, self.epochs, self.seed, self.shuffle = int(n), int(epochs), int(seed), bool(shuffle)
        self._lock = threading.Lock()
        self._rng: np.random.Generator | None = None
        self._next = 0  # the epoch the cursor draws next
        # The generator as it was before drawing the last epoch: that epoch is redrawn from it
        # when asked for again (a probe of epoch 0 before training), and no order is kept.
        # Kept as the bit generator's state dict: reading it costs ~1 us, where a deepcopy of the
        # generator costs ~100 us, several percent of a small model's epoch.
        self._before_last: tuple[int, Mapping[str, Any]] | None = None

    def __repr__(self) -> str:
        return f"BatchOrder(n={self.n}, epochs={self.epochs}, seed={self.seed}, shuffle={self.shuffle})"

    @property
    def shape(self) -> tuple[int, int]:
        """``(epochs, n)``, the shape of the materialised order (:meth:`array`)."""
        return (self.epochs, self.n)

    def __len__(self) -> int:
        return self.epochs

    def epoch(self, e: int) -> np.ndarray:
        """The int64 order of 0-based epoch ``e`` (a fresh array the caller may keep).

        Raises:
            IndexError: ``e`` outside ``0..epochs-1``.
        """
        e = int(e)
        if not 0 <= e < self.epochs:
            raise IndexError(f"epoch {e} of a batch order with {self.epochs} epochs")
        if not self.shuffle:
            return np.arange(self.n, dtype=np.int64)
        with self._lock:
            if self._before_last is not None and self._before_last[0] == e:
                return _draw(_restored(self._before_last[1]), self.n)
            if self._rng is None or e < self._next:  # random access backwards: redraw from the seed
                self._rng, self._next = np.random.default_rng([self.seed, ORDER_STREAM]), 0
            while self._next < e:  # advance the stream past the epochs in between (O(n) each)
                self._rng.permutation(self.n)
                self._next += 1
            self._before_last = (e, self._rng.bit_generator.state)  # a fresh dict: a few hundred bytes
            self._next += 1
            return _draw(self._rng, self.n)

    def epochs_from(self, start: int = 0) -> Iterator[np.ndarray]:
        """The orders of epochs ``start`` to ``epochs - 1``, each drawn when the consumer reaches it."""
        for e in range(start, self.epochs):
            yield self.epoch(e)

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.epochs_from(0)

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, tuple):
            e, *rest = key
            return self.epoch(e)[tuple(rest)]
        return self.epoch(key)

    def array(self, start: int = 0) -> np.ndarray:
        """Epochs ``start`` onward as one ``(epochs - start, n)`` int64 array (``O(epochs x n)``: small data only)."""
        out = np.empty((self.epochs - start, self.n), dtype=np.int64)
        for i, perm in enumerate(self.epochs_from(start)):
            out[i] = perm
        return out


def batch_order(n: int, epochs: int, seed: int, shuffle: bool = True) -> np.ndarray:
    """Every epoch's order as one ``(epochs, n)`` int64 array (what :class:`BatchOrder` yields epoch by epoch).

    For small data only (the exported scripts' bundle); training uses :class:`BatchOrder`.

    Example:
        >>> batch_order(4, 2, seed=0, shuffle=False).tolist()
        [[0, 1, 2, 3], [0, 1, 2, 3]]
    """
    return BatchOrder(n, epochs, seed, shuffle).array()
