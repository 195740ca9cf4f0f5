"""The skeleton of an exported Keras script: the input pipeline, test metrics and ``main``, as source text.

:mod:`duofit.porting.export_keras` fills ``SCRIPT``'s ``$`` fields (``string.Template``) with the
model, optimizer, loss and callback code. The pipeline is the one duofit's Keras trainer builds on
TensorFlow (``duofit/backends/keras/feed.py`` ``tf_batches``): one ``flat_map`` per epoch over
the bundle's batch order, so a partial last batch stays in its epoch.
"""

from __future__ import annotations

__all__ = ["PIPELINE", "PIPELINE_WEIGHTED", "SCRIPT", "TEST_METRICS", "TEST_METRICS_SCALED"]

PIPELINE = '''

def training_batches(data):
    """Every epoch's batches in duofit's order: batch b of epoch e is x[order[e, b*BATCH_SIZE:(b+1)*BATCH_SIZE]]."""
    x, t = tf.constant(data["x_train"]), tf.constant(data["t_train"])
    order = tf.data.Dataset.from_tensor_slices(data["order"].astype(np.int32))
    batches = order.flat_map(lambda idx: tf.data.Dataset.from_tensor_slices(idx).batch(BATCH_SIZE))
    return batches.map(lambda i: (tf.gather(x, i), tf.gather(t, i))).prefetch(tf.data.AUTOTUNE)
'''

PIPELINE_WEIGHTED = '''

def training_batches(data):
    """Every epoch's batches in duofit's order, with each row's sample weight (fit reads the third element)."""
    x, t = tf.constant(data["x_train"]), tf.constant(data["t_train"])
    w = tf.constant(data["sample_weight"].astype(DTYPE))
    order = tf.data.Dataset.from_tensor_slices(data["order"].astype(np.int32))
    batches = order.flat_map(lambda idx: tf.data.Dataset.from_tensor_slices(idx).batch(BATCH_SIZE))
    return batches.map(lambda i: (tf.gather(x, i), tf.gather(t, i), tf.gather(w, i))).prefetch(tf.data.AUTOTUNE)
'''

TEST_METRICS = '''

def test_metrics(data, outputs):
    """The spec's metrics on the test split."""
    return compute_metrics(METRICS, data["y_test"], outputs, FROM_LOGITS)
'''

TEST_METRICS_SCALED = '''

def test_metrics(data, outputs):
    """The spec's metrics on the test split, in the target's own units (the model learned a standardized target)."""
    mean, scale = data["target_mean"], data["target_scale"]
    y = np.asarray(data["y_test"], dtype=np.float64) * scale + mean
    return compute_metrics(METRICS, y, np.asarray(outputs, dtype=np.float64) * scale + mean, FROM_LOGITS)
'''

SCRIPT = '''$DOC

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

os.environ["KERAS_BACKEND"] = "tensorflow"  # set before keras is imported: tf.data feeds fit

import keras
import numpy as np
import tensorflow as tf

DATA = Path(__file__).with_suffix(".npz")  # written beside this script by duofit export
$CONSTANTS
$HELPERS$METRICS_CODE$RECORDING$MODEL$OPTIMIZER$LOSS$PIPELINE$SCHEDULE_FN$TRAINING_LOG$TEST_METRICS

def load_data():
    """The arrays duofit prepared; inputs and float targets in DTYPE (token ids stay int64)."""
    data = dict(np.load(DATA, allow_pickle=False))
    for key in ("x_train", "x_val", "x_test", "t_train", "t_val"):
        a = data[key]
        data[key] = a.astype(np.int64) if a.dtype.kind in "iu" else a.astype(DTYPE)
    return data


def main():
    """Train, evaluate on the test split, and write the history when asked."""
    parser = argparse.ArgumentParser(description="Train the exported model (compile + fit).")
    parser.add_argument("--history", type=Path, help="write the per-step losses, epochs and test metrics here (JSON)")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch log")
    args = parser.parse_args()
$THREADS
    keras.config.set_floatx(DTYPE)  # weights, losses and optimizer state in the spec's dtype
    keras.utils.set_random_seed(SEED)
    data = load_data()
    with keras.device($DEVICE):
        model = build_model()
        set_initial_weights(model, data)
        loss = make_loss()
        # Keras' running metrics on the training batches (the spec's metrics are computed in numpy)
$COMPILE_METRICS
        model.compile(optimizer=make_optimizer(), loss=loss, metrics=running)
        log = TrainingLog(data, loss, verbose=not args.quiet)
        steps = math.ceil(len(data["x_train"]) / BATCH_SIZE)  # the last batch of an epoch may be partial
        batches = training_batches(data)
        model.fit(batches, epochs=EPOCHS, steps_per_epoch=steps, shuffle=False, callbacks=[log], verbose=0)
$RESTORE        outputs = model.predict_on_batch(data["x_test"])
    metrics = test_metrics(data, outputs)
    print("test: " + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    if args.history is not None:
        history = {
            "step_loss": log.step_losses,
            "history": log.epochs,
            "test_metrics": metrics,
            "best_epoch": log.best_epoch,
            "stopped_epoch": log.stopped_epoch,
            "diverged": log.diverged,
        }
        args.history.write_text(json.dumps(history, indent=1))


if __name__ == "__main__":
    main()
'''
