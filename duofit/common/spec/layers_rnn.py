"""Recurrent layer specs: ``simple_rnn``, ``lstm``, ``gru`` and ``bidirectional``, with their shape rule.

Weights are stored in Keras' layout (``kernel (features, G*units)``, ``recurrent_kernel
(units, G*units)``, one ``bias``; ``G`` = 1, 4, 3 gates); the torch backend translates them
(gate order, transposition, the second bias). The defaults are Keras': glorot kernel,
orthogonal recurrent kernel, zero bias, ``unit_forget_bias`` for an LSTM. torch's own default
(``U(+-1/sqrt(units))`` for every weight, no forget bias) is ``kernel_init = recurrent_init =
bias_init = "torch_rnn"`` with ``unit_forget_bias = false``.

Example:
    >>> layer = LSTMLayer(type="lstm", units=4)
    >>> layer.recurrent_init.name, layer.unit_forget_bias, layer.gates
    ('orthogonal', True, 4)
    >>> rnn_output_shape(BidirectionalLayer(type="bidirectional", layer={"type": "gru", "units": 3}),
    ...                  [(8, 5)], "model.layers[0]")
    (6,)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal, Union, get_args

from pydantic import Field, field_validator, model_validator

from duofit.common.spec.base import MAX_UNITS, FieldProblem, FiniteFloat, SpecModel
from duofit.common.spec.layers import LayerBase
from duofit.common.spec.vocab import InitName

__all__ = [
    "RECURRENT_LAYERS",
    "RNN_ACTIVATIONS",
    "RNN_INITIALIZERS",
    "BidirectionalLayer",
    "GRULayer",
    "LSTMLayer",
    "RNNActivation",
    "RNNInitName",
    "RNNInitSpec",
    "RecurrentBase",
    "SimpleRNNLayer",
    "rnn_output_shape",
    "recurrent_settings",
    "rnn_parameters",
]

# Activations a recurrent layer may name (Keras takes each; torch's cells fix some, see the backends).
RNNActivation = Literal["tanh", "sigmoid", "relu", "hard_sigmoid", "linear"]
RNN_ACTIVATIONS: tuple[str, ...] = get_args(RNNActivation)
# The shared initializers plus two recurrent ones: "orthogonal" (Keras' recurrent default, one
# numpy QR draw shared by every backend) and "torch_rnn" (torch's RNN default, U(+-1/sqrt(units))).
RNNInitName = Literal[InitName, "orthogonal", "torch_rnn"]
RNN_INITIALIZERS: tuple[str, ...] = get_args(RNNInitName)


class RNNInitSpec(SpecModel):
    """A recurrent weight's initializer; a plain string such as ``"orthogonal"`` is accepted too."""

    name: RNNInitName
    value: FiniteFloat = Field(default=0.0, description="Fill value for name = 'constant'.")


class RecurrentBase(LayerBase):
    """Fields every recurrent layer shares; ``gates`` is how many gate blocks its kernels stack."""

    gates: ClassVar[int] = 1

    units: Annotated[int, Field(gt=0, le=MAX_UNITS)]
    return_sequences: bool = Field(
        default=False, description="Output every step [steps, units]; default: the last step only [units]."
    )
    activation: RNNActivation = "tanh"
    use_bias: bool = True
    dropout: float = Field(default=0.0, description="Must be 0: see the validator for why and what to use.")
    kernel_init: RNNInitSpec = RNNInitSpec(name="glorot_uniform")
    recurrent_init: RNNInitSpec = RNNInitSpec(name="orthogonal")
    bias_init: RNNInitSpec = RNNInitSpec(name="zeros")

    @field_validator("kernel_init", "recurrent_init", "bias_init", mode="before")
    @classmethod
    def _init_from_string(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("bias_init")
    @classmethod
    def _vector_init(cls, value: RNNInitSpec) -> RNNInitSpec:
        if value.name == "orthogonal":
            raise ValueError("orthogonal is for the kernels (matrices); use zeros (Keras) or torch_rnn (torch)")
        return value

    @field_validator("dropout")
    @classmethod
    def _no_dropout(cls, value: float) -> float:
        if value != 0:
            raise ValueError(
                f"is {value}, but recurrent input dropout is not supported: Keras draws one mask per sequence "
                "inside the cell and torch's RNNs have no such option, so the two cannot agree; put a "
                "'dropout' layer before or after the recurrent layer instead (dropout = 0 here)"
            )
        return value


class SimpleRNNLayer(RecurrentBase):
    """Elman RNN: ``h = activation(x K + h R + b)`` (torch ``nn.RNN``, Keras ``SimpleRNN``)."""

    type: Literal["simple_rnn"]


class LSTMLayer(RecurrentBase):
    """LSTM; gates (i, f, c, o) in the same order on both frameworks."""

    gates: ClassVar[int] = 4

    type: Literal["lstm"]
    recurrent_activation: RNNActivation = "sigmoid"
    unit_forget_bias: bool = Field(
        default=True, description="Keras' default: the forget gate's bias starts at 1 (torch's nn.LSTM: no)."
    )


class GRULayer(RecurrentBase):
    """GRU; weights in Keras' gate order (z, r, h); torch's is (r, z, n)."""

    gates: ClassVar[int] = 3

    type: Literal["gru"]
    recurrent_activation: RNNActivation = "sigmoid"
    reset_after: bool = Field(
        default=True,
        description="Apply the reset gate after the recurrent matmul (Keras' default, torch's only form); "
        "false = the original paper's form, with one bias row.",
    )


RECURRENT_LAYERS: tuple[type[RecurrentBase], ...] = (SimpleRNNLayer, LSTMLayer, GRULayer)
_RNN_TYPES = [cls.model_fields["type"].annotation.__args__[0] for cls in RECURRENT_LAYERS]  # type: ignore[union-attr]


class BidirectionalLayer(LayerBase):
    """One recurrent layer run forwards and backwards; outputs merged by ``concat`` or ``sum``."""

    type: Literal["bidirectional"]
    layer: Annotated[Union[SimpleRNNLayer, LSTMLayer, GRULayer], Field(discriminator="type")]
    merge: Literal["concat", "sum"] = "concat"

    @field_validator("layer", mode="before")
    @classmethod
    def _recurrent_only(cls, value: Any) -> Any:
        if not isinstance(value, (dict, RecurrentBase)):
            raise FieldProblem(
                "",
                f"must be a table holding one recurrent layer, got {str(value)[:40]!r}; e.g. layer = "
                f"{{type = 'lstm', units = 16}} (type one of {_RNN_TYPES})",
            )
        kind = value.get("type") if isinstance(value, dict) else value.type
        if kind not in _RNN_TYPES:
            raise FieldProblem(
                "type",
                f"bidirectional wraps one recurrent layer, got {kind!r}; use type = one of {_RNN_TYPES}, "
                "e.g. layer = {type = 'lstm', units = 16}",
            )
        return value

    @model_validator(mode="after")
    def _inner_layer(self) -> BidirectionalLayer:
        if self.layer.name is not None or self.layer.inputs is not None:
            raise FieldProblem("layer", "the wrapped layer takes no name or inputs: set them on the bidirectional")
        return self

    @property
    def use_bias(self) -> bool:
        """Whether both directions have biases (``forward_bias``, ``backward_bias``): the wrapped layer's flag."""
        return self.layer.use_bias


Shape = tuple[int, ...]


def rnn_output_shape(layer: RecurrentBase | BidirectionalLayer, ins: list[Shape | None], where: str) -> Shape | None:
    """Output shape of a recurrent layer on ``(steps, features)`` input.

    ``None`` input (flat data of a width the spec does not tell) is checked again with the data.

    Raises:
        FieldProblem: input that is not a sequence, path ``<where>.type``.

    Example:
        >>> rnn_output_shape(GRULayer(type="gru", units=4, return_sequences=True), [(8, 5)], "model.layers[0]")
        (8, 4)
        >>> rnn_output_shape(GRULayer(type="gru", units=4), [(5,)], "model.layers[0]")
        Traceback (most recent call last):
        ...
        duofit.common.spec.base.FieldProblem: gru needs sequence input [steps, features], got [5]; ...
    """
    cell = layer.layer if isinstance(layer, BidirectionalLayer) else layer
    width = cell.units * (2 if isinstance(layer, BidirectionalLayer) and layer.merge == "concat" else 1)
    shape = ins[0]
    if shape is None:
        return None if cell.return_sequences else (width,)
    if len(shape) != 2:
        raise FieldProblem(
            f"{where}.type",
            f"{layer.type} needs sequence input [steps, features], got {list(shape)}; set data.sequence_shape "
            "(e.g. [8, 8] for digits as rows), use series windows, or add a 'reshape' layer "
            "(e.g. target_shape = [8, 8])",
        )
    return (shape[0], width) if cell.return_sequences else (width,)


def rnn_parameters(layer: RecurrentBase | BidirectionalLayer, features: int) -> int:
    """Trainable parameters of a recurrent layer reading ``features`` per step.

    Example:
        >>> rnn_parameters(LSTMLayer(type="lstm", units=4), 3), rnn_parameters(GRULayer(type="gru", units=2), 3)
        (128, 42)
    """
    if isinstance(layer, BidirectionalLayer):
        return 2 * rnn_parameters(layer.layer, features)
    g, h = layer.gates, layer.units
    rows = 2 if isinstance(layer, GRULayer) and layer.reset_after else 1
    return g * h * (features + h) + (rows * g * h if layer.use_bias else 0)


def recurrent_settings(layers: Sequence[LayerBase], *fields: str) -> list[tuple[Any, ...]]:
    """The given fields of every recurrent layer (a bidirectional's wrapped one included), in order.

    Two specs whose settings differ have a deliberate (or accidental) mismatch; the parity
    causes catalogue compares them.

    Example:
        >>> recurrent_settings([GRULayer(type="gru", units=2, reset_after=False)], "reset_after", "units")
        [(False, 2)]
    """
    cells = [layer.layer if isinstance(layer, BidirectionalLayer) else layer for layer in layers]
    return [tuple(getattr(cell, f, None) for f in fields) for cell in cells if isinstance(cell, RecurrentBase)]
