"""Numpy reference forward of the recurrent layers (Keras' formulas), and a model forward using it.

The formulas follow ``keras/src/layers/rnn/simple_rnn.py``, ``lstm.py`` and ``gru.py`` (the
cells' ``call``), on duofit's (Keras) weight layout.
"""

from __future__ import annotations

import numpy as np

from duofit.common.spec import Spec
from duofit.common.spec.layers_rnn import BidirectionalLayer, GRULayer, LSTMLayer, RecurrentBase
from tests import reference


def act(name: str, z: np.ndarray) -> np.ndarray:
    """The recurrent activations; Keras 3's hard_sigmoid is relu6(x + 3) / 6."""
    if name == "hard_sigmoid":
        return np.clip(z / 6 + 0.5, 0, 1)
    return reference.activation(name, z)


def recurrent(layer: RecurrentBase, w: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """One recurrent layer on ``x (batch, steps, features)``: every step's output, or the last."""
    n, steps, _ = x.shape
    units = layer.units
    k, r = w["kernel"], w["recurrent_kernel"]
    b = w.get("bias", np.zeros((2, k.shape[1]) if isinstance(layer, GRULayer) and layer.reset_after else k.shape[1]))
    h, c = np.zeros((n, units)), np.zeros((n, units))
    outs = []
    for t in range(steps):
        xt = x[:, t]
        if isinstance(layer, LSTMLayer):
            z = xt @ k + h @ r + b
            i, f, g, o = (z[:, j * units : (j + 1) * units] for j in range(4))
            ra = layer.recurrent_activation
            c = act(ra, f) * c + act(ra, i) * act(layer.activation, g)
            h = act(ra, o) * act(layer.activation, c)
        elif isinstance(layer, GRULayer):
            h = _gru_step(layer, xt, h, k, r, b)
        else:
            h = act(layer.activation, xt @ k + b + h @ r)
        outs.append(h)
    return np.stack(outs, axis=1) if layer.return_sequences else h


def _gru_step(
    layer: GRULayer, xt: np.ndarray, h: np.ndarray, k: np.ndarray, r: np.ndarray, b: np.ndarray
) -> np.ndarray:
    u = layer.units
    ra = layer.recurrent_activation
    if layer.reset_after:
        mx, mi = xt @ k + b[0], h @ r + b[1]
        z = act(ra, mx[:, :u] + mi[:, :u])
        rr = act(ra, mx[:, u : 2 * u] + mi[:, u : 2 * u])
        hh = act(layer.activation, mx[:, 2 * u :] + rr * mi[:, 2 * u :])
    else:
        mx = xt @ k + b
        z = act(ra, mx[:, :u] + h @ r[:, :u])
        rr = act(ra, mx[:, u : 2 * u] + h @ r[:, u : 2 * u])
        hh = act(layer.activation, mx[:, 2 * u :] + (rr * h) @ r[:, 2 * u :])
    return z * h + (1 - z) * hh


def bidirectional(layer: BidirectionalLayer, w: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Forward layer on ``x``, backward layer on reversed ``x`` (its sequence re-reversed), merged."""
    ahead = recurrent(layer.layer, {k[8:]: v for k, v in w.items() if k.startswith("forward_")}, x)
    back = recurrent(layer.layer, {k[9:]: v for k, v in w.items() if k.startswith("backward_")}, x[:, ::-1])
    if layer.layer.return_sequences:
        back = back[:, ::-1]
    return np.concatenate([ahead, back], axis=-1) if layer.merge == "concat" else ahead + back


def forward(spec: Spec, weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Inference forward of a model with recurrent layers (the others through ``tests.reference``)."""
    outs: list[np.ndarray] = []
    for i, (layer, src) in enumerate(zip(spec.model.layers, spec.model.sources, strict=True)):
        hs = [x.astype(np.float64) if j < 0 else outs[j] for j in src]
        own = {k.split(".", 2)[2]: v for k, v in weights.items() if k.startswith(f"layers.{i}.")}
        if isinstance(layer, BidirectionalLayer):
            outs.append(bidirectional(layer, own, hs[0]))
        elif isinstance(layer, RecurrentBase):
            outs.append(recurrent(layer, own, hs[0]))
        else:
            outs.append(reference._layer(layer, i, weights, hs))
    return outs[-1]
