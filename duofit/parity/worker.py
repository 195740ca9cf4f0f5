"""Parity worker: ``python -m duofit.parity.worker SPEC.json BACKEND OUTDIR [--strict]``.

In a fresh process (one per Keras backend), it records everything the report compares:
initial weights read back from the framework, the first forward output (eval mode), the
first batch's loss and gradients (train mode), then a full training run with per-step
records. Writes ``OUTDIR/probe.npz`` and the RunResult files; ``OUTDIR/error.json`` on a
DuofitError.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from duofit.common.errors import DuofitError
from duofit.common.io import save_npz, write_json

__all__ = ["main", "probe"]


def probe(spec_json: str, backend: str, strict: bool) -> dict[str, np.ndarray]:
    """Stages (a)-(c) for one backend, as named arrays."""
    from duofit.backends.base import make_plan
    from duofit.common.data import load_dataset
    from duofit.common.registry import backend_module
    from duofit.common.spec import Spec

    spec = Spec.model_validate_json(spec_json)
    probe_mod = backend_module(backend, "probe")  # the backend package sets KERAS_BACKEND etc. first
    plan = make_plan(spec, load_dataset(spec), strict=strict)
    first = plan.order[0, : spec.train.batch_size]
    x, t = plan.dataset.x_train[first], plan.t_train[first]
    out: dict[str, np.ndarray] = {}
    for name, arr in probe_mod.roundtrip(spec, plan.weights, strict=strict).items():
        out[f"initial_weights/{name}"] = arr
    out["forward"] = probe_mod.forward(spec, plan.weights, x, strict=strict)
    loss, grads = probe_mod.gradients(spec, plan.weights, x, t, strict=strict)
    out["first_step/loss"] = np.asarray(loss)
    for name, arr in grads.items():
        out[f"first_step/{name}"] = arr
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    strict = "--strict" in args
    spec_path, backend, outdir = [a for a in args if a != "--strict"]
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    from duofit.runner import run

    try:
        spec_json = Path(spec_path).read_text(encoding="utf-8")
        save_npz(out / "probe.npz", probe(spec_json, backend, strict))
        from duofit.common.spec import Spec

        run(Spec.model_validate_json(spec_json), backend, out=out / "run", record_steps=True, strict=strict)
    except DuofitError as exc:
        write_json(out / "error.json", {"type": type(exc).__name__, "message": str(exc)})
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
