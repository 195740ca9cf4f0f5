"""An imported model + a base spec -> a full spec whose initial weights are the model's own.

A *base* spec is a spec without a model: the data, and the settings the imported model
does not state (loss, optimizer, metrics, train). Where the base leaves out ``loss``,
``optimizer`` or ``metrics`` and the source states them (a ``.keras`` archive's
``compile_config``), the source's are taken and a note says so. The weights are written to
a file the spec names in ``model.weights``, and checked against the data's shape at once,
so a model built for other data is refused here, not halfway through training.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> from duofit.common.imported import ImportedModel
    >>> m = ImportedModel(layers=[{"type": "dense", "units": 3}], framework="keras", source="(example)",
    ...                   weights={"layers.0.kernel": np.zeros((4, 3)), "layers.0.bias": np.zeros(3)},
    ...                   sections={"loss": {"type": "categorical_crossentropy"}})
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> spec, notes = assemble(m, {"data": {"kind": "iris"}}, folder / "w.npz")
    >>> spec.loss.type, spec.model.weights == str(folder / "w.npz")
    ('categorical_crossentropy', True)
    >>> notes
    ['loss taken from the source model: categorical_crossentropy ((example))']
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from duofit.common.errors import DataError, DuofitError, SpecError
from duofit.common.imported import IMPORTED_SECTIONS, ImportedModel
from duofit.common.loader import load_spec, read_document
from duofit.common.spec import Spec
from duofit.common.weightfile import write_weight_file

__all__ = ["WEIGHTS_NAME", "assemble", "base_input_shape", "check_against_data", "read_base", "spec_of"]

# The weight file's name in the temporary folder an import makes when no path is given
WEIGHTS_NAME = "weights.npz"


def read_base(base: str | Path | Mapping[str, Any] | None) -> tuple[dict[str, Any], str]:
    """The base spec as a document (relative data paths made absolute) and a label for messages.

    Raises:
        SpecError: the file cannot be read, or it has a ``model`` (the imported model replaces it).
    """
    if base is None:
        raise SpecError("a base spec is needed: give --base base.toml (the data, and the loss if the source has none)")
    if isinstance(base, Mapping):
        doc, label, folder = dict(base), "the base spec", None
    else:
        path = Path(base)
        doc, label, folder = read_document(path), str(path), path.resolve().parent
    if "model" in doc:
        raise SpecError(
            f"{label}: model: a base spec has no [model]; the model comes from the imported source (remove the "
            "[model] table, or use the spec itself with duofit run)",
            path="model",
        )
    data = doc.get("data")
    if folder is not None and isinstance(data, dict) and isinstance(data.get("path"), str):
        if not Path(data["path"]).is_absolute():
            doc["data"] = {**data, "path": str(folder / data["path"])}
    return doc, label


def _brief(section: Any) -> str:
    """A section document in one short line, for a note: ``adam (lr=0.001, beta_1=0.9)``.

    Example:
        >>> _brief({"type": "adam", "lr": 0.001}), _brief(["accuracy"])
        ('adam (lr=0.001)', 'accuracy')
    """
    if isinstance(section, list):
        return ", ".join(str(m if not isinstance(m, dict) else m.get("name")) for m in section)
    if isinstance(section, dict):
        rest = ", ".join(f"{k}={v}" for k, v in section.items() if k != "type")
        return f"{section.get('type')} ({rest})" if rest else str(section.get("type"))
    return str(section)


def assemble(
    imported: ImportedModel, base: str | Path | Mapping[str, Any] | None, weights_path: str | Path
) -> tuple[Spec, list[str]]:
    """Build the spec of ``imported`` on ``base``, writing its weights to ``weights_path``.

    Args:
        imported: What an importer read.
        base: A base spec (file or mapping) without a model.
        weights_path: Where the ``.npz`` of initial weights goes; the spec names it (absolute).

    Returns:
        ``(spec, notes)``: the validated spec and what was taken from where.

    Raises:
        SpecError: the base is unreadable, has a model, or neither it nor the source says the loss.
    """
    doc, label = read_base(base)
    notes = list(imported.notes)
    for section in IMPORTED_SECTIONS:
        theirs = imported.sections.get(section)
        if theirs is None:
            continue
        if section == "train":  # field by field: the base's train settings stay, the model's dtype fills in
            ours = dict(doc.get("train") or {})
            for key, value in theirs.items():
                if key not in ours:
                    ours[key] = value
                    notes.append(f"train.{key} = {value!r} taken from the source model: {imported.source}")
            doc["train"] = ours
        elif section not in doc:
            doc[section] = theirs
            notes.append(f"{section} taken from the source model: {_brief(theirs)} ({imported.source})")
    if "loss" not in doc:
        raise SpecError(
            f"{label}: loss: neither the base spec nor {imported.source} says the loss; add a [loss] table to the "
            "base spec: type = 'binary_crossentropy' (two classes), 'categorical_crossentropy' (more) or 'mse' "
            "(values), with from_logits = true when the model's last layer has no sigmoid/softmax",
            path="loss",
        )
    doc["model"] = {"layers": imported.layers, "weights": str(Path(weights_path).resolve())}
    try:
        spec = load_spec(doc)
    except SpecError as exc:
        if not any(p.startswith("model") for p, _ in exc.problems):
            raise
        raise _misfit(exc, imported, {k: v for k, v in doc.items() if k != "model"}, label) from None
    write_weight_file(weights_path, imported.weights)
    return spec, notes


def _misfit(exc: SpecError, imported: ImportedModel, base: dict[str, Any], label: str) -> SpecError:
    """The error for imported layers the base's data cannot feed: both shapes named, field paths kept."""
    try:
        data = f"samples of shape {list(base_input_shape(base))}"
    except DuofitError:
        data = "samples it cannot read"
    model = "free sizes" if imported.input_shape is None else list(imported.input_shape)
    head = (
        f"the imported model {imported.source} (input shape {model}) does not fit the base spec's data ({label}: "
        f"{data}); give a base spec whose data has the model's input shape (data.image_shape, sequence_shape or "
        "reshape), or import a model built for this data:"
    )
    return SpecError("\n".join([head, *(f"  {p}: {m}" for p, m in exc.problems)]), exc.path, exc.problems)


def check_against_data(spec: Spec, imported: ImportedModel) -> tuple[int, ...]:
    """Load the data and check the imported weights and input shape fit it; the sample shape.

    Raises:
        DataError: the data's sample shape is not the one the source model was built for, or
            a weight's shape does not follow from the data (path ``model.weights``).
    """
    from duofit.common.data import load_dataset
    from duofit.common.init import initial_weights

    shape = load_dataset(spec).input_shape
    if imported.input_shape is not None and tuple(imported.input_shape) != tuple(shape):
        raise DataError(
            f"data: {imported.source} was built for samples of shape {list(imported.input_shape)}; the base spec's "
            f"data gives {list(shape)} per sample (check the data's reshape/kind, or the model's input shape)",
            path="data",
        )
    initial_weights(spec, shape)  # names and shapes checked against the model traced on this data
    return tuple(shape)


# Stand-in models and a loss that let a base spec (which has no model, and may have no loss) be
# validated and its data read, to learn the sample shape a framework model must accept: the first
# fits float data of any shape; data made of token ids needs an embedding first (the data checks
# say so with a model.layers[0] path), so the second is tried then.
_PLACEHOLDERS = (
    [{"type": "flatten"}, {"type": "dense", "units": 1}],
    [{"type": "embedding", "input_dim": 10**6, "output_dim": 1}, {"type": "flatten"}, {"type": "dense", "units": 1}],
)


def base_input_shape(base: str | Path | Mapping[str, Any] | None) -> tuple[int, ...]:
    """One sample's shape in the base spec's data (channels last), before any model is known.

    Example:
        >>> base_input_shape({"data": {"kind": "digits", "image_shape": [8, 8, 1]}})
        (8, 8, 1)
    """
    from duofit.common.data import read_arrays
    from duofit.common.data.features import prepare_features
    from duofit.common.data.split import spec_parts

    doc, _ = read_base(base)
    doc.pop("metrics", None)  # metrics are checked against the loss: neither matters for the data's shape
    doc.setdefault("loss", {"type": "mse"})
    for i, layers in enumerate(_PLACEHOLDERS):
        spec = load_spec({**doc, "model": {"layers": layers}})
        x, y, names = read_arrays(spec)  # the data alone: the stand-in's output layer is never checked
        try:
            return tuple(prepare_features(spec, x, spec_parts(spec, y, False), names).train.shape[1:])
        except DataError as exc:
            if i + 1 == len(_PLACEHOLDERS) or not exc.path.startswith("model.layers[0]"):
                raise
    raise AssertionError("unreachable")  # the loop returns or raises


def spec_of(
    imported: ImportedModel, base: str | Path | Mapping[str, Any] | None, weights_path: str | Path | None = None
) -> tuple[Spec, list[str]]:
    """:func:`assemble`, then :func:`check_against_data`: the spec of an imported model, ready to train.

    Args:
        imported: What an importer read.
        base: A base spec (file or mapping) without a model.
        weights_path: Where the weights go; default a fresh ``duofit-import-*`` temporary folder.

    Returns:
        ``(spec, notes)``.
    """
    if weights_path is None:
        weights_path = Path(tempfile.mkdtemp(prefix="duofit-import-")) / WEIGHTS_NAME
    spec, notes = assemble(imported, base, weights_path)
    check_against_data(spec, imported)
    return spec, notes
