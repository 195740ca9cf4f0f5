"""Dotted spec field paths (``optimizer.lr``, ``model.layers[0].units``) and setting them.

A path names one field of a spec. Values are set on the spec's document as the user
wrote it (defaults left out), then the whole spec is validated again, so an unknown
field or a bad value comes back as a :class:`~duofit.SpecError` naming the path and
what is allowed there.

Example:
    >>> from duofit.common.loader import load_spec
    >>> spec = load_spec("examples/seed.toml")
    >>> with_values(spec, {"optimizer.lr": 0.1}).optimizer.lr
    0.1
    >>> parse_path("model.layers[0].units")
    ('model', 'layers', 0, 'units')
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from typing import Any

from duofit.common.errors import SpecError
from duofit.common.loader import load_spec
from duofit.common.spec import Spec

__all__ = [
    "PathPart",
    "format_path",
    "parse_path",
    "parse_value",
    "parse_values",
    "path_from_param",
    "set_path",
    "with_values",
]

PathPart = str | int

_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)")
_INDEX = re.compile(r"\[(\d+)\]")


def parse_path(path: str) -> tuple[PathPart, ...]:
    """Split a dotted path into names and list indices.

    Args:
        path: e.g. ``"optimizer.lr"``, ``"model.layers[0].units"``, ``"data.params.n_samples"``.

    Returns:
        The parts, list indices as ``int``.

    Raises:
        SpecError: the text is not a dotted path.

    Example:
        >>> parse_path("model.layers[1].kernel_init.name")
        ('model', 'layers', 1, 'kernel_init', 'name')
    """
    parts: list[PathPart] = []
    text = path.strip()
    if not text:
        raise SpecError("empty field path; write it like optimizer.lr or model.layers[0].units", path="")
    for piece in text.split("."):
        match = _PART.fullmatch(piece)
        if match is None:
            raise SpecError(
                f"{path!r} is not a field path; write it like optimizer.lr or model.layers[0].units "
                f"(bad part {piece!r})",
                path=path,
            )
        parts.append(match.group(1))
        parts.extend(int(i) for i in _INDEX.findall(match.group(2)))
    return tuple(parts)


def format_path(parts: tuple[PathPart, ...]) -> str:
    """The inverse of :func:`parse_path`.

    Example:
        >>> format_path(("model", "layers", 0, "units"))
        'model.layers[0].units'
    """
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def path_from_param(name: str) -> str:
    """scikit-learn's nested parameter name to a dotted path (``__`` separates, digits index).

    Example:
        >>> path_from_param("model__layers__0__units")
        'model.layers[0].units'
        >>> path_from_param("optimizer__lr")
        'optimizer.lr'
    """
    parts: list[PathPart] = [int(p) if p.isdigit() else p for p in name.split("__")]
    return format_path(tuple(parts))


def _materialize(full: Any, parts: tuple[PathPart, ...]) -> Any:
    """A container to create where the user's document has none (keep only a union's ``type``)."""
    node = full
    for part in parts:
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return {}
    if isinstance(node, Mapping):
        return {"type": node["type"]} if "type" in node else {}
    return {}


def set_path(doc: dict[str, Any], parts: tuple[PathPart, ...], value: Any, full: Mapping[str, Any]) -> None:
    """Set ``value`` at ``parts`` in ``doc`` (a spec document), creating missing tables.

    Args:
        doc: The document to change in place (as written by the user, defaults omitted).
        parts: From :func:`parse_path`.
        value: The new value.
        full: The same spec with every default filled in; a missing table is created with
            the ``type`` it has there, so ``optimizer.lr`` keeps the spec's optimizer type.

    Raises:
        SpecError: a list index is out of range, or the path goes through a plain value.

    Example:
        >>> doc = {"optimizer": {"type": "sgd"}}
        >>> set_path(doc, ("optimizer", "lr"), 0.1, full={})
        >>> doc
        {'optimizer': {'type': 'sgd', 'lr': 0.1}}
    """
    node: Any = doc
    for i, part in enumerate(parts[:-1]):
        where = format_path(parts[: i + 1])
        if isinstance(part, int):
            if not isinstance(node, list):
                raise SpecError(f"{where}: {format_path(parts[:i])} is not a list; remove the index", path=where)
            if part >= len(node):
                raise SpecError(
                    f"{where}: index out of range; {format_path(parts[:i])} has {len(node)} entries "
                    f"(indices 0..{len(node) - 1})",
                    path=where,
                )
            node = node[part]
            continue
        if not isinstance(node, dict):
            raise SpecError(f"{where}: {format_path(parts[:i])} is a plain value, not a table", path=where)
        if node.get(part) is None:
            node[part] = _materialize(full, parts[: i + 1])
        node = node[part]
    last = parts[-1]
    where = format_path(parts)
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise SpecError(f"{where}: no such list entry", path=where)
        node[last] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise SpecError(f"{where}: {format_path(parts[:-1])} is a plain value, not a table", path=where)


def with_values(spec: Spec | str | Mapping[str, Any], values: Mapping[str, Any], source: str = "") -> Spec:
    """A copy of ``spec`` with the fields at the given dotted paths replaced, validated again.

    Args:
        spec: A spec (or anything :func:`duofit.load_spec` accepts).
        values: ``{dotted path: value}``.
        source: Where the values come from, for the error message (e.g. ``"--set"``).

    Returns:
        The new, validated :class:`~duofit.Spec`.

    Raises:
        SpecError: unknown field (the message lists the allowed keys there), bad value,
            or an index out of range.

    Example:
        >>> spec = with_values("examples/seed.toml", {"train.batch_size": 64})
        >>> spec.train.batch_size
        64
    """
    base = load_spec(spec)
    if not values:
        return base
    doc = base.model_dump(mode="json", exclude_unset=True)
    full = base.model_dump(mode="json")
    for path, value in values.items():
        set_path(doc, parse_path(path), value, full)
    try:
        return load_spec(doc)
    except SpecError as exc:
        label = f" (values from {source})" if source else ""
        text = str(exc).replace("invalid spec (from a mapping):", f"invalid value{label}:", 1)
        raise SpecError(text, path=exc.path, problems=exc.problems) from None


def parse_value(text: str) -> Any:
    """A command-line value as TOML would read it: ``0.1`` float, ``32`` int, ``true``, else text.

    Example:
        >>> parse_value("0.1"), parse_value("32"), parse_value("true"), parse_value("sgd")
        (0.1, 32, True, 'sgd')
    """
    text = text.strip()
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_values(assignment: str) -> tuple[str, list[Any]]:
    """Parse ``path=v1,v2,...`` (a ``--set`` argument).

    Raises:
        SpecError: no ``=``, an empty value list, or a bad path.

    Example:
        >>> parse_values("optimizer.lr=0.1,0.01")
        ('optimizer.lr', [0.1, 0.01])
    """
    path, sep, rest = assignment.partition("=")
    if not sep or not rest.strip():
        raise SpecError(
            f"--set {assignment!r}: write FIELD=VALUE[,VALUE...], e.g. --set optimizer.lr=0.1,0.01,0.001",
            path=path.strip(),
        )
    parse_path(path)
    values = [parse_value(v) for v in rest.split(",") if v.strip()]
    if not values:
        raise SpecError(f"--set {assignment!r}: no values after '='", path=path.strip())
    return path.strip(), values
