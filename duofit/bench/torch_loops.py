"""Hand-written PyTorch baselines: the tutorial's training loop, and a lean minimal loop.

* ``seed-loop``: the tutorial's training loop (its Step 4), generalised only in the model/loss it builds:
  ``TensorDataset`` + ``DataLoader(shuffle=True)``, ``running_loss += loss.item()`` every
  step, then test loss and accuracy over a ``DataLoader`` under ``no_grad`` every epoch.
* ``lean-torch``: what an experienced person writes for speed: one ``randperm`` per epoch,
  contiguous slices of the permuted tensors, ``zero_grad(set_to_none=True)``, the fused Adam
  kernel where torch has it for the device (as duofit's torch backend), the epoch loss
  accumulated on the device (one host sync per epoch), validation loss under ``inference_mode``.

Both use torch's default initialisation (seeded) and only read sizes, loss and Adam
settings from the spec (:class:`~duofit.bench.measure.MLP`); a model that is not a plain MLP
is built from stock torch modules (:mod:`duofit.bench.torch_models`). Run inside a cell process.

Example:
    Trains a model inside a cell process, so it is not run as a doctest.

    >>> m = lean_torch(mlp, dataset, "cpu")        # doctest: +SKIP
    >>> len(m.epoch_ends) == mlp.epochs            # doctest: +SKIP
    True
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from duofit.backends.torch.optimizers import fused_kwargs
from duofit.bench.measure import MLP, Measurement
from duofit.bench.torch_models import StockNet, channels_first
from duofit.common.data import Dataset, Part
from duofit.common.envinfo import cpu_model

__all__ = ["cuda_sync", "lean_torch", "seed_loop", "torch_flags"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def torch_flags() -> dict[str, Any]:
    """Numeric/speed flags of this torch process (for the CSV)."""
    mkldnn = torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
    return {
        "jit_compile": False,
        "steps_per_execution": 1,
        "torch_compile": False,
        "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
        "onednn": "on" if mkldnn else "off",
    }


def cuda_sync() -> None:
    """Wait for every kernel queued on the current CUDA device (the cell's epoch clock on a GPU)."""
    torch.cuda.synchronize()


def _model(mlp: MLP, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(mlp.seed)
    if mlp.graph is not None:
        return StockNet(mlp.graph).to(device=device, dtype=_DTYPES[mlp.dtype])
    blocks: list[torch.nn.Module] = []
    width = mlp.n_features
    for units, act in mlp.layers:
        blocks.append(torch.nn.Linear(width, units))
        if act == "relu":
            blocks.append(torch.nn.ReLU())
        width = units
    return torch.nn.Sequential(*blocks).to(device=device, dtype=_DTYPES[mlp.dtype])


def _criterion(mlp: MLP) -> torch.nn.Module:
    return {"bce_logits": torch.nn.BCEWithLogitsLoss, "cce_logits": torch.nn.CrossEntropyLoss}.get(
        mlp.loss, torch.nn.MSELoss
    )()


def _inputs(mlp: MLP, x: Part, device: torch.device) -> torch.Tensor:
    """Token ids as int64; images channels-first for a stock graph's convolutions; else the float dtype."""
    x = np.asarray(x)  # a streamed part (kinds npy, parquet) is loaded whole: the baselines train in memory
    if mlp.graph is not None and mlp.graph.tokens:
        return torch.as_tensor(x, dtype=torch.int64, device=device)
    t = torch.as_tensor(x, dtype=_DTYPES[mlp.dtype], device=device)
    return channels_first(t) if mlp.graph is not None else t


def _tensors(mlp: MLP, ds: Dataset, device: torch.device) -> tuple[torch.Tensor, ...]:
    return (
        _inputs(mlp, ds.x_train, device),
        torch.as_tensor(mlp.targets(ds.y_train), device=device),
        _inputs(mlp, ds.x_val, device),
        torch.as_tensor(mlp.targets(ds.y_val), device=device),
        _inputs(mlp, ds.x_test, device),
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _finish(
    model: torch.nn.Module, x_test: torch.Tensor, device: torch.device, start: float, ends: list[float], losses: Any
) -> Measurement:
    model.eval()
    with torch.inference_mode():
        test_out = model(x_test).float().cpu().numpy()
    cuda = device.type == "cuda"
    return Measurement(
        fit_start=start,
        epoch_ends=ends,
        final_train_loss=float(losses[0]),
        final_val_loss=float(losses[1]),
        test_outputs=np.asarray(test_out),
        versions=f"torch {torch.__version__}",
        flags=torch_flags(),
        interop_threads=torch.get_num_interop_threads(),
        device_name=torch.cuda.get_device_name(device) if cuda else cpu_model(),
    )


def lean_torch(mlp: MLP, ds: Dataset, device_name: str) -> Measurement:
    """The lean hand-written loop (see the module docstring)."""
    device = torch.device(device_name)
    model = _model(mlp, device)
    criterion = _criterion(mlp)
    params = list(model.parameters())
    fused = fused_kwargs(torch.optim.Adam, params)  # same optimizer kernel as duofit-torch
    optimizer = torch.optim.Adam(params, lr=mlp.lr, betas=(mlp.beta1, mlp.beta2), eps=mlp.eps, **fused)
    x, y, x_val, y_val, x_test = _tensors(mlp, ds, device)
    n, bs = x.shape[0], mlp.batch_size
    gen = torch.Generator(device="cpu").manual_seed(mlp.seed)
    ends: list[float] = []
    losses: tuple[float, float] = (float("nan"), float("nan"))
    start = time.perf_counter()
    for _ in range(mlp.epochs):
        model.train()
        perm = torch.randperm(n, generator=gen).to(device)
        xp, yp = x[perm], y[perm]
        total = torch.zeros((), dtype=_DTYPES[mlp.dtype], device=device)
        for s in range(0, n, bs):
            xb, yb = xp[s : s + bs], yp[s : s + bs]
            optimizer.zero_grad(set_to_none=True)
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
            total += loss.detach() * xb.shape[0]
        model.eval()
        with torch.inference_mode():
            val_loss = criterion(model(x_val), y_val)
        losses = (float((total / n).item()), float(val_loss.item()))  # the epoch's host syncs
        _sync(device)
        ends.append(time.perf_counter())
    return _finish(model, x_test, device, start, ends, losses)


def seed_loop(mlp: MLP, ds: Dataset, device_name: str) -> Measurement:
    """The tutorial's training loop (Step 4) with its DataLoaders (see the module docstring)."""
    from torch.utils.data import DataLoader, TensorDataset

    device = torch.device(device_name)
    model = _model(mlp, device)
    criterion = _criterion(mlp)
    optimizer = torch.optim.Adam(model.parameters(), lr=mlp.lr, betas=(mlp.beta1, mlp.beta2), eps=mlp.eps)
    x, y, x_val, y_val, x_test = _tensors(mlp, ds, device)
    train_loader = DataLoader(dataset=TensorDataset(x, y), batch_size=mlp.batch_size, shuffle=True)
    test_loader = DataLoader(dataset=TensorDataset(x_val, y_val), batch_size=mlp.batch_size, shuffle=False)
    ends: list[float] = []
    losses: tuple[float, float] = (float("nan"), float("nan"))
    start = time.perf_counter()
    for _ in range(mlp.epochs):
        model.train()
        running_loss = 0.0
        for inputs, labels in train_loader:
            optimizer.zero_grad()
            outputs = model(inputs)
            loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
        avg_train_loss = running_loss / len(train_loader)
        model.eval()
        test_loss, correct, total = 0.0, 0, 0
        with torch.no_grad():
            for inputs, labels in test_loader:
                outputs = model(inputs)
                test_loss += criterion(outputs, labels).item()
                if mlp.loss == "bce_logits":
                    predicted = (torch.sigmoid(outputs) > 0.5).float()
                    correct += (predicted == labels).sum().item()
                elif mlp.loss == "cce_logits":
                    correct += (outputs.argmax(dim=1) == labels).sum().item()
                total += labels.numel()
        _accuracy = correct / max(total, 1)  # computed every epoch, as the tutorial does
        losses = (avg_train_loss, test_loss / len(test_loader))
        _sync(device)
        ends.append(time.perf_counter())
    return _finish(model, x_test, device, start, ends, losses)
