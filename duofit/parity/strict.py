"""Strict mode: the spec changes and backend translations behind ``duofit parity --strict``.

Strict mode runs in float64 and makes both backends compute the same math wherever the
frameworks' formulas differ (see :mod:`duofit.parity.causes`). It says what it changed.

Example:
    >>> from duofit.common.loader import load_spec
    >>> spec, changes = strict_spec(load_spec("examples/seed.toml"))
    >>> spec.train.dtype, changes[0]
    ('float64', 'train.dtype: float32 -> float64 (strict parity is defined in float64)')
"""

from __future__ import annotations

from collections.abc import Sequence

from duofit.common.errors import SpecError
from duofit.common.registry import describe
from duofit.common.spec import Spec

__all__ = ["strict_spec", "strict_translations"]


def strict_spec(spec: Spec) -> tuple[Spec, list[str]]:
    """Return the spec strict mode runs (float64) and the list of spec changes made.

    Raises:
        SpecError: ``train.precision`` is mixed: strict parity is float64, mixed precision computes in bfloat16.
    """
    if spec.train.precision != "float32":
        raise SpecError(
            f"train.precision = {spec.train.precision!r}: strict parity runs in float64 and cannot check mixed "
            "precision; set train.precision = 'float32' for --strict, or drop --strict to compare the "
            "mixed-precision runs with bfloat16 tolerances",
            path="train.precision",
        )
    changes: list[str] = []
    if spec.train.dtype != "float64":
        train = spec.train.model_copy(update={"dtype": "float64"})
        spec = spec.model_copy(update={"train": train})
        changes.append("train.dtype: float32 -> float64 (strict parity is defined in float64)")
    return spec, changes


def strict_translations(spec: Spec, backends: Sequence[str] = ("torch", "keras")) -> list[str]:
    """What the backends do differently in strict mode for this spec (no framework is imported).

    Each backend says what it translates (:meth:`duofit.backends.base.Backend.strict_translations`);
    the Keras backends share one translation, listed once.

    Example:
        >>> from duofit.common.loader import load_spec
        >>> spec = load_spec({"data": {"kind": "iris"}, "model": {"layers": [{"type": "dense", "units": 3}]},
        ...                   "loss": {"type": "categorical_crossentropy"}, "optimizer": {"type": "sgd"}})
        >>> [line.split(":")[0] for line in strict_translations(spec)]
        ['keras']
    """
    out: list[str] = []
    for name in backends:
        out += [line for line in describe(name).strict_translations(spec) if line not in out]
    return out
