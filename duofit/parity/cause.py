"""One catalogued formula difference (:class:`Cause`) and the report stages it can break.

Example:
    >>> STAGES[0], TRAINING[0]
    ('initial_weights', 'first_step')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from duofit.common.spec import Spec

__all__ = ["STAGES", "TRAINING", "UPDATES", "Cause"]

STAGES = ("initial_weights", "forward", "first_step", "trajectory", "final_weights", "metrics")
TRAINING = ("first_step", "trajectory", "final_weights", "metrics")
UPDATES = ("trajectory", "final_weights", "metrics")


@dataclass(frozen=True)
class Cause:
    """One known difference.

    Attributes:
        id: Stable identifier.
        title: One line.
        math: The two formulas.
        source: Where it was verified in each framework's source.
        duofit: What duofit does about it.
        stages: Report stages it can make fail.
        applies: ``(spec_torch, spec_keras, strict) -> bool``.
        backends: The cause needs one of these backends in the compared pair (empty: any pair).
        generic: Rounding-level noise present in every run of its dtype (oneDNN, float32 growth):
            the report lists it after the specific causes of a stage, which explain more.
    """

    id: str
    title: str
    math: str
    source: str
    duofit: str
    stages: tuple[str, ...]
    applies: Callable[[Spec, Spec, bool], bool]
    backends: tuple[str, ...] = ()
    generic: bool = False
