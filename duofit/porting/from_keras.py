"""A Keras 3 model (``.keras`` archive or live ``keras.Model``) -> a duofit spec whose initial weights are its own.

The reading itself lives in the Keras backend (``duofit/backends/keras/importer.py``), which
this module imports only when called, after selecting Keras' framework the way the Keras
backends do (:mod:`duofit.backends.kerasenv`): an archive is read on TensorFlow unless this
process already runs Keras on another framework; a live model on the framework it runs on.

Example (skipped: it loads Keras):
    >>> spec = from_keras("model.keras", base="base.toml")   # doctest: +SKIP
    >>> spec.model.weights                                    # doctest: +SKIP
    '/tmp/duofit-import-.../weights.npz'
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from duofit.common.imported import ImportedModel
from duofit.common.spec import Spec
from duofit.porting.assemble import spec_of

__all__ = ["from_keras", "import_keras_model"]


def import_keras_model(source: str | Path | Any) -> ImportedModel:
    """Read a ``.keras`` archive or a live ``keras.Model`` (see ``duofit.backends.keras.importer.import_keras``).

    Keras' framework is chosen as the Keras backends choose it: the one this process already
    runs Keras on (a live model's), else TensorFlow.

    Raises:
        SpecError: a layer, setting or graph the spec cannot express (nothing from the file has run).
        DataError: an unreadable, legacy (``.h5``), Keras 2 or incomplete archive.
        BackendError: Keras is not installed.
    """
    from duofit.backends.kerasbackend import KerasBackend
    from duofit.backends.kerasenv import KERAS_FRAMEWORKS, selected

    KerasBackend(KERAS_FRAMEWORKS[selected() or "tensorflow"]).load()
    importer = importlib.import_module("duofit.backends.keras.importer")
    imported: ImportedModel = importer.import_keras(source)
    return imported


def from_keras(
    source: str | Path | Any, base: str | Path | Mapping[str, Any], *, weights_path: str | Path | None = None
) -> Spec:
    """The spec of a Keras model on a base spec, its weights written to ``weights_path`` and checked on the data.

    Args:
        source: A ``.keras`` archive, or a live ``keras.Sequential`` / functional ``keras.Model``.
        base: A spec without a model (file or mapping): the data, and whatever the model's
            compile config does not state (loss, optimizer, metrics, train settings).
        weights_path: Where the ``.npz`` of initial weights goes; default: a fresh
            ``duofit-import-*`` folder under the system's temporary folder.

    Returns:
        The validated spec; ``spec.model.weights`` names the weight file.

    Raises:
        SpecError: the model or the base cannot make a spec (see :func:`import_keras_model`,
            :func:`duofit.porting.assemble.assemble`).
        DataError: the data's sample shape is not the model's, or a weight does not fit it.
    """
    return spec_of(import_keras_model(source), base, weights_path)[0]
