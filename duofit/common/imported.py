"""A model read from another framework, before it becomes a spec: what every importer returns.

The Keras importer (``duofit/backends/keras/importer.py``: ``.keras`` archives and live
``keras.Model`` objects) and the torch importer (``duofit/backends/torch/importer.py``:
``nn.Module`` traced with ``torch.fx``) both describe the model they read as an
:class:`ImportedModel`: the spec's layer list as plain documents, the weights in duofit's
layout, and whatever training settings the source itself states (a ``.keras`` archive's
``compile_config``: loss, optimizer, metrics). :func:`duofit.porting.assemble` joins that
with a *base* spec (data and the settings the source does not state) into a full spec.

Example:
    >>> import numpy as np
    >>> m = ImportedModel(layers=[{"type": "dense", "units": 1}], framework="keras",
    ...                   source="model.keras", weights={"layers.0.kernel": np.ones((2, 1)),
    ...                                                  "layers.0.bias": np.zeros(1)})
    >>> m.weight_names
    ['layers.0.kernel', 'layers.0.bias']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["IMPORTED_SECTIONS", "ImportedModel"]

# The spec sections a source may state besides its layers: a .keras archive's compile_config
# (loss, optimizer, metrics) and the fields of ``train`` the model fixes (its dtype)
IMPORTED_SECTIONS = ("loss", "optimizer", "metrics", "train")


@dataclass(frozen=True)
class ImportedModel:
    """One model read from a framework.

    Attributes:
        layers: The spec's ``model.layers`` as documents (``{"type": "dense", "units": 10, ...}``)
            with every setting the source states written out, so no framework default is
            taken silently (epsilons, momenta, activations, ``use_bias``, ``reset_after``).
        framework: ``"keras"`` or ``"torch"``: the framework the model came from.
        source: Where it came from, for messages and reports (a file, ``module:function``).
        weights: ``layers.<i>.<param>`` -> array in duofit's (Keras) layout, as
            :func:`duofit.common.init.initial_weights` returns them.
        sections: Spec sections the source states itself (keys of :data:`IMPORTED_SECTIONS`),
            as documents: ``{"loss": {"type": "binary_crossentropy", "from_logits": True}}``;
            ``train`` holds single fields (``{"dtype": "float64"}``), each used where the base
            does not set it.
        input_shape: One sample's shape the source model expects, in duofit's layout
            (channels last), when the source says it; checked against the data.
        notes: What the importer chose or translated, one sentence each, for the user.
    """

    layers: list[dict[str, Any]]
    framework: str
    source: str
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    sections: dict[str, Any] = field(default_factory=dict)
    input_shape: tuple[int, ...] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def weight_names(self) -> list[str]:
        """The weight names, in order."""
        return list(self.weights)
