"""The fixed parts of an exported Keras script, as source text (filled in by :mod:`.export_keras`).

Each block is ruff-formatted Python that the exporter pastes into the script; blocks that only
some specs need (a kernel penalty, a learned position table, the strict-mode optimizers and
activations) are pasted only when the spec uses them. What each block mirrors in duofit's Keras
backend is said in its docstring, so a reader of the script can check it.
"""

from __future__ import annotations

__all__ = ["EXACT_ACTIVATIONS", "EXACT_OPTIMIZERS", "HELPERS", "RECORDING", "TRAINING_LOG"]

# The loss of every training batch: duofit's Keras trainer records it the same way
# (duofit/backends/keras/recording.py: compute_loss, Keras' documented override point).
RECORDING = '''

class LastValue(keras.metrics.Metric):
    """The last value given to it (Keras' own "loss" log is the running mean of the epoch)."""

    def __init__(self, name):
        super().__init__(name=name)
        self.last = self.add_variable(shape=(), initializer="zeros", name="last")

    def update_state(self, value):
        """Keep ``value``."""
        self.last.assign(value)

    def result(self):
        """The kept value."""
        return self.last


class StepLossModel(keras.Model):
    """A functional model that also logs the loss of each training batch as ``batch_loss``.

    ``compute_loss`` is Keras' hook for the training loss (the loss plus any regularisation
    penalty, exactly what the optimizer minimises).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batch_loss = LastValue("batch_loss")

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Keras' loss; the value of each training batch is kept for the log."""
        loss = super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
        if training:
            self.batch_loss.update_state(loss)
        return loss
'''

# Optional layers and regularisers the model code may use: name -> source.
HELPERS = {
    "KernelPenalty": '''

class KernelPenalty(keras.regularizers.Regularizer):
    """l1 * sum(|w|) + l2 * sum(w^2), computed in the weight's dtype.

    Keras' own L1L2 casts the coefficients through a float32 tensor first, so in float64
    0.01 becomes 0.009999999776; multiplying by the Python float keeps them exact.
    """

    def __init__(self, l1=0.0, l2=0.0):
        self.l1, self.l2 = float(l1), float(l2)

    def __call__(self, x):
        total = keras.ops.zeros((), dtype=x.dtype)
        if self.l1:
            total = total + keras.ops.sum(keras.ops.abs(x)) * self.l1
        if self.l2:
            total = total + keras.ops.sum(keras.ops.square(x)) * self.l2
        return total

    def get_config(self):
        """The coefficients."""
        return {"l1": self.l1, "l2": self.l2}
''',
    "PositionalEmbedding": '''

class PositionalEmbedding(keras.layers.Layer):
    """A learned table of one vector per position, added to the input: x + embeddings[:steps]."""

    def __init__(self, max_len, **kwargs):
        super().__init__(**kwargs)
        self.max_len = int(max_len)

    def build(self, input_shape):
        """The table (its values come from the initial weights)."""
        self.embeddings = self.add_weight(name="embeddings", shape=(self.max_len, input_shape[-1]), initializer="zeros")

    def call(self, x):
        """Add each position's vector: x + embeddings[:steps] (one addition)."""
        return x + self.embeddings[: keras.ops.shape(x)[1]]
''',
}

EXACT_ACTIVATIONS = {
    "ExactGELU": '''

class ExactGELU(keras.layers.Layer):
    """x * 0.5 * (1 + erf(x / sqrt(2))) with the constant in the input's dtype.

    TensorFlow's gelu uses 1/sqrt(2) rounded to float32: about 1e-7 relative error in float64.
    """

    def call(self, x):
        """Exact GELU."""
        return x * 0.5 * (1.0 + keras.ops.erf(x * 0.7071067811865476))
''',
    "ExactLeakyReLU": '''

class ExactLeakyReLU(keras.layers.Layer):
    """x if x > 0 else slope * x, with the slope in the input's dtype (TensorFlow's op keeps it in float32)."""

    def __init__(self, negative_slope=0.01, **kwargs):
        super().__init__(**kwargs)
        self.negative_slope = float(negative_slope)

    def call(self, x):
        """Leaky ReLU with an exact slope."""
        return keras.ops.where(x > 0, x, x * self.negative_slope)
''',
}

# Strict mode: torch.optim's update formulas (single-tensor implementations), every hyperparameter
# multiplied as a Python float, exactly as duofit/backends/keras/exact.py computes them.
_EXACT_BASE = '''

class TorchFormula(keras.optimizers.Optimizer):
    """Shared part of the explicit update steps: torch's weight decay, hyperparameters as Python floats.

    Keras' own optimizers cast each hyperparameter through a float32 tensor (0.9 -> 0.8999999762
    in float64) and Adam/RMSprop place epsilon differently from torch; these steps do neither.
    """

    def __init__(self, learning_rate, weight_decay=0.0, decoupled=False, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.coupled = 0.0 if decoupled else float(weight_decay)
        self.decoupled = float(weight_decay) if decoupled else 0.0

    def slots(self, var_list, *names):
        """One zero-initialised state variable per trainable variable, for each name."""
        return [[self.add_variable_from_reference(v, name) for v in var_list] for name in names]

    def decayed(self, gradient, variable, lr):
        """The gradient after weight decay (dense: an embedding's gradient may come as rows + ids)."""
        if isinstance(gradient, tf.IndexedSlices):
            rows = keras.ops.expand_dims(keras.ops.cast(gradient.indices, "int64"), -1)
            gradient = keras.ops.scatter(rows, gradient.values, tuple(variable.shape))
        gradient = keras.ops.cast(gradient, variable.dtype)
        if self.decoupled:  # torch: param.mul_(1 - lr * weight_decay)
            self.assign(variable, variable * (1.0 - lr * self.decoupled))
        if self.coupled:  # torch: grad = grad.add(param, alpha=weight_decay)
            gradient = gradient + variable * self.coupled
        return gradient
'''

EXACT_OPTIMIZERS = {
    "sgd": _EXACT_BASE
    + '''

class ExactSGD(TorchFormula):
    """torch.optim.SGD: buf = mu * buf + g; g = g + mu * buf (Nesterov) or buf; w -= lr * g."""

    def __init__(self, learning_rate, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.mu, self.nesterov = float(momentum), bool(nesterov)

    def build(self, var_list):
        """The momentum buffers."""
        if self.built:
            return
        super().build(var_list)
        (self.buffers,) = self.slots(var_list, "momentum_buffer") if self.mu else ([],)

    def update_step(self, gradient, variable, learning_rate):
        """One explicit SGD step for ``variable``."""
        lr = keras.ops.cast(learning_rate, variable.dtype)
        g = self.decayed(gradient, variable, lr)
        if self.mu:
            buf = self.buffers[self._get_variable_index(variable)]
            self.assign(buf, buf * self.mu + g)  # zero-initialised: step 1 gives buf = g, as torch
            g = g + buf * self.mu if self.nesterov else buf
        self.assign(variable, variable + g * (-lr))
''',
    "adam": _EXACT_BASE
    + '''

class ExactAdam(TorchFormula):
    """torch.optim.Adam/AdamW: w -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps)."""

    def __init__(self, learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8, amsgrad=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.b1, self.b2, self.eps, self.amsgrad = float(beta_1), float(beta_2), float(epsilon), bool(amsgrad)

    def build(self, var_list):
        """The first and second moments (and their running maximum with amsgrad)."""
        if self.built:
            return
        super().build(var_list)
        names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq") if self.amsgrad else ("exp_avg", "exp_avg_sq")
        slots = self.slots(var_list, *names)
        self.m, self.v = slots[0], slots[1]
        self.vmax = slots[2] if self.amsgrad else []

    def update_step(self, gradient, variable, learning_rate):
        """One explicit Adam step for ``variable``."""
        i = self._get_variable_index(variable)
        lr = keras.ops.cast(learning_rate, variable.dtype)
        g = self.decayed(gradient, variable, lr)
        m, v = self.m[i], self.v[i]
        self.assign(m, m + (g - m) * (1.0 - self.b1))  # exp_avg.lerp_(grad, 1 - beta1)
        self.assign(v, v * self.b2 + g * g * (1.0 - self.b2))  # exp_avg_sq.mul_(beta2).addcmul_(g, g, 1 - beta2)
        t = keras.ops.cast(self.iterations + 1, variable.dtype)
        bc1 = 1.0 - keras.ops.power(keras.ops.convert_to_tensor(self.b1, dtype=variable.dtype), t)
        bc2 = 1.0 - keras.ops.power(keras.ops.convert_to_tensor(self.b2, dtype=variable.dtype), t)
        second = v
        if self.amsgrad:
            vmax = self.vmax[i]
            self.assign(vmax, keras.ops.maximum(vmax, v))
            second = vmax
        denom = keras.ops.sqrt(second) / keras.ops.sqrt(bc2) + self.eps
        self.assign(variable, variable + (m / denom) * (-(lr / bc1)))
''',
    "rmsprop": _EXACT_BASE
    + '''

class ExactRMSprop(TorchFormula):
    """torch.optim.RMSprop: w -= lr * g / (sqrt(v [- g_avg^2]) + eps), with a momentum buffer."""

    def __init__(self, learning_rate, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho, self.mu, self.eps, self.centered = float(rho), float(momentum), float(epsilon), bool(centered)

    def build(self, var_list):
        """The running squares (and running gradients, momentum buffers)."""
        if self.built:
            return
        super().build(var_list)
        names = ["square_avg"] + (["grad_avg"] if self.centered else []) + (["momentum_buffer"] if self.mu else [])
        slots = dict(zip(names, self.slots(var_list, *names), strict=True))
        self.sq, self.gavg = slots["square_avg"], slots.get("grad_avg", [])
        self.buffers = slots.get("momentum_buffer", [])

    def update_step(self, gradient, variable, learning_rate):
        """One explicit RMSprop step for ``variable``."""
        i = self._get_variable_index(variable)
        lr = keras.ops.cast(learning_rate, variable.dtype)
        g = self.decayed(gradient, variable, lr)
        sq = self.sq[i]
        self.assign(sq, sq * self.rho + g * g * (1.0 - self.rho))
        if self.centered:
            ga = self.gavg[i]
            self.assign(ga, ga + (g - ga) * (1.0 - self.rho))  # grad_avg.lerp_(grad, 1 - alpha)
            avg = keras.ops.sqrt(sq - ga * ga) + self.eps
        else:
            avg = keras.ops.sqrt(sq) + self.eps
        if self.mu:
            buf = self.buffers[i]
            self.assign(buf, buf * self.mu + g / avg)
            self.assign(variable, variable + buf * (-lr))
        else:
            self.assign(variable, variable + (g / avg) * (-lr))
''',
}

# The per-epoch bookkeeping of duofit's Keras trainer (duofit/backends/keras/trainer.py _EpochEnd and
# duofit/common/history.py EpochRecorder): validation loss and metrics, divergence, early stopping.
# $SCHEDULE and $EARLY_STOP are filled in by the exporter.
TRAINING_LOG = '''

class TrainingLog(keras.callbacks.Callback):
    """What duofit records of a run: every batch's loss, each epoch's losses and validation metrics.

    It also stops training when the loss diverges$EARLY_DOC. The validation loss is the loss of
    the whole validation split in one batch, without any regularisation penalty.
    """

    def __init__(self, data, loss, verbose=True):
        super().__init__()
        self.x_val, self.t_val, self.y_val = data["x_val"], data["t_val"], data["y_val"]
        self.loss = loss
        self.verbose = verbose
        self.step_losses = []
        self.epochs = []
        self.diverged = False
        self.stopped_epoch = None
        self.best_epoch = None
        self.best_weights = None
        self.best_value = None  # early stopping: the best monitored value so far (lower is better)
        self.wait = 0
        self.started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        """Start the epoch's clock$SCHEDULE_DOC."""
        self.started = time.perf_counter()$SCHEDULE

    def on_train_batch_end(self, batch, logs=None):
        """Keep the batch's loss."""
        self.step_losses.append(float(logs["batch_loss"]))

    def on_epoch_end(self, epoch, logs=None):
        """Validation loss and metrics, then the divergence$EARLY_DOC decisions."""
        val_out = self.model.predict_on_batch(self.x_val)
        row = {"epoch": epoch + 1, "loss": float(logs["loss"]), "val_loss": float(self.loss(self.t_val, val_out))}
        row.update({f"val_{k}": v for k, v in compute_metrics(METRICS, self.y_val, val_out, FROM_LOGITS).items()})
        row["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        row["seconds"] = time.perf_counter() - self.started
        self.epochs.append(row)
        if self.verbose:
            shown = "  ".join(f"{k} {v:.4f}" for k, v in row.items() if k not in ("epoch", "lr", "seconds"))
            print(f"epoch {epoch + 1}/{EPOCHS}  {shown}  ({row['seconds']:.1f} s)")
        if not all(math.isfinite(row[k]) and row[k] <= DIVERGENCE_LIMIT for k in ("loss", "val_loss")):
            self.diverged, self.stopped_epoch = True, epoch + 1
            self.model.stop_training = True
            print(f"training diverged at epoch {epoch + 1}: lower the learning rate or clip the gradients")
            return$EARLY_STOP
'''

# Early stopping as duofit decides it (duofit/common/monitor.py: Keras' improvement rule; never
# stops after the first epoch), pasted at the end of TrainingLog.on_epoch_end.
EARLY_STOP = """
        value = row.get(EARLY_STOPPING_MONITOR, math.nan)
        if EARLY_STOPPING_MODE == "max":
            value = -value  # compared as a loss: lower is better
        if math.isfinite(value) and (self.best_value is None or value + MIN_DELTA < self.best_value):
            self.best_value, self.best_epoch, self.wait = value, epoch + 1, 0
            self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait >= PATIENCE and epoch > 0:
            self.stopped_epoch = epoch + 1
            self.model.stop_training = True"""
