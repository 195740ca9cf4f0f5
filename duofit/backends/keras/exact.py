"""Strict (parity) mode for Keras: torch's update formulas and exact float64 constants.

Used only when ``TrainPlan.strict`` is set (``duofit parity --strict``). Keras' own
optimizers differ from torch's in two ways that no hyperparameter can undo:

- formulas: Adam adds epsilon to the bias-uncorrected sqrt(v) ("epsilon hat"); RMSprop
  adds it inside the square root;
- precision: ``ops.cast(self.momentum, variable.dtype)`` first makes a *float32* tensor of
  the Python float, so in float64 momentum, betas, rho and weight decay are rounded to
  float32 (0.9 -> 0.8999999762), a ~1e-8 relative drift per step.

These subclasses run the exact operation sequence of ``torch.optim``'s single-tensor
implementations (torch 2.x ``_single_tensor_sgd/adam/rmsprop``) with every
hyperparameter multiplied as a Python float, i.e. exactly in the variable's dtype.
Clipping stays Keras' (``global_clipnorm``/``clipvalue``); the torch backend uses Keras'
clipping formula in strict mode.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from duofit.common.spec import AdamOptimizer, AdamWOptimizer, RMSpropOptimizer, SGDOptimizer
from duofit.common.spec.shapes import same_pool_geometry

__all__ = ["EXACT_ACTIVATIONS", "ExactGELU", "ExactLeakyReLU", "exact_optimizer"]


class _TorchFormula(keras.optimizers.Optimizer):
    """Common part: Python-float hyperparameters, coupled/decoupled weight decay as torch."""

    def __init__(self, spec: Any, **kwargs: Any) -> None:
        super().__init__(learning_rate=float(spec.lr), **kwargs)
        wd = float(spec.weight_decay)
        self._coupled = wd if spec.decay_kind == "l2" else 0.0
        self._decoupled = wd if spec.decay_kind == "decoupled" else 0.0

    def _slots(self, var_list: list[Any], *names: str) -> list[list[Any]]:
        return [[self.add_variable_from_reference(v, name) for v in var_list] for name in names]

    def _decay(self, gradient: Any, variable: Any, lr: Any) -> Any:
        if type(gradient).__name__ == "IndexedSlices":
            # TensorFlow's gradient of an embedding lookup is an IndexedSlices (rows + ids); torch's is
            # dense. Densify it, duplicate ids summed, as tf.scatter_nd does (Keras' own optimizers
            # densify it in their arithmetic too: keras/src/optimizers/adam.py update_step).
            rows = ops.expand_dims(ops.cast(gradient.indices, "int64"), -1)
            gradient = ops.scatter(rows, gradient.values, tuple(variable.shape))
        if self._decoupled:  # torch: param.mul_(1 - lr * weight_decay)
            self.assign(variable, variable * (1.0 - lr * self._decoupled))
        if self._coupled:  # torch: grad = grad.add(param, alpha=weight_decay)
            gradient = gradient + variable * self._coupled
        return gradient


class ExactSGD(_TorchFormula):
    """torch.optim.SGD: buf = mu*buf + g; g = g + mu*buf (Nesterov) or buf; w += -lr*g."""

    def __init__(self, spec: SGDOptimizer, **kwargs: Any) -> None:
        super().__init__(spec, name="ExactSGD", **kwargs)
        self._mu = float(spec.momentum)
        self._nesterov = bool(spec.nesterov)

    def build(self, var_list: list[Any]) -> None:
        if self.built:
            return
        super().build(var_list)
        (self._bufs,) = self._slots(var_list, "momentum_buffer") if self._mu else ([],)

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        lr = ops.cast(learning_rate, variable.dtype)  # a floatx (float64) variable: exact, and scheduled
        g = self._decay(ops.cast(gradient, variable.dtype), variable, lr)
        if self._mu:
            buf = self._bufs[self._get_variable_index(variable)]
            self.assign(buf, buf * self._mu + g)  # zero-initialised: step 1 gives buf = g, as torch's clone
            g = g + buf * self._mu if self._nesterov else buf
        self.assign(variable, variable + g * (-lr))


class ExactAdam(_TorchFormula):
    """torch.optim.Adam/AdamW: w += -(lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps)."""

    def __init__(self, spec: AdamOptimizer | AdamWOptimizer, **kwargs: Any) -> None:
        super().__init__(spec, name="ExactAdam", **kwargs)
        self._b1, self._b2, self._eps = float(spec.beta1), float(spec.beta2), float(spec.epsilon)
        self._amsgrad = bool(spec.amsgrad)

    def build(self, var_list: list[Any]) -> None:
        if self.built:
            return
        super().build(var_list)
        names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq") if self._amsgrad else ("exp_avg", "exp_avg_sq")
        slots = self._slots(var_list, *names)
        self._m, self._v = slots[0], slots[1]
        self._vmax = slots[2] if self._amsgrad else []

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        i = self._get_variable_index(variable)
        lr = ops.cast(learning_rate, variable.dtype)
        g = self._decay(ops.cast(gradient, variable.dtype), variable, lr)
        m, v = self._m[i], self._v[i]
        self.assign(m, m + (g - m) * (1.0 - self._b1))  # exp_avg.lerp_(grad, 1 - beta1)
        self.assign(v, v * self._b2 + g * g * (1.0 - self._b2))  # mul_(beta2).addcmul_(g, g, 1 - beta2)
        t = ops.cast(self.iterations + 1, variable.dtype)
        bc1 = 1.0 - ops.power(ops.convert_to_tensor(self._b1, dtype=variable.dtype), t)
        bc2 = 1.0 - ops.power(ops.convert_to_tensor(self._b2, dtype=variable.dtype), t)
        second = v
        if self._amsgrad:
            vmax = self._vmax[i]
            self.assign(vmax, ops.maximum(vmax, v))
            second = vmax
        denom = ops.sqrt(second) / ops.sqrt(bc2) + self._eps
        self.assign(variable, variable + (m / denom) * (-(lr / bc1)))


class ExactRMSprop(_TorchFormula):
    """torch.optim.RMSprop: w += -lr * g / (sqrt(v [- g_avg^2]) + eps), with momentum buffer."""

    def __init__(self, spec: RMSpropOptimizer, **kwargs: Any) -> None:
        super().__init__(spec, name="ExactRMSprop", **kwargs)
        self._rho, self._eps, self._mu = float(spec.rho), float(spec.epsilon), float(spec.momentum)
        self._centered = bool(spec.centered)

    def build(self, var_list: list[Any]) -> None:
        if self.built:
            return
        super().build(var_list)
        names = ["square_avg"] + (["grad_avg"] if self._centered else []) + (["momentum_buffer"] if self._mu else [])
        slots = dict(zip(names, self._slots(var_list, *names), strict=True))
        self._sq = slots["square_avg"]
        self._gavg = slots.get("grad_avg", [])
        self._bufs = slots.get("momentum_buffer", [])

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        i = self._get_variable_index(variable)
        lr = ops.cast(learning_rate, variable.dtype)
        g = self._decay(ops.cast(gradient, variable.dtype), variable, lr)
        sq = self._sq[i]
        self.assign(sq, sq * self._rho + g * g * (1.0 - self._rho))
        if self._centered:
            ga = self._gavg[i]
            self.assign(ga, ga + (g - ga) * (1.0 - self._rho))  # grad_avg.lerp_(grad, 1 - alpha)
            avg = ops.sqrt(sq - ga * ga) + self._eps
        else:
            avg = ops.sqrt(sq) + self._eps
        if self._mu:
            buf = self._bufs[i]
            self.assign(buf, buf * self._mu + g / avg)
            self.assign(variable, variable + buf * (-lr))
        else:
            self.assign(variable, variable + (g / avg) * (-lr))


_EXACT: dict[type, type[keras.optimizers.Optimizer]] = {
    SGDOptimizer: ExactSGD,
    AdamOptimizer: ExactAdam,
    AdamWOptimizer: ExactAdam,
    RMSpropOptimizer: ExactRMSprop,
}


def exact_optimizer(spec: Any, **kwargs: Any) -> keras.optimizers.Optimizer:
    """The strict-mode optimizer for ``spec`` (clipping kwargs go to Keras' base class)."""
    return _EXACT[type(spec)](spec, **kwargs)


@keras.saving.register_keras_serializable(package="duofit")
class ExactGELU(keras.layers.Layer):
    """x * 0.5 * (1 + erf(x / sqrt(2))) with the constant in the input's dtype.

    ``tf.nn.gelu`` uses 1/sqrt(2) rounded to float32: ~1e-7 relative error in float64.
    """

    def call(self, x: Any) -> Any:
        """Exact GELU."""
        return x * 0.5 * (1.0 + ops.erf(x * 0.7071067811865476))


@keras.saving.register_keras_serializable(package="duofit")
class ExactLeakyReLU(keras.layers.Layer):
    """x if x > 0 else slope * x, with the slope in the input's dtype.

    TensorFlow's LeakyRelu op stores ``alpha`` as a float32 attribute.
    """

    def __init__(self, negative_slope: float = 0.01, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.negative_slope = float(negative_slope)

    def call(self, x: Any) -> Any:
        """Leaky ReLU with an exact slope."""
        return ops.where(x > 0, x, x * self.negative_slope)

    def get_config(self) -> dict[str, Any]:
        """Serialisable config (Keras)."""
        return {**super().get_config(), "negative_slope": self.negative_slope}


@keras.saving.register_keras_serializable(package="duofit")
class SameAvgPool2D(keras.layers.Layer):
    """Average pooling with TensorFlow's "same" padding, on any framework Keras runs on.

    The window sum over the zero-padded input divided by the number of real cells in the
    window (precomputed from the input shape). Keras 3 on torch pads an asymmetric "same"
    average pool by replicating the edge and counts the copies (keras 3.15.1
    ``backend/torch/nn.py`` ``_apply_same_padding``, ``mode="replicate"``).
    """

    def __init__(self, pool_size: tuple[int, int], strides: tuple[int, int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pool_size = tuple(int(v) for v in pool_size)
        self.strides = tuple(int(v) for v in strides)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        """Padding and the real-cell count of every window, from the spatial shape."""
        sizes = (int(input_shape[1]), int(input_shape[2]))  # type: ignore[arg-type]
        self._pads, counts = same_pool_geometry(sizes, self.pool_size, self.strides)
        self._counts = counts[None, :, :, None]

    def call(self, x: Any) -> Any:
        """Sum over the real cells of each window / their number."""
        padded = ops.pad(x, [[0, 0], self._pads[0], self._pads[1], [0, 0]])
        area = self.pool_size[0] * self.pool_size[1]
        total = ops.average_pool(padded, self.pool_size, self.strides, padding="valid") * area
        return total / ops.cast(self._counts, x.dtype)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        """ceil(size / stride) per spatial axis."""
        h, w = (None if n is None else -(-int(n) // s) for n, s in zip(input_shape[1:3], self.strides, strict=True))
        return (input_shape[0], h, w, input_shape[3])

    def get_config(self) -> dict[str, Any]:
        """Serialisable config (Keras)."""
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides}


EXACT_ACTIVATIONS = {"gelu": ExactGELU, "leaky_relu": ExactLeakyReLU}
