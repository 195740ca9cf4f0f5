"""What a model source is (a ``.keras`` archive, a ``module:function`` factory, a live model) and reading it.

One table maps each kind of source to its framework and its importer; the importers live in
``duofit/porting/from_keras.py`` and ``from_torch.py`` and import their framework only when
called. A source of no known kind is refused with the kinds that are accepted.

Example:
    >>> source_framework("models/net.keras"), source_framework("mypkg.models:make_net")
    ('keras', 'torch')
    >>> source_framework("weights.pth")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    duofit.common.errors.SpecError: source: weights.pth is a pickled torch file, which duofit never loads ...
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from duofit.common.errors import SpecError
from duofit.common.imported import ImportedModel
from duofit.common.loader import spec_to_toml
from duofit.common.spec import Spec
from duofit.porting.assemble import base_input_shape, spec_of
from duofit.porting.from_torch import FACTORY_PATTERN, PICKLE_SUFFIXES, is_torch_module

__all__ = ["FRAMEWORKS", "import_source", "save_imported", "source_framework", "spec_outputs"]

FRAMEWORKS = ("keras", "torch")
_ACCEPTED = "a Keras 3 .keras archive, a torch factory module:function, or a live keras.Model / torch.nn.Module"


def source_framework(source: Any) -> str:
    """``"keras"`` or ``"torch"``: the framework a source holds a model of.

    Raises:
        SpecError: (path ``source``) a pickle, a legacy Keras ``.h5`` file, or no known kind of source.
    """
    if not isinstance(source, (str, Path)):
        module = type(source).__module__.split(".", 1)[0]
        if module in ("keras", "tensorflow", "tf_keras"):
            return "keras"
        if is_torch_module(source):
            return "torch"
        raise SpecError(
            f"source: a {type(source).__name__} is not a model duofit imports; give {_ACCEPTED}", path="source"
        )
    text = str(source)
    suffix = Path(text).suffix.lower()
    if suffix == ".keras":
        return "keras"
    if suffix in PICKLE_SUFFIXES:
        raise SpecError(
            f"source: {Path(text).name} is a pickled torch file, which duofit never loads (it can run code): give a "
            "factory module:function that builds the nn.Module and loads its weights (for example from a "
            ".safetensors file with safetensors.torch.load_model)",
            path="source",
        )
    if suffix in (".h5", ".hdf5"):
        raise SpecError(
            f"source: {Path(text).name} is a legacy HDF5 model (Keras 2); load it with Keras and save it as a Keras 3 "
            "archive: keras.models.load_model(old).save('model.keras')",
            path="source",
        )
    if FACTORY_PATTERN.match(text):
        return "torch"
    raise SpecError(f"source: {text!r} is not {_ACCEPTED}", path="source")


def _read(source: Any, base: str | Path | Mapping[str, Any] | None) -> ImportedModel:
    if source_framework(source) == "keras":
        from duofit.porting.from_keras import import_keras_model

        return import_keras_model(source)
    from duofit.porting.from_torch import import_torch_model

    return import_torch_model(source, base_input_shape(base))


def import_source(
    source: Any, base: str | Path | Mapping[str, Any] | None, weights_path: str | Path
) -> tuple[Spec, list[str], ImportedModel]:
    """Read a model from any source, build its spec on ``base``, check it against the data.

    Args:
        source: A ``.keras`` path, a ``module:function`` factory, or a live model.
        base: The base spec (data; loss and training settings the source does not state).
        weights_path: Where the model's weights are written (``.npz``); the spec names it.

    Returns:
        ``(spec, notes, imported)``.

    Raises:
        SpecError / DataError: an unsupported layer or setting, an unreadable source, or a
            model that does not fit the data (nothing but ``weights_path`` is written).
    """
    imported = _read(source, base)
    spec, notes = spec_of(imported, base, weights_path)
    return spec, notes, imported


def _relative(path: str, folder: Path) -> str:
    """``path`` relative to ``folder`` when both are on one drive (a portable spec folder)."""
    import os

    try:
        return Path(os.path.relpath(Path(path).resolve(), folder.resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return path


def spec_outputs(out: str | Path, *, overwrite: bool = False) -> tuple[Path, Path]:
    """The spec file and its weight file for ``--out``, checked before anything is read or written.

    Raises:
        SpecError: (path ``out``) not a ``.toml`` path, a folder, or an existing file without ``overwrite``.

    Example:
        >>> [p.name for p in spec_outputs("port/spec.toml")]
        ['spec.toml', 'spec.weights.npz']
    """
    path = Path(out)
    weights = path.with_name(f"{path.stem}.weights.npz")
    if path.suffix.lower() != ".toml":
        raise SpecError(f"--out: {path} must be a .toml file (the spec); its weights go beside it", path="out")
    for target in (path, weights):
        if target.is_dir():
            raise SpecError(
                f"--out: {target} is a folder; give the spec file's path, e.g. {target}/spec.toml", path="out"
            )
        if target.exists() and not overwrite:
            raise SpecError(f"--out: {target} exists; choose another --out or pass --overwrite", path="out")
    return path, weights


def save_imported(spec: Spec, out: str | Path, *, header: str = "", overwrite: bool = False) -> tuple[Path, Path]:
    """Write ``spec`` as TOML at ``out`` and its weights beside it (``<stem>.weights.npz``), atomically.

    Paths in the written spec (the data file, the weights) are relative to its folder, so the
    folder can be moved as a whole. ``out`` is checked first (:func:`spec_outputs`).

    Returns:
        ``(spec_path, weights_path)``.
    """
    from duofit.common.io import atomic_write_bytes, atomic_write_text

    out, weights = spec_outputs(out, overwrite=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    if spec.model.weights is None:
        raise SpecError("model.weights: the spec has no weight file to save beside it", path="model.weights")
    atomic_write_bytes(weights, Path(spec.model.weights).read_bytes())
    model = spec.model.model_copy(update={"weights": weights.name})
    update: dict[str, Any] = {"model": model}
    if spec.data.path:
        update["data"] = spec.data.model_copy(update={"path": _relative(spec.data.path, out.parent)})
    text = spec_to_toml(spec.model_copy(update=update))
    comment = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    atomic_write_text(out, comment + text)
    return out, weights
