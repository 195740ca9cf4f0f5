"""Metrics: one registry of every metric, its sklearn reference and its numpy closed form.

Modules, lowest first (each imports only those above it):

- :mod:`~duofit.common.metrics.outputs`: raw outputs -> probabilities, labels, the scores metrics read;
- :mod:`~duofit.common.metrics.reference`: each metric's sklearn formula;
- :mod:`~duofit.common.metrics.fast`: each metric's numpy closed form;
- :mod:`~duofit.common.metrics.positive`: the class order of a run and which class each
  binary metric scores as positive (``pos_label``, or the default rule);
- :mod:`~duofit.common.metrics.registry`: name -> what it reads, both formulas, the
  vocabulary's task and ``higher_is_better``; :func:`flips`, the positive-class rule;
- :mod:`~duofit.common.metrics.undefined`: why a metric is ``nan`` on a split, which classes a
  multiclass average left out, and their warnings;
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
from duofit.common.metrics.evaluate import Scores, compute_metrics, score_outputs
from duofit.common.metrics.outputs import predicted_labels, probabilities, to_scores
from duofit.common.metrics.positive import ClassOrder, bind_positive, class_order
from duofit.common.metrics.registry import REGISTRY, MetricDef, flips
from duofit.common.metrics.undefined import (
    UndefinedMetricWarning,
    left_out_message,
    left_out_reasons,
    undefined_message,
    undefined_reasons,
    warn_undefined,
)

__all__ = [
    "REGISTRY",
    "ClassOrder",
    "EpochMetrics",
    "MetricDef",
    "Scores",
    "UndefinedMetricWarning",
    "bind_positive",
    "class_order",
    "compute_metrics",
    "fast_metrics",
    "flips",
    "left_out_message",
    "left_out_reasons",
    "predicted_labels",
    "probabilities",
    "score_outputs",
    "to_scores",
    "undefined_message",
    "undefined_reasons",
    "warn_undefined",
]
