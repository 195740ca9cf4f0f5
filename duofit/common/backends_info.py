"""What `duofit backends` reports: installed versions (no import) and, on request, devices."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from typing import Any

from duofit.common.registry import BACKENDS, is_installed

__all__ = ["backend_rows"]

_DIST_NAMES = {"torch": ("torch",), "tensorflow": ("tensorflow", "tensorflow-cpu"), "keras": ("keras",)}


def _version(module: str) -> str:
    for dist in _DIST_NAMES.get(module, (module,)):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return "?"


def _devices(name: str) -> list[str]:
    code = f"import json, duofit.common.registry as r; print(json.dumps(r.get_backend({name!r}).devices()))"
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    except subprocess.TimeoutExpired:
        return ["(timed out while importing the framework)"]
    if proc.returncode != 0:
        return [f"(import failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else 'unknown'})"]
    return list(json.loads(proc.stdout.strip().splitlines()[-1]))


def backend_rows(devices: bool = False) -> list[dict[str, Any]]:
    """One row per registered backend: name, framework, installed, versions, extra, devices.

    Example:
        >>> [r["name"] for r in backend_rows()]
        ['torch', 'keras', 'keras-torch', 'keras-jax']
    """
    rows = []
    for name, info in BACKENDS.items():
        installed = is_installed(name)
        row: dict[str, Any] = {
            "name": name,
            "framework": info.framework,
            "installed": installed,
            "versions": ", ".join(f"{m} {_version(m)}" for m in info.requires) if installed else "",
            "extra": info.extra,
        }
        if devices and installed:
            row["devices"] = _devices(name)
        rows.append(row)
    return rows
