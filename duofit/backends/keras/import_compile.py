"""A Keras ``compile_config`` (loss, optimizer, metrics) -> spec section documents, where they map exactly.

The inverse of ``losses.py``, ``optimizers.py`` and ``metrics.py`` in this package. What
has no exact spec equivalent (a per-step learning-rate schedule, per-tensor ``clipnorm``,
EMA weights, label smoothing, a metric the spec lacks, a multi-output loss) is left out
with a note naming it, so the base spec must say it instead; nothing is approximated.

Translations (Keras -> spec):
- ``SparseCategoricalCrossentropy`` -> ``categorical_crossentropy`` with ``labels = "integer"``,
  ``CategoricalCrossentropy`` -> ``labels = "one_hot"``.
- Keras' ``weight_decay`` is decoupled (``keras/src/optimizers/base_optimizer.py``
  ``_apply_weight_decay``: ``w -= lr * wd * w``): ``decay_kind = "decoupled"``; ``global_clipnorm``
  is the spec's ``clipnorm`` (a global norm), Keras' own ``clipnorm`` clips each tensor: left out.
- a learning rate is stored as its float32 variable's value (0.0010000000474974513): the
  spec takes the shortest decimal with that float32 value (0.001).
- ``keras.losses.Huber`` does not store its ``delta`` (``keras/src/losses/losses.py``
  ``Huber.get_config`` returns only name and reduction): left out.

Example:
    >>> sections, notes = compile_sections({"loss": "sparse_categorical_crossentropy", "metrics": ["acc"],
    ...     "optimizer": {"module": "keras.optimizers", "class_name": "SGD",
    ...                   "config": {"learning_rate": 0.009999999776482582, "momentum": 0.9, "nesterov": False}}})
    >>> sections["loss"], sections["optimizer"], sections["metrics"]
    ({'type': 'categorical_crossentropy', 'from_logits': False, 'labels': 'integer'}, \
{'type': 'sgd', 'lr': 0.01, 'momentum': 0.9, 'nesterov': False}, ['accuracy'])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

__all__ = ["LOSSES", "METRICS", "OPTIMIZERS", "compile_sections"]

Doc = dict[str, Any]


class _Left(Exception):
    """A setting with no exact spec equivalent: the section is left out, with this reason."""


def _entry(value: Any, module: str) -> tuple[str, dict[str, Any]]:
    """``(class or function name, config)`` of a serialized Keras object or a plain name."""
    if isinstance(value, str):
        return value, {}
    if isinstance(value, Mapping) and str(value.get("module", module)).startswith(module):
        if value.get("registered_name") not in (None, value.get("class_name")):
            raise _Left(f"custom class {value.get('registered_name')!r}")
        cfg = value.get("config")
        return str(value.get("class_name")), dict(cfg) if isinstance(cfg, Mapping) else {}
    raise _Left(f"{str(value)[:80]} is not one of Keras' own ({module})")


def _only(cfg: Mapping[str, Any], allowed: Mapping[str, Any]) -> None:
    for key, want in allowed.items():
        if key in cfg and cfg[key] != want:
            raise _Left(f"{key} = {cfg[key]!r} (the spec has only {want!r})")


# --------------------------------------------------------------------------- loss
def _crossentropy(kind: str, labels: str | None) -> Callable[[dict[str, Any]], Doc]:
    def make(cfg: dict[str, Any]) -> Doc:
        _only(cfg, {"label_smoothing": 0.0, "axis": -1, "ignore_class": None})
        doc: Doc = {"type": kind, "from_logits": bool(cfg.get("from_logits", False))}
        return {**doc, "labels": labels} if labels else doc

    return make


def _huber(cfg: dict[str, Any]) -> Doc:
    if "delta" not in cfg:
        raise _Left("keras.losses.Huber does not store its delta in the archive; set [loss] delta in the base spec")
    return {"type": "huber", "delta": float(cfg["delta"])}


_MSE: Callable[[dict[str, Any]], Doc] = lambda cfg: {"type": "mse"}  # noqa: E731
_MAE: Callable[[dict[str, Any]], Doc] = lambda cfg: {"type": "mae"}  # noqa: E731
# Keras loss class or function name -> spec loss document
LOSSES: dict[str, Callable[[dict[str, Any]], Doc]] = {
    **dict.fromkeys(("mse", "mean_squared_error", "MeanSquaredError"), _MSE),
    **dict.fromkeys(("mae", "mean_absolute_error", "MeanAbsoluteError"), _MAE),
    **dict.fromkeys(("Huber", "huber", "huber_loss"), _huber),
    **dict.fromkeys(("binary_crossentropy", "BinaryCrossentropy"), _crossentropy("binary_crossentropy", None)),
    **dict.fromkeys(
        ("categorical_crossentropy", "CategoricalCrossentropy"), _crossentropy("categorical_crossentropy", "one_hot")
    ),
    **dict.fromkeys(
        ("sparse_categorical_crossentropy", "SparseCategoricalCrossentropy"),
        _crossentropy("categorical_crossentropy", "integer"),
    ),
}


def _loss(value: Any) -> Doc:
    if isinstance(value, (list, dict)) and not (isinstance(value, dict) and "class_name" in value):
        raise _Left("one loss per output (a multi-output model)")
    name, cfg = _entry(value, "keras.losses")
    if name not in LOSSES:
        raise _Left(f"{name} has no spec loss (spec losses: mse, mae, huber, binary/categorical crossentropy)")
    _only(cfg, {"reduction": "sum_over_batch_size"})
    return LOSSES[name](cfg)


# --------------------------------------------------------------------------- optimizer
def _lr(value: Any) -> float:
    if not isinstance(value, (int, float)):
        raise _Left("a learning-rate schedule (Keras steps it per batch; the spec's schedules are per epoch)")
    short = float(str(np.float32(value)))
    return short if np.float32(short) == np.float32(value) else float(value)


_OFF = {"use_ema": False, "loss_scale_factor": None, "gradient_accumulation_steps": None, "clipnorm": None}
# Keras optimizer class -> (spec type, spec field <- Keras config key)
OPTIMIZERS: dict[str, tuple[str, dict[str, str]]] = {
    "SGD": ("sgd", {"momentum": "momentum", "nesterov": "nesterov"}),
    "Adam": ("adam", {"beta1": "beta_1", "beta2": "beta_2", "epsilon": "epsilon", "amsgrad": "amsgrad"}),
    "AdamW": ("adamw", {"beta1": "beta_1", "beta2": "beta_2", "epsilon": "epsilon", "amsgrad": "amsgrad"}),
    "RMSprop": ("rmsprop", {"rho": "rho", "momentum": "momentum", "epsilon": "epsilon", "centered": "centered"}),
}
_KNOWN = {"name", "learning_rate", "weight_decay", "global_clipnorm", "clipvalue", "ema_momentum"}
_KNOWN |= {"ema_overwrite_frequency", *_OFF}


def _optimizer(value: Any) -> Doc:
    name, cfg = _entry(value, "keras.optimizers")
    if name not in OPTIMIZERS:
        raise _Left(f"{name} has no spec optimizer (spec optimizers: {', '.join(OPTIMIZERS)})")
    kind, fields = OPTIMIZERS[name]
    _only(cfg, _OFF)
    extra = set(cfg) - _KNOWN - set(fields.values())
    if extra:
        raise _Left(f"settings {sorted(extra)} have no spec equivalent")
    doc: Doc = {"type": kind, "lr": _lr(cfg.get("learning_rate", 0.001))}
    doc.update({field: cfg[key] for field, key in fields.items() if key in cfg})
    if cfg.get("weight_decay"):
        doc["weight_decay"] = float(cfg["weight_decay"])
        if kind != "adamw":
            doc["decay_kind"] = "decoupled"
    if cfg.get("global_clipnorm") is not None:
        doc["clipnorm"] = float(cfg["global_clipnorm"])
    if cfg.get("clipvalue") is not None:
        doc["clipvalue"] = float(cfg["clipvalue"])
    return doc


# --------------------------------------------------------------------------- metrics
def _at_half(name: str, key: str) -> Callable[[dict[str, Any]], Any]:
    def make(cfg: dict[str, Any]) -> Any:
        value = cfg.get(key)
        threshold = value[0] if isinstance(value, list) and len(value) == 1 else value
        _only(cfg, {"top_k": None, "class_id": None})
        if threshold in (None, 0.5):
            return name
        if not isinstance(threshold, float):
            raise _Left(f"{key} = {value!r}")
        return {"name": name, "threshold": threshold}

    return make


def _plain(name: str, **fixed: Any) -> Callable[[dict[str, Any]], Any]:
    def make(cfg: dict[str, Any]) -> Any:
        _only(cfg, fixed)
        return name

    return make


# Keras metric class or name -> spec metric entry
METRICS: dict[str, Callable[[dict[str, Any]], Any]] = {
    **dict.fromkeys(
        ("accuracy", "acc", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy"),
        _plain("accuracy"),
    ),
    "BinaryAccuracy": _at_half("accuracy", "threshold"),
    "CategoricalAccuracy": _plain("accuracy"),
    "SparseCategoricalAccuracy": _plain("accuracy"),
    **dict.fromkeys(("mae", "mean_absolute_error", "MeanAbsoluteError"), _plain("mae")),
    **dict.fromkeys(("mse", "mean_squared_error", "MeanSquaredError"), _plain("mse")),
    "RootMeanSquaredError": _plain("rmse"),
    "R2Score": _plain("r2", class_aggregation="uniform_average", num_regressors=0),
    "Precision": _at_half("precision", "thresholds"),
    "Recall": _at_half("recall", "thresholds"),
    "AUC": _plain("roc_auc", curve="ROC", multi_label=False, from_logits=False),
}


def _metrics(value: Any, notes: list[str]) -> list[Any]:
    if not isinstance(value, list) or any(isinstance(v, list) for v in value):
        raise _Left("metrics per output (a multi-output model)")
    out: list[Any] = []
    for item in value:
        try:
            name, cfg = _entry(item, "keras.metrics")
            if name not in METRICS:
                raise _Left(f"{name} has no spec metric")
            entry = METRICS[name](cfg)
        except _Left as why:
            notes.append(f"metric left out: {why}")
            continue
        if entry not in out:
            out.append(entry)
    return out


def compile_sections(compile_config: Mapping[str, Any] | None) -> tuple[dict[str, Any], list[str]]:
    """The spec's ``loss``, ``optimizer`` and ``metrics`` documents a Keras compile config states exactly.

    Args:
        compile_config: A ``.keras`` archive's ``compile_config`` (or a live model's
            ``get_compile_config()``); ``None`` for a model never compiled.

    Returns:
        ``(sections, notes)``: the documents that map exactly, and a note for each part left out.
    """
    if not compile_config:
        return {}, ["the model was saved without compile(): the base spec must give the loss and optimizer"]
    sections: dict[str, Any] = {}
    notes: list[str] = []
    makers: dict[str, Callable[[Any], Any]] = {
        "loss": _loss,
        "optimizer": _optimizer,
        "metrics": lambda value: _metrics(value, notes),
    }
    for key, make in makers.items():
        value = compile_config.get(key)
        if value is None:
            continue
        try:
            made = make(value)
        except _Left as why:
            notes.append(f"compile {key} left out (give it in the base spec): {why}")
            continue
        if made:
            sections[key] = made
    for key in ("loss_weights", "weighted_metrics"):
        if compile_config.get(key):
            notes.append(f"compile {key} ignored: the spec has none (one output, unweighted metrics)")
    return sections, notes
