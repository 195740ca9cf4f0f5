"""The arrays an exported training script loads: prepared data, batch order, initial weights.

``duofit export`` writes a standalone script and, beside it, one ``.npz`` holding exactly
what duofit's own backends train on, prepared once in numpy: the split and scaled data,
the targets in the form the loss consumes, the shared batch order of every epoch and the
initial weights (duofit's layout, ``init/layers.<i>.<param>``; each exporter adds the
arrays its framework needs in that framework's layout). The script therefore needs neither
duofit nor the original data files, and trains on the same numbers as ``duofit run``.

Example:
    >>> import tempfile, pathlib
    >>> from duofit.common.loader import load_spec
    >>> spec = load_spec("examples/seed.toml")
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "seed.npz"
    >>> arrays = bundle_arrays(spec)
    >>> arrays["order"].shape, arrays["x_train"].shape, sorted(k for k in arrays if k.startswith("init/"))
    ((100, 800), (800, 2), ['init/layers.0.bias', 'init/layers.0.kernel', 'init/layers.1.bias', 'init/layers.1.kernel'])
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from duofit.backends.base import make_plan
from duofit.common.data import MAX_ORDER_ELEMENTS, Part, load_dataset
from duofit.common.errors import DataError
from duofit.common.io import save_npz
from duofit.common.spec import Spec

__all__ = ["INIT_PREFIX", "bundle_arrays", "write_bundle"]

# Prefix of the duofit-layout initial weights in the bundle
INIT_PREFIX = "init/"


def bundle_arrays(spec: Spec) -> dict[str, np.ndarray]:
    """Data, targets, batch order and initial weights of ``spec``, as duofit's backends get them.

    Keys: ``x_train``, ``t_train`` (targets as the loss consumes them: a float column, int64
    class indices or one-hot rows), ``x_val``, ``t_val``, ``x_test``, ``y_test`` (labels or
    values as the metrics read them), ``order`` (``(epochs, n_train)``: batch ``b`` of epoch
    ``e`` is ``x_train[order[e, b*bs:(b+1)*bs]]``), ``sample_weight`` when the spec weights
    samples, and ``init/<name>`` for every initial weight (float64, Keras layout). Inputs are
    in ``train.dtype``.
    """
    plan = make_plan(spec, load_dataset(spec))
    ds = plan.dataset
    dtype = np.dtype(spec.train.dtype)
    _check_order_size(spec, len(ds.x_train))

    def inputs(x: Part) -> np.ndarray:  # streamed data (kind npy, parquet) are loaded here: scripts hold them whole
        return np.asarray(x) if x.dtype.kind in "iu" else x.astype(dtype)  # token ids stay integers

    arrays: dict[str, np.ndarray] = {
        "x_train": inputs(ds.x_train),
        "t_train": plan.t_train,
        "x_val": inputs(ds.x_val),
        "t_val": plan.t_val,
        "x_test": inputs(ds.x_test),
        "y_test": ds.y_test,
        "order": plan.order.array(),
    }
    if plan.sample_weight is not None:
        arrays["sample_weight"] = plan.sample_weight
    arrays.update({f"{INIT_PREFIX}{k}": v for k, v in plan.weights.items()})
    return arrays


def _check_order_size(spec: Spec, n_train: int) -> None:
    """The materialised order fits ``MAX_ORDER_ELEMENTS`` (a script loads every epoch's order from the bundle).

    The script could redraw each epoch's order from the seed (numpy's ``default_rng`` is the same
    everywhere); it loads the array instead so that it stays a plain list of batches, readable and
    independent of how duofit draws it. ``duofit run`` draws one epoch at a time and has no such cap.
    """
    epochs = spec.train.epochs
    if epochs * n_train > MAX_ORDER_ELEMENTS:
        raise DataError(
            f"train.epochs: an exported script loads every epoch's batch order: {epochs:,} epochs x {n_train:,} "
            f"training samples = {epochs * n_train:,} entries, over the cap of {MAX_ORDER_ELEMENTS:,} "
            "(duofit.common.data.MAX_ORDER_ELEMENTS); export with fewer epochs (duofit run has no such cap)",
            path="train.epochs",
        )


def write_bundle(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Save the bundle atomically (an uncompressed ``.npz``, read back with ``allow_pickle=False``)."""
    save_npz(path, arrays)
