"""Keras 3 models -> spec: round trip through duofit's Keras backend, refusals, bad archives, compile config."""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from duofit.common.errors import DataError, SpecError

pytestmark = pytest.mark.keras

# Round-trip tolerances: the same Keras ops on the same weights; float32 differences come only
# from op order inside Keras' graph (predict vs the rebuilt model), float64 at rounding level.
TOLERANCE = {"float32": 1e-6, "float64": 1e-12}


def _keras() -> Any:
    import keras

    import duofit.backends.keras  # noqa: F401  (selects Keras' framework: TensorFlow unless already chosen)

    return keras


# --------------------------------------------------------------------------- small models, one per layer family
def _mlp(k: Any) -> tuple[Any, tuple[int, ...]]:
    L = k.layers
    model = k.Sequential(
        [
            k.Input((4,)),
            L.Dense(5, activation="relu", kernel_regularizer=k.regularizers.L2(0.01)),
            L.Dropout(0.25),
            L.BatchNormalization(momentum=0.9, epsilon=1e-4),
            L.Dense(4, activation="gelu", use_bias=False),
            L.Activation("tanh"),
            L.LeakyReLU(negative_slope=0.1),
            L.Dense(3, activation="leaky_relu"),
            L.Dense(2),
            L.Softmax(),
        ]
    )
    return model, (4,)


def _cnn(k: Any) -> tuple[Any, tuple[int, ...]]:
    L = k.layers
    model = k.Sequential(
        [
            k.Input((7, 7, 2)),
            L.Conv2D(3, 3, padding="same", activation="relu"),
            L.MaxPooling2D(2, padding="same"),
            L.Conv2D(2, (2, 1), strides=(1, 2), use_bias=False),
            L.AveragePooling2D(2, strides=1),
            L.Flatten(),
            L.Dense(2, activation="sigmoid"),
        ]
    )
    return model, (7, 7, 2)


def _residual(k: Any) -> tuple[Any, tuple[int, ...]]:
    L = k.layers
    inp = k.Input((5, 5, 2))
    a = L.Conv2D(2, 3, padding="same", name="stem")(inp)
    b = L.Conv2D(2, 3, padding="same", activation="relu", name="block")(a)
    pooled = L.GlobalAveragePooling2D()(L.Add()([a, b]))
    wide = L.Concatenate()([L.Dense(3, name="left")(pooled), L.Dense(3, activation="tanh", name="right")(pooled)])
    out = L.Dense(1)(L.Flatten()(L.Reshape((3, 2))(wide)))
    return k.Model(inp, out), (5, 5, 2)


def _embedding_lstm(k: Any) -> tuple[Any, tuple[int, ...]]:
    L = k.layers
    model = k.Sequential(
        [
            k.Input((7,), dtype="int32"),
            L.Embedding(10, 4, mask_zero=True),
            L.LSTM(3, return_sequences=True, unit_forget_bias=False),
            L.LSTM(2, recurrent_activation="hard_sigmoid"),
            L.Dense(1),
        ]
    )
    return model, (7,)


def _gru(reset_after: bool) -> Callable[[Any], tuple[Any, tuple[int, ...]]]:
    def make(k: Any) -> tuple[Any, tuple[int, ...]]:
        L = k.layers
        model = k.Sequential(
            [
                k.Input((5, 3)),
                L.GRU(3, reset_after=reset_after, return_sequences=True),
                L.SimpleRNN(2, activation="relu"),
                L.Dense(1),
            ]
        )
        return model, (5, 3)

    return make


def _bidirectional(k: Any) -> tuple[Any, tuple[int, ...]]:
    L = k.layers
    model = k.Sequential(
        [
            k.Input((5, 3)),
            L.Bidirectional(L.LSTM(2, return_sequences=True), merge_mode="sum"),
            L.Bidirectional(L.GRU(2, use_bias=False)),
            L.Dense(1),
        ]
    )
    return model, (5, 3)


def _conv1d(k: Any) -> tuple[Any, tuple[int, ...]]:
    L = k.layers
    inp = k.Input((12, 3))
    x = L.Conv1D(4, 3, padding="same", activation="relu")(inp)
    x = L.MaxPooling1D(2)(x)
    x = L.Conv1D(3, 2, strides=2)(x)
    x = L.AveragePooling1D(2, strides=1, padding="same")(x)
    both = L.Concatenate()([L.GlobalAveragePooling1D()(x), L.GlobalMaxPooling1D()(x)])
    return k.Model(inp, L.Dense(1)(both)), (12, 3)


def _layer_norm(k: Any) -> tuple[Any, tuple[int, ...]]:
    L = k.layers
    model = k.Sequential([k.Input((4, 6)), L.LayerNormalization(epsilon=1e-5, center=False), L.Flatten(), L.Dense(2)])
    return model, (4, 6)


def _attention(k: Any) -> tuple[Any, tuple[int, ...]]:
    L = k.layers
    inp = k.Input((6, 4))
    a = L.MultiHeadAttention(2, 3)(inp, inp, use_causal_mask=True)
    h = L.LayerNormalization()(L.Add()([inp, a]))
    c = L.MultiHeadAttention(1, 2, value_dim=3, use_bias=False)(h, inp)
    return k.Model(inp, L.Dense(1)(L.GlobalAveragePooling1D()(c))), (6, 4)


# Functional graphs store each node's call arguments: Keras writes training = False (Dropout,
# the recurrent layers) and mask = None or the embedding's padding-mask tensor itself.
def _functional_mlp(k: Any) -> tuple[Any, tuple[int, ...]]:
    L = k.layers
    inp = k.Input((4,))
    h = L.Dropout(0.3)(L.BatchNormalization(momentum=0.8, epsilon=1e-3)(L.Dense(5, activation="tanh")(inp)))
    return k.Model(inp, L.Dense(2)(h)), (4,)


def _functional_recurrent(k: Any) -> tuple[Any, tuple[int, ...]]:
    L = k.layers
    inp = k.Input((5, 3))
    h = L.GRU(3, return_sequences=True)(L.Dropout(0.2)(L.BatchNormalization()(inp)))
    h = L.Bidirectional(L.LSTM(2, return_sequences=True), merge_mode="sum")(h)
    h = L.Bidirectional(L.GRU(2, return_sequences=True, reset_after=False))(L.LSTM(3, return_sequences=True)(h))
    return k.Model(inp, L.Dense(1)(L.SimpleRNN(2)(h))), (5, 3)


def _functional_masked(k: Any) -> tuple[Any, tuple[int, ...]]:
    L = k.layers
    inp = k.Input((7,), dtype="int32")
    h = L.Dropout(0.1)(L.Embedding(10, 4, mask_zero=True)(inp))
    h = L.Bidirectional(L.GRU(2, return_sequences=True))(L.LSTM(3, return_sequences=True)(h))
    return k.Model(inp, L.Dense(1)(L.GlobalAveragePooling1D()(h))), (7,)


MODELS = {
    "mlp": _mlp,
    "cnn": _cnn,
    "residual": _residual,
    "embedding_lstm": _embedding_lstm,
    "gru_reset_after": _gru(True),
    "gru_reset_before": _gru(False),
    "bidirectional": _bidirectional,
    "conv1d_pools": _conv1d,
    "layer_norm": _layer_norm,
    "attention": _attention,
    "functional_mlp": _functional_mlp,
    "functional_recurrent": _functional_recurrent,
    "functional_masked": _functional_masked,
}


def _randomized(k: Any, model: Any, seed: int) -> None:
    """Every weight drawn anew (biases and batch-norm statistics too), so a dropped one would show."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        arrays = layer.get_weights()
        drawn = [rng.normal(0, 0.5, a.shape) for a in arrays]
        if isinstance(layer, k.layers.BatchNormalization):
            drawn[3] = rng.uniform(0.5, 1.5, arrays[3].shape)
        layer.set_weights([d.astype(a.dtype) for d, a in zip(drawn, arrays, strict=True)])


def _inputs(model: Any, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    rng = np.random.default_rng(1)
    if "int" in str(model.inputs[0].dtype):
        x = rng.integers(1, 10, size=(6, *shape))
        x[:, -2:] = 0  # padding at the end: the mask matters
        x[0, 3:] = 0
        return x
    return rng.normal(size=(6, *shape)).astype(dtype)


def _saved(k: Any, make: Callable[[Any], tuple[Any, tuple[int, ...]]], tmp_path: Path, dtype: str) -> tuple:
    from duofit.backends.keras.layers import floatx

    policy = k.config.dtype_policy()  # Keras fixes its default policy on first use: set it, not only floatx
    k.config.set_dtype_policy(dtype)
    try:
        with floatx(dtype):
            model, shape = make(k)
    finally:
        k.config.set_dtype_policy(policy)
    _randomized(k, model, seed=0)
    model.compile(optimizer=k.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    path = tmp_path / "model.keras"
    model.save(path)
    x = _inputs(model, shape, dtype)
    width = int(model.outputs[0].shape[-1])
    np.savez(
        tmp_path / "data.npz",
        x=x,
        y=np.linspace(0, 1, len(x) * width).reshape(len(x), width).squeeze(-1 if width == 1 else ()),
    )
    return model, path, x


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(MODELS))
def test_imported_archive_rebuilt_by_the_keras_backend_predicts_as_the_original(
    name: str, dtype: str, tmp_path: Path
) -> None:
    from duofit.backends.kerasbackend import KerasBackend
    from duofit.common.init import initial_weights
    from duofit.porting.from_keras import from_keras

    k = _keras()
    model, path, x = _saved(k, MODELS[name], tmp_path, dtype)
    data: dict[str, Any] = {"kind": "npz", "path": str(tmp_path / "data.npz")}
    if x.ndim == 4:  # the spec's shape checks read an image's shape from the data section
        data["image_shape"] = list(x.shape[1:])
    base = {"data": data, "train": {"dtype": dtype}}
    spec = from_keras(path, base, weights_path=tmp_path / "w.npz")
    assert spec.loss.type == "mse" and spec.optimizer.type == "adam" and spec.optimizer.lr == 0.01
    weights = initial_weights(spec, x.shape[1:])
    got = KerasBackend("keras").forward(spec, weights, x)
    want = np.asarray(model.predict_on_batch(x))
    assert got.dtype == want.dtype == np.dtype(dtype)
    np.testing.assert_allclose(got, want, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])


def test_a_live_model_imports_as_its_archive_does(tmp_path: Path) -> None:
    from duofit.porting.from_keras import import_keras_model

    k = _keras()
    model, path, _ = _saved(k, _residual, tmp_path, "float32")
    live, archived = import_keras_model(model), import_keras_model(path)
    assert live.layers == archived.layers and live.sections == archived.sections
    assert live.input_shape == archived.input_shape == (5, 5, 2)
    for key, array in archived.weights.items():
        np.testing.assert_array_equal(live.weights[key], array)
    names = [layer.get("name") for layer in live.layers]
    assert names[:3] == ["stem", "block", None] and names[4:] == ["left", "right", None, None, None, None]
    assert re.fullmatch(r"global_average_pooling2d\w*", str(names[3]))  # read by 'right', not by the layer after it
    assert live.layers[2]["inputs"] == ["stem", "block"] and live.layers[6]["inputs"] == ["left", "right"]


def test_settings_are_written_out_so_no_default_is_taken_silently(tmp_path: Path) -> None:
    from duofit.porting.from_keras import import_keras_model

    k = _keras()
    _, path, _ = _saved(k, _mlp, tmp_path, "float32")
    layers = import_keras_model(path).layers
    assert layers[0] == {
        "type": "dense",
        "units": 5,
        "use_bias": True,
        "activation": "relu",
        "kernel_init": "glorot_uniform",
        "bias_init": "zeros",
        "l2": pytest.approx(0.01),
    }
    assert layers[2] == {"type": "batch_norm", "momentum": 0.1, "epsilon": 1e-4}  # torch's convention: 1 - 0.9
    assert layers[5] == {"type": "activation", "activation": "leaky_relu", "negative_slope": 0.1}
    assert layers[7] == {"type": "activation", "activation": "leaky_relu", "negative_slope": 0.2}  # Keras' function


# --------------------------------------------------------------------------- refusals: no code from the file runs
def test_a_lambda_layer_is_refused_without_running_its_code(tmp_path: Path) -> None:
    from duofit.porting.from_keras import import_keras_model

    k = _keras()
    marker = tmp_path / "ran"
    inp = k.Input((3,))
    out = k.layers.Dense(1)(
        k.layers.Lambda(lambda x, p=str(marker): (open(p, "w").write("ran"), x)[1], name="evil")(inp)
    )
    k.Model(inp, out).save(tmp_path / "lam.keras")
    marker.unlink()  # building the model ran it once, here in the test
    with pytest.raises(SpecError, match=r"layer 'evil' \(Lambda, reads 'input_layer\w*'\).*never runs.*Supported"):
        import_keras_model(tmp_path / "lam.keras")
    assert not marker.exists()


def test_a_custom_class_is_refused_without_loading_it(tmp_path: Path) -> None:
    from duofit.porting.from_keras import import_keras_model

    k = _keras()

    @k.saving.register_keras_serializable(package="mine")
    class Loud(k.layers.Layer):  # type: ignore[name-defined]
        def call(self, x: Any) -> Any:
            return x

        @classmethod
        def from_config(cls, config: dict) -> Any:
            raise RuntimeError("custom code ran")

    k.Sequential([k.Input((3,)), Loud(name="loud"), k.layers.Dense(1)]).save(tmp_path / "c.keras")
    with pytest.raises(SpecError, match=r"layer 'loud' \(mine>Loud, position 0 .*custom class.*Supported Keras layers"):
        import_keras_model(tmp_path / "c.keras")


@pytest.mark.parametrize(
    ("layer", "expected"),
    [
        (lambda L: L.Dense(2, kernel_constraint="non_neg"), "setting kernel_constraint"),
        (lambda L: L.Dense(2, activation="elu"), "setting activation = 'elu'.*supported: relu"),
        (lambda L: L.Dense(2, trainable=False), "setting trainable = False"),
        (lambda L: L.Dense(2, activity_regularizer="l2"), "setting activity_regularizer"),
        (lambda L: L.Conv3D(2, 1), r"\(Conv3D, .*no spec equivalent. Supported Keras layers: InputLayer, Dense"),
    ],
)
def test_a_setting_or_layer_the_spec_cannot_express_is_refused_by_name(layer, expected: str, tmp_path: Path) -> None:
    from duofit.porting.from_keras import import_keras_model

    k = _keras()
    shape = (2, 2, 2, 1) if "Conv3D" in expected else (3,)
    model = k.Sequential([k.Input(shape), layer(k.layers), k.layers.Flatten(), k.layers.Dense(1)])
    with pytest.raises(SpecError, match=expected):
        import_keras_model(model)


def test_recurrent_dropout_and_a_shared_layer_are_refused(tmp_path: Path) -> None:
    from duofit.porting.from_keras import import_keras_model

    k = _keras()
    rnn = k.Sequential([k.Input((4, 2)), k.layers.LSTM(2, recurrent_dropout=0.1), k.layers.Dense(1)])
    with pytest.raises(SpecError, match=re.escape("setting recurrent_dropout = 0.1")):
        import_keras_model(rnn)
    inp = k.Input((3,))
    shared = k.layers.Dense(3, name="twice")
    with pytest.raises(SpecError, match=r"'twice'.*a shared layer"):
        import_keras_model(k.Model(inp, shared(shared(inp))))


def test_call_arguments_of_keras_default_call_are_accepted_others_refused_with_place_and_fix() -> None:
    from duofit.backends.keras.import_graph import graph_nodes
    from duofit.porting.from_keras import import_keras_model

    k = _keras()
    L = k.layers
    model, _ = _functional_masked(k)
    config = json.loads(json.dumps(k.saving.serialize_keras_object(model)))
    kwargs = {e["class_name"]: e["inbound_nodes"][0]["kwargs"] for e in config["config"]["layers"][1:]}
    assert kwargs["Dropout"] == {"training": False}  # what Keras writes; the mask op is no spec layer
    assert (
        kwargs["LSTM"]["mask"]["config"]["keras_history"][0]
        == kwargs["Bidirectional"]["mask"]["config"]["keras_history"][0]
    )
    nodes, _, _ = graph_nodes(config, "m")
    assert [n.entry["class_name"] for n in nodes] == [
        "Embedding",
        "Dropout",
        "LSTM",
        "Bidirectional",
        "GlobalAveragePooling1D",
        "Dense",
    ]
    inp = k.Input((3,))
    mc_dropout = k.Model(inp, L.Dense(1)(L.Dropout(0.2, name="mc")(inp, training=True)))
    expected = (
        r"layer 'mc' \(Dropout, reads 'input_layer\w*'\): call argument training = True has no spec equivalent "
        r"\(supported: training = None or False; .*call the layer on its input tensor\(s\) alone and re-save"
    )
    with pytest.raises(SpecError, match=expected):
        import_keras_model(mc_dropout)
    seq = k.Input((4, 2))
    masked = k.Model(seq, L.Dense(1)(L.LSTM(2, name="rnn")(seq, mask=k.ops.greater(seq[:, :, 0], 0.0))))
    with pytest.raises(SpecError, match=r"layer 'rnn' \(LSTM, reads .*call argument mask = the output of"):
        import_keras_model(masked)


# --------------------------------------------------------------------------- bad archives
def _rewritten(src: Path, dst: Path, change: Callable[[str, bytes], bytes | None]) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = change(info.filename, zin.read(info.filename))
            if data is not None:
                zout.writestr(info.filename, data)
    return dst


def test_bad_archives_are_refused_with_the_fix(tmp_path: Path) -> None:
    from duofit.porting.from_keras import import_keras_model

    k = _keras()
    _, path, _ = _saved(k, _layer_norm, tmp_path, "float32")
    truncated = tmp_path / "cut.keras"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    keras2 = _rewritten(
        path,
        tmp_path / "k2.keras",
        lambda n, b: json.dumps({"keras_version": "2.15.0"}).encode() if n.startswith("meta") else b,
    )
    no_config = _rewritten(path, tmp_path / "nc.keras", lambda n, b: None if n == "config.json" else b)
    no_weights = _rewritten(path, tmp_path / "nw.keras", lambda n, b: None if n.startswith("model.weights") else b)
    legacy = tmp_path / "old.h5"
    legacy.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    cases = {
        truncated: "not a .keras archive .*truncated or corrupt",
        keras2: "saved by Keras 2.15.0; duofit reads Keras 3 archives",
        no_config: "has no config.json",
        no_weights: "has no weights",
        legacy: "legacy HDF5 model",
        tmp_path / "missing.keras": "no such file",
    }
    for bad, expected in cases.items():
        with pytest.raises(DataError, match=expected) as err:
            import_keras_model(bad)
        assert "model.save('model.keras')" in str(err.value) or bad.name == "missing.keras"


def test_data_of_another_shape_is_refused(tmp_path: Path) -> None:
    from duofit.porting.from_keras import from_keras

    k = _keras()
    _, path, _ = _saved(k, _layer_norm, tmp_path, "float32")
    np.savez(tmp_path / "other.npz", x=np.zeros((4, 5, 6)), y=np.zeros((4, 2)))
    with pytest.raises(DataError, match=re.escape("built for samples of shape [4, 6]")):
        from_keras(
            path, {"data": {"kind": "npz", "path": str(tmp_path / "other.npz")}}, weights_path=tmp_path / "w.npz"
        )


# --------------------------------------------------------------------------- compile config
def test_compile_config_maps_exactly_or_is_left_out_with_a_note() -> None:
    k = _keras()
    from duofit.backends.keras.import_compile import compile_sections

    def compiled(optimizer: Any, loss: Any, metrics: list) -> dict:
        model = k.Sequential([k.Input((3,)), k.layers.Dense(1)])
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
        return json.loads(json.dumps(k.saving.serialize_keras_object(model)["compile_config"]))

    cfg = compiled(
        k.optimizers.AdamW(3e-4, weight_decay=0.05, global_clipnorm=1.0, epsilon=1e-8),
        k.losses.SparseCategoricalCrossentropy(from_logits=True),
        ["accuracy", k.metrics.Precision(thresholds=0.3), k.metrics.F1Score()],
    )
    sections, notes = compile_sections(cfg)
    assert sections["optimizer"] == {
        "type": "adamw",
        "lr": 3e-4,
        "beta1": 0.9,
        "beta2": 0.999,
        "epsilon": 1e-8,
        "amsgrad": False,
        "weight_decay": 0.05,
        "clipnorm": 1.0,
    }
    assert sections["loss"] == {"type": "categorical_crossentropy", "from_logits": True, "labels": "integer"}
    assert sections["metrics"] == ["accuracy", {"name": "precision", "threshold": 0.3}]
    assert notes == ["metric left out: F1Score has no spec metric"]
    sections, notes = compile_sections(compiled(k.optimizers.Nadam(), k.losses.Huber(delta=2.0), []))
    assert sections == {}
    assert any("optimizer left out" in n and "Nadam" in n for n in notes)
    assert any("loss left out" in n and "delta" in n for n in notes)
    sections, notes = compile_sections(compiled(k.optimizers.SGD(0.1, momentum=0.9, clipnorm=1.0), "mae", []))
    assert "optimizer" not in sections and any("clipnorm = 1.0" in n for n in notes)


def test_a_float64_run_as_a_process_first_keras_use_leaves_new_models_float32() -> None:
    # Keras fixes its default dtype policy from floatx on first use; a float64 run that is a
    # process's first Keras use once left every later model float64 (a port then read its
    # source model as float64). A fresh process, because this one may have fixed its policy.
    import os
    import subprocess
    import sys

    code = (
        "import duofit.backends.keras\n"
        "from duofit.backends.keras.layers import floatx\n"
        "import keras\n"
        "with floatx('float64'):\n"
        "    inside = keras.layers.Dense(2).dtype_policy.name\n"
        "print(inside, keras.config.dtype_policy().name, keras.layers.Dense(2).dtype_policy.name)\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["float32", "float32", "float32"]
