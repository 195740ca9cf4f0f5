"""Spec layers -> Keras functional code: the per-layer table of the Keras exporter.

Each entry writes the Keras layers of one spec layer as source text with every setting
explicit, exactly as ``duofit/backends/keras/layers.py`` (and ``rnn.py``, ``sequence.py``,
``attention.py``) builds them, so an exported script computes the same numbers as
``duofit run --backend keras``. The first Keras layer of a spec layer holds its weights; a
second one is a separate activation (``leaky_relu``, or an exact activation in strict mode).

Where a translation is not obvious a note goes above the layer's line in the script:
batch_norm's momentum (torch's convention in the spec, ``1 - momentum`` in Keras), the
LeakyReLU slope (Keras' default 0.2, the spec's 0.01), layer_norm's epsilon (Keras' default
1e-3). The padding mask of an embedding with ``mask_zero`` is made explicitly
(``ids != 0``) and passed to the layers Keras masks (:func:`duofit.common.spec.masks.mask_flow`):
Keras 3.15's ``MultiHeadAttention`` deletes the implicit mask of the tensors it reads
(``keras/src/layers/attention/multi_head_attention.py``, ``set_keras_mask(query, None)``),
which duofit's Keras backend repairs with a patch (``duofit/backends/keras/compat.py``,
``keep_input_masks``); explicit masks give the same numbers with public API only.

Example:
    >>> from duofit.common.spec import DenseLayer
    >>> made = layer_code(DenseLayer(type="dense", units=4, activation="leaky_relu"), 0, strict=False)
    >>> for call in made.calls:
    ...     print(call.text("dense_0"))
    keras.layers.Dense(4, activation=None, use_bias=True, name="dense_0")
    keras.layers.LeakyReLU(negative_slope=0.01, name="dense_0")
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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
from duofit.common.spec.layers import AddLayer, ConcatenateLayer, ReshapeLayer
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
from duofit.common.spec.layers_rnn import BidirectionalLayer, GRULayer, LSTMLayer, RecurrentBase, SimpleRNNLayer
from duofit.porting.codegen import py_float, py_str, refuse, refuse_layer_type

__all__ = ["LAYER_CODE", "MASK_CONSUMERS", "Call", "LayerCode", "layer_code"]

# The slope duofit gives a dense/conv layer's leaky_relu activation (the spec's default).
_DEFAULT_SLOPE = ActivationLayer.model_fields["negative_slope"].default


@dataclass(frozen=True)
class Call:
    """One Keras layer constructor: ``func(*args, name=...)``."""

    func: str
    args: list[str]

    def text(self, name: str) -> str:
        """The constructor with its ``name`` argument, on one line."""
        named = f'name="{name}"'
        return f"{self.func}({', '.join([*self.args, named])})"


@dataclass(frozen=True)
class LayerCode:
    """The Keras layers of one spec layer and the notes written above them.

    Attributes:
        calls: Constructors; the first holds the spec layer's weights, the others (a separate
            activation) are applied to its output in turn.
        notes: Comment lines for the script (without ``#``).
    """

    calls: list[Call]
    notes: list[str] = field(default_factory=list)


def _activation_call(name: str, slope: float, strict: bool) -> Call:
    if strict and name == "gelu":
        return Call("ExactGELU", [])
    if name == "leaky_relu":
        return Call("ExactLeakyReLU" if strict else "keras.layers.LeakyReLU", [f"negative_slope={py_float(slope)}"])
    return Call("keras.layers.Activation", [py_str(name)])


def _separate(activation: str | None, strict: bool) -> bool:
    """Whether the activation is its own layer (leaky_relu: the slope; strict: the exact formulas)."""
    return activation == "leaky_relu" or (strict and activation in ("gelu", "leaky_relu"))


def _with_activation(main: Call, activation: str | None, strict: bool) -> LayerCode:
    """``main`` (built with ``activation=None`` when the activation is separate) and its activation layer."""
    if not _separate(activation, strict) or activation is None:
        return LayerCode([main])
    notes = []
    if activation == "leaky_relu":
        notes.append(
            f"leaky_relu as its own layer with duofit's slope {py_float(_DEFAULT_SLOPE)} (Keras' default is 0.2)"
        )
    if strict:
        notes.append(f"strict: {activation} with float64-exact constants (TensorFlow's op rounds them to float32)")
    return LayerCode([main, _activation_call(activation, _DEFAULT_SLOPE, strict)], notes)


def _regularizer(layer: Any) -> list[str]:
    l1, l2 = float(getattr(layer, "l1", 0.0)), float(getattr(layer, "l2", 0.0))
    return [f"kernel_regularizer=KernelPenalty(l1={py_float(l1)}, l2={py_float(l2)})"] if (l1 or l2) else []


def _weighted(func: str, layer: Any, strict: bool, *args: str) -> LayerCode:
    """A dense/conv layer: ``args``, then its activation (None when separate), bias and kernel penalty."""
    act = None if _separate(layer.activation, strict) else layer.activation
    every = [*args, f"activation={py_str(act)}", f"use_bias={layer.use_bias}", *_regularizer(layer)]
    return _with_activation(Call(func, every), layer.activation, strict)


def _dense(layer: DenseLayer, i: int, strict: bool) -> LayerCode:
    return _weighted("keras.layers.Dense", layer, strict, str(layer.units))


def _conv2d(layer: Conv2DLayer, i: int, strict: bool) -> LayerCode:
    return _weighted(
        "keras.layers.Conv2D",
        layer,
        strict,
        str(layer.filters),
        f"kernel_size={tuple(layer.kernel_size)}",
        f"strides={tuple(layer.strides)}",
        f"padding={py_str(layer.padding)}",
        f"dilation_rate={tuple(layer.dilation)}",
    )


def _conv1d(layer: Conv1DLayer, i: int, strict: bool) -> LayerCode:
    return _weighted(
        "keras.layers.Conv1D",
        layer,
        strict,
        str(layer.filters),
        f"kernel_size={layer.kernel_size}",
        f"strides={layer.strides}",
        f"padding={py_str(layer.padding)}",
    )


def _activation(layer: ActivationLayer, i: int, strict: bool) -> LayerCode:
    notes = []
    if strict and layer.activation in ("gelu", "leaky_relu"):
        notes.append(
            f"strict: {layer.activation} with float64-exact constants (TensorFlow's op rounds them to float32)"
        )
    return LayerCode([_activation_call(layer.activation, layer.negative_slope, strict)], notes)


def _batch_norm(layer: BatchNormLayer, i: int, strict: bool) -> LayerCode:
    note = (
        f"momentum: the spec's {py_float(layer.momentum)} is torch's convention (weight of the new batch); "
        "Keras weighs the running value: 1 - momentum"
    )
    args = [f"momentum={py_float(1.0 - layer.momentum)}", f"epsilon={py_float(layer.epsilon)}"]
    return LayerCode([Call("keras.layers.BatchNormalization", args)], [note])


def _pool2d(layer: MaxPool2DLayer, i: int, strict: bool) -> LayerCode:
    cls = "AveragePooling2D" if isinstance(layer, AvgPool2DLayer) else "MaxPooling2D"
    strides = layer.strides or layer.pool_size
    args = [f"pool_size={tuple(layer.pool_size)}", f"strides={tuple(strides)}", f"padding={py_str(layer.padding)}"]
    return LayerCode([Call(f"keras.layers.{cls}", args)])


def _pool1d(layer: MaxPool1DLayer, i: int, strict: bool) -> LayerCode:
    cls = "AveragePooling1D" if isinstance(layer, AvgPool1DLayer) else "MaxPooling1D"
    args = [
        f"pool_size={layer.pool_size}",
        f"strides={layer.strides or layer.pool_size}",
        f"padding={py_str(layer.padding)}",
    ]
    return LayerCode([Call(f"keras.layers.{cls}", args)])


def _layer_norm(layer: LayerNormLayer, i: int, strict: bool) -> LayerCode:
    args = ["axis=-1", f"epsilon={py_float(layer.epsilon)}", f"center={layer.center}", f"scale={layer.scale}"]
    return LayerCode([Call("keras.layers.LayerNormalization", args)], ["epsilon explicit: Keras' default is 1e-3"])


def _embedding(layer: EmbeddingLayer, i: int, strict: bool) -> LayerCode:
    notes = []
    if layer.mask_zero:
        notes.append("mask_zero: the padding mask (ids != 0) is made explicitly above and passed where Keras uses it")
    args = [str(layer.input_dim), str(layer.output_dim), "mask_zero=False"]
    return LayerCode([Call("keras.layers.Embedding", args)], notes)


def _recurrent_call(layer: RecurrentBase) -> Call:
    cls = {SimpleRNNLayer: "SimpleRNN", LSTMLayer: "LSTM", GRULayer: "GRU"}[type(layer)]
    args = [str(layer.units), f"activation={py_str(layer.activation)}"]
    if isinstance(layer, (LSTMLayer, GRULayer)):
        args.append(f"recurrent_activation={py_str(layer.recurrent_activation)}")
    args.append(f"use_bias={layer.use_bias}")
    if isinstance(layer, GRULayer):
        args.append(f"reset_after={layer.reset_after}")
    args.append(f"return_sequences={layer.return_sequences}")
    return Call(f"keras.layers.{cls}", args)


def _recurrent(layer: RecurrentBase, i: int, strict: bool) -> LayerCode:
    return LayerCode([_recurrent_call(layer)])


def _bidirectional(layer: BidirectionalLayer, i: int, strict: bool) -> LayerCode:
    inner = _recurrent_call(layer.layer)
    inner_text = f"{inner.func}({', '.join(inner.args)})"
    return LayerCode([Call("keras.layers.Bidirectional", [inner_text, f"merge_mode={py_str(layer.merge)}"])])


def _attention(layer: MultiHeadAttentionLayer, i: int, strict: bool) -> LayerCode:
    if strict:
        raise refuse(
            "keras",
            f"model.layers[{i}]",
            "multi_head_attention with --strict",
            "duofit's strict attention overrides a private Keras method; export without --strict",
        )
    args = [
        f"num_heads={layer.num_heads}",
        f"key_dim={layer.key_dim}",
        f"value_dim={layer.head_value_dim}",
        "dropout=0.0",
        f"use_bias={layer.use_bias}",
    ]
    return LayerCode([Call("keras.layers.MultiHeadAttention", args)])


def _plain(func: str, *args: str) -> Callable[[Any, int, bool], LayerCode]:
    return lambda layer, i, strict: LayerCode([Call(func, list(args))])


LAYER_CODE: dict[type, Callable[[Any, int, bool], LayerCode]] = {
    DenseLayer: _dense,
    ActivationLayer: _activation,
    DropoutLayer: lambda layer, i, strict: LayerCode(
        [Call("keras.layers.Dropout", [py_float(layer.rate), f"seed=SEED + {i}"])]
    ),
    BatchNormLayer: _batch_norm,
    FlattenLayer: _plain("keras.layers.Flatten"),
    Conv2DLayer: _conv2d,
    MaxPool2DLayer: _pool2d,
    AvgPool2DLayer: _pool2d,
    GlobalAvgPool2DLayer: _plain("keras.layers.GlobalAveragePooling2D"),
    AddLayer: _plain("keras.layers.Add"),
    ConcatenateLayer: lambda layer, i, strict: LayerCode([Call("keras.layers.Concatenate", [f"axis={layer.axis}"])]),
    ReshapeLayer: lambda layer, i, strict: LayerCode([Call("keras.layers.Reshape", [str(tuple(layer.target_shape))])]),
    Conv1DLayer: _conv1d,
    MaxPool1DLayer: _pool1d,
    AvgPool1DLayer: _pool1d,
    GlobalAvgPool1DLayer: _plain("keras.layers.GlobalAveragePooling1D"),
    GlobalMaxPool1DLayer: _plain("keras.layers.GlobalMaxPooling1D"),
    LayerNormLayer: _layer_norm,
    EmbeddingLayer: _embedding,
    PositionalEmbeddingLayer: lambda layer, i, strict: LayerCode(
        [Call("PositionalEmbedding", [f"max_len={layer.max_len}"])]
    ),
    SimpleRNNLayer: _recurrent,
    LSTMLayer: _recurrent,
    GRULayer: _recurrent,
    BidirectionalLayer: _bidirectional,
    MultiHeadAttentionLayer: _attention,
}

# Layers whose Keras call reads the padding mask, and the keyword it goes in: the masked mean
# (keras/src/layers/pooling/global_average_pooling1d.py), the recurrent layers (masked steps keep
# the state), attention (padded queries and keys, keras/src/layers/attention/multi_head_attention.py).
MASK_CONSUMERS: dict[type, str] = {
    GlobalAvgPool1DLayer: "mask=padding_mask",
    SimpleRNNLayer: "mask=padding_mask",
    LSTMLayer: "mask=padding_mask",
    GRULayer: "mask=padding_mask",
    BidirectionalLayer: "mask=padding_mask",
    MultiHeadAttentionLayer: "attention_mask=attention_mask",
}


def layer_code(layer: Any, i: int, strict: bool) -> LayerCode:
    """The Keras code of spec layer ``i``.

    Raises:
        SpecError: a layer type the Keras exporter has no entry for (names the supported ones),
            or one it cannot export in strict mode.
    """
    factory = LAYER_CODE.get(type(layer))
    if factory is None:
        raise refuse_layer_type("keras", i, layer.type, LAYER_CODE)
    return factory(layer, i, strict)
