"""Spec layers -> the PyTorch source lines of an exported training script, one table entry per layer type.

Each entry of :data:`LAYER_CODE` turns one spec layer (at its place in the layer graph, with its
traced input shapes) into :class:`LayerCode`: the ``__init__`` lines of the script's ``Net``
(``self.dense_0 = nn.Linear(2, 10)``), the ``forward`` lines (``x = torch.relu(self.dense_0(x))``)
and the lines that copy duofit's initial weights (Keras' layout) into the stock module. The
translations are those of duofit's torch backend (``duofit/backends/torch/layers.py``,
``sequence.py``, ``rnn.py``, ``attention.py``), so the script computes what ``duofit run`` does:

- images are NHWC in duofit's data and NCHW in torch: the script permutes the data once, and
  ``flatten`` goes back to channels-last so the next dense kernel keeps Keras' row order;
- sequences stay ``(N, steps, features)``; 1-D convolution and pooling transpose to ``(N, C, L)``;
- TensorFlow's ``"same"`` padding puts an odd pixel after: an explicit ``F.pad`` where it is asymmetric;
- ``nn.LSTM``/``nn.RNN`` add a second bias that Keras lacks: it is zero and frozen; ``nn.GRU``
  orders its gates (r, z, n) where Keras stacks (z, r, h);
- attention is an explicit module with Keras' math (see :data:`MHA_CLASS` for why not
  ``nn.MultiheadAttention``).

Example:
    >>> from duofit.common.spec.layers import DenseLayer
    >>> code = layer_code(DenseLayer(type="dense", units=10, activation="relu"), 0, ["x"], "x", [(2,)], False)
    >>> code.init, code.forward
    (['self.dense_0 = nn.Linear(2, 10)'], ['x = torch.relu(self.dense_0(x))'])
"""

from __future__ import annotations

from collections.abc import Callable

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
)
from duofit.common.spec.layers import AddLayer, ConcatenateLayer, LayerBase, ReshapeLayer
from duofit.common.spec.layers_attention import MultiHeadAttentionLayer
from duofit.common.spec.layers_conv1d import (
    AvgPool1DLayer,
    Conv1DLayer,
    GlobalAvgPool1DLayer,
    GlobalMaxPool1DLayer,
    LayerNormLayer,
    MaxPool1DLayer,
)
from duofit.common.spec.layers_embedding import EmbeddingLayer, PositionalEmbeddingLayer
from duofit.common.spec.layers_rnn import BidirectionalLayer, GRULayer, LSTMLayer, SimpleRNNLayer
from duofit.common.spec.shapes import same_padding
from duofit.porting.codegen import refuse_layer_type
from duofit.porting.torch_code_seq import MHA_CLASS, attention_code, recurrent_code
from duofit.porting.torch_site import LayerCode, Shape, Site
from duofit.porting.torch_site import act as _act
from duofit.porting.torch_site import refuse as _refuse
from duofit.porting.torch_site import weight as _w

__all__ = ["LAYER_CODE", "MHA_CLASS", "LayerCode", "Site", "layer_code"]


def _weighted(site: Site, module: str, args: list[str], forward: list[str], layouts: str, kernel: str) -> LayerCode:
    """A dense/conv layer: ``module(*args)`` (``bias=False`` added without a bias), ``forward``, its weights loaded.

    ``layouts`` says how Keras and torch store the kernel (a comment in the script); ``kernel``
    rearranges Keras' array into torch's (``"{}.T"``).
    """
    bias = [] if site.layer.use_bias else ["bias=False"]
    load = [f"# Keras stores {layouts}", f"model.{site.attr}.weight.copy_({_w(site, 'kernel', kernel)})"]
    if site.layer.use_bias:
        load.append(f"model.{site.attr}.bias.copy_({_w(site, 'bias')})")
    init = [f"self.{site.attr} = {module}({', '.join([*args, *bias])})"]
    return LayerCode(init=init, forward=forward, load=load)


def _valid_pool(site: Site) -> None:
    """Refuse 'same' pooling: TensorFlow pads asymmetrically, which torch's pooling modules cannot."""
    if site.layer.padding == "same":
        raise _refuse(site, "padding", "'same' pooling (TensorFlow's asymmetric padding)", "use padding = 'valid'")


def _dense(site: Site) -> LayerCode:
    layer: DenseLayer = site.layer
    forward = [f"{site.out} = {_act(f'self.{site.attr}({site.ins[0]})', layer.activation, 1)}"]
    layouts = "a dense kernel as [in, out]; nn.Linear.weight is [out, in]: transposed"
    return _weighted(site, "nn.Linear", [str(site.shapes[0][-1]), str(layer.units)], forward, layouts, "{}.T")


def _conv2d(site: Site) -> LayerCode:
    layer: Conv2DLayer = site.layer
    shape = site.shapes[0]
    (top, bottom), (left, right) = (
        same_padding(n, k, st, d) if layer.padding == "same" else (0, 0)
        for n, k, st, d in zip(shape[:2], layer.kernel_size, layer.strides, layer.dilation, strict=True)
    )
    symmetric = top == bottom and left == right
    args = [str(shape[-1]), str(layer.filters), f"kernel_size={tuple(layer.kernel_size)}"]
    if tuple(layer.strides) != (1, 1):
        args.append(f"stride={tuple(layer.strides)}")
    if symmetric and (top or left):
        args.append(f"padding={(top, left)}")
    if tuple(layer.dilation) != (1, 1):
        args.append(f"dilation={tuple(layer.dilation)}")
    forward = []
    src = site.ins[0]
    if not symmetric:
        forward.append("# TensorFlow's 'same' padding: the odd row/column of zeros goes bottom/right")
        forward.append(f"{site.out} = F.pad({src}, {(left, right, top, bottom)})")
        src = site.out
    forward.append(f"{site.out} = {_act(f'self.{site.attr}({src})', layer.activation, 3)}")
    layouts = "a conv kernel as [kh, kw, in, out]; nn.Conv2d.weight is [out, in, kh, kw]"
    return _weighted(site, "nn.Conv2d", args, forward, layouts, "{}.transpose(3, 2, 0, 1)")


def _pool2d(site: Site) -> LayerCode:
    layer: MaxPool2DLayer = site.layer
    _valid_pool(site)
    cls = "nn.AvgPool2d" if isinstance(layer, AvgPool2DLayer) else "nn.MaxPool2d"
    stride = tuple(layer.strides or layer.pool_size)
    return LayerCode(
        init=[f"self.{site.attr} = {cls}(kernel_size={tuple(layer.pool_size)}, stride={stride})"],
        forward=[f"{site.out} = self.{site.attr}({site.ins[0]})"],
    )


def _conv1d(site: Site) -> LayerCode:
    layer: Conv1DLayer = site.layer
    steps, channels = site.shapes[0]
    pad = same_padding(steps, layer.kernel_size, layer.strides, 1) if layer.padding == "same" else (0, 0)
    args = [str(channels), str(layer.filters), f"kernel_size={layer.kernel_size}"]
    if layer.strides != 1:
        args.append(f"stride={layer.strides}")
    if pad[0] == pad[1] and pad[0]:
        args.append(f"padding={pad[0]}")
    forward = [f"{site.out} = {site.ins[0]}.transpose(1, 2)  # (N, steps, channels) -> nn.Conv1d's (N, C, L)"]
    if pad[0] != pad[1]:
        forward.append(f"{site.out} = F.pad({site.out}, {pad})  # TensorFlow's 'same': the odd step goes at the end")
    conv = f"self.{site.attr}({site.out}).transpose(1, 2)"
    forward.append(f"{site.out} = {_act(conv, layer.activation, 2)}")
    layouts = "a conv1d kernel as [k, in, out]; nn.Conv1d.weight is [out, in, k]"
    return _weighted(site, "nn.Conv1d", args, forward, layouts, "{}.transpose(2, 1, 0)")


def _pool1d(site: Site) -> LayerCode:
    layer: MaxPool1DLayer = site.layer
    _valid_pool(site)
    cls = "nn.AvgPool1d" if isinstance(layer, AvgPool1DLayer) else "nn.MaxPool1d"
    return LayerCode(
        init=[f"self.{site.attr} = {cls}(kernel_size={layer.pool_size}, stride={layer.strides or layer.pool_size})"],
        forward=[f"{site.out} = self.{site.attr}({site.ins[0]}.transpose(1, 2)).transpose(1, 2)"],
    )


def _global_avg1d(site: Site) -> LayerCode:
    x = site.ins[0]
    if not site.masked:
        return LayerCode(init=[], forward=[f"{site.out} = {x}.mean(dim=1)"])
    return LayerCode(
        init=[],
        forward=[
            "# Keras averages the unpadded steps only (its mask from the embedding's mask_zero)",
            f"{site.out} = torch.where(mask[..., None], {x}, 0.0).sum(dim=1)"
            f" / mask[..., None].to({x}.dtype).sum(dim=1)",
        ],
    )


def _layer_norm(site: Site) -> LayerCode:
    layer: LayerNormLayer = site.layer
    width = site.shapes[0][-1]
    if layer.center != layer.scale:
        raise _refuse(
            site,
            "center",
            "a layer_norm with only one of center/scale (nn.LayerNorm has both or neither)",
            "set center and scale both true or both false",
        )
    affine = "" if layer.scale else ", elementwise_affine=False"
    load = []
    if layer.scale:
        load = [
            f"model.{site.attr}.weight.copy_({_w(site, 'gamma')})",
            f"model.{site.attr}.bias.copy_({_w(site, 'beta')})",
        ]
    return LayerCode(
        init=[f"self.{site.attr} = nn.LayerNorm({width}, eps={layer.epsilon!r}{affine})"],
        forward=[f"{site.out} = self.{site.attr}({site.ins[0]})"],
        load=load,
    )


def _batch_norm(site: Site) -> LayerCode:
    layer: BatchNormLayer = site.layer
    shape = site.shapes[0]
    if len(shape) not in (1, 3):
        raise _refuse(site, "type", "batch_norm on sequences", "use layer_norm, or export --to keras")
    cls = "nn.BatchNorm2d" if len(shape) == 3 else "nn.BatchNorm1d"
    pairs = (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"), ("running_var", "moving_variance"))
    load = ["# momentum: the spec uses torch's convention (the weight of the new batch statistic)"]
    load += [f"model.{site.attr}.{t}.copy_({_w(site, k)})" for t, k in pairs]
    return LayerCode(
        init=[f"self.{site.attr} = {cls}({shape[-1]}, eps={layer.epsilon!r}, momentum={layer.momentum!r})"],
        forward=[f"{site.out} = self.{site.attr}({site.ins[0]})"],
        load=load,
    )


def _flatten(site: Site) -> LayerCode:
    x = site.ins[0]
    if len(site.shapes[0]) == 3:
        line = f"{site.out} = {x}.permute(0, 2, 3, 1).flatten(1)  # Keras' (h, w, c) order: the dense kernel's rows"
        return LayerCode(init=[], forward=[line])
    return LayerCode(init=[], forward=[f"{site.out} = {x}.flatten(1)"])


_NCHW_AXIS = {1: 2, 2: 3, 3: 1}  # a channels-last image axis (batch = 0) -> its NCHW axis


def _concatenate(site: Site) -> LayerCode:
    layer: ConcatenateLayer = site.layer
    rank = len(site.shapes[0])
    axis = layer.axis if layer.axis > 0 else layer.axis + rank + 1
    dim = _NCHW_AXIS[axis] if rank == 3 else axis
    return LayerCode(init=[], forward=[f"{site.out} = torch.cat([{', '.join(site.ins)}], dim={dim})"])


def _reshape(site: Site) -> LayerCode:
    layer: ReshapeLayer = site.layer
    x, target = site.ins[0], ", ".join(str(n) for n in layer.target_shape)
    forward = []
    if len(site.shapes[0]) == 3:
        forward.append(f"{site.out} = {x}.permute(0, 2, 3, 1)  # reshape in Keras' channels-last order")
        x = site.out
    forward.append(f"{site.out} = {x}.reshape({x}.shape[0], {target})")
    if len(layer.target_shape) == 3:
        forward.append(f"{site.out} = {site.out}.permute(0, 3, 1, 2)  # back to NCHW")
    return LayerCode(init=[], forward=forward)


def _embedding(site: Site) -> LayerCode:
    layer: EmbeddingLayer = site.layer
    forward = []
    if layer.mask_zero:
        forward.append(f"mask = {site.ins[0]} != 0  # mask_zero: id 0 is padding, for the layers Keras masks")
    forward.append(f"{site.out} = self.{site.attr}({site.ins[0]})")
    return LayerCode(
        init=[f"self.{site.attr} = nn.Embedding({layer.input_dim}, {layer.output_dim})"],
        forward=forward,
        load=[f"model.{site.attr}.weight.copy_({_w(site, 'embeddings')})"],
    )


def _positional(site: Site) -> LayerCode:
    layer: PositionalEmbeddingLayer = site.layer
    x = site.ins[0]
    return LayerCode(
        init=[f"self.{site.attr} = nn.Parameter(torch.zeros({layer.max_len}, {site.shapes[0][-1]}))"],
        forward=[f"{site.out} = {x} + self.{site.attr}[: {x}.shape[1]]  # a learned vector per position"],
        load=[f"model.{site.attr}.copy_({_w(site, 'embeddings')})"],
    )


def _add(site: Site) -> LayerCode:
    return LayerCode(init=[], forward=[f"{site.out} = {' + '.join(site.ins)}"])


def _simple(expr: str) -> Callable[[Site], LayerCode]:
    return lambda site: LayerCode(init=[], forward=[f"{site.out} = {expr.format(x=site.ins[0])}"])


def _activation(site: Site) -> LayerCode:
    layer: ActivationLayer = site.layer
    rank = len(site.shapes[0])
    line = f"{site.out} = {_act(site.ins[0], layer.activation, rank, layer.negative_slope)}"
    return LayerCode(init=[], forward=[line])


def _dropout(site: Site) -> LayerCode:
    return LayerCode(
        init=[f"self.{site.attr} = nn.Dropout(p={site.layer.rate!r})"],
        forward=[f"{site.out} = self.{site.attr}({site.ins[0]})"],
    )


LAYER_CODE: dict[type, Callable[[Site], LayerCode]] = {
    DenseLayer: _dense,
    ActivationLayer: _activation,
    DropoutLayer: _dropout,
    BatchNormLayer: _batch_norm,
    FlattenLayer: _flatten,
    Conv2DLayer: _conv2d,
    MaxPool2DLayer: _pool2d,
    AvgPool2DLayer: _pool2d,
    GlobalAvgPool2DLayer: _simple("{x}.mean(dim=(2, 3))"),
    AddLayer: _add,
    ConcatenateLayer: _concatenate,
    ReshapeLayer: _reshape,
    Conv1DLayer: _conv1d,
    MaxPool1DLayer: _pool1d,
    AvgPool1DLayer: _pool1d,
    GlobalAvgPool1DLayer: _global_avg1d,
    GlobalMaxPool1DLayer: _simple("{x}.amax(dim=1)"),
    LayerNormLayer: _layer_norm,
    EmbeddingLayer: _embedding,
    PositionalEmbeddingLayer: _positional,
    SimpleRNNLayer: recurrent_code,
    LSTMLayer: recurrent_code,
    GRULayer: recurrent_code,
    BidirectionalLayer: recurrent_code,
    MultiHeadAttentionLayer: attention_code,
}


def layer_code(layer: LayerBase, index: int, ins: list[str], out: str, shapes: list[Shape], masked: bool) -> LayerCode:
    """The script lines of spec layer ``index`` (see :class:`Site` for the arguments).

    Raises:
        SpecError: a layer type or setting the torch export does not write yet, naming the
            field and what is supported.
    """
    site = Site(layer, index, ins, out, shapes, masked)
    factory = LAYER_CODE.get(type(layer))
    if factory is None:
        raise refuse_layer_type("torch", index, layer.type, LAYER_CODE)
    return factory(site)
