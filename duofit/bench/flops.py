"""FLOPs per training step estimated from the spec, and a matmul peak measured on this machine.

Convention (the one MFU papers use for dense networks): a dense layer costs ``2 * in * out``
FLOPs per sample forward (one multiply + one add per weight); a conv2d layer costs
``2 * kh * kw * in_channels * filters`` per output pixel; the backward pass costs twice
the forward (gradients for inputs and for weights), so a training step costs 3x forward.
Pooling, like biases and activations, is O(activations) and not counted.
Biases, activations, the loss and the optimizer update are not counted (they are O(units),
not O(weights)); validation forwards are not counted either. MFU is therefore conservative.

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

import sys
import time
from pathlib import Path
from typing import Any

from duofit.common.spec import Conv2DLayer, DenseLayer, Spec
from duofit.common.spec.shapes import infer_shapes

__all__ = [
    "BACKWARD_FACTOR",
    "forward_flops_per_sample",
    "main",
    "measure_peak",
    "train_flops_per_step",
]

BACKWARD_FACTOR = 2  # backward = 2x forward for dense layers (grad wrt inputs + grad wrt weights)
PEAK_REPEATS = 10  # timed matmuls per library; the fastest is kept (best-of-n rejects interference)
PEAK_SIZE = 2048  # square float32 matrices: large enough to reach BLAS peak on a few cores


def forward_flops_per_sample(spec: Spec, n_features: int) -> int:
    """Forward FLOPs per sample over the dense and conv2d layers (see the module docstring).

    Example:
        >>> from duofit.common.loader import load_spec
        >>> spec = load_spec({"data": {"kind": "iris"}, "loss": {"type": "mse"},
        ...     "model": {"layers": [{"type": "dense", "units": 8}, {"type": "dense", "units": 1}]}})
        >>> forward_flops_per_sample(spec, n_features=4)
        80
    """
    image = tuple(spec.data.image_shape) if spec.data.image_shape else None
    shapes = infer_shapes(spec.model.layers, image)
    total = 0
    previous: tuple[int, ...] | None = image or (n_features,)
    for layer, shape in zip(spec.model.layers, shapes, strict=True):
        width = 1
        for n in previous or (n_features,):
            width *= n
        if isinstance(layer, DenseLayer):
            total += 2 * width * layer.units
        elif isinstance(layer, Conv2DLayer) and previous is not None and shape is not None:
            kh, kw = layer.kernel_size
            total += 2 * kh * kw * previous[2] * layer.filters * shape[0] * shape[1]
        previous = shape if shape is not None else (width if not isinstance(layer, DenseLayer) else layer.units,)
    return total


def train_flops_per_step(spec: Spec, n_features: int, batch_size: int) -> int:
    """Training FLOPs of one full batch: forward + backward = ``(1 + BACKWARD_FACTOR)`` x forward.

    Example:
        >>> from duofit.common.loader import load_spec
        >>> spec = load_spec({"data": {"kind": "iris"}, "loss": {"type": "mse"},
        ...     "model": {"layers": [{"type": "dense", "units": 8}, {"type": "dense", "units": 1}]}})
        >>> train_flops_per_step(spec, n_features=4, batch_size=10)
        2400
    """
    return (1 + BACKWARD_FACTOR) * forward_flops_per_sample(spec, n_features) * batch_size


def _best_seconds(fn: Any, repeats: int) -> float:
    fn()  # warm-up: thread pool start, page faults
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure_peak(threads: int, size: int = PEAK_SIZE, repeats: int = PEAK_REPEATS) -> dict[str, Any]:
    """Best float32 matmul GFLOP/s of numpy and torch (if installed) with ``threads`` threads.

    Call it in a fresh process whose BLAS thread variables are already set (the runner does);
    torch's count is also set here.

    Returns:
        ``{"peak_gflops": best, "peak_source": "torch 2048^2", "numpy_gflops": ..., ...}``.

    Example:
        >>> measure_peak(threads=1, size=64, repeats=1)["peak_gflops"] > 0
        True
    """
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


def main(argv: list[str] | None = None) -> int:
    """``python -m duofit.bench.flops --threads N [--size S] OUT.json``: measure and write the peak."""
    import argparse

    from duofit.common.io import write_json

    parser = argparse.ArgumentParser(prog="python -m duofit.bench.flops")
    parser.add_argument("out")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--size", type=int, default=PEAK_SIZE)
    args = parser.parse_args(argv)
    write_json(Path(args.out), measure_peak(args.threads, args.size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
