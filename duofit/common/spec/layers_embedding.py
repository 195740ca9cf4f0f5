"""Token embeddings and learned positional embeddings.

``embedding`` looks integer token ids ``(steps,)`` up in a table ``[input_dim, output_dim]``
(the same layout on both frameworks: Keras ``embeddings``, torch ``weight``). It must read
the model input, which must hold integer ids below ``input_dim``. ``mask_zero`` marks id 0 as
padding: Keras builds a mask (``ids != 0``) that later layers honour; the torch backend
computes the same mask from the ids. Row 0 stays an ordinary trainable row on both sides
(this is *not* torch's ``padding_idx``, which zeroes and freezes the row: cause
``embedding_padding_idx``).

``positional_embedding`` adds a learned table ``[max_len, features]`` to its input:
``x + table[:steps]``, inside the layer, so a padding mask passes through (Keras' ``Add``
would drop it when one input has no mask).

Initializers: the spec's default for both tables is Keras' ``uniform`` (U(-0.05, 0.05), the
``keras.layers.Embedding`` default); torch's ``nn.Embedding`` default N(0, 1) is
``torch_embedding`` (cause ``embedding_initializers``).

Example:
    >>> EmbeddingLayer(type="embedding", input_dim=100, output_dim=8).embeddings_init
    InitSpec(name='uniform', value=0.0)
    >>> PositionalEmbeddingLayer(type="positional_embedding", max_len=64).max_len
    64
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from duofit.common.spec.base import MAX_UNITS
from duofit.common.spec.layers import InitSpec, LayerBase, _coerce_init

__all__ = ["EmbeddingLayer", "PositionalEmbeddingLayer"]

# Longest sequence a positional table may cover.
MAX_LEN = 100_000


class EmbeddingLayer(LayerBase):
    """Token ids ``(steps,)`` -> vectors ``(steps, output_dim)``; ``input_dim`` counts id 0 too."""

    type: Literal["embedding"]
    input_dim: Annotated[int, Field(gt=0, le=MAX_UNITS)]
    output_dim: Annotated[int, Field(gt=0, le=MAX_UNITS)]
    mask_zero: bool = False
    embeddings_init: InitSpec = InitSpec(name="uniform")

    @field_validator("embeddings_init", mode="before")
    @classmethod
    def _init_from_string(cls, value: Any) -> Any:
        return _coerce_init(value)


class PositionalEmbeddingLayer(LayerBase):
    """``x + table[:steps]`` for ``x`` of shape ``(steps, features)``, ``steps <= max_len``."""

    type: Literal["positional_embedding"]
    max_len: Annotated[int, Field(gt=0, le=MAX_LEN)]
    embeddings_init: InitSpec = InitSpec(name="uniform")

    @field_validator("embeddings_init", mode="before")
    @classmethod
    def _init_from_string(cls, value: Any) -> Any:
        return _coerce_init(value)
