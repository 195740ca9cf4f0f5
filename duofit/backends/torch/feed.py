"""The torch loop's inputs: one part resident on the device, or streamed from a memory map per batch.

:class:`Inputs` gives the trainer one interface for both kinds of :class:`~duofit.common.data.Dataset`
part. In memory (every kind but ``npy`` / ``parquet``, and a streamed part of at most
``READ_ONCE_BYTES``, read once) the part is moved to the device once and an epoch's batches
are contiguous slices of ``index_select(perm)`` (over ``GATHER_PART_BYTES``: gathered one batch
at a time; a training or validation part on a resident map is pre-scaled once into a temporary
file and run as a tensor over that file's map, :func:`~duofit.common.data.training_rows`). Streamed (a larger
:class:`~duofit.common.data.StreamedRows`), each batch's rows
are read from the map in the epoch's order, scaled and cast in one pass and copied to the device
(through pinned memory on CUDA, ``non_blocking``); evaluation runs the part in chunks and
concatenates the outputs (one ``(n, outputs)`` tensor, small beside the features).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from duofit.backends.torch.layers import to_model_input
from duofit.common.data import (
    Part,
    StreamedRows,
    chunk_rows_for,
    eval_chunks,
    gathered_per_batch,
    read_once,
    training_rows,
)

__all__ = ["Inputs"]


class Inputs:
    """The model inputs of one part (see the module docstring).

    Args:
        part: The part's features (``Dataset.x_train`` / ``x_val`` / ``x_test``).
        dtype: The model's float dtype (token ids stay int64).
        device: Where the model runs.
        every_epoch: A part read at every epoch, training or validation (pre-scaled where that
            pays, :func:`~duofit.common.data.training_rows`).
    """

    def __init__(self, part: Part, dtype: torch.dtype, device: torch.device, every_epoch: bool = False) -> None:
        self.n = len(part)
        self.dtype, self.device = dtype, device
        self._np_dtype = np.float32 if dtype == torch.float32 else np.float64
        # A small streamed part is read once, in the model's dtype (the same scaled values), and
        # run as an in-memory part: per-batch reads cost more than a small model's steps. A larger
        # part read at every epoch on a resident map is pre-scaled once (duofit.common.data.training_rows).
        part = training_rows(part, self._np_dtype) if every_epoch else read_once(part, self._np_dtype)
        self.stream = part if isinstance(part, StreamedRows) else None
        self.resident = None if self.stream is not None else to_model_input(part, dtype, device)
        self.per_batch = gathered_per_batch(part)  # a large part: no epoch-sized permuted copy

    def epoch(self, perm_np: np.ndarray, perm: torch.Tensor, bs: int) -> Iterable[torch.Tensor]:
        """The epoch's batches in order: rows ``perm[b*bs:(b+1)*bs]`` (``perm_np`` the same indices on the host).

        Resident: ``split(bs)`` of the permuted part, every batch a view made in one call
        (the same views as slicing ``[b*bs:(b+1)*bs]``, without a Python slice per step).
        Streamed: a generator reading each batch when the loop reaches it (or one step ahead).
        """
        if self.resident is None:
            return self._streamed(perm_np, bs)
        x = self.resident
        gather: Callable[[torch.Tensor], torch.Tensor] = lambda rows: x.index_select(0, rows)  # noqa: E731
        if x.dim() == 4 and x.dtype != torch.float64:
            # Images: indexing keeps the part's strides, index_select makes an NCHW copy. A
            # one-channel image from to_model_input is channels-last strided, so with indexing
            # the convolutions run oneDNN's channels-last kernels, as a hand-written loop's
            # x[perm] does (about 10% of a resnet_digits step on CPU, and the same kernels
            # evaluation runs). float64 keeps index_select: strict runs stay bit for bit as they were.
            gather = x.__getitem__
        if self.per_batch:  # the same rows, one batch at a time
            return (gather(rows) for rows in perm.split(bs))
        return gather(perm).split(bs)

    def _streamed(self, perm_np: np.ndarray, bs: int) -> Iterator[torch.Tensor]:
        """The streamed part's batches, each read (and scaled) when the loop reaches it.

        A map read with pread (larger than ``RESIDENT_MAP_BYTES``) is read one batch ahead in a
        thread: the reads are system calls that release the GIL, so they overlap the step
        instead of adding to it. A resident map is gathered in place (a memory copy: a thread
        would only compete with torch's own threads for the cores). The batches and their
        order are the same either way.
        """
        stream = self.stream
        assert stream is not None
        batches = (perm_np[start : start + bs] for start in range(0, self.n, bs))
        read = functools.partial(stream.batch, dtype=self._np_dtype)  # scaled and cast in one pass
        if not stream.reads_files:
            for rows in batches:
                yield self._upload(read(rows))
            return
        first = next(batches, None)
        if first is None:
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="duofit-read") as reader:
            pending = reader.submit(read, first)
            for rows in batches:
                done, pending = pending, reader.submit(read, rows)
                yield self._upload(done.result())
            yield self._upload(pending.result())

    def forward(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """``fn`` over the whole part, in the chunks :func:`~duofit.common.data.eval_chunks` makes (one when small)."""
        if self.resident is not None:
            chunks = self.resident.split(chunk_rows_for(self.resident.shape[1:]))  # as eval_chunks splits
            return fn(chunks[0]) if len(chunks) == 1 else torch.cat([fn(c) for c in chunks])
        assert self.stream is not None
        return torch.cat([fn(self._upload(chunk)) for chunk in eval_chunks(self.stream)])

    def _upload(self, rows: np.ndarray) -> torch.Tensor:
        """Host rows as a model input on the device (pinned first on CUDA, so the copy can overlap)."""
        t = to_model_input(rows, self.dtype, "cpu")
        if self.device.type == "cuda":
            return t.pin_memory().to(self.device, non_blocking=True)
        return t.to(self.device)
