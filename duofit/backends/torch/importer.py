"""Import a torch ``nn.Module`` as spec layers and duofit-layout weights (``torch.fx``).

:func:`import_torch` traces the module with ``torch.fx.symbolic_trace``, runs it once on a
zero sample to learn every tensor's shape, maps the graph to spec layers
(:mod:`.import_graph`, :mod:`.import_modules`) and reads the weights through duofit's own
torch model of those layers, so the layout translation is the one the torch backend and
``duofit convert`` use (``layers.get_weights``; :data:`.export.PLAIN_LAYOUT` for the recurrent
and attention layers).

Layout: the imported spec reads the data as duofit has it, channels-last. When the module's
first layer is a convolution, pooling or ``BatchNorm2d`` it reads channels-first input
(images ``(N, C, H, W)``, sequences ``(N, C, L)``): the spec's data is then the module's input
with the channels moved last, which duofit's torch backend moves back. To compare outputs,
feed the module ``x.permute(0, 3, 1, 2)`` (images) or ``x.permute(0, 2, 1)`` (sequences) of
the spec's ``x`` (:func:`source_input`). Anything the spec cannot express exactly is refused.
"""

from __future__ import annotations

import contextlib
import io
import math
import traceback
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from duofit.backends.torch.export import PLAIN_LAYOUT
from duofit.backends.torch.import_graph import INPUT, Tables, Value, Walk, WeightSource
from duofit.backends.torch.import_modules import CHANNELS_FIRST_INPUTS, MODULES, TOKEN_INPUTS
from duofit.backends.torch.import_ops import FUNCTIONS, METHODS
from duofit.backends.torch.layers import build_model, get_weights
from duofit.common.errors import SpecError
from duofit.common.imported import ImportedModel
from duofit.common.loader import spec_from_validation_error
from duofit.common.spec.model import ModelSpec

__all__ = ["SUPPORTED", "import_torch", "source_input"]

# The batch size of the shape-finding sample run (any size works; 3 rarely equals a model's sizes)
_SAMPLE_BATCH = 3
_DTYPES = {torch.float32: "float32", torch.float64: "float64"}
_TORCH_DIR = str(Path(torch.__file__).parent)


def _names(table: dict[Any, Any]) -> list[str]:
    return sorted({getattr(k, "__name__", str(k)) for k in table})


SUPPORTED = (
    f"modules nn.{', nn.'.join(_names(MODULES))}; functions {', '.join(_names(FUNCTIONS))} (torch, "
    f"torch.nn.functional, operator); methods Tensor.{', Tensor.'.join(_names(METHODS))}"
)


def _trace(module: nn.Module, label: str) -> fx.GraphModule:
    """``torch.fx.symbolic_trace``; a forward it cannot trace is refused, naming the line fx stopped at."""
    try:
        gm = fx.symbolic_trace(module)
    except Exception as exc:  # fx raises TraceError, TypeError, ... from inside the user's forward
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(_TORCH_DIR)]
        at = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno} ({frames[-1].line})" if frames else ""
        raise SpecError(
            f"{label}: torch.fx cannot trace {type(module).__name__}.forward{at}: {type(exc).__name__}: {exc}; "
            "write forward without Python control flow on tensor values (no if/while/for on a tensor, len(x), "
            "x.item(); use torch.where or fixed sizes), then import again",
            path="source",
        ) from None
    gm.graph.eliminate_dead_code()  # the traced copy only: what does not reach the output is not a layer
    return gm


def _input_layout(gm: fx.GraphModule, label: str, rank: int) -> tuple[fx.Node, bool, bool]:
    """The input node, whether the module reads it channels-first, and whether it reads token ids."""
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder" and n.users]
    if len(placeholders) != 1:
        raise SpecError(
            f"{label}: forward reads {len(placeholders)} inputs ({', '.join(n.name for n in placeholders)}); a "
            "duofit model has one input (the data's features)",
            path="source",
        )
    modules = dict(gm.named_modules())
    readers = [modules[str(u.target)] for u in placeholders[0].users if u.op == "call_module"]
    channels_first = rank >= 2 and any(isinstance(m, CHANNELS_FIRST_INPUTS) for m in readers)
    return placeholders[0], channels_first, any(isinstance(m, TOKEN_INPUTS) for m in readers)


def source_input(x: np.ndarray, channels_first: bool) -> np.ndarray:
    """The module's input for duofit's (channels-last) ``x``: channels moved to axis 1 when it reads them so.

    Example (skipped: pytest cannot collect doctests of a package named ``torch``):
        >>> source_input(np.zeros((2, 8, 8, 3)), True).shape  # doctest: +SKIP
        (2, 3, 8, 8)
    """
    return np.ascontiguousarray(np.moveaxis(x, -1, 1)) if channels_first and x.ndim > 2 else x


def _dtype(module: nn.Module, label: str) -> torch.dtype:
    dtypes = {p.dtype for p in module.parameters() if p.is_floating_point()} or {torch.float32}
    if len(dtypes) != 1 or next(iter(dtypes)) not in _DTYPES:
        raise SpecError(
            f"{label}: parameters in {sorted(str(d) for d in dtypes)}; duofit trains float32 or float64",
            path="source",
        )
    return next(iter(dtypes))


def _shapes(gm: fx.GraphModule, sample: torch.Tensor, label: str) -> None:
    """Run the traced module once in eval mode (no statistics change) to record every tensor's shape."""
    modes = {m: m.training for m in gm.modules()}
    gm.eval()
    try:
        with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):  # ShapeProp prints the traceback itself
            ShapeProp(gm).propagate(sample)
    except Exception as error:  # the user's layers reject the sample: its shape comes from the data
        exc = error.__cause__ or error  # ShapeProp wraps the layer's own error
        raise SpecError(
            f"{label}: running it on a sample of shape {list(sample.shape)} (the data's, batch first) failed: "
            f"{type(exc).__name__}: {exc}; check the base spec's data (image_shape / sequence_shape) against the "
            "module's input",
            path="data",
        ) from None
    finally:
        for m, training in modes.items():
            m.train(training)


def _validated(layers: list[dict[str, Any]], label: str) -> ModelSpec:
    try:
        return ModelSpec.model_validate({"layers": layers})
    except ValidationError as exc:
        raise spec_from_validation_error(exc, f"{label} (imported)", {"layers": layers}) from None


def _holder(block: nn.Module, source: nn.Module) -> nn.Module:
    """Where duofit's block holds a torch-layout weight: its Linear/Conv (with an activation, inside a Sequential)."""
    kind = type(source) if isinstance(source, (nn.Linear, nn.Conv1d, nn.Conv2d)) else None
    return block if kind is None else next(m for m in block.modules() if isinstance(m, kind))


def _reordered(source: nn.Module, state: dict[str, np.ndarray], columns: np.ndarray) -> dict[str, np.ndarray]:
    """A layer's state with its input features in the spec's order (a flatten after a conv)."""
    if isinstance(source, nn.Linear):
        return {**state, "weight": state["weight"][:, columns]}
    return {k: v[columns] if v.ndim == 1 and len(v) == len(columns) else v for k, v in state.items()}


def _weights(
    model: ModelSpec, sources: list[WeightSource], shape: tuple[int, ...], dtype: str
) -> dict[str, np.ndarray]:
    """The module's weights in duofit's layout, read through duofit's torch model of ``model``."""
    spec: Any = SimpleNamespace(model=model)  # build_model and get_weights read spec.model only
    _, blocks = build_model(spec, shape, dtype)
    for src in sources:
        layer = model.layers[src.index]
        state = {k: v.detach().cpu().numpy() for k, v in src.module.state_dict().items()}
        if src.columns is not None:
            state = _reordered(src.module, state, src.columns)
        block = blocks[src.index]
        if type(layer) in PLAIN_LAYOUT:  # recurrent and attention blocks hold Keras' layout
            state = PLAIN_LAYOUT[type(layer)][1](layer, state)
        else:
            block = _holder(block, src.module)
        block.load_state_dict({k: torch.as_tensor(np.ascontiguousarray(v)) for k, v in state.items()}, strict=True)
    return get_weights(blocks, spec)


def _checked_output(walk: Walk, out: Value) -> None:
    last = walk.layers[-1]["name"] if walk.layers else INPUT
    output = walk.nodes[-1]
    if out.channels_first:
        walk.refuse(output, "returns a channels-first tensor; duofit's outputs are channels-last", "pool or flatten")
    if out.order is not None:
        walk.refuse(output, "returns features flattened in torch's (C, H, W) order", "end with an nn.Linear")
    if out.source != last:
        walk.refuse(output, f"returns {out.source!r}, not the last layer", "return the last layer's output")
    for rnn in walk.recurrents:
        if "return_sequences" not in rnn.cell:
            walk.refuse(output, f"never reads the output of recurrent layer {rnn.doc['name']!r}")


def import_torch(module: Any, input_shape: tuple[int, ...], *, source: str | None = None) -> ImportedModel:
    """Read ``module`` into spec layers and duofit-layout weights.

    Args:
        module: A live ``torch.nn.Module`` (its current weights are imported; nothing changes in it).
        input_shape: One sample's shape as duofit's data has it (channels last), e.g. ``(8, 8, 1)``.
        source: How to name the module in messages (default: ``torch module <class>``).

    Returns:
        The layers (settings written out), the weights (``layers.<i>.<param>``, Keras layout),
        ``input_shape``, and notes on what was translated.

    Raises:
        SpecError: not a module, a forward fx cannot trace, or a module, function or method
            with no exact spec equivalent (the message names the node and lists what is supported).

    Example (skipped: pytest cannot collect doctests of a package named ``torch``):
        >>> m = import_torch(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)), (4,))  # doctest: +SKIP
        >>> [layer["type"] for layer in m.layers], m.layers[0]["activation"]  # doctest: +SKIP
        (['dense', 'dense'], 'relu')
    """
    label = source or f"torch module {type(module).__name__}"
    if not isinstance(module, nn.Module):
        raise SpecError(f"{label}: a {type(module).__name__} is not a torch.nn.Module", path="source")
    shape = tuple(int(n) for n in input_shape)
    dtype = _dtype(module, label)
    gm = _trace(module, label)
    node, channels_first, tokens = _input_layout(gm, label, len(shape))
    dims = (shape[-1], *shape[:-1]) if channels_first else shape
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    sample = torch.zeros((_SAMPLE_BATCH, *dims), dtype=torch.long if tokens else dtype, device=device)
    _shapes(gm, sample, label)
    walk = Walk(gm, label, Tables(MODULES, FUNCTIONS, METHODS, SUPPORTED))
    _checked_output(walk, walk.run(channels_first))
    model = _validated(walk.layers, label)
    weights = _weights(model, walk.weights, shape, _DTYPES[dtype])
    notes = [
        f"{label}: {len(walk.layers)} layers traced with torch.fx, weights imported ({math.prod(shape)} inputs)",
        f"{label}: initializers written as torch's defaults (torch_linear, torch_rnn, torch_embedding: what its "
        "modules draw); unused here: the initial weights are the module's own (model.weights)",
    ]
    if channels_first:
        notes.append(
            f"{label} reads channels-first input ({node.name} as {list(dims)}); the spec reads duofit's channels-last "
            f"data ({list(shape)}) and the torch backend moves the channels: feed the module x moved to channels-first"
        )
    return ImportedModel(
        layers=walk.layers,
        framework="torch",
        source=label,
        weights=weights,
        input_shape=shape,
        notes=notes + walk.notes,
    )
