"""k-fold datasets for a spec: load once, fold with sklearn, scale inside each fold.

Framework-free. Every sample of the spec's data takes part (its train, validation and
test parts pooled, so ``data.test_size`` does not apply); each fold is held out once. The
``StandardScaler`` is fitted on the fold's training part only and then applied to the
fold's validation and held-out parts: nothing about the held-out samples reaches training.

Example:
    >>> from duofit.common.loader import load_spec
    >>> spec = load_spec("examples/seed.toml")
    >>> folds = make_folds(spec, n_folds=5, seed=42)
    >>> [len(f.test_idx) for f in folds]
    [200, 200, 200, 200, 200]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from duofit.common.data import Dataset, given_parts, prepare, read_arrays, spec_parts
from duofit.common.data.targets import encode_targets
from duofit.common.errors import DataError, SpecError
from duofit.common.spec import Spec

__all__ = ["Fold", "PooledData", "make_folds", "pooled_data", "splitter_name"]

MAX_FOLDS = 1000  # k-fold beyond this is leave-one-out on big data: a typo, not a plan


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
    """
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


def splitter_name(task: str, stratify: bool) -> str:
    """``StratifiedKFold`` for classification (unless turned off), else ``KFold``.

    Example:
        >>> splitter_name("binary", True), splitter_name("regression", True)
        ('StratifiedKFold', 'KFold')
    """
    return "StratifiedKFold" if stratify and task != "regression" else "KFold"


def _check_folds(n_folds: int, n: int, y: np.ndarray, stratified: bool) -> None:
    if not 2 <= n_folds <= MAX_FOLDS:
        raise SpecError(f"--folds: need 2 <= folds <= {MAX_FOLDS} (got {n_folds})", path="folds")
    if n_folds > n:
        raise DataError(f"--folds {n_folds}: the data has only {n} samples", path="data")
    if stratified:
        smallest = int(np.bincount(y).min())
        if smallest < n_folds:
            raise DataError(
                f"--folds {n_folds}: the smallest class has {smallest} samples, fewer than the folds; "
                "use fewer folds or --no-stratify",
                path="data",
            )


def make_folds(spec: Spec, n_folds: int = 5, seed: int | None = None, stratify: bool = True) -> list[Fold]:
    """Split the spec's data into ``n_folds`` folds, each with its own scaler.

    Args:
        spec: A validated spec. ``data.standardize`` turns the per-fold scaler on;
            ``data.val_size > 0`` holds out that fraction of each fold's training part for
            per-epoch validation (else the held-out fold is the validation data, as in
            the tutorial's training loop).
        n_folds: Number of folds (k).
        seed: Shuffling seed of the splitter; default ``data.split_seed``.
        stratify: Keep class proportions in every fold (classification only).

    Returns:
        The folds, in order.

    Raises:
        SpecError: k out of range. DataError: too few samples (per class) for k folds.

    Example:
        Not run as a doctest: the means are only zero up to rounding, so the printed
        array is illustrative.

        >>> folds = make_folds(spec, 5, seed=0)          # doctest: +SKIP
        >>> folds[0].dataset.x_train.mean(axis=0)        # doctest: +SKIP
        array([0., 0.])
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    data = pooled_data(spec)
    seed = spec.data.split_seed if seed is None else seed
    stratified = splitter_name(data.task, stratify) == "StratifiedKFold"
    _check_folds(n_folds, len(data.y), data.y, stratified)
    splitter = (StratifiedKFold if stratified else KFold)(n_splits=n_folds, shuffle=True, random_state=seed)
    labels = data.y if data.classes is None else data.classes[data.y]  # prepare encodes them again, identically
    folds: list[Fold] = []
    for i, (train_idx, test_idx) in enumerate(splitter.split(data.x, data.y)):
        parts = given_parts(spec, data.y, train_idx, test_idx, seed, stratified, where=f" in fold {i}")
        ds = prepare(spec, data.x, labels, data.feature_names, parts)
        mean, scale = (ds.scaler.mean_, ds.scaler.scale_) if ds.scaler is not None else (None, None)
        folds.append(Fold(i, parts.train, parts.val, parts.test, ds, mean, scale))
    return folds
