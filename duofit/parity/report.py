"""ParityReport: six stages, each with max abs / max rel difference against a named tolerance.

Stages: (a) initial weights as each framework holds them, (b) first forward output (eval
mode, first training batch), (c) first-step loss and per-parameter gradient (train mode),
(d) per-step training-loss trajectory (first step over tolerance), (e) final weights,
(f) final test metrics. A failing stage lists the catalogued causes that match the specs.

Relative differences: elementwise ``|a-b| / max(|a|, |b|)`` for the loss trajectory;
``max|a-b| / max(|a|, |b|)`` over all tensors of a stage (one scale per stage: weights,
gradients, outputs), so that near-zero entries do not dominate; absolute for metrics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from duofit.common.result import RunResult
from duofit.common.spec import DropoutLayer, Spec
from duofit.parity.causes import Cause, matching_causes
from duofit.parity.causes_attention import NULL_GRADIENT, null_gradient_weights
from duofit.parity.causes_precision import BF16_UNIT_ROUNDOFF

__all__ = ["TOLERANCES", "ParityReport", "StageResult", "build_report", "tolerance_key"]

# Tolerances per dtype and stage (relative unless noted).
# float64: unit roundoff 1.1e-16; the two backends differ only in summation order, so one
#   forward/backward pass agrees to ~1e-15; parity requires 1e-12 per step and 1e-10
#   for final weights after 10 epochs. Metrics (absolute) agree unless a prediction flips.
# float32: unit roundoff 6e-8 times O(100) accumulated operations gives ~1e-5 for one pass; the
#   loss trajectory tolerance is 1e-4; final weights accumulate drift
#   over thousands of steps (1e-3); metrics may move by one flipped prediction in a few hundred.
TOLERANCES: dict[str, dict[str, float]] = {
    "float64": {
        "initial_weights": 0.0,
        "forward": 1e-12,
        "first_step": 1e-12,
        "trajectory": 1e-12,
        "final_weights": 1e-10,
        "metrics": 1e-9,
    },
    "float32": {
        "initial_weights": 0.0,
        "forward": 1e-5,
        "first_step": 1e-5,
        "trajectory": 1e-4,
        "final_weights": 1e-3,
        "metrics": 0.01,
    },
    # train.precision = "mixed_bfloat16" (float32 master weights, layers in bfloat16): unit roundoff
    #   u = 2^-8 (duofit.parity.causes_precision.BF16_UNIT_ROUNDOFF); a bfloat16 value that rounds the other
    #   way is 2u = 2^-7 apart. Forward and first step: up to one such step per layer where Keras rounds
    #   twice (bf16_bias_rounding) and per layer of a few layers -> 8u = 3.1e-2, relative to the stage's
    #   largest entry (measured on the seed spec: 0 and 1.1e-3). Trajectory: the weights drift apart by
    #   a bfloat16 rounding of the gradients per step, and a batch's loss relative to itself moves with
    #   the logit margin as the loss gets small -> 32u = 0.125 (seed spec, 2500 steps: 7.6e-2; multiclass
    #   example, 1350 steps: 6.2e-2). Final weights, relative to the largest weight -> 64u = 0.25 (seed:
    #   8.9e-3; multiclass: 0.16, softmax's shift invariance lets weights drift where the loss does not
    #   look). Metrics: a few flipped predictions in a few hundred (0.02; both examples within 2e-5).
    #   Deeper models part chaotically within tens of steps (cause bfloat16_rounding): check few epochs.
    "mixed_bfloat16": {
        "initial_weights": 0.0,
        "forward": 8 * BF16_UNIT_ROUNDOFF,
        "first_step": 8 * BF16_UNIT_ROUNDOFF,
        "trajectory": 32 * BF16_UNIT_ROUNDOFF,
        "final_weights": 64 * BF16_UNIT_ROUNDOFF,
        "metrics": 0.02,
    },
}
STAGE_TITLES = {
    "initial_weights": "(a) initial weights",
    "forward": "(b) first forward output",
    "first_step": "(c) first-step loss and gradients",
    "trajectory": "(d) per-step loss trajectory",
    "final_weights": "(e) final weights",
    "metrics": "(f) final metrics",
}
_TINY = 1e-300


@dataclass
class StageResult:
    """One row of the report."""

    stage: str
    max_abs: float
    max_rel: float
    tolerance: float
    status: str  # "pass", "fail" or "n/a"
    detail: str = ""
    causes: list[Cause] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        """Flat dict for tables and CSV."""
        return {
            "stage": STAGE_TITLES[self.stage],
            "max_abs": self.max_abs,
            "max_rel": self.max_rel,
            "tolerance": self.tolerance,
            "status": self.status,
            "detail": self.detail,
            "causes": ", ".join(c.id for c in self.causes),
        }


def _arrays(pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float]:
    """Max abs difference over all tensors, relative to the largest entry of any tensor.

    One scale for the whole stage: a gradient that is mathematically zero (a bias before
    batch norm) is ~1e-17 in both frameworks and must not count as a 100% difference.
    """
    if not pairs:
        return 0.0, 0.0
    if any(np.shape(a) != np.shape(b) for a, b in pairs):
        return math.inf, math.inf
    diff = max(float(np.max(np.abs(np.asarray(a, np.float64) - b), initial=0.0)) for a, b in pairs)
    scale = max(max(float(np.max(np.abs(a), initial=0.0)), float(np.max(np.abs(b), initial=0.0))) for a, b in pairs)
    return diff, diff / max(scale, _TINY)


def _prefixed(probe: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix) :]: v for k, v in probe.items() if k.startswith(prefix)}


@dataclass
class ParityReport:
    """Parity between two backends on one spec.

    Attributes:
        spec: The spec as run (after strict-mode changes).
        backends: The two backend names compared.
        strict: Whether strict mode was on.
        changes: What strict mode changed (spec and translations).
        stages: One :class:`StageResult` per stage.
        results: The two RunResults (with per-step records).
        folder: Where the runs wrote their results (``folder/<backend>/``), if anywhere.
    """

    spec: Spec
    backends: tuple[str, str]
    strict: bool
    changes: list[str]
    stages: list[StageResult]
    results: dict[str, RunResult]
    folder: Path | None = None

    @property
    def passed(self) -> bool:
        """True when no stage failed."""
        return all(s.status != "fail" for s in self.stages)

    def table(self) -> Any:
        """The stages as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame([s.row() for s in self.stages])

    def text(self) -> str:
        """Human-readable report: table, strict-mode changes, and the causes of failures."""
        a, b = self.backends
        precision = f" ({self.spec.train.precision})" if self.spec.train.precision != "float32" else ""
        mode = "strict" if self.strict else "default"
        lines = [f"parity {a} vs {b}: dtype {self.spec.train.dtype}{precision}, {mode} mode"]
        for change in self.changes:
            lines.append(f"  change: {change}")
        width = max(len(t) for t in STAGE_TITLES.values())
        lines.append(f"  {'stage':<{width}}  {'max abs':>9}  {'max rel':>9}  {'tolerance':>9}  status")
        for s in self.stages:
            lines.append(
                f"  {STAGE_TITLES[s.stage]:<{width}}  {s.max_abs:9.2e}  {s.max_rel:9.2e}  {s.tolerance:9.1e}  "
                f"{s.status.upper()}{'  ' + s.detail if s.detail else ''}"
            )
        failed = [s for s in self.stages if s.status != "pass" and s.causes]
        seen: set[str] = set()
        for s in failed:
            for c in s.causes:
                if c.id in seen:
                    continue
                seen.add(c.id)
                lines.append(
                    f"cause [{c.id}] {c.title}\n    math: {c.math}\n    source: {c.source}\n    duofit: {c.duofit}"
                )
        if any(s.status == "fail" and not s.causes for s in self.stages):
            lines.append("no catalogued cause matches a failing stage: this may be a new framework difference or a bug")
        lines.append("PASS" if self.passed else "FAIL")
        return "\n".join(lines)

    def save(self, folder: str | Path) -> dict[str, Path]:
        """Write ``parity.json``, ``parity.csv``, ``steps.csv`` and ``parity.png`` into ``folder``.

        The two runs' folders (``folder/<backend>/``) are written only when the runs did not
        already write them there (``parity(..., out=folder)`` has each worker write its own).
        """
        from duofit.common.io import atomic_write_text, write_json
        from duofit.parity.plot import plot_trajectories

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        paths = {k: out / f for k, f in (("json", "parity.json"), ("csv", "parity.csv"), ("steps", "steps.csv"))}
        write_json(
            paths["json"],
            {
                "backends": list(self.backends),
                "strict": self.strict,
                "dtype": self.spec.train.dtype,
                "changes": self.changes,
                "passed": self.passed,
                "stages": [s.row() for s in self.stages],
                "causes": {c.id: vars(c) | {"applies": None} for s in self.stages for c in s.causes},
                "spec": self.spec.model_dump(mode="json"),
            },
        )
        atomic_write_text(paths["csv"], self.table().to_csv(index=False))
        atomic_write_text(paths["steps"], self.steps_frame().to_csv(index=False))
        paths["plot"] = plot_trajectories(self, out / "parity.png")
        if self.folder is None or self.folder.resolve() != out.resolve():
            for name, res in self.results.items():
                res.save(out / name)
        return paths

    def steps_frame(self) -> Any:
        """Per-step records of both backends side by side, with the relative loss difference."""
        import pandas as pd

        a, b = (self.results[n].steps for n in self.backends)
        n = min(len(a.get("loss", [])), len(b.get("loss", [])))
        frame = pd.DataFrame({"step": np.arange(1, n + 1)})
        for name, steps in zip(self.backends, (a, b), strict=True):
            for key, arr in steps.items():
                frame[f"{name}_{key}"] = arr[:n]
        la, lb = a["loss"][:n], b["loss"][:n]
        with np.errstate(invalid="ignore"):  # a diverged run's inf - inf is NaN: a gap in the plot
            frame["loss_rel_diff"] = np.abs(la - lb) / np.maximum(np.maximum(np.abs(la), np.abs(lb)), _TINY)
        return frame


def _stage_trajectory(ra: RunResult, rb: RunResult, tol: float, steps_per_epoch: int) -> StageResult:
    la, lb = ra.steps["loss"], rb.steps["loss"]
    n = min(len(la), len(lb))
    if n == 0:
        return StageResult("trajectory", math.nan, math.nan, tol, "n/a", "no steps recorded")
    la, lb = la[:n], lb[:n]
    diff = np.abs(la - lb)
    rel = diff / np.maximum(np.maximum(np.abs(la), np.abs(lb)), _TINY)
    rel = np.where(np.isnan(rel), np.inf, rel)
    bad = np.flatnonzero(rel > tol)
    detail = f"{n} steps"
    if len(la) != len(lb):
        detail += f" (step counts differ: {len(la)} vs {len(lb)})"
    if bad.size:
        first = int(bad[0])
        epoch, batch = divmod(first, steps_per_epoch)
        detail = f"first step over tolerance: {first + 1} (epoch {epoch + 1}, batch {batch + 1}) of {n}"
    status = "fail" if bad.size or len(la) != len(lb) else "pass"
    return StageResult("trajectory", float(np.nanmax(diff)), float(np.max(rel)), tol, status, detail)


def _stage_final_weights(spec: Spec, ra: RunResult, rb: RunResult, tol: float) -> StageResult:
    """Every weight but those whose exact gradient is zero, which are listed apart with their difference."""
    apart = set(null_gradient_weights(spec)) & set(ra.weights)
    kept = [k for k in ra.weights if k not in apart]
    mx = _arrays([(ra.weights[k], rb.weights.get(k, np.array(math.inf))) for k in kept])
    detail = f"{len(kept)} tensors"
    if apart:
        worst = max(_arrays([(ra.weights[k], rb.weights.get(k, np.array(math.inf)))])[0] for k in apart)
        detail += f"; apart: {len(apart)} key biases with a zero gradient, max abs diff {worst:.1e} ({NULL_GRADIENT})"
    return StageResult("final_weights", *mx, tol, "", detail)


def tolerance_key(spec: Spec) -> str:
    """The row of :data:`TOLERANCES` for a spec: its mixed precision policy, else its dtype.

    Example:
        >>> from duofit.common.loader import load_spec
        >>> spec = load_spec("examples/seed.toml")
        >>> tolerance_key(spec), TOLERANCES[tolerance_key(spec)]["trajectory"]
        ('float32', 0.0001)
    """
    return spec.train.precision if spec.train.precision != "float32" else spec.train.dtype


def build_report(
    spec_a: Spec,
    spec_b: Spec,
    backends: tuple[str, str],
    probes: dict[str, dict[str, np.ndarray]],
    results: dict[str, RunResult],
    strict: bool,
    changes: list[str],
    steps_per_epoch: int,
) -> ParityReport:
    """Compare two backends' probes and runs, stage by stage."""
    a, b = backends
    tol = TOLERANCES[tolerance_key(spec_a)]
    pa, pb = probes[a], probes[b]
    stages: list[StageResult] = []

    wa, wb = _prefixed(pa, "initial_weights/"), _prefixed(pb, "initial_weights/")
    mx = _arrays([(wa[k], wb.get(k, np.array(math.inf))) for k in wa])
    stages.append(StageResult("initial_weights", *mx, tol["initial_weights"], "", f"{len(wa)} tensors"))

    stages.append(StageResult("forward", *_arrays([(pa["forward"], pb["forward"])]), tol["forward"], "", "eval mode"))

    ga, gb = _prefixed(pa, "first_step/"), _prefixed(pb, "first_step/")
    mx = _arrays([(ga[k], gb.get(k, np.array(math.inf))) for k in ga])
    stages.append(StageResult("first_step", *mx, tol["first_step"], "", f"loss + {len(ga) - 1} gradients"))

    ra, rb = results[a], results[b]
    stages.append(_stage_trajectory(ra, rb, tol["trajectory"], steps_per_epoch))

    stages.append(_stage_final_weights(spec_a, ra, rb, tol["final_weights"]))

    diffs = {k: abs(ra.metrics[k] - rb.metrics.get(k, math.nan)) for k in ra.metrics}
    worst = max(diffs.values(), default=0.0)
    detail = ", ".join(f"{k} {ra.metrics[k]:.4f}/{rb.metrics[k]:.4f}" for k in ra.metrics)
    stages.append(StageResult("metrics", worst, worst, tol["metrics"], "", detail))

    dropout = any(isinstance(layer, DropoutLayer) and layer.rate > 0 for layer in spec_a.model.layers)
    for s in stages:
        if not s.status:
            s.status = "pass" if s.max_rel <= s.tolerance else "fail"
        if s.stage == "metrics" and s.status == "fail":
            s.status = "pass" if s.max_abs <= s.tolerance else "fail"
        if dropout and s.stage in ("first_step", "trajectory", "final_weights", "metrics"):
            s.status, s.detail = "n/a", "dropout: each framework draws its own masks (compared at eval only)"
        if s.status != "pass":
            s.causes = matching_causes(spec_a, spec_b, strict, s.stage, tuple(backends))
    return ParityReport(spec_a, backends, strict, changes, stages, results)
