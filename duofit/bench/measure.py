"""What every benchmark loop returns, and the plain MLP description the baselines build from a spec.

Framework-free. The baselines (``torch_loops``, ``keras_loops``, ``numpy_loop``) are written
by hand the way a person would write them; they only read the layer sizes, activations,
loss and Adam settings from the spec, and refuse anything else with a clear error. A plain
dense network is an :class:`MLP`; the torch and Keras baselines also build layer graphs
(sequence, attention, residual models) from their frameworks' stock layers
(:mod:`duofit.bench.stock`); the numpy baseline runs MLPs only.

Example:
    >>> from duofit.common.loader import load_spec
    >>> from duofit.common.data import load_dataset
    >>> spec = load_spec("examples/seed.toml")
    >>> mlp = mlp_of(spec, load_dataset(spec), "lean-torch")
    >>> mlp.layers, mlp.loss
    (((10, 'relu'), (1, 'linear')), 'bce_logits')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from duofit.bench.stock import StockGraph, stock_graph, stock_problem
from duofit.common.data import Dataset
from duofit.common.errors import BackendError
from duofit.common.spec import ActivationLayer, AdamOptimizer, DenseLayer, Spec

__all__ = ["GRAPH_BASELINES", "MLP", "Measurement", "baseline_problem", "mlp_of", "steady_epochs"]

_BASELINE_ACTIVATIONS = ("relu", "linear")
# Baselines that build layer graphs from stock layers (the numpy one computes MLPs only).
GRAPH_BASELINES = ("lean-torch", "seed-loop", "keras-tuned", "keras-naive-fit")


@dataclass
class Measurement:
    """Clock readings and results of one training run.

    Attributes:
        fit_start: ``time.perf_counter()`` just before the first epoch.
        epoch_ends: ``time.perf_counter()`` after each epoch, once everything the loop does per
            epoch (training, validation, metrics, callbacks) is done and the device is synced.
        final_train_loss: Training loss of the last epoch as the loop reports it.
        final_val_loss: Validation loss of the last epoch.
        test_outputs: Raw model outputs on the test split (numpy).
        versions: Framework versions, e.g. ``"torch 2.13.0"``.
        flags: ``jit_compile``, ``steps_per_execution``, ``torch_compile``, ``tf32_matmul``, ``onednn``.
        interop_threads: Inter-op threads the framework reports.
        device_name: CPU model or GPU name.
        loop_epoch_s: The loop's own per-epoch timer when it has one (duofit); else ``None``.
        first_epoch_s: First epoch as the loop timed it; ``None`` = ``epoch_ends[0] - fit_start``.
    """

    fit_start: float
    epoch_ends: list[float]
    final_train_loss: float
    final_val_loss: float
    test_outputs: np.ndarray
    versions: str
    flags: dict[str, Any] = field(default_factory=dict)
    interop_threads: int | None = None
    device_name: str = ""
    loop_epoch_s: list[float] | None = None
    first_epoch_s: float | None = None


def steady_epochs(epoch_ends: list[float], warmup_epochs: int) -> np.ndarray:
    """Wall-clock seconds of each epoch after the warm-up: differences of consecutive epoch ends.

    Example:
        >>> steady_epochs([1.0, 1.5, 1.75, 2.0], warmup_epochs=1).tolist()
        [0.5, 0.25, 0.25]
    """
    ends = np.asarray(epoch_ends, dtype=np.float64)
    return np.diff(ends)[max(warmup_epochs - 1, 0) :]


@dataclass(frozen=True)
class MLP:
    """A plain multilayer perceptron and how to train it, as the baselines need it.

    Attributes:
        n_features: Input width.
        layers: ``(units, activation)`` per dense layer; activation ``relu`` or ``linear``.
        loss: ``bce_logits``, ``cce_logits`` (integer labels) or ``mse``.
        lr, beta1, beta2, eps: Adam settings.
        batch_size, epochs, seed: From ``train``.
        dtype: ``float32`` or ``float64``.
        graph: The layer graph to build from stock layers, when the model is not a plain MLP
            (``layers`` is then empty).
    """

    n_features: int
    layers: tuple[tuple[int, str], ...]
    loss: str
    lr: float
    beta1: float
    beta2: float
    eps: float
    batch_size: int
    epochs: int
    seed: int
    dtype: str
    graph: StockGraph | None = None

    def targets(self, y: np.ndarray) -> np.ndarray:
        """Targets in the form this loss consumes: float column, int64 indices or float matrix."""
        if self.loss == "cce_logits":
            return np.asarray(y, dtype=np.int64)
        return np.asarray(y, dtype=self.dtype).reshape(len(y), -1)


def _unsupported(backend: str, what: str) -> BackendError:
    graphs = "; the torch and Keras baselines also build stock-layer graphs" if backend in GRAPH_BASELINES else ""
    return BackendError(
        f"baseline {backend!r} cannot run {what}; baselines support dense layers with activation "
        f"{' or '.join(_BASELINE_ACTIVATIONS)} (or a following relu activation layer){graphs}, losses "
        "binary_crossentropy / categorical_crossentropy with from_logits = true (integer labels) or mse, "
        "and the adam optimizer without weight decay or clipping. Use a duofit-* backend for this workload"
    )


def baseline_problem(spec: Spec, backend: str) -> str | None:
    """Why baseline ``backend`` cannot run ``spec`` (``None`` if it can); nothing is loaded.

    Example:
        >>> from duofit.common.loader import load_spec
        >>> baseline_problem(load_spec("examples/digits_cnn.toml"), "numpy-lean")[:45]
        "baseline 'numpy-lean' cannot run model.layers"
    """
    try:
        _translate(spec, backend)
    except BackendError as exc:
        return str(exc)
    return None


def mlp_of(spec: Spec, dataset: Dataset, backend: str) -> MLP:
    """The :class:`MLP` of a spec, or a clear error naming the item a baseline cannot run."""
    layers, kind, opt = _translate(spec, backend)
    tr = spec.train
    graph = None
    if layers is None:
        tokens = bool(np.issubdtype(dataset.x_train.dtype, np.integer))
        graph = stock_graph(spec, dataset.input_shape, tokens)
    return MLP(
        n_features=dataset.n_features,
        layers=tuple(layers or ()),
        loss=kind,
        lr=opt.lr,
        beta1=opt.beta1,
        beta2=opt.beta2,
        eps=opt.epsilon,
        batch_size=tr.batch_size,
        epochs=tr.epochs,
        seed=tr.seed,
        dtype=tr.dtype,
        graph=graph,
    )


def _mlp_layers(spec: Spec, backend: str) -> list[tuple[int, str]]:
    layers: list[tuple[int, str]] = []
    for i, layer in enumerate(spec.model.layers):
        if isinstance(layer, DenseLayer):
            act = layer.activation or "linear"
            if act not in _BASELINE_ACTIVATIONS or layer.l1 or layer.l2 or not layer.use_bias:
                raise _unsupported(backend, f"model.layers[{i}] (dense, activation {act!r})")
            layers.append((layer.units, act))
        elif isinstance(layer, ActivationLayer) and layer.activation == "relu" and layers and layers[-1][1] == "linear":
            layers[-1] = (layers[-1][0], "relu")
        else:
            raise _unsupported(backend, f"model.layers[{i}] (type {layer.type!r})")
        if layer.inputs is not None:
            raise _unsupported(backend, f"model.layers[{i}].inputs (a layer graph)")
    return layers


def _translate(spec: Spec, backend: str) -> tuple[list[tuple[int, str]] | None, str, AdamOptimizer]:
    """MLP layers (``None``: a stock-layer graph), loss kind and Adam settings, or the error."""
    try:
        layers: list[tuple[int, str]] | None = _mlp_layers(spec, backend)
    except BackendError:
        if backend not in GRAPH_BASELINES:
            raise
        problem = stock_problem(spec)
        if problem is not None:
            raise _unsupported(backend, problem) from None
        layers = None
    loss = spec.loss
    if loss.type == "mse":
        kind = "mse"
    elif loss.type == "binary_crossentropy" and loss.from_logits:
        kind = "bce_logits"
    elif loss.type == "categorical_crossentropy" and loss.from_logits and loss.labels == "integer":
        kind = "cce_logits"
    else:
        raise _unsupported(backend, f"loss {loss.type!r} with these settings")
    opt = spec.optimizer
    if not isinstance(opt, AdamOptimizer) or opt.amsgrad or opt.weight_decay or opt.clipnorm or opt.clipvalue:
        raise _unsupported(backend, f"optimizer {opt.type!r} with these settings")
    return layers, kind, opt
