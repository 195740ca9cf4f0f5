"""Raw model outputs -> probabilities and class labels, as every metric formula reads them.

Example:
    >>> import numpy as np
    >>> probabilities("binary", np.array([[0.0], [2.0]]), from_logits=True).round(3).tolist()
    [0.5, 0.881]
    >>> predicted_labels("multiclass", np.array([[0.1, 0.9], [0.7, 0.3]])).tolist()
    [1, 0]
"""

from __future__ import annotations

import numpy as np

from duofit.common.spec import DEFAULT_THRESHOLD

__all__ = ["predicted_labels", "probabilities", "to_scores"]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """Stable logistic: ``1 / (1 + e^-z)`` for z >= 0, ``e^z / (1 + e^z)`` below (no overflow)."""
    e = np.exp(-np.abs(z))  # e^-z above zero, e^z below: the same two formulas, without boolean indexing
    return np.where(z >= 0, 1.0, e) / (1.0 + e)


def _softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted by the row maximum (no overflow)."""
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def probabilities(task: str, outputs: np.ndarray, from_logits: bool) -> np.ndarray:
    """Class probabilities from raw model outputs.

    Args:
        task: ``binary`` or ``multiclass``.
        outputs: Raw model outputs, ``[n]``/``[n, 1]`` binary or ``[n, k]`` multiclass.
        from_logits: Whether ``outputs`` are logits (else probabilities, clipped/renormalised).

    Returns:
        float64 probabilities: ``[n]`` (of class 1) for binary, ``[n, k]`` for multiclass.
    """
    outputs = np.asarray(outputs, dtype=np.float64)
    if task == "binary":
        flat = outputs.reshape(len(outputs))
        return _sigmoid(flat) if from_logits else np.clip(flat, 0.0, 1.0)
    if from_logits:
        return _softmax(outputs)
    total = outputs.sum(axis=1, keepdims=True)
    return outputs / np.where(total == 0, 1.0, total)


def predicted_labels(task: str, proba: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Class indices from probabilities (``proba > threshold`` for binary, argmax otherwise).

    Example:
        >>> predicted_labels("binary", np.array([0.2, 0.4, 0.9]), threshold=0.3).tolist()
        [0, 1, 1]
    """
    if task == "binary":
        return (proba > threshold).astype(np.int64)
    return proba.argmax(axis=1).astype(np.int64)


def to_scores(task: str, outputs: np.ndarray, from_logits: bool) -> np.ndarray:
    """What the metrics read from raw outputs: probabilities, or regression predictions ``[n, outputs]``.

    Example:
        >>> to_scores("regression", np.array([1.0, 2.0]), from_logits=False).tolist()
        [[1.0], [2.0]]
    """
    if task == "regression":
        return np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
    return probabilities(task, outputs, from_logits)
