"""Keras 3 on torch and on JAX (backends keras-torch, keras-jax): the same Keras code as the
``keras`` backend, each in its own process, checked against the torch backend."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib

import pytest

import duofit
from tests.backends.test_cnn import CNN_ACCURACY, SAME_POOLS, STACK, assert_strict_parity
from tests.params import KERAS_VARIANTS

pytestmark = pytest.mark.slow


def _digits_cnn(layers: list | None = None, **train: object) -> duofit.Spec:
    with open("examples/digits_cnn.toml", "rb") as fh:
        doc = tomllib.load(fh)
    if layers is not None:
        doc["model"]["layers"] = layers
    doc["train"].update(train)
    return duofit.load_spec(doc)


@pytest.mark.parametrize("backend", KERAS_VARIANTS)
def test_digits_cnn_reaches_095_in_its_own_process(backend: str) -> None:
    both = duofit.compare(_digits_cnn(), backends=[backend])
    res = both.results[backend]
    assert res.metrics["accuracy"] >= CNN_ACCURACY
    framework = backend.split("-")[1]
    assert res.environment["keras_backend"] == framework
    assert framework in res.environment  # the framework's version is recorded with the run


@pytest.mark.torch  # the reference side of the comparison
@pytest.mark.parametrize("backend", KERAS_VARIANTS)
@pytest.mark.parametrize("model", ["mlp", "cnn", "same_pools"])
def test_float64_strict_parity_with_torch(backend: str, model: str) -> None:
    if model == "cnn":  # conv (even kernel, stride 2, dilation, same/valid), pools, batch norm, flatten
        spec = _digits_cnn(STACK[:1] + STACK[2:])
    elif model == "same_pools":  # asymmetric "same" pools: Keras on torch replicates the edge (SameAvgPool2D)
        spec = _digits_cnn(SAME_POOLS)
    else:
        spec = duofit.load_spec("examples/seed.toml")
    # float64 strict parity per step within CNN_STRICT_RTOL (1e-10; measured 4e-16 on CPU)
    assert_strict_parity(spec, backends=("torch", backend))


@pytest.mark.keras
@pytest.mark.keras_jax
def test_two_keras_frameworks_in_one_process_is_a_clear_error() -> None:
    code = (
        "import duofit\n"
        "duofit.run({'data': {'kind': 'iris'}, 'model': {'layers': [{'type': 'dense', 'units': 3}]},"
        " 'loss': {'type': 'categorical_crossentropy'}, 'train': {'epochs': 1}}, backend='keras')\n"
        "try:\n"
        "    duofit.run('examples/seed.toml', backend='keras-jax')\n"
        "except duofit.BackendError as exc:\n"
        "    print('BackendError:', exc)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "BackendError: keras already runs on 'tensorflow'" in out.stdout
    assert "needs 'jax'" in out.stdout and "separate process" in out.stdout
