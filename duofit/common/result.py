"""RunResult: what every backend returns, saved and loaded as plain files (CSV, JSON, npz).

Example:
    Not run as a doctest: it trains a model and writes files.

    >>> res = duofit.run(spec, backend="torch")          # doctest: +SKIP
    >>> res.save("results/seed/torch")                   # doctest: +SKIP
    >>> RunResult.load("results/seed/torch").metrics     # doctest: +SKIP
    {'accuracy': 0.9, ...}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from duofit.common.io import load_npz, save_npz, write_json
from duofit.common.metrics.positive import ClassOrder
from duofit.common.optstate import OPTIMIZER_FILE, OptimizerState, load_state, save_state
from duofit.common.spec import Spec

__all__ = ["RESULT_FILE", "RESULT_SCHEMA", "RunResult"]

RESULT_SCHEMA = 1  # bump when the saved layout changes
RESULT_FILE = "result.json"  # written last: its presence marks a complete result


@dataclass
class RunResult:
    """One training run on one backend.

    Attributes:
        backend: Backend name (``torch``, ``keras``).
        spec: The spec that was run.
        history: pandas DataFrame, one row per epoch: ``epoch, loss, val_loss, val_<metric>..., epoch_s``.
            ``loss`` is the sample-weighted mean of the batch losses (regularisation included);
            ``val_loss`` the data loss on the whole validation split.
        metrics: Final test metrics from the shared sklearn reference.
        predictions: Raw model outputs on the test split (logits or probabilities per the loss).
        y_test: Test targets (class indices or values).
        timings: Seconds: ``total_s``, ``build_s``, ``fit_s``, ``first_epoch_s``, ``steady_epoch_s``, ``predict_s``,
            ``compile_s`` (first epoch minus the steady epoch: tracing and compilation), ``startup_s``
            (before training began: the framework's import, the data and the plan; in a ``compare``
            worker also the interpreter's start and imports, counted from when the parent started it).
        environment: Framework versions, device, threads, flags.
        weights: Final weights ``layers.<i>.<name>`` in the Keras layout.
        best_epoch: Epoch chosen by early stopping (1-based), if any.
        stopped_epoch: Epoch where training stopped early (1-based), if it did.
        diverged: True when the loss became non-finite or exceeded ``train.divergence_threshold``
            times the loss of a model that learned nothing.
        message: Human-readable note (divergence reason).
        steps: Per-step records (``loss``; with ``record_steps`` also ``grad_norm`` and
            ``param_norm``), one entry per optimizer step.
        diagnostics: The pitfall rules' evidence with their thresholds, the one ``verdict``
            (see :attr:`verdict`) and spec warnings (see :mod:`duofit.common.diagnostics`).
        class_order: Classification: index -> original label, and the class binary metrics
            score as positive (:mod:`duofit.common.metrics.positive`); ``None`` for regression.
        optimizer_state: The optimizer state after the last step (``optimizer.npz``, what
            ``duofit run --resume-from`` continues from); ``None`` when the final weights are not
            the last step's (early stopping restored the best epoch, or training diverged).
    """

    backend: str
    spec: Spec
    history: Any
    metrics: dict[str, float]
    predictions: np.ndarray
    y_test: np.ndarray
    timings: dict[str, float]
    environment: dict[str, Any]
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    best_epoch: int | None = None
    stopped_epoch: int | None = None
    diverged: bool = False
    message: str | None = None
    steps: dict[str, np.ndarray] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    class_order: ClassOrder | None = None
    optimizer_state: OptimizerState | None = None

    def events(self) -> dict[str, int | None]:
        """Epochs to mark on learning curves: early-stop best/stop, divergence."""
        return {
            "best": self.best_epoch,
            "stopped": None if self.diverged else self.stopped_epoch,
            "diverged": self.stopped_epoch if self.diverged else None,
        }

    @property
    def verdict(self) -> dict[str, Any]:
        """The run's one verdict: ``{"name", "message", "fix", "epoch"}`` (see :mod:`duofit.common.verdict`)."""
        from duofit.common.verdict import fallback_verdict

        found = self.diagnostics.get("verdict")
        return dict(found) if isinstance(found, dict) else fallback_verdict(self.diverged, self.message)

    def flags(self) -> list[str]:
        """The verdict as a list of pitfall names: empty when fine; a diverged run also shows ``exploding``."""
        name = self.verdict["name"]
        return [] if name == "fine" else [name, "exploding"] if name == "diverged" else [name]

    def summary(self) -> dict[str, Any]:
        """Flat dict for tables: backend, metrics, epochs run, times (``startup_s``, ``fit_s``, ``total_s``)."""
        out: dict[str, Any] = {"backend": self.backend}
        out.update(self.metrics)
        out["epochs"] = len(self.history)
        if len(self.history):
            out["final_loss"] = float(self.history["loss"].iloc[-1])
            out["final_val_loss"] = float(self.history["val_loss"].iloc[-1])
        out["startup_s"] = self.timings.get("startup_s", float("nan"))  # absent in results saved before it was
        out["fit_s"] = self.timings.get("fit_s", float("nan"))
        out["total_s"] = self.timings.get("total_s", float("nan"))
        out["diverged"] = self.diverged
        out["verdict"] = self.verdict["name"]
        return out

    def save(self, folder: str | Path) -> Path:
        """Write the result into ``folder`` (created), each file atomically.

        Files: history.csv, spec.json, weights.npz, optimizer.npz (with an optimizer state),
        predictions.npz, steps.npz, and last
        result.json, which marks the result complete: it is removed first, so a run killed
        while saving leaves a folder that :meth:`load` refuses rather than a mix of old and
        new files.
        """
        from duofit.common.io import atomic_write_text

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        (out / RESULT_FILE).unlink(missing_ok=True)
        atomic_write_text(out / "history.csv", self.history.to_csv(index=False))
        atomic_write_text(out / "spec.json", self.spec.model_dump_json(indent=2))
        save_npz(out / "weights.npz", self.weights)
        if self.optimizer_state is not None:
            save_state(out, self.optimizer_state)
        else:  # a previous run's state would not belong to these weights
            (out / OPTIMIZER_FILE).unlink(missing_ok=True)
        save_npz(out / "predictions.npz", {"predictions": self.predictions, "y_test": self.y_test, **self._classes()})
        save_npz(out / "steps.npz", self.steps)
        write_json(
            out / RESULT_FILE,
            {
                "schema": RESULT_SCHEMA,
                "backend": self.backend,
                "metrics": self.metrics,
                "timings": self.timings,
                "environment": self.environment,
                "best_epoch": self.best_epoch,
                "stopped_epoch": self.stopped_epoch,
                "diverged": self.diverged,
                "message": self.message,
                "diagnostics": self.diagnostics,
                "class_order": self.class_order.to_json() if self.class_order is not None else None,
            },
        )
        return out

    def _classes(self) -> dict[str, np.ndarray]:
        """``classes`` (label of each index) and, binary, ``positive`` (its index) for predictions.npz."""
        order = self.class_order
        if order is None:
            return {}
        labels = np.asarray(order.classes)
        extra = {"classes": labels.astype(str) if labels.dtype == object else labels}
        return extra if order.positive is None else {**extra, "positive": np.asarray(order.positive)}

    @classmethod
    def load(cls, folder: str | Path) -> RunResult:
        """Read a result written by :meth:`save`."""
        import pandas as pd

        folder = Path(folder)
        meta = json.loads((folder / RESULT_FILE).read_text(encoding="utf-8"))
        spec = Spec.model_validate_json((folder / "spec.json").read_text(encoding="utf-8"))
        preds = load_npz(folder / "predictions.npz")
        nan = float("nan")
        return cls(
            backend=meta["backend"],
            spec=spec,
            history=pd.read_csv(folder / "history.csv"),
            metrics={k: (nan if v is None else float(v)) for k, v in meta["metrics"].items()},
            predictions=preds["predictions"],
            y_test=preds["y_test"],
            timings={k: (nan if v is None else float(v)) for k, v in meta["timings"].items()},
            environment=meta["environment"],
            weights=load_npz(folder / "weights.npz"),
            best_epoch=meta.get("best_epoch"),
            stopped_epoch=meta.get("stopped_epoch"),
            diverged=bool(meta.get("diverged", False)),
            message=meta.get("message"),
            steps=load_npz(folder / "steps.npz") if (folder / "steps.npz").exists() else {},
            diagnostics=meta.get("diagnostics", {}),
            class_order=ClassOrder.from_json(meta.get("class_order")),
            optimizer_state=load_state(folder) if (folder / OPTIMIZER_FILE).exists() else None,
        )
