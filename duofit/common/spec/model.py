"""The ``model`` section: an ordered stack of layers.

Example:
    >>> ModelSpec.model_validate({"layers": [{"type": "dense", "units": 2}]}).layers[0].units
    2
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from duofit.common.spec.base import FieldProblem, SpecModel
from duofit.common.spec.layers import DenseLayer, LayerSpec

__all__ = ["ModelSpec"]


class ModelSpec(SpecModel):
    """An ordered stack of layers; the input size comes from the data."""

    layers: Annotated[list[LayerSpec], Field(min_length=1, max_length=1000)]

    @model_validator(mode="after")
    def _has_dense(self) -> ModelSpec:
        if not any(isinstance(layer, DenseLayer) for layer in self.layers):
            raise FieldProblem("layers", "the model needs at least one layer of type 'dense'")
        return self

    @property
    def last_dense_index(self) -> int:
        """Index of the last dense layer (the output layer; every model has one).

        Example:
            >>> ModelSpec.model_validate({"layers": [{"type": "dense", "units": 2},
            ...                                      {"type": "activation", "activation": "relu"}]}).last_dense_index
            0
        """
        return max(i for i, layer in enumerate(self.layers) if isinstance(layer, DenseLayer))
