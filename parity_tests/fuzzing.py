"""Generators of hostile input for the fuzz tests: spec tables with wrong types, absurd numbers
and depths in any field, and their TOML/JSON text with bytes flipped (the command-line target
lives in test_fuzz.py).

Each hypothesis example draws a base (a spec that makes sense, of small sizes) and a seeded
``random.Random``; the fuzz test derives many inputs from the pair, so that ten thousand inputs
cost a few hundred hypothesis examples (its own overhead per example dwarfs the loader's work).
"""
from __future__ import annotations

import copy
import json
import os
import random

import pytest
import tomli_w
from hypothesis import strategies as st

from scratch.activations import ACTIVATIONS
from scratch.losses import FEATURE_LOSSES as LOSSES   # the dense networks' losses; token_cce: sequence_tables

# How many times more inputs the long runs generate (NNPARITY_FUZZ_LONG=1, tests marked slow).
LONG = os.environ.get("NNPARITY_FUZZ_LONG") == "1"
SCALE = 10 if LONG else 1
long_only = pytest.mark.skipif(not LONG, reason="a long run (fuzzing, mutant enumeration): NNPARITY_FUZZ_LONG=1")

PROBABILITY_OUTPUT = {"bce": "sigmoid", "cce": "softmax"}
EXTREME_FLOATS = [0.0, -0.0, 1.0, -1.0, 1e-300, 5e-324, 1e3, -1e3, 700.0, -500.0, 1e300, -1e300,
                  3e38, -3e38, 3.5e38, 1.7e308, float("inf"), float("-inf"), float("nan")]
HOSTILE_SCALARS = [None, True, False, 0, -1, 1, 2**31, 2**63, 2**64, 10**12, 10**308, 10**400,
                   -10**400, 10**4400, -0.0, 1e308, -1e308, 3.5e38, 5e-324, float("inf"),
                   float("nan"), "", "1", "1.5", "nan", "x" * 10_000, "é\u202e\x00", [], {}, [[]],
                   {"a": 1}, [1, "2"], [True, 1.0], [[1.0], [2.0, 3.0]]]


def deep_list(depth: int):
    value: list = [1.0]
    for _ in range(depth):
        value = [value]
    return value


def hostile_value(rng: random.Random):
    """A value of a wrong type, an absurd size or depth, or a plausible number (any field gets it)."""
    roll = rng.random()
    if roll < 0.55:
        return copy.deepcopy(rng.choice(HOSTILE_SCALARS))
    if roll < 0.65:
        return deep_list(rng.choice([3, 50, 900]))
    if roll < 0.85:
        return rng.choice(EXTREME_FLOATS) * rng.choice([1, 1, 10, 1e-10])
    return rng.randint(-10**rng.randint(1, 30), 10**rng.randint(1, 30))


@st.composite
def spec_tables(draw):
    """A spec that loads (a few units wide, 1-3 layers), with extreme numbers drawn where numbers go."""
    depth = draw(st.integers(1, 3))
    widths = [draw(st.integers(1, 4)) for _ in range(depth + 1)]
    loss = draw(st.sampled_from(list(LOSSES)))
    if loss in ("cce", "softmax_cce", "bce") and widths[-1] == 1 and loss != "bce":
        widths[-1] = 2
    acts = [draw(st.sampled_from(list(ACTIVATIONS))) for _ in range(depth)]
    acts[-1] = PROBABILITY_OUTPUT.get(loss, draw(st.sampled_from(["identity", acts[-1]])))
    numbers = st.one_of(st.floats(-3, 3), st.sampled_from(EXTREME_FLOATS[:14]))
    layers = []
    for i, act in enumerate(acts):
        layer = {"units": widths[i + 1], "activation": act}
        if i == 0:
            layer["inputs"] = widths[0]
        if draw(st.booleans()):
            layer["weight"] = [[draw(numbers) for _ in range(widths[i + 1])] for _ in range(widths[i])]
            layer["bias"] = [draw(numbers) for _ in range(widths[i + 1])]
        layers.append(layer)
    raw = {"seed": draw(st.integers(0, 2**32)), "dtype": draw(st.sampled_from(["float64", "float32"])),
           "layers": layers, "loss": {"name": loss, "reduction": draw(st.sampled_from(["mean", "sum"]))}}
    if draw(st.booleans()):
        n = draw(st.integers(1, 3))
        raw["data"] = {"x": [[draw(numbers) for _ in range(widths[0])] for _ in range(n)],
                       "y": _targets(draw, loss, n, widths[-1])}
    return raw


@st.composite
def sequence_tables(draw):
    """A network on token ids that loads: an embedding (a padding index or not), a positional table
    or not, a recurrent layer of any kind or not, a dense layer at every step, token_cce (an
    ignore_index or not); inline token data or not."""
    steps, vocab = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    layers = [{"kind": "embedding", "vocab": vocab, "dim": draw(st.integers(1, 3))}]
    if draw(st.booleans()):
        layers[0]["padding_index"] = draw(st.integers(0, vocab - 1))
    if draw(st.booleans()):
        layers.append({"kind": "positional_embedding", "max_len": draw(st.integers(steps, steps + 2))})
    kind = draw(st.sampled_from([None, "rnn", "lstm", "gru"]))
    if kind is not None:
        layers.append({"kind": kind, "hidden": draw(st.integers(1, 3)), "num_layers": draw(st.integers(1, 2)),
                       "bidirectional": draw(st.booleans())})
    layers.append({"units": vocab, "activation": draw(st.sampled_from(["identity", "tanh"]))})
    loss = {"name": "token_cce"}
    if draw(st.booleans()):
        loss["ignore_index"] = draw(st.sampled_from([-100, -1, 0]))
    raw = {"seed": draw(st.integers(0, 2**32)), "dtype": draw(st.sampled_from(["float64", "float32"])),
           "input_shape": [steps], "layers": layers, "loss": loss}
    if draw(st.booleans()):
        n = draw(st.integers(1, 3))
        tokens = st.integers(0, vocab - 1)
        raw["data"] = {"x": [[draw(tokens) for _ in range(steps)] for _ in range(n)],
                       "y": [[draw(tokens) for _ in range(steps)] for _ in range(n)]}
    return raw


def _targets(draw, loss: str, n: int, outputs: int):
    if loss in ("cce", "softmax_cce"):
        return [draw(st.integers(0, outputs - 1)) for _ in range(n)]
    if loss in ("bce", "bce_logits"):
        return [[draw(st.sampled_from([0.0, 1.0, 0.5])) for _ in range(outputs)] for _ in range(n)]
    return [[draw(st.floats(-1e3, 1e3)) for _ in range(outputs)] for _ in range(n)]


def _paths(value, prefix=()):
    """Every path (keys and indices) into a table, five levels deep at most (a spec's own depth;
    below that lie the hostile values themselves), the table's own path included."""
    yield prefix
    if len(prefix) >= 5:
        return
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list) and len(value) <= 8:
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


EXTRA_KEYS = ["optimizer", "train", "data", "bogus", "layers"]
FIELD_NAMES = ["lr", "momentum", "betas", "eps", "epochs", "batch_size", "samples", "noise", "name",
               "init", "init_scale", "activation_params", "use_bias", "test_fraction", "scale",
               "clip_norm", "max_backtracks", "seed", "loss_tol", "x", "y", "weight", "bias", "units",
               "vocab", "dim", "padding_index", "max_len", "hidden", "num_layers", "bidirectional",
               "nonlinearity", "ignore_index", "input_shape"]


def mutate(raw: dict, rng: random.Random) -> dict:
    """One to three fields replaced by hostile values, or a field added where it may or may not go."""
    raw = copy.deepcopy(raw)
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in _paths(raw) if p]
        if rng.random() < 0.3 or not paths:
            table = raw.setdefault(rng.choice(EXTRA_KEYS), {})
            if isinstance(table, list) and table and isinstance(table[0], dict):
                table = table[0]
            if isinstance(table, dict):
                table[rng.choice(FIELD_NAMES)] = hostile_value(rng)
            continue
        path = rng.choice(paths)
        node = raw
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = hostile_value(rng)
    return raw


def to_text(raw: dict, suffix: str) -> bytes:
    """The table as TOML or JSON bytes; what TOML cannot hold (None, mixed arrays) goes as JSON."""
    if suffix == ".toml":
        try:
            return tomli_w.dumps(raw).encode()
        except (TypeError, ValueError, RecursionError):
            pass
    try:
        return json.dumps(raw).encode()
    except (ValueError, RecursionError):  # an integer past the str-conversion limit, a deep list
        return b'{"layers": ' + b"[" * 5000 + b"]" * 5000 + b"}"


def flip(data: bytes, rng: random.Random) -> bytes:
    """A few bytes replaced, inserted or removed; sometimes a BOM, UTF-16, or brackets a thousand deep."""
    roll = rng.random()
    if roll < 0.05:
        return b"\xef\xbb\xbf" + data
    if roll < 0.1:
        return data.decode("utf-8", "replace").encode("utf-16")
    if roll < 0.15:
        at = rng.randrange(len(data) + 1)
        return data[:at] + b"[" * rng.choice([100, 3000]) + data[at:]
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(out) + 1)
        op = rng.random()
        byte = rng.choice([rng.randrange(256), ord("["), ord("{"), ord('"'), ord("9"), ord("e"), 0xFF, 0x80])
        if op < 0.4 and at < len(out):
            out[at] = byte
        elif op < 0.7:
            out.insert(at, byte)
        elif at < len(out):
            del out[at]
    return bytes(out)



# ------------------------------------------------------------------------------- image specs

# Values of the image, normalization, dropout and residual kinds' fields near their edges, valid
# and not: a kernel past the input, padding past half the kernel, groups that do not divide, p = 1,
# eps that is 0 in float32, a body that changes the shape, an input_shape of the wrong rank.
FIELD_EDGES = {
    "kernel": [1, 2, 3, [1, 3], [3, 1], 0, -1, 9, [2, 0], [1, 1, 1], [1.5, 2]],
    "stride": [1, 2, 3, [2, 1], 0, -1, [1, 0]],
    "padding": [0, 1, 2, [1, 0], -1, [0, -1], 5],
    "dilation": [1, 2, [2, 1], 0, -1],
    "groups": [1, 2, 3, 0, -1],
    "out_channels": [1, 2, 4, 6, 0, -1],
    "in_channels": [1, 2, 3, 0],
    "p": [0.0, 0.5, 0.999, 1.0, -0.1, 1.5, 1e-300],
    "eps": [1e-5, 1e-300, 5e-324, 1e-45, 0.0, -1e-5, 1.0, 1e30],
    "momentum": [0.0, 0.5, 1.0, 1.0000001, -0.1, 2.0],
    "affine": [True, False, 1, "yes"],
    "elementwise_affine": [True, False, 0],
    "projection": [True, False, "true"],
    "dims": [1, 2, 3, 4, 0],
    "body": [[], [{}], [{"kind": "conv2d", "out_channels": 5, "kernel": 3}], [{"kind": "maxpool2d", "kernel": 2}],
             [{"kind": "flatten"}], [{"kind": "batchnorm"}], [{"kind": "residual", "body": [{"kind": "dropout"}]}],
             [{"kind": "conv2d", "out_channels": 2, "kernel": 1, "stride": 2}]],
    "kind": ["conv2d", "maxpool2d", "avgpool2d", "flatten", "global_avgpool", "batchnorm", "layernorm", "dropout",
             "residual", "dense", "conv3d"],
    "input_shape": [[1, 8, 8], [3, 1, 1], [1, 0, 4], [2, 3], [5], [1, 10**6, 10**6], [2, 5, 5, 5]],
}


# The fields each kind takes (a field another kind takes is refused as unknown: also fuzzed).
KIND_FIELDS = {"conv2d": ["kernel", "stride", "padding", "dilation", "groups", "out_channels", "in_channels"],
               "maxpool2d": ["kernel", "stride", "padding"], "avgpool2d": ["kernel", "stride", "padding"],
               "batchnorm": ["eps", "momentum", "affine"], "layernorm": ["eps", "elementwise_affine", "dims"],
               "dropout": ["p"], "residual": ["body", "projection"]}


def _edge(name: str, rng: random.Random):
    return copy.deepcopy(rng.choice(FIELD_EDGES[name])) if rng.random() < 0.85 else hostile_value(rng)


def _image_layer(draw, depth: int = 0) -> dict:
    """One image-kind layer table with small fields; not every one fits its input (those are refused)."""
    kinds = ["conv2d", "maxpool2d", "avgpool2d", "batchnorm", "layernorm", "dropout"] + (["residual"] if depth == 0 else [])
    kind = draw(st.sampled_from(kinds))
    small = st.one_of(st.integers(1, 3), st.lists(st.integers(1, 3), min_size=2, max_size=2))
    layer: dict = {"kind": kind}
    if kind == "conv2d":
        layer.update(out_channels=draw(st.integers(1, 4)), kernel=draw(small))
        for name, values in (("stride", small), ("padding", st.integers(0, 1)), ("dilation", small),
                             ("groups", st.integers(1, 2)), ("use_bias", st.booleans())):
            if draw(st.booleans()):
                layer[name] = draw(values)
    elif kind in ("maxpool2d", "avgpool2d"):
        layer["kernel"] = draw(small)
        for name, values in (("stride", small), ("padding", st.integers(0, 1))):
            if draw(st.booleans()):
                layer[name] = draw(values)
    elif kind in ("batchnorm", "layernorm"):
        layer["eps"] = draw(st.sampled_from([1e-5, 1e-3, 0.1]))
        if kind == "batchnorm":
            layer.update(momentum=draw(st.sampled_from([0.0, 0.1, 1.0])), affine=draw(st.booleans()))
        else:
            layer["elementwise_affine"] = draw(st.booleans())
            if draw(st.booleans()):
                layer["dims"] = draw(st.integers(1, 3))
    elif kind == "dropout":
        layer["p"] = draw(st.sampled_from([0.0, 0.1, 0.5, 0.9]))
    else:
        layer["body"] = [_image_layer(draw, depth + 1) for _ in range(draw(st.integers(1, 2)))]
        layer["projection"] = draw(st.booleans())
    if draw(st.booleans()):
        layer["activation"] = draw(st.sampled_from(["relu", "tanh", "identity", "gelu"]))
    return layer


@st.composite
def image_spec_tables(draw):
    """An image spec: input_shape [C, H, W] (small), 1-3 layers of the image kinds (residual blocks
    with bodies of 1-2), a flatten or global average pool, maybe dropout or a batchnorm over
    features, a dense layer; many load, some are refused (a kernel past a 2x2 input)."""
    channels, height, width = draw(st.integers(1, 3)), draw(st.integers(1, 8)), draw(st.integers(1, 8))
    layers = [_image_layer(draw) for _ in range(draw(st.integers(1, 3)))]
    layers.append({"kind": draw(st.sampled_from(["flatten", "global_avgpool"]))})
    if draw(st.booleans()):
        layers.append(draw(st.sampled_from([{"kind": "dropout", "p": 0.2}, {"kind": "batchnorm"},
                                            {"kind": "layernorm"}])))
    loss = draw(st.sampled_from(["softmax_cce", "mse"]))
    outputs = draw(st.integers(2, 3))
    layers.append({"units": outputs})
    raw = {"seed": draw(st.integers(0, 2**32)), "dtype": draw(st.sampled_from(["float64", "float32"])),
           "input_shape": [channels, height, width], "layers": layers, "loss": {"name": loss}}
    if draw(st.booleans()):
        n = draw(st.integers(2, 3))
        numbers = st.floats(-3, 3)      # extreme inputs: the dense fuzz targets
        raw["data"] = {"x": [[draw(numbers) for _ in range(channels * height * width)] for _ in range(n)],
                       "y": _targets(draw, loss, n, outputs)}
    return raw


def mutate_image(raw: dict, rng: random.Random) -> tuple[dict, list]:
    """One or two of an image spec's layer fields (or input_shape) set to a value near an edge or
    a hostile one, added where they may or may not go; with the paths changed. A fifth of the time, the
    generic mutate instead (paths anywhere: None)."""
    if rng.random() < 0.2:
        return mutate(raw, rng), None
    raw = copy.deepcopy(raw)
    paths = []
    for _ in range(rng.randint(1, 2)):
        if rng.random() < 0.1:
            raw["input_shape"] = _edge("input_shape", rng)
            paths.append(("input_shape",))
            continue
        i = rng.randrange(len(raw["layers"]))
        table, path = raw["layers"][i], ("layers", i)
        body = table.get("body") if isinstance(table, dict) else None
        if isinstance(body, list) and body and isinstance(body[0], dict) and rng.random() < 0.5:
            j = rng.randrange(len(body))
            table, path = body[j], path + ("body", j)
        if not isinstance(table, dict):
            continue
        kind = table.get("kind")
        own = KIND_FIELDS.get(kind, []) if isinstance(kind, str) else []
        name = rng.choice(own) if own and rng.random() < 0.8 else rng.choice(list(FIELD_EDGES))
        table[name] = _edge(name, rng)
        paths.append(path + (name,))
    return raw, paths
