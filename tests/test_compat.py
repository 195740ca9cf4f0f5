"""Every patch of a library's private internals is verified against the installed version.

Each ``compat`` module declares its patches with the version they were verified against
(the ``constraints.txt`` pin). When the installed version differs, the test of that patch
fails and names it: re-verify the patch (and update ``VERIFIED``) when a pin is raised.
"""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path

import pytest

from duofit.common.patches import Patch, PatchError, apply_gate, installed_version

ROOT = Path(__file__).resolve().parents[1]
# compat module -> the marker that skips it when its library is missing
COMPAT = [
    pytest.param("duofit.backends.keras.compat", marks=pytest.mark.keras, id="keras"),
    pytest.param("duofit.backends.torch.compat", marks=pytest.mark.torch, id="torch"),
    pytest.param("duofit.tuning.compat", id="optuna"),
]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        name, sep, version = line.strip().partition("==")
        if sep and not name.startswith("#"):
            pins[name.lower()] = version
    return pins


@pytest.mark.parametrize("module", COMPAT)
def test_patches_are_verified_against_the_installed_version(module: str) -> None:
    mod = importlib.import_module(module)
    pins = _pins()
    assert mod.PATCHES
    for patch in mod.PATCHES:
        assert patch.verified == mod.VERIFIED[patch.package] == pins[patch.package], (
            f"patch {patch.name!r}: VERIFIED says {patch.package} {patch.verified}, constraints.txt pins "
            f"{pins.get(patch.package)}"
        )
        installed = installed_version(patch.package)
        assert installed == patch.verified, (
            f"patch {patch.name!r} ({patch.target}) was verified against {patch.package} {patch.verified} but "
            f"{installed} is installed: re-verify it ({patch.reason}) and update VERIFIED in {module}"
        )


def test_another_version_warns_once_and_still_applies() -> None:
    patch = Patch("test_only_patch", "numpy", "0.0.1", "numpy.ndarray", "a test")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        apply_gate(patch, present=True)
        apply_gate(patch, present=True)
    assert len(caught) == 1
    assert "'test_only_patch'" in str(caught[0].message) and "numpy 0.0.1" in str(caught[0].message)


def test_a_missing_private_attribute_is_a_clear_error() -> None:
    patch = Patch("gone_patch", "numpy", "0.0.1", "numpy._not_there", "a test")
    with pytest.raises(PatchError, match=r"duofit patch 'gone_patch' needs numpy\._not_there.*verified against numpy"):
        apply_gate(patch, present=False)


@pytest.mark.keras
def test_keras_float64_patch_is_applied() -> None:
    from duofit.common.registry import get_backend

    get_backend("keras").load()
    from keras.src.backend.common import dtypes

    assert dtypes.BIT64_TO_BIT32_DTYPE["float64"] == "float64"
