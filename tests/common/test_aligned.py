"""64-byte aligned arrays: made aligned, copied only when they are not, and the file kinds' features come aligned."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from duofit.common.data import load_dataset
from duofit.common.data.aligned import ALIGN_BYTES, aligned, aligned_empty, is_aligned
from duofit.common.loader import load_spec


@pytest.mark.parametrize("shape", [(0,), (1,), (7, 3), (1000, 20), (4, 5, 6)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.uint8])
def test_aligned_empty_starts_on_the_boundary(shape: tuple[int, ...], dtype: type) -> None:
    for _ in range(5):  # several allocations: numpy's own guarantee is 16 bytes
        a = aligned_empty(shape, dtype)
        assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable
        assert a.size == 0 or a.ctypes.data % ALIGN_BYTES == 0  # no data: nothing to align
        assert is_aligned(a)


def test_aligned_copies_only_what_is_not_aligned() -> None:
    a = aligned_empty((10, 4), np.float32)
    a[...] = np.arange(40).reshape(10, 4)
    assert aligned(a) is a
    view = a[:, 1:]  # not C-contiguous
    assert not is_aligned(view)
    b = aligned(view)
    assert is_aligned(b) and np.array_equal(b, view) and not np.shares_memory(b, a)
    shifted = np.arange(11.0)[1:]  # 8 bytes into an aligned-or-not buffer: never 64-aligned with its base
    assert np.array_equal(aligned(shifted), shifted) and is_aligned(aligned(shifted))


def test_aligned_casts_in_the_same_copy() -> None:
    x = np.random.default_rng(0).normal(size=(50, 3))
    y = aligned(x, np.float32)
    assert y.dtype == np.float32 and is_aligned(y)
    assert np.array_equal(y, x.astype(np.float32))  # the same rounding as astype


def test_float32_features_from_files_are_prepared_aligned(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(300, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    spec = load_spec(
        {
            "data": {"kind": "npz", "path": str(tmp_path / "d.npz"), "test_size": 0.2, "val_size": 0.2},
            "model": {"layers": [{"type": "dense", "units": 1}]},
            "loss": {"type": "binary_crossentropy", "from_logits": True},
        }
    )
    ds = load_dataset(spec)
    for part in (ds.x_train, ds.x_val, ds.x_test):
        assert isinstance(part, np.ndarray) and part.dtype == np.float32 and is_aligned(part)
