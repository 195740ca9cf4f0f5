"""What differs between the frameworks Keras 3 runs on: one table entry per framework.

Everything else in ``duofit/backends/keras/`` is written with ``keras`` and ``keras.ops``
and runs unchanged on TensorFlow (backend ``keras``), PyTorch (``keras-torch``) and JAX
(``keras-jax``). What cannot be, lives here, keyed by ``keras.backend.backend()``:

- the input pipeline: a ``tf.data`` pipeline built once on TensorFlow (one compiled step
  per epoch with ``steps_per_execution``), each epoch's order drawn when the pipeline reaches
  it; streamed data (kinds ``npy``, ``parquet``) through a prefetched generator of batches read
  from the memory map; on torch and JAX a generator over the shared batch order
  (Keras-on-torch requires ``steps_per_execution = 1``; on JAX a partial last
  batch cannot share an execution with full ones). With sample weights each batch is
  ``(x, t, w)``, the weights gathered by the same indices (Keras' ``fit`` reads the third
  element as ``sample_weight``);
- writing one element of a per-step record without a host sync (in place on TensorFlow
  and torch, functional ``.at[].set`` inside JAX's traced step);
- gradients of a loss for the probe (``GradientTape`` / ``autograd`` / ``jax.grad``);
- devices, thread settings, peak accelerator memory and the versions/flags recorded with
  every run;
- whether Keras' own ``AveragePooling2D(padding="same")`` averages over the real cells only,
  as TensorFlow does (not on torch: Keras 3.15.1 replicates the edge, cause ``same_avg_pool``).

Example (skipped: the name depends on the framework Keras runs on):
    >>> native().name          # doctest: +SKIP
    'tensorflow'
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from duofit.backends.base import TrainPlan
from duofit.backends.keras.losses import loss_targets
from duofit.common.data import Part, StreamedRows, eval_chunks, gathered_per_batch, training_rows
from duofit.common.errors import BackendError

__all__ = [
    "Native",
    "device_name",
    "devices",
    "framework_environment",
    "model_input",
    "model_inputs",
    "native",
    "on_device",
    "resolve_device",
]


@dataclass(frozen=True)
class Native:
    """The framework-specific pieces for one Keras backend (see the module docstring)."""

    name: str
    versions: Callable[[], dict[str, Any]]
    gpus: Callable[[], list[str]]
    set_threads: Callable[[int], None]
    init_threads: Callable[[int], None]
    peak_memory_mb: Callable[[], float]
    batches: Callable[[TrainPlan, str], Any]
    steps_per_execution: Callable[[int], int]
    put: Callable[[Any, Any, Any], None]
    value_and_grads: Callable[[keras.Model, Callable[[Any], Any]], tuple[Any, list[Any]]]
    same_avg_pool_ok: bool


def _training_part(plan: TrainPlan, dtype: str) -> Part:
    """The training features as :func:`~duofit.common.data.training_rows` makes them.

    A small streamed part read into memory once, in the model's dtype (the same scaled values),
    and fed as an in-memory part of its size; a larger one on a resident map pre-scaled once.
    """
    return training_rows(plan.dataset.x_train, dtype)


def _generator_batches(plan: TrainPlan, dtype: str, part: Part | None = None) -> Iterator[tuple[np.ndarray, ...]]:
    """Every epoch's batches in the shared order from ``plan.start_epoch``, as numpy (Keras moves them to the device).

    Each epoch's order is drawn when the generator reaches it; streamed features (kinds ``npy``,
    ``parquet``) are read from their memory map per batch. ``part``: the training features
    (default: :func:`_training_part`).
    """
    bs = plan.spec.train.batch_size
    part = _training_part(plan, dtype) if part is None else part
    take: Callable[[np.ndarray], np.ndarray]
    if isinstance(part, StreamedRows):
        take = functools.partial(part.batch, dtype=dtype)  # scaled and cast in one pass
    else:
        take = model_input(part, dtype).__getitem__
    t = loss_targets(plan.t_train, dtype)
    w = plan.sample_weight.astype(dtype) if plan.sample_weight is not None else None
    steps = math.ceil(len(part) / bs)

    def epoch(order: np.ndarray) -> Iterator[tuple[np.ndarray, ...]]:
        for b in range(steps):
            idx = order[b * bs : (b + 1) * bs]
            yield (take(idx), t[idx]) if w is None else (take(idx), t[idx], w[idx])

    # One epoch's generator at a time: its order (64 MB at 1e7 samples) is freed when the epoch
    # ends, before the next one is drawn.
    for e in range(plan.start_epoch, plan.order.epochs):
        yield from epoch(plan.order.epoch(e))


def model_input(x: np.ndarray, dtype: str) -> np.ndarray:
    """Features as ``dtype``; integer token ids stay int64 (an embedding looks them up).

    No copy when the features already have that dtype (float32 data of a float32 run): callers
    only read them (``tf.constant`` and Keras copy what they keep).
    """
    return np.asarray(x, dtype=np.int64 if x.dtype.kind in "iu" else dtype)


def model_inputs(part: Part, dtype: str) -> Iterator[np.ndarray]:
    """A part for evaluation as model inputs: the whole array in one piece, a streamed one chunk by chunk."""
    for chunk in eval_chunks(part):
        yield model_input(chunk, dtype)


# ---- TensorFlow ---------------------------------------------------------------------------


def _tf_versions() -> dict[str, Any]:
    import tensorflow as tf

    return {
        "tensorflow": tf.__version__,
        "threads": tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count(),
        "interop_threads": tf.config.threading.get_inter_op_parallelism_threads() or os.cpu_count(),
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
        "tf32_matmul": bool(tf.config.experimental.tensor_float_32_execution_enabled()),
        "op_determinism": os.environ.get("TF_DETERMINISTIC_OPS", "0") == "1",
    }


def _tf_gpus() -> list[str]:
    import tensorflow as tf

    out = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        out.append(str(details.get("device_name", gpu.name)))
    return out


def _tf_threads(n: int) -> None:
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    except RuntimeError:  # TF already initialised in this process: keep its setting
        pass


def _tf_peak_mb() -> float:
    import tensorflow as tf

    return float(tf.config.experimental.get_memory_info("GPU:0")["peak"]) / 2**20


def _tf_batches(plan: TrainPlan, dtype: str) -> Any:
    """Training batches in the shared order: epoch e, batch b = ``order.epoch(e)[b*bs:(b+1)*bs]``.

    The data sit in the graph as constants and each epoch's order enters the pipeline when the
    pipeline reaches that epoch (one Python call per epoch, none per step; ``prefetch`` draws the
    next epoch's order while this one trains). Streamed or large features: :func:`_tf_generated`.
    """
    import tensorflow as tf

    part = _training_part(plan, dtype)
    if isinstance(part, StreamedRows) or gathered_per_batch(part):  # large: no constant copy in the graph
        return _tf_generated(plan, dtype, part)
    bs = plan.spec.train.batch_size
    x = tf.constant(model_input(part, dtype))
    t = tf.constant(loss_targets(plan.t_train, dtype))
    order = tf.data.Dataset.from_generator(
        lambda: (perm.astype(np.int32) for perm in plan.order.epochs_from(plan.start_epoch)),
        output_signature=tf.TensorSpec((len(part),), tf.int32),
    )
    batches = order.flat_map(lambda idx: tf.data.Dataset.from_tensor_slices(idx).batch(bs))
    if plan.sample_weight is None:
        return batches.map(lambda i: (tf.gather(x, i), tf.gather(t, i))).prefetch(tf.data.AUTOTUNE)
    w = tf.constant(plan.sample_weight.astype(dtype))
    return batches.map(lambda i: (tf.gather(x, i), tf.gather(t, i), tf.gather(w, i))).prefetch(tf.data.AUTOTUNE)


# Batches the generator pipeline reads ahead: a fixed number. With tf.data.AUTOTUNE the buffer
# kept growing with the steps run (1e6 streamed rows, 60 epochs: peak RSS +17-25 MiB against +6
# MiB with 32; a 1e7 Keras run grew 1410 -> 1562 MiB over 40 epochs), at no measurable speed gain.
GENERATOR_PREFETCH_BATCHES = 32


def _tf_generated(plan: TrainPlan, dtype: str, part: Part) -> Any:
    """Training batches of ``part`` gathered one at a time by :func:`_generator_batches` (streamed: from the map)."""
    import tensorflow as tf

    t = loss_targets(plan.t_train[:1], dtype)
    signature = [
        tf.TensorSpec((None, *plan.dataset.input_shape), tf.as_dtype(dtype)),
        tf.TensorSpec((None, *t.shape[1:]), tf.as_dtype(t.dtype)),
    ]
    if plan.sample_weight is not None:
        signature.append(tf.TensorSpec((None,), tf.as_dtype(dtype)))
    batches = tf.data.Dataset.from_generator(
        lambda: _generator_batches(plan, dtype, part), output_signature=tuple(signature)
    )
    return batches.prefetch(GENERATOR_PREFETCH_BATCHES)


def _tf_put(var: Any, index: Any, value: Any) -> None:
    import tensorflow as tf

    var.value.scatter_nd_update([[tf.cast(index, tf.int32)]], [tf.cast(value, var.dtype)])


def _tf_value_and_grads(model: keras.Model, loss_fn: Callable[[Any], Any]) -> tuple[Any, list[Any]]:
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = loss_fn(model)
    return loss, tape.gradient(loss, model.trainable_variables)


# ---- PyTorch ------------------------------------------------------------------------------


def _torch_versions() -> dict[str, Any]:
    import torch

    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "keras_float64": "float64 ops kept in float64 (duofit)",
    }


def _torch_gpus() -> list[str]:
    import torch

    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def _torch_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def _torch_init_threads(n: int) -> None:
    from duofit.backends.torch.machine import init_threads  # Keras on torch: torch's own settings

    init_threads(n)


def _torch_peak_mb() -> float:
    from duofit.backends.torch.machine import peak_memory_mb

    return peak_memory_mb()


def _torch_put(var: Any, index: Any, value: Any) -> None:
    import torch

    with torch.no_grad():  # a record, not part of the graph; stays on the device
        var.value[keras.ops.convert_to_tensor(index).long()] = value.detach().to(var.value.dtype)


def _torch_value_and_grads(model: keras.Model, loss_fn: Callable[[Any], Any]) -> tuple[Any, list[Any]]:
    variables = model.trainable_variables
    for v in variables:
        v.value.grad = None
    loss = loss_fn(model)
    loss.backward()
    return loss.detach(), [v.value.grad for v in variables]


# ---- JAX ----------------------------------------------------------------------------------


def _jax_versions() -> dict[str, Any]:
    import jax
    import jaxlib

    return {
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "threads": os.environ.get("XLA_FLAGS", "XLA default"),
        "x64": bool(jax.config.read("jax_enable_x64")),
        "keras_float64": "float64 ops kept in float64 (duofit)",
    }


def _jax_gpus() -> list[str]:
    import jax

    try:
        return [d.device_kind for d in jax.devices("gpu")]
    except RuntimeError:  # no GPU platform in this jaxlib
        return []


def _jax_threads(n: int) -> None:
    """XLA's CPU thread pool is fixed when JAX starts: one thread is the only setting it takes later."""
    from duofit.backends.kerasenv import limit_xla_threads

    limit_xla_threads(n)


def _jax_peak_mb() -> float:
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    return float(stats.get("peak_bytes_in_use", 0)) / 2**20


def _jax_put(var: Any, index: Any, value: Any) -> None:
    var.assign(var.value.at[keras.ops.cast(index, "int32")].set(value.astype(var.value.dtype)))


def _jax_value_and_grads(model: keras.Model, loss_fn: Callable[[Any], Any]) -> tuple[Any, list[Any]]:
    import jax

    trainable = [v.value for v in model.trainable_variables]
    others = [v.value for v in model.non_trainable_variables]

    def stateless(values: list[Any]) -> Any:
        mapping = list(zip(model.trainable_variables, values, strict=True))
        mapping += list(zip(model.non_trainable_variables, others, strict=True))
        with keras.StatelessScope(state_mapping=mapping):
            return loss_fn(model)

    return jax.value_and_grad(stateless)(trainable)


_TABLE: dict[str, Native] = {
    "tensorflow": Native(
        "tensorflow",
        _tf_versions,
        _tf_gpus,
        _tf_threads,
        _tf_threads,
        _tf_peak_mb,
        _tf_batches,
        lambda steps: steps,
        _tf_put,
        _tf_value_and_grads,
        True,
    ),
    "torch": Native(
        "torch",
        _torch_versions,
        _torch_gpus,
        _torch_threads,
        _torch_init_threads,
        _torch_peak_mb,
        _generator_batches,
        lambda steps: 1,
        _torch_put,
        _torch_value_and_grads,
        False,  # asymmetric padding replicated and counted
    ),
    "jax": Native(
        "jax",
        _jax_versions,
        _jax_gpus,
        _jax_threads,
        _jax_threads,
        _jax_peak_mb,
        _generator_batches,
        lambda steps: 1,
        _jax_put,
        _jax_value_and_grads,
        True,
    ),
}


def native(name: str | None = None) -> Native:
    """The table entry for ``name`` (default: the framework Keras runs on in this process).

    Raises:
        BackendError: Keras runs on a framework duofit does not support (e.g. openvino).
    """
    name = name or keras.backend.backend()
    try:
        return _TABLE[name]
    except KeyError:
        raise BackendError(f"keras runs on {name!r}; duofit supports Keras on: {', '.join(_TABLE)}") from None


def resolve_device(name: str) -> str:
    """Keras device string (``cpu`` / ``gpu``) for ``cpu``, ``cuda`` (error if absent) or ``auto``.

    No device index: under ``keras.device("cpu:0")`` Keras-on-torch creates the weights on
    another torch device than its train step uses, and no gradient reaches them.
    """
    gpus = native().gpus()
    if name == "cuda" and not gpus:
        raise BackendError(
            f"train.device = 'cuda' but Keras on {keras.backend.backend()} sees no GPU; use 'cpu' or 'auto', "
            "or install a GPU build of the framework"
        )
    return "cpu" if name == "cpu" or not gpus else "gpu"


@contextlib.contextmanager
def on_device(device: str) -> Iterator[None]:
    """Place variables and computations on ``device`` (a :func:`resolve_device` string)."""
    with keras.device(device):
        yield


def device_name(device: str) -> str:
    """Human name of the device: the GPU model or the CPU model."""
    if device.startswith("gpu"):
        gpus = native().gpus()
        return gpus[0] if gpus else "GPU"
    from duofit.common.envinfo import cpu_model

    return cpu_model()


def devices() -> list[str]:
    """Devices this backend can train on."""
    return ["cpu"] + [f"gpu:{i} ({name})" for i, name in enumerate(native().gpus())]


def framework_environment(device: str) -> dict[str, Any]:
    """Versions and numeric flags that can change results or speed."""
    return {
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "device": resolve_device(device),
        **native().versions(),
    }
