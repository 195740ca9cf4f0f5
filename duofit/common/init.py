"""Initial weights, generated once in numpy and loaded into every backend.

Weights are named ``layers.<i>.<param>`` and stored in the Keras layout (dense kernel
``[in, out]``); each backend translates the layout when it loads them.

Example:
    >>> from duofit.common.loader import load_spec
    >>> spec = load_spec({"data": {"kind": "iris"},
    ...                   "model": {"layers": [{"type": "dense", "units": 3}]},
    ...                   "loss": {"type": "categorical_crossentropy"}})
    >>> w = initial_weights(spec, 4)
    >>> {k: v.shape for k, v in w.items()}
    {'layers.0.kernel': (4, 3), 'layers.0.bias': (3,)}
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from duofit.common.errors import DataError
from duofit.common.init_attention import attention_inits
from duofit.common.init_rnn import rnn_inits
from duofit.common.spec import INITIALIZERS, BatchNormLayer, Conv2DLayer, DenseLayer, FieldProblem, InitSpec, Spec
from duofit.common.spec.layers_conv1d import Conv1DLayer, LayerNormLayer
from duofit.common.spec.layers_embedding import EmbeddingLayer, PositionalEmbeddingLayer
from duofit.common.spec.shapes import trace_shapes
from duofit.common.weightfile import read_weight_file

__all__ = ["INITIALIZERS", "WEIGHT_INITS", "initial_weights"]

Shape = tuple[int, ...]

# Keras' "uniform" initializer (RandomUniform's defaults, keras/src/initializers/random_initializers.py)
_KERAS_UNIFORM = 0.05

# Keras divides the std of its truncated normals by this constant: the std of a unit
# normal truncated to [-2, 2] (keras/src/initializers/random_initializers.py, VarianceScaling).
_TRUNC_STD = 0.87962566103423978


def _truncated_normal(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> np.ndarray:
    """Normal(0, std) resampled until inside [-2 std, 2 std] (as tf/keras truncated_normal)."""
    out = rng.normal(0.0, std, size=shape)
    bad = np.abs(out) > 2 * std
    while bad.any():
        out[bad] = rng.normal(0.0, std, size=int(bad.sum()))
        bad = np.abs(out) > 2 * std
    return out


def _sample(init: InitSpec, rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int) -> np.ndarray:
    """Draw one tensor; fans follow Keras/torch (dense: fan_in = inputs, fan_out = units)."""
    name = init.name
    if name == "zeros":
        return np.zeros(shape)
    if name == "ones":
        return np.ones(shape)
    if name == "constant":
        return np.full(shape, float(init.value))
    if name in ("glorot_uniform", "xavier_uniform"):
        return rng.uniform(-1, 1, size=shape) * math.sqrt(6.0 / (fan_in + fan_out))
    if name == "glorot_normal":
        return _truncated_normal(rng, shape, math.sqrt(2.0 / (fan_in + fan_out)) / _TRUNC_STD)
    if name == "xavier_normal":
        return rng.normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)), size=shape)
    if name in ("he_uniform", "kaiming_uniform"):
        return rng.uniform(-1, 1, size=shape) * math.sqrt(6.0 / fan_in)
    if name == "he_normal":
        return _truncated_normal(rng, shape, math.sqrt(2.0 / fan_in) / _TRUNC_STD)
    if name == "kaiming_normal":
        return rng.normal(0.0, math.sqrt(2.0 / fan_in), size=shape)
    if name == "lecun_uniform":
        return rng.uniform(-1, 1, size=shape) * math.sqrt(3.0 / fan_in)
    if name == "lecun_normal":
        return _truncated_normal(rng, shape, math.sqrt(1.0 / fan_in) / _TRUNC_STD)
    if name == "torch_linear":
        # nn.Linear.reset_parameters: kaiming_uniform_(a=sqrt(5)) == U(+-1/sqrt(fan_in)),
        # bias U(+-1/sqrt(fan_in)) as well.
        return rng.uniform(-1, 1, size=shape) / math.sqrt(fan_in)
    if name == "uniform":
        return rng.uniform(-_KERAS_UNIFORM, _KERAS_UNIFORM, size=shape)
    if name == "torch_embedding":
        # nn.Embedding.reset_parameters: init.normal_(weight) == N(0, 1) (torch/nn/modules/sparse.py)
        return rng.normal(0.0, 1.0, size=shape)
    raise ValueError(f"unknown initializer {name!r}")  # unreachable: the spec validates names


def _dense(layer: DenseLayer, rng: np.random.Generator, shape: Shape) -> dict[str, np.ndarray]:
    fan_in, fan_out = shape[-1], layer.units
    out = {"kernel": _sample(layer.kernel_init, rng, (fan_in, fan_out), fan_in, fan_out)}
    if layer.use_bias:
        out["bias"] = _sample(layer.bias_init, rng, (fan_out,), fan_in, fan_out)
    return out


def _conv(layer: Conv2DLayer, rng: np.random.Generator, shape: Shape) -> dict[str, np.ndarray]:
    kh, kw = layer.kernel_size
    c_in = shape[-1]
    fan_in, fan_out = kh * kw * c_in, kh * kw * layer.filters
    out = {"kernel": _sample(layer.kernel_init, rng, (kh, kw, c_in, layer.filters), fan_in, fan_out)}
    if layer.use_bias:
        out["bias"] = _sample(layer.bias_init, rng, (layer.filters,), fan_in, fan_out)
    return out


def _conv1d(layer: Conv1DLayer, rng: np.random.Generator, shape: Shape) -> dict[str, np.ndarray]:
    k, c_in = layer.kernel_size, shape[-1]
    fan_in, fan_out = k * c_in, k * layer.filters
    out = {"kernel": _sample(layer.kernel_init, rng, (k, c_in, layer.filters), fan_in, fan_out)}
    if layer.use_bias:
        out["bias"] = _sample(layer.bias_init, rng, (layer.filters,), fan_in, fan_out)
    return out


def _layer_norm(layer: LayerNormLayer, rng: np.random.Generator, shape: Shape) -> dict[str, np.ndarray]:
    out = {"gamma": np.ones(shape[-1])} if layer.scale else {}
    if layer.center:
        out["beta"] = np.zeros(shape[-1])
    return out


def _embedding(layer: EmbeddingLayer, rng: np.random.Generator, shape: Shape) -> dict[str, np.ndarray]:
    # fans as Keras computes them for a 2-D table: (rows, columns)
    size = (layer.input_dim, layer.output_dim)
    return {"embeddings": _sample(layer.embeddings_init, rng, size, *size)}


def _positional(layer: PositionalEmbeddingLayer, rng: np.random.Generator, shape: Shape) -> dict[str, np.ndarray]:
    size = (layer.max_len, shape[-1])
    return {"embeddings": _sample(layer.embeddings_init, rng, size, *size)}


def _batch_norm(layer: BatchNormLayer, rng: np.random.Generator, shape: Shape) -> dict[str, np.ndarray]:
    width = shape[-1]  # features, or channels of an image
    return {
        "gamma": np.ones(width),
        "beta": np.zeros(width),
        "moving_mean": np.zeros(width),
        "moving_variance": np.ones(width),
    }


# Layer type -> its weights (name -> array, Keras layout) from its own stream and its input shape.
# Layers without weights (activation, dropout, flatten, pools, add, concatenate, reshape) have no entry.
WEIGHT_INITS: dict[type, Callable[[Any, np.random.Generator, Shape], dict[str, np.ndarray]]] = {
    DenseLayer: _dense,
    Conv2DLayer: _conv,
    BatchNormLayer: _batch_norm,
    Conv1DLayer: _conv1d,
    LayerNormLayer: _layer_norm,
    EmbeddingLayer: _embedding,
    PositionalEmbeddingLayer: _positional,
    **rnn_inits(_sample),
    **attention_inits(_sample),
}


def initial_weights(spec: Spec, input_shape: int | tuple[int, ...]) -> dict[str, np.ndarray]:
    """Generate every layer's initial weights (float64) from ``train.seed``, or read ``model.weights``.

    Each layer draws from its own stream ``default_rng([seed, layer_index])`` so that
    editing one layer leaves the others' weights unchanged. Fans follow Keras and torch:
    dense ``fan_in = inputs``; conv ``fan_in = kh * kw * in_channels``,
    ``fan_out = kh * kw * filters``. A layer's input shape follows the layer graph (the
    shape of the first layer it reads).

    Args:
        spec: The spec.
        input_shape: Input width (flat data) or one sample's shape, e.g. ``(height, width, channels)``.

    Returns:
        Ordered mapping ``layers.<i>.<name>`` -> array, in the Keras layout (dense kernel
        ``[in, out]``, conv kernel ``[kh, kw, in, out]``).

    Raises:
        DataError: the layers do not fit the data's shape (path ``model.layers[i]...``), or
            the weight file does not fit the model (path ``model.weights``).
    """
    shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    try:
        traced = trace_shapes(spec.model.layers, shape)
    except FieldProblem as exc:  # a width known only now, with the data
        raise DataError(f"{exc.path}: {exc} (data: {list(shape)} per sample)", path=exc.path) from None
    if spec.model.weights:  # an imported model's own weights: the names and shapes a draw would give
        drawn = _drawn(spec, traced)
        return read_weight_file(spec.model.weights, {k: v.shape for k, v in drawn.items()})
    return _drawn(spec, traced)


def _drawn(spec: Spec, traced: list[Any]) -> dict[str, np.ndarray]:
    """Every layer's weights drawn from its own stream of ``train.seed``."""
    weights: dict[str, np.ndarray] = {}
    for i, (layer, (ins, _)) in enumerate(zip(spec.model.layers, traced, strict=True)):
        make = WEIGHT_INITS.get(type(layer))
        if make is None:
            continue
        rng = np.random.default_rng([spec.train.seed, i])
        first = ins[0]
        assert first is not None  # the data's shape is known here
        for name, arr in make(layer, rng, first).items():
            weights[f"layers.{i}.{name}"] = arr
    return weights
