"""The inputs of a course layer function, from a hook or from its parameter names.

A hook ``<base>_example(rng)`` (``conv_example`` for ``conv_forward_naive``) in the forward's module
returns the forward's positional inputs as a tuple (or one value, or a dict by parameter name):
they are used exactly as given. Without one, the inputs are inferred from the parameter names
and the course conventions (CS231n's assignments) of the layer the base name says:

    affine, relu, dropout, batchnorm, layernorm   x (6, 4); w (4, 3), b (3,); gamma, beta (4,)
    spatial_batchnorm                            x (2, 3, 2, 2); gamma, beta (3,)
    conv                                          x (2, 2, 5, 5), w (2, 2, 3, 3), b (2,), stride 2, pad 1
    max_pool                                      x (2, 2, 4, 4), 2×2 windows, stride 2
    rnn_step / rnn, lstm_step / lstm              x (3, 4) / (2, 3, 4), prev_h / h0, prev_c, Wx, Wh, b
                                                  (a name with "cell" or "step" is one step: rnn_cell)
    word_embedding                                x int (2, 3) < V = 5, W (5, 3)
    temporal_affine                               x (2, 3, 4), w (4, 3), b (3,)
    temporal_softmax_loss                         x (2, 3, 5), y int (2, 3), mask bool (2, 3)

The sizes are small (finite differences call the forward twenty times per element) and the
batch of 2-D inputs is 6, so a mean taken for a sum shows as a factor 6.
"""
from __future__ import annotations

import numpy as np

from nnparity.verify.load import OpError

N, D, M = 6, 4, 3          # 2-D layers: batch, input width, output width
H, T = 3, 3                # recurrent: hidden width, time steps
LAYERS = ("temporal_softmax_loss", "temporal_affine", "word_embedding", "spatial_batchnorm", "batchnorm",
          "layernorm", "dropout", "conv", "max_pool", "lstm_step", "lstm", "rnn_step", "rnn", "affine", "relu")
ALIASES = {"batch_norm": "batchnorm", "layer_norm": "layernorm", "maxpool": "max_pool", "pool": "max_pool",
           "embedding": "word_embedding", "convolution": "conv"}
DICTS = {"conv_param": lambda: {"stride": 2, "pad": 1},
         "pool_param": lambda: {"pool_height": 2, "pool_width": 2, "stride": 2},
         "ln_param": lambda: {"eps": 1e-5},
         "dropout_param": lambda: {"p": 0.6, "mode": "train", "seed": 231}}


def layer_kind(base: str) -> str | None:
    """The course layer a base name says (``conv_forward_naive`` -> conv), or None; a recurrent
    name with ``cell`` or ``step`` is one step (``rnn_cell_forward`` -> rnn_step), not a sequence."""
    low = base.lower()
    for alias, kind in ALIASES.items():
        low = low.replace(alias, kind)
    kind = next((kind for kind in LAYERS if kind in low), None)
    if kind in ("rnn", "lstm") and ("cell" in low or "step" in low):
        return f"{kind}_step"
    return kind


def _x_shape(kind: str | None) -> tuple:
    return {"spatial_batchnorm": (2, H, 2, 2), "conv": (2, 2, 5, 5), "max_pool": (2, 2, 4, 4),
            "lstm_step": (H, D), "rnn_step": (H, D), "lstm": (2, T, D), "rnn": (2, T, D),
            "temporal_affine": (2, T, D), "temporal_softmax_loss": (2, T, 5)}.get(kind, (N, D))


def _shapes(kind: str | None) -> dict:
    """Parameter name (lower case) -> shape for the layer kind."""
    gates = 4 * H if kind in ("lstm", "lstm_step") else H
    batch = _x_shape(kind)[0]
    # a sandwich (affine_bn_relu) normalises the affine output; spatial batchnorm each channel
    width = {"spatial_batchnorm": _x_shape(kind)[1], "affine": M}.get(kind, D)
    shapes = {"w": (D, M), "weight": (D, M), "b": (M,), "bias": (M,), "gamma": (width,), "beta": (width,),
              "prev_h": (batch, H), "h0": (batch, H), "prev_c": (batch, H), "c0": (batch, H),
              "wx": (D, gates), "wh": (H, gates)}
    if kind in ("lstm", "lstm_step", "rnn", "rnn_step"):
        shapes["b"] = (gates,)
    if kind == "conv":
        shapes.update(w=(2, 2, 3, 3), weight=(2, 2, 3, 3), b=(2,), bias=(2,))
    if kind == "word_embedding":
        shapes.update(w=(5, M), weight=(5, M))
    return shapes


def _bn_param(width: int, rng) -> dict:
    return {"mode": "train", "eps": 1e-5, "momentum": 0.9, "running_mean": rng.normal(0.0, 1.0, size=width),
            "running_var": rng.uniform(0.5, 1.5, size=width)}


def _first(kind: str | None, rng):
    shape = _x_shape(kind)
    if kind == "word_embedding":
        return rng.integers(0, 5, size=(2, T))
    return rng.normal(0.0, 1.0, size=shape)


def _value(kind: str | None, name: str, rng, x):
    low = name.lower()
    if low in DICTS:
        return DICTS[low]()
    if low in ("bn_param", "gn_param"):
        return _bn_param(_shapes(kind)["gamma"][0], rng)
    if kind == "temporal_softmax_loss" and low in ("y", "labels", "target", "targets"):
        return rng.integers(0, x.shape[2], size=x.shape[:2])
    if kind == "temporal_softmax_loss" and low == "mask":
        mask = rng.uniform(size=x.shape[:2]) < 0.7
        mask[0, 0], mask[-1, -1] = True, False
        return mask
    shape = _shapes(kind).get(low)
    if shape is None and low[:1] in ("w", "b") and low[1:].isdigit():
        shape = _shapes(kind)[low[0]]
    if shape is None:
        return None
    return rng.normal(0.0, 0.5, size=shape)


def inferred_inputs(fname: str, base: str, names: list, rng) -> list:
    """The forward's inputs by name (OpError naming the hook when one cannot be inferred)."""
    kind = layer_kind(base)
    x = _first(kind, rng)
    values = [x]
    for name in names[1:]:
        value = _value(kind, name, rng, x)
        if value is None:
            raise OpError(f"cannot infer {fname}'s input {name!r} from its name (known: x, w, b, gamma, beta, prev_h, "
                          f"prev_c, h0, Wx, Wh, conv_param, pool_param, bn_param, ln_param, dropout_param, y, mask); "
                          f"define {base}_example(rng) in its module returning all inputs in order, e.g.\n"
                          f"    def {base}_example(rng):\n"
                          f"        return rng.normal(size=(6, 4)), {{'p': 0.5, 'mode': 'train', 'seed': 0}}")
        values.append(value)
    return values


def rank_variant(x: np.ndarray, rng) -> np.ndarray | None:
    """A 3-D batch (3, 2, D/2) of the same width as a 2-D x (N, D) with D even, else None:
    a forward written for x of any rank reshapes it, and its backward must reshape dx back."""
    if x.ndim != 2 or x.dtype.kind != "f" or x.shape[1] % 2:
        return None
    return rng.normal(0.0, 1.0, size=(3, 2, x.shape[1] // 2))


def describe(value) -> str:
    """One input as the report shows it."""
    if isinstance(value, np.ndarray):
        kind = "" if value.dtype.kind == "f" else f" {value.dtype}"
        return f"{tuple(value.shape)}{kind}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {describe(v)}" for k, v in value.items()) + "}"
    return repr(value)
