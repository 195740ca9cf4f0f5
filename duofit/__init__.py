"""duofit: one experiment spec, compiled to a PyTorch loop and a Keras fit, compared honestly.

``import duofit`` imports no deep-learning framework; a backend's framework is imported
the first time that backend runs.

Example:
    Training needs the torch backend, so the last two lines are not run as a doctest.

    >>> import duofit
    >>> spec = duofit.load_spec("examples/seed.toml")
    >>> res = duofit.run(spec, backend="torch")                 # doctest: +SKIP
    >>> res.metrics["accuracy"] > 0.85                          # doctest: +SKIP
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from duofit._version import __version__
from duofit.common.errors import (
    BackendError,
    BackendNotInstalledError,
    DataError,
    DivergenceError,
    DuofitError,
    SpecError,
)
from duofit.common.lazy import lazy_getattr
from duofit.common.loader import load_spec
from duofit.common.registry import installed_backends as available_backends
from duofit.common.spec import Spec

if TYPE_CHECKING:
    from duofit.common.result import RunResult
    from duofit.porting.export import export_script
    from duofit.porting.from_keras import from_keras
    from duofit.porting.from_torch import from_torch
    from duofit.porting.port import port
    from duofit.runner import Comparison, compare, run

__all__ = [
    "BackendError",
    "BackendNotInstalledError",
    "Comparison",
    "DataError",
    "DivergenceError",
    "DuofitError",
    "RunResult",
    "Spec",
    "SpecError",
    "__version__",
    "available_backends",
    "compare",
    "export_script",
    "from_keras",
    "from_torch",
    "load_spec",
    "port",
    "run",
]

_LAZY = {
    "run": "duofit.runner",
    "compare": "duofit.runner",
    "Comparison": "duofit.runner",
    "RunResult": "duofit.common.result",
    "from_keras": "duofit.porting.from_keras",
    "from_torch": "duofit.porting.from_torch",
    "export_script": "duofit.porting.export",
    "port": "duofit.porting.port",
}


__getattr__ = lazy_getattr("duofit", _LAZY)  # import the heavier parts (numpy, pandas, sklearn) on first use
