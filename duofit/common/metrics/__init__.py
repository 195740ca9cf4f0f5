"""Metrics: one registry of every metric, its sklearn reference and its numpy closed form.

Modules, lowest first (each imports only those above it):

- :mod:`~duofit.common.metrics.outputs`: raw outputs -> probabilities, labels, the scores metrics read;
- :mod:`~duofit.common.metrics.reference`: each metric's sklearn formula;
- :mod:`~duofit.common.metrics.fast`: each metric's numpy closed form;
- :mod:`~duofit.common.metrics.registry`: name -> what it reads, both formulas, the
  vocabulary's task and ``higher_is_better``;
- :mod:`~duofit.common.metrics.epoch`: the fast path (:class:`EpochMetrics`, :func:`fast_metrics`);
- :mod:`~duofit.common.metrics.evaluate`: final metrics (:func:`compute_metrics`);
- :mod:`~duofit.common.metrics.native`: the batch loop of the backends' own metric objects.

The per-backend native metrics (``duofit.backends.<name>.metrics``) key their tables by the
registry's names.

Example:
    >>> import numpy as np
    >>> compute_metrics(["mae"], "regression", np.array([1.0, 2.0]), np.array([[1.5], [2.0]]), False)
    {'mae': 0.25}
"""

from duofit.common.metrics.epoch import EpochMetrics, fast_metrics
from duofit.common.metrics.evaluate import compute_metrics
from duofit.common.metrics.outputs import predicted_labels, probabilities, to_scores
from duofit.common.metrics.registry import REGISTRY, MetricDef

__all__ = [
    "REGISTRY",
    "EpochMetrics",
    "MetricDef",
    "compute_metrics",
    "fast_metrics",
    "predicted_labels",
    "probabilities",
    "to_scores",
]
