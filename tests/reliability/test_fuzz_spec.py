"""Fuzzing the spec loader: malformed specs end in a Spec or a SpecError that names a field path.

Each example mutates one of a few valid documents (the examples/*.toml files, a CSV spec and a
"rich" spec that sets every section, and graph and sequence models: a residual graph, recurrent
layers on ``sequence_shape`` data, an embedding + attention text model on the shipped reviews, a
window model on a CSV series) with wrong types, missing and unknown keys, out-of-range numbers,
NaN/inf, huge sizes and wrong nesting, then delivers it to ``duofit.load_spec`` as a dict, as a
``.toml`` or ``.json`` file, as mutated bytes (non-UTF-8, truncated, spliced) or as a deeply
nested document. The "graph" delivery mutates only the model and the sequence data of a graph or
sequence model, with plausible wrong values (``inputs`` naming unknown, later or duplicate
layers, sizes that do not connect, windows longer than the series, vocabularies and tables too
small, ``mask_zero``/``causal`` where they do not fit, a non-recurrent layer in ``bidirectional``,
layers moved, dropped or duplicated); its errors must name a ``model.`` or ``data.`` path.
The only accepted outcomes are a valid ``Spec`` or a ``SpecError`` whose ``path``/message names
the field; a spec that validates is also loaded with ``load_dataset`` when that is cheap (or
certain to be refused by a size cap before anything is allocated), and its initial weights are
drawn for the data's shape when the model is small; the only accepted outcomes there are finite
arrays or a ``DataError`` whose message names its ``path``. Any other exception fails the test;
so does a slow example (a hang) or a jump of the process's peak memory (a cap that did not
trigger).

The run is derandomized, so CI sees the same 10,000 examples every time.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import sys
import time
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import duofit
from duofit import DataError, Spec, SpecError
from duofit.common import spec as spec_module
from duofit.common.data import MAX_DATA_ELEMENTS, load_dataset
from duofit.common.data.dataset import Dataset
from duofit.common.data.sizes import PARAMETER_COUNTS
from duofit.common.init import initial_weights
from duofit.common.loader import MAX_SPEC_BYTES
from duofit.common.spec import FieldProblem
from duofit.common.spec.data import SeriesSpec, TextSpec
from duofit.common.spec.shapes import trace_shapes

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

# The promise: at least 10,000 malformed specs per run, each a clear error.
FUZZ_EXAMPLES = 10_000
# One example (validation, a file write, at most a small sklearn data set) takes ~1-5 ms on 2 cores;
# 2 s is several hundred times that, so only a hang or an uncapped allocation gets near it.
MAX_EXAMPLE_SECONDS = 2.0
# How far one example may push the process's peak RSS above its RSS before the example: the largest
# data set loaded here (digits, 1797 x 64 float64) is ~1 MB and the largest file 1 MB; an allocation
# that a size cap failed to stop is >= 800 MB (MAX_DATA_ELEMENTS float64). (The run as a whole grows
# by a few hundred MB: hypothesis keeps a record of every example it generated.)
MAX_EXAMPLE_PEAK_BYTES = 200 * 2**20
# load_dataset is called for a validated spec when its feature matrix is at most this many values
# (a few ms in sklearn), or when it is certain to exceed MAX_DATA_ELEMENTS (refused before allocating).
CHEAP_CELLS = 200_000
# Initial weights are drawn for a validated spec whose model has at most this many weights (~1 ms;
# an LSTM of up to ~60 units, whose orthogonal draw is a QR of 240 x 60); larger models (a QR of a
# 2000-unit layer takes a second) are checked by shape only.
CHEAP_PARAMETERS = 20_000

SEED_TEXT = (EXAMPLES / "seed.toml").read_text(encoding="utf-8")

RICH = {
    "name": "rich",
    "metrics": ["accuracy", "f1"],
    "data": {
        "kind": "make_classification",
        "params": {"n_samples": 300, "n_features": 5, "n_informative": 3, "n_classes": 3, "random_state": 1},
        "test_size": 0.25,
        "val_size": 0.1,
        "split_seed": 3,
        "stratify": True,
        "standardize": True,
    },
    "model": {
        "layers": [
            {"type": "dense", "units": 8, "activation": "gelu", "kernel_init": {"name": "constant", "value": 0.1}},
            {"type": "batch_norm", "momentum": 0.1, "epsilon": 1e-5},
            {"type": "activation", "activation": "leaky_relu", "negative_slope": 0.02},
            {"type": "dropout", "rate": 0.2},
            {"type": "flatten"},
            {"type": "dense", "units": 3, "use_bias": False, "l1": 0.001, "l2": 0.01, "bias_init": "zeros"},
        ]
    },
    "loss": {"type": "categorical_crossentropy", "from_logits": True, "labels": "one_hot"},
    "optimizer": {
        "type": "sgd",
        "lr": 0.05,
        "momentum": 0.9,
        "nesterov": True,
        "clipnorm": 1.0,
        "schedule": {"type": "plateau", "monitor": "val_loss", "factor": 0.5, "patience": 1},
    },
    "train": {
        "epochs": 3,
        "batch_size": 16,
        "shuffle": True,
        "seed": 7,
        "dtype": "float64",
        "device": "cpu",
        "threads": 1,
        "history_metrics": True,
        "epoch_metrics": "native",
        "early_stopping": {"monitor": "val_f1", "mode": "max", "patience": 2, "min_delta": 0.0},
    },
}

# Values that probe each kind of bound: zero/negative, the MAX_* caps and one past them, ints
# beyond 64 bits and beyond Python's 4300-digit str limit, NaN/inf, subnormal, huge strings,
# path tricks, and valid enum names in the wrong place.
SPECIAL_INTS = [
    0,
    -1,
    1,
    2,
    2**31,
    2**32,
    2**32 - 1,
    2**63,
    2**64,
    10**30,
    spec_module.MAX_UNITS,
    spec_module.MAX_UNITS + 1,
    spec_module.MAX_EPOCHS,
    spec_module.MAX_EPOCHS + 1,
    spec_module.MAX_SAMPLES,
    spec_module.MAX_SAMPLES + 1,
]
SPECIAL_FLOATS = [math.nan, math.inf, -math.inf, -0.0, 0.0, 1e308, -1e308, 5e-324, 0.5, 1.0, 0.999999, 1e-300, 1e30]
SPECIAL_STRINGS = [
    "",
    " ",
    "\x00",
    "\ud800",  # a lone surrogate: not encodable as UTF-8
    "\u00e9t\u00e9",
    "x" * 100_000,
    "..",
    "../../outside",
    "/tmp/abs",
    "C:\\x",
    "/dev/zero",
    "nan",
    "10",
    "1e3",
    "true",
    "dense",
    "dropout",
    "adam",
    "rmsprop",
    "relu",
    "softmax",
    "mse",
    "binary_crossentropy",
    "csv",
    "iris",
    "digits",
    "make_blobs",
    "make_moons",
    "make_regression",
    "val_loss",
    "val_accuracy",
    "float64",
    "cuda",
    "one_hot",
    "he_normal",
    "conv2d",
    "max_pool2d",
    "global_avg_pool2d",
    "same",
    "plateau",
    "cosine",
]
KNOWN_KEYS = sorted(
    {
        *Spec.model_fields,
        *spec_module.DataSpec.model_fields,
        *spec_module.DenseLayer.model_fields,
        *spec_module.BatchNormLayer.model_fields,
        *spec_module.ActivationLayer.model_fields,
        *spec_module.SGDOptimizer.model_fields,
        *spec_module.AdamOptimizer.model_fields,
        *spec_module.RMSpropOptimizer.model_fields,
        *spec_module.CCELoss.model_fields,
        *spec_module.HuberLoss.model_fields,
        *spec_module.TrainSpec.model_fields,
        *spec_module.EarlyStoppingSpec.model_fields,
        *spec_module.Conv2DLayer.model_fields,
        *spec_module.MaxPool2DLayer.model_fields,
        *spec_module.PlateauSchedule.model_fields,
        *spec_module.CosineSchedule.model_fields,
        *spec_module.StepSchedule.model_fields,
        *(field for cls in spec_module.LAYER_TYPES for field in cls.model_fields),
        *SeriesSpec.model_fields,
        *TextSpec.model_fields,
        "n_samples",
        "n_features",
        "n_informative",
        "n_classes",
        "n_targets",
        "centers",
        "noise",
        "random_state",
        "effective_rank",
        "weights",
        "layers",
    }
)

# Integers past Python's 4300-digit str() limit; built lazily (hypothesis reprs its strategies).
huge_ints = st.sampled_from([5000, -5000, 10_000]).map(lambda n: (10 ** abs(n)) * (1 if n > 0 else -1))

scalars = st.one_of(
    huge_ints,
    st.none(),
    st.booleans(),
    st.integers(-5, 50),
    st.integers(),
    st.sampled_from(SPECIAL_INTS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(SPECIAL_FLOATS),
    st.text(max_size=12),
    st.sampled_from(SPECIAL_STRINGS),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
keys = st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=12), st.sampled_from(SPECIAL_STRINGS))

# Byte fragments spliced into serialized documents: invalid UTF-8, NUL, BOMs, brackets that never
# close, a 5000-digit integer, TOML/JSON tokens in the wrong place.
FRAGMENTS = [
    b"\xff",
    b"\xfe\xff",
    b"\xc3\x28",
    b"\xed\xa0\x80",  # an encoded surrogate
    b"\x00",
    b"\xef\xbb\xbf",
    b"[[[[",
    b"]]",
    b"{",
    b"}",
    b'"',
    b"'''",
    b"= ",
    b",",
    b"\n[data]\n",
    b"\n[[model.layers]]\ntype = 'dense'\n",
    b"9" * 5000,
    b"nan",
    b"-inf",
    b"1e999",
    b"NaN",
    b"Infinity",
    b"null",
    b"\r\n",
    b"\\u",
]


# How often each delivery is drawn: mostly mutated documents, a few deep or oversize files.
DELIVERIES = ["dict"] * 4 + ["toml"] * 3 + ["json"] * 3 + ["bytes"] * 3 + ["graph"] * 3 + ["deep", "oversize"]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every container path in a document (the root included)."""
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, (dict, list)):
                out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            if isinstance(value, (dict, list)):
                out += _paths(value, (*prefix, i))
    return out


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def _nudged(value: Any) -> st.SearchStrategy[Any]:
    """A value of the same type as ``value`` (often still valid, so the data loader runs too)."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.integers(-3, 3000) | st.sampled_from(SPECIAL_INTS)
    if isinstance(value, float):
        return st.floats(0, 2) | st.floats(-1e3, 1e3) | st.sampled_from(SPECIAL_FLOATS)
    if isinstance(value, str):
        return st.sampled_from(SPECIAL_STRINGS) | st.text(max_size=8)
    return values


# sklearn generator parameters and values that are plausible but often wrong (sizes, class counts,
# seeds, noise, lists of cluster sizes): they reach sklearn through load_dataset.
GENERATOR_KEYS = [
    "n_samples",
    "n_features",
    "n_informative",
    "n_redundant",
    "n_repeated",
    "n_classes",
    "n_clusters_per_class",
    "n_targets",
    "centers",
    "cluster_std",
    "noise",
    "bias",
    "effective_rank",
    "tail_strength",
    "weights",
    "flip_y",
    "class_sep",
    "hypercube",
    "shift",
    "scale",
    "shuffle",
    "random_state",
    "center_box",
    "coef",
    "return_centers",
]
generator_values = st.one_of(
    st.integers(-2, 40),
    st.sampled_from([0, 1, 2, 3, 100, 500, 2**32, 10**7, 10**8]),
    st.floats(-2, 5),
    st.sampled_from([math.nan, math.inf, 1e308, 1e200]),
    st.booleans(),
    st.none(),
    st.lists(st.integers(-2, 50), max_size=4),
    st.lists(st.floats(-1, 2), max_size=4),
    st.sampled_from(["", "auto", "x"]),
)
KINDS = [
    "make_classification",
    "make_regression",
    "make_moons",
    "make_blobs",
    "iris",
    "wine",
    "diabetes",
    "csv",
    "npz",
    "csv_series",
    "sunspots",
    "co2",
    "csv_text",
]


@st.composite
def mutated_docs(draw: st.DrawFn, bases: list[dict[str, Any]]) -> dict[str, Any]:
    """A valid base document with 0-4 mutations applied."""
    doc = copy.deepcopy(draw(st.sampled_from(bases)))
    for _ in range(draw(st.sampled_from([0, 1, 1, 1, 1, 2, 2, 3, 4]))):
        if draw(st.integers(0, 3)) == 0 and isinstance(doc.get("data"), dict):
            data = doc["data"]
            if draw(st.booleans()):
                data["kind"] = draw(st.sampled_from(KINDS))
            params = data.get("params")
            if isinstance(params, dict) and data.get("kind") != "csv":
                if draw(st.integers(0, 4)) == 0:
                    params.clear()
                params[draw(st.sampled_from(GENERATOR_KEYS))] = draw(generator_values)
            continue
        container = _at(doc, draw(st.sampled_from(_paths(doc))))
        op = draw(st.sampled_from(["nudge", "nudge", "nudge", "set", "set", "delete", "add", "wrap", "rename", "huge"]))
        if isinstance(container, list):
            if not container or op == "add":
                container.append(draw(values))
                continue
            i = draw(st.integers(0, len(container) - 1))
            if op == "delete":
                del container[i]
            elif op == "wrap":
                container[i] = draw(st.sampled_from([[container[i]], {"value": container[i]}]))
            elif op == "nudge":
                container[i] = draw(_nudged(container[i]))
            else:
                container[i] = draw(values)
            continue
        if not container or op == "add":
            container[draw(keys)] = draw(values)
            continue
        key = draw(st.sampled_from(sorted(container, key=str)))
        if op == "delete":
            del container[key]
        elif op == "wrap":  # wrong nesting: a value inside a list or a table
            container[key] = draw(st.sampled_from([[container[key]], {"value": container[key]}]))
        elif op == "rename":  # a typo: the value moves to another (often unknown) key
            container[draw(keys)] = container.pop(key)
        elif op == "huge":
            container[key] = draw(st.sampled_from([*SPECIAL_INTS, 1e308, "x" * 100_000]) | huge_ints)
        elif op == "nudge":
            container[key] = draw(_nudged(container[key]))
        else:
            container[key] = draw(values)
    return doc


# ------------------------------------------------------------------ graph and sequence mutations
# Sizes that connect, just fail to, or hit a cap; steps around the test CSV's 60 rows.
graph_sizes = st.integers(-1, 40) | st.sampled_from(
    [0, 1, 2, 8, 16, 64, 2000, spec_module.MAX_UNITS, spec_module.MAX_UNITS + 1]
)
series_steps = st.integers(-1, 70) | st.sampled_from([0, 1, 58, 59, 60, 61, 100_000, 100_001])
flags = st.booleans() | st.sampled_from([None, 0, 1, "true"])
LAYER_TYPE_NAMES = [
    "dense",
    "dropout",
    "flatten",
    "batch_norm",
    "conv2d",
    "add",
    "concatenate",
    "reshape",
    "conv1d",
    "max_pool1d",
    "avg_pool1d",
    "global_avg_pool1d",
    "global_max_pool1d",
    "layer_norm",
    "embedding",
    "positional_embedding",
    "simple_rnn",
    "lstm",
    "gru",
    "bidirectional",
    "multi_head_attention",
]
# What a bidirectional may be handed: recurrent layers (some with fields it refuses) and others.
WRAPPED = [
    {"type": "gru", "units": 3},
    {"type": "lstm", "units": 2, "use_bias": False, "return_sequences": True},
    {"type": "lstm", "units": 2, "name": "inner"},
    {"type": "dense", "units": 3},
    {"type": "conv1d", "filters": 2, "kernel_size": 2},
    {"type": "bidirectional", "layer": {"type": "gru", "units": 2}},
    "lstm",
    None,
]
SIZE_FIELDS = (
    "units",
    "num_heads",
    "key_dim",
    "value_dim",
    "input_dim",
    "output_dim",
    "max_len",
    "filters",
    "kernel_size",
    "pool_size",
    "strides",
    "max_vocab",
)
FLAG_FIELDS = ("mask_zero", "causal", "return_sequences", "use_bias", "center", "scale", "reset_after")


def _field_values(names: list[str]) -> dict[str, st.SearchStrategy[Any]]:
    """Plausible wrong values for each graph / sequence field; ``names``: the model's layer names."""
    name_pool = st.sampled_from([*names, "input", "skip", "later", "", "x y", "Input"])
    return {
        "inputs": st.lists(name_pool, max_size=4) | name_pool,
        "name": name_pool,
        "type": st.sampled_from(LAYER_TYPE_NAMES),
        **dict.fromkeys(SIZE_FIELDS, graph_sizes),
        **dict.fromkeys(("window", "horizon", "stride"), series_steps),
        **dict.fromkeys(FLAG_FIELDS, flags),
        "merge": st.sampled_from(["concat", "sum", "mul", "", None]),
        "axis": st.integers(-5, 5),
        "target_shape": st.lists(graph_sizes | st.sampled_from([4, 8, 16]), max_size=4),
        "sequence_shape": st.lists(graph_sizes | st.sampled_from([4, 3, 8]), min_size=1, max_size=3),
        "activation": st.sampled_from(["tanh", "sigmoid", "relu", "hard_sigmoid", "linear", "gelu", "softmax", None]),
        "recurrent_activation": st.sampled_from(["sigmoid", "hard_sigmoid", "tanh", "relu"]),
        "padding": st.sampled_from(["same", "valid", "causal", "pre", "post"]),
        "layer": st.sampled_from(WRAPPED),
        "epsilon": st.sampled_from([0.0, -1.0, 1e-3, math.nan]),
    }


def _insertable(names: list[str]) -> list[dict[str, Any]]:
    """Layers a mutation may insert anywhere: merges of existing names, sequence layers, reshapes."""
    pairs = [names[:2], [*names[-1:], "input"]] if names else [["input", "input"]]
    return [
        *({"type": "add", "inputs": pair} for pair in pairs),
        *({"type": "concatenate", "inputs": pair} for pair in pairs),
        {"type": "lstm", "units": 4, "return_sequences": True},
        {"type": "bidirectional", "layer": {"type": "gru", "units": 3}},
        {"type": "multi_head_attention", "num_heads": 2, "key_dim": 4, "causal": True},
        {"type": "embedding", "input_dim": 2000, "output_dim": 4, "mask_zero": True},
        {"type": "positional_embedding", "max_len": 40},
        {"type": "global_avg_pool1d"},
        {"type": "layer_norm"},
        {"type": "reshape", "target_shape": [8, 8]},
        {"type": "flatten"},
        {"type": "dense", "units": 4, "name": "extra"},
    ]


def _graph_targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The tables a graph mutation edits: each layer (a wrapped one too), data, data.series, data.text."""
    layers = [layer for layer in doc["model"]["layers"] if isinstance(layer, dict)]
    inner = [layer["layer"] for layer in layers if isinstance(layer.get("layer"), dict)]
    data = doc["data"]
    return [*layers, *inner, data, *(data[k] for k in ("series", "text") if isinstance(data.get(k), dict))]


@st.composite
def graph_docs(draw: st.DrawFn, bases: list[dict[str, Any]]) -> dict[str, Any]:
    """A graph or sequence model with 1-3 edits of its layers, their graph or its sequence data."""
    doc = copy.deepcopy(draw(st.sampled_from(bases)))
    layers = doc["model"]["layers"]
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 2, 3]))):
        names = [layer["name"] for layer in layers if isinstance(layer, dict) and isinstance(layer.get("name"), str)]
        op = draw(st.sampled_from(["field"] * 6 + ["drop", "duplicate", "swap", "insert"]))
        if op == "insert":
            layers.insert(draw(st.integers(0, len(layers))), copy.deepcopy(draw(st.sampled_from(_insertable(names)))))
        elif op == "field" or len(layers) < 2:
            target = draw(st.sampled_from(_graph_targets(doc)))
            fields = _field_values(names)
            present = sorted(k for k in target if k in fields)
            usual = bool(present) and draw(st.integers(0, 7)) > 0  # mostly a field the table has
            key = draw(st.sampled_from(present if usual else sorted(fields)))
            target[key] = copy.deepcopy(draw(fields[key]))
        else:
            i, j = draw(st.integers(0, len(layers) - 1)), draw(st.integers(0, len(layers) - 1))
            if op == "drop":
                del layers[i]
            elif op == "duplicate":
                layers.insert(i + 1, copy.deepcopy(layers[i]))
            else:
                layers[i], layers[j] = layers[j], layers[i]
    return doc


def _serialize(doc: dict[str, Any], fmt: str) -> bytes | None:
    """The document as TOML/JSON bytes; None when the format cannot hold it (TOML has no null)."""
    try:
        text = tomli_w.dumps(doc) if fmt == "toml" else json.dumps(doc)
    except (TypeError, ValueError):
        return None
    return text.encode("utf-8", errors="surrogatepass")  # a lone surrogate becomes invalid UTF-8


@st.composite
def byte_mutations(draw: st.DrawFn, data: bytes) -> bytes:
    """Splice, delete or truncate bytes of a serialized document."""
    for _ in range(draw(st.integers(1, 3))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "insert", "delete", "truncate", "random"]))
        if op == "insert":
            data = data[:pos] + draw(st.sampled_from(FRAGMENTS)) + data[pos:]
        elif op == "delete":
            data = data[:pos] + data[pos + draw(st.integers(1, 40)) :]
        elif op == "truncate":
            data = data[:pos]
        else:
            data = data[:pos] + draw(st.binary(min_size=1, max_size=8)) + data[pos:]
    return data


def _deep(fmt: str, depth: int, kind: str) -> bytes:
    """A document nested ``depth`` levels deep (a list or table under ``data.params``/``model``)."""
    if fmt == "json":
        if kind == "list":
            inner = "[" * depth + "1" + "]" * depth
        else:
            inner = '{"a":' * depth + "1" + "}" * depth
        return ('{"data": {"kind": "iris", "params": {"x": ' + inner + "}}}").encode()
    if kind == "list":
        inner = "[" * depth + "1" + "]" * depth
    else:
        inner = "{a = " * depth + "1" + "}" * depth
    return f"[data]\nkind = 'iris'\nparams = {{ x = {inner} }}\n".encode()


@st.composite
def cases(draw: st.DrawFn, bases: dict[str, list[dict[str, Any]]]) -> tuple[str, Any]:
    """``(delivery, payload)``: a dict (``graph``: a mutated graph/sequence model), or a .toml/.json file's bytes."""
    delivery = draw(st.sampled_from(DELIVERIES))
    if delivery == "graph":
        return "graph", draw(graph_docs(bases["graph"]))
    if delivery == "deep":
        fmt = draw(st.sampled_from(["toml", "json"]))
        depth = draw(st.sampled_from([1, 10, 100, 400, 1000, 5000, 100_000]))
        return fmt, _deep(fmt, depth, draw(st.sampled_from(["list", "table"])))
    if delivery == "oversize":  # just over the loader's byte cap: refused before parsing
        fmt = draw(st.sampled_from(["toml", "json"]))
        pad = b"#" * (MAX_SPEC_BYTES + 1) if fmt == "toml" else b" " * (MAX_SPEC_BYTES + 1)
        return fmt, SEED_TEXT.encode() + pad if fmt == "toml" else b"{}" + pad
    doc = draw(mutated_docs(bases["all"]))
    if delivery == "dict":
        return "dict", doc
    fmt = delivery if delivery != "bytes" else draw(st.sampled_from(["toml", "json"]))
    data = _serialize(doc, fmt)
    if data is None:
        return "dict", doc
    if delivery == "bytes":
        data = draw(byte_mutations(data))
    return fmt, data


def _assert_spec_error(exc: SpecError) -> None:
    msg = str(exc)
    assert type(exc) is SpecError
    assert isinstance(exc.path, str) and exc.problems, msg
    if exc.path == "":  # a file-level problem: names the file (or says it is a mapping)
        assert msg.startswith(("spec file", "spec path", "spec ", "invalid spec")), msg
        return
    assert msg.startswith("invalid spec"), msg
    for path, problem in exc.problems:
        assert path and problem, msg
        assert f"  {path}: " in msg, f"problem path {path!r} is not in the message:\n{msg}"
    assert exc.problems[0][0] == exc.path
    assert len(msg) < 50_000, "an error message must stay readable (keys and values are shortened)"


def _feature_cells(spec: Spec) -> int | None:
    """Lower bound of the feature matrix size of a generated data set; None when it is not simple."""
    d = spec.data
    if d.kind == "csv" or d.kind not in {"make_classification", "make_regression", "make_moons", "make_blobs"}:
        return 0  # bundled sets and the small test CSV are cheap
    defaults = {"make_classification": 20, "make_regression": 100, "make_moons": 2, "make_blobs": 2}
    n_samples = d.params.get("n_samples", 100)
    n_features = d.params.get("n_features", defaults[d.kind]) if d.kind != "make_moons" else 2
    if isinstance(n_samples, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in n_samples):
        n_samples = sum(max(v, 0) for v in n_samples)
    counts = (n_samples, n_features)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in counts):
        return None  # sklearn rejects it (cheaply) -- or it is not worth guessing
    if any(v < 0 for v in counts):
        return 0
    extras = [d.params.get(k) for k in ("n_targets", "centers", "n_classes", "n_informative")]
    if any(isinstance(v, int) and v > 1000 for v in extras):
        return None
    return n_samples * n_features


def _assert_data_error(exc: DataError, paths: tuple[str, ...]) -> None:
    assert type(exc) is DataError
    assert exc.path and exc.path in str(exc), f"DataError path {exc.path!r} not in message: {exc}"
    assert exc.path.startswith(paths), f"DataError path {exc.path!r} is not under {paths}: {exc}"


def _assert_data(spec: Spec, paths: tuple[str, ...] = ("",)) -> tuple[str, Dataset | None]:
    """Load the data of a validated spec when cheap; returns what happened (and the data)."""
    cells = _feature_cells(spec)
    if cells is None or CHEAP_CELLS < cells <= MAX_DATA_ELEMENTS:
        return "data-skipped", None
    try:
        ds = load_dataset(spec)
    except DataError as exc:
        _assert_data_error(exc, paths)
        return "data-error", None
    assert cells <= MAX_DATA_ELEMENTS, f"{cells:,} values were loaded despite MAX_DATA_ELEMENTS"
    for name in ("x_train", "x_val", "x_test"):
        arr = getattr(ds, name)
        assert arr.ndim in (2, 3, 4) and np.isfinite(arr).all(), f"{name} holds NaN/inf"  # rows, sequences, images
    for name in ("y_train", "y_val", "y_test"):
        arr = getattr(ds, name)
        assert np.isfinite(arr.astype(np.float64)).all(), f"{name} holds NaN/inf"
    return "data-ok", ds


def _assert_weights(spec: Spec, ds: Dataset, paths: tuple[str, ...] = ("",)) -> str:
    """The model against the data's shape: initial weights when the model is small, else the shapes only."""
    try:
        traced = trace_shapes(spec.model.layers, ds.input_shape)
    except FieldProblem:
        traced = None  # initial_weights must say so, as a DataError naming the layer
    if traced is not None:
        count = sum(
            PARAMETER_COUNTS[type(layer)](layer, ins[0] or ds.input_shape)
            for layer, (ins, _) in zip(spec.model.layers, traced, strict=True)
            if type(layer) in PARAMETER_COUNTS
        )
        if count > CHEAP_PARAMETERS:
            return "weights-skipped"
    try:
        weights = initial_weights(spec, ds.input_shape)
    except DataError as exc:
        _assert_data_error(exc, tuple(p for p in paths if p.startswith("model")) or ("model.",))
        return "weights-error"
    assert traced is not None, "initial_weights accepted a model whose shapes do not fit the data"
    assert all(np.isfinite(w).all() for w in weights.values()), "initial weights hold NaN/inf"
    return "weights-ok"


def _describe(payload: Any) -> str:
    """A short description of an example (repr fails on ints of more than 4300 digits)."""
    try:
        text = repr(payload)
    except (ValueError, RecursionError):
        text = f"<{type(payload).__name__} that cannot be repr()'d>"
    return text[:300]


def _peak_rss_bytes() -> int:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """The valid documents that get mutated (each one is checked to load): ``all``, and ``graph`` among them."""
    folder = tmp_path_factory.mktemp("fuzz-bases")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    rows = [f"{a:.6f},{b:.6f},{c:.6f},{int(a > 0)}" for a, b, c in x]
    csv = folder / "small.csv"
    csv.write_text("\n".join(["a,b,c,y", *rows]) + "\n", encoding="utf-8")
    docs = [tomllib.loads((EXAMPLES / f"{n}.toml").read_text(encoding="utf-8")) for n in ("seed", "regression")]
    docs += [tomllib.loads((EXAMPLES / f"{n}.toml").read_text(encoding="utf-8")) for n in ("multiclass", "digits_cnn")]
    docs.append(
        {
            "name": "csv",
            "metrics": ["accuracy", "roc_auc"],
            "data": {"kind": "csv", "path": str(csv), "target": "y", "features": ["a", "b"], "task": "binary"},
            "model": {"layers": [{"type": "dense", "units": 4, "activation": "tanh"}, {"type": "dense", "units": 1}]},
            "loss": {"type": "binary_crossentropy", "from_logits": True},
            "optimizer": {"type": "rmsprop", "lr": 0.01, "centered": True, "clipvalue": 0.5},
            "train": {"epochs": 2, "batch_size": 8, "early_stopping": {"patience": 1}},
        }
    )
    np.savez(folder / "small.npz", x=x.reshape(60, 3, 1), y=(x[:, 0] > 0).astype(np.int64))
    (folder / "texts.csv").write_text(
        "text,label\n" + "".join(f"word{i % 7} and more words {i},{i % 2}\n" for i in range(40)), encoding="utf-8"
    )
    flat = {"layers": [{"type": "flatten"}, {"type": "dense", "units": 1}]}
    docs.append(
        {
            "data": {"kind": "csv_series", "path": str(csv), "target": "a", "series": {"window": 4, "stride": 2}},
            "model": flat,
            "loss": {"type": "mse"},
            "train": {"epochs": 2},
        }
    )
    docs.append({"data": {"kind": "npz", "path": str(folder / "small.npz")}, "model": flat, "loss": {"type": "mse"}})
    docs.append(
        {
            "data": {
                "kind": "csv_text",
                "path": str(folder / "texts.csv"),
                "target": "label",
                "text": {"column": "text"},
            },
            "model": flat,
            "loss": {"type": "binary_crossentropy"},
        }
    )
    docs.append(copy.deepcopy(RICH))
    graph = _graph_bases(csv, folder / "small.npz")
    for doc in docs + graph:
        duofit.load_spec(doc)
    if importlib.util.find_spec("statsmodels") is not None:  # its import, once, outside the timed examples
        import statsmodels.api  # noqa: F401
    load_dataset(duofit.load_spec(docs[-1]))  # imports sklearn once, outside the timed examples
    load_dataset(duofit.load_spec(graph[2]))  # and the text analyzer
    return {"all": docs + graph, "graph": graph}


def _graph_bases(csv: Path, npz: Path) -> list[dict[str, Any]]:
    """Graph and sequence models: a residual graph, recurrent layers, attention on texts, series windows.

    The npz sequences' shape is known only with the data, so their shape errors come from
    ``initial_weights`` (a DataError), the others' from the spec.

    The residual and GRU examples keep their models but read a small generated set instead of the
    digits (a tenth of the time to load: the fuzz test keeps its time budget).
    """
    small = {"n_samples": 150, "n_features": 16, "n_informative": 6, "n_clusters_per_class": 1, "random_state": 0}
    docs = [
        tomllib.loads((EXAMPLES / f"{n}.toml").read_text(encoding="utf-8")) for n in ("residual_mlp", "gru_digits_rows")
    ]
    docs[0]["data"] = {"kind": "make_classification", "params": {**small, "n_classes": 10}, "stratify": True}
    docs[1]["data"] = {"kind": "make_classification", "params": {**small, "n_classes": 10}, "sequence_shape": [4, 4]}
    text = tomllib.loads((EXAMPLES / "text_transformer.toml").read_text(encoding="utf-8"))
    text["data"]["path"] = str(EXAMPLES / "data" / "reviews.csv")
    text["train"]["epochs"] = 1
    bidirectional = {
        "data": {
            "kind": "make_classification",
            "params": {"n_samples": 120, "n_features": 12, "n_informative": 6, "n_classes": 3, "random_state": 0},
            "sequence_shape": [4, 3],
        },
        "model": {
            "layers": [
                {"type": "dense", "units": 6, "name": "proj"},
                {
                    "type": "bidirectional",
                    "layer": {"type": "lstm", "units": 3, "return_sequences": True},
                    "name": "rnn",
                },
                {"type": "concatenate", "inputs": ["proj", "rnn"]},
                {"type": "simple_rnn", "units": 4},
                {"type": "dense", "units": 3},
            ]
        },
        "loss": {"type": "categorical_crossentropy", "from_logits": True},
    }
    window = {
        "data": {
            "kind": "csv_series",
            "path": str(csv),
            "target": "c",
            "features": ["a", "b"],
            "series": {"window": 6, "horizon": 2, "stride": 1},
        },
        "model": {
            "layers": [
                {"type": "conv1d", "filters": 4, "kernel_size": 3, "padding": "same", "name": "conv"},
                {"type": "layer_norm", "name": "norm"},
                {"type": "add", "inputs": ["conv", "norm"]},
                {"type": "gru", "units": 4},
                {"type": "dense", "units": 1},
            ]
        },
        "loss": {"type": "mse"},
        "train": {"epochs": 2},
    }
    sequences = {
        "data": {"kind": "npz", "path": str(npz)},
        "model": {
            "layers": [
                {"type": "conv1d", "filters": 4, "kernel_size": 2, "padding": "same", "name": "conv"},
                {"type": "lstm", "units": 4, "return_sequences": True, "name": "rnn"},
                {"type": "multi_head_attention", "num_heads": 2, "key_dim": 2, "inputs": ["rnn", "conv"]},
                {"type": "global_avg_pool1d"},
                {"type": "dense", "units": 1},
            ]
        },
        "loss": {"type": "binary_crossentropy", "from_logits": True},
    }
    return [docs[0], docs[1], text, bidirectional, window, sequences]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow inside sklearn on 1e308-sized params
def test_fuzzed_specs_end_in_spec_or_spec_error(bases: dict[str, list[dict[str, Any]]], tmp_path: Path) -> None:
    outcomes: Counter[str] = Counter()
    slowest: list[Any] = [0.0, ""]
    spike = [0]
    process = psutil.Process()

    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,  # timed below, with a bound that tolerates CI noise
        derandomize=True,  # the same examples on every run: CI is reproducible
        database=None,  # nothing written into the repository
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )
    @given(case=cases(bases))
    def check(case: tuple[str, Any]) -> None:
        delivery, payload = case
        paths = ("model.", "data.") if delivery == "graph" else ("",)  # a graph edit's error names its section
        if delivery in ("dict", "graph"):
            source: Any = payload
        else:
            source = tmp_path / f"spec.{delivery}"
            source.write_bytes(payload)
        rss_before, peak_before = process.memory_info().rss, _peak_rss_bytes()
        t0 = time.perf_counter()
        try:
            spec = duofit.load_spec(source)
        except SpecError as exc:
            _assert_spec_error(exc)
            assert exc.path.startswith(paths), f"the error is not under {paths}:\n{exc}"
            outcomes[f"{delivery}:spec-error"] += 1
        else:
            assert isinstance(spec, Spec)
            outcomes[f"{delivery}:valid"] += 1
            loaded, ds = _assert_data(spec, paths)
            outcomes[loaded] += 1
            if ds is not None:
                outcomes[_assert_weights(spec, ds, paths)] += 1
        elapsed = time.perf_counter() - t0
        if elapsed > slowest[0]:
            slowest[:] = [elapsed, f"{delivery} {_describe(payload)}"]
        assert elapsed < MAX_EXAMPLE_SECONDS, f"example took {elapsed:.2f} s (a hang?): {_describe(payload)}"
        peak = _peak_rss_bytes()
        if peak > peak_before:  # this example set a new peak: by how much above where it started?
            spike[0] = max(spike[0], peak - rss_before)
            assert peak - rss_before < MAX_EXAMPLE_PEAK_BYTES, (
                f"example raised peak RSS {(peak - rss_before) / 2**20:.0f} MiB above its start: {_describe(payload)}"
            )

    t0 = time.perf_counter()
    check()
    wall = time.perf_counter() - t0
    total = sum(v for k, v in outcomes.items() if ":" in k)
    print(
        f"\nfuzz: {total} examples in {wall:.1f} s ({total / wall:.0f}/s); largest new peak RSS within one "
        f"example +{spike[0] / 2**20:.0f} MiB; "
        f"slowest {slowest[0] * 1000:.0f} ms ({slowest[1][:120]}); outcomes {dict(sorted(outcomes.items()))}"
    )
    assert total >= FUZZ_EXAMPLES
    # the generator is not degenerate: every delivery produced errors, and some specs stayed valid
    for delivery in ("dict", "toml", "json"):
        assert outcomes[f"{delivery}:spec-error"] > 100, outcomes
    assert outcomes["dict:valid"] + outcomes["toml:valid"] + outcomes["json:valid"] > 100, outcomes
    assert outcomes["data-ok"] > 50 and outcomes["data-error"] > 10, outcomes
    assert outcomes["graph:spec-error"] > 100 and outcomes["graph:valid"] > 100, outcomes
    # shape errors are caught while the data loads: none may reach initial_weights
    assert outcomes["weights-ok"] > 100 and outcomes["weights-error"] == 0, outcomes


# --------------------------------------------------------------------------- explicit caps and edges
# Each case below was found by the fuzzer or is a cap it relies on; each must fail fast, before
# anything large is allocated. "Fast" is the same bound as one fuzz example.
def _seed_doc() -> dict[str, Any]:
    return tomllib.loads(SEED_TEXT)


def _timed_data_error(doc: dict[str, Any], path: str) -> DataError:
    spec = duofit.load_spec(doc)
    t0 = time.perf_counter()
    with pytest.raises(DataError) as info:
        load_dataset(spec)
    assert time.perf_counter() - t0 < MAX_EXAMPLE_SECONDS
    assert info.value.path == path and path in str(info.value), str(info.value)
    return info.value


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"n_samples": spec_module.MAX_SAMPLES, "n_features": spec_module.MAX_SAMPLES}, "data.params.n_samples"),
        ({"n_features": spec_module.MAX_SAMPLES, "n_informative": 2, "n_redundant": 0}, "data.params.n_features"),
        ({"n_samples": spec_module.MAX_SAMPLES, "n_features": 20}, "data.params.n_samples"),
    ],
)
def test_generated_data_over_the_cap(params: dict[str, int], path: str) -> None:
    doc = _seed_doc()
    doc["data"]["params"].update(params)
    assert "MAX_DATA_ELEMENTS" in str(_timed_data_error(doc, path))


def test_make_blobs_cluster_sizes_are_summed() -> None:
    doc = _seed_doc()
    doc["data"] = {"kind": "make_blobs", "params": {"n_samples": [spec_module.MAX_SAMPLES] * 10, "n_features": 2}}
    doc["loss"] = {"type": "categorical_crossentropy"}
    doc["metrics"] = []
    doc["model"]["layers"][-1]["units"] = 10
    _timed_data_error(doc, "data.params.n_samples")


def test_model_over_the_parameter_cap() -> None:
    doc = _seed_doc()
    doc["data"]["params"]["n_samples"] = 100
    doc["model"]["layers"][0]["units"] = spec_module.MAX_UNITS
    doc["model"]["layers"].insert(1, {"type": "dense", "units": spec_module.MAX_UNITS})
    exc = _timed_data_error(doc, "model.layers[1].units")
    assert "MAX_PARAMETERS" in str(exc)


def test_epochs_times_samples_over_the_order_cap() -> None:
    """Training draws one epoch's order at a time (no cap); an exported script's bundle holds them all."""
    from duofit.porting.bundle import bundle_arrays

    doc = _seed_doc()
    doc["train"]["epochs"] = spec_module.MAX_EPOCHS  # 1e6 epochs x 800 training samples
    spec = duofit.load_spec(doc)
    load_dataset(spec)  # no error: the order is never materialised for training
    t0 = time.perf_counter()
    with pytest.raises(DataError) as info:
        bundle_arrays(spec)
    assert time.perf_counter() - t0 < MAX_EXAMPLE_SECONDS
    assert info.value.path == "train.epochs" and "MAX_ORDER_ELEMENTS" in str(info.value)


def test_n_samples_one_is_a_clear_error() -> None:
    # sklearn squeezes a one-sample target to 0-d; that used to be an IndexError
    doc = tomllib.loads((EXAMPLES / "regression.toml").read_text(encoding="utf-8"))
    doc["data"]["params"]["n_samples"] = 1
    _timed_data_error(doc, "data")


@pytest.mark.parametrize("fmt", ["toml", "json"])
def test_spec_file_over_the_byte_cap(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"big.{fmt}"
    path.write_bytes((SEED_TEXT if fmt == "toml" else "{}").encode() + b" " * MAX_SPEC_BYTES)
    with pytest.raises(SpecError, match="larger than the limit"):
        duofit.load_spec(path)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX FIFO")
def test_spec_path_that_is_a_fifo_does_not_block(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "spec.toml"
    os.mkfifo(fifo)
    with pytest.raises(SpecError, match="not a regular file"):
        duofit.load_spec(fifo)


@pytest.mark.parametrize("fmt", ["toml", "json"])
def test_integer_with_5000_digits_in_a_file(tmp_path: Path, fmt: str) -> None:
    # json/tomllib raise a plain ValueError (Python's int/str digit limit), not their decode error
    path = tmp_path / f"big_int.{fmt}"
    digits = "9" * 5000
    path.write_text(f"[train]\nepochs = {digits}\n" if fmt == "toml" else f'{{"train": {{"epochs": {digits}}}}}')
    with pytest.raises(SpecError, match="not valid"):
        duofit.load_spec(path)


@pytest.mark.parametrize("where", [("train", "epochs"), ("loss", "type"), ("data", "params", "n_samples")])
def test_integer_with_5000_digits_in_a_mapping(where: tuple[str, ...]) -> None:
    doc = _seed_doc()
    node: Any = doc
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = 10**5000
    with pytest.raises(SpecError) as info:
        duofit.load_spec(doc)
    assert info.value.path == ".".join(where) and "thousands of digits" in str(info.value)


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(_seed_doc()).encode())
    assert duofit.load_spec(path) == duofit.load_spec(EXAMPLES / "seed.toml")


@pytest.mark.parametrize(("field", "value"), [("split_seed", -1), ("split_seed", 2**32), ("seed", 2**64)])
def test_seeds_outside_what_every_framework_accepts(field: str, value: int) -> None:
    doc = _seed_doc()
    section = "data" if field == "split_seed" else "train"
    doc[section][field] = value
    with pytest.raises(SpecError) as info:
        duofit.load_spec(doc)
    assert info.value.path == f"{section}.{field}" and "4294967295" in str(info.value)


def test_param_of_the_wrong_shape_is_one_line() -> None:
    doc = _seed_doc()
    doc["data"]["params"]["weights"] = {"a": 1}
    with pytest.raises(SpecError) as info:
        duofit.load_spec(doc)
    assert info.value.problems == [
        ("data.params.weights", "must be a boolean, a number, a string or a list of numbers (got a table)")
    ]


def test_long_unknown_key_is_shortened() -> None:
    doc = _seed_doc()
    doc["k" * 100_000] = 1
    with pytest.raises(SpecError) as info:
        duofit.load_spec(doc)
    assert len(str(info.value)) < 1000 and info.value.path.endswith("...")


def test_conv_activation_over_the_cap() -> None:
    """A CNN whose one layer output (for the whole evaluation split at once) would need gigabytes."""
    doc = tomllib.loads((EXAMPLES / "digits_cnn.toml").read_text(encoding="utf-8"))
    doc["data"] = {
        "kind": "make_classification",
        "params": {"n_samples": 8000, "n_features": 1024, "n_informative": 8, "n_classes": 10},
        "image_shape": [32, 32, 1],
        "test_size": 0.5,
    }
    doc["model"]["layers"][0]["filters"] = 256  # 4,000 test images x 32x32x256 = 1.05 G values
    exc = _timed_data_error(doc, "model.layers[0]")
    assert "MAX_ACTIVATION_ELEMENTS" in str(exc) and "filters" in str(exc)
