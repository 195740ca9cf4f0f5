"""``FIELD=VALUE`` overrides of a spec (``optimizer.lr=0.1``, ``model.layers[0].units=64``).

Values are parsed as TOML (``0.1``, ``true``, ``"adam"``, ``[1, 2]``); a bare word that is
not TOML is taken as a string. The result is validated like a spec file, so an unknown
field or a bad value raises a SpecError naming the path.

Example:
    >>> from duofit.common.loader import load_spec
    >>> spec = load_spec("examples/seed.toml")  # doctest: +SKIP
    >>> apply_overrides(spec, ["optimizer.lr=0.1", "model.layers[0].units=32"]).optimizer.lr  # doctest: +SKIP
    0.1
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from typing import Any

from duofit.common.errors import SpecError
from duofit.common.spec import Spec

__all__ = ["apply_overrides", "parse_value", "set_path"]

_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)")


def parse_value(text: str) -> Any:
    """Parse a value as TOML, falling back to the raw string.

    Example:
        >>> parse_value("0.5"), parse_value("true"), parse_value("adam"), parse_value("[1, 2]")
        (0.5, True, 'adam', [1, 2])
    """
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def set_path(doc: dict[str, Any], path: str, value: Any) -> None:
    """Set ``value`` at a dotted path with optional list indices, creating tables as needed.

    Raises:
        SpecError: malformed path, or an index outside the list.
    """
    keys: list[str | int] = []
    for part in path.split("."):
        m = _PART.fullmatch(part)
        if m is None:
            raise SpecError(f"{path}: malformed field path (expected e.g. optimizer.lr or model.layers[0].units)", path)
        keys.append(m.group(1))
        keys += [int(i) for i in re.findall(r"\[(\d+)\]", m.group(2))]
    node: Any = doc
    for i, key in enumerate(keys[:-1]):
        if isinstance(key, int):
            if not isinstance(node, list) or key >= len(node):
                size = len(node) if isinstance(node, list) else 0
                raise SpecError(f"{path}: index [{key}] is outside the list (it has {size} items)", path)
            node = node[key]
        else:
            if not isinstance(node, dict):
                raise SpecError(f"{path}: {keys[i - 1]!r} is not a table", path)
            node = node.setdefault(key, {} if not isinstance(keys[i + 1], int) else [])
    last = keys[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise SpecError(f"{path}: index [{last}] is outside the list", path)
    elif not isinstance(node, dict):
        raise SpecError(f"{path}: parent of {last!r} is not a table", path)
    node[last] = value  # type: ignore[index]


def apply_overrides(spec: Spec, items: Iterable[str]) -> Spec:
    """Return a new validated spec with ``FIELD=VALUE`` items applied."""
    from duofit.common.loader import load_spec

    items = list(items)
    if not items:
        return spec
    doc = spec.model_dump(mode="json")
    for item in items:
        if "=" not in item:
            raise SpecError(f"override {item!r} must look like FIELD=VALUE, e.g. optimizer.lr=0.01", "")
        path, text = item.split("=", 1)
        set_path(doc, path.strip(), parse_value(text.strip()))
    return load_spec(doc)
