"""A Keras 3 model config's graph, read as JSON: its layers in order, what each reads, its call arguments.

:func:`graph_nodes` turns a ``Sequential`` or functional config into :class:`Node` s (one per
layer, the input layer apart) that :mod:`duofit.backends.keras.importer` maps to spec layers.
Nothing is looked up or run: a node is its JSON entry, the layers it reads and its place.

A functional node also stores the keyword arguments its layer was called with, and
``Layer.__call__`` fills some in itself (``keras/src/layers/layer.py``, steps 5 and 6:
``_resolve_and_populate_arg`` and the mask population); :func:`check_call_kwargs` accepts
those values, which rebuild the call Keras makes by default, and refuses any other:

- ``training``: written when the ``call`` signature's default is not ``None``:
  ``Dropout.call(training=False)`` (``layers/regularization/dropout.py``) and
  ``GRU`` / ``LSTM`` / ``SimpleRNN.call(training=False)`` (``layers/rnn/*.py``) write
  ``False``; a node's value only counts when the model is called without ``training``
  (``models/functional.py`` ``operation_fn`` passes the model's own mode over it), and the
  spec's layers always follow the model's mode, so ``False`` and ``None`` are accepted and an
  explicit ``training=True`` (dropout at inference) is refused.
- ``mask``: written for a layer whose ``call`` takes ``mask`` (``BatchNormalization``,
  the recurrent layers, ``Bidirectional``, ``GlobalAveragePooling1D``): ``None`` without a
  padding mask; after an ``Embedding(mask_zero=True)`` it is the tensor of the mask op that
  ``Embedding.compute_mask`` adds to the graph (``ops.not_equal(inputs, 0)``,
  ``layers/core/embedding.py``): a ``NotEqual`` node reading the model input. The spec's
  Keras model propagates the same mask, so that op is no spec layer and that tensor is
  accepted; any other mask tensor is refused.
- ``MultiHeadAttention`` writes no mask arguments (its masks come from its inputs);
  ``use_causal_mask`` becomes the spec's ``causal``; the rest must be at their defaults.

Example:
    >>> check_call_kwargs({"training": False, "mask": None}, "Dropout", "layer 'd'", set())
    >>> check_call_kwargs({"training": True}, "Dropout", "layer 'd'", set())
    Traceback (most recent call last):
    ...
    duofit.common.errors.SpecError: layer 'd': call argument training = True has no spec equivalent ...
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from duofit.backends.keras.import_settings import short
from duofit.common.errors import SpecError

__all__ = ["ATTENTION_CLASSES", "Node", "check_call_kwargs", "graph_nodes", "layer_name", "tensors"]

ATTENTION_CLASSES = ("MultiHeadAttention", "SpecAttention")
_TENSOR = "__keras_tensor__"
# the mask op Embedding(mask_zero=True) adds to a functional graph (keras/src/layers/core/embedding.py)
_MASK_OP = ("keras.src.ops.numpy", "NotEqual")
# call arguments a node may carry besides its input tensors, and the values equal to Keras' default call
_PLAIN_KWARGS: dict[str, tuple[Any, ...]] = {"training": (None, False), "mask": (None,)}
_ATTENTION_KWARGS: dict[str, tuple[Any, ...]] = {
    "query_mask": (None,),
    "value_mask": (None,),
    "key_mask": (None,),
    "attention_mask": (None,),
    "return_attention_scores": (False,),
    "training": (None, False),
}
_FIX = "call the layer on its input tensor(s) alone and re-save the model, or write the spec by hand"


@dataclass
class Node:
    """One layer of the graph: its name, JSON entry, the layers it reads and its place (for messages)."""

    name: str
    entry: dict[str, Any]
    reads: list[str]
    place: str


def layer_name(entry: Mapping[str, Any]) -> str:
    """A layer entry's name."""
    return str(entry.get("name") or (entry.get("config") or {}).get("name"))


def tensors(value: Any) -> list[str]:
    """The source layer names of the Keras tensors in a node's arguments, in order.

    Example:
        >>> tensors([{"class_name": "__keras_tensor__", "config": {"keras_history": ["dense", 0, 0]}}, 0])
        ['dense']
    """
    if isinstance(value, dict) and value.get("class_name") == _TENSOR:
        history = value["config"]["keras_history"]
        if history[1] != 0 or history[2] != 0:
            raise SpecError(
                f"layer {history[0]!r} is called more than once or has several outputs; the spec calls each layer "
                "once and reads its one output: build the model with one call per layer",
                path="model.layers",
            )
        return [str(history[0])]
    if isinstance(value, (list, tuple)):
        return [name for item in value for name in tensors(item)]
    if isinstance(value, dict):
        return [name for item in value.values() for name in tensors(item)]
    return []


def _shown(value: Any) -> str:
    if isinstance(value, dict) and value.get("class_name") == _TENSOR:
        return f"the output of {value['config']['keras_history'][0]!r}"
    return short(value)


def check_call_kwargs(kwargs: Mapping[str, Any], class_name: str, where: str, masks: set[str]) -> None:
    """Refuse a node's call argument unless it holds a value of Keras' default call (see the module doc).

    Args:
        kwargs: The node's keyword arguments (attention's query/value/key and causal flag removed).
        class_name: The layer's class, which decides the arguments it may carry.
        where: The layer's name, class and place, for messages.
        masks: The names of the graph's padding-mask ops (an embedding's ``mask_zero`` mask).

    Raises:
        SpecError: naming the argument, its value, the layer and its place, what is supported and the fix.
    """
    allowed = _ATTENTION_KWARGS if class_name in ATTENTION_CLASSES else _PLAIN_KWARGS
    for key, value in kwargs.items():
        if key == "mask" and key in allowed and tensors(value) and set(tensors(value)) <= masks:
            continue  # the padding mask of an embedding's mask_zero, which the spec's model propagates too
        if key in allowed and any(value is a for a in allowed[key]):  # None / False: JSON null / false
            continue
        supported = "; ".join(f"{k} = {' or '.join(short(a) for a in v)}" for k, v in allowed.items())
        if "mask" in allowed:
            supported += " or an embedding's mask_zero mask"
        raise SpecError(
            f"{where}: call argument {key} = {_shown(value)} has no spec equivalent (supported: {supported}, the "
            f"values of Keras' default call); {_FIX}",
            path="model.layers",
        )


def _where(label: str, entry: Mapping[str, Any], reads: list[str] | None = None) -> str:
    """A layer as messages name it: ``<label>: layer 'x' (Class, reads 'y')``."""
    place = "" if reads is None else ", reads " + ", ".join(repr(r) for r in reads)
    return f"{label}: layer {layer_name(entry)!r} ({entry.get('class_name')}{place})"


def _node_reads(entry: dict[str, Any], label: str, masks: set[str]) -> tuple[list[str], dict[str, Any]]:
    """The layers a functional node reads and its extra settings (attention's causal mask)."""
    nodes = entry.get("inbound_nodes") or []
    if len(nodes) != 1:
        raise SpecError(
            f"{_where(label, entry)}: called {len(nodes)} times (a shared layer); the spec calls each layer once: "
            "give each call its own layer",
            path="model.layers",
        )
    args, kwargs = list(nodes[0].get("args") or []), dict(nodes[0].get("kwargs") or {})
    class_name = str(entry.get("class_name"))
    if class_name not in ATTENTION_CLASSES:
        reads, extra = tensors(args), {}
    else:
        parts = {k: args[i] if i < len(args) else kwargs.pop(k, None) for i, k in enumerate(("query", "value", "key"))}
        extra = {"causal": True} if kwargs.pop("use_causal_mask", False) else {}
        query, value = tensors(parts["query"]), tensors(parts["value"])
        reads = query if value == query else query + value
        if (tensors(parts["key"]) or value) != value:
            raise SpecError(
                f"{_where(label, entry, reads)}: a key different from the value; the spec's attention uses the "
                "value as key: call it as attention(query, value)",
                path="model.layers",
            )
    if set(reads) & masks:
        raise SpecError(
            f"{_where(label, entry, reads)}: reads an embedding's padding mask as data; the spec's layers read "
            "masks only as Keras passes them (mask=): compute it with supported layers, or drop it",
            path="model.layers",
        )
    check_call_kwargs(kwargs, class_name, _where(label, entry, reads), masks)
    return reads, extra


def _mask_ops(entries: list[dict[str, Any]], input_name: str) -> set[str]:
    """The ``NotEqual(input, 0)`` ops an ``Embedding(mask_zero=True)`` reading the model input adds."""
    embeds = [
        e
        for e in entries
        if e.get("class_name") == "Embedding"
        and (e.get("config") or {}).get("mask_zero") is True
        and [tensors(n.get("args")) for n in e.get("inbound_nodes") or []] == [[input_name]]
    ]
    found: set[str] = set()
    for e in entries:
        nodes = e.get("inbound_nodes") or [{}]
        args = nodes[0].get("args") or []
        if (str(e.get("module")), e.get("class_name")) == _MASK_OP and embeds and len(nodes) == 1:
            if (
                len(args) == 2
                and tensors(args[0]) == [input_name]
                and type(args[1]) is int
                and args[1] == 0
                and not nodes[0].get("kwargs")
            ):
                found.add(layer_name(e))
    return found


def _names(value: Any) -> list[str]:
    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
        return [value[0]]
    return [str(v[0]) for v in value or []]


def graph_nodes(config: dict[str, Any], label: str) -> tuple[list[Node], dict[str, Any] | None, list[Any]]:
    """The model's layers (input layer and mask ops apart) in graph order, the input layer, the build shape.

    Raises:
        SpecError: a subclassed model, several inputs or outputs, a shared layer, a call argument
            that is not Keras' default (each naming the layer, its place, what is supported and the fix).
    """
    kind, body = config.get("class_name"), config.get("config") or {}
    if kind not in ("Sequential", "Functional") or not str(config.get("module", "")).startswith("keras"):
        raise SpecError(
            f"{label}: a {kind} model (module {config.get('module')!r}): only keras.Sequential and functional "
            "keras.Model graphs can be imported; a subclassed model's call() is Python code duofit does not run: "
            "rebuild it as a functional model (keras.Model(inputs, outputs)) and save that",
            path="source",
        )
    entries = list(body.get("layers") or [])
    inputs = [e for e in entries if e.get("class_name") == "InputLayer"]
    if len(inputs) > 1:
        raise SpecError(
            f"{label}: {len(inputs)} inputs; the spec's model has one input: give the model one input (concatenate "
            "the features before it)",
            path="model",
        )
    others = [e for e in entries if e.get("class_name") != "InputLayer"]
    input_name = layer_name(inputs[0]) if inputs else "input"
    if kind == "Sequential":
        nodes = [Node(layer_name(e), e, [], f"position {k} of the Sequential model") for k, e in enumerate(others)]
        for prev, node in zip([None, *nodes], nodes, strict=False):
            node.reads = [prev.name] if prev else [input_name]
        return nodes, inputs[0] if inputs else None, list(body.get("build_input_shape") or [])
    outputs, n_inputs = _names(body.get("output_layers")), len(_names(body.get("input_layers")))
    if len(outputs) != 1 or n_inputs != 1:
        raise SpecError(
            f"{label}: {n_inputs} inputs and {len(outputs)} outputs; the spec's model has one input and one output: "
            "save a model with one of each (keras.Model(input, output))",
            path="model",
        )
    masks = _mask_ops(others, input_name)
    nodes = []
    for e in others:
        if layer_name(e) in masks:
            continue
        reads, extra = _node_reads(e, label, masks)
        if extra:
            e = {**e, "config": {**(e.get("config") or {}), **extra}}
        nodes.append(Node(layer_name(e), e, reads, "reads " + ", ".join(repr(r) for r in reads)))
    if not nodes or nodes[-1].name != outputs[0]:
        raise SpecError(
            f"{label}: the output layer {outputs[0]!r} is not the last layer of the graph; the spec's output is its "
            "last layer: drop the layers after the output (build keras.Model(inputs, output)) and re-save",
            path="model",
        )
    return nodes, inputs[0] if inputs else None, []
