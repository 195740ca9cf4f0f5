"""Assertions for your own test suite: a spec, or two live models, train the same on two frameworks.

Put them in a pytest file of your project and run it in each tox env that has the
frameworks installed; a failure names the first stage that is over its tolerance and the
catalogued causes that explain it, then prints the whole parity report.

Example:
    A test file in your project (needs torch and Keras installed, so not run here):

    >>> from duofit.testing import assert_parity  # doctest: +SKIP
    >>> def test_my_model_trains_the_same():  # doctest: +SKIP
    ...     assert_parity("specs/my_model.toml", backends=("torch", "keras"), strict=True)
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from duofit.common.spec import Spec

if TYPE_CHECKING:
    from duofit.parity.report import ParityReport

__all__ = ["ParityAssertionError", "assert_parity", "assert_same_training", "failure_message"]

# Two imported models hold the same starting point when their weights agree this closely: the
# weights are copied between frameworks, so they are equal up to float32 storage (~6e-8 relative)
SAME_WEIGHTS_RTOL = 1e-6


class ParityAssertionError(AssertionError):
    """Raised by :func:`assert_parity` and :func:`assert_same_training`; ``report`` holds the evidence."""

    def __init__(self, message: str, report: ParityReport | None = None) -> None:
        super().__init__(message)
        self.report = report


def failure_message(report: ParityReport) -> str:
    """The first failing stage, its numbers and causes, then the full report's text."""
    from duofit.parity.report import STAGE_TITLES

    failed = [s for s in report.stages if s.status == "fail"]
    a, b = report.backends
    if not failed:
        return f"parity {a} vs {b} passed"
    first = failed[0]
    causes = ", ".join(f"[{c.id}] {c.title}" for c in first.causes) or "no catalogued cause matches"
    head = (
        f"{a} and {b} do not train the same: first failing stage {STAGE_TITLES[first.stage]}: max relative "
        f"difference {first.max_rel:.3g} > tolerance {first.tolerance:.1g}"
        + (f" ({first.detail})" if first.detail else "")
        + f"; causes: {causes}"
    )
    return head + "\n\n" + report.text()


def assert_parity(
    spec: str | Path | Mapping[str, Any] | Spec,
    backends: Sequence[str] = ("torch", "keras"),
    *,
    dtype: str | None = None,
    strict: bool = False,
    epochs: int | None = None,
    overrides: Mapping[str, Sequence[str]] | None = None,
    out: str | Path | None = None,
) -> ParityReport:
    """Train ``spec`` on two backends from the same weights and batches; fail unless every stage agrees.

    Args:
        spec: A spec file, mapping or :class:`~duofit.Spec` (e.g. from :func:`duofit.from_keras`).
        backends: The two backends to compare.
        dtype: Override ``train.dtype`` (strict mode is float64).
        strict: Identical formulas on both sides where the frameworks differ, tolerances near 1e-12.
        epochs: Override ``train.epochs`` (fewer epochs: a faster test).
        overrides: Per-backend ``FIELD=VALUE`` settings (a deliberate mismatch).
        out: Keep the report and both runs there.

    Returns:
        The :class:`~duofit.parity.report.ParityReport` when parity holds.

    Raises:
        ParityAssertionError: a stage is over its tolerance; the message names the first one and its causes.
    """
    from duofit.parity import parity

    report = parity(
        spec, strict=strict, dtype=dtype, epochs=epochs, backends=tuple(backends), overrides=overrides, out=out
    )
    if not report.passed:
        raise ParityAssertionError(failure_message(report), report)
    return report


def _import(model: Any, base: str | Path | Mapping[str, Any], folder: Path) -> tuple[Spec, str]:
    """The spec of a live model (its weights in ``folder``) and its framework."""
    from duofit.porting.sources import import_source, source_framework

    framework = source_framework(model)
    spec, _, _ = import_source(model, base, folder / f"weights-{framework}-{id(model)}.npz")
    return spec, framework


def _architecture(spec: Spec) -> list[tuple[dict[str, Any], tuple[int, ...]]]:
    """Each layer's settings and the layers it reads: equal for equal models.

    Left out: the name, and how the weights would be drawn (``*_init``): imported weights replace any draw.
    """
    layers = [
        {k: v for k, v in layer.model_dump(exclude={"name", "inputs"}).items() if not k.endswith("_init")}
        for layer in spec.model.layers
    ]
    return list(zip(layers, spec.model.sources, strict=True))


def _first_difference(a: Spec, b: Spec) -> str | None:
    arch_a, arch_b = _architecture(a), _architecture(b)
    if len(arch_a) != len(arch_b):
        return f"{len(arch_a)} layers vs {len(arch_b)}"
    for i, ((la, sa), (lb, sb)) in enumerate(zip(arch_a, arch_b, strict=True)):
        if sa != sb:
            return f"model.layers[{i}] reads layers {list(sa)} vs {list(sb)}"
        for key in sorted(set(la) | set(lb)):
            if la.get(key) != lb.get(key):
                return f"model.layers[{i}].{key}: {la.get(key)!r} vs {lb.get(key)!r} ({la['type']})"
    return None


def _same_start(a: Spec, b: Spec) -> bool:
    from duofit.common.data import load_dataset
    from duofit.common.init import initial_weights

    shape = load_dataset(a).input_shape
    wa, wb = initial_weights(a, shape), initial_weights(b, shape)
    return all(np.allclose(wa[k], wb[k], rtol=SAME_WEIGHTS_RTOL, atol=0.0) for k in wa)


def assert_same_training(
    model_a: Any,
    model_b: Any,
    base: str | Path | Mapping[str, Any],
    *,
    strict: bool = True,
    dtype: str | None = "float64",
    epochs: int | None = None,
    out: str | Path | None = None,
) -> ParityReport:
    """Two live models (a ``keras.Model`` and its ``torch.nn.Module`` port, say) are the same model and train the same.

    Both are imported (:func:`duofit.from_keras` / :func:`duofit.from_torch`); they must
    describe the same layers with the same settings, else the first difference is reported.
    Then ``model_a``'s spec, from ``model_a``'s weights, is trained on both models'
    frameworks and compared stage by stage (``model_b``'s own weights are only compared:
    a port copies them, so they must match ``model_a``'s when both are given).

    Args:
        model_a: A ``keras.Model`` or ``torch.nn.Module``.
        model_b: The other one (or another model of the same framework).
        base: A base spec: the data and the training settings (:func:`duofit.porting.assemble`).
        strict: Identical formulas on both sides (the default: a port should match to ~1e-12).
        dtype: The dtype of the comparison.
        epochs: Override ``train.epochs``.
        out: Keep the report and both runs there.

    Returns:
        The parity report when both checks pass.

    Raises:
        ParityAssertionError: the models differ (layer, setting, or starting weights), or training does.
    """
    with tempfile.TemporaryDirectory(prefix="duofit-testing-") as tmp:  # the imported weights, removed after
        spec_a, fw_a = _import(model_a, base, Path(tmp))
        spec_b, fw_b = _import(model_b, base, Path(tmp))
        diff = _first_difference(spec_a, spec_b)
        if diff is not None:
            raise ParityAssertionError(f"the two models are not the same model: {diff}")
        if not _same_start(spec_a, spec_b):
            raise ParityAssertionError(
                "the two models hold different weights: copy model_a's weights into model_b (or start both from "
                "the same seed) before comparing their training"
            )
        backends = (fw_a, fw_b) if fw_a != fw_b else (fw_a, "torch" if fw_a == "keras" else "keras")
        return assert_parity(spec_a, backends, dtype=dtype, strict=strict, epochs=epochs, out=out)
