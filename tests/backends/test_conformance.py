"""Every backend conforms to the :class:`~duofit.backends.base.Backend` contract.

Like scikit-learn's ``parametrize_with_checks``: each check in :data:`CHECKS` takes a backend
name and raises on a violation. ``torch`` and ``keras`` run each check as its own test in
this process; ``keras-torch`` and ``keras-jax`` run all checks in a fresh process each
(:func:`check_backend`), because Keras reads KERAS_BACKEND once per process.
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
import tempfile
import typing
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import duofit
from duofit.backends.base import Backend, make_plan
from duofit.common.data import load_dataset
from duofit.common.errors import BackendError
from duofit.common.registry import describe, get_backend
from duofit.common.spec import LayerSpec, LossSpec, OptimizerSpec
from tests.params import CORE_BACKENDS, KERAS_VARIANTS

# a conv + batch-norm + dense model: every weight kind and layout (kernel permutations)
_SPEC = {
    "data": {"kind": "digits", "image_shape": [8, 8, 1]},
    "model": {
        "layers": [
            {"type": "conv2d", "filters": 3, "kernel_size": 3},
            {"type": "batch_norm"},
            {"type": "flatten"},
            {"type": "dense", "units": 10},
        ]
    },
    "loss": {"type": "categorical_crossentropy", "from_logits": True, "labels": "integer"},
    "train": {"dtype": "float64", "epochs": 1},
}


def _spec_types(union: object) -> set[type]:
    """The spec classes of a discriminated ``Annotated[Union[...], Field]``."""
    return set(typing.get_args(typing.get_args(union)[0]))


def check_signatures(name: str) -> None:
    """The same public methods as the base class, with the same parameters."""
    backend = get_backend(name)
    assert isinstance(backend, Backend)
    public = [m for m, _ in inspect.getmembers(Backend, inspect.isfunction) if not m.startswith("_")]
    for method in public:
        want = list(inspect.signature(getattr(Backend, method)).parameters.values())
        got = list(inspect.signature(getattr(type(backend), method)).parameters.values())
        assert [(p.name, p.kind, p.default) for p in got] == [(p.name, p.kind, p.default) for p in want], method
    assert backend.name == name and backend.framework == describe(name).framework


def check_weight_roundtrip(name: str) -> None:
    """Export -> import gives identical arrays, in every export format and through the model."""
    backend = get_backend(name)
    spec = duofit.load_spec(_SPEC)
    plan = make_plan(spec, load_dataset(spec))
    shape = plan.dataset.x_train.shape[1:]
    _assert_same(backend.roundtrip(spec, plan.weights), plan.weights)
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in backend.export_formats:
            path = Path(tmp) / f"model{suffix}"
            backend.save_weights(spec, plan.weights, path, shape)
            _assert_same(backend.load_weights(spec, path, shape), plan.weights)


def _assert_same(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert sorted(got) == sorted(want)
    for key, arr in want.items():
        np.testing.assert_array_equal(got[key], arr, err_msg=key)


def check_tables_cover_the_spec(name: str) -> None:
    """Every layer, loss and optimizer type the spec accepts has a translation."""
    tables = get_backend(name).tables()
    assert set(tables["layers"]) == _spec_types(LayerSpec)
    assert set(tables["losses"]) == _spec_types(LossSpec)
    assert set(tables["optimizers"]) == _spec_types(OptimizerSpec)


def check_unsupported_input_error(name: str) -> None:
    """An item outside the tables: BackendError with the shared message shape."""
    backend = get_backend(name)
    spec = duofit.load_spec(_SPEC)

    class NewLoss:
        pass

    bad = spec.model_copy(update={"loss": NewLoss()})
    try:
        backend.loss_value(bad, np.zeros((2, 10)), np.zeros(2, dtype=np.int64))
    except BackendError as exc:
        assert re.fullmatch(r"loss: the \S+ backend has no NewLoss; supported: MSELoss, .*", str(exc)), str(exc)
    else:
        raise AssertionError("an unsupported loss was accepted")


def check_environment(name: str) -> None:
    """The recorded environment: the framework's name and the shared numeric flag names."""
    env = get_backend(name).environment("cpu")
    assert env["framework"] == describe(name).framework
    assert "tf32" not in env and "mkldnn" not in env  # one name per flag: tf32_matmul, onednn
    assert "threads" in env
    assert get_backend(name).devices()[0] == "cpu"


CHECKS: dict[str, Callable[[str], None]] = {
    f.__name__: f
    for f in (
        check_signatures,
        check_weight_roundtrip,
        check_tables_cover_the_spec,
        check_unsupported_input_error,
        check_environment,
    )
}


def check_backend(name: str) -> None:
    """Run every check on backend ``name`` in this process (raises on the first violation)."""
    for check in CHECKS.values():
        check(name)


@pytest.mark.parametrize("check", list(CHECKS))
@pytest.mark.parametrize("backend", CORE_BACKENDS)
def test_backend_conforms(backend: str, check: str) -> None:
    CHECKS[check](backend)


@pytest.mark.slow
@pytest.mark.parametrize("backend", KERAS_VARIANTS)
def test_keras_framework_conforms_in_its_own_process(backend: str) -> None:
    code = f"from tests.backends.test_conformance import check_backend; check_backend({backend!r}); print('ok')"
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root, check=False)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]
