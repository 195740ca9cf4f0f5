"""``duofit export --to keras``: a standalone Keras 3 script (compile + fit) and its data.

The script builds the spec's model as functional Keras code with every setting explicit
(:mod:`duofit.porting.keras_code`), loads the initial weights layer by layer (duofit's layout
is Keras' own: nothing is transposed), compiles with the spec's loss and optimizer and fits over
a ``tf.data`` pipeline that yields the bundle's batch order (batch ``b`` of epoch ``e`` is
``order[e, b*bs:(b+1)*bs]``; ``shuffle=False``). It mirrors ``duofit/backends/keras/trainer.py``:
floatx set to the spec's dtype, a callback that records every batch's loss (Keras' documented
``compute_loss`` hook, as ``duofit/backends/keras/recording.py``), the validation loss and metrics
after each epoch, learning-rate schedules, early stopping and divergence as duofit decides them,
and the test metrics in numpy (:mod:`duofit.porting.script_metrics`). So its per-step losses equal
``duofit run SPEC --backend keras`` (float64: to rounding).

With ``strict=True`` the script writes duofit's strict-mode formulas as code: torch's optimizer
update as an explicit step and float64-exact activations (``duofit/backends/keras/exact.py``),
as ``duofit run --strict`` computes on Keras.

Example:
    >>> from duofit.common.loader import load_spec
    >>> text = render(load_spec("examples/seed.toml"), "seed.npz")
    >>> "model.fit(" in text and 'keras.layers.Dense(10, activation="relu"' in text
    True
"""

from __future__ import annotations

import math
from pathlib import Path
from string import Template
from typing import Any

import numpy as np

from duofit.common.data import load_dataset
from duofit.common.errors import SpecError
from duofit.common.init import initial_weights
from duofit.common.io import atomic_write_text
from duofit.common.metrics import bind_positive, class_order
from duofit.common.spec import AdamOptimizer, AdamWOptimizer, RMSpropOptimizer, SGDOptimizer, Spec
from duofit.common.spec.masks import mask_flow
from duofit.common.spec.optimizer import CosineSchedule, ExponentialSchedule, StepSchedule
from duofit.porting.bundle import bundle_arrays, write_bundle
from duofit.porting.keras_code import layer_code
from duofit.porting.keras_model_code import build_function, weight_table
from duofit.porting.keras_skeleton import PIPELINE, PIPELINE_WEIGHTED, SCRIPT, TEST_METRICS, TEST_METRICS_SCALED
from duofit.porting.keras_template import (
    EARLY_STOP,
    EXACT_ACTIVATIONS,
    EXACT_OPTIMIZERS,
    HELPERS,
    RECORDING,
    TRAINING_LOG,
)
from duofit.porting.script_metrics import metric_entries_source, metrics_source

__all__ = ["render", "write"]


def write(spec: Spec, out: Path, *, strict: bool = False) -> list[Path]:
    """Write the Keras script ``out`` and its data ``out.with_suffix(".npz")``; return both paths.

    ``strict`` writes duofit's strict-mode formulas as code and trains in float64 (as ``duofit run
    --strict`` does: :func:`duofit.parity.strict.strict_spec`).

    The ``.npz`` holds :func:`duofit.porting.bundle.bundle_arrays` plus ``y_val`` (the validation
    labels the per-epoch metrics read) and, for a standardized regression target,
    ``target_mean``/``target_scale`` (the test metrics are reported in the target's own units,
    as ``duofit run`` does). Nothing is written when the spec has a feature the exporter cannot
    write (a :class:`~duofit.common.errors.SpecError` naming it).

    Raises:
        SpecError: a spec feature export --to keras does not support yet (the field is named).
    """
    out = Path(out)
    if strict:
        from duofit.parity.strict import strict_spec

        spec, _ = strict_spec(spec)  # strict mode is defined in float64, as duofit run --strict
    data_path = out.with_suffix(".npz")
    text = render(spec, data_path.name, strict=strict)  # every refusal before anything is written
    arrays = bundle_arrays(spec)
    arrays.update(_extra_arrays(spec))
    write_bundle(data_path, arrays)
    atomic_write_text(out, text)
    return [out, data_path]


def _extra_arrays(spec: Spec) -> dict[str, np.ndarray]:
    ds = load_dataset(spec)
    extra = {"y_val": np.asarray(ds.y_val)}
    scaler: Any = ds.target_scaler
    if scaler is not None:
        extra["target_mean"] = np.asarray(scaler.mean_, dtype=np.float64)
        extra["target_scale"] = np.asarray(scaler.scale_, dtype=np.float64)
    return extra


def _refuse(path: str, what: str, fix: str) -> SpecError:
    return SpecError(f"{path}: export --to keras does not support {what} yet; {fix}", path=path)


def _check_supported(spec: Spec, strict: bool) -> None:
    """Spec features the Keras script cannot write yet: a named error, never a silent drop."""
    opt, tr = spec.optimizer, spec.train
    if opt.schedule is not None and not isinstance(opt.schedule, (StepSchedule, ExponentialSchedule, CosineSchedule)):
        raise _refuse(
            "optimizer.schedule.type", f"the {opt.schedule.type!r} schedule", "use step, exponential or cosine"
        )
    if opt.decay_kind == "l2" and opt.weight_decay and not strict:
        raise _refuse(
            "optimizer.weight_decay",
            "coupled L2 weight decay (decay_kind = 'l2') without --strict",
            "export with --strict (an explicit update step adds it) or set decay_kind = 'decoupled'",
        )
    monitors = [m.monitor for m in (tr.early_stopping,) if m is not None]
    if tr.epoch_metrics == "native" and any(m not in ("loss", "val_loss") for m in monitors):
        raise _refuse(
            "train.epoch_metrics",
            "'native' metrics (keras.metrics) deciding early stopping",
            "use epoch_metrics = 'shared' (the script computes duofit's numpy metrics)",
        )


def render(spec: Spec, data_name: str, *, strict: bool = False) -> str:
    """The script's source text for ``spec``, reading its arrays from ``data_name`` beside it.

    Raises:
        SpecError: a spec feature the exporter cannot write yet (the field is named).
    """
    _check_supported(spec, strict)
    ds = load_dataset(spec)
    shape = tuple(int(n) for n in ds.x_train.shape[1:])
    tokens = ds.x_train.dtype.kind in "iu"
    codes = [layer_code(layer, i, strict) for i, layer in enumerate(spec.model.layers)]
    masked = mask_flow(spec.model.layers)
    model_code = build_function(spec, codes, masked, shape, "int64" if tokens else spec.train.dtype)
    body = model_code + weight_table(spec, codes, set(initial_weights(spec, ds.input_shape)))
    helpers = "".join(src for name, src in {**HELPERS, **EXACT_ACTIVATIONS}.items() if f"{name}(" in body)
    order = class_order(ds.task, ds.classes, ds.y_train)
    entries = bind_positive(spec.metric_entries, order)
    fields = {
        "DOC": _docstring(spec, data_name, strict),
        "CONSTANTS": _constants(spec, ds, entries),
        "HELPERS": helpers + (EXACT_OPTIMIZERS[_STRICT_KEY[type(spec.optimizer)]] if strict else ""),
        "METRICS_CODE": metrics_source(spec.task),
        "RECORDING": RECORDING,
        "MODEL": body,
        "OPTIMIZER": _optimizer_function(spec, strict),
        "LOSS": _loss_function(spec),
        "PIPELINE": PIPELINE_WEIGHTED if ds.w_train is not None else PIPELINE,
        "SCHEDULE_FN": _schedule_function(spec),
        "TRAINING_LOG": _training_log(spec),
        "TEST_METRICS": TEST_METRICS_SCALED if ds.target_scaler is not None else TEST_METRICS,
        "DEVICE": _DEVICES[spec.train.device],
        "THREADS": _threads(spec),
        "COMPILE_METRICS": _compile_metrics(spec, entries),
        "RESTORE": _restore(spec),
    }
    return Template(SCRIPT).substitute(fields)


_STRICT_KEY = {SGDOptimizer: "sgd", AdamOptimizer: "adam", AdamWOptimizer: "adam", RMSpropOptimizer: "rmsprop"}
_DEVICES = {
    "cpu": '"cpu"',
    "cuda": '"gpu"',
    "auto": '"gpu" if tf.config.list_physical_devices("GPU") else "cpu"',
}


def _docstring(spec: Spec, data_name: str, strict: bool) -> str:
    name = spec.name or "the spec"
    lines = [
        f'"""Train the model of "{name}" with Keras 3 on TensorFlow (compile + fit); exported by duofit.',
        "",
        f"Standalone: needs keras, tensorflow and numpy, and {data_name} beside this file (written by",
        "`duofit export`): the data as duofit prepared it (split, scaled), the order of the training",
        "samples in every epoch and the initial weights. It trains as `duofit run SPEC --backend keras`",
        f"does, in {spec.train.dtype}: the same loss at every step.",
    ]
    if strict:
        lines += [
            "",
            "Strict mode: this script uses duofit's strict formulas (`duofit run --strict`, `duofit parity",
            "--strict`): torch.optim's update written out as an explicit step and float64-exact activation",
            "constants, so that Keras computes the same math as duofit's strict runs on every framework",
            "(Keras' own Adam and RMSprop place epsilon differently and round hyperparameters to float32).",
        ]
    lines += ["", "Usage:", "    python this_script.py [--history history.json] [--quiet]", '"""']
    return "\n".join(lines)


def _constants(spec: Spec, ds: Any, entries: list[Any]) -> str:
    from duofit.common.diagnostics import divergence_limit

    tr = spec.train
    limit = divergence_limit(spec, ds.y_train, ds.n_classes)
    lines = [
        f'DTYPE = "{tr.dtype}"',
        f"SEED = {tr.seed}",
        f"EPOCHS = {tr.epochs}",
        f"BATCH_SIZE = {tr.batch_size}",
        f'TASK = "{spec.task}"',
        f"FROM_LOGITS = {bool(getattr(spec.loss, 'from_logits', False))}",
        "# the metrics as duofit resolved them for this data (positive: the class a binary metric scores)",
        f"METRICS = {metric_entries_source(entries)}",
        "# an epoch loss above this (or not finite) stops training as diverged: train.divergence_threshold",
        "# times the loss of a model that learned nothing",
        f"DIVERGENCE_LIMIT = {_float(limit)}",
    ]
    es = tr.early_stopping
    if es is not None:
        lines += [
            "# early stopping: stop after PATIENCE epochs without an improvement by more than MIN_DELTA",
            f'EARLY_STOPPING_MONITOR = "{es.monitor}"',
            f'EARLY_STOPPING_MODE = "{spec.monitor_mode()}"',
            f"PATIENCE = {es.patience}",
            f"MIN_DELTA = {_float(es.min_delta)}",
            f"RESTORE_BEST = {es.restore_best}",
        ]
    return "\n".join(lines)


def _float(value: float) -> str:
    return repr(float(value)) if math.isfinite(value) else 'float("inf")'


def _optimizer_kwargs(spec: Any, strict: bool) -> tuple[str, list[str]]:
    """The optimizer class and its keyword arguments, as duofit/backends/keras/optimizers.py passes them."""
    f = _float
    args = [f"learning_rate={f(spec.lr)}"]
    if isinstance(spec, SGDOptimizer):
        cls, own = "SGD", [f"momentum={f(spec.momentum)}", f"nesterov={spec.nesterov}"]
    elif isinstance(spec, (AdamOptimizer, AdamWOptimizer)):
        cls = "AdamW" if isinstance(spec, AdamWOptimizer) and not strict else "Adam"
        own = [f"beta_1={f(spec.beta1)}", f"beta_2={f(spec.beta2)}", f"epsilon={f(spec.epsilon)}"]
        own.append(f"amsgrad={spec.amsgrad}")
    else:
        cls = "RMSprop"
        own = [f"rho={f(spec.rho)}", f"momentum={f(spec.momentum)}", f"epsilon={f(spec.epsilon)}"]
        own.append(f"centered={spec.centered}")
    args += own
    if strict and spec.weight_decay:
        args += [f"weight_decay={f(spec.weight_decay)}", f"decoupled={spec.decay_kind == 'decoupled'}"]
    elif spec.decay_kind == "decoupled" and spec.weight_decay:
        args.append(f"weight_decay={f(spec.weight_decay)}")
    if spec.clipnorm is not None:
        args.append(f"global_clipnorm={f(spec.clipnorm)}")  # the spec's clipnorm is a global norm
    if spec.clipvalue is not None:
        args.append(f"clipvalue={f(spec.clipvalue)}")
    return (f"Exact{cls}" if strict else f"keras.optimizers.{cls}"), args


def _optimizer_function(spec: Spec, strict: bool) -> str:
    cls, args = _optimizer_kwargs(spec.optimizer, strict)
    doc = "The optimizer" + (" (strict: torch.optim's update step, see above)" if strict else "")
    notes = []
    if spec.optimizer.clipnorm is not None:
        notes.append(
            "    # global_clipnorm: the spec clips the norm of all gradients together (torch's clip_grad_norm_)"
        )
    return _function("make_optimizer", doc + ".", notes, f"{cls}(", args, ")")


def _loss_function(spec: Spec) -> str:
    loss: Any = spec.loss
    args = ['reduction="sum_over_batch_size"']
    kind = loss.type
    if kind == "mse":
        cls = "MeanSquaredError"
    elif kind == "mae":
        cls = "MeanAbsoluteError"
    elif kind == "huber":
        cls, args = "Huber", [f"delta={_float(loss.delta)}", *args]
    elif kind == "binary_crossentropy":
        cls, args = "BinaryCrossentropy", [f"from_logits={loss.from_logits}", *args]
    else:
        cls = "SparseCategoricalCrossentropy" if loss.labels == "integer" else "CategoricalCrossentropy"
        args = [f"from_logits={loss.from_logits}", *args]
    doc = "The loss: the mean over the batch (Keras' sum_over_batch_size; with sample weights, sum(w * loss) / n)."
    return _function("make_loss", doc, [], f"keras.losses.{cls}(", args, ")")


def _function(name: str, doc: str, notes: list[str], head: str, args: list[str], tail: str) -> str:
    """``def name():`` returning ``head + args + tail``, formatted as ruff formats it."""
    one = f"    return {head}{', '.join(args)}{tail}"
    if len(one) <= _WIDTH:
        call = one
    elif len(f"        {', '.join(args)}") <= _WIDTH:
        call = f"    return {head}\n        {', '.join(args)}\n    {tail}"
    else:
        call = f"    return {head}\n" + "".join(f"        {a},\n" for a in args) + f"    {tail}"
    return "\n".join(["", "", f"def {name}():", f'    """{doc}"""', *notes, call]) + "\n"


_WIDTH = 120  # the project's ruff line length


def _schedule_function(spec: Spec) -> str:
    s = spec.optimizer.schedule
    if s is None:
        return ""
    lr0 = _float(spec.optimizer.lr)
    if isinstance(s, StepSchedule):
        doc, expr = (
            "lr0 * gamma ** (epoch // step_size) (torch's StepLR)",
            f"{lr0} * {_float(s.gamma)} ** (epoch // {s.step_size})",
        )
    elif isinstance(s, ExponentialSchedule):
        doc, expr = "lr0 * gamma ** epoch (torch's ExponentialLR)", f"{lr0} * {_float(s.gamma)} ** epoch"
    else:
        assert isinstance(s, CosineSchedule)
        eta = _float(s.eta_min)
        doc = "cosine annealing to eta_min over t_max epochs, then eta_min"
        expr = f"{eta} + ({lr0} - {eta}) * (1 + math.cos(math.pi * min(epoch, {s.t_max}) / {s.t_max})) / 2"
    return (
        f'\n\ndef learning_rate(epoch):\n    """The learning rate of epoch ``epoch`` (0-based): {doc}."""\n'
        f"    return {expr}\n"
    )


def _training_log(spec: Spec) -> str:
    scheduled = spec.optimizer.schedule is not None
    early = spec.train.early_stopping is not None
    schedule = (
        "\n        if epoch > 0:  # epoch 0 trains at the optimizer's own rate"
        "\n            self.model.optimizer.learning_rate = learning_rate(epoch)"
        if scheduled
        else ""
    )
    return Template(TRAINING_LOG).substitute(
        SCHEDULE=schedule,
        SCHEDULE_DOC=" and set its learning rate" if scheduled else "",
        EARLY_DOC=" and early-stopping" if early else "",
        EARLY_STOP=EARLY_STOP if early else "",
    )


def _restore(spec: Spec) -> str:
    es = spec.train.early_stopping
    if es is None or not es.restore_best:
        return ""
    return (
        "        if log.best_weights is not None and not log.diverged:  # early stopping: the best epoch's weights\n"
        "            model.set_weights(log.best_weights)\n"
    )


def _threads(spec: Spec) -> str:
    n = spec.train.threads
    if n is None:
        return ""
    return (
        f"    tf.config.threading.set_intra_op_parallelism_threads({n})  # train.threads\n"
        f"    tf.config.threading.set_inter_op_parallelism_threads({n})\n"
    )


def _compile_metrics(spec: Spec, entries: list[Any]) -> str:
    """Keras' running metrics on the training batches, where one means what the spec's metric means."""
    loss: Any = spec.loss
    names = {e.name for e in entries if e.threshold == 0.5 and e.average in (None, "binary", "micro")}
    out = []
    if "accuracy" in names:
        if spec.task == "binary":
            out.append(f"keras.metrics.BinaryAccuracy(threshold={0.0 if loss.from_logits else 0.5})")
        elif loss.labels == "integer":
            out.append("keras.metrics.SparseCategoricalAccuracy()")
        else:
            out.append("keras.metrics.CategoricalAccuracy()")
    table = {"mse": "MeanSquaredError", "rmse": "RootMeanSquaredError", "mae": "MeanAbsoluteError"}
    out += [f"keras.metrics.{table[n]}()" for n in ("mse", "rmse", "mae") if n in names]
    one = f"        running = [{', '.join(out)}]"
    if len(one) <= _WIDTH:
        return one
    return "        running = [\n" + "".join(f"            {item},\n" for item in out) + "        ]"
