"""Framework-free facts about the machine, recorded with every result."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from functools import cache
from typing import Any

__all__ = ["base_environment", "cpu_model", "git_commit"]


@cache
def cpu_model() -> str:
    """CPU model name (``/proc/cpuinfo`` on Linux, ``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@cache
def git_commit() -> str | None:
    """Commit of the duofit checkout, if it is one."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def base_environment() -> dict[str, Any]:
    """Python, OS, CPU and core count."""
    from duofit._version import __version__

    return {
        "duofit": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "git_commit": git_commit(),
    }
