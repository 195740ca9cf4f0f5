"""Causes of the compiled and mixed-precision modes (``train.compile``, ``train.precision``).

Mixed precision: torch casts per op (``torch.autocast`` keeps a list of ops per device and cast
policy), Keras per layer (the ``mixed_bfloat16`` dtype policy: each layer computes in bfloat16,
its variables stay float32). The two agree on what matters most (float32 master weights, the
loss in float32) and differ in where a bfloat16 rounding happens. Verified in torch 2.13
(``aten/src/ATen/autocast_mode.cpp``, the ``AutocastCPU`` registrations; not shipped in the
wheel, so also by running each op under ``torch.autocast("cpu", torch.bfloat16)``: linear,
conv, LSTM, relu, sigmoid, gelu, softmax, log_softmax, layer_norm and batch_norm return bfloat16;
mse, l1, huber, binary_cross_entropy_with_logits and cross_entropy return float32) and Keras 3.15.1.

Example:
    >>> from duofit.common.loader import load_spec
    >>> spec = load_spec({"data": {"kind": "iris"}, "model": {"layers": [{"type": "dense", "units": 3}]},
    ...                   "loss": {"type": "categorical_crossentropy", "from_logits": True},
    ...                   "train": {"precision": "mixed_bfloat16"}})
    >>> [c.id for c in PRECISION_CAUSES if c.applies(spec, spec, False)]
    ['bf16_bias_rounding', 'bf16_float32_ops', 'bfloat16_rounding']
"""

from __future__ import annotations

from duofit.common.spec import Conv2DLayer, DenseLayer, Spec
from duofit.common.spec.layers_conv1d import Conv1DLayer
from duofit.parity.cause import STAGES, Cause

__all__ = ["BF16_UNIT_ROUNDOFF", "PRECISION_CAUSES", "mixed"]

# bfloat16 keeps 8 significant bits (7 stored + the implicit one): unit roundoff 2^-8 (IEEE-style
# round to nearest), the spacing of neighbouring values 2^-7 relative.
BF16_UNIT_ROUNDOFF = 2.0**-8


def mixed(a: Spec, b: Spec, strict: bool = False) -> bool:
    """Either side trains with mixed precision."""
    return a.train.precision != "float32" or b.train.precision != "float32"


def _biased_mixed(a: Spec, b: Spec, strict: bool) -> bool:
    def biased(s: Spec) -> bool:
        kinds = (DenseLayer, Conv2DLayer, Conv1DLayer)
        return any(isinstance(layer, kinds) and getattr(layer, "use_bias", True) for layer in s.model.layers)

    return mixed(a, b) and (biased(a) or biased(b))


def _compiled(a: Spec, b: Spec, strict: bool) -> bool:
    return a.train.compile or b.train.compile


PRECISION_CAUSES: tuple[Cause, ...] = (
    Cause(
        "bf16_bias_rounding",
        "Mixed bfloat16: Keras rounds a dense/conv output to bfloat16 before adding the bias, torch after",
        "Keras: y = bf16(bf16(x @ W) + b) (Dense.call: ops.matmul, then ops.add, both in the compute dtype); "
        "torch autocast: y = bf16(x @ W + b) (linear/addmm and conv are 'lower_precision_fp' ops: one kernel, "
        "one rounding). Measured on a 64-input, 32-unit layer: torch equals the single rounding in 100% of "
        "outputs, the double rounding in 70%: 30% of outputs one bfloat16 step (2^-7 relative) apart",
        "keras/src/layers/core/dense.py Dense.call, keras/src/layers/convolutional/base_conv.py BaseConv.call; "
        "aten/src/ATen/autocast_mode.cpp (KERNEL_CPU(linear, lower_precision_fp))",
        "nothing to translate (a bfloat16 rounding); mixed_bfloat16 parity uses bfloat16 tolerances "
        "(duofit.parity.report.TOLERANCES['mixed_bfloat16'])",
        STAGES[1:],
        _biased_mixed,
    ),
    Cause(
        "bf16_float32_ops",
        "Mixed bfloat16: which ops compute in float32 differs (torch: per op and device, Keras: per layer)",
        "torch autocast on CPU runs only losses (mse, l1, huber, nll, cross_entropy, "
        "binary_cross_entropy_with_logits) and some linear algebra in float32; softmax, log_softmax, "
        "layer_norm and batch_norm run in the input's dtype (bfloat16). On CUDA softmax, log_softmax, "
        "layer_norm and group_norm are in the float32 list too. Keras' mixed policy: every layer computes "
        "in bfloat16 (a softmax activation too) except BatchNormalization and LayerNormalization, which "
        "compute in float32 and cast their output to bfloat16; losses cast y_pred to float32",
        "aten/src/ATen/autocast_mode.cpp (AutocastCPU / AutocastCUDA fp32 lists); "
        "keras/src/ops/nn.py _layer_normalization (result_type(x, 'float32')), "
        "keras/src/layers/normalization/batch_normalization.py call, keras/src/losses/loss.py Loss.__call__",
        "duofit's torch loop casts the outputs to float32 before the loss, as Keras' Loss does, so the loss "
        "is float32 on both sides for every loss (duofit's probability losses are not on torch's list); "
        "the per-layer differences stay within the bfloat16 tolerances",
        STAGES[1:],
        mixed,
    ),
    Cause(
        "bfloat16_rounding",
        "bfloat16 rounding: 8 significant bits, so another summation order flips the last bit",
        "unit roundoff 2^-8 = 3.9e-3 per rounding (float32: 6e-8); a float32 accumulation that differs in "
        "its last bits (another kernel, oneDNN) rounds to a neighbouring bfloat16 value 2^-7 away; the float32 "
        "master weights keep the updates' own rounding at float32 level. Measured torch vs keras: seed spec "
        "7.6e-2 relative loss over 2500 steps, multiclass example 6.2e-2 over 1350 steps (final weights 0.16); "
        "residual_mlp (five dense layers, two residual adds) parts at step 90 (epoch 2)",
        "bfloat16: 1 sign, 8 exponent, 7 fraction bits; torch/amp/autocast_mode.py, "
        "keras/src/dtype_policies/dtype_policy.py (mixed_bfloat16: compute bfloat16, variables float32)",
        "nothing to translate: mixed_bfloat16 parity uses tolerances derived from 2^-8 "
        "(duofit.parity.report.TOLERANCES); check deeper models with --epochs 1; --strict refuses mixed precision",
        STAGES[1:],
        mixed,
        generic=True,
    ),
    Cause(
        "compiled_kernels",
        "Compiled modes (train.compile) fuse and reorder float operations",
        "torch.compile (inductor) fuses elementwise ops into generated C++/Triton kernels and may reorder "
        "float32 reductions; XLA (jit_compile) does the same on TensorFlow and JAX: results move at "
        "float32 rounding level (about 1e-7 per op), never by a formula",
        "torch/_inductor (codegen/cpp.py, the fused kernels); tensorflow/compiler/xla",
        "float32 tolerances allow for it; the environment records torch_compile / jit_compile",
        STAGES[1:],
        _compiled,
        generic=True,
    ),
)
