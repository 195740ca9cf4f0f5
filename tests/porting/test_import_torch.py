"""Importing torch modules: the round trip (import -> duofit's torch backend -> the same outputs) and refusals."""

from __future__ import annotations

import re
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from duofit.common.errors import SpecError
from duofit.common.init import initial_weights
from duofit.common.loader import load_spec

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from duofit.backends.torch.importer import import_torch, source_input  # noqa: E402
from duofit.common.registry import get_backend  # noqa: E402
from duofit.porting.from_torch import from_torch, load_factory  # noqa: E402

pytestmark = pytest.mark.torch

# The round trip's tolerance: the acceptance bound (float32 / float64); the same kernels run on
# both sides, so only reassociation (a bias sum, an attention scale one ulp apart) differs.
TOLERANCE = {"float32": 1e-6, "float64": 1e-12}
N = 5  # samples per forward


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(4, 6), nn.Linear(6, 6), nn.Linear(6, 2)

    def forward(self, x: Any) -> Any:
        h = torch.relu(self.fc1(x))
        return F.softmax(self.out(h + self.fc2(h)), dim=1)


class Concat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.out = nn.Linear(4, 3), nn.Linear(4, 5), nn.Linear(8, 1)

    def forward(self, x: Any) -> Any:
        return self.out(torch.cat([F.gelu(self.a(x)), self.b(x).tanh()], dim=1))


class CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 3, 2, stride=1)
        self.avg = nn.AvgPool2d(2, stride=1)
        self.bn = nn.BatchNorm1d(12)
        self.fc = nn.Linear(12, 3)

    def forward(self, x: Any) -> Any:
        h = self.pool(F.relu(self.conv1(x)))
        h = self.avg(torch.sigmoid(self.conv2(h)))
        return self.fc(self.bn(h.view(h.size(0), -1)))


class GapCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 4, padding="same", bias=False)
        self.bn = nn.BatchNorm2d(4, eps=1e-3, momentum=0.01)
        self.gap, self.flat = nn.AdaptiveAvgPool2d(1), nn.Flatten()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: Any) -> Any:
        return self.fc(self.flat(self.gap(F.relu(self.bn(self.conv(x)))))).softmax(dim=-1)


class ChannelsLastCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1)
        self.fc = nn.Linear(2, 2)

    def forward(self, x: Any) -> Any:  # reads NHWC itself
        return torch.softmax(self.fc(self.conv(x.permute(0, 3, 1, 2)).mean(dim=(2, 3))), dim=-1)


class TokensLSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb, self.lstm, self.fc = nn.Embedding(20, 6), nn.LSTM(6, 5, batch_first=True), nn.Linear(5, 2)

    def forward(self, ids: Any) -> Any:
        out, _ = self.lstm(self.emb(ids))
        return self.fc(out[:, -1])


class LastState(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gru, self.fc = nn.GRU(3, 4, batch_first=True), nn.Linear(4, 1)

    def forward(self, x: Any) -> Any:
        _, h = self.gru(x)
        return self.fc(h[-1])


class BiSequence(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm, self.fc = nn.LSTM(3, 4, batch_first=True, bidirectional=True), nn.Linear(8, 2)

    def forward(self, x: Any) -> Any:
        return self.fc(self.lstm(x)[0].mean(dim=1))


class BiLast(nn.Module):
    def __init__(self, cell: type = nn.GRU, merge: str = "concat") -> None:
        super().__init__()
        self.rnn, self.merge = cell(3, 4, batch_first=True, bidirectional=True), merge
        self.fc = nn.Linear(8 if merge == "concat" else 4, 2)

    def forward(self, x: Any) -> Any:
        _, h = self.rnn(x)
        if isinstance(self.rnn, nn.LSTM):
            h = h[0]  # (h_n, c_n)
        return self.fc(torch.cat([h[0], h[1]], dim=1) if self.merge == "concat" else h[0] + h[1])


class Reshaped(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc, self.rnn, self.out = (
            nn.Linear(6, 12),
            nn.RNN(3, 4, batch_first=True, nonlinearity="relu"),
            nn.Linear(4, 1),
        )

    def forward(self, x: Any) -> Any:
        seq = F.leaky_relu(self.fc(x), 0.1).view(x.size(0), 4, 3)
        return self.out(self.rnn(seq)[1].squeeze(0))


class Conv1DNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.pool = nn.Conv1d(3, 4, 3, padding=1), nn.MaxPool1d(2)
        self.conv2 = nn.Conv1d(4, 4, 2, stride=2)
        self.fc = nn.Linear(4 * 2, 2)

    def forward(self, x: Any) -> Any:
        h = self.conv2(self.pool(torch.relu(self.conv(x))))
        return self.fc(h.flatten(1))


class Conv1DChannelsLast(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.pool = nn.Conv1d(3, 4, 3), nn.AvgPool1d(2)
        self.gap, self.fc = nn.AdaptiveAvgPool1d(1), nn.Linear(4, 1)

    def forward(self, x: Any) -> Any:  # reads (N, L, C) itself
        h = self.pool(self.conv(x.transpose(1, 2)))
        return self.fc(self.gap(h).view(x.size(0), -1))


class Attention(nn.Module):
    def __init__(self, cross: bool = False) -> None:
        super().__init__()
        self.cross = cross
        self.proj = nn.Linear(8, 8)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.norm = nn.LayerNorm(8, eps=1e-6)
        self.fc = nn.Linear(8, 3)

    def forward(self, x: Any) -> Any:
        kv = self.proj(x) if self.cross else x
        h = self.norm(x + self.attn(x, kv, kv, need_weights=False)[0])
        return self.fc(h.mean(dim=1))


def _mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 6), nn.Tanh(), nn.Linear(6, 3), nn.Softmax(dim=-1)
    )


def _mlp_norms() -> nn.Module:
    return nn.Sequential(
        nn.Linear(4, 8), nn.BatchNorm1d(8, momentum=0.3), nn.GELU(), nn.Linear(8, 6), nn.LayerNorm(6),
        nn.LeakyReLU(0.2), nn.Linear(6, 1), nn.Sigmoid(),
    )  # fmt: skip


# name -> (factory, duofit sample shape, reads channels-first, token ids)
CASES: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...], bool, bool]] = {
    "mlp": (_mlp, (4,), False, False),
    "mlp_norms": (_mlp_norms, (4,), False, False),
    "residual_add": (Residual, (4,), False, False),
    "concatenate": (Concat, (4,), False, False),
    "cnn_flatten": (CNN, (8, 8, 2), True, False),
    "cnn_same_gap": (GapCNN, (7, 7, 1), True, False),
    "cnn_channels_last_input": (ChannelsLastCNN, (5, 5, 3), False, False),
    "embedding_lstm": (TokensLSTM, (7,), False, True),
    "gru_last_state": (LastState, (6, 3), False, False),
    "bidirectional_sequence": (BiSequence, (6, 3), False, False),
    "bidirectional_last": (BiLast, (6, 3), False, False),
    "bidirectional_sum": (lambda: BiLast(nn.RNN, "sum"), (6, 3), False, False),
    "bidirectional_lstm": (lambda: BiLast(nn.LSTM), (6, 3), False, False),
    "reshape_rnn": (Reshaped, (6,), False, False),
    "conv1d": (Conv1DNet, (8, 3), True, False),
    "conv1d_channels_last_input": (Conv1DChannelsLast, (9, 3), False, False),
    "attention_layer_norm": (Attention, (5, 8), False, False),
    "cross_attention": (lambda: Attention(cross=True), (5, 8), False, False),
}


def _build(name: str, dtype: str) -> nn.Module:
    torch.manual_seed(sum(map(ord, name)))
    module = CASES[name][0]()
    for m in module.modules():  # non-trivial statistics, so eval-mode batch norm is checked too
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    return (module.double() if dtype == "float64" else module).eval()


def _sample(name: str, dtype: str) -> np.ndarray:
    _, shape, _, tokens = CASES[name]
    rng = np.random.default_rng(0)
    if tokens:
        return rng.integers(0, 20, size=(N, *shape))
    return rng.normal(size=(N, *shape)).astype(dtype)


def _spec(layers: list[dict[str, Any]], shape: tuple[int, ...], dtype: str) -> Any:
    """A spec around the imported layers, its data shaped as the module's input (the data is not read)."""
    field = {2: "sequence_shape", 3: "image_shape"}.get(len(shape))
    data = {"kind": "npz", "path": "unused.npz", **({field: list(shape)} if field else {})}
    return load_spec({"data": data, "model": {"layers": layers}, "loss": {"type": "mse"}, "train": {"dtype": dtype}})


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")  # torch pads a copy: fine
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(CASES))
def test_imported_module_gives_the_same_outputs_on_the_torch_backend(name: str, dtype: str) -> None:
    module = _build(name, dtype)
    _, shape, channels_first, _ = CASES[name]
    imported = import_torch(module, shape)
    assert imported.framework == "torch" and imported.input_shape == shape
    assert any("channels-first" in note for note in imported.notes) == channels_first
    x = _sample(name, dtype)
    with torch.no_grad():
        expected = module(torch.as_tensor(source_input(x, channels_first))).numpy()
    got = get_backend("torch").forward(_spec(imported.layers, shape, dtype), imported.weights, x)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE[dtype])


def test_settings_are_written_out_and_activations_folded() -> None:
    layers = import_torch(_build("cnn_same_gap", "float32"), (7, 7, 1)).layers
    conv, bn = layers[0], layers[1]
    assert conv == {"type": "conv2d", "filters": 4, "kernel_size": [4, 4], "strides": [1, 1], "padding": "same",
                    "dilation": [1, 1], "use_bias": False, "kernel_init": "torch_linear", "bias_init": "torch_linear",
                    "name": "conv"}  # fmt: skip
    assert (bn["momentum"], bn["epsilon"]) == (0.01, 1e-3)  # torch's convention is the spec's
    assert [layer["type"] for layer in layers] == ["conv2d", "batch_norm", "activation", "global_avg_pool2d", "dense"]
    assert layers[-1]["activation"] == "softmax"  # folded: the dense's only reader
    mlp = import_torch(_build("mlp", "float32"), (4,)).layers
    assert [(lay["type"], lay.get("activation")) for lay in mlp] == [
        ("dense", "relu"), ("dropout", None), ("dense", "tanh"), ("dense", "softmax"),
    ]  # fmt: skip


def test_initializers_are_torch_defaults_not_keras_ones() -> None:
    """The weights are the module's own, but the spec still states what each module type draws."""
    imported = import_torch(_build("embedding_lstm", "float32"), (7,))
    by_type = {layer["type"]: layer for layer in imported.layers}
    assert by_type["embedding"]["embeddings_init"] == "torch_embedding"
    lstm = by_type["lstm"]
    assert (lstm["kernel_init"], lstm["recurrent_init"], lstm["bias_init"]) == ("torch_rnn",) * 3
    assert lstm["unit_forget_bias"] is False
    assert (by_type["dense"]["kernel_init"], by_type["dense"]["bias_init"]) == ("torch_linear", "torch_linear")
    assert any("torch's defaults" in note and "model.weights" in note for note in imported.notes)
    bi = import_torch(_build("bidirectional_sum", "float32"), (6, 3)).layers[0]
    assert bi["layer"]["kernel_init"] == "torch_rnn" and "unit_forget_bias" not in bi["layer"]  # an nn.RNN


def test_flatten_after_a_conv_permutes_the_next_dense_columns() -> None:
    imported = import_torch(_build("cnn_flatten", "float32"), (8, 8, 2))
    assert any("columns are permuted" in note for note in imported.notes)
    module = _build("cnn_flatten", "float32")
    original = module.fc.weight.detach().numpy()
    moved = imported.weights[f"layers.{len(imported.layers) - 1}.kernel"].T  # back to torch's [out, in]
    assert not np.array_equal(moved, original)
    order = np.moveaxis(np.arange(12).reshape(3, 2, 2), 0, -1).ravel()
    np.testing.assert_array_equal(moved, original[:, order])


def test_the_module_is_left_as_it_was() -> None:
    module = _build("cnn_flatten", "float32").train()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    import_torch(module, (8, 8, 2))
    assert module.training and all(m.training for m in module.modules())
    for key, value in module.state_dict().items():
        assert torch.equal(value, before[key]), key


class Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 1)

    def forward(self, x: Any) -> Any:
        if x.sum() > 0:
            return self.fc(x)
        return -self.fc(x)


class Prelu(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4), nn.PReLU())
        self.head = nn.Linear(4, 1)

    def forward(self, x: Any) -> Any:
        return self.head(self.encoder(x))


class WithTransformer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.t = nn.Transformer(d_model=4, nhead=2, num_encoder_layers=1, num_decoder_layers=1, batch_first=True)
        self.fc = nn.Linear(4, 1)

    def forward(self, x: Any) -> Any:
        return self.fc(self.t(x, x).mean(dim=1))


class Exp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 1)

    def forward(self, x: Any) -> Any:
        return self.fc(torch.exp(x))


class BiLastStep(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn, self.fc = nn.GRU(3, 4, batch_first=True, bidirectional=True), nn.Linear(8, 1)

    def forward(self, x: Any) -> Any:
        return self.fc(self.rnn(x)[0][:, -1])


class Shared(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: Any) -> Any:
        return self.fc(self.fc(x))


@pytest.mark.parametrize(
    ("module", "shape", "expected"),
    [
        (Branchy(), (4,), r"torch.fx cannot trace Branchy.forward at test_import_torch.py:\d+ .*control flow"),
        (Prelu(), (4,), r"node 'encoder_2' \(module encoder.2: torch.nn.PReLU\), step 4 of 6 .*reading encoder_1: "
         r"no duofit layer computes it .*supported: modules nn.AdaptiveAvgPool1d"),
        (WithTransformer(), (3, 4), r"module t: torch.nn.Transformer.*supported: "),
        (Exp(), (4,), r"function torch.exp.*supported: "),
        (nn.Sequential(nn.Embedding(9, 2, padding_idx=0), nn.Flatten(), nn.Linear(6, 1)), (3,), "padding_idx=0"),
        (BiLastStep(), (5, 3), r"indexes with \(slice\(None, None, None\), -1\).*torch.cat\(\[h_n\[0\], h_n\[1\]\]"),
        (nn.Sequential(nn.Conv2d(1, 2, 3, padding=2), nn.Flatten(), nn.Linear(200, 1)), (8, 8, 1), r"padding=\(2, 2"),
        (nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=0)), (4,), "softmax over dim=0"),
        (Shared(), (4,), "calls a module with weights a second time"),
        (nn.Sequential(nn.LSTM(3, 4, num_layers=2, batch_first=True)), (5, 3), "num_layers=2"),
    ],
    ids=["untraceable", "prelu", "transformer", "exp", "padding_idx", "bidirectional_last_step", "conv_padding",
         "softmax_batch_axis", "shared_weights", "two_layers"],
)  # fmt: skip
def test_what_has_no_exact_spec_layer_is_refused_by_name(module: nn.Module, shape: tuple, expected: str) -> None:
    with pytest.raises(SpecError, match=expected) as err:
        import_torch(module, shape)
    assert err.value.exit_code == 2


IRIS_BASE = {"data": {"kind": "iris"}, "loss": {"type": "categorical_crossentropy", "from_logits": True}}
FACTORIES = """
import torch
from torch import nn

def make():
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))

def broken():
    raise RuntimeError("no weights here")

def not_a_module():
    return {"weights": 1}

value = 3
"""


@pytest.fixture
def factories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"duofit_factories_{abs(hash(tmp_path)) % 10**8}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(FACTORIES))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_from_torch_builds_a_spec_whose_initial_weights_are_the_modules(factories: str, tmp_path: Path) -> None:
    spec = from_torch(f"{factories}:make", IRIS_BASE, weights_path=tmp_path / "w.npz")
    assert spec.model.weights == str(tmp_path / "w.npz")
    module = load_factory(f"{factories}:make")
    drawn = initial_weights(spec, (4,))
    np.testing.assert_array_equal(drawn["layers.0.kernel"], module[0].weight.detach().numpy().T)
    np.testing.assert_array_equal(drawn["layers.1.bias"], module[2].bias.detach().numpy())


def test_from_torch_reads_images_channels_last_from_the_base_data() -> None:
    base = {"data": {"kind": "digits", "image_shape": [8, 8, 1]}, "loss": {"type": "categorical_crossentropy"}}
    module = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(72, 10))
    spec = from_torch(module, base)
    assert Path(spec.model.weights).parent.name.startswith("duofit-import-")
    assert [layer.type for layer in spec.model.layers] == ["conv2d", "flatten", "dense"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("model.pt", "model.pt is a pickled torch file, which duofit never loads .*give a factory module:function"),
        ("checkpoints/net.PTH", "net.PTH is a pickled torch file"),
        ("no colon here", "is not a factory module:function"),
        ("duofit_no_such_module_xyz:make", "no module 'duofit_no_such_module_xyz' to import; run from the folder"),
        ("{m}:mkae", "has no attribute 'mkae' \\(did you mean make\\?\\)"),
        ("{m}:value", "is a int, not a function to call"),
        ("{m}:broken", "the factory raised RuntimeError: no weights here"),
        ("{m}:not_a_module", "the factory returned a dict, not a torch.nn.Module"),
    ],
)
def test_bad_factories_are_refused_with_the_fix(factories: str, text: str, expected: str) -> None:
    with pytest.raises(SpecError, match=expected) as err:
        load_factory(text.format(m=factories))
    assert err.value.exit_code == 2 and err.value.path == "source"


def test_a_module_whose_shape_does_not_fit_the_data_is_refused() -> None:
    with pytest.raises(SpecError, match=re.escape("running it on a sample of shape [3, 4]")):
        from_torch(nn.Sequential(nn.Linear(5, 3)), IRIS_BASE)
