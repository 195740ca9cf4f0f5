"""Search-space files: which spec fields to tune, over which values.

A space is a TOML (or JSON) file with one ``[[params]]`` table per tuned field; any
dotted spec field works (``optimizer.lr``, ``train.batch_size``, ``model.layers[0].units``).

```toml
metric = "accuracy"            # optional: the objective (validation metric); CLI --metric wins

[[params]]
field = "optimizer.lr"
type = "float"                 # float | int | categorical
low = 1e-4
high = 0.3
log = true                     # sample on a log scale
grid = [0.1, 0.01, 0.001]      # points for --search grid (default: 5 points, log-spaced here)

[[params]]
field = "train.batch_size"
type = "categorical"
choices = [16, 32, 64]
```

Every bound, grid point and choice is checked against the spec when the space is
loaded, so an unknown field or a value the spec refuses is reported before any trial.

Example:
    >>> from duofit.common.loader import load_spec
    >>> space = load_space("examples/space.toml", load_spec("examples/seed.toml"))
    >>> space.grid()["optimizer.lr"]
    [0.1, 0.01, 0.001]
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from duofit.common.errors import SpecError
from duofit.common.paths import parse_path, with_values
from duofit.common.spec import Spec

__all__ = [
    "DEFAULT_GRID_POINTS",
    "MAX_GRID_POINTS",
    "CategoricalParam",
    "FloatParam",
    "IntParam",
    "SearchSpace",
    "load_space",
]

DEFAULT_GRID_POINTS = 5  # a float range without `grid` is cut into this many points for --search grid
MAX_GRID_POINTS = 10_000  # larger grids are a typo (a wide int range), not a plan; write `grid = [...]`

Scalar = Union[bool, int, float, str]


class _Base(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_grid(low: float, high: float, grid: list[Any] | None) -> None:
    for value in grid or []:
        if not low <= value <= high:
            raise ValueError(f"grid value {value} is outside [low, high] = [{low}, {high}]")


class FloatParam(_Base):
    """A float field sampled in ``[low, high]`` (optionally on a log scale or a step)."""

    field: str
    type: Literal["float"]
    low: Annotated[float, Field(allow_inf_nan=False)]
    high: Annotated[float, Field(allow_inf_nan=False)]
    log: bool = False
    step: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    grid: Annotated[list[float], Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _bounds(self) -> FloatParam:
        if not self.low < self.high:
            raise ValueError(f"low must be < high (got low = {self.low}, high = {self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"log = true needs low > 0 (got {self.low})")
        if self.log and self.step is not None:
            raise ValueError("use either log = true or step, not both")
        _check_grid(self.low, self.high, self.grid)
        return self

    def values(self) -> list[Any]:
        """Grid points: ``grid``, the ``step`` lattice, or DEFAULT_GRID_POINTS spaced points."""
        if self.grid is not None:
            return list(self.grid)
        if self.step is not None:
            n = math.floor((self.high - self.low) / self.step + 1e-9) + 1
            return [float(self.low + i * self.step) for i in range(n)]
        space = np.geomspace if self.log else np.linspace
        return [float(v) for v in space(self.low, self.high, DEFAULT_GRID_POINTS)]

    def suggest(self, trial: Any) -> float:
        """Ask an Optuna trial for a value."""
        return float(trial.suggest_float(self.field, self.low, self.high, log=self.log, step=self.step))


class IntParam(_Base):
    """An integer field sampled in ``[low, high]`` (inclusive)."""

    field: str
    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: Annotated[int, Field(gt=0)] = 1
    grid: Annotated[list[int], Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _bounds(self) -> IntParam:
        if not self.low <= self.high:
            raise ValueError(f"low must be <= high (got low = {self.low}, high = {self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"log = true needs low > 0 (got {self.low})")
        if self.log and self.step != 1:
            raise ValueError("use either log = true or step, not both")
        _check_grid(self.low, self.high, self.grid)
        return self

    def values(self) -> list[Any]:
        """Grid points: ``grid``, or every ``step``-th integer from low to high."""
        if self.grid is not None:
            return list(self.grid)
        return list(range(self.low, self.high + 1, self.step))

    def suggest(self, trial: Any) -> int:
        """Ask an Optuna trial for a value."""
        return int(trial.suggest_int(self.field, self.low, self.high, log=self.log, step=self.step))


class CategoricalParam(_Base):
    """One of a list of values (numbers, strings or booleans), e.g. an optimizer type."""

    field: str
    type: Literal["categorical"]
    choices: Annotated[list[Scalar], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique(self) -> CategoricalParam:
        if len({json.dumps(c) for c in self.choices}) != len(self.choices):
            raise ValueError("choices are listed twice")
        return self

    def values(self) -> list[Any]:
        """Grid points: the choices."""
        return list(self.choices)

    def suggest(self, trial: Any) -> Any:
        """Ask an Optuna trial for a value."""
        return trial.suggest_categorical(self.field, self.choices)


Param = Annotated[Union[FloatParam, IntParam, CategoricalParam], Field(discriminator="type")]


class SearchSpace(_Base):
    """A whole search space: the tuned fields and, optionally, the objective metric."""

    params: Annotated[list[Param], Field(min_length=1, max_length=100)]
    metric: str | None = None

    @model_validator(mode="after")
    def _unique_fields(self) -> SearchSpace:
        seen: set[str] = set()
        for p in self.params:
            if p.field in seen:
                raise ValueError(f"field {p.field!r} is listed twice")
            seen.add(p.field)
        return self

    @property
    def fields(self) -> list[str]:
        """The tuned field paths, in file order."""
        return [p.field for p in self.params]

    def grid(self) -> dict[str, list[Any]]:
        """``{field: grid points}`` for a grid search.

        Example:
            >>> from duofit.common.loader import load_spec
            >>> load_space("examples/space.toml", load_spec("examples/seed.toml")).grid()
            {'optimizer.lr': [0.1, 0.01, 0.001], 'model.layers[0].units': [4, 16], 'train.batch_size': [16, 32, 64]}
        """
        return {p.field: p.values() for p in self.params}

    def grid_size(self) -> int:
        """Number of points of the full grid."""
        return math.prod(len(v) for v in self.grid().values())

    def suggest(self, trial: Any) -> dict[str, Any]:
        """One value per field from an Optuna trial (its sampler decides how)."""
        return {p.field: p.suggest(trial) for p in self.params}

    def check(self, spec: Spec, source: str = "space") -> None:
        """Apply every bound, grid point and choice to ``spec``; raise if the spec refuses one.

        Raises:
            SpecError: naming ``params[i]``, the field path and the spec's complaint.
        """
        for i, p in enumerate(self.params):
            parse_path(p.field)
            probes = p.values() if p.type == "categorical" else [p.low, p.high, *(p.grid or [])]
            for value in probes:
                try:
                    with_values(spec, {p.field: value})
                except SpecError as exc:
                    detail = "; ".join(f"{path}: {msg}" for path, msg in exc.problems)
                    raise SpecError(
                        f"{source}: params[{i}] (field {p.field!r}, value {value!r}): {detail}",
                        path=f"params[{i}].field",
                    ) from None
        if self.grid_size() > MAX_GRID_POINTS:
            raise SpecError(
                f"{source}: the grid has {self.grid_size():,} points (limit {MAX_GRID_POINTS:,}); "
                "give short `grid = [...]` lists",
                path="params",
            )


_TAGS = ("float", "int", "categorical")


def _error_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for i, item in enumerate(loc):
        if isinstance(item, int):
            out += f"[{item}]"
        elif i >= 2 and isinstance(loc[i - 1], int) and loc[i - 2] == "params" and item in _TAGS:
            continue  # the union tag pydantic inserts
        else:
            out += f".{item}" if out else str(item)
    return out or "(top level)"


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SpecError(f"search-space file not found: {path}", path="")
    text = path.read_text(encoding="utf-8")
    try:
        doc = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SpecError(f"search-space file {path} is not valid {path.suffix[1:].upper()}: {exc}", path="") from None
    if not isinstance(doc, dict):
        raise SpecError(f"search-space file {path} must hold a table at the top level", path="")
    return doc


def load_space(source: str | Path | dict[str, Any], spec: Spec | None = None) -> SearchSpace:
    """Load and check a search space.

    Args:
        source: A ``.toml``/``.json`` file or a mapping.
        spec: If given, every field and value is checked against it (see :meth:`SearchSpace.check`).

    Returns:
        The validated :class:`SearchSpace`.

    Raises:
        SpecError: a bad space entry (named ``params[i].<key>``, with the allowed values)
            or a field the spec does not have.

    Example:
        >>> load_space({"params": [{"field": "optimizer.lr", "type": "float",
        ...                         "low": 1e-3, "high": 0.1, "log": True}]}).fields
        ['optimizer.lr']
    """
    label = "(mapping)" if isinstance(source, dict) else str(source)
    doc = source if isinstance(source, dict) else _read(Path(source))
    try:
        space = SearchSpace.model_validate(doc)
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False):
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            if err.get("type") == "extra_forbidden":
                msg = f"unknown key {err['loc'][-1]!r} (allowed: see the space file format in duofit.tuning.space)"
            elif err.get("type") == "union_tag_invalid":
                msg = f"unknown type {err.get('ctx', {}).get('tag')!r}; allowed: 'float', 'int', 'categorical'"
            elif err.get("type") == "union_tag_not_found":
                msg = "missing key 'type'; allowed: 'float', 'int', 'categorical'"
            lines.append(f"  {_error_path(tuple(err.get('loc', ())))}: {msg}")
        raise SpecError(f"invalid search space {label}:\n" + "\n".join(lines), path="params") from None
    for i, p in enumerate(space.params):
        try:
            parse_path(p.field)
        except SpecError as exc:
            where = f"params[{i}].field"
            raise SpecError(f"invalid search space {label}: {where}: {exc}", path=where) from None
    if spec is not None:
        space.check(spec, f"search space {label}")
    return space
