"""``FIELD=VALUE`` overrides of a spec (``optimizer.lr=0.1``, ``model.layers[0].units=64``).

Values are parsed as TOML (``0.1``, ``true``, ``"adam"``, ``[1, 2]``); a bare word that is
not TOML is taken as a string. Paths and validation are :mod:`duofit.common.paths`' (shared
with tuning search spaces and the scikit-learn estimators), so an unknown field or a bad
value raises a SpecError naming the path.

Example:
    >>> from duofit.common.loader import load_spec
    >>> spec = load_spec("examples/seed.toml")
    >>> apply_overrides(spec, ["optimizer.lr=0.1", "model.layers[0].units=32"]).optimizer.lr
    0.1
"""

from __future__ import annotations

from collections.abc import Iterable

from duofit.common.errors import SpecError
from duofit.common.paths import parse_value, with_values
from duofit.common.spec import Spec

__all__ = ["apply_overrides", "parse_value"]


def apply_overrides(spec: Spec, items: Iterable[str]) -> Spec:
    """Return a new validated spec with ``FIELD=VALUE`` items applied (later items win)."""
    values = {}
    for item in items:
        if "=" not in item:
            raise SpecError(f"override {item!r} must look like FIELD=VALUE, e.g. optimizer.lr=0.01", "")
        path, text = item.split("=", 1)
        values[path.strip()] = parse_value(text)
    return with_values(spec, values, source="override") if values else spec
