"""``numpy-lean``: the same MLP trained with numpy alone (manual backprop + Adam).

A framework-free floor for the tables (what the BLAS alone gives at this size, with no
autograd, dispatcher or graph), and a fast backend for the benchmark's own tests, which
then run in every test environment. Glorot-uniform weights, zero biases, one permutation
per epoch, validation loss per epoch, float32 or float64 as the spec says.

Example:
    Trains a model inside a cell process, so it is not run as a doctest.

    >>> m = numpy_lean(mlp, dataset, "cpu")        # doctest: +SKIP
    >>> len(m.epoch_ends) == mlp.epochs            # doctest: +SKIP
    True
"""

from __future__ import annotations

import time

import numpy as np

from duofit.bench.measure import MLP, Measurement
from duofit.common.data import Dataset
from duofit.common.envinfo import cpu_model
from duofit.common.errors import BackendError

__all__ = ["numpy_lean"]


def _loss_and_grad(kind: str, z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean loss over the batch and its gradient with respect to the logits ``z``."""
    n = len(z)
    if kind == "bce_logits":
        loss = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
        grad = (1.0 / (1.0 + np.exp(-z)) - y) / n
        return float(loss.mean()), grad
    if kind == "cce_logits":
        shifted = z - z.max(axis=1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        grad = np.exp(logp)
        grad[np.arange(n), y] -= 1.0
        return float(-logp[np.arange(n), y].mean()), grad / n
    diff = z - y
    return float(np.mean(diff**2)), 2.0 * diff / diff.size


class _Net:
    def __init__(self, mlp: MLP, rng: np.random.Generator) -> None:
        self.acts = [act for _, act in mlp.layers]
        self.params: list[np.ndarray] = []
        width = mlp.n_features
        for units, _ in mlp.layers:
            limit = np.sqrt(6.0 / (width + units))  # glorot_uniform
            self.params += [rng.uniform(-limit, limit, (width, units)).astype(mlp.dtype), np.zeros(units, mlp.dtype)]
            width = units
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.t = 0

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        inputs = []
        a = x
        for i, act in enumerate(self.acts):
            inputs.append(a)
            a = a @ self.params[2 * i] + self.params[2 * i + 1]
            if act == "relu":
                a = np.maximum(a, 0)
        return a, inputs

    def backward(self, grad: np.ndarray, inputs: list[np.ndarray]) -> list[np.ndarray]:
        grads: list[np.ndarray] = [np.empty(0)] * len(self.params)
        for i in reversed(range(len(self.acts))):
            grads[2 * i] = inputs[i].T @ grad
            grads[2 * i + 1] = grad.sum(axis=0)
            if i:
                grad = grad @ self.params[2 * i].T
                grad = grad * (inputs[i] > 0) if self.acts[i - 1] == "relu" else grad
        return grads

    def adam(self, grads: list[np.ndarray], mlp: MLP) -> None:
        self.t += 1
        c1, c2 = 1 - mlp.beta1**self.t, 1 - mlp.beta2**self.t
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            m *= mlp.beta1
            m += (1 - mlp.beta1) * g
            v *= mlp.beta2
            v += (1 - mlp.beta2) * g * g
            p -= mlp.lr * (m / c1) / (np.sqrt(v / c2) + mlp.eps)


def numpy_lean(mlp: MLP, ds: Dataset, device_name: str) -> Measurement:
    """Train with numpy (see the module docstring); CPU only."""
    if device_name != "cpu":
        raise BackendError(f"baseline 'numpy-lean' runs on the CPU only (got device {device_name!r}); allowed: cpu")
    rng = np.random.default_rng(mlp.seed)
    net = _Net(mlp, rng)
    x, y = ds.x_train.astype(mlp.dtype), mlp.targets(ds.y_train)
    x_val, y_val = ds.x_val.astype(mlp.dtype), mlp.targets(ds.y_val)
    n, bs = len(x), mlp.batch_size
    ends: list[float] = []
    losses = (float("nan"), float("nan"))
    start = time.perf_counter()
    for _ in range(mlp.epochs):
        perm = rng.permutation(n)
        xp, yp = x[perm], y[perm]
        total = 0.0
        for s in range(0, n, bs):
            out, inputs = net.forward(xp[s : s + bs])
            loss, grad = _loss_and_grad(mlp.loss, out, yp[s : s + bs])
            if net.acts[-1] == "relu":
                grad = grad * (out > 0)
            net.adam(net.backward(grad, inputs), mlp)
            total += loss * len(out)
        val_loss, _ = _loss_and_grad(mlp.loss, net.forward(x_val)[0], y_val)
        losses = (total / n, val_loss)
        ends.append(time.perf_counter())
    return Measurement(
        fit_start=start,
        epoch_ends=ends,
        final_train_loss=losses[0],
        final_val_loss=losses[1],
        test_outputs=net.forward(ds.x_test.astype(mlp.dtype))[0],
        versions=f"numpy {np.__version__}",
        flags={
            "jit_compile": False,
            "steps_per_execution": 1,
            "torch_compile": False,
            "tf32_matmul": False,
            "onednn": "",
        },
        device_name=cpu_model(),
    )
