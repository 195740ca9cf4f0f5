"""Whether the frameworks' start-up logs are shown: ``--verbose`` on the command line.

TensorFlow prints, from C++ while it loads, absl's "All log messages before
absl::InitializeLog() is called are written to STDERR" and an INFO line about oneDNN
(twice per process). duofit hides them unless the user asks with ``--verbose``. The choice
travels to worker processes in the environment (:data:`VERBOSE_ENV`), which they inherit,
and :func:`duofit.backends.kerasenv.native_banners_hidden` reads it where Keras loads.
Framework-free.

Example:
    >>> import os
    >>> before = os.environ.get(VERBOSE_ENV)
    >>> set_verbose(True); is_verbose()
    True
    >>> set_verbose(False); is_verbose()
    False
    >>> _ = os.environ.pop(VERBOSE_ENV, None) if before is None else os.environ.update({VERBOSE_ENV: before})
"""

from __future__ import annotations

import os

__all__ = ["VERBOSE_ENV", "is_verbose", "set_verbose"]

VERBOSE_ENV = "DUOFIT_VERBOSE"  # "1": show the frameworks' start-up logs (inherited by worker processes)


def set_verbose(on: bool) -> None:
    """Show (``True``) or hide the frameworks' start-up logs in this process and the workers it starts."""
    os.environ[VERBOSE_ENV] = "1" if on else "0"


def is_verbose() -> bool:
    """Whether the frameworks' start-up logs are shown (``DUOFIT_VERBOSE=1``)."""
    return os.environ.get(VERBOSE_ENV, "0") == "1"
