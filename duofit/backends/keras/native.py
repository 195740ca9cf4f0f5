"""What differs between the frameworks Keras 3 runs on: one table entry per framework.

Everything else in ``duofit/backends/keras/`` is written with ``keras`` and ``keras.ops``
and runs unchanged on TensorFlow (backend ``keras``), PyTorch (``keras-torch``) and JAX
(``keras-jax``). What cannot be, lives here, keyed by ``keras.backend.backend()``:

- the input pipeline (:mod:`duofit.backends.keras.feed`): ``tf.data`` on TensorFlow, a
  generator over the shared batch order on torch and JAX; and how an input used at every epoch
  (the validation part) is held: a TensorFlow tensor over the array's own buffer, the array
  itself elsewhere;
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
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from duofit.backends.base import TrainPlan
from duofit.backends.keras.feed import generator_batches, no_conversion, tf_batches, tf_resident
from duofit.common.errors import BackendError

__all__ = [
    "Native",
    "device_name",
    "devices",
    "framework_environment",
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
    resident: Callable[[np.ndarray], Any]
    steps_per_execution: Callable[[int], int]
    put: Callable[[Any, Any, Any], None]
    value_and_grads: Callable[[keras.Model, Callable[[Any], Any]], tuple[Any, list[Any]]]
    same_avg_pool_ok: bool


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
        tf_batches,
        tf_resident,
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
        generator_batches,
        no_conversion,
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
        generator_batches,
        no_conversion,
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
