"""One subpackage per backend; the only place where a deep-learning framework is imported.

``torch`` (PyTorch), ``keras`` (Keras 3 on TensorFlow), ``keras_torch`` and ``keras_jax``
(Keras 3 on PyTorch or JAX), with the contract they share in ``base``. Importing this
package imports no framework.
"""

from __future__ import annotations

__all__: list[str] = []
