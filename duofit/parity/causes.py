"""Catalogue of known formula differences between PyTorch and Keras 3 (on TensorFlow, torch or JAX).

Each entry states the math on both sides, where it was verified (file and function in
the frameworks' source, versions in constraints.txt), which spec settings trigger it,
which report stages it can break, and what duofit does about it (translate always, or
only in ``--strict`` mode, or nothing possible). The report names every matching cause
of a failing stage.

Example:
    >>> from duofit.common.loader import load_spec
    >>> spec = load_spec("examples/seed.toml")
    >>> [c.id for c in matching_causes(spec, spec, strict=False, stage="trajectory")]
    ['adam_epsilon_hat', 'onednn', 'float32_growth']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np

from duofit.common.spec import (
    ActivationLayer,
    AvgPool2DLayer,
    BatchNormLayer,
    BCELoss,
    CCELoss,
    Conv2DLayer,
    DenseLayer,
    DropoutLayer,
    Spec,
)
from duofit.parity.cause import STAGES, TRAINING, UPDATES, Cause
from duofit.parity.causes_attention import ATTENTION_CAUSES
from duofit.parity.causes_layers import LAYER_CAUSES, same_1d
from duofit.parity.causes_precision import PRECISION_CAUSES

__all__ = ["CAUSES", "STAGES", "Cause", "matching_causes"]


def _opt(*types: str) -> Callable[[Spec, Spec, bool], bool]:
    return lambda a, b, strict: not strict and (a.optimizer.type in types or b.optimizer.type in types)


_L = TypeVar("_L")


def _has(layer_type: type[_L], pred: Callable[[_L], bool] = lambda layer: True) -> Callable[[Spec], bool]:
    return lambda s: any(isinstance(layer, layer_type) and pred(layer) for layer in s.model.layers)


def _differs(field: str) -> Callable[[Spec, Spec, bool], bool]:
    def check(a: Spec, b: Spec, strict: bool) -> bool:
        return getattr(a.optimizer, field, None) != getattr(b.optimizer, field, None)

    return check


def _f32_hyper(a: Spec, b: Spec, strict: bool) -> bool:
    if strict or a.train.dtype != "float64":
        return False
    names = ("momentum", "beta1", "beta2", "rho", "weight_decay")
    values = [float(getattr(s.optimizer, n)) for s in (a, b) for n in names if hasattr(s.optimizer, n)]
    return any(float(np.float32(v)) != v for v in values)


def _f32_activation(a: Spec, b: Spec, strict: bool) -> bool:
    def uses(s: Spec) -> bool:
        return any(
            getattr(layer, "activation", None) in ("gelu", "leaky_relu")
            for layer in s.model.layers
            if isinstance(layer, (DenseLayer, ActivationLayer))
        )

    return not strict and a.train.dtype == "float64" and (uses(a) or uses(b))


def _probs_ce(a: Spec, b: Spec, strict: bool) -> bool:
    return any(isinstance(s.loss, (BCELoss, CCELoss)) and not s.loss.from_logits for s in (a, b))


def _partial_batch(a: Spec, b: Spec, strict: bool) -> bool:
    return False  # duofit computes the Keras weighting on both; listed for users porting by hand


CAUSES: tuple[Cause, ...] = (
    Cause(
        "adam_epsilon_hat",
        "Adam/AdamW: epsilon added to sqrt(v) before bias correction in Keras, after in torch",
        "torch: w -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps); "
        "Keras: w -= lr*sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps), i.e. eps_hat = eps*sqrt(1-b2^t): in torch's "
        "terms Keras' epsilon is eps/sqrt(1-b2^t), 31.6x at step 1, so weights with gradients near 1e-6 "
        "(embedding rows of rare words) move differently. The same epsilon on both sides does not help. "
        "Measured with Keras' own Adam in float64 (no float32 rounding): the example models' loss parts at "
        "step 2 (text_embedding 1e-3, text_transformer 1.8e-3 relative) and exceeds the float32 trajectory "
        "tolerance (lstm_sunspots 1.1e-4, conv1d_sunspots 1.4e-3 within 100 steps)",
        "keras/src/optimizers/adam.py Adam.update_step; torch/optim/adam.py _single_tensor_adam",
        "--strict runs torch's formula in Keras (duofit.backends.keras.exact.ExactAdam)",
        UPDATES,
        _opt("adam", "adamw"),
    ),
    Cause(
        "rmsprop_epsilon",
        "RMSprop: epsilon inside the square root in Keras, outside in torch",
        "torch: w -= lr * g / (sqrt(v) + eps); Keras: w -= lr * g / sqrt(v + eps). Default rho: "
        "Keras 0.9, torch alpha 0.99 (duofit's spec fixes rho)",
        "keras/src/optimizers/rmsprop.py RMSprop.update_step; torch/optim/rmsprop.py _single_tensor_rmsprop",
        "--strict runs torch's formula in Keras (ExactRMSprop)",
        UPDATES,
        _opt("rmsprop"),
    ),
    Cause(
        "sgd_momentum_form",
        "SGD momentum: torch accumulates gradients, Keras accumulates lr-scaled steps",
        "torch: v = mu*v + g; w -= lr*v.  Keras: v = mu*v - lr*g; w += v.  Equal only while the learning "
        "rate is constant (a schedule changes the effective history); rounding differs otherwise",
        "keras/src/optimizers/sgd.py SGD.update_step; torch/optim/sgd.py _single_tensor_sgd",
        "--strict runs torch's formula in Keras (ExactSGD)",
        UPDATES,
        lambda a, b, strict: not strict and any(getattr(s.optimizer, "momentum", 0) for s in (a, b)),
    ),
    Cause(
        "keras_float32_hyperparameters",
        "Keras rounds optimizer hyperparameters to float32, even in a float64 model",
        "ops.cast(self.momentum, variable.dtype) first makes a float32 tensor of the Python float: "
        "momentum 0.9 -> 0.8999999762 (also beta_1, beta_2, rho, weight_decay); measured: lr=0.1, "
        "momentum=0.9, float64, 10 epochs of the seed spec -> 3.5e-8 relative loss drift; values exactly "
        "representable in float32 (0.125, 0.875) agree to 1e-15",
        "keras/src/optimizers/sgd.py, adam.py, rmsprop.py update_step; base_optimizer._apply_weight_decay",
        "--strict holds every hyperparameter as a Python float multiplied in float64 (exact optimizers)",
        UPDATES,
        _f32_hyper,
    ),
    Cause(
        "weight_decay_coupling",
        "Weight decay coupled (L2 added to the gradient) vs decoupled (AdamW)",
        "coupled: g <- g + wd*w (torch's `weight_decay` on SGD/Adam/RMSprop); "
        "decoupled: w <- w - lr*wd*w (torch AdamW, Keras `weight_decay` on every optimizer)",
        "keras/src/optimizers/base_optimizer.py _apply_weight_decay; torch/optim/adam.py (weight_decay) vs adamw.py",
        "the spec's decay_kind says which; each backend translates (Keras: coupled via a gradient hook)",
        UPDATES,
        lambda a, b, strict: _differs("decay_kind")(a, b, strict) or _differs("weight_decay")(a, b, strict),
    ),
    Cause(
        "l2_in_logged_loss",
        "Keras adds kernel regularisation (L1/L2) to the logged loss; a torch loop only if written to",
        "Keras: loss = data_loss + sum(layer.losses); torch: whatever the loop adds",
        "keras/src/trainers/trainer.py Trainer.compute_loss",
        "duofit's torch loop adds the same l1*sum|W| + l2*sum W^2 to the loss it optimises and logs",
        ("first_step", "trajectory"),
        lambda a, b, strict: (
            _has(DenseLayer, lambda layer: bool(layer.l1 or layer.l2))(a)
            != _has(DenseLayer, lambda layer: bool(layer.l1 or layer.l2))(b)
        ),
    ),
    Cause(
        "batchnorm_conventions",
        "Batch norm: momentum convention, epsilon default and running variance",
        "torch: running = (1-m)*running + m*batch, m=0.1, eps=1e-5, running_var uses the UNBIASED batch "
        "variance (n/(n-1)); Keras: moving = m*moving + (1-m)*batch, m=0.99, eps=1e-3, BIASED variance",
        "torch/nn/modules/batchnorm.py + aten batch_norm; keras/src/layers/normalization/batch_normalization.py",
        "momentum and epsilon are translated; the running-variance bias cannot be: training-mode losses "
        "agree, but evaluation (val loss, final weights' moving_variance, metrics) drifts",
        ("final_weights", "metrics"),
        lambda a, b, strict: _has(BatchNormLayer)(a) or _has(BatchNormLayer)(b),
    ),
    Cause(
        "probability_clipping",
        "Cross-entropy on probabilities: Keras clips to [1e-7, 1-1e-7] and uses the logits of a final "
        "sigmoid/softmax when it can",
        "Keras: p = clip(p, eps, 1-eps); if the output tensor came from sigmoid/softmax it computes from its "
        "_keras_logits instead. torch BCELoss: clamps log(p) at -100",
        "keras/src/backend/tensorflow/nn.py binary_crossentropy/_get_logits; "
        "torch/nn/functional.py binary_cross_entropy",
        "duofit's torch loss clips like Keras; the logits shortcut differs only for saturated outputs",
        ("first_step", "trajectory", "final_weights", "metrics"),
        _probs_ce,
    ),
    Cause(
        "epoch_loss_weighting",
        "Epoch loss: Keras weights each batch by its size; the tutorial's training loop averages batch means",
        "Keras: sum(loss_b * n_b) / sum(n_b); seed loop: mean(loss_b). Differs when the last batch is partial",
        "keras/src/backend/tensorflow/trainer.py train_step (_loss_tracker.update_state(sample_weight=batch))",
        "duofit's torch loop reports the Keras definition",
        (),
        _partial_batch,
    ),
    Cause(
        "clipnorm_formula",
        "Global-norm clipping: torch divides by (norm + 1e-6), Keras by max(norm, clip)",
        "torch clip_grad_norm_: g *= min(c / (|g| + 1e-6), 1); Keras: g *= c * min(1/|g|, 1/c)",
        "torch/nn/utils/clip_grad.py clip_grad_norm_; keras/src/optimizers/base_optimizer.py clip_by_global_norm",
        "--strict uses Keras' formula in torch",
        UPDATES,
        lambda a, b, strict: not strict and any(s.optimizer.clipnorm is not None for s in (a, b)),
    ),
    Cause(
        "tf_float32_constants",
        "TensorFlow's gelu and LeakyRelu use float32 constants in float64",
        "tf.nn.gelu multiplies by 1/sqrt(2) rounded to float32 (5e-7 relative error measured); the LeakyRelu "
        "op's alpha is a float32 attribute (0.01 -> 0.0099999998)",
        "tensorflow/python/ops/nn_ops.py gelu; LeakyRelu op definition (attr alpha: float)",
        "--strict uses float64-exact Keras layers (ExactGELU, ExactLeakyReLU)",
        ("forward", "first_step", "trajectory", "final_weights", "metrics"),
        _f32_activation,
    ),
    Cause(
        "same_padding_asymmetry",
        "Conv padding 'same' with an even kernel or a stride > 1 pads asymmetrically in TensorFlow",
        "TensorFlow: total = max((ceil(n/s)-1)*s + d*(k-1) + 1 - n, 0); top = total//2, bottom = total - top "
        "(the odd pixel after). torch nn.Conv2d(padding=k//2) pads symmetrically (and padding='same' refuses "
        "stride > 1), so a hand port shifts the receptive field by one pixel",
        "tensorflow/core/framework/kernel_shape_util.cc GetWindowedOutputSizeVerbose; torch/nn/modules/conv.py",
        "duofit's torch backend pads with TensorFlow's rule (the conv's own symmetric padding, or ZeroPad2d with "
        "the odd pixel after), so duofit's backends agree; "
        "a port that uses symmetric padding fails stage (b) from the first forward pass",
        ("forward", "first_step", "trajectory", "final_weights", "metrics"),
        lambda a, b, strict: (
            any(
                isinstance(layer, Conv2DLayer)
                and layer.padding == "same"
                and (max(layer.strides) > 1 or any(k % 2 == 0 for k in layer.kernel_size))
                for s in (a, b)
                for layer in s.model.layers
            )
            or any(same_1d("conv1d", "max_pool1d", "avg_pool1d")(s) for s in (a, b))
        ),
    ),
    Cause(
        "same_avg_pool",
        "Average pooling with 'same' padding: which cells the average counts",
        "TensorFlow and Keras: sum of the window's real cells / their number (padding never counted); "
        "torch nn.AvgPool2d(padding=p): symmetric padding only, zeros counted unless count_include_pad=False; "
        "Keras 3 on torch, asymmetric padding: the edge is replicated and the copies are counted",
        "tensorflow/core/kernels/avgpooling_op.cc; torch/nn/modules/pooling.py AvgPool2d count_include_pad; "
        "keras 3.15.1 keras/src/backend/torch/nn.py _apply_same_padding (mode='replicate'), "
        "fixed upstream in keras-team/keras#23233",
        "duofit's torch backend divides the zero-padded window sum by the real-cell count (SamePool), and its "
        "keras-torch backend does the same in Keras ops (SameAvgPool2D), so all four agree with TensorFlow; "
        "a hand-written port fails stage (b) at the bottom/right border",
        ("forward", "first_step", "trajectory", "final_weights", "metrics"),
        lambda a, b, strict: (
            any(
                isinstance(layer, AvgPool2DLayer) and layer.padding == "same"
                for s in (a, b)
                for layer in s.model.layers
            )
            or any(same_1d("avg_pool1d", asymmetric_only=False)(s) for s in (a, b))
        ),
    ),
    Cause(
        "dropout_masks",
        "Dropout: each framework draws its own random masks",
        "torch and TensorFlow use different generators; the same seed gives different masks",
        "torch.nn.functional.dropout; keras.random.dropout",
        "parity with dropout is checked at evaluation only (stage forward); training stages are not comparable",
        TRAINING,
        lambda a, b, strict: _has(DropoutLayer, lambda layer: layer.rate > 0)(a),
    ),
    Cause(
        "keras_float64_demotion",
        "Keras 3 on torch or JAX computes float64 ops in float32",
        "keras.ops.matmul(float64, float64) -> float32 on every framework but TensorFlow: Keras' type "
        "promotion maps float64 results to float32 'to be aligned with JAX's default behavior'; JAX itself "
        "has no float64 arrays unless jax_enable_x64 is set. A float64 spec then trains in float32 "
        "(about 1e-7 relative error per op, 3e-6 measured on a 64-input dense layer)",
        "keras/src/backend/common/dtypes.py BIT64_TO_BIT32_DTYPE and _lattice_result_type; jax.config jax_enable_x64",
        "duofit's keras-torch and keras-jax keep float64 (keras compat.keep_float64, JAX_ENABLE_X64=1) and record it "
        "in the environment (keras_float64); a hand-written Keras-on-torch/JAX port in float64 does not",
        ("forward", "first_step", "trajectory", "final_weights", "metrics"),
        lambda a, b, strict: a.train.dtype == "float64" or b.train.dtype == "float64",
        backends=("keras-torch", "keras-jax"),
    ),
    Cause(
        "onednn",
        "oneDNN (TensorFlow CPU) and TF32 (GPU) change float32 summation order or precision",
        "TF_ENABLE_ONEDNN_OPTS=1 (TensorFlow's CPU default) reorders float32 reductions; on Ampere+ GPUs "
        "TensorFlow allows TF32 matmuls by default, torch does not (torch.backends.cuda.matmul.allow_tf32)",
        "tensorflow/core/util/port.cc (oneDNN notice); tf.config.experimental.enable_tensor_float_32_execution",
        "float32 tolerances allow for it; recorded in each result's environment",
        ("forward", "first_step", "trajectory", "final_weights", "metrics"),
        lambda a, b, strict: a.train.dtype == "float32",
        generic=True,
    ),
    Cause(
        "float32_growth",
        "float32 rounding grows along the training trajectory, fastest through softmax and layer_norm",
        "each step's update depends on the weights, so a 1e-7 difference (unit roundoff 6e-8, another summation "
        "order) is carried and amplified step by step. Measured with the same update formulas on both sides in "
        "float32 (strict formulas kept in float32): text_transformer (two attention blocks) 1.9e-6 relative loss "
        "at step 2, 3.4e-4 at step 10, 1.2e-2 by step 40; lstm, gru, conv1d and embedding models stay below "
        "2e-5 for 30-135 steps. The same runs in float64 --strict agree to 1e-15 per step",
        "IEEE 754 binary32; torch's and TensorFlow's kernels sum in different orders (oneDNN, Eigen); "
        "keras/src/ops/nn.py _layer_normalization, keras/src/layers/activations/softmax.py",
        "nothing to translate: --strict (float64) checks the formulas; a float32 check needs fewer --epochs",
        UPDATES,
        lambda a, b, strict: not strict and a.train.dtype == "float32",
        generic=True,
    ),
    *LAYER_CAUSES,  # the layer families' causes (duofit/parity/causes_layers.py)
    *ATTENTION_CAUSES,  # multi_head_attention (duofit/parity/causes_attention.py)
    *PRECISION_CAUSES,  # train.precision and train.compile (duofit/parity/causes_precision.py)
)


def matching_causes(
    spec_torch: Spec, spec_keras: Spec, strict: bool, stage: str, backends: tuple[str, ...] = ("torch", "keras")
) -> list[Cause]:
    """The catalogued causes that apply to this pair of specs (and backends) and can affect ``stage``.

    Specific causes come first, in catalogue order; generic rounding-level ones (``Cause.generic``)
    last, so a formula or layer difference that explains a large gap is named before float32 noise.
    """
    found = [
        c
        for c in CAUSES
        if stage in c.stages
        and c.applies(spec_torch, spec_keras, strict)
        and (not c.backends or any(b in c.backends for b in backends))
    ]
    return sorted(found, key=lambda c: c.generic)
