"""The ``build_model`` function and the initial-weight table of an exported Keras script.

Spec layers become functional Keras code, one statement per Keras layer, in spec order: a
sequential spec reads ``x`` from line to line; a layer graph names each output after its spec
layer (``stem``, ``branch1``; ``x3`` for an unnamed layer 3) and calls each layer on the tensors
it reads (``spec.model.sources``). Keras layers get the names duofit's Keras backend gives them
(the spec's ``name``, else ``<type>_<index>``; a separate activation ``<name>_1``), which the
initial-weight table uses: each layer's weights in the layer's own ``get_weights`` order, read
from the bundle's ``init/layers.<i>.<param>`` arrays (duofit's layout is Keras' own).

Lines longer than the project's ruff width are split as ``ruff format`` splits them.

Example:
    >>> from duofit.common.loader import load_spec
    >>> from duofit.porting.keras_code import layer_code
    >>> spec = load_spec("examples/seed.toml")
    >>> codes = [layer_code(layer, i, False) for i, layer in enumerate(spec.model.layers)]
    >>> print(build_function(spec, codes, [False, False], (2,), "float32").strip().splitlines()[-2])
    x = keras.layers.Dense(1, activation=None, use_bias=True, name="dense_1")(x)
"""

from __future__ import annotations

import keyword
import re
import textwrap

from duofit.common.spec import BatchNormLayer, Conv2DLayer, DenseLayer, Spec
from duofit.common.spec.layers import AddLayer, ConcatenateLayer
from duofit.common.spec.layers_attention import ATTENTION_WEIGHTS, MultiHeadAttentionLayer
from duofit.common.spec.layers_conv1d import Conv1DLayer, LayerNormLayer
from duofit.common.spec.layers_embedding import EmbeddingLayer, PositionalEmbeddingLayer
from duofit.common.spec.layers_rnn import BidirectionalLayer, GRULayer, LSTMLayer, SimpleRNNLayer
from duofit.porting.keras_code import MASK_CONSUMERS, LayerCode

__all__ = ["WEIGHT_NAMES", "build_function", "keras_names", "weight_table"]

WIDTH = 120  # the project's ruff line length
_RESERVED = {"inputs", "x", "keras", "np", "tf", "math", "padding_mask", "attention_mask", "model", "data"}

_RNN = ("kernel", "recurrent_kernel", "bias")
# Each layer's weights in Keras' get_weights() order (as duofit/backends/keras/layers.py _NAMES).
WEIGHT_NAMES: dict[type, tuple[str, ...]] = {
    DenseLayer: ("kernel", "bias"),
    Conv2DLayer: ("kernel", "bias"),
    Conv1DLayer: ("kernel", "bias"),
    LayerNormLayer: ("gamma", "beta"),
    EmbeddingLayer: ("embeddings",),
    PositionalEmbeddingLayer: ("embeddings",),
    BatchNormLayer: ("gamma", "beta", "moving_mean", "moving_variance"),
    SimpleRNNLayer: _RNN,
    LSTMLayer: _RNN,
    GRULayer: _RNN,
    BidirectionalLayer: tuple(f"{side}_{n}" for side in ("forward", "backward") for n in _RNN),
    MultiHeadAttentionLayer: ATTENTION_WEIGHTS,
}


def keras_names(spec: Spec, codes: list[LayerCode]) -> list[list[str]]:
    """The Keras layer names of each spec layer, as duofit's Keras backend names them (``_graph``)."""
    taken = {layer.name for layer in spec.model.layers if layer.name}
    out = []
    for i, (layer, code) in enumerate(zip(spec.model.layers, codes, strict=True)):
        base = layer.name or _free(f"{layer.type}_{i}", taken)
        out.append([base] + [_free(f"{base}_{k}", taken) for k in range(1, len(code.calls))])
    return out


def _free(name: str, taken: set[str]) -> str:
    while name in taken:
        name += "_"
    taken.add(name)
    return name


def _variables(spec: Spec) -> list[str]:
    """The Python name of each layer's output in ``build_model``."""
    if spec.model.is_sequential:
        return ["x"] * len(spec.model.layers)
    out = []
    for i, layer in enumerate(spec.model.layers):
        name = layer.name
        ok = name is not None and name not in _RESERVED and not keyword.iskeyword(name) and name not in out
        out.append(name if ok and name is not None else f"x{i}")
    return out


def _call_args(layer: object, reads: list[str], masked: bool) -> str:
    """What a Keras layer is called on: a list for the merges, (query, value) for attention, a mask keyword."""
    if isinstance(layer, (AddLayer, ConcatenateLayer)):
        return f"[{', '.join(reads)}]"
    args = list(reads)
    if isinstance(layer, MultiHeadAttentionLayer):
        args = [reads[0], reads[-1]]  # self-attention reads one tensor as query and value
        if layer.causal:
            args.append("use_causal_mask=True")
    if masked and type(layer) in MASK_CONSUMERS:
        args.append(MASK_CONSUMERS[type(layer)])
    return ", ".join(args)


def statement(indent: str, target: str, func: str, args: list[str], call: str) -> str:
    """``target = func(args)(call)``, split as ruff formats it when longer than the line width.

    Ruff splits the last brackets first (``(call)``) when the line up to them fits; else the
    constructor's arguments, on one line or one per line.

    Example:
        >>> print(statement("", "x", "f", ["a" * 50, "b" * 50], "inputs_12345"))
        x = f(aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb)(
            inputs_12345
        )
        >>> print(statement("", "long_target_name", "f", ["a" * 50, "b" * 50], "x"))
        long_target_name = f(
            aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb
        )(x)
    """
    one = f"{indent}{target} = {func}({', '.join(args)})({call})"
    if len(one) <= WIDTH:
        return one
    inner = indent + "    "
    head = f"{indent}{target} = {func}({', '.join(args)})("
    if len(head) <= WIDTH and len(inner + call) <= WIDTH:  # ruff splits the last call's brackets first
        return f"{head}\n{inner}{call}\n{indent})"
    return "\n".join(_call_lines(indent, f"{target} = ", f"{func}({', '.join(args)})", f"({call})"))


def _call_lines(indent: str, prefix: str, call: str, suffix: str) -> list[str]:
    """``prefix + call + suffix`` (``call`` is ``func(args)``) as ruff formats it.

    On one line if it fits, else the arguments on one indented line, else one a line with a
    trailing comma, each split the same way.

    Example:
        >>> for line in _call_lines("", "x = ", "f(" + "a" * 60 + ", g(" + ", ".join(["b" * 30] * 3) + "))", ""):
        ...     print(line)
        x = f(
            aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa,
            g(bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb, bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb, bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb),
        )
    """
    one = f"{indent}{prefix}{call}{suffix}"
    if len(one) <= WIDTH or not call.endswith(")") or "(" not in call:
        return [one]
    func, inside = call.split("(", 1)
    args = _top_level(inside[:-1])
    joined = f"{indent}    {', '.join(args)}"
    if len(joined) <= WIDTH:
        return [f"{indent}{prefix}{func}(", joined, f"{indent}){suffix}"]
    lines = [f"{indent}{prefix}{func}("]
    for arg in args:
        keyword, _, value = arg.partition("=") if _KEYWORD_ARG.match(arg) else ("", "", arg)
        lines += _call_lines(indent + "    ", f"{keyword}=" if keyword else "", value, ",")
    return [*lines, f"{indent}){suffix}"]


_KEYWORD_ARG = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=(?!=)")


def _top_level(args: str) -> list[str]:
    """``args`` split at its top-level commas (not inside brackets or strings)."""
    parts, depth, quote, current = [], 0, "", ""
    for ch in args:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
            continue
        current += ch
    return [*parts, current.strip()] if current.strip() else parts


def _comments(indent: str, notes: list[str]) -> list[str]:
    width = WIDTH - len(indent) - 2
    return [f"{indent}# {line}" for note in notes for line in textwrap.wrap(note, width)]


def build_function(spec: Spec, codes: list[LayerCode], masked: list[bool], shape: tuple[int, ...], dtype: str) -> str:
    """Source of ``build_model()``: ``keras.Input``, one statement per Keras layer, the model.

    Args:
        spec: The spec.
        codes: :func:`duofit.porting.keras_code.layer_code` of each layer.
        masked: Whether each layer's input carries the padding mask (:func:`~duofit.common.spec.masks.mask_flow`).
        shape: One sample's input shape.
        dtype: The input's dtype (``int64`` for token ids).
    """
    ind = "    "
    lines = [
        "",
        "",
        "def build_model():",
        '    """The model, layer by layer, every setting explicit (Keras\' defaults are not duofit\'s)."""',
        f"{ind}inputs = keras.Input(shape={shape}, dtype={'DTYPE' if dtype != 'int64' else chr(34) + dtype + chr(34)})",
    ]
    if any(masked):
        lines += _comments(ind, ["the padding mask of the token ids (0 = padding), passed to the layers Keras masks"])
        lines.append(f"{ind}padding_mask = keras.ops.not_equal(inputs, 0)")
        if any(
            m and isinstance(layer, MultiHeadAttentionLayer) for m, layer in zip(masked, spec.model.layers, strict=True)
        ):
            lines += _comments(ind, ["attention: padded queries and padded keys are masked"])
            lines += [
                f"{ind}attention_mask = keras.ops.logical_and(",
                f"{ind}    keras.ops.expand_dims(padding_mask, 2), keras.ops.expand_dims(padding_mask, 1)",
                f"{ind})",
            ]
    outs = _variables(spec)
    names = keras_names(spec, codes)
    for i, (layer, code, src) in enumerate(zip(spec.model.layers, codes, spec.model.sources, strict=True)):
        reads = ["inputs" if j < 0 else outs[j] for j in src]
        lines += _comments(ind, code.notes)
        first = code.calls[0]
        args = [*first.args, f'name="{names[i][0]}"']
        lines.append(statement(ind, outs[i], first.func, args, _call_args(layer, reads, masked[i])))
        for extra, name in zip(code.calls[1:], names[i][1:], strict=True):
            lines.append(statement(ind, outs[i], extra.func, [*extra.args, f'name="{name}"'], outs[i]))
    lines.append(f'{ind}return StepLossModel(inputs, {outs[-1]}, name="model")')
    return "\n".join(lines) + "\n"


def weight_table(spec: Spec, codes: list[LayerCode], keys: set[str]) -> str:
    """``INITIAL_WEIGHTS`` (Keras layer name -> bundle keys, in the layer's order) and its loader.

    ``keys`` are the initial weights' names (``layers.<i>.<param>``): a weight a layer leaves out
    (``use_bias = false``) is not among them.
    """
    names = keras_names(spec, codes)
    rows = []
    for i, layer in enumerate(spec.model.layers):
        present = [n for n in WEIGHT_NAMES.get(type(layer), ()) if f"layers.{i}.{n}" in keys]
        if present:
            listed = ", ".join(f'"init/layers.{i}.{n}"' for n in present)
            row = f'    "{names[i][0]}": [{listed}],'
            if len(row) > WIDTH:
                row = (
                    f'    "{names[i][0]}": [\n'
                    + "".join(f'        "init/layers.{i}.{n}",\n' for n in present)
                    + "    ],"
                )
            rows.append(row)
    table = "INITIAL_WEIGHTS = {\n" + "\n".join(rows) + "\n}" if rows else "INITIAL_WEIGHTS = {}"
    return (
        "\n\n# each layer's initial weights (bundle keys), in the layer's own get_weights() order; duofit's\n"
        "# layout is Keras' own, so nothing is transposed or reordered\n"
        f"{table}\n"
        "\n\ndef set_initial_weights(model, data):\n"
        '    """Load the initial weights duofit drew (or imported) into each layer."""\n'
        "    for layer_name, keys in INITIAL_WEIGHTS.items():\n"
        "        model.get_layer(layer_name).set_weights([data[key] for key in keys])\n"
    )
