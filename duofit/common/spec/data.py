"""The ``data`` section: where the data comes from and how it is split and scaled.

Example:
    >>> DataSpec(kind="iris").test_size
    0.2
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, field_validator, model_validator

from duofit.common.spec.base import MAX_SAMPLES, FieldProblem, Fraction, SpecModel, UnitFloat
from duofit.common.spec.vocab import DataKind

__all__ = ["KIND_FIELDS", "MAX_TARGETS", "MIN_VOCAB", "SERIES_KINDS", "DataSpec", "SeriesSpec", "TextSpec"]

# Target columns of one CSV (multi-output regression): far beyond any model duofit trains; a
# longer list is a mistake (e.g. every column pasted in), not a plan.
MAX_TARGETS = 1000
# Longest window or token sequence: a thousand times the examples' lengths, and the caps on
# data cells (duofit.common.data.MAX_DATA_ELEMENTS) stop any real excess.
MAX_STEPS = 100_000
Steps = Annotated[int, Field(gt=0, le=MAX_STEPS)]
# Smallest text vocabulary: padding, out-of-vocabulary and one word.
MIN_VOCAB = 3

# The kinds whose samples are windows of one series, split in time order (never shuffled
# across the split: the test part is the latest windows, validation the ones before it).
SERIES_KINDS: tuple[DataKind, ...] = ("csv_series", "sunspots", "co2")
_OPTIONAL = ("path", "target", "features", "task", "params", "series", "text", "x", "y")
# kind -> (fields it needs, fields it accepts) among _OPTIONAL; every other kind accepts
# `params` alone (the scikit-learn generators check them against their signature).
KIND_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "csv": (("path", "target"), ("path", "target", "features", "task")),
    "npz": (("path",), ("path", "task")),
    "csv_series": (("path", "target", "series"), ("path", "target", "features", "series")),
    "sunspots": (("series",), ("series",)),
    "co2": (("series",), ("series",)),
    "csv_text": (("path", "target", "text"), ("path", "target", "task", "text")),
    "npy": (("x", "y"), ("x", "y", "task")),
    "parquet": (("path", "target"), ("path", "target", "features", "task")),
}
_NEEDED_HINT = {
    "path": "`path` (the file), e.g. path = 'data.csv'",
    "target": "`target` (the target column name)",
    "series": "a [data.series] table with the window length, e.g. series = { window = 24 }",
    "text": "a [data.text] table naming the text column, e.g. text = { column = 'review' }",
    "x": "`x` (the features' .npy file), e.g. x = 'features.npy'",
    "y": "`y` (the targets' .npy file), e.g. y = 'targets.npy'",
}


class SeriesSpec(SpecModel):
    """Windows over a series (kinds ``csv_series``, ``sunspots``, ``co2``).

    Each sample is ``window`` consecutive steps, its target the value ``horizon`` steps after
    the window's last one; windows start every ``stride`` steps.

    Example:
        >>> SeriesSpec(window=12).horizon
        1
    """

    window: Steps = Field(description="Steps per sample (the input length).")
    horizon: Steps = Field(default=1, description="The target is the value this many steps after the window.")
    stride: Steps = Field(default=1, description="Steps between the starts of consecutive windows.")


class TextSpec(SpecModel):
    """A text column as token ids (kind ``csv_text``).

    Words come from scikit-learn's ``CountVectorizer`` analyzer (lowercased words of two or
    more characters); the vocabulary is built on the training part only.

    Id 0 pads, id 1 stands for a word outside the vocabulary (out-of-vocabulary), ids 2 and up are
    the training part's words, most frequent first (ties alphabetical); every id is below
    ``max_vocab``, so an embedding with ``input_dim = max_vocab`` fits any data.

    Example:
        >>> TextSpec(column="review").max_len
        64
    """

    column: str = Field(min_length=1, description="The CSV column holding the texts.")
    max_len: Steps = Field(default=64, description="Tokens per sample: longer texts are cut, shorter ones padded.")
    max_vocab: Annotated[int, Field(ge=MIN_VOCAB, le=10_000_000)] = Field(
        default=20_000, description="Ids are below this: 0 padding, 1 out-of-vocabulary, then the words."
    )
    padding: Literal["post", "pre"] = Field(
        default="post", description="Pad (and cut) at the end ('post') or the start ('pre') of each text."
    )


class DataSpec(SpecModel):
    """Where the data comes from and how it is split and scaled.

    ``params`` are passed to the sklearn generator (``make_*`` kinds) and checked
    against its signature. The scalers (features: ``standardize``; regression targets:
    ``standardize_target``) are fitted on the training part only.
    """

    kind: DataKind
    params: dict[str, Union[bool, int, float, str, list[float], list[int], None]] = Field(default_factory=dict)
    path: str | None = Field(default=None, description="CSV file (kind = 'csv' only).")
    target: str | list[str] | None = Field(
        default=None,
        description="Target column (kind = 'csv'), or a list of columns for multi-output regression "
        "(one output unit per column).",
    )
    features: list[str] | None = Field(
        default=None, description="Feature columns (kind = 'csv'); default: all but the target column(s)."
    )
    task: Literal["auto", "binary", "multiclass", "regression"] = Field(
        default="auto",
        description="For CSV data: 'auto' infers it from the loss and the target column.",
    )
    test_size: Fraction = 0.2
    val_size: UnitFloat = Field(
        default=0.0,
        description=(
            "Fraction of the training part held out for per-epoch validation. 0 (default, "
            "as in the tutorial's training loop) evaluates each epoch on the test split."
        ),
    )
    split_seed: int = 0
    stratify: bool = False
    standardize: bool = True
    standardize_target: bool = Field(
        default=False,
        description=(
            "Regression only: train on standardized targets (a StandardScaler fitted on the training "
            "part's targets); test metrics and predictions are reported in the original units, the "
            "history (losses, per-epoch errors) in the scaled ones."
        ),
    )
    image_shape: Annotated[list[Annotated[int, Field(gt=0, le=4096)]], Field(min_length=3, max_length=3)] | None = (
        Field(
            default=None,
            description="Reshape each sample's features to [height, width, channels] (channels last) for conv layers.",
        )
    )
    sequence_shape: (
        Annotated[list[Annotated[int, Field(gt=0, le=MAX_STEPS)]], Field(min_length=2, max_length=2)] | None
    ) = Field(
        default=None,
        description="Reshape each sample's features to [steps, features], e.g. digits as 8 rows of 8 pixels.",
    )
    series: SeriesSpec | None = Field(default=None, description="Windows (kinds csv_series, sunspots, co2).")
    text: TextSpec | None = Field(default=None, description="The text column and its tokens (kind csv_text).")
    x: str | None = Field(
        default=None, description="Features' .npy file, (samples, ...) floats, memory-mapped (kind = 'npy')."
    )
    y: str | None = Field(default=None, description="Targets' .npy file, one row per sample (kind = 'npy').")

    @field_validator("target", mode="before")
    @classmethod
    def _target_names(cls, value: object) -> object:
        """One column name, or a non-empty list of distinct names (one error, not one per union member)."""
        if value is None or isinstance(value, str):
            return value
        if not (isinstance(value, list) and 0 < len(value) <= MAX_TARGETS and all(isinstance(v, str) for v in value)):
            raise ValueError(
                f"must be a column name or a list of 1 to {MAX_TARGETS} column names, e.g. target = 'price' "
                "or target = ['price', 'rent']" + (f" (got {value!r:.80})" if isinstance(value, list) else "")
            )
        twice = sorted({v for v in value if value.count(v) > 1})
        if twice:
            raise ValueError(f"lists {', '.join(map(repr, twice))} more than once")
        return value

    @model_validator(mode="after")
    def _kind_fields(self) -> DataSpec:
        needed, allowed = KIND_FIELDS.get(self.kind, ((), ("params",)))
        for name in needed:
            if not self._is_set(name):
                raise FieldProblem(name, f"kind = {self.kind!r} needs {_NEEDED_HINT[name]}")
        for name in _OPTIONAL:
            if self._is_set(name) and name not in allowed:
                takers = [k for k, (_, ok) in KIND_FIELDS.items() if name in ok]
                if name == "task":
                    raise FieldProblem(
                        "task", f"`task` is only needed with kind {_listed(takers)}; other kinds know their task"
                    )
                raise FieldProblem(
                    name,
                    f"`{name}` is only allowed with kind {_listed(takers)} (kind is {self.kind!r})"
                    if takers
                    else f"kind = {self.kind!r} takes no `{name}`",
                )
        if self.image_shape and self.sequence_shape:
            raise FieldProblem("sequence_shape", "set image_shape or sequence_shape, not both")
        if self.kind == "csv_text" and (self.image_shape or self.sequence_shape):
            which = "image_shape" if self.image_shape else "sequence_shape"
            raise FieldProblem(which, f"kind = 'csv_text' makes token ids of shape [text.max_len]; remove `{which}`")
        return self

    def _is_set(self, name: str) -> bool:
        value = getattr(self, name)
        return bool(value) if name == "params" else (value != "auto" if name == "task" else value is not None)

    @property
    def sample_shape(self) -> tuple[int, ...] | None:
        """One sample's input shape when the spec alone tells it, else ``None`` (flat or file data).

        Images and sequences (``image_shape``, ``sequence_shape``), windows ``(window, columns)``
        and token ids ``(max_len,)``; the layers' shapes can be checked against it before any
        data is read.

        Example:
            >>> DataSpec(kind="sunspots", series={"window": 12}).sample_shape
            (12, 1)
            >>> DataSpec(kind="csv_text", path="t.csv", target="y", text={"column": "t"}).sample_shape
            (64,)
        """
        if self.image_shape or self.sequence_shape:
            return tuple(self.image_shape or self.sequence_shape or ())
        if self.series is not None:
            return (self.series.window, len(self.features) if self.features else 1)
        if self.text is not None:
            return (self.text.max_len,)
        return None

    @property
    def time_ordered(self) -> bool:
        """Whether the split keeps time order (windows of a series: :data:`SERIES_KINDS`).

        Example:
            >>> DataSpec(kind="sunspots", series={"window": 8}).time_ordered
            True
        """
        return self.kind in SERIES_KINDS

    @property
    def target_columns(self) -> list[str]:
        """The CSV target column(s) as a list (empty for other kinds).

        Example:
            >>> DataSpec(kind="csv", path="d.csv", target=["a", "b"]).target_columns
            ['a', 'b']
        """
        if self.target is None:
            return []
        return [self.target] if isinstance(self.target, str) else list(self.target)

    @model_validator(mode="after")
    def _sizes(self) -> DataSpec:
        for key in ("n_samples", "n_features"):
            value = self.params.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value > MAX_SAMPLES:
                raise FieldProblem(f"params.{key}", f"{value} exceeds the cap of {MAX_SAMPLES:,}")
        if self.test_size + self.val_size >= 1:
            raise FieldProblem(
                "val_size",
                f"test_size + val_size must be < 1 (got {self.test_size} + {self.val_size}); "
                "leave some data for training",
            )
        return self


def _listed(kinds: list[str]) -> str:
    """``'a'``, ``'a' or 'b'``, ``'a', 'b' or 'c'``."""
    quoted = [repr(k) for k in kinds]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
