"""What one spec layer is in an exported torch script: :class:`Site` in, :class:`LayerCode` out.

The shared vocabulary of the per-layer code tables (:mod:`duofit.porting.torch_code` and
:mod:`duofit.porting.torch_code_seq`): where a layer sits (its variables, shapes, mask), the
lines it contributes, the activation expressions and the weight reference ``w["layers.<i>.<name>"]``.

Example:
    >>> act("h", "softmax", 3), act("h", None, 1)
    ('torch.softmax(h, dim=1)', 'h')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from duofit.common.errors import SpecError
from duofit.common.spec import ActivationLayer
from duofit.porting import codegen

__all__ = ["ACTIVATION_CODE", "LayerCode", "Shape", "Site", "act", "refuse", "weight"]

Shape = tuple[int, ...]
_DEFAULT_SLOPE = ActivationLayer.model_fields["negative_slope"].default  # what the torch backend uses inside dense


@dataclass(frozen=True)
class Site:
    """One spec layer where it sits in the script.

    Attributes:
        layer: The spec layer.
        index: Its position in ``model.layers`` (its weights are ``layers.<index>.*``).
        ins: The variables ``forward`` reads (``x`` is the model input).
        out: The variable it assigns.
        shapes: Per-sample input shapes (channels-last, as the spec traces them).
        masked: Its input carries the padding mask of an embedding with ``mask_zero``.
    """

    layer: Any
    index: int
    ins: list[str]
    out: str
    shapes: list[Shape]
    masked: bool

    @property
    def attr(self) -> str:
        """The ``Net`` attribute holding the layer: ``<type>_<index>``."""
        return f"{self.layer.type}_{self.index}"

    @property
    def where(self) -> str:
        """The spec field path of the layer."""
        return f"model.layers[{self.index}]"


@dataclass
class LayerCode:
    """The script lines of one layer.

    Attributes:
        init: ``Net.__init__`` lines.
        forward: ``Net.forward`` lines.
        load: Lines of ``load_initial_weights`` (``w`` maps duofit's weight names to numpy arrays).
        helpers: Helper source blocks the lines use (module-level code, e.g. :data:`MHA_CLASS`).
        same_randomness: Building the module draws the same random numbers as the torch backend's
            (it matters only for dropout masks drawn later from the same generator).
        frozen: Parameters the script freezes (``requires_grad_(False)``), for the report.
    """

    init: list[str]
    forward: list[str]
    load: list[str] = field(default_factory=list)
    helpers: list[str] = field(default_factory=list)
    same_randomness: bool = True
    frozen: list[str] = field(default_factory=list)


ACTIVATION_CODE: dict[str, str] = {
    "relu": "torch.relu({x})",
    "sigmoid": "torch.sigmoid({x})",
    "tanh": "torch.tanh({x})",
    "softmax": "torch.softmax({x}, dim={dim})",
    "gelu": "F.gelu({x})",  # the exact erf form (approximate="none"), as Keras' default
    "leaky_relu": "F.leaky_relu({x}, negative_slope={slope!r})",
    "linear": "{x}",
}


def act(expr: str, activation: str | None, rank: int, slope: float = _DEFAULT_SLOPE) -> str:
    """``expr`` wrapped in ``activation``; ``rank`` is the per-sample rank (3 = an NCHW image: softmax on dim 1)."""
    return ACTIVATION_CODE[activation or "linear"].format(x=expr, dim=1 if rank == 3 else -1, slope=slope)


def refuse(site: Site, field_name: str, what: str, fix: str) -> SpecError:
    """The error for a setting of ``site``'s layer the export does not write (``what``; ``fix``: what to do instead)."""
    return codegen.refuse("torch", f"{site.where}.{field_name}", what, fix)


def weight(site: Site, name: str, expr: str = "") -> str:
    """``torch.from_numpy(<expr of w[...]>)`` for duofit's weight ``layers.<index>.<name>``."""
    ref = f'w["layers.{site.index}.{name}"]'
    return f"torch.from_numpy({expr.format(ref) if expr else ref})"
