"""Worker process: ``python -m duofit.worker SPEC.json BACKEND OUTDIR [--progress]``.

Runs one backend in a fresh interpreter and writes the RunResult files into OUTDIR, or
``OUTDIR/error.json`` (type, message) with a non-zero exit code. Used by ``compare`` so
that each Keras backend gets its own process.
"""

from __future__ import annotations

import sys
from pathlib import Path

from duofit.common.isolated import report_errors

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    show = "--progress" in args
    args = [a for a in args if a != "--progress"]
    spec_path, backend, outdir = args
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    from duofit.common.spec import Spec
    from duofit.runner import run

    def body() -> None:
        spec = Spec.model_validate_json(Path(spec_path).read_text(encoding="utf-8"))
        progress = None
        if show:
            from duofit.common.plots import progress_bar

            progress = progress_bar(backend, spec.train.epochs)
        run(spec, backend, progress=progress, out=out)

    return report_errors(out, body)


if __name__ == "__main__":
    sys.exit(main())
