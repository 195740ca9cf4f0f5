"""``nn`` modules -> spec layers, for the torch importer (one handler per module type).

Each handler checks that the module computes exactly what its spec layer computes (every
setting the spec cannot hold is refused, never dropped) and writes the layer's settings out,
so no framework default is taken silently. Layouts (see :mod:`.import_graph`): ``nn.Conv2d``,
pooling and ``nn.BatchNorm2d`` read channels-first images; ``nn.Conv1d`` and 1-D pooling
channels-first sequences ``(N, C, L)``; ``nn.Linear``, ``nn.LayerNorm``, the recurrent modules
and attention read the last axis as duofit does.

Settings carried over and why they are exact:

- ``nn.BatchNorm1d/2d``: ``eps``, and ``momentum`` as it is: the spec's ``batch_norm``
  momentum is torch's (``running = (1 - m) * running + m * batch``,
  ``torch/nn/modules/batchnorm.py`` ``exponential_average_factor = self.momentum``); Keras'
  is ``1 - m`` (``keras/src/layers/normalization/batch_normalization.py``: ``moving_mean *
  momentum + mean * (1 - momentum)``), which the Keras backend passes.
- ``nn.Conv1d/2d`` ``padding``: 0 is "valid"; ``"same"`` and a symmetric padding equal to
  TensorFlow's "same" for this input are "same" (torch's ``"same"`` puts an odd pixel after,
  ``torch/nn/modules/conv.py`` ``_reversed_padding_repeated_twice``, as TensorFlow does).
- ``nn.GRU`` is Keras' ``reset_after = true``; its gate order and both biases, and the
  second bias of ``nn.LSTM`` / ``nn.RNN`` (summed into Keras' one), are translated by
  :data:`duofit.backends.torch.export.PLAIN_LAYOUT`.
- initializers: each layer states torch's own default, as the spec names it, so the spec says
  what the module's type draws (the initial weights are the module's own, ``model.weights``):
  ``torch_linear`` for ``nn.Linear`` and ``nn.Conv1d/2d`` (both ``kaiming_uniform_(a=sqrt(5))``
  = ``U(+-1/sqrt(fan_in))`` and the bias alike: ``torch/nn/modules/linear.py``, ``conv.py``
  ``reset_parameters``; duofit's fan_in of a conv kernel is torch's, ``k * in_channels``),
  ``torch_rnn`` for every recurrent weight with ``unit_forget_bias = false``
  (``torch/nn/modules/rnn.py`` ``RNNBase.reset_parameters``), ``torch_embedding`` (``N(0, 1)``,
  ``torch/nn/modules/sparse.py``). The spec's attention and norm layers state no initializer.
- ``nn.Embedding`` with ``padding_idx`` is refused: torch zeroes and freezes that row's
  gradient, and duofit's ``mask_zero`` is a mask for later layers, not a frozen row.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from torch import fx, nn

from duofit.backends.torch.import_graph import (
    ATTN,
    INPUT,
    POOLED,
    RNN,
    Handler,
    Recurrent,
    Value,
    Walk,
)
from duofit.backends.torch.import_ops import activation, reshaped
from duofit.common.spec.shapes import same_padding

__all__ = ["CHANNELS_FIRST_INPUTS", "MODULES", "TOKEN_INPUTS"]

# torch's default initialization as the spec names it (see the module docstring for the sources)
_LINEAR_INIT = {"kernel_init": "torch_linear", "bias_init": "torch_linear"}
_RNN_INIT = {"kernel_init": "torch_rnn", "recurrent_init": "torch_rnn", "bias_init": "torch_rnn"}


def _channels_first(walk: Walk, node: fx.Node, v: Value, rank: int) -> None:
    if not v.channels_first or len(v.shape) != rank:
        what = "(N, C, H, W) images" if rank == 4 else "(N, C, L) sequences"
        walk.refuse(
            node,
            f"reads {list(v.shape)}, which is not channels-first here; the module needs {what}",
            "feed it the input directly, or after a permute that only moves the channels axis",
        )


def _last_axis(walk: Walk, node: fx.Node, v: Value, what: str) -> None:
    if v.channels_first:
        walk.refuse(node, f"{what} over the last axis of a channels-first tensor (not its channels)", "permute first")


def _linear(walk: Walk, node: fx.Node) -> Value:
    m, v = walk.module(node), walk.input(node)
    _last_axis(walk, node, v, "a dense layer")
    doc = {"type": "dense", "units": m.out_features, "use_bias": m.bias is not None, **_LINEAR_INIT}
    return walk.emit(node, doc, [v], weights=m, columns=v.order, fold=True)


def _padding(walk: Walk, node: fx.Node, m: nn.Module, sizes: tuple[int, ...]) -> str:
    if isinstance(m.padding, str):  # "valid" or "same" (torch: odd pixel after, as TensorFlow)
        return m.padding
    if all(p == 0 for p in m.padding):
        return "valid"
    rule = zip(sizes, m.kernel_size, m.stride, m.dilation, m.padding, strict=True)
    if all(same_padding(n, k, s, d) == (p, p) for n, k, s, d, p in rule):
        return "same"
    walk.refuse(
        node,
        f"padding={m.padding} is neither 0 ('valid') nor TensorFlow's 'same' for input {list(sizes)}",
        "use padding=0 or padding='same' (stride 1), or a padding that equals 'same' for this input",
    )


def _conv_checks(walk: Walk, node: fx.Node, m: nn.Module) -> None:
    if m.groups != 1 or m.padding_mode != "zeros":
        walk.refuse(node, f"groups={m.groups}, padding_mode={m.padding_mode!r}", "use groups=1 and zero padding")


def _conv2d(walk: Walk, node: fx.Node) -> Value:
    m, v = walk.module(node), walk.input(node)
    _channels_first(walk, node, v, 4)
    _conv_checks(walk, node, m)
    doc = {
        "type": "conv2d",
        "filters": m.out_channels,
        "kernel_size": list(m.kernel_size),
        "strides": list(m.stride),
        "padding": _padding(walk, node, m, v.shape[2:]),
        "dilation": list(m.dilation),
        "use_bias": m.bias is not None,
        **_LINEAR_INIT,
    }
    return walk.emit(node, doc, [v], weights=m, channels_first=True, fold=True)


def _conv1d(walk: Walk, node: fx.Node) -> Value:
    m, v = walk.module(node), walk.input(node)
    _channels_first(walk, node, v, 3)
    _conv_checks(walk, node, m)
    if m.dilation != (1,):
        walk.refuse(node, f"dilation={m.dilation[0]}; duofit's conv1d has none", "use dilation=1")
    doc = {
        "type": "conv1d",
        "filters": m.out_channels,
        "kernel_size": m.kernel_size[0],
        "strides": m.stride[0],
        "padding": _padding(walk, node, m, v.shape[2:]),
        "use_bias": m.bias is not None,
        **_LINEAR_INIT,
    }
    return walk.emit(node, doc, [v], weights=m, channels_first=True, fold=True)


def _tuple(x: Any, n: int) -> list[int]:
    return [int(i) for i in x] if isinstance(x, (tuple, list)) else [int(x)] * n


def _pool(walk: Walk, node: fx.Node) -> Value:
    m, v = walk.module(node), walk.input(node)
    n = 2 if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) else 1
    _channels_first(walk, node, v, n + 2)
    average = isinstance(m, (nn.AvgPool1d, nn.AvgPool2d))
    exact = (
        _tuple(m.padding, n) == [0] * n
        and not m.ceil_mode
        and (average or (_tuple(m.dilation, n) == [1] * n and not m.return_indices))
        and getattr(m, "divisor_override", None) is None
    )
    if not exact:
        walk.refuse(node, "pooling with padding, ceil_mode, dilation, indices or a divisor", "use kernel and stride")
    size, stride = _tuple(m.kernel_size, n), _tuple(m.stride if m.stride else m.kernel_size, n)
    kind = f"{'avg' if average else 'max'}_pool{n}d"
    doc = {"type": kind, "pool_size": size if n == 2 else size[0], "strides": stride if n == 2 else stride[0]}
    return walk.emit(node, {**doc, "padding": "valid"}, [v], channels_first=True)


def _adaptive(walk: Walk, node: fx.Node) -> Value:
    m, v = walk.module(node), walk.input(node)
    n = 2 if isinstance(m, nn.AdaptiveAvgPool2d) else 1
    _channels_first(walk, node, v, n + 2)
    if _tuple(m.output_size, n) != [1] * n:
        walk.refuse(node, f"output_size={m.output_size}; only 1 (a global average pool) has a spec layer")
    out = walk.emit(node, {"type": f"global_avg_pool{n}d"}, [v], channels_first=True)
    return replace(out, kind=POOLED)


def _batch_norm(walk: Walk, node: fx.Node) -> Value:
    m, v = walk.module(node), walk.input(node)
    if isinstance(m, nn.BatchNorm2d):
        _channels_first(walk, node, v, 4)
    elif len(v.shape) != 2:
        walk.refuse(node, f"BatchNorm1d on {list(v.shape)}; duofit's batch_norm of a sequence is channels-last")
    if not m.affine or not m.track_running_stats or m.momentum is None:
        walk.refuse(node, "affine=False, track_running_stats=False or momentum=None", "use the defaults")
    doc = {"type": "batch_norm", "momentum": float(m.momentum), "epsilon": float(m.eps)}
    return walk.emit(node, doc, [v], weights=m, columns=v.order, like=v)


def _layer_norm(walk: Walk, node: fx.Node) -> Value:
    m, v = walk.module(node), walk.input(node)
    _last_axis(walk, node, v, "a layer norm")
    if tuple(m.normalized_shape) != v.shape[-1:]:
        walk.refuse(node, f"normalizes over {list(m.normalized_shape)}", f"normalize the last axis ({v.shape[-1]})")
    affine = bool(m.elementwise_affine)
    doc = {"type": "layer_norm", "epsilon": float(m.eps), "scale": affine, "center": affine and m.bias is not None}
    return walk.emit(node, doc, [v], weights=m, columns=v.order, like=v)


def _dropout(walk: Walk, node: fx.Node) -> Value:
    m, v = walk.module(node), walk.input(node)
    if m.inplace and len(node.args[0].users) > 1:
        walk.refuse(node, "drops in place while other nodes read its input", "use inplace=False")
    return walk.emit(node, {"type": "dropout", "rate": float(m.p)}, [v], like=v)


def _embedding(walk: Walk, node: fx.Node) -> Value:
    m, v = walk.module(node), walk.input(node)
    if v.source != INPUT:
        walk.refuse(node, "an embedding that does not read the model input", "look the input ids up first")
    if m.padding_idx is not None:
        walk.refuse(
            node,
            f"padding_idx={m.padding_idx}: torch freezes that row (no gradient); duofit's embedding trains every "
            "row, and its mask_zero is a mask for later layers, not a frozen row (cause embedding_padding_idx)",
            "remove padding_idx (the row then trains like the others)",
        )
    if m.max_norm is not None or m.scale_grad_by_freq or m.sparse:
        walk.refuse(node, "max_norm, scale_grad_by_freq or sparse", "leave them at their defaults")
    doc = {"type": "embedding", "input_dim": m.num_embeddings, "output_dim": m.embedding_dim, "mask_zero": False}
    doc["embeddings_init"] = "torch_embedding"
    return walk.emit(node, doc, [v], weights=m)


_RECURRENT = {nn.LSTM: "lstm", nn.GRU: "gru", nn.RNN: "simple_rnn"}


def _recurrent(walk: Walk, node: fx.Node) -> Value:
    m = walk.module(node)
    if len(node.args) != 1 or node.kwargs:
        walk.refuse(node, "is given an initial state", "call it as rnn(x): duofit's recurrent layers start at zero")
    v = walk.tensor(node, node.args[0])
    if v.channels_first or len(v.shape) != 3:
        walk.refuse(node, f"reads {list(v.shape)}, not (N, steps, features)", "feed it batch-first sequences")
    if not m.batch_first or m.num_layers != 1 or getattr(m, "proj_size", 0):
        walk.refuse(
            node,
            f"batch_first={m.batch_first}, num_layers={m.num_layers}, proj_size={getattr(m, 'proj_size', 0)}",
            "use batch_first=True and one layer (stack single-layer modules for more), no projection",
        )
    kind = _RECURRENT[type(m)]
    cell: dict[str, Any] = {"type": kind, "units": m.hidden_size, "use_bias": bool(m.bias)}
    cell["activation"] = m.nonlinearity if kind == "simple_rnn" else "tanh"
    if kind != "simple_rnn":
        cell["recurrent_activation"] = "sigmoid"
    if kind == "gru":
        cell["reset_after"] = True  # torch applies the reset gate after the recurrent matmul
    if kind == "lstm":
        cell["unit_forget_bias"] = False  # torch's forget bias starts as the others do
    cell.update(_RNN_INIT)
    doc = {"type": "bidirectional", "layer": cell} if m.bidirectional else cell
    out = walk.emit(node, doc, [v], weights=m, shape=())
    listed = walk.layers[-1]  # the listed document (emit adds the name): its settings are decided later
    walk.recurrents.append(Recurrent(listed, cell if m.bidirectional else listed, bool(m.bidirectional)))
    return replace(out, kind=RNN, rnn=walk.recurrents[-1])


_ATTENTION_ARGS = ("query", "key", "value")
# keyword arguments whose value does not change the output tensor duofit keeps ([0])
_ATTENTION_FREE = ("need_weights", "average_attn_weights")


def _attention(walk: Walk, node: fx.Node) -> Value:
    m = walk.module(node)
    bound = dict(zip(_ATTENTION_ARGS, node.args, strict=False))
    bound.update({k: a for k, a in node.kwargs.items() if k in _ATTENTION_ARGS})
    extra = {k: a for k, a in node.kwargs.items() if k not in _ATTENTION_ARGS + _ATTENTION_FREE}
    if len(node.args) > 3 or len(bound) != 3 or any(a not in (None, False) for a in extra.values()):
        walk.refuse(node, f"is called with {sorted(extra) or 'extra arguments'}", "call it as attn(q, kv, kv)")
    if bound["key"] is not bound["value"]:
        walk.refuse(node, "has a key that is not its value; duofit's attention (Keras') reads key = value")
    exact = m.batch_first and m.dropout == 0 and m._qkv_same_embed_dim and m.bias_k is None and not m.add_zero_attn
    if not exact:
        walk.refuse(
            node,
            "batch_first=False, dropout, kdim/vdim, add_bias_kv or add_zero_attn",
            "use batch_first=True, dropout=0 (a Dropout after it instead) and the defaults",
        )
    query = walk.tensor(node, bound["query"])
    inputs = [query] if bound["query"] is bound["value"] else [query, walk.tensor(node, bound["value"])]
    if any(x.channels_first or len(x.shape) != 3 for x in inputs):
        walk.refuse(node, "reads tensors that are not (N, steps, features)")
    doc = {
        "type": "multi_head_attention",
        "num_heads": m.num_heads,
        "key_dim": m.head_dim,
        "use_bias": m.in_proj_bias is not None,
        "causal": False,
    }
    return replace(walk.emit(node, doc, inputs, weights=m, shape=query.shape), kind=ATTN)


def _module_activation(name: str) -> Handler:
    def handle(walk: Walk, node: fx.Node) -> Value:
        walk.input(node)  # one argument
        m = walk.module(node)
        if isinstance(m, nn.GELU) and m.approximate != "none":
            walk.refuse(node, "GELU(approximate='tanh'); duofit's gelu is the exact erf form", "use nn.GELU()")
        slope = float(m.negative_slope) if isinstance(m, nn.LeakyReLU) else None
        dim = m.dim if isinstance(m, nn.Softmax) else None
        return activation(walk, node, name, dim=dim, inplace=bool(getattr(m, "inplace", False)), slope=slope)

    return handle


def _flatten(walk: Walk, node: fx.Node) -> Value:
    if len(node.args) != 1 or node.kwargs:
        walk.refuse(node, "is called with more than one argument", "call it as module(x)")
    return reshaped(walk, node, node.args[0])  # may read an adaptive pool's (N, C, 1, 1)


def _identity(walk: Walk, node: fx.Node) -> Value:
    return replace(walk.input(node), fold=None)


MODULES: dict[type, Handler] = {
    nn.Linear: _linear,
    nn.Conv2d: _conv2d,
    nn.Conv1d: _conv1d,
    nn.MaxPool2d: _pool,
    nn.AvgPool2d: _pool,
    nn.MaxPool1d: _pool,
    nn.AvgPool1d: _pool,
    nn.AdaptiveAvgPool2d: _adaptive,
    nn.AdaptiveAvgPool1d: _adaptive,
    nn.BatchNorm1d: _batch_norm,
    nn.BatchNorm2d: _batch_norm,
    nn.LayerNorm: _layer_norm,
    nn.Dropout: _dropout,
    nn.Embedding: _embedding,
    nn.LSTM: _recurrent,
    nn.GRU: _recurrent,
    nn.RNN: _recurrent,
    nn.MultiheadAttention: _attention,
    nn.ReLU: _module_activation("relu"),
    nn.Tanh: _module_activation("tanh"),
    nn.Sigmoid: _module_activation("sigmoid"),
    nn.GELU: _module_activation("gelu"),
    nn.Softmax: _module_activation("softmax"),
    nn.LeakyReLU: _module_activation("leaky_relu"),
    nn.Flatten: _flatten,
    nn.Identity: _identity,
}

# Modules that, reading the model input, say the input is channels-first (images (N, C, H, W),
# sequences (N, C, L)); and the module that says it holds token ids.
CHANNELS_FIRST_INPUTS: tuple[type, ...] = (
    nn.Conv1d,
    nn.Conv2d,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.BatchNorm2d,
)
TOKEN_INPUTS: tuple[type, ...] = (nn.Embedding,)
