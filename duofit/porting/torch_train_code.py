"""The training part of an exported torch script: loss, optimizer, schedule, the loop, metrics, ``main``.

Mirrors duofit's torch trainer (``duofit/backends/torch/trainer.py``, ``losses.py``,
``optimizers.py``) and its shared per-epoch rules (``duofit/common/history.py``,
``schedules.py``, ``monitor.py``), written the way a tutorial writes a loop. Where duofit does
what hand-written loops usually do not, the script keeps it and says why in a comment:

- the batches follow the bundle's ``order`` (batch ``b`` of epoch ``e`` is ``order[e, b*bs:(b+1)*bs]``);
- the epoch loss is the batch-size weighted mean of the step losses (Keras' logged loss);
- a weighted loss is ``sum(loss_i * w_i) / batch size`` (Keras' ``sum_over_batch_size``);
- the learning rate is set before every epoch from duofit's closed form (torch's schedulers
  multiply step by step, and ``CosineAnnealingLR`` climbs back after ``t_max``);
- clipping, then decoupled decay, run between ``backward`` and ``step``, as Keras' ``apply``;
- training stops when an epoch loss is not finite or passes duofit's divergence limit;
- early stopping follows Keras' rules (improvement by more than ``min_delta``, never after the first epoch).

Example:
    >>> from duofit.common.loader import load_spec
    >>> from duofit.common.data import load_dataset
    >>> spec = load_spec("examples/seed.toml")
    >>> code = train_code(spec, load_dataset(spec), strict=False, arrays={}, frozen=[])
    >>> code.constants[0]
    'LOSS = nn.BCEWithLogitsLoss()  # loss: binary_crossentropy, from_logits = true'
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from string import Template
from typing import Any

import numpy as np

from duofit.common.data import Dataset
from duofit.common.diagnostics import divergence_limit
from duofit.common.spec import Spec
from duofit.porting.codegen import lr_expression, py_float, refuse
from duofit.porting.script_metrics import metric_constants, metric_entries, metrics_source
from duofit.porting.torch_loop_code import main_function, train_epoch_function
from duofit.porting.torch_script import PROB_LOSSES, STRICT_CLIP, STRICT_OPTIMIZERS

__all__ = ["TrainCode", "train_code"]


@dataclass
class TrainCode:
    """The script's training part.

    Attributes:
        constants: Module-level assignments after the run constants (the loss, the schedule's numbers).
        helpers: Module-level blocks (probability losses, the metrics, strict optimizers).
        functions: The remaining top-level functions, in order, ``main`` last.
    """

    constants: list[str] = field(default_factory=list)
    helpers: list[str] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)


# (loss type, from_logits; None for the regression losses) -> the torch module and its own arguments.
# nn.CrossEntropyLoss reads class indices (integer labels) and class probabilities (one-hot) alike.
_LOSS_MODULES: dict[tuple[str, bool | None], tuple[str, Callable[[Any], list[str]]]] = {
    ("mse", None): ("nn.MSELoss", lambda loss: []),
    ("mae", None): ("nn.L1Loss", lambda loss: []),
    ("huber", None): ("nn.HuberLoss", lambda loss: [f"delta={loss.delta!r}"]),
    ("binary_crossentropy", True): ("nn.BCEWithLogitsLoss", lambda loss: []),
    ("categorical_crossentropy", True): ("nn.CrossEntropyLoss", lambda loss: []),
}


_NO_REDUCTION = 'reduction="none"'  # one loss per output, weighted in the loop


@dataclass(frozen=True)
class _Loss:
    """How the script computes the spec's loss.

    Attributes:
        constant: The ``LOSS = ...`` line with its comment (empty when ``helper`` holds it).
        per_sample: The per-sample loss module for weighted batches (None: the loss has none).
        helper: Module-level code that defines the loss function ``constant`` names and ends with
            ``constant`` (so ``LOSS`` is assigned after the function exists); empty for a module.
    """

    constant: str
    per_sample: str | None
    helper: str


def _loss(spec: Spec) -> _Loss:
    """The loss: a stock module (:data:`_LOSS_MODULES`) or a function on probabilities (``PROB_LOSSES``)."""
    loss: Any = spec.loss
    logits = getattr(loss, "from_logits", None)
    comment = f"loss: {loss.type}" + ("" if logits is None else f", from_logits = {str(logits).lower()}")
    if (loss.type, logits) in _LOSS_MODULES:
        module, own_args = _LOSS_MODULES[(loss.type, logits)]
        args = own_args(loss)
        per_sample = f"{module}({', '.join([_NO_REDUCTION, *args])})"
        return _Loss(f"LOSS = {module}({', '.join(args)})  # {comment}", per_sample, "")
    name, source = PROB_LOSSES[loss.type]
    return _Loss("", None, f"{source}\n\nLOSS = {name}  # {comment}\n")


def _optimizer(spec: Spec, strict: bool) -> tuple[str, list[str]]:
    """The optimizer construction (``params`` in scope) and helper blocks."""
    opt: Any = spec.optimizer  # one of the four optimizer specs; each branch reads its own fields
    coupled = opt.weight_decay if opt.decay_kind == "l2" else 0.0
    if strict:
        cls, source = STRICT_OPTIMIZERS[opt.type]
        values = {
            "momentum": py_float(getattr(opt, "momentum", 0.0)),
            "nesterov": repr(bool(getattr(opt, "nesterov", False))),
            "beta1": py_float(getattr(opt, "beta1", 0.9)),
            "beta2": py_float(getattr(opt, "beta2", 0.999)),
            "eps": py_float(getattr(opt, "epsilon", 1e-8)),
            "amsgrad": repr(bool(getattr(opt, "amsgrad", False))),
            "rho": py_float(getattr(opt, "rho", 0.9)),
            "centered": repr(bool(getattr(opt, "centered", False))),
        }
        decoupled = opt.decay_kind == "decoupled"
        wd = float(opt.weight_decay)
        return f"{cls}(params, lr={opt.lr!r}, weight_decay={wd!r}, decoupled={decoupled})", [
            Template(source).substitute(values)
        ]
    args = [f"lr={opt.lr!r}"]
    if opt.type == "sgd":
        cls = "torch.optim.SGD"
        if opt.momentum:
            args.append(f"momentum={opt.momentum!r}")
        if opt.nesterov:
            args.append("nesterov=True")
    elif opt.type in ("adam", "adamw"):
        cls = "torch.optim.AdamW" if opt.decay_kind == "decoupled" else "torch.optim.Adam"
        args += [f"betas=({opt.beta1!r}, {opt.beta2!r})", f"eps={opt.epsilon!r}"]
        if opt.amsgrad:
            args.append("amsgrad=True")
        coupled = opt.weight_decay  # AdamW's own decoupled decay, or Adam's coupled one
    else:
        cls = "torch.optim.RMSprop"
        args += [f"alpha={opt.rho!r}", f"eps={opt.epsilon!r}"]  # Keras' rho is torch's alpha
        if opt.momentum:
            args.append(f"momentum={opt.momentum!r}")
        if opt.centered:
            args.append("centered=True")
    args.append(f"weight_decay={coupled!r}")  # explicit: AdamW's default is 0.01, the spec's may differ
    return f"{cls}(params, {', '.join(args)})", []


def _schedule(spec: Spec) -> list[str]:
    """``lr_for(epoch)``: duofit's closed form of the spec's schedule (empty: a constant rate)."""
    expr = lr_expression(spec, "torch")
    if expr is None:
        return []
    return [
        "def lr_for(epoch: int) -> float:",
        '    """The learning rate of epoch `epoch` (0-based), in closed form as duofit computes it."""',
        f"    return {expr}",
    ]


def _penalty(spec: Spec) -> list[str]:
    """``penalty(model)``: the dense kernels' L1/L2 terms, added to the training loss as Keras' regularizers."""
    terms = []
    for i, layer in enumerate(spec.model.layers):
        l1, l2 = getattr(layer, "l1", 0.0), getattr(layer, "l2", 0.0)
        w = f"model.{layer.type}_{i}.weight"
        if l1:
            terms.append(f"    total = total + {l1!r} * {w}.abs().sum()")
        if l2:
            terms.append(f"    total = total + {l2!r} * {w}.square().sum()")
    if not terms:
        return []
    return [
        "def penalty(model: Net) -> torch.Tensor:",
        '    """Keras\' kernel regularizers: l1 * sum|W| + l2 * sum W^2, added to every training step\'s loss."""',
        "    total = torch.zeros((), dtype=DTYPE, device=DEVICE)",
        *terms,
        "    return total",
    ]


def train_code(
    spec: Spec, dataset: Dataset, *, strict: bool, arrays: dict[str, np.ndarray], frozen: list[str]
) -> TrainCode:
    """The training part of the script for ``spec``.

    Args:
        spec: The spec (strict mode: already float64).
        dataset: Its prepared data (classes for the metrics' positive class, the divergence limit).
        strict: Write duofit's strict formulas (explicit optimizer step, Keras' clipping).
        arrays: The bundle the script reads (which optional arrays exist).
        frozen: Parameters the model freezes (named in a comment).

    Raises:
        SpecError: a setting the export does not write yet.
    """
    loss = _loss(spec)
    weighted = "sample_weight" in arrays
    if weighted and loss.per_sample is None:
        raise refuse(
            "torch",
            "loss.from_logits",
            "sample weights with a loss on probabilities",
            "use from_logits = true (and no softmax/sigmoid on the last layer)",
        )
    optimizer, opt_helpers = _optimizer(spec, strict)
    schedule = _schedule(spec)
    limit = divergence_limit(spec, dataset.y_train, dataset.n_classes)
    constants = [loss.constant] if loss.constant else []  # else LOSS follows its function (helpers)
    if weighted:
        constants.append(f"SAMPLE_LOSS = {loss.per_sample}  # one loss per output, for the sample weights")
    constants.append(
        f"DIVERGENCE_LIMIT = {limit!r}  # duofit stops when an epoch loss passes this (train.divergence_threshold)"
        if math.isfinite(limit)
        else "DIVERGENCE_LIMIT = math.inf  # train.divergence_threshold = inf: only a non-finite loss stops training"
    )
    constants += metric_constants(spec, metric_entries(spec, dataset))
    helpers = [*([loss.helper] if loss.helper else []), metrics_source(spec.task), *opt_helpers]
    if strict and spec.optimizer.clipnorm is not None:
        helpers.append(STRICT_CLIP)
    functions = ["\n".join(f) + "\n" for f in (schedule, _penalty(spec)) if f]
    functions.append(train_epoch_function(spec, strict=strict, weighted=weighted, penalty=bool(_penalty(spec))))
    functions.append(main_function(spec, dataset, optimizer=optimizer, arrays=arrays, frozen=frozen, strict=strict))
    return TrainCode(constants=constants, helpers=helpers, functions=functions)
