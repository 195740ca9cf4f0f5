"""Which rows train, validate and test: the spec's seeded split, or validation held out of given parts.

Splits work on row indices (``train_test_split`` of ``arange(n)``), so the arrays are
taken once, by :func:`duofit.common.data.prepare`. Splitting indices picks exactly the rows
splitting the arrays themselves would (the same seed, size and stratification).

Example:
    >>> import numpy as np
    >>> every = np.arange(10)
    >>> kept, held = hold_out(every, np.zeros(10), 0.2, seed=0, stratify=False)
    >>> len(kept), len(held)
    (8, 2)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from duofit.common.errors import DataError
from duofit.common.spec import Spec

__all__ = ["Parts", "given_parts", "hold_out", "spec_parts", "time_parts"]


@dataclass(frozen=True)
class Parts:
    """Row indices of the three parts.

    Attributes:
        train: Rows the model trains on.
        val: Rows of per-epoch validation.
        test: Rows scored at the end.
        val_is_test: The validation rows are the test rows (no separate validation part).
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    val_is_test: bool


def hold_out(
    rows: np.ndarray, y: np.ndarray, fraction: float, seed: int, stratify: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``rows`` into kept and held-out rows (``train_test_split``, seeded, optionally stratified).

    Raises:
        ValueError: from scikit-learn, when the rows cannot be split so.
    """
    from sklearn.model_selection import train_test_split

    kept, held = train_test_split(rows, test_size=fraction, random_state=seed, stratify=y[rows] if stratify else None)
    return kept, held


def spec_parts(spec: Spec, y: np.ndarray, stratify: bool) -> Parts:
    """The spec's split: ``data.test_size`` of all rows, then ``data.val_size`` (of all rows) out of the rest.

    Windows of a series (``data.time_ordered``) keep time order (:func:`time_parts`); other
    rows are drawn at random (seeded by ``data.split_seed``).

    Raises:
        DataError: too few samples (per class) for the split.
    """
    d = spec.data
    if d.time_ordered:
        return time_parts(len(y), d.test_size, d.val_size)
    try:
        train, test = hold_out(np.arange(len(y)), y, d.test_size, d.split_seed, stratify)
        val = test
        if d.val_size > 0:
            train, val = hold_out(train, y, d.val_size / (1 - d.test_size), d.split_seed, stratify)
    except ValueError as exc:
        raise DataError(
            f"data: cannot split {len(y)} samples (test_size={d.test_size}, val_size={d.val_size}): {exc}"
        ) from None
    return Parts(train, val, test, val_is_test=d.val_size == 0)


def time_parts(n: int, test_size: float, val_size: float) -> Parts:
    """Rows in time order: the earliest train, then validation, the latest ``test_size`` test.

    The sizes round as scikit-learn's ``train_test_split`` does (test and validation up), so a
    time-ordered split has the parts' sizes a shuffled one would have; nothing is shuffled.

    Raises:
        DataError: fewer rows than the three parts need (path ``data.series``).

    Example:
        >>> p = time_parts(10, 0.2, 0.2)
        >>> p.train.tolist(), p.val.tolist(), p.test.tolist()
        ([0, 1, 2, 3, 4, 5], [6, 7], [8, 9])
    """
    n_test = math.ceil(test_size * n)
    n_val = math.ceil(val_size / (1 - test_size) * (n - n_test)) if val_size > 0 else 0
    n_train = n - n_test - n_val
    if n_train < 1 or n_test < 1:
        raise DataError(
            f"data.series: the series makes {n} window(s), too few for a training, "
            f"{'validation and ' if val_size > 0 else ''}test part (test_size={test_size}, val_size={val_size}); "
            "use a shorter window, a smaller stride or horizon, or a longer series",
            path="data.series",
        )
    rows = np.arange(n)
    train, val, test = rows[:n_train], rows[n_train : n_train + n_val], rows[n_train + n_val :]
    return Parts(train, val if val_size > 0 else test, test, val_is_test=val_size == 0)


def given_parts(
    spec: Spec,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray | None,
    seed: int,
    stratify: bool,
    where: str = "",
) -> Parts:
    """Given training (and test) rows; ``data.val_size`` of the training rows held out for validation.

    Without a held-out validation part the test rows validate; without test rows
    (``test=None``) the validation rows (or, with ``val_size = 0``, the training rows) are
    also the test part. ``where`` names the part in an error, e.g. ``" in fold 3"``.

    Raises:
        DataError: the training rows cannot give up ``data.val_size`` of themselves.
    """
    val = train if test is None else test
    if spec.data.val_size > 0:
        try:
            train, val = hold_out(train, y, spec.data.val_size, seed, stratify)
        except ValueError as exc:
            raise DataError(
                f"data.val_size: cannot hold out validation data{where} from {len(train)} training samples: {exc}",
                path="data.val_size",
            ) from None
    if test is None:
        return Parts(train, val, val, val_is_test=True)
    return Parts(train, val, test, val_is_test=spec.data.val_size == 0)
