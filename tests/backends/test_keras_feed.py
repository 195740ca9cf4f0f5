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


def test_the_tensor_outlives_its_array() -> None:
    """The tensor keeps the numpy buffer alive (DLPack's capsule holds a reference): no dangling memory."""
    pytest.importorskip("tensorflow")
    import gc

    from duofit.backends.keras.feed import tf_resident

    def make() -> object:
        a = aligned_empty((500, 8), np.float64)
        a[...] = np.arange(4000, dtype=np.float64).reshape(500, 8)
        return tf_resident(a)

    t = make()
    gc.collect()
    _ = [np.ones(4000) for _ in range(50)]  # fresh allocations that would reuse a freed buffer
    assert np.array_equal(t.numpy(), np.arange(4000, dtype=np.float64).reshape(500, 8))  # type: ignore[attr-defined]


def test_held_validation_pieces_are_wrapped_only_where_that_takes_no_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks after the first rarely start on a 64-byte boundary: they stay numpy instead of being copied."""
    pytest.importorskip("tensorflow")
    import tensorflow as tf

    from duofit.backends.keras.feed import held_inputs, tf_resident
    from duofit.common.data import rows

    monkeypatch.setattr(rows, "STREAM_CHUNK_BYTES", 8 * 3 * 7)  # 7-row chunks of 3 features: 84-byte steps
    part = aligned_empty((20, 3), np.float32)
    part[...] = np.arange(60, dtype=np.float32).reshape(20, 3)
    pieces = held_inputs(part, "float32", tf_resident)
    assert [len(p) for p in pieces] == [7, 7, 6]
    assert isinstance(pieces[0], tf.Tensor) and _address(pieces[0]) == part.ctypes.data  # aligned: wrapped
    assert all(isinstance(p, np.ndarray) and np.shares_memory(p, part) for p in pieces[1:])  # views, no copy
    np.testing.assert_array_equal(np.concatenate([np.asarray(p) for p in pieces]), part)
