"""Training on streamed data (kind ``npy``) gives the in-memory path's results: bit for bit on torch in float64."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import duofit
from duofit.backends.base import make_plan
from duofit.common.data import StreamedRows, eval_chunks, load_dataset

LAYERS = [{"type": "dense", "units": 6, "activation": "relu"}, {"type": "dense", "units": 1}]


def _specs(folder: Path, epochs: int = 3, **train: Any) -> tuple[Any, Any]:
    """The same numbers as kind npy (streamed) and kind npz (in memory)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)) * 2 + 1
    y = (x[:, 0] + x[:, 1] > 2).astype(np.int64)
    np.save(folder / "features.npy", x)
    np.save(folder / "targets.npy", y)
    np.savez(folder / "same.npz", x=x, y=y)
    common = {
        "metrics": ["accuracy"],
        "model": {"layers": LAYERS},
        "loss": {"type": "binary_crossentropy", "from_logits": True},
        "optimizer": {"type": "adam", "lr": 0.01},
        "train": {"epochs": epochs, "batch_size": 32, **train},
    }
    npy = {"kind": "npy", "x": str(folder / "features.npy"), "y": str(folder / "targets.npy"), "val_size": 0.2}
    npz = {"kind": "npz", "path": str(folder / "same.npz"), "val_size": 0.2}
    return duofit.load_spec({**common, "data": npy}), duofit.load_spec({**common, "data": npz})


def _same(a: Any, b: Any, rtol: float) -> None:
    for col in ("loss", "val_loss"):
        np.testing.assert_allclose(a.history[col], b.history[col], rtol=rtol, atol=0)
    np.testing.assert_allclose(a.predictions, b.predictions, rtol=rtol, atol=rtol)
    for key, arr in b.weights.items():
        np.testing.assert_allclose(a.weights[key], arr, rtol=rtol, atol=rtol)


STREAM_MODES = ["read-once", "pre-scaled", "per-batch"]


@pytest.mark.torch
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("mode", STREAM_MODES)
def test_torch_npy_equals_in_memory_bit_for_bit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dtype: str, mode: str
) -> None:
    """A small streamed part is read once, a large one pre-scaled or read per batch; all give the in-memory numbers.

    float32 too: a streamed batch is scaled in float64 and rounded to float32 once, as the
    in-memory part is prepared in float64 and cast.
    """
    npy, npz = _specs(tmp_path, dtype=dtype)
    memory, prepared = duofit.run(npz, "torch"), load_dataset(npy)  # the scaler fitted in one chunk, as npz's
    if mode != "read-once":
        _as_large(monkeypatch, prescaled=mode == "pre-scaled")
    streamed = duofit.run(npy, "torch", dataset=prepared)
    _same(streamed, memory, rtol=0.0)
    assert streamed.metrics == memory.metrics


@pytest.mark.torch
def test_torch_npy_resume_continues_the_shared_order(tmp_path: Path) -> None:
    npy, _ = _specs(tmp_path, epochs=4, dtype="float64")
    full = duofit.run(npy, "torch")
    first, _ = _specs(tmp_path, epochs=2, dtype="float64")
    duofit.run(first, "torch", out=tmp_path / "first")
    resumed = duofit.run(npy, "torch", resume_from=tmp_path / "first")
    np.testing.assert_array_equal(resumed.history["loss"], full.history["loss"][2:])
    np.testing.assert_array_equal(resumed.predictions, full.predictions)


def _as_large(monkeypatch: pytest.MonkeyPatch, prescaled: bool = True) -> None:
    """Make the test's small parts count as large: batches gathered one at a time, evaluation in 50-row chunks.

    A streamed training part is then pre-scaled into a temporary file (``prescaled``), or read
    and scaled per batch from the data's own map, as a part over the resident size is.
    """
    from duofit.common.data import prescale, rows

    monkeypatch.setattr(rows, "GATHER_PART_BYTES", 0)
    monkeypatch.setattr(rows, "READ_ONCE_BYTES", 0)  # streamed parts read per batch
    monkeypatch.setattr(rows, "STREAM_CHUNK_BYTES", 8 * 4 * 50)  # 50 rows of 4 features (chunk_rows_for)
    if not prescaled:
        monkeypatch.setattr(prescale, "RESIDENT_MAP_BYTES", 0)


@pytest.mark.torch
def test_torch_large_in_memory_part_trains_bit_for_bit_as_a_small_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, npz = _specs(tmp_path, dtype="float64")
    small = duofit.run(npz, "torch")
    _as_large(monkeypatch)
    assert [len(c) for c in eval_chunks(load_dataset(npz).x_test)] == [50, 10]
    large = duofit.run(npz, "torch")
    _same(large, small, rtol=0.0)
    assert large.metrics == small.metrics


# float32 Adam over 2 epochs x 6 steps on identical inputs: the two runs differ only if a batch differs
# (then by far more than rounding); 1e-5 is a float32 rounding allowance, not a drift budget.
RTOL_F32 = 1e-5


@pytest.mark.keras
@pytest.mark.parametrize("mode", STREAM_MODES)
def test_keras_npy_equals_in_memory_within_float32(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    npy, npz = _specs(tmp_path, epochs=2)
    memory, prepared = duofit.run(npz, "keras"), load_dataset(npy)
    if mode != "read-once":
        _as_large(monkeypatch, prescaled=mode == "pre-scaled")
    _same(duofit.run(npy, "keras", dataset=prepared), memory, rtol=RTOL_F32)


@pytest.mark.keras
def test_keras_large_in_memory_part_trains_as_a_small_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, npz = _specs(tmp_path, epochs=2)
    small = duofit.run(npz, "keras")  # the part as a constant in the tf.data graph, evaluated in one piece
    _as_large(monkeypatch)
    large = duofit.run(npz, "keras")  # batches gathered by the generator, evaluation in chunks
    _same(large, small, rtol=RTOL_F32)


@pytest.mark.parity
@pytest.mark.parametrize("framework", ["tensorflow", "torch", "jax"])
@pytest.mark.parametrize("start", [0, 1])
@pytest.mark.parametrize("per_batch", [False, True], ids=["read-once", "per-batch"])
def test_keras_pipelines_read_the_shared_order_from_the_map(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, framework: str, start: int, per_batch: bool
) -> None:
    """tf.data (TensorFlow) and the generator (torch, JAX) feed the streamed rows, a resumed plan from its epoch.

    A small part is read into memory once, a large one per batch from the map: the same rows.
    """
    import dataclasses

    from duofit.backends.keras.native import native
    from duofit.common.data import rows

    if per_batch:
        monkeypatch.setattr(rows, "READ_ONCE_BYTES", 0)

    npy, _ = _specs(tmp_path, epochs=3, dtype="float64")
    plan = dataclasses.replace(make_plan(npy, load_dataset(npy)), start_epoch=start)
    assert isinstance(plan.dataset.x_train, StreamedRows)
    batches = list(native(framework).batches(plan, "float64"))
    assert len(batches) == (3 - start) * plan.steps_per_epoch
    for k, (xb, tb) in enumerate(batches):
        epoch, b = divmod(k, plan.steps_per_epoch)
        idx = plan.order.epoch(start + epoch)[b * 32 : (b + 1) * 32]
        np.testing.assert_array_equal(np.asarray(xb), plan.dataset.x_train[idx])
        np.testing.assert_array_equal(np.asarray(tb), plan.t_train[idx])


def _rows_read(spec: Any, backend: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """Rows the run read from its memory maps (every read of a streamed part goes through ``take``)."""
    read: list[int] = []
    take = StreamedRows.take

    def counting(self: StreamedRows, source_rows: np.ndarray, *args: Any, **kwargs: Any) -> np.ndarray:
        read.append(len(source_rows))
        return take(self, source_rows, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(StreamedRows, "take", counting)
        duofit.run(spec, backend)
    return sum(read)


@pytest.mark.parametrize("mode", ["read-once", "pre-scaled"])
@pytest.mark.parametrize(
    "backend", [pytest.param("torch", marks=pytest.mark.torch), pytest.param("keras", marks=pytest.mark.keras)]
)
def test_streamed_parts_are_read_once_whatever_the_epochs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str, mode: str
) -> None:
    """No re-reading per epoch on either backend: parts under READ_ONCE_BYTES are read into memory once,
    training and validation parts over it on a resident map are pre-scaled once (validation was read
    at every epoch end before), the test part is read once."""
    one, _ = _specs(tmp_path, epochs=1)
    three, _ = _specs(tmp_path, epochs=3)
    if mode == "pre-scaled":
        _as_large(monkeypatch, prescaled=True)
    once = _rows_read(one, backend, monkeypatch)
    assert once > 0
    assert _rows_read(three, backend, monkeypatch) == once
