"""The backend-neutral experiment spec: validated, frozen pydantic models.

All defaults live here, never in a backend. Every value means the same math on
every backend; where a framework's own default or formula differs, the backend
translates (see each backend's ``layers.py`` / ``losses.py`` / ``optimizers.py``).

Example:
    >>> from duofit.common.spec import Spec
    >>> spec = Spec.model_validate({
    ...     "data": {"kind": "iris"},
    ...     "model": {"layers": [{"type": "dense", "units": 3}]},
    ...     "loss": {"type": "categorical_crossentropy", "from_logits": True},
    ...     "metrics": ["accuracy"],
    ... })
    >>> spec.optimizer.type, spec.train.epochs
    ('adam', 10)
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

__all__ = [
    "ACTIVATIONS",
    "CLASSIFICATION_METRICS",
    "DATA_KINDS",
    "INITIALIZERS",
    "LOSS_TASKS",
    "METRIC_NAMES",
    "REGRESSION_METRICS",
    "ActivationLayer",
    "AdamOptimizer",
    "AdamWOptimizer",
    "BatchNormLayer",
    "BCELoss",
    "CCELoss",
    "DataSpec",
    "DenseLayer",
    "DropoutLayer",
    "Conv2DLayer",
    "MaxPool2DLayer",
    "AvgPool2DLayer",
    "GlobalAvgPool2DLayer",
    "EarlyStoppingSpec",
    "FieldProblem",
    "FlattenLayer",
    "HuberLoss",
    "InitSpec",
    "LayerSpec",
    "LossSpec",
    "MAELoss",
    "MSELoss",
    "MetricItem",
    "MetricSpec",
    "ModelSpec",
    "OptimizerSpec",
    "RMSpropOptimizer",
    "SGDOptimizer",
    "ScheduleSpec",
    "Spec",
    "StepSchedule",
    "ExponentialSchedule",
    "CosineSchedule",
    "PlateauSchedule",
    "TrainSpec",
]

# Hard caps so that a shared spec cannot ask for absurd resources (clear error, no blow-up).
MAX_UNITS = 1_000_000
MAX_EPOCHS = 1_000_000
MAX_SAMPLES = 10_000_000

ACTIVATIONS = ("relu", "sigmoid", "tanh", "softmax", "gelu", "leaky_relu", "linear")
INITIALIZERS = (
    "glorot_uniform",  # Keras default: U(-l, l), l = sqrt(6 / (fan_in + fan_out))
    "glorot_normal",  # Keras: truncated normal, std = sqrt(2 / (fan_in + fan_out)) / .8796
    "xavier_uniform",  # torch name of glorot_uniform (identical math)
    "xavier_normal",  # torch: plain normal, std = sqrt(2 / (fan_in + fan_out))
    "he_uniform",  # U(-l, l), l = sqrt(6 / fan_in)
    "he_normal",  # Keras: truncated normal, std = sqrt(2 / fan_in) / .8796
    "kaiming_uniform",  # torch name of he_uniform (identical math)
    "kaiming_normal",  # torch: plain normal, std = sqrt(2 / fan_in)
    "lecun_uniform",  # U(-l, l), l = sqrt(3 / fan_in)
    "lecun_normal",  # truncated normal, std = sqrt(1 / fan_in) / .8796
    "torch_linear",  # torch nn.Linear default: kernel U(+-1/sqrt(fan_in)); same for bias
    "zeros",
    "ones",
    "constant",
)
CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
REGRESSION_METRICS = ("mse", "rmse", "mae", "r2")
METRIC_NAMES = (*CLASSIFICATION_METRICS, *REGRESSION_METRICS)
DATA_KINDS = (
    "make_classification",
    "make_regression",
    "make_moons",
    "make_blobs",
    "iris",
    "breast_cancer",
    "digits",
    "wine",
    "diabetes",
    "csv",
)
# Which task each loss trains for: "classification" losses need class labels.
LOSS_TASKS = {
    "mse": "regression",
    "mae": "regression",
    "huber": "regression",
    "binary_crossentropy": "binary",
    "categorical_crossentropy": "multiclass",
}

ActivationName = Literal["relu", "sigmoid", "tanh", "softmax", "gelu", "leaky_relu", "linear"]
InitName = Literal[
    "glorot_uniform",
    "glorot_normal",
    "xavier_uniform",
    "xavier_normal",
    "he_uniform",
    "he_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "lecun_uniform",
    "lecun_normal",
    "torch_linear",
    "zeros",
    "ones",
    "constant",
]
MetricName = Literal["accuracy", "precision", "recall", "f1", "roc_auc", "mse", "rmse", "mae", "r2"]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Fraction = Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]


class FieldProblem(ValueError):
    """A cross-field validation failure that knows which field is wrong.

    ``path`` is relative to the model whose validator raised it (e.g. ``"metrics[0]"``
    for the top-level Spec); the loader prefixes the model's own location.
    """

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


def _check_monitor(value: str) -> str:
    base = value[4:] if value.startswith("val_") else value
    # a metric column: the name, optionally with option suffixes (``val_f1_weighted``, ``val_recall_t0.3``)
    known = base == "loss" or any(base == m or base.startswith(f"{m}_") for m in METRIC_NAMES)
    if not known or (value != "loss" and not value.startswith("val_")):
        raise ValueError(
            f"monitor {value!r} is not a history column; use 'loss', 'val_loss' or "
            "'val_<column>' with the column of a metric listed in `metrics` (e.g. 'val_accuracy', 'val_f1_weighted')"
        )
    return value


class _Base(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


# --------------------------------------------------------------------------- data
class DataSpec(_Base):
    """Where the data comes from and how it is split and scaled.

    ``params`` are passed to the sklearn generator (``make_*`` kinds) and checked
    against its signature. The scaler is fitted on the training part only.
    """

    kind: Literal[
        "make_classification",
        "make_regression",
        "make_moons",
        "make_blobs",
        "iris",
        "breast_cancer",
        "digits",
        "wine",
        "diabetes",
        "csv",
    ]
    params: dict[str, Union[bool, int, float, str, list[float], list[int], None]] = Field(default_factory=dict)
    path: str | None = Field(default=None, description="CSV file (kind = 'csv' only).")
    target: str | None = Field(default=None, description="Target column (kind = 'csv').")
    features: list[str] | None = Field(
        default=None, description="Feature columns (kind = 'csv'); default: all but target."
    )
    task: Literal["auto", "binary", "multiclass", "regression"] = Field(
        default="auto",
        description="For CSV data: 'auto' infers it from the loss and the target column.",
    )
    test_size: Fraction = 0.2
    val_size: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)] = Field(
        default=0.0,
        description=(
            "Fraction of the training part held out for per-epoch validation. 0 (default, "
            "as in the seed chapter) evaluates each epoch on the test split."
        ),
    )
    split_seed: int = 0
    stratify: bool = False
    standardize: bool = True
    image_shape: Annotated[list[Annotated[int, Field(gt=0, le=4096)]], Field(min_length=3, max_length=3)] | None = (
        Field(
            default=None,
            description="Reshape each sample's features to [height, width, channels] (channels last) for conv layers.",
        )
    )

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


# --------------------------------------------------------------------------- layers
class InitSpec(_Base):
    """A weight initializer; a plain string such as ``"he_uniform"`` is accepted too."""

    name: InitName
    value: FiniteFloat = Field(default=0.0, description="Fill value for name = 'constant'.")


def _coerce_init(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


class DenseLayer(_Base):
    """Fully connected layer. ``l1``/``l2`` penalise the kernel (added to the training loss)."""

    type: Literal["dense"]
    units: Annotated[int, Field(gt=0, le=MAX_UNITS)]
    activation: ActivationName | None = None
    use_bias: bool = True
    kernel_init: InitSpec = InitSpec(name="glorot_uniform")
    bias_init: InitSpec = InitSpec(name="zeros")
    l1: NonNegFloat = 0.0
    l2: NonNegFloat = 0.0

    @field_validator("kernel_init", "bias_init", mode="before")
    @classmethod
    def _init_from_string(cls, value: Any) -> Any:
        return _coerce_init(value)


class ActivationLayer(_Base):
    """A standalone activation; ``negative_slope`` is used by leaky_relu only."""

    type: Literal["activation"]
    activation: ActivationName
    # One default for both frameworks: torch uses 0.01, Keras 0.2; duofit follows torch.
    negative_slope: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)] = 0.01


class DropoutLayer(_Base):
    """Inverted dropout during training; identity at evaluation."""

    type: Literal["dropout"]
    rate: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)]


class BatchNormLayer(_Base):
    """Batch normalisation over the feature axis.

    ``momentum`` follows the torch convention: running = (1 - momentum) * running +
    momentum * batch_stat. The Keras backend passes ``1 - momentum``.
    """

    type: Literal["batch_norm"]
    momentum: Fraction = 0.1
    epsilon: PositiveFloat = 1e-5


class FlattenLayer(_Base):
    """Flattens all but the batch axis, in channels-last order (height, width, channel).

    torch models see NCHW tensors; the torch backend flattens them channels-last too, so the
    next dense kernel has the same row order on every backend.
    """

    type: Literal["flatten"]


Pair = Annotated[list[Annotated[int, Field(gt=0, le=4096)]], Field(min_length=2, max_length=2)]


def _pair(value: Any) -> Any:
    return [value, value] if isinstance(value, int) and not isinstance(value, bool) else value


class Conv2DLayer(_Base):
    """2-D convolution on channels-last images (``[height, width, channels]``).

    ``padding = "same"`` is TensorFlow's rule: output size ceil(in / stride), with the odd
    pixel of padding at the bottom/right; the torch backend pads explicitly to match.
    """

    type: Literal["conv2d"]
    filters: Annotated[int, Field(gt=0, le=65536)]
    kernel_size: Pair
    strides: Pair = [1, 1]
    padding: Literal["valid", "same"] = "valid"
    dilation: Pair = [1, 1]
    activation: ActivationName | None = None
    use_bias: bool = True
    kernel_init: InitSpec = InitSpec(name="glorot_uniform")
    bias_init: InitSpec = InitSpec(name="zeros")
    l1: NonNegFloat = 0.0
    l2: NonNegFloat = 0.0

    @field_validator("kernel_size", "strides", "dilation", mode="before")
    @classmethod
    def _int_or_pair(cls, value: Any) -> Any:
        return _pair(value)

    @field_validator("kernel_init", "bias_init", mode="before")
    @classmethod
    def _init_from_string(cls, value: Any) -> Any:
        return _coerce_init(value)

    @model_validator(mode="after")
    def _no_strided_dilation(self) -> Conv2DLayer:
        if max(self.strides) > 1 and max(self.dilation) > 1:
            raise FieldProblem("dilation", "strides > 1 and dilation > 1 together are not supported (Keras refuses it)")
        return self


class MaxPool2DLayer(_Base):
    """Max pooling (``strides`` default to ``pool_size``).

    ``padding = "same"`` is TensorFlow's rule, as for ``conv2d``: output size ceil(in / stride),
    the odd padded cell at the bottom/right. Padded cells never win a max, and an average is
    over the window's real cells only (TensorFlow's and Keras' convention).
    """

    type: Literal["max_pool2d"]
    pool_size: Pair = [2, 2]
    strides: Pair | None = None
    padding: Literal["valid", "same"] = "valid"

    @field_validator("pool_size", "strides", mode="before")
    @classmethod
    def _int_or_pair(cls, value: Any) -> Any:
        return _pair(value)


class AvgPool2DLayer(MaxPool2DLayer):
    """Average pooling (``strides`` default to ``pool_size``; ``padding`` as for max pooling)."""

    type: Literal["avg_pool2d"]  # type: ignore[assignment]


class GlobalAvgPool2DLayer(_Base):
    """Mean over height and width: ``[h, w, c] -> [c]``."""

    type: Literal["global_avg_pool2d"]


LayerSpec = Annotated[
    Union[
        DenseLayer,
        ActivationLayer,
        DropoutLayer,
        BatchNormLayer,
        FlattenLayer,
        Conv2DLayer,
        MaxPool2DLayer,
        AvgPool2DLayer,
        GlobalAvgPool2DLayer,
    ],
    Field(discriminator="type"),
]


class ModelSpec(_Base):
    """An ordered stack of layers; the input size comes from the data."""

    layers: Annotated[list[LayerSpec], Field(min_length=1, max_length=1000)]

    @model_validator(mode="after")
    def _has_dense(self) -> ModelSpec:
        if not any(isinstance(layer, DenseLayer) for layer in self.layers):
            raise FieldProblem("layers", "the model needs at least one layer of type 'dense'")
        return self


# --------------------------------------------------------------------------- losses
class MSELoss(_Base):
    """Mean squared error, mean over all outputs and samples."""

    type: Literal["mse"]


class MAELoss(_Base):
    """Mean absolute error."""

    type: Literal["mae"]


class HuberLoss(_Base):
    """Huber loss: 0.5 x^2 for |x| <= delta, else delta (|x| - 0.5 delta)."""

    type: Literal["huber"]
    delta: PositiveFloat = 1.0


class BCELoss(_Base):
    """Binary cross-entropy on one output unit.

    With ``from_logits = false`` the model must output probabilities; they are
    clipped to [1e-7, 1 - 1e-7] on every backend (Keras' formula).
    """

    type: Literal["binary_crossentropy"]
    from_logits: bool = False


class CCELoss(_Base):
    """Categorical cross-entropy over ``n_classes`` output units.

    ``labels = "integer"`` trains on class indices (Keras' sparse variant, torch's
    default); ``"one_hot"`` converts the labels to one-hot vectors first.
    """

    type: Literal["categorical_crossentropy"]
    from_logits: bool = False
    labels: Literal["integer", "one_hot"] = "integer"


LossSpec = Annotated[Union[MSELoss, MAELoss, HuberLoss, BCELoss, CCELoss], Field(discriminator="type")]


# --------------------------------------------------------------------------- schedules
class StepSchedule(_Base):
    """lr = lr0 * gamma ** (epoch // step_size) (torch StepLR, stepped once per epoch)."""

    type: Literal["step"]
    step_size: Annotated[int, Field(gt=0, le=MAX_EPOCHS)]
    gamma: Fraction = 0.1


class ExponentialSchedule(_Base):
    """lr = lr0 * gamma ** epoch (torch ExponentialLR)."""

    type: Literal["exponential"]
    gamma: Fraction


class CosineSchedule(_Base):
    """lr = eta_min + (lr0 - eta_min) * (1 + cos(pi * min(epoch, t_max) / t_max)) / 2.

    torch's CosineAnnealingLR closed form up to ``t_max``; duofit then holds ``eta_min``
    (torch would climb back up: a restart is rarely what a user wants by default).
    """

    type: Literal["cosine"]
    t_max: Annotated[int, Field(gt=0, le=MAX_EPOCHS)]
    eta_min: NonNegFloat = 0.0


class PlateauSchedule(_Base):
    """Reduce lr by ``factor`` after ``patience`` epochs without improvement of ``monitor``.

    Improvement means better by more than ``min_delta``; after a reduction wait ``cooldown``
    epochs; never below ``min_lr``. One implementation for both backends (torch's and
    Keras' ReduceLROnPlateau differ in their threshold rules).
    """

    type: Literal["plateau"]
    monitor: str = "val_loss"
    mode: Literal["auto", "min", "max"] = "auto"
    factor: Fraction = 0.1
    patience: Annotated[int, Field(ge=0, le=MAX_EPOCHS)] = 10
    min_delta: NonNegFloat = 0.0
    cooldown: Annotated[int, Field(ge=0, le=MAX_EPOCHS)] = 0
    min_lr: NonNegFloat = 0.0

    @field_validator("monitor")
    @classmethod
    def _monitor_name(cls, value: str) -> str:
        return _check_monitor(value)


ScheduleSpec = Annotated[
    Union[StepSchedule, ExponentialSchedule, CosineSchedule, PlateauSchedule], Field(discriminator="type")
]


# --------------------------------------------------------------------------- optimizers
class _OptimizerBase(_Base):
    lr: Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)] = 0.001
    weight_decay: NonNegFloat = 0.0
    decay_kind: Literal["l2", "decoupled"] = Field(
        default="l2",
        description=(
            "'l2': g <- g + weight_decay * w before the update (torch `weight_decay`); "
            "'decoupled': w <- w - lr * weight_decay * w (AdamW, Keras `weight_decay`)."
        ),
    )
    clipnorm: PositiveFloat | None = Field(
        default=None, description="Clip the global gradient norm (torch clip_grad_norm_)."
    )
    clipvalue: PositiveFloat | None = Field(default=None, description="Clip each gradient element.")
    schedule: ScheduleSpec | None = Field(default=None, description="Learning-rate schedule, applied per epoch.")

    @model_validator(mode="after")
    def _one_clip(self) -> _OptimizerBase:
        if self.clipnorm is not None and self.clipvalue is not None:
            raise FieldProblem("clipvalue", "set clipnorm or clipvalue, not both (Keras accepts only one)")
        return self


class SGDOptimizer(_OptimizerBase):
    """SGD with optional (Nesterov) momentum.

    torch (v = m v + g; w -= lr v) and Keras (v = m v - lr g; w += v) agree exactly
    while the learning rate is constant.
    """

    type: Literal["sgd"]
    lr: Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)] = 0.01
    momentum: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)] = 0.0
    nesterov: bool = False

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> SGDOptimizer:
        if self.nesterov and self.momentum == 0:
            raise FieldProblem("nesterov", "nesterov = true needs momentum > 0 (e.g. momentum = 0.9)")
        return self


class AdamOptimizer(_OptimizerBase):
    """Adam (Kingma & Ba). ``epsilon`` is added to sqrt(v_hat) as in the paper/torch."""

    type: Literal["adam"]
    beta1: Fraction = 0.9
    beta2: Fraction = 0.999
    epsilon: PositiveFloat = 1e-8
    amsgrad: bool = False


class AdamWOptimizer(_OptimizerBase):
    """Adam with decoupled weight decay (Loshchilov & Hutter)."""

    type: Literal["adamw"]
    beta1: Fraction = 0.9
    beta2: Fraction = 0.999
    epsilon: PositiveFloat = 1e-8
    amsgrad: bool = False
    weight_decay: NonNegFloat = 0.01
    decay_kind: Literal["decoupled"] = Field(
        default="decoupled",
        description="AdamW is decoupled by definition; use type = 'adam' for coupled L2.",
    )


class RMSpropOptimizer(_OptimizerBase):
    """RMSprop. ``rho`` is the moving-average factor (torch calls it ``alpha``)."""

    type: Literal["rmsprop"]
    rho: Fraction = 0.9
    momentum: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)] = 0.0
    centered: bool = False
    epsilon: PositiveFloat = 1e-7


OptimizerSpec = Annotated[
    Union[SGDOptimizer, AdamOptimizer, AdamWOptimizer, RMSpropOptimizer],
    Field(discriminator="type"),
]


# --------------------------------------------------------------------------- metrics
class MetricSpec(_Base):
    """A metric with options, e.g. ``{name = "f1", average = "weighted"}``; a plain name is accepted too.

    Which options fit which metric and task is checked by the Spec (see
    :mod:`duofit.common.metric_options`, which also names the result column).
    """

    name: MetricName
    threshold: Fraction | None = Field(
        default=None,
        description="Binary accuracy/precision/recall/f1: class 1 when probability > threshold (default 0.5).",
    )
    average: Literal["binary", "macro", "micro", "weighted"] | None = Field(
        default=None,
        description="Multiclass precision/recall/f1: sklearn's average, 'macro' (default), 'micro' or 'weighted'.",
    )


def _metric_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "name"
    return "table" if isinstance(value, (dict, MetricSpec)) else None


MetricItem = Annotated[
    Union[Annotated[MetricName, Tag("name")], Annotated[MetricSpec, Tag("table")]],
    Discriminator(
        _metric_kind,
        custom_error_type="metric_entry",
        custom_error_message="a metric is a name ('f1') or a table ({name = 'f1', average = 'weighted'})",
    ),
]


# --------------------------------------------------------------------------- training
class EarlyStoppingSpec(_Base):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs."""

    monitor: str = "val_loss"
    mode: Literal["auto", "min", "max"] = "auto"
    patience: Annotated[int, Field(ge=0, le=MAX_EPOCHS)] = 5
    min_delta: NonNegFloat = 0.0
    restore_best: bool = True

    @field_validator("monitor")
    @classmethod
    def _monitor_name(cls, value: str) -> str:
        return _check_monitor(value)


class TrainSpec(_Base):
    """How to train: epochs, batches, seed, numeric type and device."""

    epochs: Annotated[int, Field(gt=0, le=MAX_EPOCHS)] = 10
    batch_size: Annotated[int, Field(gt=0, le=MAX_SAMPLES)] = 32
    shuffle: bool = True
    seed: int = 0
    dtype: Literal["float32", "float64"] = "float32"
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    threads: Annotated[int, Field(gt=0, le=1024)] | None = Field(
        default=None, description="Intra-op threads for every framework (default: framework's)."
    )
    history_metrics: bool = Field(
        default=True,
        description="Compute `metrics` on the validation split after every epoch (where: `epoch_metrics`).",
    )
    epoch_metrics: Literal["shared", "native"] = Field(
        default="shared",
        description="Where the per-epoch validation metrics are computed (with history_metrics = true and "
        "`metrics` listed): 'shared' = duofit's numpy code on each backend's validation outputs, identical "
        "on every backend; 'native' = the framework's own metric objects: keras.metrics on the Keras "
        "backends (updated in the epoch-end callback), duofit's torch-tensor metrics on the torch backend "
        "(accumulated on the device, read back with the epoch's losses in one transfer).",
    )
    early_stopping: EarlyStoppingSpec | None = None


# --------------------------------------------------------------------------- the spec
class Spec(_Base):
    """A whole experiment. Load one with :func:`duofit.load_spec`."""

    name: str | None = Field(default=None, max_length=200)
    metrics: Annotated[list[MetricItem], Field(max_length=20)] = Field(
        default_factory=list,
        description="Metric names, or tables with options: {name = 'f1', average = 'weighted'}, "
        "{name = 'precision', threshold = 0.3}.",
    )
    data: DataSpec
    model: ModelSpec
    loss: LossSpec
    optimizer: OptimizerSpec = AdamOptimizer(type="adam")
    train: TrainSpec = TrainSpec()

    @property
    def task(self) -> str:
        """The task the loss trains for: ``binary``, ``multiclass`` or ``regression``."""
        return LOSS_TASKS[self.loss.type]

    @model_validator(mode="after")
    def _cross_checks(self) -> Spec:
        task = self.task
        from duofit.common.metric_options import resolve_metrics

        columns = [e.column for e in resolve_metrics(self.metrics, task, loss=self.loss.type)]
        regression_data = self.data.kind in ("make_regression", "diabetes") or self.data.task == "regression"
        if regression_data and task != "regression":
            raise FieldProblem(
                "loss.type",
                f"loss {self.loss.type!r} needs class labels, but data kind {self.data.kind!r} "
                "has a continuous target; use loss type 'mse', 'mae' or 'huber'",
            )
        if self.data.task not in ("auto", "regression") and task != self.data.task:
            raise FieldProblem(
                "data.task", f"data.task = {self.data.task!r} but loss {self.loss.type!r} trains a {task} task"
            )
        from duofit.common.shapes import infer_shapes

        image = tuple(self.data.image_shape) if self.data.image_shape else None
        infer_shapes(self.model.layers, image)  # raises FieldProblem naming the layer
        sched = self.optimizer.schedule
        if isinstance(sched, PlateauSchedule) and sched.monitor not in ("loss", "val_loss"):
            if sched.monitor[4:] not in columns or not self.train.history_metrics:
                raise FieldProblem(
                    "optimizer.schedule.monitor",
                    f"{sched.monitor!r} needs {sched.monitor[4:]!r} in `metrics` and train.history_metrics = true"
                    f" (metric columns: {', '.join(columns) or 'none'})",
                )
        es = self.train.early_stopping
        if es is not None and es.monitor not in ("loss", "val_loss"):
            if es.monitor[4:] not in columns:
                raise FieldProblem(
                    "train.early_stopping.monitor",
                    f"{es.monitor!r} needs {es.monitor[4:]!r} in `metrics`"
                    f" (metric columns: {', '.join(columns) or 'none'})",
                )
            if not self.train.history_metrics:
                raise FieldProblem("train.history_metrics", "early stopping on a metric needs history_metrics = true")
        last_idx = max(i for i, layer in enumerate(self.model.layers) if isinstance(layer, DenseLayer))
        last_dense = self.model.layers[last_idx]
        assert isinstance(last_dense, DenseLayer)
        if task == "binary" and last_dense.units != 1:
            raise FieldProblem(
                f"model.layers[{last_idx}].units",
                f"binary_crossentropy needs one output unit; the last dense layer has "
                f"units = {last_dense.units}. Use units = 1, or categorical_crossentropy",
            )
        return self

    @property
    def metric_entries(self) -> list[Any]:
        """The metrics with every option resolved (:class:`~duofit.common.metric_options.MetricEntry`).

        Example:
            >>> [e.column for e in spec.metric_entries]    # doctest: +SKIP
            ['accuracy', 'f1_weighted']
        """
        from duofit.common.metric_options import resolve_metrics

        return resolve_metrics(self.metrics, self.task)

    @property
    def metric_columns(self) -> list[str]:
        """Result and history column of each metric (``val_`` prefixed in the history).

        Example:
            >>> spec.metric_columns                        # doctest: +SKIP
            ['accuracy', 'precision_t0.3']
        """
        return [e.column for e in self.metric_entries]

    def monitor_mode(self, settings: EarlyStoppingSpec | PlateauSchedule | None = None) -> str:
        """Resolved mode of a monitor (``min`` for losses/errors, ``max`` for scores).

        Args:
            settings: Early stopping or plateau settings; default: ``train.early_stopping``.
        """
        es = settings if settings is not None else self.train.early_stopping
        if es is None:
            return "min"
        if es.mode != "auto":
            return es.mode
        base = es.monitor.removeprefix("val_")
        return "min" if base in ("loss", "mse", "rmse", "mae") else "max"
