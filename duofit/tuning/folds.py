"""k-fold datasets for a spec: load once, fold with sklearn, scale inside each fold.

Framework-free. Every sample of the spec's data takes part (its train, validation and
test parts pooled, so ``data.test_size`` does not apply); each fold is held out once. The
``StandardScaler`` is fitted on the fold's training part only and then applied to the
fold's validation and held-out parts: nothing about the held-out samples reaches training.

Windows of a series (``data.time_ordered``: kinds ``csv_series``, ``sunspots``, ``co2``) overlap,
so a shuffled k-fold would validate on steps its training windows contain. They are split by
scikit-learn's ``TimeSeriesSplit``: fold ``i`` trains on the windows before its held-out block
(a growing past) and never sees a later one; the first block is never held out. Between the two,
``gap`` windows are dropped so that no training target lies after a held-out window's last input
step (``ceil(horizon / stride) - 1``: none for the usual horizon 1). A validation part
(``data.val_size``) is the latest training windows, before the same gap.

Example:
    >>> from duofit.common.loader import load_spec
    >>> spec = load_spec("examples/seed.toml")
    >>> folds = make_folds(spec, n_folds=5, seed=42)
    >>> [len(f.test_idx) for f in folds]
    [200, 200, 200, 200, 200]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from duofit.common.data import STREAMED_KINDS, Dataset, Parts, given_parts, prepare, read_arrays, spec_parts
from duofit.common.data.targets import encode_targets
from duofit.common.errors import DataError, SpecError
from duofit.common.spec import Spec

__all__ = [
    "SPLITTERS",
    "Fold",
    "PooledData",
    "choose_splitter",
    "make_folds",
    "pooled_data",
    "series_gap",
    "splitter_name",
]

MAX_FOLDS = 1000  # k-fold beyond this is leave-one-out on big data: a typo, not a plan
# What `cv --splitter` accepts: "auto" picks by the data (splitter_name); the others are
# scikit-learn's splitters of that name (sklearn/model_selection/_split.py).
SPLITTERS: tuple[str, ...] = ("auto", "StratifiedKFold", "KFold", "TimeSeriesSplit")
_SHUFFLED = ("StratifiedKFold", "KFold")


@dataclass(frozen=True)
class PooledData:
    """Every sample of a spec's data, unscaled (class indices or float targets)."""

    x: np.ndarray
    y: np.ndarray
    task: str
    n_classes: int | None
    classes: np.ndarray | None
    feature_names: tuple[str, ...]


@dataclass(frozen=True)
class Fold:
    """One fold: indices into the pooled data and its scaled arrays.

    Attributes:
        index: 0-based fold number.
        train_idx: Samples the model trains on (validation part removed, if any).
        val_idx: Samples for per-epoch validation; equal to ``test_idx`` when ``data.val_size = 0``.
        test_idx: The held-out samples scored at the end.
        dataset: The scaled arrays (``x_test`` = held-out part).
        scaler_mean: Mean the scaler learned (``None`` without ``data.standardize``).
        scaler_scale: Standard deviation the scaler learned.
    """

    index: int
    train_idx: np.ndarray
    val_idx: np.ndarray
    test_idx: np.ndarray
    dataset: Dataset
    scaler_mean: np.ndarray | None
    scaler_scale: np.ndarray | None


def pooled_data(spec: Spec) -> PooledData:
    """All samples of the spec's data (:func:`duofit.common.data.read_arrays`), unscaled.

    Rows come in the order of the spec's own split (train, validation, test parts), so a
    splitter seed always picks the same folds.

    Example:
        >>> from duofit.common.loader import load_spec
        >>> spec = load_spec("examples/seed.toml")
        >>> pooled_data(spec).x.shape
        (1000, 2)

    Raises:
        DataError: (path ``data.kind``) a streamed kind (``npy``, ``parquet``): folds hold every
            sample in memory, which data larger than memory cannot.
    """
    if spec.data.kind in STREAMED_KINDS:
        raise DataError(
            f"data.kind: cross-validation folds hold every sample in memory, and kind {spec.data.kind!r} is for "
            "data larger than memory; validate on the spec's split instead (duofit run / compare, data.val_size), "
            "or save data that fits as .npz (np.savez(path, x=x, y=y)) and use data.kind = 'npz'",
            path="data.kind",
        )
    x, y, names = read_arrays(spec)
    targets = encode_targets(spec, y)
    strat = spec.data.stratify and targets.task != "regression"
    parts = spec_parts(spec, targets.y, strat)
    order = np.concatenate([parts.train, *([] if parts.val_is_test else [parts.val]), parts.test])
    return PooledData(
        x=x[order],
        y=targets.y[order],
        task=targets.task,
        n_classes=targets.n_classes,
        classes=targets.classes,
        feature_names=names,
    )


def splitter_name(task: str, stratify: bool, time_ordered: bool = False) -> str:
    """The automatic splitter: ``TimeSeriesSplit``, ``StratifiedKFold`` or ``KFold``.

    ``TimeSeriesSplit`` for windows of a series, ``StratifiedKFold`` for classification
    (unless turned off), else ``KFold``.

    Example:
        >>> splitter_name("binary", True), splitter_name("regression", True)
        ('StratifiedKFold', 'KFold')
        >>> splitter_name("regression", True, time_ordered=True)
        'TimeSeriesSplit'
    """
    if time_ordered:
        return "TimeSeriesSplit"
    return "StratifiedKFold" if stratify and task != "regression" else "KFold"


def choose_splitter(
    spec: Spec, task: str, splitter: str = "auto", stratify: bool = True, seed: int | None = None
) -> str:
    """The splitter cross-validation uses, checked against the data.

    Args:
        spec: The spec (its ``data.kind`` tells whether the samples are windows of a series).
        task: ``binary``, ``multiclass`` or ``regression``.
        splitter: One of :data:`SPLITTERS`; ``"auto"`` is :func:`splitter_name`.
        stratify: For ``"auto"``: stratify classification folds.
        seed: The shuffling seed the user gave (``None``: none given).

    Raises:
        SpecError: an unknown splitter (path ``splitter``); a shuffled splitter, or a shuffling
            ``seed``, for windows of a series (leakage: ``splitter`` / ``seed``); ``TimeSeriesSplit``
            for data that are not windows of a series; ``StratifiedKFold`` for regression.

    Example:
        >>> from duofit.common.loader import load_spec
        >>> spec = load_spec("examples/lstm_sunspots.toml")
        >>> choose_splitter(spec, "regression")
        'TimeSeriesSplit'
        >>> choose_splitter(spec, "regression", "KFold")
        Traceback (most recent call last):
        ...
        duofit.common.errors.SpecError: --splitter KFold: data.kind = 'sunspots' makes overlapping windows ...
    """
    if splitter not in SPLITTERS:
        raise SpecError(f"--splitter {splitter!r}: unknown; choose one of {', '.join(SPLITTERS)}", path="splitter")
    series, kind = spec.data.time_ordered, spec.data.kind
    name = splitter_name(task, stratify, series) if splitter == "auto" else splitter
    if series and name in _SHUFFLED:
        raise SpecError(
            f"--splitter {name}: data.kind = {kind!r} makes overlapping windows of one series, so a shuffled "
            f"{name} would validate on steps the training windows contain (leakage); leave --splitter out "
            "(auto: TimeSeriesSplit, which trains on the past and validates on the future)",
            path="splitter",
        )
    if series and seed is not None:
        raise SpecError(
            f"--seed {seed}: data.kind = {kind!r} is split by TimeSeriesSplit, which keeps time order and does "
            "not shuffle, so a seed has no effect; leave --seed out",
            path="seed",
        )
    if name == "TimeSeriesSplit" and not series:
        raise SpecError(
            f"--splitter TimeSeriesSplit: data.kind = {kind!r} has no time order (its rows are drawn by the "
            "spec's seeded split); it is for windows of a series (data.kind csv_series, sunspots or co2). "
            "Leave --splitter out or use KFold",
            path="splitter",
        )
    if name == "StratifiedKFold" and task == "regression":
        raise SpecError(
            "--splitter StratifiedKFold: needs class labels, the task is regression; use KFold", path="splitter"
        )
    return name


def _check_folds(n_folds: int, n: int, y: np.ndarray, splitter: str) -> None:
    if not 2 <= n_folds <= MAX_FOLDS:
        raise SpecError(f"--folds: need 2 <= folds <= {MAX_FOLDS} (got {n_folds})", path="folds")
    if n_folds > n:
        raise DataError(f"--folds {n_folds}: the data has only {n} samples", path="data")
    if splitter == "StratifiedKFold":
        smallest = int(np.bincount(y).min())
        if smallest < n_folds:
            raise DataError(
                f"--folds {n_folds}: the smallest class has {smallest} samples, fewer than the folds; "
                "use fewer folds or --no-stratify",
                path="data",
            )


def series_gap(spec: Spec) -> int:
    """Windows dropped between a time fold's training and held-out windows.

    Training window ``j``'s target is step ``j*stride + window - 1 + horizon``; held-out window
    ``k`` ends at ``k*stride + window - 1``. No training target after that last input step needs
    ``(k - j) * stride >= horizon``, so ``ceil(horizon / stride) - 1`` windows are skipped.

    Example:
        >>> from duofit.common.loader import load_spec
        >>> series_gap(load_spec("examples/lstm_sunspots.toml"))
        0
    """
    s = spec.data.series
    return 0 if s is None else math.ceil(s.horizon / s.stride) - 1


def _time_splits(spec: Spec, n: int, n_folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import TimeSeriesSplit

    try:
        return list(TimeSeriesSplit(n_splits=n_folds, gap=series_gap(spec)).split(np.arange(n)))
    except ValueError as exc:
        raise DataError(
            f"--folds {n_folds}: {n} windows are too few for TimeSeriesSplit ({exc}); use fewer folds, a smaller "
            "stride or a longer series",
            path="data.series",
        ) from None


def _time_parts(spec: Spec, train: np.ndarray, test: np.ndarray, where: str) -> Parts:
    """A time fold's parts: validation = the latest ``data.val_size`` of the training windows."""
    if spec.data.val_size == 0:
        return Parts(train, test, test, val_is_test=True)
    n_val = math.ceil(spec.data.val_size * len(train))  # rounds as train_test_split does
    n_train = len(train) - n_val - series_gap(spec)
    if n_train < 1:
        raise DataError(
            f"data.val_size: cannot hold out validation data{where} from {len(train)} training windows "
            f"(the latest {n_val}, after a gap of {series_gap(spec)}); use a smaller val_size or fewer folds",
            path="data.val_size",
        )
    return Parts(train[:n_train], train[len(train) - n_val :], test, val_is_test=False)


def make_folds(
    spec: Spec, n_folds: int = 5, seed: int | None = None, stratify: bool = True, splitter: str = "auto"
) -> list[Fold]:
    """Split the spec's data into ``n_folds`` folds, each with its own scaler.

    Args:
        spec: A validated spec. ``data.standardize`` turns the per-fold scaler on;
            ``data.val_size > 0`` holds out that fraction of each fold's training part for
            per-epoch validation (else the held-out fold is the validation data, as in
            the tutorial's training loop).
        n_folds: Number of folds (k).
        seed: Shuffling seed of the splitter; default ``data.split_seed``. Refused for windows
            of a series (nothing is shuffled).
        stratify: Keep class proportions in every fold (classification only).
        splitter: One of :data:`SPLITTERS` (:func:`choose_splitter`); ``"auto"``:
            ``TimeSeriesSplit`` for windows of a series, else (Stratified)KFold.

    Returns:
        The folds, in order.

    Raises:
        SpecError: k out of range, a splitter the data cannot take. DataError: too few
            samples (per class) for k folds.

    Example:
        Not run as a doctest: the means are only zero up to rounding, so the printed
        array is illustrative.

        >>> folds = make_folds(spec, 5, seed=0)          # doctest: +SKIP
        >>> folds[0].dataset.x_train.mean(axis=0)        # doctest: +SKIP
        array([0., 0.])
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    data = pooled_data(spec)
    name = choose_splitter(spec, data.task, splitter, stratify, seed)
    seed = spec.data.split_seed if seed is None else seed
    stratified = name == "StratifiedKFold"
    _check_folds(n_folds, len(data.y), data.y, name)
    if name == "TimeSeriesSplit":
        splits = _time_splits(spec, len(data.y), n_folds)
    else:
        shuffled = (StratifiedKFold if stratified else KFold)(n_splits=n_folds, shuffle=True, random_state=seed)
        splits = list(shuffled.split(data.x, data.y))
    labels = data.y if data.classes is None else data.classes[data.y]  # prepare encodes them again, identically
    folds: list[Fold] = []
    for i, (train_idx, test_idx) in enumerate(splits):
        where = f" in fold {i}"
        if name == "TimeSeriesSplit":
            parts = _time_parts(spec, train_idx, test_idx, where)
        else:
            parts = given_parts(spec, data.y, train_idx, test_idx, seed, stratified, where=where)
        ds = prepare(spec, data.x, labels, data.feature_names, parts)
        mean, scale = (ds.scaler.mean_, ds.scaler.scale_) if ds.scaler is not None else (None, None)
        folds.append(Fold(i, parts.train, parts.val, parts.test, ds, mean, scale))
    return folds
