"""The layer families' causes (recurrent, embedding, normalization, 1-D convolution) and their predicates.

:data:`LAYER_CAUSES` joins the catalogue in :mod:`duofit.parity.causes`; each predicate here
takes ``(spec_torch, spec_keras, strict)`` and says whether that pair of specs can show the
difference.

Example:
    >>> from duofit.common.loader import load_spec
    >>> spec = load_spec("examples/seed.toml")
    >>> layer_field_differs("layer_norm", "epsilon")(spec, spec, False)
    False
"""

from __future__ import annotations

from collections.abc import Callable

from duofit.common.spec import Spec
from duofit.common.spec.layers_rnn import recurrent_settings
from duofit.parity.cause import TRAINING, UPDATES, Cause

__all__ = ["LAYER_CAUSES", "has_layer", "layer_field_differs", "same_1d"]

Predicate = Callable[[Spec, Spec, bool], bool]


def _settings(spec: Spec, layer_type: str, field: str) -> list[object]:
    return [getattr(layer, field, None) for layer in spec.model.layers if layer.type == layer_type]


def layer_field_differs(layer_type: str, *fields: str) -> Predicate:
    """The layers of ``layer_type`` set one of ``fields`` differently in the two specs."""

    def check(a: Spec, b: Spec, strict: bool) -> bool:
        return any(_settings(a, layer_type, f) != _settings(b, layer_type, f) for f in fields)

    return check


def has_layer(*layer_types: str) -> Predicate:
    """Either spec has a layer of one of ``layer_types``."""
    return lambda a, b, strict: any(layer.type in layer_types for s in (a, b) for layer in s.model.layers)


def same_1d(*layer_types: str, asymmetric_only: bool = True) -> Callable[[Spec], bool]:
    """The spec has a 1-D layer of ``layer_types`` with "same" padding (``asymmetric_only``: padded unevenly).

    TensorFlow puts the odd padded step at the end; a stride > 1 or an even window makes one.
    """

    def check(spec: Spec) -> bool:
        for layer in spec.model.layers:
            if layer.type in layer_types and getattr(layer, "padding", "") == "same":
                size = int(getattr(layer, "kernel_size", 0) or getattr(layer, "pool_size", 1))
                stride = int(getattr(layer, "strides", 0) or size)
                if not asymmetric_only or stride > 1 or size % 2 == 0:
                    return True
        return False

    return check


LAYER_CAUSES: tuple[Cause, ...] = (
    Cause(
        "rnn_double_bias",
        "SimpleRNN/LSTM: torch has two trainable biases (b_ih + b_hh), Keras one",
        "torch: gates = x W_ih^T + b_ih + h W_hh^T + b_hh, both biases receive the same gradient, so one SGD "
        "step moves the effective bias by 2*lr*g (measured ratio 1.9999999999999998); Keras: x K + h R + b, "
        "one step moves b by lr*g. torch's default draws both from U(+-1/sqrt(units)) (triangular sum)",
        "torch/nn/modules/rnn.py RNNBase.__init__ ('Second bias vector included for CuDNN compatibility'); "
        "keras/src/layers/rnn/lstm.py LSTMCell.call; keras/src/backend/torch/rnn.py prepare_lstm_params "
        "(bias_hh = zeros); keras/src/backend/tensorflow/rnn.py _cudnn_lstm (extra bias set to 0)",
        "duofit's torch layer feeds b_hh as a constant zero (backends/torch/rnn.py), as Keras' own bridges do; a "
        "hand port that leaves b_hh trainable passes the first step and fails the trajectory from step 2",
        UPDATES,
        lambda a, b, strict: False,  # duofit always translates it; listed for hand ports
    ),
    Cause(
        "lstm_unit_forget_bias",
        "LSTM forget-gate bias starts at 1 in Keras (unit_forget_bias), at U(+-1/sqrt(units)) in torch",
        "Keras: bias = [init(H), ones(H), init(2H)] (forget block [H:2H]); torch: every bias U(+-1/sqrt(H)); "
        "the forget block is [H:2H] in both layouts",
        "keras/src/layers/rnn/lstm.py LSTMCell.build (unit_forget_bias); torch/nn/modules/rnn.py "
        "RNNBase.reset_parameters",
        "the spec field unit_forget_bias (default true, Keras'); duofit draws the bias once in numpy",
        ("initial_weights", "forward", *TRAINING),
        lambda a, b, strict: (
            recurrent_settings(a.model.layers, "unit_forget_bias")
            != recurrent_settings(b.model.layers, "unit_forget_bias")
        ),
    ),
    Cause(
        "gru_gate_order",
        "GRU gate blocks: Keras stacks (z, r, h), torch (r, z, n); LSTM (i, f, c, o) is the same on both",
        "Keras kernel (F, 3H) = [K_z | K_r | K_h]; torch weight_ih_l0 (3H, F) = [W_r; W_z; W_n]: "
        "weight_ih_l0 = concat(K_r, K_z, K_h).T (both bias rows reordered the same way)",
        "keras/src/backend/torch/rnn.py prepare_gru_params ('Reorder to PyTorch format [r, z, h]') and "
        "prepare_lstm_params ('Gate order is the same in Keras and PyTorch'); torch/nn/modules/rnn.py GRU docstring",
        "duofit's torch layer reorders the Keras-layout weights at every call (backends/torch/rnn.py)",
        ("forward", *TRAINING),
        lambda a, b, strict: False,  # duofit always translates it; listed for hand ports
    ),
    Cause(
        "gru_reset_after",
        "GRU reset gate after the recurrent matmul (Keras default, torch's only form) or before it",
        "reset_after=true: hh = tanh(x K_h + b_h + r * (h R_h + b'_h)), bias (2, 3H); reset_after=false: "
        "hh = tanh(x K_h + b_h + (r * h) R_h), bias (3H,); torch's nn.GRU has only the first",
        "keras/src/layers/rnn/gru.py GRUCell.build and call; torch/nn/modules/rnn.py GRU docstring note "
        "('differs from the original paper ... on purpose for efficiency')",
        "the spec field reset_after (default true); the torch backend refuses false naming the field",
        ("initial_weights", "forward", *TRAINING),
        lambda a, b, strict: (
            recurrent_settings(a.model.layers, "reset_after") != recurrent_settings(b.model.layers, "reset_after")
        ),
    ),
    Cause(
        "rnn_default_initializers",
        "Recurrent initializers: Keras glorot kernel, orthogonal recurrent kernel, zero bias; torch U(+-1/sqrt(units))",
        "Keras: kernel U(+-sqrt(6/(F + G*H))) on the stacked (F, G*H) matrix, recurrent_kernel orthogonal rows "
        "(QR of a normal draw), bias 0; torch: every weight and both biases U(+-1/sqrt(H))",
        "keras/src/layers/rnn/lstm.py, gru.py, simple_rnn.py __init__ defaults; keras/src/initializers/"
        "random_initializers.py Orthogonal, compute_fans; torch/nn/modules/rnn.py RNNBase.reset_parameters",
        "kernel_init / recurrent_init / bias_init ('orthogonal', 'torch_rnn'), drawn once in numpy for every backend",
        ("initial_weights", "forward", *TRAINING),
        lambda a, b, strict: (
            recurrent_settings(a.model.layers, "kernel_init", "recurrent_init", "bias_init")
            != recurrent_settings(b.model.layers, "kernel_init", "recurrent_init", "bias_init")
        ),
    ),
    Cause(
        "rnn_activation_defaults",
        "Recurrent activations: torch's cells fix tanh/sigmoid (nn.RNN: tanh or relu); Keras takes any",
        "torch LSTM/GRU: sigmoid gates, tanh candidate; Keras: activation='tanh', recurrent_activation='sigmoid' "
        "by default, any callable (Keras 2.0-2.2 defaulted to hard_sigmoid; Keras 3's is relu6(x + 3) / 6)",
        "torch/nn/modules/rnn.py RNN (nonlinearity 'tanh'|'relu'), LSTM/GRU docstrings; "
        "keras/src/layers/rnn/lstm.py LSTMCell.__init__; keras/src/activations/activations.py hard_sigmoid",
        "the spec fields activation / recurrent_activation; the torch backend refuses what its cells cannot compute",
        ("forward", *TRAINING),
        lambda a, b, strict: (
            recurrent_settings(a.model.layers, "activation", "recurrent_activation")
            != recurrent_settings(b.model.layers, "activation", "recurrent_activation")
        ),
    ),
    Cause(
        "bidirectional_last_output",
        "Bidirectional last output: torch's output[:, -1] holds the backward direction's first step",
        "torch bidirectional output (N, T, 2H): output[:, -1, H:] is the backward layer after ONE step; Keras "
        "Bidirectional (return_sequences=false) returns the backward layer's state after all T steps, = h_n[1] "
        "(measured: rel 1.37 when output[:, -1] is used)",
        "keras/src/layers/rnn/bidirectional.py Bidirectional.call; torch/nn/modules/rnn.py RNNBase (h_n)",
        "duofit runs the backward layer on the reversed sequence and takes its last state (backends/torch/rnn.py)",
        ("forward", *TRAINING),
        lambda a, b, strict: False,  # duofit always translates it; listed for hand ports
    ),
    Cause(
        "torch_batch_first_default",
        "torch's RNN modules read (steps, batch, features) unless batch_first=True",
        "nn.RNN/LSTM/GRU(batch_first=False) read an (N, T, F) batch as (T, N, F) without any error; Keras is "
        "always (N, T, F)",
        "torch/nn/modules/rnn.py RNNBase.__init__ (batch_first: bool = False)",
        "duofit's torch layers always use batch_first=True",
        ("forward", *TRAINING),
        lambda a, b, strict: False,  # duofit always translates it; listed for hand ports
    ),
    Cause(
        "layernorm_epsilon",
        "Layer norm epsilon: torch 1e-5, Keras 1e-3 by default",
        "both: (x - mean) / sqrt(var + eps) * gamma + beta over the last axis, var the biased (/N) variance; "
        "torch nn.LayerNorm eps=1e-5, Keras LayerNormalization epsilon=1e-3 (measured on x ~ N(3, 1), 16 "
        "features: 6.4e-4 relative with each side's default, 4.1e-16 with the same epsilon)",
        "torch/nn/modules/normalization.py LayerNorm.__init__; "
        "keras/src/layers/normalization/layer_normalization.py LayerNormalization.__init__, keras/src/ops/nn.py "
        "_layer_normalization",
        "the spec's epsilon (default 1e-5) is passed explicitly to both; a port that keeps each default fails "
        "stage (b)",
        ("forward", *TRAINING),
        layer_field_differs("layer_norm", "epsilon"),
    ),
    Cause(
        "layernorm_rms_scaling",
        "Keras LayerNormalization(rms_scaling=True) is neither torch's LayerNorm nor RMSNorm",
        "Keras: x * rsqrt(var(x) + eps) * gamma, no centering and no beta; torch nn.RMSNorm: "
        "x * rsqrt(mean(x^2) + eps) * weight",
        "keras/src/ops/nn.py _layer_normalization (rms_scaling); torch/nn/modules/normalization.py RMSNorm",
        "duofit never sets rms_scaling; listed for hand ports",
        ("forward", *TRAINING),
        lambda a, b, strict: False,  # duofit never uses it; listed for hand ports
    ),
    Cause(
        "layernorm_affine_flags",
        "Layer norm weights: Keras center/scale vs torch elementwise_affine/bias",
        "Keras scale <-> torch weight (gamma), center <-> bias (beta); torch's elementwise_affine=False drops "
        "both, so scale=false with center=true has no nn.LayerNorm flag",
        "keras/src/layers/normalization/layer_normalization.py build; torch/nn/modules/normalization.py "
        "LayerNorm.__init__",
        "duofit's torch layer calls F.layer_norm with gamma and beta each optional (backends/torch/sequence.py)",
        ("initial_weights", "forward", *TRAINING),
        layer_field_differs("layer_norm", "center", "scale"),
    ),
    Cause(
        "embedding_initializers",
        "Embedding tables: torch N(0, 1), Keras U(-0.05, 0.05)",
        "torch nn.Embedding: weight ~ N(0, 1); Keras Embedding: embeddings_initializer='uniform' = "
        "RandomUniform(-0.05, 0.05): a 20x scale difference that a following layer_norm hides in the forward "
        "pass but not in the gradients",
        "torch/nn/modules/sparse.py Embedding.reset_parameters; keras/src/layers/core/embedding.py "
        "Embedding.__init__, keras/src/initializers/random_initializers.py RandomUniform",
        "one numpy draw for every backend; the spec's default is Keras' 'uniform', torch's is 'torch_embedding'",
        ("initial_weights", "forward", *TRAINING),
        lambda a, b, strict: any(
            layer_field_differs(t, "embeddings_init")(a, b, strict) for t in ("embedding", "positional_embedding")
        ),
    ),
    Cause(
        "embedding_padding_idx",
        "torch padding_idx is not Keras mask_zero",
        "torch padding_idx=0: row 0 zero at init and never updated, no mask downstream; Keras mask_zero=True: "
        "row 0 an ordinary trainable row, and a mask (ids != 0) that pooling and attention honour",
        "torch/nn/modules/sparse.py (padding_idx docstring, _fill_padding_idx_with_zero); "
        "keras/src/layers/core/embedding.py compute_mask",
        "duofit maps mask_zero to a mask on both backends (backends/torch/sequence.py TokenMask), never to padding_idx",
        ("initial_weights", "forward", *TRAINING),
        lambda a, b, strict: False,  # duofit always translates it; listed for hand ports
    ),
    Cause(
        "global_pool_masks",
        "Global pooling over padded steps: Keras' average honours the mask, its max does not",
        "Keras GlobalAveragePooling1D with a mask: sum(where(mask, x, 0)) / sum(mask); GlobalMaxPooling1D: max "
        "over every step, padding included; without a mask (mask_zero=false) both pool every step",
        "keras/src/layers/pooling/global_average_pooling1d.py call; global_max_pooling1d.py call",
        "duofit's torch layer averages the unmasked steps exactly where Keras sees a mask (mask_flow)",
        ("forward", *TRAINING),
        layer_field_differs("embedding", "mask_zero"),
    ),
    Cause(
        "keras_mask_propagation",
        "Keras drops a padding mask at Add with an unmasked input, Flatten, Reshape, Conv1D and pooling",
        "base_merge compute_mask: 'if any(m is None for m in mask): return None'; layers without "
        "supports_masking drop it: token_embedding(mask_zero) + position_embedding silently loses the mask",
        "keras/src/layers/merging/base_merge.py compute_mask; keras/src/layers/layer.py __call__",
        "duofit's positional_embedding adds its table inside the layer and keeps the mask; the torch backend "
        "follows Keras' propagation rules (common/spec/shapes.py mask_flow)",
        ("forward", *TRAINING),
        lambda a, b, strict: False,  # duofit always mirrors it; listed for hand ports
    ),
    Cause(
        "conv1d_layout",
        "Conv1D kernels and inputs: Keras (k, in, out) on (N, L, C), torch (out, in, k) on (N, C, L)",
        "both cross-correlate (no flip): torch weight = keras kernel.transpose(2, 1, 0); the input is "
        "transposed to channels-first around the convolution",
        "keras/src/layers/convolutional/base_conv.py build (kernel_shape); torch/nn/modules/conv.py Conv1d",
        "duofit translates the layout (backends/torch/sequence.py CONV1D_PERM)",
        ("forward", *TRAINING),
        lambda a, b, strict: False,  # duofit always translates it; listed for hand ports
    ),
)
