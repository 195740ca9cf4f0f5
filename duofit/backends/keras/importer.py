"""Import a Keras 3 model (a ``.keras`` archive or a live ``keras.Model``) as spec layer documents + weights.

An archive is read in two steps, so nothing from the file runs before it is known to be
plain Keras: first its ``config.json`` is read from the zip as JSON and every layer mapped
to spec documents (the graph by :mod:`duofit.backends.keras.import_graph`, each layer by
:mod:`duofit.backends.keras.import_layers`); a ``Lambda``, a custom or unregistered class, a
layer, setting or call argument with no spec equivalent is refused there, naming the layer,
its place in the graph, what is supported and the fix. Only then are the weights loaded, with
``keras.saving.load_model(path, safe_mode=True, compile=False)`` (Keras' own safe loader; no
pickle). A live model is serialized with Keras' serializer into the same JSON and read alike.

Weights become duofit's names ``layers.<i>.<param>`` through the Keras backend's own table
(:func:`duofit.backends.keras.layers.present_weights`: the names, in ``get_weights()`` order,
that :func:`~duofit.backends.keras.layers.set_weights` loads), so import and build are one mapping.

The layer list follows the spec's graph rules (:mod:`duofit.common.spec.model`): a layer
names its ``inputs`` only where it does not read the layer just before it, and a layer gets
a ``name`` (its Keras name, made identifier-safe) only where a later layer refers to it.
"""

from __future__ import annotations

import json
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
from pydantic import ValidationError

from duofit.backends.keras.import_compile import compile_sections
from duofit.backends.keras.import_graph import Node, graph_nodes, layer_name
from duofit.backends.keras.import_layers import convert_layer, layer_dtype, supported_list, table_name
from duofit.backends.keras.layers import present_weights
from duofit.common.errors import DataError, DuofitError, SpecError
from duofit.common.imported import ImportedModel
from duofit.common.loader import spec_from_validation_error
from duofit.common.spec.model import ModelSpec

__all__ = ["ModelPlan", "import_keras", "plan_model", "read_archive"]

_CONFIG, _METADATA = "config.json", "metadata.json"
_WEIGHT_FILES = ("model.weights.h5", "model.weights.npz")
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# largest config.json read into memory (a real one is kilobytes; this refuses a zip bomb)
_MAX_CONFIG_BYTES = 64 * 2**20
_FLOATS = ("float32", "float64")
_SAVE_HINT = "re-save it in Keras 3 with model.save('model.keras')"


@dataclass
class ModelPlan:
    """A Keras model config read as a spec: documents, which Keras layer fills which weights, settings."""

    layers: list[dict[str, Any]]
    weighted: list[tuple[str, int]]  # (Keras layer name, index of the spec layer holding its weights)
    input_shape: tuple[int, ...] | None
    dtype: str
    notes: list[str] = field(default_factory=list)
    specs: list[Any] = field(default_factory=list)  # the validated layer specs of ``layers``


def read_archive(path: Path) -> dict[str, Any]:
    """The model config of a ``.keras`` archive (``config.json``), read as JSON only.

    Raises:
        DataError: not a Keras 3 archive (legacy ``.h5``, a folder, a Keras 2 archive),
            corrupt or truncated, or without its config or weights; each with the fix.
    """
    if not path.exists():
        raise DataError(f"{path}: no such file", path="source")
    if path.is_dir():
        raise DataError(f"{path}: a folder (a TensorFlow SavedModel?), not a .keras file; {_SAVE_HINT}", path="source")
    with path.open("rb") as handle:
        head = handle.read(len(_HDF5_SIGNATURE))
    if head == _HDF5_SIGNATURE or path.suffix.lower() in (".h5", ".hdf5"):
        raise DataError(
            f"{path}: a legacy HDF5 model (Keras 2 / tf.keras .h5), which duofit does not read; load it in the "
            f"Keras that wrote it and {_SAVE_HINT}",
            path="source",
        )
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a .keras archive (a zip file): truncated or corrupt? {_SAVE_HINT}", path="source")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            bad = zf.testzip()
            if bad is not None:
                raise DataError(f"{path}: archive member {bad} is corrupt (CRC mismatch); {_SAVE_HINT}", path="source")
            config = _member(zf, _CONFIG, path)
            metadata = _member(zf, _METADATA, path) if _METADATA in names else {}
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
        raise DataError(f"{path}: the archive cannot be read ({exc}): truncated or corrupt? {_SAVE_HINT}") from None
    version = str(metadata.get("keras_version", ""))
    if version.startswith(("1.", "2.")):
        raise DataError(
            f"{path}: saved by Keras {version}; duofit reads Keras 3 archives: load it in Keras {version[0]} and "
            f"save the weights, or {_SAVE_HINT}",
            path="source",
        )
    if not names & set(_WEIGHT_FILES):
        raise DataError(f"{path}: the archive has no weights ({' or '.join(_WEIGHT_FILES)}); {_SAVE_HINT}")
    return config


def _member(zf: zipfile.ZipFile, name: str, path: Path) -> dict[str, Any]:
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise DataError(f"{path}: the archive has no {name}; is it a Keras model? {_SAVE_HINT}") from None
    if info.file_size > _MAX_CONFIG_BYTES:
        raise DataError(f"{path}: {name} declares {info.file_size} bytes; refusing to read it", path="source")
    try:
        doc = json.loads(zf.read(name))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: {name} is not valid JSON ({exc}); {_SAVE_HINT}", path="source") from None
    if not isinstance(doc, dict):
        raise DataError(f"{path}: {name} does not hold a JSON object; {_SAVE_HINT}", path="source")
    return doc


def _refusal(label: str, node: Node) -> SpecError:
    cls = node.entry.get("registered_name") or node.entry.get("class_name")
    where = f"{label}: layer {node.name!r} ({cls}, {node.place})"
    fix = "rebuild it from supported layers and re-save, or write the spec by hand"
    if cls == "Lambda":
        why = "a Lambda layer holds Python code, which duofit never runs"
    elif cls in ("Functional", "Sequential", "Model"):
        why, fix = "a model nested as a layer", "build one model from its layers (call them on its input) and re-save"
    elif not str(node.entry.get("module") or "").startswith("keras"):
        why = f"a custom class (module {node.entry.get('module')!r}); its code is not loaded"
    else:
        why = "this Keras layer has no spec equivalent"
    return SpecError(f"{where}: {why}. Supported Keras layers: {supported_list()}. Fix: {fix}", path="model.layers")


def plan_model(config: dict[str, Any], label: str) -> ModelPlan:
    """Map a Keras model config to spec layer documents, refusing what the spec cannot express.

    Raises:
        SpecError: an unsupported layer, setting or graph shape, naming the layer and its place.
    """
    nodes, input_entry, build_shape = graph_nodes(config, label)
    input_name = layer_name(input_entry) if input_entry else "input"
    docs: list[dict[str, Any]] = []
    sources: list[tuple[int, ...]] = []
    owners: list[str] = []
    out_of: dict[str, int] = {input_name: -1}
    weighted: list[tuple[str, int]] = []
    notes: list[str] = []
    dtypes: set[str] = set()
    for node in nodes:
        key = table_name(node.entry)
        if key is None or key == "InputLayer":
            raise _refusal(label, node)
        cfg = node.entry.get("config") or {}
        where = f"{label}: layer {node.name!r} ({key.removeprefix('duofit>')}, {node.place})"
        if any(r not in out_of for r in node.reads):
            raise SpecError(
                f"{where}: reads a layer listed after it; re-save the model from Keras", path="model.layers"
            )
        made = convert_layer(key, cfg, where, notes)
        dtypes.add(layer_dtype(cfg) or "float32")
        first = len(docs)
        for k, doc in enumerate(made):
            docs.append(doc)
            sources.append(tuple(out_of[r] for r in node.reads) if k == 0 else (first + k - 1,))
            owners.append(node.name)
        weighted.append((node.name, first))
        out_of[node.name] = len(docs) - 1
    if len(dtypes) > 1 or not dtypes <= set(_FLOATS):
        raise SpecError(
            f"{label}: layer dtypes {sorted(dtypes)}; the spec runs one float dtype ({' or '.join(_FLOATS)}): "
            "build the model under one dtype policy (keras.config.set_dtype_policy('float32')) and re-save",
            path="model.layers",
        )
    layers = _wire(docs, sources, owners)
    specs = _validate(layers, owners, label)
    dtype = dtypes.pop() if dtypes else "float32"
    return ModelPlan(layers, weighted, _input_shape(input_entry, build_shape, notes, label), dtype, notes, specs)


def _wire(docs: list[dict[str, Any]], sources: list[tuple[int, ...]], owners: list[str]) -> list[dict[str, Any]]:
    """Add ``name`` / ``inputs`` where a layer does not just read the one before it."""
    named: dict[int, str] = {}
    taken = {"input"}
    wired: list[dict[str, Any]] = []
    for i, src in enumerate(sources):
        for j in src:
            if j >= 0 and j not in named and src != (i - 1,):
                named[j] = _free(owners[j], taken)
    for i, (doc, src) in enumerate(zip(docs, sources, strict=True)):
        head: dict[str, Any] = {"type": doc["type"]}
        if i in named:
            head["name"] = named[i]
        if src != ((i - 1,) if i > 0 else (-1,)):
            head["inputs"] = ["input" if j < 0 else named[j] for j in src]
        wired.append({**head, **doc})
    return wired


def _free(name: str, taken: set[str]) -> str:
    base = re.sub(r"\W", "_", name)[:60] or "layer"
    base = base if re.match(r"[A-Za-z_]", base) else f"l_{base}"
    out, k = base, 1
    while out in taken:
        out, k = f"{base}_{k}", k + 1
    taken.add(out)
    return out


def _validate(layers: list[dict[str, Any]], owners: list[str], label: str) -> list[Any]:
    try:
        return list(ModelSpec.model_validate({"layers": layers}).layers)
    except ValidationError as exc:
        error = spec_from_validation_error(exc, label)
    found = re.search(r"layers\[(\d+)\]", error.path or str(error))
    which = f" (model.layers[{found.group(1)}] is Keras layer {owners[int(found.group(1))]!r})" if found else ""
    raise SpecError(f"{error}{which}", path=error.path, problems=error.problems) from None


def _input_shape(
    entry: dict[str, Any] | None, build: list[Any], notes: list[str], label: str
) -> tuple[int, ...] | None:
    cfg = (entry or {}).get("config") or {}
    shape = cfg.get("batch_shape") or cfg.get("batch_input_shape") or build
    if not shape:
        return None
    if any(n is None for n in shape[1:]):
        notes.append(f"{label}: the input shape {shape[1:]} has free sizes; the data decides them")
        return None
    return tuple(int(n) for n in shape[1:])


# --------------------------------------------------------------------------- weights
def _weights(model: Any, plan: ModelPlan, label: str) -> dict[str, np.ndarray]:
    """Each Keras layer's ``get_weights()`` under duofit's names (the Keras backend's own table)."""
    specs = plan.specs
    out: dict[str, np.ndarray] = {}
    for keras_name, i in plan.weighted:
        arrays = model.get_layer(keras_name).get_weights()
        names = present_weights(specs[i])
        if len(arrays) != len(names):
            raise DataError(
                f"{label}: layer {keras_name!r} holds {len(arrays)} weight arrays, the spec's {specs[i].type} "
                f"has {len(names)} ({', '.join(names) or 'none'})",
                path="model.weights",
            )
        for name, array in zip(names, arrays, strict=True):
            out[f"layers.{i}.{name}"] = np.asarray(array, dtype=np.float64)
    return out


def _load(path: Path) -> Any:
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:
        raise DataError(f"{path}: Keras cannot load the weights ({type(exc).__name__}: {exc}); {_SAVE_HINT}") from None


def _planned(config: dict[str, Any], label: str) -> tuple[ModelPlan, dict[str, Any], list[str]]:
    """:func:`plan_model` and the compile sections, with a malformed config as one clear error."""
    try:
        plan = plan_model(config, label)
        sections, notes = compile_sections(config.get("compile_config"))
    except DuofitError:
        raise
    except (AttributeError, TypeError, KeyError, IndexError, ValueError) as exc:  # JSON of the wrong shape
        raise DataError(
            f"{label}: config.json is not a Keras model config ({type(exc).__name__}: {str(exc)[:120]}); {_SAVE_HINT}",
            path="source",
        ) from None
    return plan, sections, notes


def import_keras(source: str | Path | Any) -> ImportedModel:
    """Read a Keras 3 model as an :class:`~duofit.common.imported.ImportedModel`.

    Args:
        source: A ``.keras`` archive's path, or a live ``keras.Sequential`` / functional
            ``keras.Model`` (built, so its weights exist).

    Returns:
        The spec layer documents (every setting written out), the weights in duofit's
        layout, the compile config's loss / optimizer / metrics where they map exactly, the
        input shape and notes.

    Raises:
        SpecError: a layer, setting, graph or class the spec cannot express (nothing from an
            archive has run at that point).
        DataError: an unreadable, legacy, Keras 2 or incomplete archive.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        label = str(path)
        config = read_archive(path)
        plan, sections, compile_notes = _planned(config, label)
        model = _load(path)
    else:
        if not isinstance(source, keras.Model):
            raise SpecError(f"{type(source).__name__} is not a keras.Model; give a .keras file or a keras.Model")
        model, label = source, f"keras.Model {source.name!r}"
        if not model.built:
            raise SpecError(f"{label}: not built: call it on data or give it a keras.Input first")
        config = json.loads(json.dumps(keras.saving.serialize_keras_object(model)))
        plan, sections, compile_notes = _planned(config, label)
    if plan.dtype != "float32":  # the spec's default dtype is float32: state any other
        sections = {**sections, "train": {"dtype": plan.dtype}}
    return ImportedModel(
        layers=plan.layers,
        framework="keras",
        source=label,
        weights=_weights(model, plan, label),
        sections=sections,
        input_shape=plan.input_shape,
        notes=[*plan.notes, *compile_notes],
    )
