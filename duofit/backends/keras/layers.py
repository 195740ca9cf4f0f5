"""Spec layers -> Keras layers, and weights in/out in duofit's (Keras) layout.

Translations (spec meaning -> Keras):
- batch_norm momentum is torch's convention in the spec; Keras gets ``1 - momentum``.
  Keras keeps the *biased* batch variance in ``moving_variance`` (torch: unbiased).
- leaky_relu slope is passed explicitly (Keras default 0.2, spec default 0.01), so a dense
  layer with ``activation = "leaky_relu"`` becomes Dense + LeakyReLU.
- gelu is the exact (erf) form, Keras' default.
- a layer graph (layers with ``inputs``) is a functional ``keras.Model``: ``keras.Input``, then
  each spec layer called on the tensors it reads; a sequential spec stays ``keras.Sequential``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import keras
import numpy as np

from duofit.backends.keras import sequence as seq
from duofit.backends.keras.attention import ATTENTION_KERAS_LAYERS, ATTENTION_WEIGHT_NAMES
from duofit.backends.keras.exact import EXACT_ACTIVATIONS, SameAvgPool2D
from duofit.backends.keras.modes import layer_dtype
from duofit.backends.keras.native import native
from duofit.backends.keras.rnn import RNN_LAYERS, RNN_WEIGHT_NAMES
from duofit.common.errors import BackendError, unsupported
from duofit.common.spec import (
    ActivationLayer,
    AvgPool2DLayer,
    BatchNormLayer,
    Conv2DLayer,
    DenseLayer,
    DropoutLayer,
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
from duofit.common.spec.shapes import TOKEN_LAYERS

__all__ = [
    "ACTIVATIONS",
    "LAYERS",
    "SEQUENCE_WEIGHT_NAMES",
    "build_model",
    "floatx",
    "get_weights",
    "input_dtype",
    "present_weights",
    "set_weights",
]


@contextlib.contextmanager
def floatx(dtype: str) -> Iterator[None]:
    """Temporarily set Keras' ``floatx``: loss trackers and regularisation losses follow it.

    Keras fixes its process-wide default dtype policy from ``floatx`` the first time anything
    asks for it (``dtype_policy()`` in keras/src/dtype_policies/dtype_policy.py). It is read
    before ``floatx`` changes and put back after, so a float64 run that happens to be a
    process's first Keras use does not leave every later model in that process float64.
    """
    previous, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(previous)
        keras.config.set_dtype_policy(policy)


ACTIVATIONS: dict[str, Callable[[float, str], keras.layers.Layer]] = {
    "relu": lambda slope, dtype: keras.layers.Activation("relu", dtype=dtype),
    "sigmoid": lambda slope, dtype: keras.layers.Activation("sigmoid", dtype=dtype),
    "tanh": lambda slope, dtype: keras.layers.Activation("tanh", dtype=dtype),
    "softmax": lambda slope, dtype: keras.layers.Activation("softmax", dtype=dtype),
    "gelu": lambda slope, dtype: keras.layers.Activation("gelu", dtype=dtype),
    "leaky_relu": lambda slope, dtype: keras.layers.LeakyReLU(negative_slope=slope, dtype=dtype),
    "linear": lambda slope, dtype: keras.layers.Activation("linear", dtype=dtype),
}
_DEFAULT_SLOPE = ActivationLayer.model_fields["negative_slope"].default


@keras.saving.register_keras_serializable(package="duofit")
class KernelPenalty(keras.regularizers.Regularizer):
    """``l1 * sum(|w|) + l2 * sum(w^2)`` computed in the weight's dtype.

    Keras' own ``L1L2`` does ``ops.cast(self.l1, x.dtype)``, which first makes a float32
    tensor of the Python float: in float64 the coefficients are rounded to float32
    (0.01 -> 0.009999999776). Multiplying by the Python float keeps them exact.
    """

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        self.l1 = float(l1)
        self.l2 = float(l2)

    def __call__(self, x: keras.KerasTensor) -> keras.KerasTensor:
        total = keras.ops.zeros((), dtype=x.dtype)
        if self.l1:
            total = total + keras.ops.sum(keras.ops.abs(x)) * self.l1
        if self.l2:
            total = total + keras.ops.sum(keras.ops.square(x)) * self.l2
        return total

    def get_config(self) -> dict[str, float]:
        return {"l1": self.l1, "l2": self.l2}


def _act(name: str, slope: float, dtype: str, strict: bool) -> keras.layers.Layer:
    if strict and name in EXACT_ACTIVATIONS:  # float64-exact constants (parity mode)
        cls = EXACT_ACTIVATIONS[name]
        return cls(negative_slope=slope, dtype=dtype) if name == "leaky_relu" else cls(dtype=dtype)
    return ACTIVATIONS[name](slope, dtype)


def _dense(layer: DenseLayer, dtype: str, seed: int, strict: bool) -> list[keras.layers.Layer]:
    reg = KernelPenalty(l1=layer.l1, l2=layer.l2) if (layer.l1 or layer.l2) else None
    separate = layer.activation == "leaky_relu" or (strict and layer.activation in EXACT_ACTIVATIONS)
    native = None if separate else layer.activation
    out = [
        keras.layers.Dense(layer.units, activation=native, use_bias=layer.use_bias, kernel_regularizer=reg, dtype=dtype)
    ]
    if separate and layer.activation is not None:
        out.append(_act(layer.activation, _DEFAULT_SLOPE, dtype, strict))
    return out


def _activation(layer: ActivationLayer, dtype: str, seed: int, strict: bool) -> list[keras.layers.Layer]:
    return [_act(layer.activation, layer.negative_slope, dtype, strict)]


def _dropout(layer: DropoutLayer, dtype: str, seed: int, strict: bool) -> list[keras.layers.Layer]:
    return [keras.layers.Dropout(layer.rate, seed=seed, dtype=dtype)]


def _batch_norm(layer: BatchNormLayer, dtype: str, seed: int, strict: bool) -> list[keras.layers.Layer]:
    return [keras.layers.BatchNormalization(momentum=1.0 - layer.momentum, epsilon=layer.epsilon, dtype=dtype)]


def _flatten(layer: FlattenLayer, dtype: str, seed: int, strict: bool) -> list[keras.layers.Layer]:
    return [keras.layers.Flatten(dtype=dtype)]


def _conv(layer: Conv2DLayer, dtype: str, seed: int, strict: bool) -> list[keras.layers.Layer]:
    reg = KernelPenalty(l1=layer.l1, l2=layer.l2) if (layer.l1 or layer.l2) else None
    separate = layer.activation == "leaky_relu" or (strict and layer.activation in EXACT_ACTIVATIONS)
    conv = keras.layers.Conv2D(
        layer.filters,
        tuple(layer.kernel_size),
        strides=tuple(layer.strides),
        padding=layer.padding,
        dilation_rate=tuple(layer.dilation),
        activation=None if separate else layer.activation,
        use_bias=layer.use_bias,
        kernel_regularizer=reg,
        dtype=dtype,
    )
    if separate and layer.activation is not None:
        return [conv, _act(layer.activation, _DEFAULT_SLOPE, dtype, strict)]
    return [conv]


def _conv1d(layer: Conv1DLayer, dtype: str, seed: int, strict: bool) -> list[keras.layers.Layer]:
    reg = KernelPenalty(l1=layer.l1, l2=layer.l2) if (layer.l1 or layer.l2) else None
    separate = layer.activation == "leaky_relu" or (strict and layer.activation in EXACT_ACTIVATIONS)
    conv = keras.layers.Conv1D(
        layer.filters,
        layer.kernel_size,
        strides=layer.strides,
        padding=layer.padding,
        activation=None if separate else layer.activation,
        use_bias=layer.use_bias,
        kernel_regularizer=reg,
        dtype=dtype,
    )
    if separate and layer.activation is not None:
        return [conv, _act(layer.activation, _DEFAULT_SLOPE, dtype, strict)]
    return [conv]


def _pool(layer: MaxPool2DLayer, dtype: str, seed: int, strict: bool) -> list[keras.layers.Layer]:
    cls = keras.layers.AveragePooling2D if isinstance(layer, AvgPool2DLayer) else keras.layers.MaxPooling2D
    size = (layer.pool_size[0], layer.pool_size[1])
    given = layer.strides or layer.pool_size
    strides = (given[0], given[1])
    if cls is keras.layers.AveragePooling2D and layer.padding == "same" and not native().same_avg_pool_ok:
        return [SameAvgPool2D(size, strides, dtype=dtype)]
    return [cls(pool_size=size, strides=strides, padding=layer.padding, dtype=dtype)]


LAYERS: dict[type, Callable[..., list[keras.layers.Layer]]] = {
    Conv2DLayer: _conv,
    MaxPool2DLayer: _pool,
    AvgPool2DLayer: _pool,
    GlobalAvgPool2DLayer: lambda layer, dtype, seed, strict: [keras.layers.GlobalAveragePooling2D(dtype=dtype)],
    DenseLayer: _dense,
    ActivationLayer: _activation,
    DropoutLayer: _dropout,
    BatchNormLayer: _batch_norm,
    FlattenLayer: _flatten,
    AddLayer: lambda layer, dtype, seed, strict: [keras.layers.Add(dtype=dtype)],
    ConcatenateLayer: lambda layer, dtype, seed, strict: [keras.layers.Concatenate(axis=layer.axis, dtype=dtype)],
    ReshapeLayer: lambda layer, dtype, seed, strict: [keras.layers.Reshape(tuple(layer.target_shape), dtype=dtype)],
    Conv1DLayer: _conv1d,
    MaxPool1DLayer: seq.pool1d,
    AvgPool1DLayer: seq.pool1d,
    GlobalAvgPool1DLayer: lambda layer, dtype, seed, strict: [keras.layers.GlobalAveragePooling1D(dtype=dtype)],
    GlobalMaxPool1DLayer: lambda layer, dtype, seed, strict: [keras.layers.GlobalMaxPooling1D(dtype=dtype)],
    LayerNormLayer: seq.layer_norm,
    EmbeddingLayer: seq.embedding,
    PositionalEmbeddingLayer: seq.positional,
    **RNN_LAYERS,
    **ATTENTION_KERAS_LAYERS,
}
# Keras' merge layers take their inputs as one list; every other layer takes them as arguments.
_MERGES = (AddLayer, ConcatenateLayer)


def build_model(
    spec: Spec, input_shape: int | tuple[int, ...], dtype: str, strict: bool = False, model_cls: type = keras.Sequential
) -> tuple[keras.Model, list[keras.layers.Layer]]:
    """The Keras model; also returns the first Keras layer of each spec layer.

    A sequential spec becomes a ``model_cls`` (a ``keras.Sequential``); a layer graph a
    functional ``keras.Model`` (:func:`_graph`), which a ``model_cls`` other than
    ``keras.Sequential`` wraps as its one layer, so the trainer's Sequential subclass (per-step
    loss recording) serves both. ``strict`` swaps gelu/leaky_relu for float64-exact layers.
    Layers get the dtype policy of ``spec.train.precision`` (:func:`~duofit.backends.keras.modes.layer_dtype`:
    ``mixed_bfloat16`` or ``dtype``); the input stays ``dtype``.

    Example (skipped: it needs a validated spec):
        >>> model, heads = build_model(spec, 2, dtype="float32")  # doctest: +SKIP
    """
    made_all: list[list[keras.layers.Layer]] = []
    policy = layer_dtype(spec.train) if spec.train.dtype == dtype else dtype
    for i, layer in enumerate(spec.model.layers):
        factory = LAYERS.get(type(layer))
        if factory is None:
            raise unsupported("keras", f"model.layers[{i}]", layer, LAYERS)
        made_all.append(factory(layer, policy, spec.train.seed + i, strict))
    heads = [made[0] for made in made_all]
    shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    inputs = keras.Input(shape=shape, dtype=input_dtype(spec, dtype))
    if spec.model.is_sequential:
        return model_cls([inputs, *(k for made in made_all for k in made)]), heads
    graph = _graph(spec, inputs, made_all)
    if model_cls is keras.Sequential:
        return graph, heads
    return model_cls([keras.Input(shape=shape, dtype=input_dtype(spec, dtype)), graph]), heads


def input_dtype(spec: Spec, dtype: str) -> str:
    """The model input's dtype: int64 token ids when an embedding reads the input, else ``dtype``."""
    reads_input = (layer for layer, src in zip(spec.model.layers, spec.model.sources, strict=True) if -1 in src)
    return "int64" if any(isinstance(layer, TOKEN_LAYERS) for layer in reads_input) else dtype


def _graph(spec: Spec, inputs: keras.KerasTensor, made_all: list[list[keras.layers.Layer]]) -> keras.Model:
    """A functional model: each spec layer's Keras layers called on the tensors it reads.

    Keras layers get stable names (the spec's ``name``, else ``<type>_<index>``), so a saved
    ``.keras`` graph can be matched layer by layer.
    """
    taken = {layer.name for layer in spec.model.layers if layer.name}
    outs: list[keras.KerasTensor] = []
    for i, (layer, made, src) in enumerate(zip(spec.model.layers, made_all, spec.model.sources, strict=True)):
        base = layer.name or _free(f"{layer.type}_{i}", taken)
        for k, keras_layer in enumerate(made):
            keras_layer.name = base if k == 0 else _free(f"{base}_{k}", taken)
        args = [inputs if j < 0 else outs[j] for j in src]
        tensor = made[0](args) if isinstance(layer, _MERGES) else made[0](*args)
        for extra in made[1:]:  # a separate activation
            tensor = extra(tensor)
        outs.append(tensor)
    return keras.Model(inputs, outs[-1], name="duofit_graph")


def _free(name: str, taken: set[str]) -> str:
    while name in taken:
        name += "_"
    taken.add(name)
    return name


# the sequence layers' weights, in Keras' order (before any optional one is left out)
SEQUENCE_WEIGHT_NAMES: dict[type, tuple[str, ...]] = {
    Conv1DLayer: ("kernel", "bias"),
    LayerNormLayer: ("gamma", "beta"),
    EmbeddingLayer: ("embeddings",),
    PositionalEmbeddingLayer: ("embeddings",),
}
_NAMES = {
    DenseLayer: ("kernel", "bias"),
    Conv2DLayer: ("kernel", "bias"),
    **SEQUENCE_WEIGHT_NAMES,
    BatchNormLayer: ("gamma", "beta", "moving_mean", "moving_variance"),
    **RNN_WEIGHT_NAMES,
    **ATTENTION_WEIGHT_NAMES,
}


def set_weights(heads: list[keras.layers.Layer], spec: Spec, weights: dict[str, np.ndarray]) -> None:
    """Load duofit-layout arrays (already Keras' layout: no transposition)."""
    for i, layer in enumerate(spec.model.layers):
        names = _NAMES.get(type(layer))
        if names is None:
            continue
        arrays = [np.asarray(weights[f"layers.{i}.{n}"]) for n in names if f"layers.{i}.{n}" in weights]
        try:
            heads[i].set_weights(arrays)
        except ValueError as exc:
            raise BackendError(f"weights of model.layers[{i}] do not fit the model: {exc}") from None


def get_weights(heads: list[keras.layers.Layer], spec: Spec) -> dict[str, np.ndarray]:
    """Model weights as duofit-layout numpy arrays."""
    out: dict[str, np.ndarray] = {}
    for i, layer in enumerate(spec.model.layers):
        names = _NAMES.get(type(layer))
        if names is None:
            continue
        present = [n for n in names if _present(layer, n)]
        for name, arr in zip(present, heads[i].get_weights(), strict=True):
            out[f"layers.{i}.{name}"] = np.asarray(arr).copy()
    return out


# weights a layer may leave out, and the flag that keeps them
_OPTIONAL = {
    "bias": "use_bias",
    "gamma": "scale",
    "beta": "center",
    **{f"{part}_bias": "use_bias" for part in ("query", "key", "value", "output", "forward", "backward")},
}


def _present(layer: object, name: str) -> bool:
    flag = _OPTIONAL.get(name)
    return flag is None or bool(getattr(layer, flag, True))


def present_weights(layer: object) -> list[str]:
    """The names of the weights ``layer`` has, in Keras' order (``use_bias``/``scale``/``center`` honoured)."""
    return [n for n in _NAMES.get(type(layer), ()) if _present(layer, n)]
