"""Damaged model sources: every one is a SpecError or DataError (exit 2), never a crash or half-written output.

A valid ``.keras`` archive is cut, its bytes flipped, and its ``config.json`` replaced by
plausible-but-wrong documents (wrong types, missing keys, unknown classes, deep nesting); the
importer must refuse each with duofit's own errors before it runs anything from the file.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from duofit.common.errors import DuofitError

SEED = 20261130
N_CUTS = 12
N_FLIPS = 12


def _archive(tmp_path: Path) -> Path:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(1)])
    path = tmp_path / "ok.keras"
    model.save(path)
    return path


def _with_config(src: Path, dst: Path, config: Any) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "config.json":
                data = config if isinstance(config, bytes) else json.dumps(config).encode()
            zout.writestr(item, data)
    return dst


def _configs(good: dict[str, Any]) -> list[Any]:
    layers = good["config"]["layers"]
    return [
        b"{not json",
        b"\xff\xfe\x00",
        [],
        {"class_name": "Sequential"},
        {**good, "class_name": "NotAModel"},
        {**good, "config": {**good["config"], "layers": "dense"}},
        {**good, "config": {**good["config"], "layers": [{"class_name": "Dense"}]}},
        {**good, "config": {**good["config"], "layers": [*layers[:-1], {**layers[-1], "config": {"units": "ten"}}]}},
        {**good, "config": {**good["config"], "layers": [*layers, {"class_name": "Lambda", "config": {}}]}},
        {**good, "config": {**good["config"], "layers": [{**layers[1], "module": "os", "class_name": "system"}]}},
        {**good, "config": {**good["config"], "layers": [{"a": {"b": {"c": [[[[]]]]}}}]}},
        {**good, "config": {**good["config"], "layers": layers[:1]}},  # the input only: no weights for the rest
    ]


@pytest.mark.keras
def test_damaged_keras_archives_are_refused_with_duofit_errors(tmp_path: Path) -> None:
    from duofit.porting.from_keras import import_keras_model

    src = _archive(tmp_path)
    blob = src.read_bytes()
    with zipfile.ZipFile(src) as z:
        good = json.loads(z.read("config.json"))
    rng = np.random.default_rng(SEED)
    cases: list[Path] = []
    for i, cut in enumerate(rng.integers(1, len(blob) - 1, N_CUTS)):
        cases.append(tmp_path / f"cut{i}.keras")
        cases[-1].write_bytes(blob[:cut])
    for i, at in enumerate(rng.integers(0, len(blob), N_FLIPS)):
        flipped = bytearray(blob)
        flipped[at] ^= 0xFF
        cases.append(tmp_path / f"flip{i}.keras")
        cases[-1].write_bytes(bytes(flipped))
    for i, config in enumerate(_configs(good)):
        cases.append(_with_config(src, tmp_path / f"config{i}.keras", config))
    outcomes: dict[str, str] = {}
    for case in cases:
        try:
            import_keras_model(case)
            outcomes[case.name] = "imported"  # a flip in padding or an unused byte can leave the model intact
        except DuofitError as exc:
            assert str(exc).strip(), case.name
            outcomes[case.name] = type(exc).__name__
    refused = {name for name, kind in outcomes.items() if kind != "imported"}
    assert all(name in refused for name in outcomes if name.startswith(("cut", "config"))), outcomes
