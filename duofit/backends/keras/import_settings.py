"""Reading one Keras layer config's settings: each taken once, anything left over refused by name.

:class:`LayerSettings` is what every converter in :mod:`duofit.backends.keras.import_layers`
reads a config through: ``get`` marks a setting as carried into the spec, ``fixed`` accepts
only the values the spec's Keras factory would build, and ``done`` refuses every setting not
read that holds more than an off/empty value (a constraint, an activity regularizer, a frozen
layer), naming it, its value and what is supported.

Example:
    >>> s = LayerSettings({"units": 3, "bias_constraint": "non_neg"}, "layer 'd'", [])
    >>> s.get("units")
    3
    >>> s.done()
    Traceback (most recent call last):
    ...
    duofit.common.errors.SpecError: layer 'd': setting bias_constraint = 'non_neg' has no spec equivalent ...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from duofit.common.errors import SpecError

__all__ = ["ACTIVATIONS", "INITIALIZERS", "KERAS_LEAKY_SLOPE", "Config", "Doc", "LayerSettings", "short"]

Doc = dict[str, Any]
Config = Mapping[str, Any]

# Keras activation name -> the spec's (None: no activation); anything else is refused
ACTIVATIONS: dict[str, str | None] = {
    "relu": "relu",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "softmax": "softmax",
    "gelu": "gelu",
    "linear": None,
    "leaky_relu": "leaky_relu",
}
# Keras' leaky_relu *function* default slope (keras/src/activations/activations.py leaky_relu)
KERAS_LEAKY_SLOPE = 0.2
# Keras initializer class -> (spec name, the config it must have to mean that spec initializer)
INITIALIZERS: dict[str, tuple[str, dict[str, Any]]] = {
    "GlorotUniform": ("glorot_uniform", {}),
    "GlorotNormal": ("glorot_normal", {}),
    "HeUniform": ("he_uniform", {}),
    "HeNormal": ("he_normal", {}),
    "LecunUniform": ("lecun_uniform", {}),
    "LecunNormal": ("lecun_normal", {}),
    "Zeros": ("zeros", {}),
    "Ones": ("ones", {}),
    "Constant": ("constant", {}),
    "RandomUniform": ("uniform", {"minval": -0.05, "maxval": 0.05}),  # keras.layers.Embedding's default
    "Orthogonal": ("orthogonal", {"gain": 1.0}),
}
# Keras regularizers the spec's dense/conv l1 / l2 express (duofit's own KernelPenalty included)
_REGULARIZERS = ("L1", "L2", "L1L2", "duofit>KernelPenalty")
# settings no converter reads: names, random seeds (the spec's train.seed decides), build details
_IGNORED = frozenset({"name", "dtype", "seed", "unroll", "use_cudnn", "quantization_config"})
_EMPTY: tuple[Any, ...] = (None, False, 0, {}, [], "")


class LayerSettings:
    """One layer's settings being read: what was taken, and the error for the rest."""

    def __init__(self, cfg: Config, where: str, notes: list[str]) -> None:
        self.cfg, self.where, self.notes = cfg, where, notes
        self.taken: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        """The setting's value (``default`` when absent), marked as carried into the spec."""
        self.taken.add(key)
        return self.cfg.get(key, default)

    def refuse(self, key: str, value: Any, allowed: str) -> SpecError:
        """The error for a setting the spec cannot express: its name, value and what is supported."""
        return SpecError(
            f"{self.where}: setting {key} = {short(value)} has no spec equivalent ({allowed}); "
            "change it in the source model and re-save, or write the spec by hand",
            path="model.layers",
        )

    def fixed(self, key: str, *allowed: Any) -> None:
        """Refuse the setting unless it holds one of ``allowed`` (the first is its default)."""
        value = self.get(key, allowed[0])
        if not any(_same(value, a) for a in allowed):
            raise self.refuse(key, value, "supported: " + " or ".join(short(a) for a in allowed))

    def done(self) -> None:
        """Refuse every setting not read that holds anything but an empty/off value."""
        if self.cfg.get("trainable", True) is not True:
            raise self.refuse("trainable", self.cfg["trainable"], "a spec trains every layer: unfreeze it")
        for key, value in self.cfg.items():
            if key in self.taken or key in _IGNORED or key == "trainable":
                continue
            if not any(_same(value, e) for e in _EMPTY):
                raise self.refuse(key, value, "only its off/empty value is supported")

    def activation(self, key: str = "activation") -> tuple[str | None, list[Doc]]:
        """The spec activation of an ``activation=`` argument, and an extra layer for Keras' leaky_relu."""
        value = self.get(key, "linear")
        if not isinstance(value, str) or value not in ACTIVATIONS:
            raise self.refuse(key, value, f"supported: {', '.join(ACTIVATIONS)}")
        if value == "leaky_relu":
            return None, [{"type": "activation", "activation": "leaky_relu", "negative_slope": KERAS_LEAKY_SLOPE}]
        return ACTIVATIONS[value], []

    def init(self, doc: Doc, key: str, field: str) -> None:
        """Carry a Keras initializer into ``doc[field]`` where the spec has it; else a note."""
        value = self.get(key)
        spec = _initializer(value)
        if spec is not None:
            doc[field] = spec
        elif value is not None:
            self.notes.append(
                f"{self.where}: {key} {short(value)} has no spec name; the spec keeps its default "
                "(unused: the initial weights are the source model's own)"
            )

    def penalty(self, doc: Doc) -> None:
        """``kernel_regularizer`` (L1/L2/L1L2) -> the spec's ``l1`` / ``l2``."""
        value = self.get("kernel_regularizer")
        if value is None:
            return
        name = value.get("registered_name") or value.get("class_name") if isinstance(value, dict) else None
        if name not in _REGULARIZERS or not isinstance(value.get("config"), dict):
            raise self.refuse("kernel_regularizer", value, f"supported: {', '.join(_REGULARIZERS)}")
        for coef in ("l1", "l2"):
            if value["config"].get(coef):
                doc[coef] = float(value["config"][coef])


def _same(value: Any, allowed: Any) -> bool:
    if isinstance(allowed, bool) or isinstance(value, bool):
        return value is allowed
    return bool(value == allowed)


def short(value: Any) -> str:
    """A value as a message shows it: its repr, cut at 120 characters."""
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _initializer(value: Any) -> dict[str, Any] | str | None:
    if isinstance(value, str):
        value = {"class_name": "".join(p.capitalize() for p in value.split("_")), "config": {}}
    if not isinstance(value, dict) or value.get("module", "keras.initializers") != "keras.initializers":
        return None
    known = INITIALIZERS.get(str(value.get("class_name")))
    cfg = value.get("config") or {}
    if known is None or not isinstance(cfg, dict):
        return None
    name, needs = known
    if any(cfg.get(k) != v for k, v in needs.items()):
        return None
    if set(cfg) - set(needs) - {"seed", "value", "input_axes", "output_axes"}:
        return None
    return {"name": name, "value": float(cfg.get("value", 0.0))} if name == "constant" else name
