"""The loop of an exported torch script: ``train_epoch``, evaluation, and ``main`` with the epoch loop.

Written as a tutorial writes it (``model.train()``, ``optimizer.zero_grad()``, ``loss.backward()``,
``optimizer.step()``; ``model.eval()`` under ``torch.no_grad()``), with what duofit's torch trainer
(``duofit/backends/torch/trainer.py``) and its shared epoch rules (``duofit/common/history.py``)
add, each with a comment in the script: see :mod:`duofit.porting.torch_train_code`.

Example:
    >>> from duofit.common.loader import load_spec
    >>> src = train_epoch_function(load_spec("examples/seed.toml"), strict=False, weighted=False, penalty=False)
    >>> "optimizer.zero_grad()" in src and "loss.backward()" in src
    True
"""

from __future__ import annotations

import textwrap

import numpy as np

from duofit.common.data import Dataset
from duofit.common.spec import AdamOptimizer, AdamWOptimizer, Spec

__all__ = ["main_function", "train_epoch_function"]


_WIDTH = 120  # the project's ruff line length


def _indent(lines: list[str], n: int) -> list[str]:
    return [" " * n + line if line else "" for line in lines]


def _call(prefix: str, call: str, indent: int) -> list[str]:
    """``prefix + call`` on one line when it fits in ruff's 120 columns, else one argument a line (trailing comma)."""
    if indent + len(prefix) + len(call) <= _WIDTH:
        return [prefix + call]
    name, args = call.split("(", 1)
    parts, depth, current = [], 0, ""
    for ch in args[:-1]:  # split on the top-level commas
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    parts.append(current.strip())
    return [f"{prefix}{name}(", *[f"    {p}," for p in parts], ")"]


def _update(spec: Spec, strict: bool) -> list[str]:
    """Between ``backward`` and ``step``: clipping, then the decoupled decay torch's SGD/RMSprop lack."""
    opt = spec.optimizer
    lines = []
    if opt.clipnorm is not None and strict:
        lines.append(f"clip_by_global_norm(params, {opt.clipnorm!r})  # optimizer.clipnorm, Keras' formula")
    elif opt.clipnorm is not None:
        lines.append(f"nn.utils.clip_grad_norm_(params, max_norm={opt.clipnorm!r})  # optimizer.clipnorm")
    if opt.clipvalue is not None:
        lines.append(f"nn.utils.clip_grad_value_(params, clip_value={opt.clipvalue!r})  # optimizer.clipvalue")
    manual = opt.decay_kind == "decoupled" and not isinstance(opt, (AdamOptimizer, AdamWOptimizer)) and not strict
    if manual and opt.weight_decay:
        lines += [
            "with torch.no_grad():  # decoupled weight decay (as AdamW, which torch has only for Adam)",
            "    for p in params:",
            f'        p.mul_(1.0 - optimizer.param_groups[0]["lr"] * {opt.weight_decay!r})',
        ]
    return lines


def train_epoch_function(spec: Spec, *, strict: bool, weighted: bool, penalty: bool) -> str:
    """The source of ``train_epoch(model, optimizer, x, t, order[, w])``: one epoch of steps."""
    update = _update(spec, strict)
    opt_type = "StrictOptimizer" if strict else "torch.optim.Optimizer"
    args = ["model: Net", f"optimizer: {opt_type}", "x: torch.Tensor", "t: torch.Tensor", "order: torch.Tensor"]
    if weighted:
        args.append("w: torch.Tensor")
    if weighted:
        loss = [
            "out = model(x[batch])",
            "# Keras' weighted loss: sum(loss_i * w_i) / batch size (not / sum of the weights),",
            "# a sample's loss being the mean over its outputs",
            "per_sample = SAMPLE_LOSS(out, t[batch]).reshape(len(batch), -1).mean(dim=1)",
            "loss = (per_sample * w[batch]).sum() / len(batch)",
        ]
    else:
        loss = ["loss = LOSS(model(x[batch]), t[batch])"]
    if penalty:
        loss.append("loss = loss + penalty(model)")
    lines = [
        "def train_epoch(",
        *[f"    {arg}," for arg in args],
        ") -> list[float]:",
        '    """One pass over the training data in the epoch\'s sample order; returns every step\'s loss."""',
        "    model.train()",
        *(["    params = [p for p in model.parameters() if p.requires_grad]"] if update else []),
        "    losses = []",
        "    for start in range(0, len(order), BATCH_SIZE):",
        "        batch = order[start : start + BATCH_SIZE]  # the batches every duofit backend trains on",
        "        optimizer.zero_grad()",
        *_indent(loss, 8),
        "        loss.backward()",
        *_indent(update, 8),
        "        optimizer.step()",
        "        losses.append(loss.item())",
        "    return losses",
    ]
    return "\n".join(lines) + "\n"


def _inputs(arrays: dict[str, np.ndarray]) -> list[str]:
    x, t = arrays.get("x_train"), arrays.get("t_train")
    if x is not None and x.dtype.kind in "iu":
        doc, expr = "Token ids as int64, what nn.Embedding looks up.", "torch.from_numpy(x).to(DEVICE, torch.long)"
    elif x is not None and x.ndim == 4:
        doc = "Images as a tensor: NHWC (Keras' layout, as stored) -> NCHW (nn.Conv2d's)."
        expr = "torch.from_numpy(x).to(DEVICE, DTYPE).permute(0, 3, 1, 2).contiguous()"
    else:
        doc, expr = "Features as a tensor.", "torch.from_numpy(x).to(DEVICE, DTYPE)"
    if t is not None and t.dtype.kind in "iu":
        tdoc, texpr = "Class indices stay int64, as the loss reads them.", "torch.from_numpy(t).to(DEVICE)"
    else:
        tdoc, texpr = "Loss targets in DTYPE.", "torch.from_numpy(t).to(DEVICE, DTYPE)"
    return [
        "def as_input(x: np.ndarray) -> torch.Tensor:",
        f'    """{doc}"""',
        f"    return {expr}",
        "",
        "",
        "def as_target(t: np.ndarray) -> torch.Tensor:",
        f'    """{tdoc}"""',
        f"    return {texpr}",
        "",
        "",
        "@torch.no_grad()",
        "def evaluate(model: Net, x: torch.Tensor, t: torch.Tensor) -> tuple[float, np.ndarray]:",
        '    """Loss and raw outputs in eval mode (no dropout; batch norm\'s running statistics)."""',
        "    model.eval()",
        "    out = model(x)",
        "    return LOSS(out, t).item(), out.cpu().numpy()",
        "",
        "",
        "@torch.no_grad()",
        "def predict(model: Net, x: torch.Tensor) -> np.ndarray:",
        '    """Raw outputs in eval mode."""',
        "    model.eval()",
        "    return model(x).cpu().numpy()",
    ]


def _early_stopping(spec: Spec) -> tuple[list[str], list[str], list[str]]:
    """(state before the loop, the check after an epoch, the restore after it) for ``train.early_stopping``."""
    es = spec.train.early_stopping
    if es is None:
        return [], [], []
    mode = spec.monitor_mode()
    better = "value + MIN_DELTA < best" if mode == "min" else "value - MIN_DELTA > best"
    start = [
        f'MONITOR, PATIENCE, MIN_DELTA = "{es.monitor}", {es.patience}, {es.min_delta!r}  # train.early_stopping',
        f"best, best_epoch, best_state, wait = {'math.inf' if mode == 'min' else '-math.inf'}, None, None, 0",
    ]
    check = [
        "value = row.get(MONITOR, math.nan)",
        f"if math.isfinite(value) and {better}:  # Keras' rule: better by more than min_delta",
        "    best, best_epoch, wait = value, epoch + 1, 0",
        "    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}",
        "else:",
        "    wait += 1",
        "    if wait >= PATIENCE and epoch > 0:  # Keras never stops after the first epoch",
        '        print(f"early stopping: no improvement of {MONITOR} for {PATIENCE} epochs")',
        "        break",
    ]
    restore = []
    if es.restore_best:
        restore = [
            "if best_state is not None and not diverged:  # restore_best: the best epoch's weights",
            "    model.load_state_dict(best_state)",
        ]
    return start, check, restore


# the spec's metrics on the validation split after every epoch (compute_metrics: duofit's definitions)
_VAL_METRICS = 'row.update({f"val_{k}": v for k, v in compute_metrics(METRICS, y_val, val_out, FROM_LOGITS).items()})'


def _epoch_loop(spec: Spec, *, strict: bool, weighted: bool, metrics: bool, es_check: list[str]) -> list[str]:
    """The epoch loop: the scheduled rate, one epoch of steps, validation, the log, the stop rules."""
    scheduled = spec.optimizer.schedule is not None
    set_lr = ["optimizer.lr = lr"] if strict else ["for group in optimizer.param_groups:", '    group["lr"] = lr']
    schedule = ["lr = lr_for(epoch)  # optimizer.schedule, set before every epoch", *set_lr] if scheduled else []
    val_out = "val_out" if metrics else "_"  # the validation outputs feed only the metrics
    body = [
        "began = time.perf_counter()",
        *schedule,
        f"losses = train_epoch(model, optimizer, x_train, t_train, order[epoch]{', w_train' if weighted else ''})",
        "step_losses += losses",
        f"val_loss, {val_out} = evaluate(model, x_val, t_val)",
        "# the epoch loss as Keras logs it: the mean of the step losses weighted by their batch sizes",
        "loss = sum(value * size for value, size in zip(losses, sizes, strict=True)) / n",
        'row = {"epoch": epoch + 1, "loss": loss, "val_loss": val_loss}',
        *([_VAL_METRICS] if metrics else []),
        *(['row["lr"] = lr'] if scheduled else []),
        "history.append(row)",
        "seconds = time.perf_counter() - began",
        'print(f"epoch {epoch + 1}/{EPOCHS}: loss {loss:.4f}, val_loss {val_loss:.4f} ({seconds:.2f} s)")',
        "# duofit stops a run whose epoch loss is not finite or passes the divergence limit",
        'if not all(math.isfinite(row[k]) and row[k] <= DIVERGENCE_LIMIT for k in ("loss", "val_loss")):',
        '    print(f"training diverged in epoch {epoch + 1}: lower the learning rate or clip the gradients")',
        "    diverged = True",
        "    break",
        *es_check,
    ]
    return ["for epoch in range(EPOCHS):", *_indent(body, 4)]


def _setup(spec: Spec, arrays: dict[str, np.ndarray], *, metrics: bool) -> list[str]:
    """``main``'s first lines: the command line, the bundle's arrays as tensors."""
    weighted = "sample_weight" in arrays
    return [
        'parser = argparse.ArgumentParser(description="Train the exported model (see the module docstring).")',
        'parser.add_argument("--data", type=Path, default=DATA, help="the .npz written by duofit export")',
        'parser.add_argument("--history", type=Path, help="write step losses, epoch history and test metrics (JSON)")',
        "args = parser.parse_args()",
        *([f"torch.set_num_threads({spec.train.threads})  # train.threads"] if spec.train.threads else []),
        "",
        "data = np.load(args.data, allow_pickle=False)",
        'x_train, t_train = as_input(data["x_train"]), as_target(data["t_train"])',
        'x_val, t_val = as_input(data["x_val"]), as_target(data["t_val"])',
        'order = torch.from_numpy(data["order"]).to(DEVICE)  # order[e]: epoch e\'s training samples, in batch order',
        *(['w_train = torch.from_numpy(data["sample_weight"]).to(DEVICE, DTYPE)  # loss weights'] if weighted else []),
        *(['y_val = data["y_val"]  # the validation labels/targets the metrics read'] if metrics else []),
    ]


def _model(optimizer: str, frozen: list[str]) -> list[str]:
    """The model with duofit's initial weights, its optimizer, the batch sizes of an epoch."""
    note = f"the parameters that train: not {', '.join(frozen)} (frozen)" if frozen else ""
    return [
        "torch.manual_seed(SEED)  # as duofit: seeded before the model is built",
        "model = Net().to(DEVICE, DTYPE)",
        'load_initial_weights(model, {k.removeprefix("init/"): data[k] for k in data.files if k.startswith("init/")})',
        *[f"# {line}" for line in textwrap.wrap(note, _WIDTH - 4 - 2)],  # indented 4 in main
        "params = [p for p in model.parameters() if p.requires_grad]",
        *_call("optimizer = ", optimizer, 4),
        "",
        "n = len(x_train)",
        "sizes = [min(BATCH_SIZE, n - start) for start in range(0, n, BATCH_SIZE)]",
    ]


_BEST_EPOCH = 'record["best_epoch"] = best_epoch  # early stopping\'s best epoch (1-based)'


def _test(dataset: Dataset, *, early_stopping: bool) -> list[str]:
    """The test metrics (in the target's own units) and the ``--history`` record."""
    lines = ['y_test = data["y_test"]', 'test_out = predict(model, as_input(data["x_test"]))']
    if dataset.target_scaler is not None:
        lines += [
            "# the target was standardized for training: the test metrics are in its original units",
            'y_test = y_test * data["target_scale"] + data["target_mean"]',
            'test_out = test_out * data["target_scale"] + data["target_mean"]',
        ]
    return [
        *lines,
        "test = compute_metrics(METRICS, y_test, test_out, FROM_LOGITS)  # the spec's metrics, duofit's definitions",
        'print("test: " + ", ".join(f"{k} {v:.4f}" for k, v in test.items()))',
        "if args.history is not None:",
        '    record = {"step_loss": step_losses, "history": history, "test_metrics": test, "diverged": diverged}',
        *([f"    {_BEST_EPOCH}"] if early_stopping else []),
        "    args.history.write_text(json.dumps(record, indent=1))",
    ]


def main_function(
    spec: Spec, dataset: Dataset, *, optimizer: str, arrays: dict[str, np.ndarray], frozen: list[str], strict: bool
) -> str:
    """The source of the helpers ``as_input``/``as_target``/``evaluate``/``predict`` and of ``main``.

    Args:
        spec: The spec (strict mode: already float64).
        dataset: Its prepared data (whether the regression target was standardized).
        optimizer: The optimizer's construction expression (``params`` in scope).
        arrays: The bundle the script reads (sample weights, the input and target dtypes).
        frozen: Parameters the model freezes (named in a comment).
        strict: The optimizer is the script's ``StrictOptimizer`` (its rate is ``optimizer.lr``).
    """
    metrics = bool(spec.metric_entries) and spec.train.history_metrics
    es_start, es_check, es_restore = _early_stopping(spec)
    loop = _epoch_loop(spec, strict=strict, weighted="sample_weight" in arrays, metrics=metrics, es_check=es_check)
    body = [
        *_setup(spec, arrays, metrics=metrics),
        "",
        *_model(optimizer, frozen),
        "history, step_losses, diverged = [], [], False",
        *es_start,
        *loop,
        *es_restore,
        "",
        *_test(dataset, early_stopping=bool(es_start)),
    ]
    main = [
        "def main() -> None:",
        '    """Train on the bundle\'s data, log every epoch, evaluate the test split."""',
        *_indent(body, 4),
        "",
        "",
        'if __name__ == "__main__":',
        "    main()",
    ]
    return "\n".join([*_inputs(arrays), "", "", *main]) + "\n"
