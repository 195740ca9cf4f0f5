"""Cross-validation, hyperparameter search and sweeps on either backend.

Modules (each imported on first use; Optuna only by ``search``):

- ``paths``: dotted spec field paths (``optimizer.lr``, ``model.layers[0].units``) and setting them.
- ``folds``: k-fold datasets, the scaler fitted inside each fold (framework-free).
- ``fitting``: train / predict on arrays you hold, in this process.
- ``cv``: ``cross_validate`` on every backend, one worker process each (``worker``).
- ``space``: search-space files; ``search``: Optuna studies; ``report``: their files.
- ``sweep``: a spec over values of a field on every backend.
- ``cli``: the ``duofit cv | tune | sweep`` subcommands.

Example:
    Trains five models on every backend, so the last line is not run as a doctest.

    >>> from duofit.tuning.cv import cross_validate
    >>> cross_validate("examples/seed.toml", n_folds=5).table()   # doctest: +SKIP
"""

from __future__ import annotations

__all__: list[str] = []
