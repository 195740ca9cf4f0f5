"""What the torch and Keras exporters share: source literals, refusals, closed forms, writing the files.

:mod:`duofit.porting.export_torch` and :mod:`duofit.porting.export_keras` (and their per-layer
tables) write different code from the same spec; what does not depend on the framework lives
here once: a float as Python source, the error for a spec feature an exporter cannot write, the
learning rate of a schedule in closed form, the arrays the scripts read beside the bundle, and
the write itself (every refusal before any file is written).

Example:
    >>> py_float(0.1), py_float(float("inf"))
    ('0.1', 'float("inf")')
    >>> str(refuse("torch", "optimizer.schedule.type", "the 'plateau' schedule", "use step"))
    "optimizer.schedule.type: duofit export --to torch does not support the 'plateau' schedule yet; use step"
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from duofit.common.data import Dataset, load_dataset
from duofit.common.errors import SpecError
from duofit.common.io import atomic_write_text
from duofit.common.spec import CosineSchedule, ExponentialSchedule, Spec, StepSchedule
from duofit.porting.bundle import bundle_arrays, write_bundle

__all__ = [
    "Renderer",
    "lr_expression",
    "metric_arrays",
    "py_float",
    "py_str",
    "refuse",
    "refuse_layer_type",
    "script_docstring",
    "write_script",
]

# (spec, its prepared data, the arrays the script reads, the .npz file's name) -> the script's text
Renderer = Callable[[Spec, Dataset, dict[str, np.ndarray], str], str]


def py_float(value: float) -> str:
    """``value`` as Python source that reads back to the same double (``float("inf")`` when not finite)."""
    value = float(value)
    return repr(value) if math.isfinite(value) else f'float("{value}")'


def py_str(value: str | None) -> str:
    """A string (or ``None``) as Python source, in double quotes as ruff formats it.

    Example:
        >>> py_str("same"), py_str(None)
        ('"same"', 'None')
    """
    return "None" if value is None else f'"{value}"'


def script_docstring(title: str, about: Sequence[str], usage: Sequence[str], strict_note: Sequence[str] = ()) -> str:
    """An exported script's module docstring, its quotes included (no newline after the closing ones).

    Args:
        title: The first line.
        about: The paragraph after it: what the script needs and what it reproduces.
        usage: The closing paragraph: how to run it.
        strict_note: In strict mode, the paragraph on the strict formulas it writes (else empty).
    """
    lines = [f'"""{title}', "", *about]
    if strict_note:
        lines += ["", *strict_note]
    return "\n".join([*lines, "", *usage, '"""'])


def refuse(target: str, path: str, what: str, fix: str) -> SpecError:
    """The error for a spec feature ``duofit export --to <target>`` does not write yet.

    The message reads ``<path>: duofit export --to <target> does not support <what> yet; <fix>``.

    Args:
        target: ``"torch"`` or ``"keras"``.
        path: The spec field (``model.layers[2].padding``).
        what: The feature, as the sentence names it (``"'same' pooling"``); no advice in it.
        fix: What the user can do instead (after the semicolon).
    """
    return SpecError(f"{path}: duofit export --to {target} does not support {what} yet; {fix}", path=path)


def refuse_layer_type(target: str, index: int, layer_type: str, table: Iterable[type]) -> SpecError:
    """The error for a layer type an exporter's table (keyed by spec layer classes) has no entry for.

    Example:
        >>> from duofit.common.spec import DenseLayer, DropoutLayer
        >>> error = refuse_layer_type("keras", 3, "gru", [DropoutLayer, DenseLayer])
        >>> error.path, str(error).split("; ")[1]
        ('model.layers[3].type', 'supported: dense, dropout')
    """
    names = sorted(str(cls.model_fields["type"].annotation.__args__[0]) for cls in table)  # type: ignore[attr-defined]
    return refuse(target, f"model.layers[{index}].type", f"layer type {layer_type!r}", "supported: " + ", ".join(names))


def lr_expression(spec: Spec, target: str) -> str | None:
    """The learning rate of 0-based ``epoch`` in closed form, as duofit computes it (None: no schedule).

    The same numbers as ``duofit/common/schedules.py``: torch's schedulers multiply step by step
    and ``CosineAnnealingLR`` climbs back after ``t_max``, so the scripts set the rate per epoch.

    Raises:
        SpecError: a schedule the scripts do not write yet (``optimizer.schedule.type``).

    Example:
        >>> from duofit.common.loader import load_spec
        >>> data = load_spec("examples/seed.toml").model_dump(mode="json", exclude_none=True)
        >>> data["optimizer"]["schedule"] = {"type": "exponential", "gamma": 0.5}
        >>> lr_expression(load_spec(data), "torch")
        '0.01 * 0.5**epoch'
    """
    s, lr0 = spec.optimizer.schedule, py_float(spec.optimizer.lr)
    if s is None:
        return None
    if isinstance(s, StepSchedule):
        return f"{lr0} * {py_float(s.gamma)} ** (epoch // {s.step_size})"
    if isinstance(s, ExponentialSchedule):
        return f"{lr0} * {py_float(s.gamma)}**epoch"  # ruff's spacing of a power of simple operands
    if isinstance(s, CosineSchedule):
        eta, cos = py_float(s.eta_min), f"math.cos(math.pi * min(epoch, {s.t_max}) / {s.t_max})"
        return f"{eta} + ({lr0} - {eta}) * (1 + {cos}) / 2"
    raise refuse(target, "optimizer.schedule.type", f"the {s.type!r} schedule", "use step, exponential or cosine")


def metric_arrays(dataset: Dataset) -> dict[str, np.ndarray]:
    """What the scripts' metrics read besides the bundle: the validation labels, the target scaler.

    A standardized regression target is scaled back for the test metrics, which ``duofit run``
    reports in the target's own units.
    """
    extra = {"y_val": np.asarray(dataset.y_val)}
    scaler = dataset.target_scaler
    if scaler is not None:
        extra["target_mean"] = np.asarray(scaler.mean_, dtype=np.float64)
        extra["target_scale"] = np.asarray(scaler.scale_, dtype=np.float64)
    return extra


def write_script(spec: Spec, out: Path, *, strict: bool, render: Renderer) -> list[Path]:
    """Write the script ``out`` and its arrays ``out.with_suffix(".npz")``; return both paths.

    The arrays are the bundle (:func:`duofit.porting.bundle.bundle_arrays`: prepared data, loss
    targets, batch order, initial weights) plus :func:`metric_arrays`. ``render`` runs before
    anything is written, so a refused spec writes nothing.

    Args:
        spec: The validated spec.
        out: The script's path.
        strict: Strict mode: the spec as ``duofit parity --strict`` trains it (float64,
            :func:`duofit.parity.strict.strict_spec`) is what ``render`` gets.
        render: The exporter's renderer.
    """
    if strict:
        from duofit.parity.strict import strict_spec

        spec, _ = strict_spec(spec)
    out = Path(out)
    npz = out.with_suffix(".npz")
    dataset = load_dataset(spec)
    arrays = {**bundle_arrays(spec), **metric_arrays(dataset)}
    text = render(spec, dataset, arrays, npz.name)
    write_bundle(npz, arrays)
    atomic_write_text(out, text)
    return [out, npz]
