"""Command line: ``duofit run|compare|backends|validate|schema``.

Exit codes: 0 success, 2 bad input (spec, data, backend), 3 training diverged,
1 unexpected internal error, 130 interrupted. Errors are printed as one paragraph
without a traceback (set ``DUOFIT_DEBUG=1`` to see it).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import warnings
from pathlib import Path
from typing import Any

from duofit._version import __version__
from duofit.common.errors import report_errors_to_stderr, show_warnings_plainly

__all__ = ["main"]

EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


def _default_out(spec_path: str, spec: Any) -> Path:
    return Path("results") / (spec.name or Path(spec_path).stem)


def _print_frame(frame: Any) -> None:
    import pandas as pd

    with pd.option_context("display.max_columns", 50, "display.width", 160, "display.float_format", "{:.4f}".format):
        print(frame.to_string())


def _print_diagnostics(name: str, res: Any, always: bool = True) -> None:
    """The run's one verdict (``always``: also when it is "fine") and its spec warnings."""
    from duofit.common.verdict import describe

    if always or res.verdict["name"] != "fine":
        print(f"  [{name}] verdict: {describe(res.verdict)}")
    for warning in res.diagnostics.get("warnings", []):
        print(f"  [{name}] warning: {warning}")


def _print_classes(res: Any) -> None:
    """The class order and the binary metrics' positive class, unless the labels are plain 0..k-1."""
    order = getattr(res, "class_order", None)
    if order is not None and not order.plain:
        print(order.line())


def _cmd_run(args: argparse.Namespace) -> int:
    from duofit.common.errors import SpecError
    from duofit.common.loader import load_spec
    from duofit.common.plots import plot_histories, progress_bar
    from duofit.runner import run

    spec = load_spec(args.spec)
    out = Path(args.out) if args.out else _default_out(args.spec, spec) / args.backend
    if args.resume_from and not args.out:  # never over the folder it resumes from
        out = out.with_name(f"{out.name}-resumed")
    if args.resume_from and out.resolve() == Path(args.resume_from).resolve():
        raise SpecError(f"--out: {out} is the folder training resumes from; give another --out", path="out")
    progress = None if args.quiet else progress_bar(args.backend, spec.train.epochs)
    res = run(spec, args.backend, progress=progress, out=out, resume_from=args.resume_from)
    if args.resume_from:
        state = res.optimizer_state
        print(f"resumed from {args.resume_from} after epoch {int(res.history['epoch'].iloc[0]) - 1}", end="")
        print(f"; optimizer state after step {state.step} in {out}/optimizer.npz" if state is not None else "")
    plot_histories({args.backend: res.history}, out / "loss_curves.png", spec.name or "", {args.backend: res.events()})
    print(f"backend: {args.backend} ({res.environment.get('framework')}), device: {res.environment.get('device')}")
    if res.diverged:
        note = " (diverged)"
    elif res.stopped_epoch:
        note = f" (early stop; best epoch {res.best_epoch})"
    else:
        note = ""
    print(f"epochs run: {len(res.history)}{note}")
    if len(res.history):
        last = res.history.iloc[-1]
        units = " (on the standardized target)" if spec.data.standardize_target else ""
        print(f"final train loss {last['loss']:.4f}, validation loss {last['val_loss']:.4f}{units}")
    for name, value in res.metrics.items():
        print(f"  test {name:<10} {value:.4f}")
    _print_classes(res)
    _print_diagnostics(args.backend, res)
    print(f"fit {res.timings['fit_s']:.2f} s, total {res.timings['total_s']:.2f} s; results in {out}/")
    if res.diverged:
        print(f"error: {res.message}", file=sys.stderr)
        return EXIT_DIVERGED
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from duofit.common.choice import parse_names
    from duofit.common.loader import load_spec
    from duofit.runner import ComparisonInterrupted, compare

    spec = load_spec(args.spec)
    names = parse_names(args.backends)
    out = Path(args.out) if args.out else _default_out(args.spec, spec)
    try:
        cmp = compare(spec, names, out=out, isolate=not args.in_process, progress=not args.quiet, jobs=args.jobs)
    except ComparisonInterrupted as stop:
        return _compare_interrupted(stop, out)
    for name, reason in cmp.skipped.items():
        print(f"skipped {name}: {reason}")
    _print_frame(cmp.table())
    print("metrics: the same sklearn reference code on every backend's test predictions")
    _print_classes(next(iter(cmp.results.values()), None))  # one dataset: the same classes on every backend
    for name, res in cmp.results.items():
        _print_diagnostics(name, res, always=False)  # the table's verdict column shows the fine ones
    at_once = f"{cmp.jobs} backends at a time" if cmp.jobs > 1 else "one backend at a time"
    print(f"wall {cmp.wall_s:.1f} s, {at_once} (--jobs); startup_s: worker start, framework import and data")
    print(f"written: {out}/compare.csv, {out}/history.csv, {out}/loss_curves.png, {out}/<backend>/")
    diverged = [n for n, r in cmp.results.items() if r.diverged]
    for name in diverged:
        print(f"error: {name}: {cmp.results[name].message}", file=sys.stderr)
    return EXIT_DIVERGED if diverged else 0


def _compare_interrupted(stop: Any, out: Path) -> int:
    """Ctrl-C during ``compare``: say which backends finished (their results are kept) and which did not."""
    done = list(stop.comparison.results)
    kept = f"; kept: {out}/compare.csv and {out}/<backend>/ for {', '.join(done)}" if done else ""
    print(f"interrupted: not finished: {', '.join(stop.unfinished)}{kept}", file=sys.stderr)
    return EXIT_INTERRUPTED


def _cmd_backends(args: argparse.Namespace) -> int:
    from duofit.common.backends_info import backend_rows

    rows = backend_rows(devices=args.devices)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    name_w = max(len(row["name"]) for row in rows)  # columns as wide as their longest entry
    framework_w = max(len(row["framework"]) for row in rows)
    for row in rows:
        status = (
            f"installed ({row['versions']})" if row["installed"] else f"missing: pip install 'duofit[{row['extra']}]'"
        )
        print(f"{row['name']:<{name_w}}  {row['framework']:<{framework_w}}  {status}")
        if row.get("devices"):
            print(f"{'':<{name_w}}  devices: {', '.join(row['devices'])}")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    import numpy as np

    from duofit.common.data import load_dataset
    from duofit.common.data.targets import split_warnings
    from duofit.common.diagnostics import spec_warnings
    from duofit.common.loader import load_spec
    from duofit.common.metrics import bind_positive, class_order

    spec = load_spec(args.spec)
    ds = load_dataset(spec)
    order = class_order(ds.task, ds.classes, ds.y_train)
    bind_positive(spec.metric_entries, order)  # a pos_label that is no class fails here, as `run` would
    print(
        f"{args.spec}: valid. task {ds.task}, {ds.n_features} features, "
        f"{len(ds.x_train)} train / {len(ds.x_val) if not ds.val_is_test else 0} validation / "
        f"{len(ds.x_test)} test samples"
    )
    if order is not None and not order.plain:
        print(order.line())
    integer_target = bool(np.all(ds.y_train == np.round(ds.y_train)))  # as `run`'s diagnostics decide it
    notes = spec_warnings(spec, integer_target) + split_warnings(spec, ds.y_val, ds.y_test, ds.val_is_test, ds.classes)
    for note in notes:
        print(f"warning: {note}")
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    from duofit.common.spec import Spec

    print(json.dumps(Spec.model_json_schema(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(prog="duofit", description="Compile one spec to PyTorch and Keras; compare them.")
    parser.add_argument("--version", action="version", version=f"duofit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="train a spec on one backend")
    p.add_argument("spec", help="spec file (.toml or .json)")
    p.add_argument("--backend", "-b", default="torch", help="backend name (see `duofit backends`); default torch")
    p.add_argument("--out", "-o", help="output folder (default results/<spec name>/<backend>)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument(
        "--resume-from",
        metavar="FOLDER",
        help="continue training from a run or `duofit convert` folder (its weights and optimizer.npz) "
        "up to train.epochs, on any backend (default --out: results/<name>/<backend>-resumed)",
    )
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("compare", help="train a spec on every installed backend, side by side")
    p.add_argument("spec", help="spec file (.toml or .json)")
    p.add_argument("--backends", help="comma-separated backend names (default: all installed)")
    p.add_argument("--out", "-o", help="output folder (default results/<spec name>)")
    p.add_argument("--in-process", action="store_true", help="run backends in this process (default: one process each)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.add_argument(
        "--jobs",
        "-j",
        type=int,
        metavar="N",
        help="backends trained at the same time, one process each (default: one per two cores); each gets "
        "cores // N intra-op threads unless train.threads is set; results are the same for any N",
    )
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("backends", help="list backends, installed versions and devices")
    p.add_argument("--devices", action="store_true", help="also import each framework and list its devices (slow)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_backends)

    p = sub.add_parser("validate", help="check a spec and its data without training")
    p.add_argument("spec")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("schema", help="print the spec's JSON schema")
    p.set_defaults(func=_cmd_schema)

    for module in _COMMAND_MODULES:  # feature packages add their own subcommands
        try:
            importlib.import_module(module).add_commands(sub)
        except ModuleNotFoundError as exc:
            if not exc.name or not module.startswith(exc.name):
                raise
    for command in sub.choices.values():  # every command, the workers it starts included
        command.add_argument("--verbose", action="store_true", help="show the frameworks' start-up logs")
    return parser


# Each module defines ``add_commands(subparsers)``; their handlers follow this file's
# conventions (return an exit code, raise DuofitError subclasses for bad input).
_COMMAND_MODULES = ("duofit.parity.cli", "duofit.porting.cli", "duofit.tuning.cli", "duofit.bench.cli")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code.

    Example:
        >>> main(["validate", "examples/seed.toml"])
        examples/seed.toml: valid. task binary, 2 features, 800 train / 0 validation / 200 test samples
        0
    """
    args = build_parser().parse_args(argv)
    if args.verbose:
        from duofit.common.verbosity import set_verbose

        set_verbose(True)  # inherited by the worker processes
    with warnings.catch_warnings():  # duofit's warnings as "warning: ..." lines, for this command only
        show_warnings_plainly()
        return report_errors_to_stderr(lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
