"""The ``multi_head_attention`` layer spec, its shape rule and its parameter count.

Keras' ``MultiHeadAttention`` is the model: ``key_dim`` and ``value_dim`` are sizes **per
head**, so the projection width ``num_heads * key_dim`` is free of the model width (torch's
``nn.MultiheadAttention`` takes the *total* ``embed_dim`` instead: cause ``mha_key_dim``).
Weights are stored in Keras' layout: ``query_kernel (E, heads, key_dim)``, ``query_bias
(heads, key_dim)``, the same for ``key_*`` and ``value_*`` (``value_dim``), ``output_kernel
(heads, value_dim, E)``, ``output_bias (E,)``; ``E`` = the query's last dimension, which is
also the output width (Keras' default ``output_shape``).

Inputs: one (self-attention: query = value = key) or two, in Keras' ``call(query, value)``
order: ``inputs = ["query_layer", "value_layer"]``; the key is the value, as Keras defaults.
Both must have the same feature width (the shared initial weights are drawn from the
query's width). A padding mask (an ``embedding`` with ``mask_zero`` upstream) masks padded
keys and padded queries as Keras does; ``causal`` masks keys after the query's step
(top-left aligned lower triangle, also for cross-attention).

Example:
    >>> layer = MultiHeadAttentionLayer(type="multi_head_attention", num_heads=2, key_dim=4)
    >>> layer.head_value_dim, attention_parameters(layer, 8)
    (4, 288)
    >>> attention_output_shape(layer, [(5, 8)], "model.layers[2]")
    (5, 8)
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator

from duofit.common.spec.base import MAX_UNITS, FieldProblem
from duofit.common.spec.layers import LayerBase

__all__ = [
    "ATTENTION_WEIGHTS",
    "MultiHeadAttentionLayer",
    "attention_flops",
    "attention_output_shape",
    "attention_parameters",
    "attention_settings",
]

# The weights of a multi_head_attention layer, in Keras' ``get_weights()`` order
# (keras/src/layers/attention/multi_head_attention.py ``build``: query, key, value, output).
ATTENTION_WEIGHTS: tuple[str, ...] = (
    "query_kernel",
    "query_bias",
    "key_kernel",
    "key_bias",
    "value_kernel",
    "value_bias",
    "output_kernel",
    "output_bias",
)

Shape = tuple[int, ...]


class MultiHeadAttentionLayer(LayerBase):
    """Scaled dot-product attention over ``num_heads`` heads (Keras ``MultiHeadAttention``)."""

    min_inputs: ClassVar[int] = 1
    max_inputs: ClassVar[int] = 2

    type: Literal["multi_head_attention"]
    num_heads: Annotated[int, Field(gt=0, le=MAX_UNITS)]
    key_dim: Annotated[int, Field(gt=0, le=MAX_UNITS, description="Size of each head for query and key.")]
    value_dim: Annotated[int, Field(gt=0, le=MAX_UNITS)] | None = Field(
        default=None, description="Size of each head for the value; default: key_dim."
    )
    use_bias: bool = True
    causal: bool = Field(default=False, description="Each query step attends only to key steps up to its own.")
    dropout: float = Field(default=0.0, description="Must be 0: see the validator for why and what to use.")

    @field_validator("dropout")
    @classmethod
    def _no_dropout(cls, value: float) -> float:
        if value != 0:
            raise ValueError(
                f"is {value}, but attention dropout is not supported: both frameworks drop attention "
                "probabilities with masks from their own random streams, so training cannot be compared "
                "(and Keras switches to another kernel when dropout > 0); put a 'dropout' layer after the "
                "attention layer instead (dropout = 0 here)"
            )
        return value

    @property
    def head_value_dim(self) -> int:
        """``value_dim``, or ``key_dim`` when not given (Keras' rule)."""
        return self.value_dim or self.key_dim


def attention_output_shape(layer: MultiHeadAttentionLayer, ins: list[Shape | None], where: str) -> Shape | None:
    """The output shape (the query's shape) of a ``multi_head_attention`` layer.

    Raises:
        FieldProblem: a query or value that is not a sequence ``(steps, features)``, or a value
            whose feature width differs from the query's (both shapes in the message).

    Example:
        >>> layer = MultiHeadAttentionLayer(type="multi_head_attention", num_heads=1, key_dim=2)
        >>> attention_output_shape(layer, [(5, 8), (3, 6)], "model.layers[4]")
        Traceback (most recent call last):
        ...
        duofit.common.spec.base.FieldProblem: query [5, 8] and value [3, 6] ...
    """
    for k, shape in enumerate(ins):
        if shape is not None and len(shape) != 2:
            raise FieldProblem(
                f"{where}.inputs[{k}]" if len(ins) > 1 else f"{where}.type",
                f"multi_head_attention needs sequences [steps, features], got {list(shape)}; read an embedding, "
                "a recurrent layer with return_sequences, a conv1d, or add a 'reshape' layer",
            )
    query = ins[0]
    if len(ins) == 2 and query is not None and ins[1] is not None and ins[1][-1] != query[-1]:
        raise FieldProblem(
            f"{where}.inputs[1]",
            f"query {list(query)} and value {list(ins[1])} must have the same feature width; add a 'dense' "
            f"layer with units = {query[-1]} before the value",
        )
    return query


def attention_parameters(layer: MultiHeadAttentionLayer, features: int) -> int:
    """Trainable parameters of a ``multi_head_attention`` layer whose query has ``features`` per step.

    Example:
        >>> attention_parameters(MultiHeadAttentionLayer(type="multi_head_attention", num_heads=2, key_dim=3,
        ...                      use_bias=False), 4)
        96
    """
    qk = layer.num_heads * layer.key_dim
    v = layer.num_heads * layer.head_value_dim
    kernels = 2 * features * qk + features * v + v * features
    biases = 2 * qk + v + features if layer.use_bias else 0
    return kernels + biases


def attention_flops(layer: MultiHeadAttentionLayer, query_steps: int, value_steps: int, features: int) -> int:
    """Forward FLOPs per sample (2 per multiply-add): the four projections, ``q . k`` and ``p . v``.

    Biases, the softmax and the masks are O(activations) and not counted (the benchmark's convention).

    Example:
        >>> attention_flops(MultiHeadAttentionLayer(type="multi_head_attention", num_heads=2, key_dim=4), 10, 10, 8)
        8320
    """
    n, dk, dv = layer.num_heads, layer.key_dim, layer.head_value_dim
    t, s, e = query_steps, value_steps, features
    projections = t * e * n * dk + s * e * n * dk + s * e * n * dv + t * n * dv * e
    attention = t * s * n * dk + t * s * n * dv
    return 2 * (projections + attention)


def attention_settings(layers: list[Any], *fields: str) -> list[tuple[Any, ...]]:
    """The given fields of every ``multi_head_attention`` layer, in order (the causes catalogue compares them).

    Example:
        >>> attention_settings([MultiHeadAttentionLayer(type="multi_head_attention", num_heads=2, key_dim=3)],
        ...                    "num_heads", "causal")
        [(2, False)]
    """
    return [tuple(getattr(layer, f) for f in fields) for layer in layers if isinstance(layer, MultiHeadAttentionLayer)]
