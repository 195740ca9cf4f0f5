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

__all__ = ["MAX_TARGETS", "DataSpec"]

# Target columns of one CSV (multi-output regression): far beyond any model duofit trains; a
# longer list is a mistake (e.g. every column pasted in), not a plan.
MAX_TARGETS = 1000


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
    def _csv_fields(self) -> DataSpec:
        if self.kind == "csv":
            if not self.path:
                raise FieldProblem("path", "kind = 'csv' needs `path` (the CSV file), e.g. path = 'data.csv'")
            if not self.target:
                raise FieldProblem("target", "kind = 'csv' needs `target` (the target column name)")
            if self.params:
                raise FieldProblem("params", "kind = 'csv' takes no `params`; use path/target/features")
        else:
            for name in ("path", "target", "features"):
                if getattr(self, name) is not None:
                    raise FieldProblem(name, f"`{name}` is only allowed with kind = 'csv' (kind is {self.kind!r})")
            if self.task != "auto":
                raise FieldProblem("task", "`task` is only needed with kind = 'csv'; other kinds know their task")
        return self

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
