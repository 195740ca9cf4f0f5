"""A ``torch.fx`` graph -> spec layers: the walk over the nodes and the values it tracks.

:class:`Walk` visits the traced graph in order and gives every node a :class:`Value`: which
spec layer produces the tensor (its ``name``, or ``"input"``) and how the torch tensor relates
to the spec's one. duofit's data and layers are channels-last; a torch conv model holds images
as ``(N, C, H, W)`` and sequences for ``nn.Conv1d`` as ``(N, C, L)``. So a value is either
*as the spec has it* or *channels-first* (the spec's tensor with its last axis moved to axis
1). A permute or transpose that only moves the channels axis changes that flag and adds no
layer; a flatten of a channels-first value adds a ``flatten`` layer (channels-last order) and
remembers in ``order`` which torch feature each spec feature is, so the ``nn.Linear`` that
reads it gets its columns permuted from ``(C, H, W)`` to ``(H, W, C)`` order.

Some values are not tensors yet: the ``(output, h_n)`` tuple of a recurrent module and its
parts (whether the spec layer returns sequences or the last step is decided by how the
forward reads them), ``nn.MultiheadAttention``'s ``(output, weights)`` tuple, the pooled
``(N, C, 1, 1)`` of ``AdaptiveAvgPool2d(1)`` (a flatten must follow), and sizes
(``x.size(0)``) that a ``view`` reads. Anything the spec cannot express exactly is refused
with a :class:`SpecError` naming the node, where it is and what is supported.

The handlers are tables: ``nn`` modules in :mod:`duofit.backends.torch.import_modules`,
functions (``torch.cat``, ``F.relu``, ``operator.add`` ...) and tensor methods (``view``,
``permute`` ...) in :mod:`duofit.backends.torch.import_ops`; :class:`Tables` hands them to the walk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import numpy as np
from torch import fx, nn

from duofit.common.errors import SpecError

__all__ = ["INPUT", "Handler", "Recurrent", "Tables", "Value", "Walk", "WeightSource"]

INPUT = "input"  # the spec's name of the model input
Shape = tuple[int, ...]
# Value kinds: a tensor, or something only certain operations may read (module docstring)
TENSOR, POOLED, ATTN = "tensor", "pooled", "attn"
RNN, RNN_SEQ, RNN_STATES, RNN_H, RNN_DIR = "rnn", "rnn_seq", "rnn_states", "rnn_h", "rnn_dir"
SHAPE, BATCH, SIZE = "shape", "batch", "size"
# Most characters of a spec layer name (duofit.common.spec.layers.LayerName)
_MAX_NAME = 64


@dataclass
class Recurrent:
    """A recurrent spec layer whose ``return_sequences`` (and ``merge``) its readers decide."""

    doc: dict[str, Any]  # the spec layer: the recurrent one, or the bidirectional around it
    cell: dict[str, Any]  # the recurrent layer's document (``doc`` itself unless bidirectional)
    bidirectional: bool


@dataclass(frozen=True)
class Value:
    """What one graph node holds, seen from the spec (module docstring)."""

    source: str  # the spec layer that computes it, or INPUT
    shape: Shape = ()  # the torch tensor's shape, batch first (from a sample run)
    channels_first: bool = False
    order: np.ndarray | None = field(default=None, compare=False)  # spec feature k = torch feature order[k]
    kind: str = TENSOR
    rnn: Recurrent | None = None
    direction: int = 0  # RNN_DIR: 0 forward, 1 backward
    fold: dict[str, Any] | None = None  # the dense/conv document an activation may fold into


@dataclass
class WeightSource:
    """Spec layer ``index`` takes its weights from ``module``; ``columns`` reorders its input features."""

    index: int
    module: nn.Module
    columns: np.ndarray | None = None


Handler = Callable[["Walk", fx.Node], Value]


@dataclass(frozen=True)
class Tables:
    """The handlers: ``nn`` module type, function (``torch.cat``), tensor method name (``"view"``)."""

    modules: dict[type, Handler]
    functions: dict[Any, Handler]
    methods: dict[str, Handler]
    supported: str  # the same, listed for messages


def _qualified(target: Any) -> str:
    module = getattr(target, "__module__", None) or "torch"
    module = {"_operator": "operator", "torch._C._nn": "torch.nn.functional", "torch._C": "torch"}.get(module, module)
    return f"{module}.{getattr(target, '__name__', target)}"


class Walk:
    """One pass over a traced graph that writes the spec's layers (see the module docstring).

    Args:
        gm: The traced module; every tensor node carries ``meta["tensor_meta"]`` (shapes).
        label: The source, for messages (``torch module Net``).
        tables: The handlers.
    """

    def __init__(self, gm: fx.GraphModule, label: str, tables: Tables) -> None:
        self.gm, self.label, self.tables = gm, label, tables
        self.submodules = dict(gm.named_modules())
        self.nodes = list(gm.graph.nodes)
        self.layers: list[dict[str, Any]] = []
        self.weights: list[WeightSource] = []
        self.values: dict[fx.Node, Value] = {}
        self.recurrents: list[Recurrent] = []
        self.notes: list[str] = []
        self.called: set[str] = set()

    # ---- messages ------------------------------------------------------------------------

    def describe(self, node: fx.Node) -> str:
        """``node 'fc' (module fc: torch.nn.Linear)``-style description of a node."""
        if node.op == "call_module":
            mod = self.submodules[str(node.target)]
            what = f"module {node.target}: {type(mod).__module__.split('.modules')[0]}.{type(mod).__name__}"
        elif node.op == "call_function":
            what = f"function {_qualified(node.target)}"
        elif node.op == "call_method":
            what = f"method Tensor.{node.target}"
        else:
            what = f"{node.op} {node.target}"
        return f"node {node.name!r} ({what})"

    def where(self, node: fx.Node) -> str:
        """Where ``node`` is: its description, its place in the graph and what it reads."""
        reads = [a.name for a in node.all_input_nodes]
        place = f"step {self.nodes.index(node) + 1} of {len(self.nodes)} of the traced forward"
        return f"{self.describe(node)}, {place}, reading {', '.join(reads) or 'constants only'}"

    def refuse(self, node: fx.Node, problem: str, fix: str = "") -> NoReturn:
        """Raise the SpecError for ``node``: where it is, what is wrong, the fix."""
        tail = f"; {fix}" if fix else ""
        raise SpecError(f"{self.label}: {self.where(node)}: {problem}{tail}", path="source")

    def unsupported(self, node: fx.Node) -> NoReturn:
        """Refuse an operation that has no spec layer."""
        self.refuse(
            node,
            "no duofit layer computes it (nothing is approximated)",
            f"supported: {self.tables.supported}; rewrite forward with those, or leave this model out",
        )

    # ---- values --------------------------------------------------------------------------

    def shape(self, node: fx.Node) -> Shape:
        """The torch shape of ``node``'s tensor on the sample run."""
        meta = node.meta.get("tensor_meta")
        if meta is None or not hasattr(meta, "shape"):
            self.refuse(node, "gives no single tensor")
        return tuple(int(n) for n in meta.shape)

    def module(self, node: fx.Node) -> nn.Module:
        """The ``nn`` module a ``call_module`` node calls."""
        return self.submodules[str(node.target)]

    def value(self, node: fx.Node, arg: Any) -> Value:
        """The value of ``arg`` (an input of ``node``), whatever its kind."""
        if not isinstance(arg, fx.Node):
            self.refuse(node, f"reads the constant {arg!r} where a tensor is expected (no spec layer takes one)")
        return self.values[arg]

    def tensor(self, node: fx.Node, arg: Any) -> Value:
        """The tensor value of ``arg``; a recurrent module's output read as a whole is its sequence output."""
        v = self.value(node, arg)
        if v.kind == RNN_SEQ:
            return self.recurrent_output(node, v, sequences=True, shape=v.shape)
        if v.kind != TENSOR:
            self.refuse(node, f"reads {arg.name}, which is {_NOT_A_TENSOR.get(v.kind, 'not a tensor')}")
        return v

    def input(self, node: fx.Node) -> Value:
        """The one tensor a module call reads (``module(x)``)."""
        if len(node.args) != 1 or node.kwargs:
            self.refuse(node, "is called with more than one argument", "call it as module(x)")
        return self.tensor(node, node.args[0])

    def recurrent_output(self, node: fx.Node, v: Value, sequences: bool, shape: Shape, merge: str = "concat") -> Value:
        """The recurrent layer's output as a tensor: every step (``sequences``) or the last."""
        assert v.rnn is not None
        self._decide(node, v.rnn.cell, "return_sequences", sequences)
        if v.rnn.bidirectional:
            self._decide(node, v.rnn.doc, "merge", merge)
        return Value(v.source, shape)

    def _decide(self, node: fx.Node, doc: dict[str, Any], key: str, choice: Any) -> None:
        if key in doc and doc[key] != choice:
            self.refuse(
                node,
                f"reads the recurrent module's output as {key} = {choice!r}, but an earlier node read it as "
                f"{doc[key]!r}; a spec layer has one output",
                "use either the sequence (output) or the last step (output[:, -1] / h_n), not both",
            )
        doc[key] = choice

    # ---- layers --------------------------------------------------------------------------

    def _name(self, node: fx.Node) -> str:
        name = node.name if node.name != INPUT else "input_layer"
        name = name[:_MAX_NAME] if name[0].isalpha() or name[0] == "_" else f"_{name}"[:_MAX_NAME]
        taken = {d["name"] for d in self.layers}
        k = 1
        while name in taken:
            name, k = f"{name[: _MAX_NAME - 4]}_{k}", k + 1
        return name

    def emit(
        self,
        node: fx.Node,
        doc: dict[str, Any],
        inputs: Sequence[Value],
        *,
        weights: nn.Module | None = None,
        columns: np.ndarray | None = None,
        like: Value | None = None,
        channels_first: bool = False,
        shape: Shape | None = None,
        fold: bool = False,
    ) -> Value:
        """Append spec layer ``doc`` reading ``inputs``; its output value.

        Args:
            node: The node the layer computes.
            doc: The layer's document (``name`` and, unless it reads the previous layer, ``inputs`` are added).
            inputs: The values it reads.
            weights: The module whose parameters become the layer's weights.
            columns: Reorder of the input features for those weights (a flatten after a conv).
            like: An elementwise layer: the output keeps this value's layout and feature order.
            channels_first: The output's layout (when not ``like``).
            shape: The output's torch shape (default: the node's).
            fold: An activation reading only this output may become the layer's ``activation``.
        """
        name = self._name(node)
        previous = self.layers[-1]["name"] if self.layers else INPUT
        sources = [v.source for v in inputs]
        doc = {**doc, "name": name} if sources == [previous] else {**doc, "name": name, "inputs": sources}
        self.layers.append(doc)
        if weights is not None:
            self.weights.append(WeightSource(len(self.layers) - 1, weights, columns))
        out_shape = shape if shape is not None else self.shape(node)
        if like is not None:
            return Value(name, out_shape, like.channels_first, like.order)
        return Value(name, out_shape, channels_first, fold=doc if fold and len(node.users) == 1 else None)

    # ---- the walk ------------------------------------------------------------------------

    def _handler(self, node: fx.Node) -> Handler | None:
        if node.op == "call_module":
            mod = self.module(node)
            if any(True for _ in mod.parameters(recurse=True)):
                if str(node.target) in self.called:
                    self.refuse(node, "calls a module with weights a second time", "spec layers do not share weights")
                self.called.add(str(node.target))
            return self.tables.modules.get(type(mod))
        if node.op == "call_function":
            return self.tables.functions.get(node.target)
        if node.op == "call_method":
            return self.tables.methods.get(str(node.target))
        return None

    def run(self, channels_first: bool) -> Value:
        """Walk the graph; the output's value (the layers are in :attr:`layers`)."""
        output: Value | None = None
        for node in self.nodes:
            if node.op == "placeholder":
                if node.users:
                    self.values[node] = Value(INPUT, self.shape(node), channels_first and len(self.shape(node)) > 2)
            elif node.op == "output":
                result = node.args[0]
                if isinstance(result, (tuple, list, dict)):
                    self.refuse(node, "returns several values", "return one tensor (the model's output)")
                output = self.tensor(node, result)
            else:
                handler = self._handler(node)
                if handler is None:
                    self.unsupported(node)
                self.values[node] = handler(self, node)
        assert output is not None  # every traced graph ends in an output node
        return output


_NOT_A_TENSOR = {
    POOLED: "the (N, C, 1, 1) output of an adaptive average pool: duofit's global average pool gives (N, C); "
    "flatten it right after (torch.flatten(x, 1) or x.view(x.size(0), -1))",
    RNN: "the (output, h_n) tuple of a recurrent module: unpack it (output = rnn(x)[0], or h_n)",
    RNN_STATES: "an LSTM's (h_n, c_n) pair: use h_n (its [0])",
    RNN_H: "a recurrent module's h_n: use h_n[-1] (one direction), or torch.cat([h_n[0], h_n[1]], dim=1) or "
    "h_n[0] + h_n[1] (bidirectional)",
    RNN_DIR: "one direction of a bidirectional module's h_n: join both with torch.cat([h_n[0], h_n[1]], dim=1) "
    "or h_n[0] + h_n[1]",
    ATTN: "the (output, weights) tuple of nn.MultiheadAttention: use its [0]",
    SHAPE: "a shape, not a tensor",
    BATCH: "the batch size, not a tensor",
    SIZE: "a size, not a tensor",
}
