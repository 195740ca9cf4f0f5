"""FLOPs per training step estimated from the spec, and a matmul peak measured on this machine.

Convention (the one MFU papers use): every multiply-add of a weight with an activation counts
2 FLOPs forward, and the backward pass costs twice the forward (gradients for inputs and for
weights), so a training step costs 3x forward. Per sample, forward (:data:`FORWARD_FLOPS`):

- ``dense``: ``2 * in * out`` per position (a dense layer on ``(steps, features)`` runs per step);
- ``conv2d``: ``2 * kh * kw * in_channels * filters`` per output pixel; ``conv1d`` the same per
  output step with ``kernel_size``;
- ``simple_rnn`` / ``lstm`` / ``gru``: ``2 * gates * units * (features + units)`` per step
  (1, 4 or 3 gates: the input and the recurrent matmul); ``bidirectional`` twice its layer;
- ``multi_head_attention``: the query/key/value/output projections plus ``q . k`` and ``p . v``
  (:func:`~duofit.common.spec.layers_attention.attention_flops`).

Embedding lookups, pooling, normalisation, merges, biases, activations, the loss and the
optimizer update are not counted (they are O(activations) or O(weights) per step, not
O(weights x positions)); validation forwards are not counted either. MFU is therefore conservative.

The peak is the best float32 ``A @ B`` rate of numpy and (when installed) torch on the
run's thread count, measured in a fresh process at the start of each run:
``python -m duofit.bench.flops --threads 2 --size 2048 OUT.json``.

Example:
    >>> from duofit.common.loader import load_spec
    >>> spec = load_spec("examples/seed.toml")
    >>> forward_flops_per_sample(spec, n_features=2)  # 2 * (2*10 + 10*1)
    60
    >>> train_flops_per_step(spec, n_features=2, batch_size=32)
    5760
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from duofit.common.spec import Conv2DLayer, DenseLayer, Spec
from duofit.common.spec.layers_attention import MultiHeadAttentionLayer, attention_flops
from duofit.common.spec.layers_conv1d import Conv1DLayer
from duofit.common.spec.layers_rnn import BidirectionalLayer, GRULayer, LSTMLayer, RecurrentBase, SimpleRNNLayer
from duofit.common.spec.shapes import trace_shapes

__all__ = [
    "BACKWARD_FACTOR",
    "FORWARD_FLOPS",
    "forward_flops_per_sample",
    "main",
    "measure_peak",
    "train_flops_per_step",
]

BACKWARD_FACTOR = 2  # backward = 2x forward (grad wrt inputs + grad wrt weights), for every counted layer
PEAK_REPEATS = 10  # timed matmuls per library; the fastest is kept (best-of-n rejects interference)
PEAK_SIZE = 2048  # square float32 matrices: large enough to reach BLAS peak on a few cores


Shape = tuple[int, ...]


def _positions(shape: Shape) -> int:
    """Positions a per-position layer runs at: every axis but the last (1 for flat input)."""
    return math.prod(shape[:-1])


def _dense(layer: DenseLayer, ins: list[Shape], out: Shape) -> int:
    return 2 * _positions(ins[0]) * ins[0][-1] * layer.units


def _conv2d(layer: Conv2DLayer, ins: list[Shape], out: Shape) -> int:
    kh, kw = layer.kernel_size
    return 2 * kh * kw * ins[0][-1] * layer.filters * out[0] * out[1]


def _conv1d(layer: Conv1DLayer, ins: list[Shape], out: Shape) -> int:
    return 2 * layer.kernel_size * ins[0][-1] * layer.filters * out[0]


_GATES: dict[type, int] = {SimpleRNNLayer: 1, LSTMLayer: 4, GRULayer: 3}


def _recurrent(layer: RecurrentBase, ins: list[Shape], out: Shape) -> int:
    steps, features = ins[0]
    return 2 * steps * _GATES[type(layer)] * layer.units * (features + layer.units)


def _bidirectional(layer: BidirectionalLayer, ins: list[Shape], out: Shape) -> int:
    return 2 * _recurrent(layer.layer, ins, out)


def _attention(layer: MultiHeadAttentionLayer, ins: list[Shape], out: Shape) -> int:
    query, value = ins[0], ins[-1]
    return attention_flops(layer, query[0], value[0], query[-1])


# Layer type -> forward FLOPs per sample from its input shapes and output shape; no entry: not counted.
FORWARD_FLOPS: dict[type, Callable[[Any, list[Shape], Shape], int]] = {
    DenseLayer: _dense,
    Conv2DLayer: _conv2d,
    Conv1DLayer: _conv1d,
    **dict.fromkeys((SimpleRNNLayer, LSTMLayer, GRULayer), _recurrent),
    BidirectionalLayer: _bidirectional,
    MultiHeadAttentionLayer: _attention,
}


def forward_flops_per_sample(spec: Spec, n_features: int, input_shape: Shape | None = None) -> int:
    """Forward FLOPs per sample over the layers of :data:`FORWARD_FLOPS` (see the module docstring).

    Args:
        spec: A validated spec; its layer graph is followed (merges, skips).
        n_features: Flat input width (used when neither ``input_shape`` nor the spec tells the shape).
        input_shape: One sample's shape as the data holds it (e.g. ``(steps, features)``).

    Example:
        >>> from duofit.common.loader import load_spec
        >>> spec = load_spec({"data": {"kind": "iris"}, "loss": {"type": "mse"},
        ...     "model": {"layers": [{"type": "dense", "units": 8}, {"type": "dense", "units": 1}]}})
        >>> forward_flops_per_sample(spec, n_features=4)
        80
        >>> lstm = load_spec({"data": {"kind": "sunspots", "series": {"window": 12}}, "loss": {"type": "mse"},
        ...     "model": {"layers": [{"type": "lstm", "units": 16}, {"type": "dense", "units": 1}]}})
        >>> forward_flops_per_sample(lstm, n_features=12, input_shape=(12, 1))  # 2*12*4*16*(1+16) + 2*16
        26144
    """
    start = input_shape or (tuple(spec.data.sample_shape) if spec.data.sample_shape else (n_features,))
    total = 0
    for layer, (ins, out) in zip(spec.model.layers, trace_shapes(spec.model.layers, start), strict=True):
        rule = FORWARD_FLOPS.get(type(layer))
        if rule is not None and out is not None and all(shape is not None for shape in ins):
            total += rule(layer, [shape for shape in ins if shape is not None], out)
    return total


def train_flops_per_step(spec: Spec, n_features: int, batch_size: int, input_shape: Shape | None = None) -> int:
    """Training FLOPs of one full batch: forward + backward = ``(1 + BACKWARD_FACTOR)`` x forward.

    Example:
        >>> from duofit.common.loader import load_spec
        >>> spec = load_spec({"data": {"kind": "iris"}, "loss": {"type": "mse"},
        ...     "model": {"layers": [{"type": "dense", "units": 8}, {"type": "dense", "units": 1}]}})
        >>> train_flops_per_step(spec, n_features=4, batch_size=10)
        2400
    """
    return (1 + BACKWARD_FACTOR) * forward_flops_per_sample(spec, n_features, input_shape) * batch_size


def _best_seconds(fn: Any, repeats: int) -> float:
    fn()  # warm-up: thread pool start, page faults
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure_peak(
    threads: int, size: int = PEAK_SIZE, repeats: int = PEAK_REPEATS, device: str = "cpu"
) -> dict[str, Any]:
    """Best float32 matmul GFLOP/s of numpy and torch (if installed) with ``threads`` threads.

    Call it in a fresh process whose BLAS thread variables are already set (the runner does);
    torch's count is also set here. On ``cuda`` the peak is torch's on the GPU
    (:func:`_cuda_peak`).

    Returns:
        ``{"peak_gflops": best, "peak_source": "torch 2048^2", "numpy_gflops": ..., ...}``.

    Example:
        >>> measure_peak(threads=1, size=64, repeats=1)["peak_gflops"] > 0
        True
    """
    if device == "cuda":
        return _cuda_peak(size, repeats)
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    flops = 2.0 * size**3
    rates = {"numpy": flops / _best_seconds(lambda: a @ b, repeats) / 1e9}
    try:
        import torch
    except ImportError:
        pass
    else:
        torch.set_num_threads(threads)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        rates["torch"] = flops / _best_seconds(lambda: torch.mm(ta, tb), repeats) / 1e9
    best = max(rates, key=lambda k: rates[k])
    out: dict[str, Any] = {f"{k}_gflops": v for k, v in rates.items()}
    out.update(peak_gflops=rates[best], peak_source=f"{best} float32 matmul {size}x{size}, {threads} threads")
    return out


def _cuda_peak(size: int, repeats: int) -> dict[str, Any]:
    """Matmul GFLOP/s of torch on the GPU, synchronised: float32 as torch runs it by default, and bfloat16.

    ``peak_gflops`` is the float32 one, under torch's own TF32 setting (off by default:
    ``torch.backends.cuda.matmul.allow_tf32``), which the source names; bf16 is in the source too.
    """
    import torch

    def rate(dtype: Any) -> float:
        a = torch.randn(size, size, device="cuda", dtype=dtype)
        b = torch.randn(size, size, device="cuda", dtype=dtype)

        def step() -> None:
            torch.mm(a, b)
            torch.cuda.synchronize()

        return 2.0 * size**3 / _best_seconds(step, repeats) / 1e9

    fp32, bf16 = rate(torch.float32), rate(torch.bfloat16)
    tf32 = bool(torch.backends.cuda.matmul.allow_tf32)
    return {
        "torch_gflops": fp32,
        "bf16_gflops": bf16,
        "peak_gflops": fp32,
        "peak_source": f"torch float32 matmul {size}x{size} on {torch.cuda.get_device_name()} (TF32 "
        f"{'on' if tf32 else 'off'}); bfloat16 {bf16:.0f} GFLOP/s",
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m duofit.bench.flops --threads N [--size S] OUT.json``: measure and write the peak."""
    import argparse

    from duofit.common.io import write_json

    parser = argparse.ArgumentParser(prog="python -m duofit.bench.flops")
    parser.add_argument("out")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--size", type=int, default=PEAK_SIZE)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = parser.parse_args(argv)
    write_json(Path(args.out), measure_peak(args.threads, args.size, device=args.device))
    return 0


if __name__ == "__main__":
    sys.exit(main())
