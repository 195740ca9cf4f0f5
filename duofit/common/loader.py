"""Load a spec from TOML / JSON / dict and turn validation failures into clear SpecErrors.

Example:
    >>> from duofit.common.loader import load_spec
    >>> spec = load_spec({"data": {"kind": "iris"},
    ...                   "model": {"layers": [{"type": "dense", "units": 3}]},
    ...                   "loss": {"type": "categorical_crossentropy"}})
    >>> spec.data.kind
    'iris'
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from duofit.common.errors import SpecError
from duofit.common.spec import FieldProblem, Spec

__all__ = [
    "MAX_SEED",
    "MAX_SHOWN_CHARS",
    "MAX_SPEC_BYTES",
    "check_safety",
    "format_loc",
    "load_spec",
    "read_document",
    "spec_from_validation_error",
    "spec_to_toml",
]

MAX_SPEC_BYTES = 1_000_000  # a spec is a few hundred bytes; anything near 1 MB is a mistake
# Longest key or value quoted back in an error message; a fuzzed 1 MB key must not become a 1 MB message.
MAX_SHOWN_CHARS = 80
# Largest seed every consumer accepts: sklearn's random_state and keras.utils.set_random_seed take
# [0, 2**32 - 1]; numpy's SeedSequence rejects negatives; torch.manual_seed overflows past 2**64.
MAX_SEED = 2**32 - 1
# Integers of more than ~4300 digits cannot be printed (Python's int/str limit, CVE-2020-10735) and make
# pydantic-core report "unraisable" exceptions; 14,000 bits (~4,200 digits) is below that limit and far
# above any value a spec field accepts (the largest, a seed, is 32 bits).
_MAX_INT_BITS = 14_000
# `name` becomes a folder (results/<name>/ in the CLI, tuning study names): one path component, no
# separators, no drive colon, no control characters, not made of dots only (".", "..").
_UNSAFE_NAME = re.compile(r"[/\\:\x00-\x1f\x7f]")


def _short(value: Any) -> str:
    """``repr(value)`` cut to :data:`MAX_SHOWN_CHARS`; safe for ints too long to print."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 10_000:
        digits = int(value.bit_length() * math.log10(2)) + 1
        return f"an integer of about {digits:,} digits"
    if isinstance(value, Mapping):
        return "a table"
    try:
        text = repr(value)
    except ValueError:  # an int beyond sys.get_int_max_str_digits() inside a list
        return "a value with an integer of too many digits"
    except RecursionError:  # a list nested thousands deep
        return "a list nested too deeply"
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 3] + "..."


def format_loc(loc: tuple[Any, ...]) -> str:
    """Turn a pydantic location tuple into a path like ``model.layers[1].units``.

    Discriminated-union tags (``'dense'`` etc.) that pydantic inserts are dropped.

    Example:
        >>> format_loc(("model", "layers", 1, "dense", "units"))
        'model.layers[1].units'
        >>> format_loc(("model", "layers", 1, "bidirectional", "layer", "lstm", "units"))
        'model.layers[1].layer.units'
    """
    parts: list[str] = []
    for i, item in enumerate(loc):
        if isinstance(item, int):
            parts.append(f"[{item if abs(item) < 10**12 else _short(item)}]")
        elif i > 0 and isinstance(loc[i - 1], (int, str)) and _is_union_tag(loc, i):
            continue
        else:
            text = str(item)
            if len(text) > MAX_SHOWN_CHARS:
                text = text[: MAX_SHOWN_CHARS - 3] + "..."
            parts.append(("." if parts else "") + text)
    return "".join(parts)


def _is_union_tag(loc: tuple[Any, ...], i: int) -> bool:
    # pydantic puts the tag after the union field (loss -> 'mse', a bidirectional's layer -> 'lstm')
    # or after the list index.
    prev = loc[i - 1]
    if isinstance(prev, int):
        return i >= 2 and loc[i - 2] in ("layers", "metrics")
    return prev in ("loss", "optimizer", "layer")


def _allowed_keys(loc: tuple[Any, ...], raw: Any) -> list[str] | None:
    """Field names allowed at the parent of ``loc`` (for unknown-key errors)."""
    import typing

    annotation: Any = Spec
    node: Any = raw
    for item in loc[:-1]:
        if isinstance(item, int):
            args = typing.get_args(annotation)
            annotation = args[0] if args else None
            node = node[item] if isinstance(node, list) and 0 <= item < len(node) else None
            continue
        model = _model_of(annotation, node)
        if model is not None and item in model.model_fields:
            annotation = model.model_fields[item].annotation
            node = node.get(item) if isinstance(node, Mapping) else None
        # else: a union tag that pydantic inserted; stay on the same node
    model = _model_of(annotation, node)
    return sorted(model.model_fields) if model is not None else None


def _model_of(annotation: Any, node: Any) -> type[BaseModel] | None:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) is list:
        return None
    args = typing.get_args(annotation)
    candidates: list[type[BaseModel]] = []
    for arg in args:
        sub = _model_of(arg, node)
        if sub is not None:
            candidates.append(sub)
    tag = node.get("type") if isinstance(node, Mapping) else None
    for cand in candidates:
        field = cand.model_fields.get("type")
        if field is not None and tag in typing.get_args(field.annotation):
            return cand
    return candidates[0] if len(candidates) == 1 else None


# pydantic's member tags of the ``data.params`` value union (bool | int | float | str | list[...]).
_PARAM_TAGS = frozenset({"bool", "int", "float", "str", "list[float]", "list[int]"})
_PARAM_MESSAGE = "must be a boolean, a number, a string or a list of numbers"


def _param_value_error(loc: tuple[Any, ...]) -> bool:
    """True for one member's error of the ``data.params`` union (reported once per key instead)."""
    return len(loc) >= 4 and loc[:2] == ("data", "params") and loc[3] in _PARAM_TAGS


def spec_from_validation_error(exc: ValidationError, source: str, raw: Any = None) -> SpecError:
    """Convert a pydantic ``ValidationError`` into a :class:`SpecError` with field paths."""
    problems: list[tuple[str, str]] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err.get("loc", ()))
        kind = err.get("type", "")
        if _param_value_error(loc):
            path = format_loc(loc[:3])
            if all(p != path for p, _ in problems):  # one line per key, not one per union member
                problems.append((path, f"{_PARAM_MESSAGE} (got {_short(err.get('input'))})"))
            continue
        path = format_loc(loc) or "(top level)"
        msg = str(err.get("msg", "invalid value"))
        msg = msg.removeprefix("Value error, ")
        if kind == "extra_forbidden":
            allowed = _allowed_keys(loc, raw)
            hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
            msg = f"unknown key {_short(str(loc[-1]))}{hint} (check the spelling)"
        elif kind == "missing":
            msg = "required field is missing"
        elif kind == "union_tag_invalid":
            ctx = err.get("ctx", {})
            path = f"{path}.type" if path != "(top level)" else "type"
            msg = f"unknown type {_short(ctx.get('tag'))}; allowed: {ctx.get('expected_tags')}"
        elif kind == "union_tag_not_found":
            path = f"{path}.type" if path != "(top level)" else "type"
            msg = f"missing key 'type'; allowed: {err.get('ctx', {}).get('expected_tags', '')}".rstrip()
        elif isinstance(err.get("ctx", {}).get("error"), FieldProblem):
            problem = err["ctx"]["error"]
            path = ".".join(p for p in (format_loc(loc), problem.path) if p).replace(".[", "[")
            msg = str(problem)
        elif "input" in err and not isinstance(err["input"], (dict, list)):
            msg = f"{msg} (got {_short(err['input'])})"
        problems.append((path, msg))
    lines = [f"invalid spec {source}:"] + [f"  {p}: {m}" for p, m in problems]
    lines.append("See `duofit schema` for every field, its type and its default.")
    return SpecError("\n".join(lines), path=problems[0][0] if problems else "", problems=problems)


def read_document(path: Path) -> dict[str, Any]:
    """A spec file's table as written (TOML or JSON, size- and depth-checked), not yet validated."""
    if not path.exists():
        raise SpecError(f"spec file not found: {path}", path="")
    if path.is_dir():
        raise SpecError(f"spec path {path} is a directory; give a .toml or .json file", path="")
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise SpecError(f"spec file {path}: unknown extension {suffix!r}; use .toml or .json", path="")
    if not path.is_file():  # a FIFO or device (/dev/zero) would block or never end
        raise SpecError(f"spec path {path} is not a regular file", path="")
    with path.open("rb") as fh:  # bounded read: the size on disk may change or lie (procfs)
        data = fh.read(MAX_SPEC_BYTES + 1)
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError(f"spec file {path} is larger than the limit of {MAX_SPEC_BYTES:,} bytes", path="")
    try:
        text = data.decode("utf-8-sig")  # a leading byte-order mark (Windows editors) is dropped
    except UnicodeDecodeError as exc:
        raise SpecError(f"spec file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8", path="") from None
    try:
        doc = json.loads(text) if suffix == ".json" else tomllib.loads(text)
    except RecursionError:
        raise SpecError(f"spec file {path} is nested too deeply", path="") from None
    except ValueError as exc:  # JSONDecodeError, TOMLDecodeError, or an integer of > 4300 digits
        raise SpecError(f"spec file {path} is not valid {suffix[1:].upper()}: {exc}", path="") from None
    if not isinstance(doc, dict):
        raise SpecError(f"spec file {path} must hold a table/object at the top level", path="")
    return doc


def check_safety(spec: Spec, label: str = "(spec)") -> Spec:
    """Refuse values that are valid pydantic but unsafe to run: an escaping ``name``, an unusable seed.

    ``name`` becomes an output folder (``results/<name>/``), so it must be a single path
    component; seeds must be accepted by numpy, sklearn, torch and Keras alike.

    Args:
        spec: A validated spec.
        label: Where it came from (a file name), for the message.

    Returns:
        ``spec`` unchanged.

    Raises:
        SpecError: naming ``name``, ``data.split_seed`` or ``train.seed``.
    """
    problems: list[tuple[str, str]] = []
    name = spec.name
    if name is not None and (_UNSAFE_NAME.search(name) or (name.strip(". ") == "" and name != "")):
        problems.append(
            (
                "name",
                f"{_short(name)} cannot be used as a folder name: use letters, digits, '-', '_' or '.', "
                "without '/', '\\', ':' or control characters, and not only dots",
            )
        )
    for path, seed in (("data.split_seed", spec.data.split_seed), ("train.seed", spec.train.seed)):
        if not 0 <= seed <= MAX_SEED:
            problems.append((path, f"must be between 0 and {MAX_SEED} (2**32 - 1) (got {_short(seed)})"))
    if problems:
        lines = [f"invalid spec {label}:"] + [f"  {p}: {m}" for p, m in problems]
        raise SpecError("\n".join(lines), path=problems[0][0], problems=problems)
    return spec


def _huge_int_path(doc: Any) -> tuple[Any, ...] | None:
    """Location of the first integer (value or key) over :data:`_MAX_INT_BITS`, walking without recursion."""
    stack: list[tuple[tuple[Any, ...], Any]] = [((), doc)]
    seen: set[int] = set()
    while stack:
        loc, node = stack.pop()
        if isinstance(node, int) and not isinstance(node, bool):
            if node.bit_length() > _MAX_INT_BITS:
                return loc
            continue
        if not isinstance(node, (Mapping, list, tuple)) or id(node) in seen:
            continue
        seen.add(id(node))  # a self-referencing mapping is visited once
        items = node.items() if isinstance(node, Mapping) else enumerate(node)
        for key, value in items:
            if isinstance(node, Mapping) and isinstance(key, int) and key.bit_length() > _MAX_INT_BITS:
                return (*loc, "(key)")
            stack.append(((*loc, key), value))
    return None


def load_spec(source: str | Path | Mapping[str, Any] | Spec) -> Spec:
    """Load and validate a spec.

    Args:
        source: A path to a ``.toml``/``.json`` file, a mapping, or a ``Spec``.
            A relative ``data.path`` (a CSV or ``.npz`` file) or ``model.weights`` is resolved against the spec
            file's folder.

    Returns:
        The frozen, validated :class:`~duofit.common.spec.Spec`.

    Raises:
        SpecError: the file cannot be read or a field is invalid; the message names
            every bad field path, the value and what is allowed.

    Example:
        >>> spec = load_spec("examples/seed.toml")
        >>> spec.optimizer.lr
        0.01
    """
    if isinstance(source, Spec):
        return check_safety(source)
    base: Path | None = None
    if isinstance(source, Mapping):
        doc: Any = dict(source)
        label = "(from a mapping)"
    else:
        path = Path(source)
        doc = read_document(path)
        label = str(path)
        base = path.resolve().parent
    huge = _huge_int_path(doc)
    if huge is not None:
        parts = [f"[{k}]" if isinstance(k, int) else f".{str(k)[:MAX_SHOWN_CHARS]}" for k in huge]
        where = "".join(parts)[1:] if parts and not parts[0].startswith("[") else "".join(parts)
        where = where or "(top level)"
        message = f"invalid spec {label}:\n  {where}: an integer with thousands of digits; no field accepts one"
        raise SpecError(message, path=where)
    try:
        spec = Spec.model_validate(doc)
    except ValidationError as exc:
        raise spec_from_validation_error(exc, label, doc) from None
    except RecursionError:
        raise SpecError(f"spec {label} is nested too deeply", path="") from None
    check_safety(spec, label)
    if base is not None and spec.data.path:  # any kind that reads a file (csv, npz, csv_series, csv_text)
        data_path = Path(spec.data.path)
        if not data_path.is_absolute():
            data = spec.data.model_copy(update={"path": str(base / data_path)})
            spec = spec.model_copy(update={"data": data})
    files = {k: str(base / v) for k in ("x", "y") if base is not None and (v := getattr(spec.data, k))}
    files = {k: v for k, v in files.items() if not Path(getattr(spec.data, k)).is_absolute()}
    if files:  # kind npy: the features' and targets' .npy files, relative to the spec like data.path
        spec = spec.model_copy(update={"data": spec.data.model_copy(update=files)})
    if base is not None and spec.model.weights and not Path(spec.model.weights).is_absolute():
        model = spec.model.model_copy(update={"weights": str(base / spec.model.weights)})
        spec = spec.model_copy(update={"model": model})
    return spec


def spec_to_toml(spec: Spec) -> str:
    """Serialise a spec back to TOML (defaults included), e.g. to save a tuned spec."""
    import tomli_w

    return tomli_w.dumps(spec.model_dump(mode="json", exclude_none=True))
