"""How the Keras trainer holds its inputs on TensorFlow: tensors over the arrays' own buffers, not copies."""

from __future__ import annotations

import numpy as np
import pytest

from duofit.common.data.aligned import aligned_empty

pytestmark = pytest.mark.keras


def _address(t: object) -> int:
    """Where a CPU tensor's data start (read back through DLPack, which does not copy)."""
    return int(np.from_dlpack(t).ctypes.data)


def test_an_aligned_array_becomes_a_tensor_over_its_own_buffer() -> None:
    pytest.importorskip("tensorflow")
    from duofit.backends.keras.feed import tf_resident

    a = aligned_empty((1000, 20), np.float32)
    a[...] = np.random.default_rng(0).normal(size=a.shape)
    t = tf_resident(a)
    assert _address(t) == a.ctypes.data  # no copy: tf.constant would hold two more
    assert np.array_equal(t.numpy(), a)


@pytest.mark.parametrize("kind", ["unaligned", "strided", "read-only"])
def test_other_arrays_are_copied_once_aligned(kind: str) -> None:
    pytest.importorskip("tensorflow")
    from duofit.backends.keras.feed import tf_resident

    base = np.random.default_rng(0).normal(size=(301, 20)).astype(np.float32)
    a = {"unaligned": np.arange(2.0 * 16 + 1, dtype=np.float32)[1:], "strided": base[:, ::2], "read-only": base}[kind]
    if kind == "read-only":
        a = aligned_empty(base.shape, np.float32)
        a[...] = base
        a.flags.writeable = False  # DLPack cannot mark a buffer read-only: copied
    t = tf_resident(a)
    assert _address(t) % 64 == 0 and _address(t) != a.ctypes.data
    assert np.array_equal(t.numpy(), a)


def test_a_resident_training_part_trains_like_a_constant() -> None:
    """The tf.data pipeline gathers batches from the resident tensor: the same batches as from numpy."""
    tf = pytest.importorskip("tensorflow")
    from duofit.backends.keras.feed import tf_resident

    x = aligned_empty((64, 3), np.float32)
    x[...] = np.arange(192, dtype=np.float32).reshape(64, 3)
    t = tf_resident(x)
    idx = np.random.default_rng(1).permutation(64)[:16].astype(np.int32)
    batches = tf.data.Dataset.from_tensor_slices(idx).batch(8).map(lambda i: tf.gather(t, i))
    got = np.concatenate([b.numpy() for b in batches])
    assert np.array_equal(got, x[idx])
