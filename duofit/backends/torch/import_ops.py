"""Functions and tensor methods in a traced forward -> spec layers (tables for :class:`.import_graph.Walk`).

- activations (``torch.relu``, ``F.gelu``, ``x.softmax(-1)`` ...): folded into the dense or
  conv layer they read when that layer's output has no other reader (the same computation:
  ``nn.Sequential(nn.Linear, nn.ReLU)`` is ``dense(activation = "relu")``), else an
  ``activation`` layer; softmax only over the features/channels, gelu only exact (erf);
- ``flatten`` / ``view`` / ``reshape`` / ``squeeze`` / ``unsqueeze``: checked on the sample
  shapes to keep the batch axis; no layer when the shape does not change, ``flatten`` (with the
  column order noted) to ``(N, features)``, ``reshape`` to ``(N, steps, features)``;
- ``permute`` / ``transpose`` that only move the channels axis: absorbed (the layout flag);
- ``+`` / ``torch.add`` -> ``add``, ``torch.cat`` -> ``concatenate`` (its axis in the spec's
  channels-last numbering), ``x.mean(dim=(2, 3))`` -> ``global_avg_pool2d``;
- ``getitem``: unpacking a recurrent module's ``(output, h_n)``, its last step
  (``output[:, -1]``, ``h_n[-1]``, both directions of ``h_n`` joined by ``cat`` or ``+``), and
  attention's ``[0]``; ``x.size(0)`` / ``x.shape[0]`` for a ``view``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import fx
from torch.nn import functional as F

from duofit.backends.torch.import_graph import (
    ATTN,
    BATCH,
    POOLED,
    RNN,
    RNN_DIR,
    RNN_H,
    RNN_SEQ,
    RNN_STATES,
    SHAPE,
    SIZE,
    Handler,
    Value,
    Walk,
)

__all__ = ["FUNCTIONS", "METHODS", "activation", "reshaped"]

# ---- activations -------------------------------------------------------------------------

# Activations a dense/conv layer can hold itself (leaky_relu's slope would be the backend default)
_FOLDABLE = ("relu", "sigmoid", "tanh", "softmax", "gelu")


def activation(
    walk: Walk, node: fx.Node, name: str, *, dim: Any = None, inplace: bool = False, slope: float | None = None
) -> Value:
    """An activation: folded into the dense/conv it reads when that is the same computation, else a layer."""
    x = node.args[0] if node.args else node.kwargs.get("input")
    v = walk.tensor(node, x)
    if inplace and isinstance(x, fx.Node) and len(x.users) > 1:
        walk.refuse(node, "changes its input in place while other nodes read it too", "use inplace=False")
    if name == "softmax":
        axis = 1 if v.channels_first else len(v.shape) - 1
        if not isinstance(dim, int) or dim % len(v.shape) != axis:
            walk.refuse(
                node,
                f"softmax over dim={dim!r}; duofit's softmax is over the features/channels (dim {axis} here)",
                f"give dim={axis if v.channels_first else -1}",
            )
    if name in _FOLDABLE and v.fold is not None and v.fold.get("activation") is None:
        v.fold["activation"] = name  # e.g. nn.Sequential(nn.Linear, nn.ReLU) == dense(activation = "relu")
        return replace(v, fold=None)
    doc: dict[str, Any] = {"type": "activation", "activation": name}
    if slope is not None:
        doc["negative_slope"] = slope
    return walk.emit(node, doc, [v], like=v)


def _arg(node: fx.Node, i: int, name: str, default: Any = None) -> Any:
    return node.args[i] if len(node.args) > i else node.kwargs.get(name, default)


def _plain(name: str) -> Handler:
    def handle(walk: Walk, node: fx.Node) -> Value:
        return activation(walk, node, name, inplace=bool(_arg(node, 1, "inplace", False)))

    return handle


def _softmax(walk: Walk, node: fx.Node) -> Value:
    if _arg(node, 3 if node.target is F.softmax else 2, "dtype") is not None:  # F.softmax(x, dim, _stacklevel, dtype)
        walk.refuse(node, "casts inside softmax (dtype=...)", "leave dtype out")
    return activation(walk, node, "softmax", dim=_arg(node, 1, "dim"))


def _gelu(walk: Walk, node: fx.Node) -> Value:
    if _arg(node, 1, "approximate", "none") != "none":
        walk.refuse(node, "gelu with approximate='tanh'; duofit's gelu is the exact erf form", "use approximate='none'")
    return activation(walk, node, "gelu")


def _leaky(walk: Walk, node: fx.Node) -> Value:
    slope = float(_arg(node, 1, "negative_slope", 0.01))
    return activation(walk, node, "leaky_relu", slope=slope, inplace=bool(_arg(node, 2, "inplace", False)))


# ---- shapes: flatten, view, reshape, permute -----------------------------------------------


def _shape_args(node: fx.Node) -> list[Any]:
    rest = list(node.args[1:]) or list(node.kwargs.get("shape", node.kwargs.get("size", ())))
    return list(rest[0]) if len(rest) == 1 and isinstance(rest[0], (tuple, list)) else rest


def _batch_first_arg(walk: Walk, node: fx.Node) -> None:
    """``view`` / ``reshape``: the batch axis must be ``x.size(0)`` / ``x.shape[0]`` or ``-1``."""
    dims = _shape_args(node)
    first = dims[0] if dims else None
    if isinstance(first, fx.Node) and walk.values[first].kind == BATCH:
        return
    if first == -1 and all(isinstance(d, int) and d > 0 for d in dims[1:]):
        return
    walk.refuse(
        node,
        f"reshapes to {dims!r}, which does not keep the batch axis for every batch size",
        "use x.view(x.size(0), ...) or x.view(-1, <per-sample sizes>)",
    )


def reshaped(walk: Walk, node: fx.Node, x: Any) -> Value:
    """A per-sample reshape of ``x``: no layer, a ``flatten`` or a ``reshape`` (module docstring)."""
    v = walk.value(node, x)
    out, ins = walk.shape(node), v.shape
    if not ins or out[0] != ins[0] or math.prod(out[1:]) != math.prod(ins[1:]):
        walk.refuse(node, f"reshapes {list(ins)} to {list(out)}, which changes the batch axis", "keep axis 0")
    if v.kind == POOLED:
        if len(out) != 2:
            walk.refuse(node, f"reshapes a global average pool's output to {list(out)}", "flatten it to (N, C)")
        return Value(v.source, out)
    v = walk.tensor(node, x)
    if out == ins:
        return replace(v, fold=None)
    if v.order is not None:
        walk.refuse(node, "reshapes features flattened from a channels-first tensor", "reshape before flattening")
    if len(out) == 2:  # a flatten; of a channels-first value: duofit flattens channels-last
        order = None
        if v.channels_first:
            order = np.moveaxis(np.arange(math.prod(ins[1:])).reshape(ins[1:]), 0, -1).ravel()
            walk.notes.append(
                f"{node.name}: torch flattens (C, ...) and duofit (..., C): the next nn.Linear's columns are permuted"
            )
        return replace(walk.emit(node, {"type": "flatten"}, [v]), order=order)
    if not v.channels_first and len(out) == 3:
        return walk.emit(node, {"type": "reshape", "target_shape": list(out[1:])}, [v])
    walk.refuse(
        node,
        f"reshapes {list(ins)} to {list(out)}: duofit reshapes in channels-last order, so an image or a "
        "channels-first tensor reshaped in torch's order has no spec layer",
        "reshape to (N, features) or (N, steps, features)",
    )


def _flatten(walk: Walk, node: fx.Node) -> Value:
    return reshaped(walk, node, node.args[0])


def _view(walk: Walk, node: fx.Node) -> Value:
    _batch_first_arg(walk, node)
    return reshaped(walk, node, node.args[0])


def _squeeze(walk: Walk, node: fx.Node) -> Value:
    dim = _arg(node, 1, "dim")
    v = walk.value(node, node.args[0])
    if v.kind == RNN_H and v.rnn and not v.rnn.bidirectional and dim == 0 and str(node.target) == "squeeze":
        return walk.recurrent_output(node, v, sequences=False, shape=walk.shape(node))  # h_n (1, N, H) -> (N, H)
    if not isinstance(dim, int) or dim == 0:
        walk.refuse(node, f"squeezes/unsqueezes dim={dim!r}", "name one axis other than the batch axis 0")
    return reshaped(walk, node, node.args[0])


def _permutation(walk: Walk, node: fx.Node, rank: int) -> tuple[int, ...]:
    if str(node.target) == "transpose" or node.target is torch.transpose:
        a, b = (_arg(node, 1, "dim0") % rank, _arg(node, 2, "dim1") % rank)
        perm = list(range(rank))
        perm[a], perm[b] = b, a
        return tuple(perm)
    dims = _shape_args(node)
    if not all(isinstance(d, int) for d in dims) or len(dims) != rank:
        walk.refuse(node, f"permutes with dims {dims!r}", "give every axis as an int")
    return tuple(d % rank for d in dims)


# (rank, channels_first before) -> the one permutation that moves only the channels axis
_CHANNEL_MOVES = {(3, False): (0, 2, 1), (3, True): (0, 2, 1), (4, False): (0, 3, 1, 2), (4, True): (0, 2, 3, 1)}


def _permute(walk: Walk, node: fx.Node) -> Value:
    v = walk.tensor(node, node.args[0])
    perm = _permutation(walk, node, len(v.shape))
    if perm == tuple(range(len(v.shape))):
        return replace(v, fold=None)
    if _CHANNEL_MOVES.get((len(v.shape), v.channels_first)) != perm:
        walk.refuse(
            node,
            f"permutes axes {perm}: duofit has no permute layer; only moving the channels axis between last and "
            "first is absorbed (the spec is channels-last, torch's convolutions channels-first)",
            "permute only (0, 2, 1) / (0, 3, 1, 2) / (0, 2, 3, 1) around convolutions",
        )
    walk.notes.append(f"{node.name}: the permute only moves the channels axis; absorbed (the spec is channels-last)")
    return replace(v, shape=walk.shape(node), channels_first=not v.channels_first, fold=None)


def _identity(walk: Walk, node: fx.Node) -> Value:
    return replace(walk.tensor(node, node.args[0]), fold=None)


# ---- sizes --------------------------------------------------------------------------------


def _size(walk: Walk, node: fx.Node) -> Value:
    dim = _arg(node, 1, "dim")
    return Value("", kind=SHAPE if dim is None else BATCH if dim == 0 else SIZE)


def _getattr(walk: Walk, node: fx.Node) -> Value:
    if node.args[1] != "shape":
        walk.refuse(node, f"reads the tensor attribute {node.args[1]!r}", "only x.shape[0] / x.size(0) are read")
    walk.value(node, node.args[0])
    return Value("", kind=SHAPE)


# ---- getitem: unpacking tuples, the last step, h_n -----------------------------------------

_LAST_STEP = ((slice(None), -1), (slice(None), -1, slice(None)))


def _getitem(walk: Walk, node: fx.Node) -> Value:
    container, key = node.args
    v = walk.value(node, container)
    if v.kind == SHAPE and isinstance(key, int):
        return Value("", kind=BATCH if key == 0 else SIZE)
    if v.kind in (RNN, RNN_STATES, ATTN) and key in (0, 1):
        parts = {
            RNN: (RNN_SEQ, RNN_STATES if v.rnn and v.rnn.cell["type"] == "lstm" else RNN_H),
            RNN_STATES: (RNN_H, ""),
        }
        if v.kind == ATTN:
            if key == 1:
                walk.refuse(node, "reads the attention weights", "use only attn(q, k, v)[0]")
            return Value(v.source, walk.shape(node))
        kind = parts[v.kind][key]
        if not kind:
            walk.refuse(node, "reads an LSTM's cell state c_n, which no spec layer outputs", "use h_n or the output")
        return replace(v, kind=kind, shape=() if kind == RNN_STATES else walk.shape(node))
    if v.kind == RNN_SEQ and key in _LAST_STEP and v.rnn and not v.rnn.bidirectional:
        return walk.recurrent_output(node, v, sequences=False, shape=walk.shape(node))
    if v.kind == RNN_H and isinstance(key, int) and v.rnn:
        if not v.rnn.bidirectional and key in (0, -1):
            return walk.recurrent_output(node, v, sequences=False, shape=walk.shape(node))
        if v.rnn.bidirectional and key in (0, 1, -2, -1):
            return replace(v, kind=RNN_DIR, direction=key % 2, shape=walk.shape(node))
    walk.refuse(
        node,
        f"indexes with {key!r}; duofit has no slicing layer",
        "the last step of a one-direction recurrent module is output[:, -1] or h_n[-1]; of a bidirectional one "
        "torch.cat([h_n[0], h_n[1]], dim=1) (its output[:, -1] is not the backward direction's last step)",
    )


# ---- merges ------------------------------------------------------------------------------


def _directions(walk: Walk, node: fx.Node, args: Sequence[Any], merge: str) -> Value | None:
    """Both directions of a bidirectional module's ``h_n`` joined: its last-step output."""
    vals = [walk.values.get(a) if isinstance(a, fx.Node) else None for a in args]
    if len(vals) == 2 and all(v is not None and v.kind == RNN_DIR for v in vals):
        first, second = vals
        assert first is not None and second is not None
        if first.rnn is second.rnn and (first.direction, second.direction) == (0, 1):
            return walk.recurrent_output(node, first, sequences=False, shape=walk.shape(node), merge=merge)
    return None


def _add(walk: Walk, node: fx.Node) -> Value:
    if len(node.args) != 2 or _arg(node, 2, "alpha", 1) != 1:
        walk.refuse(node, "adds with alpha or more than two arguments", "use a + b")
    joined = _directions(walk, node, node.args, "sum")
    if joined is not None:
        return joined
    a, b = (walk.tensor(node, x) for x in node.args)
    if a.shape != b.shape or a.channels_first != b.channels_first or not _same_order(a, b):
        walk.refuse(node, f"adds tensors of shapes {list(a.shape)} and {list(b.shape)}", "add equal shapes only")
    return walk.emit(node, {"type": "add"}, [a, b], like=a)


def _same_order(a: Value, b: Value) -> bool:
    if a.order is None or b.order is None:
        return a.order is None and b.order is None
    return bool(np.array_equal(a.order, b.order))


def _cat(walk: Walk, node: fx.Node) -> Value:
    tensors, dim = _arg(node, 0, "tensors"), _arg(node, 1, "dim", 0)
    joined = _directions(walk, node, tensors, "concat") if dim in (1, -1) else None
    if joined is not None:
        return joined
    vals = [walk.tensor(node, t) for t in tensors]
    rank = len(vals[0].shape)
    if any(v.channels_first != vals[0].channels_first or len(v.shape) != rank or v.order is not None for v in vals):
        walk.refuse(node, "joins tensors of different layouts or ranks", "concatenate tensors of one kind")
    d = dim % rank
    if d == 0:
        walk.refuse(node, "concatenates along the batch axis", "use dim=-1 (features/channels)")
    # torch's axis of a channels-first value -> the spec's channels-last axis (batch = 0 in both)
    axis = {1: rank - 1, **{k: k - 1 for k in range(2, rank)}}[d] if vals[0].channels_first else d
    return walk.emit(node, {"type": "concatenate", "axis": axis}, vals, channels_first=vals[0].channels_first)


# ---- global average pooling as a mean -------------------------------------------------------


def _mean(walk: Walk, node: fx.Node) -> Value:
    v = walk.tensor(node, node.args[0])
    dims, rank = _arg(node, 1, "dim"), len(v.shape)
    if _arg(node, 2, "keepdim", False) or _arg(node, 3, "dtype") is not None or dims is None:
        walk.refuse(node, "a mean with keepdim, dtype or over every axis", "x.mean(dim=(2, 3)) pools an image")
    axes = {d % rank for d in (dims if isinstance(dims, (tuple, list)) else (dims,))}
    spatial = set(range(2, rank)) if v.channels_first else set(range(1, rank - 1))
    if axes != spatial or rank not in (3, 4):
        walk.refuse(node, f"a mean over axes {sorted(axes)}; only the spatial/step axes {sorted(spatial)} pool")
    kind = "global_avg_pool2d" if rank == 4 else "global_avg_pool1d"
    return walk.emit(node, {"type": kind}, [v])


FUNCTIONS: dict[Any, Handler] = {
    torch.relu: _plain("relu"),
    F.relu: _plain("relu"),
    torch.tanh: _plain("tanh"),
    F.tanh: _plain("tanh"),
    torch.sigmoid: _plain("sigmoid"),
    F.sigmoid: _plain("sigmoid"),
    F.gelu: _gelu,
    torch.softmax: _softmax,
    F.softmax: _softmax,
    F.leaky_relu: _leaky,
    operator.add: _add,
    torch.add: _add,
    torch.cat: _cat,
    torch.concat: _cat,
    torch.concatenate: _cat,
    torch.flatten: _flatten,
    torch.reshape: _view,
    torch.squeeze: _squeeze,
    torch.unsqueeze: _squeeze,
    torch.permute: _permute,
    torch.transpose: _permute,
    torch.mean: _mean,
    operator.getitem: _getitem,
    getattr: _getattr,
}

METHODS: dict[str, Handler] = {
    "relu": _plain("relu"),
    "tanh": _plain("tanh"),
    "sigmoid": _plain("sigmoid"),
    "softmax": _softmax,
    "add": _add,
    "flatten": _flatten,
    "view": _view,
    "reshape": _view,
    "squeeze": _squeeze,
    "unsqueeze": _squeeze,
    "permute": _permute,
    "transpose": _permute,
    "contiguous": _identity,
    "mean": _mean,
    "size": _size,
}
