"""``duofit export --to torch``: a standalone, hand-written-style PyTorch training script for a spec.

:func:`write` writes ``<out>`` (the script) and ``<out stem>.npz`` beside it: duofit's bundle
(:func:`duofit.porting.bundle.bundle_arrays`: prepared data, loss targets, the batch order of every
epoch, the initial weights in Keras' layout) plus what the script's metrics read (``y_val``, and
the target scaler of a standardized regression target). The script imports only torch, numpy
and the standard library; it defines ``class Net(nn.Module)`` with one named attribute per
weighted layer and a ``forward`` that follows the layer graph, copies the initial weights in with
a comment wherever the layout changes, and trains with ``model.train()`` / ``zero_grad`` /
``backward`` / ``step``, evaluating under ``model.eval()`` and ``torch.no_grad()``. Its per-step
losses equal ``duofit run SPEC --backend torch`` (1e-12 relative in float64).

What duofit's own loop does that hand-written loops usually do not is kept, with a comment: the
shared batch order, Keras' loss reductions and clipping, the per-epoch learning rate in closed
form, early stopping by Keras' rules, the divergence stop. A spec setting the script cannot
reproduce yet is a :class:`~duofit.common.errors.SpecError` naming the field.

Example:
    >>> import tempfile, pathlib
    >>> from duofit.common.loader import load_spec
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> [p.name for p in write(load_spec("examples/seed.toml"), folder / "train_torch.py", strict=False)]
    ['train_torch.py', 'train_torch.npz']
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from duofit.common.data import Dataset
from duofit.common.spec import DropoutLayer, Spec
from duofit.common.spec.masks import mask_flow
from duofit.common.spec.shapes import trace_shapes
from duofit.porting.codegen import refuse, script_docstring, write_script
from duofit.porting.torch_code import LayerCode, layer_code
from duofit.porting.torch_train_code import TrainCode, train_code

__all__ = ["render", "write"]


def write(spec: Spec, out: Path, *, strict: bool) -> list[Path]:
    """Write the training script ``out`` and its arrays ``out.with_suffix(".npz")``; return both paths.

    Args:
        spec: The validated spec.
        out: The script's path (``train_torch.py``).
        strict: Export duofit's strict (parity) formulas: float64, the optimizer update written
            out as torch's single-tensor formula, Keras' global-norm clipping.

    Raises:
        SpecError: a layer or setting the export does not support yet (the field is named);
            nothing is written then.
    """
    return write_script(
        spec,
        out,
        strict=strict,
        render=lambda spec, dataset, arrays, data_name: render(
            spec, dataset, strict=strict, data_name=data_name, arrays=arrays
        ),
    )


def render(spec: Spec, dataset: Dataset, *, strict: bool, data_name: str, arrays: dict[str, np.ndarray]) -> str:
    """The script's source text (ruff-formatted) for ``spec`` trained on ``dataset``'s bundle ``arrays``."""
    layers = _layers(spec, dataset.input_shape)
    train = train_code(spec, dataset, strict=strict, arrays=arrays, frozen=[f for c in layers for f in c.frozen])
    helpers: list[str] = []
    for block in [h for c in layers for h in c.helpers] + train.helpers:
        if block not in helpers:
            helpers.append(block)
    constants = _constants(spec, data_name, train)
    body = "\n\n".join(
        [
            *[h.strip("\n") + "\n" for h in helpers],
            _net_class(spec, dataset, layers),
            _loader(layers),
            *train.functions,
        ]
    )
    imports = _imports(constants + body)
    return _docstring(spec, strict, data_name) + "\n\n" + imports + "\n" + constants + "\n\n" + body


def _layers(spec: Spec, input_shape: tuple[int, ...]) -> list[LayerCode]:
    """The script lines of every layer, following the graph (sequential: one variable ``x``)."""
    layers = spec.model.layers
    sequential = spec.model.is_sequential
    traced = trace_shapes(layers, input_shape)
    masked = mask_flow(layers)
    codes: list[LayerCode] = []
    for i, (layer, src, (ins, _)) in enumerate(zip(layers, spec.model.sources, traced, strict=True)):
        names = ["x" if sequential or j < 0 else f"h{j}" for j in src]
        shapes = [s or input_shape for s in ins]
        out = "x" if sequential else f"h{i}"
        codes.append(layer_code(layer, i, names, out, [tuple(s) for s in shapes], masked[i]))
    if any(isinstance(layer, DropoutLayer) for layer in layers):
        for i, code in enumerate(codes):
            if not code.same_randomness:
                raise refuse(
                    "torch",
                    f"model.layers[{i}].type",
                    f"dropout together with a {layers[i].type} layer",
                    "torch's module draws its own initial weights, so the dropout masks would not be duofit's; "
                    "remove the dropout layer or export without it",
                )
    return codes


_STRICT_NOTE = [
    "Strict mode: this script uses duofit's strict (parity) formulas. It trains in float64; the optimizer",
    "update is written out (StrictOptimizer below) as the exact operation sequence of torch.optim's",
    "single-tensor implementation, which duofit's Keras backend also runs in strict mode; gradients are",
    "clipped with Keras' global-norm formula. So torch and Keras compute the same math, step by step, and",
    "a difference between them is a bug rather than a formula.",
]


def _docstring(spec: Spec, strict: bool, data_name: str) -> str:
    name = spec.name or "model"
    about = [
        f"It needs torch and numpy only. It reads {data_name} beside it: the data as duofit prepared it (split,",
        "scaled), the order of the training samples in every epoch and the initial weights (Keras' layout), so",
        "it trains on the numbers `duofit run` trains on; its per-step losses equal duofit's torch backend.",
    ]
    return script_docstring(
        f"Train the {name!r} model with PyTorch: a standalone script written by `duofit export --to torch`.",
        about,
        [f"Run: python {Path(data_name).with_suffix('.py').name} [--history history.json]"],
        _STRICT_NOTE if strict else [],
    )


_IMPORTS = (
    ("import argparse", "argparse."),
    ("import json", "json."),
    ("import math", "math."),
    ("import time", "time."),
    ("from pathlib import Path", "Path("),
)


def _imports(body: str) -> str:
    """The import block: the standard library modules the body uses, numpy, torch."""
    std = [line for line, used in _IMPORTS if used in body]
    third = ["import numpy as np", "import torch", "from torch import nn"]
    if "F." in body:
        third.append("from torch.nn import functional as F")
    return "\n".join(std) + "\n\n" + "\n".join(third) + "\n"


def _constants(spec: Spec, data_name: str, train: TrainCode) -> str:
    tr = spec.train
    device = {"cpu": '"cpu"', "cuda": '"cuda"', "auto": '"cuda" if torch.cuda.is_available() else "cpu"'}[tr.device]
    lines = [
        f'DATA = Path(__file__).with_name("{data_name}")  # written beside this script by duofit export',
        f"DTYPE = torch.{tr.dtype}  # train.dtype",
        f"DEVICE = torch.device({device})  # train.device",
        f"SEED = {tr.seed}  # train.seed: torch's generator, for the default initial weights and dropout",
        f"EPOCHS = {tr.epochs}",
        f"BATCH_SIZE = {tr.batch_size}",
        *train.constants,
    ]
    return "\n".join(lines) + "\n"


def _net_class(spec: Spec, dataset: Dataset, layers: list[LayerCode]) -> str:
    shape = tuple(dataset.input_shape)
    image = len(shape) == 3
    doc = f"{spec.name or 'The model'}: {len(spec.model.layers)} layers, one sample of shape {shape}"
    if image:
        doc += " (given as NCHW)"
    out = "x" if spec.model.is_sequential else f"h{len(layers) - 1}"
    init = [line for c in layers for line in c.init] or ["pass"]
    lines = [
        "class Net(nn.Module):",
        f'    """{doc}."""',
        "",
        "    def __init__(self) -> None:",
        "        super().__init__()",
        *[f"        {line}" for line in init],
        "",
        "    def forward(self, x: torch.Tensor) -> torch.Tensor:",
        '        """The layers in the order of the spec, each reading the outputs it names."""',
        *[f"        {line}" for c in layers for line in c.forward],
        f"        return {out}",
    ]
    return "\n".join(lines) + "\n"


_WIDTH = 120  # the project's ruff line length


def _fit(line: str, indent: int) -> list[str]:
    """A ``target.copy_(source)`` line too long for ruff's width, split as ruff formats it (else as it is).

    Example:
        >>> _fit("model.a.copy_(" + "x" * 110 + ")", 4)[0]
        'model.a.copy_('
    """
    if indent + len(line) <= _WIDTH or not line.endswith(")") or ".copy_(" not in line:
        return [line]
    target, source = line[:-1].split(".copy_(", 1)
    return [f"{target}.copy_(", f"    {source}", ")"]


def _loader(layers: list[LayerCode]) -> str:
    body = [part for c in layers for line in c.load for part in _fit(line, 4)] or ["pass"]
    lines = [
        "@torch.no_grad()",
        "def load_initial_weights(model: Net, w: dict[str, np.ndarray]) -> None:",
        '    """Copy duofit\'s initial weights (Keras\' layout, named layers.<i>.<weight>) into the model."""',
        *[f"    {line}" for line in body],
    ]
    return "\n".join(lines) + "\n"
