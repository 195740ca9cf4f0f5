"""What every spec section shares: the model base, bounded number types and resource caps.

:class:`FieldProblem` is the error a cross-field check raises.

Example:
    >>> class Demo(SpecModel):
    ...     rate: Fraction = 0.5
    >>> Demo().rate, Demo.model_config["extra"]
    (0.5, 'forbid')
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "MAX_EPOCHS",
    "MAX_SAMPLES",
    "MAX_UNITS",
    "EpochCount",
    "Epochs",
    "FieldProblem",
    "FiniteFloat",
    "Fraction",
    "NonNegFloat",
    "Pair",
    "PositiveFloat",
    "SpecModel",
    "UnitFloat",
    "int_or_pair",
]

# Hard caps so that a shared spec cannot ask for absurd resources (clear error, no blow-up).
MAX_UNITS = 1_000_000
MAX_EPOCHS = 1_000_000
MAX_SAMPLES = 10_000_000

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Epochs = Annotated[int, Field(gt=0, le=MAX_EPOCHS)]  # a number of epochs (at least one)
EpochCount = Annotated[int, Field(ge=0, le=MAX_EPOCHS)]  # epochs to wait (patience, cooldown)
Fraction = Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]
UnitFloat = Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)]  # [0, 1): rates and momenta
# Two positive sizes (height, width); a single integer is accepted through int_or_pair.
Pair = Annotated[list[Annotated[int, Field(gt=0, le=4096)]], Field(min_length=2, max_length=2)]


class FieldProblem(ValueError):
    """A cross-field validation failure that knows which field is wrong.

    ``path`` is relative to the model whose validator raised it (e.g. ``"metrics[0]"``
    for the top-level Spec); the loader prefixes the model's own location.
    """

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


class SpecModel(BaseModel):
    """Base of every spec section: frozen, unknown keys rejected, defaults validated."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


def int_or_pair(value: Any) -> Any:
    """``3`` -> ``[3, 3]``; anything else unchanged (pydantic then checks it).

    Example:
        >>> int_or_pair(3), int_or_pair([2, 1])
        ([3, 3], [2, 1])
    """
    return [value, value] if isinstance(value, int) and not isinstance(value, bool) else value
