"""Bring your own model: import a Keras or torch model as a spec, export training scripts, port.

``from_keras`` and ``from_torch`` read a model (a ``.keras`` archive or a live model) into a
spec whose initial weights are the model's own; the framework is imported only inside the
backend that reads it (``duofit/backends/<framework>/importer.py``).
"""

from __future__ import annotations

from duofit.porting.assemble import assemble, check_against_data, read_base

__all__ = ["assemble", "check_against_data", "read_base"]
