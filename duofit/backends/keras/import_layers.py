"""One Keras 3 layer config (``class_name`` + ``config``, as in a ``.keras`` archive) -> spec layer documents.

The inverse of the Keras layer table (:mod:`duofit.backends.keras.layers`, ``rnn``,
``sequence``, ``attention``): each converter reads the settings the spec's Keras factory
passes and refuses any other setting that is not at the value that factory leaves (a
regularizer, ``data_format = "channels_first"``, recurrent dropout, a frozen layer ...),
naming it, so nothing is approximated. Converters work on the JSON config only: no class
from the file is ever looked up or run.

Translations (Keras config -> spec):
- ``BatchNormalization(momentum=m)`` -> ``batch_norm`` ``momentum = 1 - m`` (the spec keeps
  torch's convention; the Keras factory passes ``1 - momentum`` back).
- an ``activation="leaky_relu"`` *argument* is Keras' function with slope 0.2
  (``keras/src/activations/activations.py`` ``leaky_relu``) while the spec's dense/conv
  ``leaky_relu`` is slope 0.01: the layer becomes the layer without activation + an
  ``activation`` layer with ``negative_slope = 0.2``. The ``LeakyReLU`` *layer* keeps its own slope.
- initializers map by name where the spec has them (:data:`INITIALIZERS`); others leave the
  spec's default and a note: the imported weights replace any draw.

Example:
    >>> notes = []
    >>> convert_layer("Dense", {"units": 2, "activation": "leaky_relu", "use_bias": False}, "layer 'd'", notes)
    [{'type': 'dense', 'units': 2, 'use_bias': False}, {'type': 'activation', 'activation': 'leaky_relu', \
'negative_slope': 0.2}]
    >>> convert_layer("Dense", {"units": 2, "kernel_constraint": {"class_name": "NonNeg"}}, "layer 'd'", notes)
    Traceback (most recent call last):
    ...
    duofit.common.errors.SpecError: layer 'd': setting kernel_constraint = {'class_name': 'NonNeg'} has no spec ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from duofit.backends.keras.import_settings import ACTIVATIONS, INITIALIZERS, Config, Doc, LayerSettings

__all__ = [
    "ACTIVATIONS",
    "CONVERTERS",
    "INITIALIZERS",
    "SUPPORTED",
    "convert_layer",
    "layer_dtype",
    "supported_list",
    "table_name",
]


def _one(value: Any) -> Any:
    """``[3]`` -> ``3`` (Keras keeps 1-D sizes as 1-tuples)."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def _last_axis(s: LayerSettings) -> None:
    s.fixed("axis", -1, [-1])


# --------------------------------------------------------------------------- converters
def _with_weights(s: LayerSettings, doc: Doc, act: str | None, extra: list[Doc]) -> list[Doc]:
    """A dense or conv layer's activation, initializers and penalties, then the layers its activation adds."""
    if act is not None:
        doc["activation"] = act
    s.init(doc, "kernel_initializer", "kernel_init")
    s.init(doc, "bias_initializer", "bias_init")
    s.penalty(doc)
    return [doc, *extra]


def _dense(s: LayerSettings) -> list[Doc]:
    act, extra = s.activation()
    doc: Doc = {"type": "dense", "units": s.get("units"), "use_bias": s.get("use_bias", True)}
    return _with_weights(s, doc, act, extra)


def _conv(s: LayerSettings, kind: str) -> list[Doc]:
    act, extra = s.activation()
    s.fixed("data_format", "channels_last")
    s.fixed("groups", 1)
    size, strides = s.get("kernel_size"), s.get("strides", 1)
    doc: Doc = {"type": kind, "filters": s.get("filters"), "padding": s.get("padding", "valid")}
    if kind == "conv1d":
        s.fixed("dilation_rate", [1], 1)
        doc.update(kernel_size=_one(size), strides=_one(strides))
    else:
        doc.update(kernel_size=size, strides=strides, dilation=s.get("dilation_rate", [1, 1]))
    if doc["padding"] not in ("valid", "same"):
        raise s.refuse("padding", doc["padding"], "supported: 'valid', 'same'")
    doc["use_bias"] = s.get("use_bias", True)
    return _with_weights(s, doc, act, extra)


def _pool(s: LayerSettings, kind: str) -> list[Doc]:
    s.fixed("data_format", "channels_last", None)
    size, strides = s.get("pool_size"), s.get("strides")
    if kind.endswith("1d"):
        size, strides = _one(size), _one(strides)
    doc: Doc = {"type": kind, "pool_size": size, "padding": s.get("padding", "valid")}
    if strides is not None:
        doc["strides"] = strides
    return [doc]


def _global(s: LayerSettings, kind: str) -> list[Doc]:
    s.fixed("data_format", "channels_last", None)
    s.fixed("keepdims", False)
    return [{"type": kind}]


def _activation_layer(s: LayerSettings) -> list[Doc]:
    act, extra = s.activation()
    return extra or [{"type": "activation", "activation": act or "linear"}]


def _relu(s: LayerSettings) -> list[Doc]:
    s.fixed("max_value", None)
    s.fixed("threshold", 0.0)
    slope = float(s.get("negative_slope", 0.0))
    if slope:
        return [{"type": "activation", "activation": "leaky_relu", "negative_slope": slope}]
    return [{"type": "activation", "activation": "relu"}]


def _leaky(s: LayerSettings) -> list[Doc]:
    return [{"type": "activation", "activation": "leaky_relu", "negative_slope": float(s.get("negative_slope"))}]


def _softmax(s: LayerSettings) -> list[Doc]:
    _last_axis(s)
    return [{"type": "activation", "activation": "softmax"}]


def _dropout(s: LayerSettings) -> list[Doc]:
    return [{"type": "dropout", "rate": s.get("rate")}]


def _batch_norm(s: LayerSettings) -> list[Doc]:
    _last_axis(s)
    for key in ("center", "scale"):
        s.fixed(key, True)
    s.fixed("renorm", False)
    s.fixed("synchronized", False)
    s.taken |= {"renorm_momentum", "beta_initializer", "gamma_initializer"}  # unused without renorm / weights
    s.taken |= {"moving_mean_initializer", "moving_variance_initializer"}
    return [
        {"type": "batch_norm", "momentum": _complement(float(s.get("momentum", 0.99))), "epsilon": s.get("epsilon")}
    ]


def _complement(momentum: float) -> float:
    """``1 - momentum`` as the shortest decimal whose complement gives ``momentum`` back (0.99 -> 0.01)."""
    for digits in range(1, 17):
        candidate = round(1.0 - momentum, digits)
        if 1.0 - candidate == momentum:
            return candidate
    return 1.0 - momentum


def _layer_norm(s: LayerSettings) -> list[Doc]:
    _last_axis(s)
    s.fixed("rms_scaling", False)
    s.taken |= {"beta_initializer", "gamma_initializer"}  # the spec's are ones/zeros; weights are imported
    return [{"type": "layer_norm", "epsilon": s.get("epsilon"), "center": s.get("center"), "scale": s.get("scale")}]


def _flatten(s: LayerSettings) -> list[Doc]:
    s.fixed("data_format", "channels_last", None)
    return [{"type": "flatten"}]


def _concatenate(s: LayerSettings) -> list[Doc]:
    return [{"type": "concatenate", "axis": s.get("axis", -1)}]


def _reshape(s: LayerSettings) -> list[Doc]:
    shape = s.get("target_shape")
    if not isinstance(shape, list) or any(not isinstance(n, int) or n <= 0 for n in shape):
        raise s.refuse("target_shape", shape, "supported: positive sizes (write -1 out)")
    return [{"type": "reshape", "target_shape": shape}]


def _embedding(s: LayerSettings) -> list[Doc]:
    doc: Doc = {
        "type": "embedding",
        "input_dim": s.get("input_dim"),
        "output_dim": s.get("output_dim"),
        "mask_zero": s.get("mask_zero", False),
    }
    s.init(doc, "embeddings_initializer", "embeddings_init")
    return [doc]


def _recurrent_doc(s: LayerSettings, kind: str, in_bidirectional: bool = False) -> Doc:
    for key in ("return_state", "go_backwards", "stateful"):
        s.fixed(key, False)
    s.fixed("dropout", 0.0)
    s.fixed("recurrent_dropout", 0.0)
    sequences = s.get("return_sequences", False)
    zero = s.get("zero_output_for_mask", False)
    if zero and not in_bidirectional and sequences:  # Bidirectional sets it itself (keras .../bidirectional.py)
        raise s.refuse("zero_output_for_mask", zero, "supported: False")
    doc: Doc = {"type": kind, "units": s.get("units"), "return_sequences": sequences}
    doc["activation"] = s.get("activation", "tanh")
    if kind != "simple_rnn":
        doc["recurrent_activation"] = s.get("recurrent_activation", "sigmoid")
    doc["use_bias"] = s.get("use_bias", True)
    if kind == "lstm":
        doc["unit_forget_bias"] = s.get("unit_forget_bias", True)
    if kind == "gru":
        doc["reset_after"] = s.get("reset_after", True)
    for key, field in (("kernel", "kernel"), ("recurrent", "recurrent"), ("bias", "bias")):
        s.init(doc, f"{key}_initializer", f"{field}_init")
    return doc


_RECURRENT = {"SimpleRNN": "simple_rnn", "LSTM": "lstm", "GRU": "gru"}


def _bidirectional(s: LayerSettings) -> list[Doc]:
    merge = s.get("merge_mode", "concat")
    if merge not in ("concat", "sum"):
        raise s.refuse("merge_mode", merge, "supported: 'concat', 'sum'")
    inner = []
    for key in ("layer", "backward_layer"):
        entry = s.get(key)
        if entry is None:
            continue
        if not isinstance(entry, dict) or not _builtin(entry) or entry.get("class_name") not in _RECURRENT:
            raise s.refuse(key, _class_of(entry), f"supported: Keras' {', '.join(_RECURRENT)}")
        cfg = dict(entry.get("config") or {})
        if key == "backward_layer":
            cfg["go_backwards"] = not cfg.get("go_backwards", True)  # the backward copy runs backwards
        inner_s = LayerSettings(cfg, f"{s.where} ({key})", s.notes)
        doc = _recurrent_doc(inner_s, _RECURRENT[entry["class_name"]], in_bidirectional=True)
        inner_s.done()
        inner.append(doc)
    if len(inner) == 2 and _without_inits(inner[0]) != _without_inits(inner[1]):
        raise s.refuse("backward_layer", _class_of(s.cfg.get("backward_layer")), "it must mirror the forward layer")
    return [{"type": "bidirectional", "layer": inner[0], "merge": merge}]


def _without_inits(doc: Doc) -> Doc:
    return {k: v for k, v in doc.items() if not k.endswith("_init")}


def _attention(s: LayerSettings) -> list[Doc]:
    s.fixed("dropout", 0.0)
    s.fixed("output_shape", None)
    s.fixed("attention_axes", None, [1], 1)
    s.taken |= {"kernel_initializer", "bias_initializer"}  # the spec has none; weights are imported
    doc: Doc = {
        "type": "multi_head_attention",
        "num_heads": s.get("num_heads"),
        "key_dim": s.get("key_dim"),
        "use_bias": s.get("use_bias", True),
    }
    value_dim = s.get("value_dim")
    if value_dim is not None:
        doc["value_dim"] = value_dim
    if s.get("causal", False):  # duofit's own SpecAttention stores it; keras' is a call argument
        doc["causal"] = True
    return [doc]


def _positional(s: LayerSettings) -> list[Doc]:
    return [{"type": "positional_embedding", "max_len": s.get("max_len")}]


# Keras class name (registered name for duofit's own classes) -> converter
CONVERTERS: dict[str, Callable[[LayerSettings], list[Doc]]] = {
    "Dense": _dense,
    "Activation": _activation_layer,
    "ReLU": _relu,
    "LeakyReLU": _leaky,
    "Softmax": _softmax,
    "Dropout": _dropout,
    "BatchNormalization": _batch_norm,
    "Flatten": _flatten,
    "Conv2D": lambda s: _conv(s, "conv2d"),
    "Conv1D": lambda s: _conv(s, "conv1d"),
    "MaxPooling2D": lambda s: _pool(s, "max_pool2d"),
    "AveragePooling2D": lambda s: _pool(s, "avg_pool2d"),
    "MaxPooling1D": lambda s: _pool(s, "max_pool1d"),
    "AveragePooling1D": lambda s: _pool(s, "avg_pool1d"),
    "GlobalAveragePooling2D": lambda s: _global(s, "global_avg_pool2d"),
    "GlobalAveragePooling1D": lambda s: _global(s, "global_avg_pool1d"),
    "GlobalMaxPooling1D": lambda s: _global(s, "global_max_pool1d"),
    "Add": lambda s: [{"type": "add"}],
    "Concatenate": _concatenate,
    "Reshape": _reshape,
    "Embedding": _embedding,
    "LayerNormalization": _layer_norm,
    "SimpleRNN": lambda s: [_recurrent_doc(s, "simple_rnn")],
    "LSTM": lambda s: [_recurrent_doc(s, "lstm")],
    "GRU": lambda s: [_recurrent_doc(s, "gru")],
    "Bidirectional": _bidirectional,
    "MultiHeadAttention": _attention,
    "duofit>SpecAttention": _attention,
    "duofit>PositionalEmbedding": _positional,
}
SUPPORTED: tuple[str, ...] = ("InputLayer", *CONVERTERS)


def _builtin(entry: Mapping[str, Any]) -> bool:
    """A Keras class of Keras' own (or duofit's registered ones), not one from the file's author."""
    module = str(entry.get("module") or "")
    registered = entry.get("registered_name")
    if str(registered or "").startswith("duofit>"):
        return module.startswith("duofit.backends.keras")
    return (module == "keras" or module.startswith(("keras.layers", "keras.src."))) and registered in (
        None,
        entry.get("class_name"),
    )


def _class_of(entry: Any) -> str:
    if not isinstance(entry, Mapping):
        return repr(entry)[:60]
    return str(entry.get("registered_name") or entry.get("class_name"))


def table_name(entry: Mapping[str, Any]) -> str | None:
    """The :data:`CONVERTERS` key of a layer entry; ``None`` for a class this module does not know."""
    key = str(entry.get("registered_name") or entry.get("class_name"))
    if not _builtin(entry) or (key not in CONVERTERS and key != "InputLayer"):
        return None
    return key


def convert_layer(class_name: str, cfg: Config, where: str, notes: list[str]) -> list[Doc]:
    """The spec documents of one Keras layer (the first holds its weights), every setting checked.

    Args:
        class_name: A :data:`CONVERTERS` key.
        cfg: The layer's ``config``.
        where: The layer's name, class and place, for messages.
        notes: Appended with what was chosen (initializers the spec has no name for).

    Raises:
        SpecError: a setting the spec cannot express (its name, value and what is supported).
    """
    s = LayerSettings(cfg, where, notes)
    docs = CONVERTERS[class_name](s)
    s.done()
    return docs


def layer_dtype(cfg: Config) -> str | None:
    """The compute dtype a layer config states (``"float32"``, ``"float64"``; a mixed policy's name)."""
    value = cfg.get("dtype")
    if isinstance(value, dict):
        value = (value.get("config") or {}).get("name")
    return value if isinstance(value, str) else None


def supported_list(names: Iterable[str] = SUPPORTED) -> str:
    """The supported Keras classes, for messages."""
    return ", ".join(n.removeprefix("duofit>") for n in names)
