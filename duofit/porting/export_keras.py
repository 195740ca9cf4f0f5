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
as ``duofit parity SPEC --strict`` computes them on Keras (in Python:
``duofit.run(spec, backend="keras", strict=True)``).

Example:
    >>> from duofit.common.loader import load_spec
    >>> text = render(load_spec("examples/seed.toml"), "seed.npz")
    >>> "model.fit(" in text and 'keras.layers.Dense(10, activation="relu"' in text
    True
"""

from __future__ import annotations

from pathlib import Path
from string import Template
from typing import Any

from duofit.common.data import Dataset, load_dataset
from duofit.common.init import initial_weights
from duofit.common.spec import AdamOptimizer, AdamWOptimizer, RMSpropOptimizer, SGDOptimizer, Spec
from duofit.common.spec.masks import mask_flow
from duofit.porting.codegen import lr_expression, py_float, refuse, script_docstring, write_script
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
from duofit.porting.script_metrics import metric_constants, metric_entries, metrics_source

__all__ = ["render", "write"]


def write(spec: Spec, out: Path, *, strict: bool = False) -> list[Path]:
    """Write the Keras script ``out`` and its data ``out.with_suffix(".npz")``; return both paths.

    ``strict`` writes duofit's strict-mode formulas as code and trains in float64 (as ``duofit
    parity --strict`` does: :func:`duofit.parity.strict.strict_spec`).

    The ``.npz`` holds :func:`duofit.porting.bundle.bundle_arrays` plus ``y_val`` (the validation
    labels the per-epoch metrics read) and, for a standardized regression target,
    ``target_mean``/``target_scale`` (the test metrics are reported in the target's own units,
    as ``duofit run`` does): :func:`duofit.porting.codegen.write_script`. Nothing is written when
    the spec has a feature the exporter cannot write (a :class:`~duofit.common.errors.SpecError`
    naming it).

    Raises:
        SpecError: a spec feature export --to keras does not support yet (the field is named).
    """
    return write_script(
        spec,
        out,
        strict=strict,
        render=lambda spec, dataset, _, data_name: render(spec, data_name, strict=strict, dataset=dataset),
    )


def _check_supported(spec: Spec, strict: bool) -> None:
    """Spec features the Keras script cannot write yet: a named error, never a silent drop."""
    opt, tr = spec.optimizer, spec.train
    lr_expression(spec, "keras")  # a schedule the script cannot write is refused
    if opt.decay_kind == "l2" and opt.weight_decay and not strict:
        raise refuse(
            "keras",
            "optimizer.weight_decay",
            "coupled L2 weight decay (decay_kind = 'l2') without --strict",
            "export with --strict (an explicit update step adds it) or set decay_kind = 'decoupled'",
        )
    monitors = [m.monitor for m in (tr.early_stopping,) if m is not None]
    if tr.epoch_metrics == "native" and any(m not in ("loss", "val_loss") for m in monitors):
        raise refuse(
            "keras",
            "train.epoch_metrics",
            "'native' metrics (keras.metrics) deciding early stopping",
            "use epoch_metrics = 'shared' (the script computes duofit's numpy metrics)",
        )


def render(spec: Spec, data_name: str, *, strict: bool = False, dataset: Dataset | None = None) -> str:
    """The script's source text for ``spec``, reading its arrays from ``data_name`` beside it.

    ``dataset`` is ``spec``'s prepared data when the caller has it (else it is loaded).

    Raises:
        SpecError: a spec feature the exporter cannot write yet (the field is named).
    """
    _check_supported(spec, strict)
    ds = dataset if dataset is not None else load_dataset(spec)
    shape = tuple(int(n) for n in ds.x_train.shape[1:])
    tokens = ds.x_train.dtype.kind in "iu"
    codes = [layer_code(layer, i, strict) for i, layer in enumerate(spec.model.layers)]
    masked = mask_flow(spec.model.layers)
    model_code = build_function(spec, codes, masked, shape, "int64" if tokens else spec.train.dtype)
    body = model_code + weight_table(spec, codes, set(initial_weights(spec, ds.input_shape)))
    helpers = "".join(src for name, src in {**HELPERS, **EXACT_ACTIVATIONS}.items() if f"{name}(" in body)
    entries = metric_entries(spec, ds)
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


_STRICT_NOTE = [
    "Strict mode: this script uses duofit's strict formulas (those `duofit parity SPEC --strict` runs):",
    "torch.optim's update written out as an explicit step and float64-exact activation",
    "constants, so that Keras computes the same math as duofit's strict runs on every framework",
    "(Keras' own Adam and RMSprop place epsilon differently and round hyperparameters to float32).",
]


def _docstring(spec: Spec, data_name: str, strict: bool) -> str:
    name = spec.name or "the spec"
    about = [
        f"Standalone: needs keras, tensorflow and numpy, and {data_name} beside this file (written by",
        "`duofit export`): the data as duofit prepared it (split, scaled), the order of the training",
        "samples in every epoch and the initial weights. It trains as `duofit run SPEC --backend keras`",
        f"does, in {spec.train.dtype}: the same loss at every step.",
    ]
    return script_docstring(
        f'Train the model of "{name}" with Keras 3 on TensorFlow (compile + fit); exported by duofit.',
        about,
        ["Usage:", "    python this_script.py [--history history.json] [--quiet]"],
        _STRICT_NOTE if strict else [],
    )


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
        *metric_constants(spec, entries),
        "# an epoch loss above this (or not finite) stops training as diverged: train.divergence_threshold",
        "# times the loss of a model that learned nothing",
        f"DIVERGENCE_LIMIT = {py_float(limit)}",
    ]
    es = tr.early_stopping
    if es is not None:
        lines += [
            "# early stopping: stop after PATIENCE epochs without an improvement by more than MIN_DELTA",
            f'EARLY_STOPPING_MONITOR = "{es.monitor}"',
            f'EARLY_STOPPING_MODE = "{spec.monitor_mode()}"',
            f"PATIENCE = {es.patience}",
            f"MIN_DELTA = {py_float(es.min_delta)}",
            f"RESTORE_BEST = {es.restore_best}",
        ]
    return "\n".join(lines)


def _optimizer_kwargs(spec: Any, strict: bool) -> tuple[str, list[str]]:
    """The optimizer class and its keyword arguments, as duofit/backends/keras/optimizers.py passes them."""
    f = py_float
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
        cls, args = "Huber", [f"delta={py_float(loss.delta)}", *args]
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


# schedule type -> what the closed form is, for the script's docstring of learning_rate
_SCHEDULE_DOCS = {
    "step": "lr0 * gamma ** (epoch // step_size) (torch's StepLR)",
    "exponential": "lr0 * gamma ** epoch (torch's ExponentialLR)",
    "cosine": "cosine annealing to eta_min over t_max epochs, then eta_min",
}


def _schedule_function(spec: Spec) -> str:
    expr = lr_expression(spec, "keras")
    if expr is None:
        return ""
    doc = _SCHEDULE_DOCS[spec.optimizer.schedule.type]  # type: ignore[union-attr]  # not None with an expression
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
