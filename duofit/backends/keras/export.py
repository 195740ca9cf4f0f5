"""Save and load trained weights as Keras files: ``.weights.h5`` or a whole ``.keras`` model.

``.keras`` files are loaded with ``safe_mode=True`` (no arbitrary code from the file). A layer
graph is saved as its functional model, whose layers carry stable names (the spec's ``name``,
else ``<type>_<index>``); loading matches them by name, a sequential model by order.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from duofit.backends.keras.layers import build_model, floatx, get_weights, set_weights
from duofit.common.errors import DataError
from duofit.common.spec import Spec

__all__ = ["load_weights", "save_weights"]


def save_weights(spec: Spec, weights: dict[str, np.ndarray], path: Path, input_shape: tuple[int, ...]) -> None:
    """Write duofit-layout ``weights`` as a Keras weights file or model archive."""
    with floatx(spec.train.dtype):
        model, heads = build_model(spec, input_shape, spec.train.dtype)
        set_weights(heads, spec, weights)
        if path.name.endswith(".weights.h5"):
            model.save_weights(path)
        else:
            model.save(path)


def load_weights(spec: Spec, path: Path, input_shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Read a Keras weights file or ``.keras`` archive back into duofit-layout arrays."""
    with floatx(spec.train.dtype):
        try:
            if path.name.endswith(".weights.h5"):
                model, heads = build_model(spec, input_shape, spec.train.dtype)
                model.load_weights(path)
            else:
                model = keras.saving.load_model(path, safe_mode=True, compile=False)
                _, heads = build_model(spec, input_shape, spec.train.dtype)
                if spec.model.is_sequential:
                    pairs = list(zip(_weighted(heads), _weighted(model.layers), strict=True))
                else:
                    pairs = [(mine, model.get_layer(mine.name)) for mine in _weighted(heads)]
                for mine, theirs in pairs:
                    mine.set_weights(theirs.get_weights())
        except (ValueError, OSError) as exc:
            raise DataError(f"{path}: does not match the spec's model: {exc}", path="weights") from None
    return get_weights(heads, spec)


def _weighted(layers: list[keras.layers.Layer]) -> list[keras.layers.Layer]:
    return [layer for layer in layers if layer.weights]
