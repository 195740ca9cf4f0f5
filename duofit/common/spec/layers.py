"""Layer specs: one class per layer ``type`` (the discriminated union is in :mod:`.layerset`).

Adding a layer type means one class here (or in a family module such as ``layers_rnn``) and
one member of :data:`duofit.common.spec.layerset.LayerSpec`; ``LAYER_TYPES`` (and every
backend's coverage test) follow from the union.
Fields every layer shares belong on :class:`LayerBase`: ``name`` and ``inputs``, which make
the layer list a graph (see :mod:`duofit.common.spec.model`); ``min_inputs`` / ``max_inputs``
say how many inputs a layer type takes (two or more for the merge layers).

Example:
    >>> DenseLayer(type="dense", units=3, kernel_init="he_uniform").kernel_init
    InitSpec(name='he_uniform', value=0.0)
    >>> Conv2DLayer(type="conv2d", filters=4, kernel_size=3).kernel_size
    [3, 3]
    >>> AddLayer(type="add", inputs=["block", "input"]).inputs
    ['block', 'input']
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from duofit.common.spec.base import (
    MAX_UNITS,
    FieldProblem,
    FiniteFloat,
    Fraction,
    NonNegFloat,
    Pair,
    PositiveFloat,
    SpecModel,
    UnitFloat,
    int_or_pair,
)
from duofit.common.spec.vocab import ActivationName, InitName

__all__ = [
    "INPUT",
    "MAX_INPUTS",
    "ActivationLayer",
    "AddLayer",
    "AvgPool2DLayer",
    "BatchNormLayer",
    "ConcatenateLayer",
    "Conv2DLayer",
    "DenseLayer",
    "DropoutLayer",
    "FlattenLayer",
    "GlobalAvgPool2DLayer",
    "InitSpec",
    "LayerBase",
    "LayerName",
    "MaxPool2DLayer",
    "ReshapeLayer",
]

# The name that ``inputs`` use for the model input; no layer may take it.
INPUT = "input"
# Most inputs one layer may list (a merge of more is better written as several merges).
MAX_INPUTS = 64
# A layer name: identifier-like, so it reads the same in TOML, in error messages and in Keras.
LayerName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", min_length=1, max_length=64)]


class InitSpec(SpecModel):
    """A weight initializer; a plain string such as ``"he_uniform"`` is accepted too."""

    name: InitName
    value: FiniteFloat = Field(default=0.0, description="Fill value for name = 'constant'.")


def _coerce_init(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


class LayerBase(SpecModel):
    """Base of every layer spec; each subclass fixes ``type`` to its own literal tag.

    ``name`` lets later layers read this one through their ``inputs``; ``inputs`` lists the
    layers this one reads (``"input"`` is the model input). Without ``inputs`` a layer reads
    the layer listed just before it, so a plain list is a sequential model.
    """

    # how many inputs this layer type takes; the merge layers take two or more
    min_inputs: ClassVar[int] = 1
    max_inputs: ClassVar[int] = 1

    type: str
    name: LayerName | None = Field(
        default=None, description="A name that later layers' `inputs` can refer to (letters, digits, _)."
    )
    inputs: Annotated[list[LayerName], Field(min_length=1, max_length=MAX_INPUTS)] | None = Field(
        default=None,
        description="Names of the earlier layers this layer reads ('input' = the model input); "
        "default: the layer listed just before.",
    )

    @model_validator(mode="after")
    def _input_count(self) -> LayerBase:
        if self.name == INPUT:
            raise FieldProblem("name", f"{INPUT!r} names the model input; give the layer another name")
        given = 1 if self.inputs is None else len(self.inputs)
        if not self.min_inputs <= given <= self.max_inputs:
            want = (
                f"exactly {self.min_inputs}"
                if self.min_inputs == self.max_inputs
                else f"{self.min_inputs} to {self.max_inputs}"
            )
            got = "none (it reads the previous layer)" if self.inputs is None else f"{given}: {self.inputs}"
            raise FieldProblem(
                "inputs",
                f"{self.type} takes {want} input(s), got {got}; list the layer names, e.g. inputs = ['block', 'input']",
            )
        return self


class DenseLayer(LayerBase):
    """Fully connected layer. ``l1``/``l2`` penalise the kernel (added to the training loss)."""

    type: Literal["dense"]
    units: Annotated[int, Field(gt=0, le=MAX_UNITS)]
    activation: ActivationName | None = None
    use_bias: bool = True
    kernel_init: InitSpec = InitSpec(name="glorot_uniform")
    bias_init: InitSpec = InitSpec(name="zeros")
    l1: NonNegFloat = 0.0
    l2: NonNegFloat = 0.0

    @field_validator("kernel_init", "bias_init", mode="before")
    @classmethod
    def _init_from_string(cls, value: Any) -> Any:
        return _coerce_init(value)


class ActivationLayer(LayerBase):
    """A standalone activation; ``negative_slope`` is used by leaky_relu only."""

    type: Literal["activation"]
    activation: ActivationName
    # One default for both frameworks: torch uses 0.01, Keras 0.2; duofit follows torch.
    negative_slope: UnitFloat = 0.01


class DropoutLayer(LayerBase):
    """Inverted dropout during training; identity at evaluation."""

    type: Literal["dropout"]
    rate: UnitFloat


class BatchNormLayer(LayerBase):
    """Batch normalisation over the feature axis.

    ``momentum`` follows the torch convention: running = (1 - momentum) * running +
    momentum * batch_stat. The Keras backend passes ``1 - momentum``.
    """

    type: Literal["batch_norm"]
    momentum: Fraction = 0.1
    epsilon: PositiveFloat = 1e-5


class FlattenLayer(LayerBase):
    """Flattens all but the batch axis, in channels-last order (height, width, channel).

    torch models see NCHW tensors; the torch backend flattens them channels-last too, so the
    next dense kernel has the same row order on every backend.
    """

    type: Literal["flatten"]


class Conv2DLayer(LayerBase):
    """2-D convolution on channels-last images (``[height, width, channels]``).

    ``padding = "same"`` is TensorFlow's rule: output size ceil(in / stride), with the odd
    pixel of padding at the bottom/right; the torch backend pads explicitly to match.
    """

    type: Literal["conv2d"]
    filters: Annotated[int, Field(gt=0, le=65536)]
    kernel_size: Pair
    strides: Pair = Field(default=[1, 1])
    padding: Literal["valid", "same"] = "valid"
    dilation: Pair = Field(default=[1, 1])
    activation: ActivationName | None = None
    use_bias: bool = True
    kernel_init: InitSpec = InitSpec(name="glorot_uniform")
    bias_init: InitSpec = InitSpec(name="zeros")
    l1: NonNegFloat = 0.0
    l2: NonNegFloat = 0.0

    @field_validator("kernel_size", "strides", "dilation", mode="before")
    @classmethod
    def _int_or_pair(cls, value: Any) -> Any:
        return int_or_pair(value)

    @field_validator("kernel_init", "bias_init", mode="before")
    @classmethod
    def _init_from_string(cls, value: Any) -> Any:
        return _coerce_init(value)

    @model_validator(mode="after")
    def _no_strided_dilation(self) -> Conv2DLayer:
        if max(self.strides) > 1 and max(self.dilation) > 1:
            raise FieldProblem("dilation", "strides > 1 and dilation > 1 together are not supported (Keras refuses it)")
        return self


class MaxPool2DLayer(LayerBase):
    """Max pooling (``strides`` default to ``pool_size``).

    ``padding = "same"`` is TensorFlow's rule, as for ``conv2d``: output size ceil(in / stride),
    the odd padded cell at the bottom/right. Padded cells never win a max, and an average is
    over the window's real cells only (TensorFlow's and Keras' convention).
    """

    type: Literal["max_pool2d"]
    pool_size: Pair = Field(default=[2, 2])
    strides: Pair | None = None
    padding: Literal["valid", "same"] = "valid"

    @field_validator("pool_size", "strides", mode="before")
    @classmethod
    def _int_or_pair(cls, value: Any) -> Any:
        return int_or_pair(value)


class AvgPool2DLayer(MaxPool2DLayer):
    """Average pooling (``strides`` default to ``pool_size``; ``padding`` as for max pooling)."""

    type: Literal["avg_pool2d"]  # type: ignore[assignment]


class GlobalAvgPool2DLayer(LayerBase):
    """Mean over height and width: ``[h, w, c] -> [c]``."""

    type: Literal["global_avg_pool2d"]


class AddLayer(LayerBase):
    """Elementwise sum of two or more inputs of the same shape (``keras.layers.Add``)."""

    min_inputs: ClassVar[int] = 2
    max_inputs: ClassVar[int] = MAX_INPUTS

    type: Literal["add"]


class ConcatenateLayer(LayerBase):
    """Joins two or more inputs along ``axis`` (``keras.layers.Concatenate``).

    ``axis`` counts the batch axis as Keras does: ``-1`` (the default) is the feature or
    channel axis, ``1`` the first axis of a sample; ``0`` (the batch) is not allowed. Images
    are channels-last here on every backend (the torch backend maps the axis to NCHW).
    """

    min_inputs: ClassVar[int] = 2
    max_inputs: ClassVar[int] = MAX_INPUTS

    type: Literal["concatenate"]
    axis: Annotated[int, Field(ge=-4, le=3)] = -1

    @field_validator("axis")
    @classmethod
    def _not_batch(cls, value: int) -> int:
        if value == 0:
            raise ValueError("axis 0 is the batch axis; use -1 (features/channels) or 1.. for a sample's axes")
        return value


class ReshapeLayer(LayerBase):
    """Reshapes each sample to ``target_shape`` (``keras.layers.Reshape``), in channels-last order.

    The sizes must multiply to the input's size; a ``[h, w, c]`` target makes an image that
    ``conv2d`` layers can read.
    """

    type: Literal["reshape"]
    target_shape: Annotated[list[Annotated[int, Field(gt=0, le=MAX_UNITS)]], Field(min_length=1, max_length=3)]
