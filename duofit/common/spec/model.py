"""The ``model`` section: a list of layers that is also a graph.

Each layer reads the layer listed just before it, unless it names its ``inputs``
(``"input"`` is the model input); the model's output is the last layer. A plain list is
therefore the sequential shorthand, and ``name`` + ``inputs`` express residual blocks and
skip connections. Layers must be listed after the layers they read, which also rules out
cycles; every layer but the last must be read by a later one.

Example:
    >>> ModelSpec.model_validate({"layers": [{"type": "dense", "units": 2}]}).layers[0].units
    2
    >>> residual = ModelSpec.model_validate({"layers": [
    ...     {"type": "dense", "units": 4, "name": "stem"},
    ...     {"type": "dense", "units": 4, "activation": "relu", "name": "block"},
    ...     {"type": "add", "inputs": ["stem", "block"]},
    ...     {"type": "dense", "units": 1}]})
    >>> residual.sources, residual.is_sequential
    ([(-1,), (0,), (0, 1), (2,)], False)
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Annotated

from pydantic import Field, model_validator

from duofit.common.spec.base import FieldProblem, SpecModel
from duofit.common.spec.layers import INPUT, DenseLayer, LayerBase
from duofit.common.spec.layerset import LayerSpec

__all__ = ["ModelSpec", "layer_sources"]

# where the model input sits in a layer's sources
INPUT_INDEX = -1
# layer names listed in one error message (a model may have up to 1000 layers)
MAX_NAMES_SHOWN = 30


def layer_sources(layers: Sequence[LayerBase], where: str = "model.layers") -> list[tuple[int, ...]]:
    """The layers each layer reads, as indices into ``layers`` (``-1`` = the model input).

    Args:
        layers: The layer specs, in order.
        where: Path prefix of the layer list in error messages.

    Raises:
        FieldProblem: a duplicate name, an unknown name, a name of a later layer (or of the
            layer itself), or a layer whose output nothing reads (path ``<where>[i]...``).

    Example:
        >>> from duofit.common.spec.layers import AddLayer, DenseLayer
        >>> layer_sources([DenseLayer(type="dense", units=2, name="a"), DenseLayer(type="dense", units=2),
        ...                AddLayer(type="add", inputs=["a", "input"])])
        Traceback (most recent call last):
        ...
        duofit.common.spec.base.FieldProblem: no later layer reads it (dense) and it is not the output ...
    """
    position = {layer.name: i for i, layer in enumerate(layers) if layer.name is not None}
    known: dict[str, int] = {INPUT: INPUT_INDEX}
    sources: list[tuple[int, ...]] = []
    for i, layer in enumerate(layers):
        if layer.inputs is None:
            sources.append((i - 1,) if i > 0 else (INPUT_INDEX,))
        else:
            path = f"{where}[{i}].inputs"
            sources.append(
                tuple(_resolve(ref, f"{path}[{k}]", known, position, i) for k, ref in enumerate(layer.inputs))
            )
        if layer.name is not None:
            if layer.name in known:
                raise FieldProblem(
                    f"{where}[{i}].name",
                    f"the name {layer.name!r} is already taken by model.layers[{known[layer.name]}]; names must be "
                    "unique: rename one of them (and the inputs that refer to it)",
                )
            known[layer.name] = i
    _all_used(layers, sources, where)
    return sources


def _resolve(ref: str, path: str, known: dict[str, int], position: dict[str, int], here: int) -> int:
    if ref in known:
        return known[ref]
    if position.get(ref) == here:
        raise FieldProblem(
            path,
            f"{ref!r} is this layer itself (model.layers[{here}]), which is not listed before this layer: a layer "
            f"cannot read its own output (a cycle); name an earlier one of: {_shown(known)}",
        )
    if ref in position:
        raise FieldProblem(
            path,
            f"{ref!r} is model.layers[{position[ref]}], which is not listed before this layer: list the layers "
            "in the order they run (a layer reads only earlier layers; that also rules out cycles)",
        )
    close = difflib.get_close_matches(ref, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise FieldProblem(
        path, f"no layer named {ref!r}; layers so far: {_shown(known)} ({hint}give a layer that name with name = ...)"
    )


def _shown(names: Iterable[str]) -> str:
    """The names, the first :data:`MAX_NAMES_SHOWN` of them, in an error message."""
    listed = list(names)
    more = f", ... ({len(listed) - MAX_NAMES_SHOWN} more)" if len(listed) > MAX_NAMES_SHOWN else ""
    return ", ".join(listed[:MAX_NAMES_SHOWN]) + more


def _all_used(layers: Sequence[LayerBase], sources: list[tuple[int, ...]], where: str) -> None:
    read = {j for src in sources for j in src}
    for i in range(len(sources) - 1):
        if i not in read:
            named = f" {layers[i].name!r}" if layers[i].name else ""
            raise FieldProblem(
                f"{where}[{i}]",
                f"no later layer reads it ({layers[i].type}{named}) and it is not the output (the last layer): "
                "list its name in a later layer's inputs, or remove it",
            )


class ModelSpec(SpecModel):
    """An ordered list of layers; the input size comes from the data, the output is the last layer."""

    layers: Annotated[list[LayerSpec], Field(min_length=1, max_length=1000)]
    weights: str | None = Field(
        default=None,
        max_length=4096,
        description="Initial weights from a file (.npz or .safetensors, names layers.<i>.<param> in the Keras "
        "layout, e.g. written by `duofit import`) instead of drawn from train.seed; a relative path is read "
        "from the spec file's folder.",
    )

    @model_validator(mode="after")
    def _has_dense(self) -> ModelSpec:
        if not any(isinstance(layer, DenseLayer) for layer in self.layers):
            raise FieldProblem("layers", "the model needs at least one layer of type 'dense'")
        layer_sources(self.layers, where="layers")
        return self

    @property
    def is_sequential(self) -> bool:
        """True when no layer names its ``inputs``: every layer reads the one before it."""
        return all(layer.inputs is None for layer in self.layers)

    @property
    def sources(self) -> list[tuple[int, ...]]:
        """The layers each layer reads (``-1`` = the model input); see :func:`layer_sources`."""
        return layer_sources(self.layers)

    @property
    def last_dense_index(self) -> int:
        """Index of the last dense layer (the output layer; every model has one).

        Example:
            >>> ModelSpec.model_validate({"layers": [{"type": "dense", "units": 2},
            ...                                      {"type": "activation", "activation": "relu"}]}).last_dense_index
            0
        """
        return max(i for i, layer in enumerate(self.layers) if isinstance(layer, DenseLayer))
