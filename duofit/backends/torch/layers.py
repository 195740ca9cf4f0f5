"""Spec layers -> torch modules, and weights in/out in duofit's (Keras) layout.

Translations (spec meaning -> torch):
- dense kernel is stored ``[in, out]``; ``nn.Linear.weight`` is ``[out, in]`` (transposed);
  conv kernel ``[kh, kw, in, out]``; ``nn.Conv2d.weight`` is ``[out, in, kh, kw]``.
- images are NHWC in duofit and NCHW inside the torch model (:func:`to_model_input`);
  flatten is channels-last so the next dense kernel has Keras' row order.
- conv ``padding = "same"`` is TensorFlow's (odd pixel after): the conv's own padding when it is
  symmetric, else an explicit ``ZeroPad2d`` with the extra row/column bottom/right.
- batch_norm momentum uses torch's convention already (weight of the new batch statistic);
  torch keeps the *unbiased* batch variance in ``running_var`` (Keras: biased).
- leaky_relu slope is passed explicitly (torch default 0.01, Keras 0.2).
- a layer graph (layers with ``inputs``) runs in :class:`GraphModel`; ``concatenate``'s axis
  and ``reshape``'s target are channels-last in the spec and mapped to NCHW for images.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from duofit.backends.torch import sequence as seq
from duofit.backends.torch.attention import ATTENTION_LAYERS, ATTENTION_SLOTS
from duofit.backends.torch.rnn import RNN_LAYERS, RNN_SLOTS
from duofit.common.errors import BackendError, SpecError, unsupported
from duofit.common.spec import (
    ActivationLayer,
    AvgPool2DLayer,
    BatchNormLayer,
    Conv2DLayer,
    DenseLayer,
    DropoutLayer,
    FieldProblem,
    FlattenLayer,
    GlobalAvgPool2DLayer,
    MaxPool2DLayer,
    Spec,
)
from duofit.common.spec.layers import AddLayer, ConcatenateLayer, ReshapeLayer
from duofit.common.spec.layers_conv1d import (
    AvgPool1DLayer,
    Conv1DLayer,
    GlobalAvgPool1DLayer,
    GlobalMaxPool1DLayer,
    LayerNormLayer,
    MaxPool1DLayer,
)
from duofit.common.spec.layers_embedding import EmbeddingLayer, PositionalEmbeddingLayer
from duofit.common.spec.shapes import same_padding, same_pool_geometry, trace_shapes

__all__ = [
    "ACTIVATIONS",
    "DTYPES",
    "LAYERS",
    "GraphModel",
    "build_model",
    "get_weights",
    "kernel_penalty",
    "set_weights",
    "targets",
    "to_model_input",
]

DTYPES = {"float32": torch.float32, "float64": torch.float64}


class _Softmax(nn.Module):
    """Softmax over features, or over channels of an NCHW image (Keras' axis -1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=1 if x.dim() == 4 else -1)


class ChannelsLastFlatten(nn.Module):
    """Flatten NCHW images in (height, width, channel) order, as Keras flattens NHWC."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.permute(0, 2, 3, 1) if x.dim() == 4 else x).flatten(1)


class GlobalAvgPool(nn.Module):
    """Mean over height and width of an NCHW image."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class Add(nn.Module):
    """Sum of the inputs, left to right (as ``keras.layers.Add`` adds them)."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


# A channels-last axis of an image (1 = height, 2 = width, 3 = channels) -> its NCHW axis.
_NCHW_AXIS = {1: 2, 2: 3, 3: 1}


class Concatenate(nn.Module):
    """``torch.cat`` on the spec's (channels-last, batch = 0) ``axis`` of ``rank``-axis samples."""

    def __init__(self, axis: int, rank: int) -> None:
        super().__init__()
        self.axis = axis if axis > 0 else axis + rank + 1

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=_NCHW_AXIS[self.axis] if xs[0].dim() == 4 else self.axis)


class Reshape(nn.Module):
    """Per-sample reshape in channels-last order (as ``keras.layers.Reshape`` on NHWC)."""

    def __init__(self, target: Sequence[int]) -> None:
        super().__init__()
        self.target = tuple(target)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:  # NCHW -> NHWC, the spec's order
            x = x.permute(0, 2, 3, 1)
        y = x.reshape(x.shape[0], *self.target)
        return y.permute(0, 3, 1, 2) if y.dim() == 4 else y


class GraphModel(nn.Sequential):
    """A layer graph: child ``i`` is spec layer ``i``; ``sources[i]`` lists what it reads.

    A source ``-1`` is the model input; the output is the last layer's. Children are named
    ``0``, ``1``, ... as in ``nn.Sequential``, so the ``state_dict`` keys have the same form
    for sequential and graph models.
    """

    def __init__(self, modules: Sequence[nn.Module], sources: Sequence[tuple[int, ...]]) -> None:
        super().__init__(*modules)
        self.sources = [tuple(src) for src in sources]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        outs: list[torch.Tensor] = []
        for layer, src in zip(self, self.sources, strict=True):
            outs.append(layer(*(x if j < 0 else outs[j] for j in src)))
        return outs[-1]


ACTIVATIONS: dict[str, Callable[[float], nn.Module]] = {
    "relu": lambda slope: nn.ReLU(),
    "sigmoid": lambda slope: nn.Sigmoid(),
    "tanh": lambda slope: nn.Tanh(),
    "softmax": lambda slope: _Softmax(),
    "gelu": lambda slope: nn.GELU(approximate="none"),  # exact erf form, as Keras' default
    "leaky_relu": lambda slope: nn.LeakyReLU(negative_slope=slope),
    "linear": lambda slope: nn.Identity(),
}
_DEFAULT_SLOPE = ActivationLayer.model_fields["negative_slope"].default
Shape = tuple[int, ...]


def _with_activation(module: nn.Module, activation: str | None) -> nn.Module:
    if activation in (None, "linear"):
        return module
    return nn.Sequential(module, ACTIVATIONS[activation](_DEFAULT_SLOPE))


def _dense(layer: DenseLayer, shape: Shape, out: Shape) -> nn.Module:
    return _with_activation(nn.Linear(shape[-1], layer.units, bias=layer.use_bias), layer.activation)


def _conv(layer: Conv2DLayer, shape: Shape, out: Shape) -> nn.Module:
    (top, bottom), (left, right) = (
        same_padding(n, k, st, d) if layer.padding == "same" else (0, 0)
        for n, k, st, d in zip(shape[:2], layer.kernel_size, layer.strides, layer.dilation, strict=True)
    )
    symmetric = top == bottom and left == right  # "valid", or "same" with an even total padding
    conv = nn.Conv2d(
        shape[-1],
        layer.filters,
        tuple(layer.kernel_size),
        stride=tuple(layer.strides),
        padding=(top, left) if symmetric else 0,  # the conv pads itself: no padded copy of the input
        dilation=tuple(layer.dilation),
        bias=layer.use_bias,
    )
    if symmetric:
        return _with_activation(conv, layer.activation)
    # TensorFlow's "same" with an odd total: the extra zero row/column goes bottom/right
    block = nn.Sequential(nn.ZeroPad2d((left, right, top, bottom)), conv)
    return _with_activation(block, layer.activation)


class SamePool(nn.Module):
    """Pooling with TensorFlow's "same" padding (possibly asymmetric: odd cell bottom/right).

    Max: the border is padded with -inf, so a padded cell never wins. Average: the sum over
    the zero-padded window divided by the number of real cells in it (precomputed), as
    TensorFlow does; torch's own ``padding`` is symmetric only.
    """

    def __init__(self, average: bool, size: tuple[int, int], stride: tuple[int, int], shape: Shape) -> None:
        super().__init__()
        ((top, bottom), (left, right)), counts = same_pool_geometry(shape[:2], size, stride)
        self.pad = (left, right, top, bottom)
        self.size, self.stride, self.average = size, stride, average
        if average:  # cast with the model's dtype
            self.register_buffer("counts", torch.as_tensor(counts)[None, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.average:
            total = F.avg_pool2d(F.pad(x, self.pad), self.size, self.stride, divisor_override=1)
            return total / self.counts
        return F.max_pool2d(F.pad(x, self.pad, value=-math.inf), self.size, self.stride)


def _pool(layer: MaxPool2DLayer, shape: Shape, out: Shape) -> nn.Module:
    size = (layer.pool_size[0], layer.pool_size[1])
    strides = layer.strides or layer.pool_size
    stride = (strides[0], strides[1])
    average = isinstance(layer, AvgPool2DLayer)
    if layer.padding == "same":
        return SamePool(average, size, stride, shape)
    return (nn.AvgPool2d if average else nn.MaxPool2d)(size, stride=stride)


def _batch_norm(layer: BatchNormLayer, shape: Shape, out: Shape) -> nn.Module:
    cls = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
    return cls(shape[-1], eps=layer.epsilon, momentum=layer.momentum)


LAYERS: dict[type, Callable[..., nn.Module]] = {
    DenseLayer: _dense,
    ActivationLayer: lambda layer, shape, out: ACTIVATIONS[layer.activation](layer.negative_slope),
    DropoutLayer: lambda layer, shape, out: nn.Dropout(p=layer.rate),
    BatchNormLayer: _batch_norm,
    FlattenLayer: lambda layer, shape, out: ChannelsLastFlatten(),
    Conv2DLayer: _conv,
    MaxPool2DLayer: _pool,
    AvgPool2DLayer: _pool,
    GlobalAvgPool2DLayer: lambda layer, shape, out: GlobalAvgPool(),
    AddLayer: lambda layer, shape, out: Add(),
    ConcatenateLayer: lambda layer, shape, out: Concatenate(layer.axis, len(shape)),
    ReshapeLayer: lambda layer, shape, out: Reshape(layer.target_shape),
    Conv1DLayer: lambda layer, shape, out: _with_activation(seq.conv1d(layer, shape), layer.activation),
    MaxPool1DLayer: lambda layer, shape, out: seq.pool1d(layer, shape),
    AvgPool1DLayer: lambda layer, shape, out: seq.pool1d(layer, shape),
    GlobalAvgPool1DLayer: lambda layer, shape, out: seq.GlobalPool1D(average=True),
    GlobalMaxPool1DLayer: lambda layer, shape, out: seq.GlobalPool1D(average=False),
    LayerNormLayer: lambda layer, shape, out: seq.layer_norm(layer, shape),
    EmbeddingLayer: lambda layer, shape, out: seq.embedding(layer, shape),
    PositionalEmbeddingLayer: lambda layer, shape, out: seq.positional(layer, shape),
    **RNN_LAYERS,
    **ATTENTION_LAYERS,
}


def build_model(
    spec: Spec, input_shape: int | Shape, dtype: str, strict: bool = False
) -> tuple[nn.Sequential, list[nn.Module]]:
    """One module per spec layer, in ``dtype``; also returns those modules.

    A sequential spec becomes an ``nn.Sequential``, a layer graph a :class:`GraphModel`
    (an ``nn.Sequential`` whose forward follows the graph). A dense/conv layer with an
    activation is an ``nn.Sequential`` of its own; images are NCHW inside the model. Same
    shape as the Keras twin: ``(model, heads)``, where ``heads[i]`` holds spec layer ``i``'s
    weights. No layer differs in strict mode on torch (``strict`` is accepted for the twin's
    signature).

    Example (skipped: it needs a validated spec, and pytest cannot collect doctests of a package named ``torch``):
        >>> model, heads = build_model(spec, 2, "float32")  # doctest: +SKIP
        >>> model  # doctest: +SKIP
        Sequential((0): Sequential((0): Linear(2, 10) (1): ReLU()) (1): Linear(10, 1))
    """
    shape: Shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    modules: list[nn.Module] = []
    for i, (layer, (ins, out)) in enumerate(
        zip(spec.model.layers, trace_shapes(spec.model.layers, shape), strict=True)
    ):
        factory = LAYERS.get(type(layer))
        if factory is None:
            raise unsupported("torch", f"model.layers[{i}]", layer, LAYERS)
        first = ins[0] or shape
        try:
            modules.append(factory(layer, first, out or first))
        except FieldProblem as exc:  # a setting torch cannot compute: the factory names the field, here the index
            where = f"model.layers[{i}].{exc.path}"
            raise SpecError(f"{where}: {exc}", path=where) from None
    seq.attach_masks(modules, spec.model.layers)
    if spec.model.is_sequential:
        model = nn.Sequential(*modules)
    else:
        model = GraphModel(modules, spec.model.sources)
    model = model.to(dtype=DTYPES[dtype])
    return model, list(model)


def _find(block: nn.Module, cls: type) -> nn.Module:
    if isinstance(block, cls):
        return block
    return next(m for m in block.modules() if isinstance(m, cls))


# duofit layout -> torch layout: dense kernel [in, out] -> [out, in]; conv [kh, kw, in, out] -> [out, in, kh, kw]
_DENSE_PERM = (1, 0)
_CONV_PERM = (3, 2, 0, 1)
# layer type -> (the torch module holding its kernel, permutation duofit -> torch layout)
_KERNELS: dict[type, tuple[type, tuple[int, ...]]] = {
    DenseLayer: (nn.Linear, _DENSE_PERM),
    Conv2DLayer: (nn.Conv2d, _CONV_PERM),
    Conv1DLayer: (nn.Conv1d, seq.CONV1D_PERM),
}


def _slots(heads: Sequence[nn.Module], spec: Spec) -> list[tuple[str, torch.Tensor, tuple[int, ...] | None]]:
    """``(duofit name, torch tensor, permutation from duofit to torch layout)`` per stored tensor."""
    slots: list[tuple[str, torch.Tensor, tuple[int, ...] | None]] = []
    for i, layer in enumerate(spec.model.layers):
        block = heads[i]
        if isinstance(layer, (DenseLayer, Conv2DLayer, Conv1DLayer)):
            kind, perm = _KERNELS[type(layer)]
            mod = _find(block, kind)
            slots.append((f"layers.{i}.kernel", mod.weight, perm))
            if mod.bias is not None:
                slots.append((f"layers.{i}.bias", mod.bias, None))
        elif type(layer) in RNN_SLOTS:  # recurrent layers keep duofit's layout (backends/torch/rnn.py)
            slots += RNN_SLOTS[type(layer)](i, block)
        elif type(layer) in ATTENTION_SLOTS:  # attention keeps duofit's layout (backends/torch/attention.py)
            slots += ATTENTION_SLOTS[type(layer)](i, block)
        elif isinstance(layer, BatchNormLayer):
            assert isinstance(block, (nn.BatchNorm1d, nn.BatchNorm2d))
            slots += [
                (f"layers.{i}.gamma", block.weight, None),
                (f"layers.{i}.beta", block.bias, None),
                (f"layers.{i}.moving_mean", block.running_mean, None),
                (f"layers.{i}.moving_variance", block.running_var, None),
            ]
        elif isinstance(layer, LayerNormLayer):
            assert isinstance(block, seq.LayerNorm)
            slots += [
                (f"layers.{i}.{n}", t, None)
                for n, t in (("gamma", block.weight), ("beta", block.bias))
                if t is not None
            ]
        elif isinstance(layer, (EmbeddingLayer, PositionalEmbeddingLayer)):
            assert isinstance(block, (seq.Embedding, seq.PositionalEmbedding))
            slots.append((f"layers.{i}.embeddings", block.weight, None))
    return slots


def set_weights(heads: Sequence[nn.Module], spec: Spec, weights: dict[str, np.ndarray]) -> None:
    """Copy duofit-layout arrays into the model (dense/conv kernels permuted to torch's layout)."""
    with torch.no_grad():
        for name, tensor, perm in _slots(heads, spec):
            arr = np.asarray(weights[name])
            src = torch.as_tensor(arr.transpose(perm) if perm else arr, dtype=tensor.dtype, device=tensor.device)
            if src.shape != tensor.shape:
                raise BackendError(f"weight {name}: shape {tuple(arr.shape)} does not fit the model")
            tensor.copy_(src)


def get_weights(heads: Sequence[nn.Module], spec: Spec) -> dict[str, np.ndarray]:
    """Model tensors as duofit-layout numpy arrays."""
    out: dict[str, np.ndarray] = {}
    for name, tensor, perm in _slots(heads, spec):
        arr = tensor.detach().cpu().numpy()
        out[name] = np.ascontiguousarray(arr.transpose(np.argsort(perm)) if perm else arr).copy()
    return out


def to_model_input(
    x: np.ndarray | torch.Tensor, dtype: torch.dtype, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Features as a tensor; NHWC images become NCHW (torch's convolution layout).

    Integer token ids stay integers (int64), never cast to ``dtype``: an embedding looks them up.
    """
    if isinstance(x, torch.Tensor):
        if not x.is_floating_point():
            return x.to(dtype=torch.long, device=device)
    elif np.asarray(x).dtype.kind in "iu":
        return torch.as_tensor(np.asarray(x), dtype=torch.long, device=device)
    t = torch.as_tensor(x, dtype=dtype, device=device)
    return t.permute(0, 3, 1, 2).contiguous() if t.dim() == 4 else t


def kernel_penalty(heads: Sequence[nn.Module], spec: Spec) -> Callable[[], torch.Tensor] | None:
    """L1/L2 kernel penalties (dense and conv) as Keras' regularizers: l1*sum|W| + l2*sum W^2."""
    terms = []
    for name, weight, _ in _slots(heads, spec):
        layer = spec.model.layers[int(name.split(".")[1])]
        l1, l2 = getattr(layer, "l1", 0.0), getattr(layer, "l2", 0.0)
        if name.endswith(".kernel") and (l1 or l2):
            terms.append((weight, l1, l2))
    if not terms:
        return None

    def penalty() -> torch.Tensor:
        total = torch.zeros((), dtype=terms[0][0].dtype, device=terms[0][0].device)
        for w, l1, l2 in terms:
            if l1:
                total = total + l1 * w.abs().sum()
            if l2:
                total = total + l2 * w.square().sum()
        return total

    return penalty


def targets(arr: np.ndarray, dtype: torch.dtype, device: torch.device | str = "cpu") -> torch.Tensor:
    """Loss-ready targets as a tensor: class indices stay integer, the rest takes ``dtype``."""
    if arr.dtype.kind in "iu":
        return torch.as_tensor(arr, dtype=torch.long, device=device)
    return torch.as_tensor(arr, dtype=dtype, device=device)
