"""Initial weights of the recurrent layers, in Keras' layout, drawn once in numpy.

``kernel (features, G*units)``, ``recurrent_kernel (units, G*units)``, ``bias (G*units,)``, or
``(2, 3*units)`` for a GRU with ``reset_after`` (input row, recurrent row); ``G`` = 1, 4, 3.
A bidirectional layer stores ``forward_*`` then ``backward_*`` (the backward half from the
same stream, drawn after the forward half).

Two initializers belong to recurrent layers only:

- ``orthogonal`` (Keras' recurrent default, ``keras/src/initializers/random_initializers.py``
  ``Orthogonal``): QR of a normal draw of shape ``(max(r, c), min(r, c))``, columns multiplied by
  the signs of ``diag(R)``, transposed when ``r < c``; for ``(units, G*units)`` the whole
  matrix has orthonormal rows (not each gate block).
- ``torch_rnn`` (``torch/nn/modules/rnn.py`` ``RNNBase.reset_parameters``): every weight
  ``U(+-1/sqrt(units))`` (``units`` = hidden size, not the fan-in).

The other names use the shared sampler (:mod:`duofit.common.init` passes it in, so this
module does not import it) with Keras' fans of the stacked matrix: kernel ``(features,
G*units)``, recurrent kernel ``(units, G*units)``.

Example:
    >>> q = orthogonal(np.random.default_rng(0), (3, 12))
    >>> np.allclose(q @ q.T, np.eye(3))
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from duofit.common.spec.layers_rnn import (
    RECURRENT_LAYERS,
    BidirectionalLayer,
    GRULayer,
    LSTMLayer,
    RecurrentBase,
    RNNInitSpec,
)

__all__ = ["Sampler", "orthogonal", "rnn_inits", "rnn_weights"]

# The shared sampler: (init spec, rng, shape, fan_in, fan_out) -> array.
Sampler = Callable[[Any, np.random.Generator, tuple[int, ...], int, int], np.ndarray]
Shape = tuple[int, ...]


def orthogonal(rng: np.random.Generator, shape: tuple[int, int], gain: float = 1.0) -> np.ndarray:
    """Keras' ``Orthogonal`` recipe in numpy (orthonormal rows or columns, whichever fit)."""
    rows, cols = shape
    a = rng.normal(size=(max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))
    return gain * (q.T if rows < cols else q)


def _draw(
    init: RNNInitSpec, sample: Sampler, rng: np.random.Generator, shape: Shape, fans: tuple[int, int], units: int
) -> np.ndarray:
    if init.name == "orthogonal":
        if len(shape) != 2:
            raise ValueError("orthogonal needs a matrix")  # unreachable: biases use bias_init
        return orthogonal(rng, (shape[0], shape[1]))
    if init.name == "torch_rnn":
        return rng.uniform(-1, 1, size=shape) / math.sqrt(units)
    return sample(init, rng, shape, *fans)


def rnn_weights(
    layer: RecurrentBase, rng: np.random.Generator, features: int, sample: Sampler
) -> dict[str, np.ndarray]:
    """One recurrent layer's weights (Keras layout) from ``rng``.

    An LSTM with
    ``unit_forget_bias`` sets the forget block ``[units:2*units]`` of the bias to 1 (Keras
    ``LSTMCell.build``; the same slice is torch's forget gate).
    """
    g, h = layer.gates, layer.units
    out = {
        "kernel": _draw(layer.kernel_init, sample, rng, (features, g * h), (features, g * h), h),
        "recurrent_kernel": _draw(layer.recurrent_init, sample, rng, (h, g * h), (h, g * h), h),
    }
    if layer.use_bias:
        rows = 2 if isinstance(layer, GRULayer) and layer.reset_after else 1
        shape = (rows, g * h) if rows == 2 else (g * h,)
        bias = _draw(layer.bias_init, sample, rng, shape, (features, g * h), h)
        if isinstance(layer, LSTMLayer) and layer.unit_forget_bias:
            bias[h : 2 * h] = 1.0
        out["bias"] = bias
    return out


def rnn_inits(sample: Sampler) -> dict[type, Callable[[Any, np.random.Generator, Shape], dict[str, np.ndarray]]]:
    """``WEIGHT_INITS`` entries for the recurrent layers, drawing through ``sample``.

    Example:
        >>> from duofit.common.init import WEIGHT_INITS
        >>> w = WEIGHT_INITS[LSTMLayer](LSTMLayer(type="lstm", units=2), np.random.default_rng(0), (5, 3))
        >>> {k: v.shape for k, v in w.items()}, w["bias"].tolist()
        ({'kernel': (3, 8), 'recurrent_kernel': (2, 8), 'bias': (8,)}, [0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    """

    def single(layer: RecurrentBase, rng: np.random.Generator, shape: Shape) -> dict[str, np.ndarray]:
        return rnn_weights(layer, rng, shape[-1], sample)

    def both(layer: BidirectionalLayer, rng: np.random.Generator, shape: Shape) -> dict[str, np.ndarray]:
        out = {}
        for side in ("forward", "backward"):
            out.update({f"{side}_{k}": v for k, v in rnn_weights(layer.layer, rng, shape[-1], sample).items()})
        return out

    table: dict[type, Callable[[Any, np.random.Generator, Shape], dict[str, np.ndarray]]] = {
        cls: single for cls in RECURRENT_LAYERS
    }
    table[BidirectionalLayer] = both
    return table
