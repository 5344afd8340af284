"""Datasets and data handling: built-in datasets, one-hot, scaling, the split, the batch order.

Everything here is data, not maths under test: torch_ref and the Lightning path use the same
arrays and the same ``batch_order`` so every loop visits the same rows in the same order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from scratch.errors import SpecError
from scratch.losses import IGNORE_INDEX
from scratch.sequence_data import TOKEN_DATASETS, check_token_targets, check_tokens, generate_tokens


def random_batch(spec, n: int, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A seeded batch (x, y) that fits the spec: x ~ N(0, 1); targets that suit the loss
    (class indices for the cross-entropies, 0/1 for BCE, N(0, 1) values otherwise)."""
    if n < 1:
        raise ValueError(f"batch: must be >= 1, got {n}")
    rng = np.random.default_rng(spec.seed + 1 if seed is None else seed)
    if spec.vocab is not None:
        x = rng.integers(0, spec.vocab, size=(n, *spec.shapes[0]))
    else:
        x = rng.normal(size=(n, *spec.shapes[0]))
    name, outputs = spec.loss.name, spec.outputs
    if name == "token_cce":
        y = rng.integers(0, outputs, size=(n, spec.shapes[-1][0]))
    elif name in ("cce", "softmax_cce"):
        y = rng.integers(0, outputs, size=n)
    elif name in ("bce", "bce_logits"):
        y = rng.integers(0, 2, size=(n, outputs)).astype(float)
    else:
        y = rng.normal(size=(n, outputs))
    return x, y


def inline_data(spec) -> tuple[np.ndarray, np.ndarray] | None:
    """The spec's inline (x, y), validated, or None when it has none. Rows of an image spec are its
    images flattened in C order (C·H·W numbers each), shaped here as (N, C, H, W)."""
    if spec.data.x is None:
        return None
    if spec.vocab is not None:
        x = check_tokens(spec.data.x, spec.shapes[0][0], spec.vocab, "data.x")
        return x, check_token_targets(spec.data.y, len(x), spec.outputs, spec.loss.ignore, "data.y")
    x = np.asarray(spec.data.x, dtype=float)
    x = x.reshape(x.shape[0], *spec.shapes[0])
    y = check_targets(spec.data.y, x.shape[0], spec.outputs, spec.loss.name, "data.y")
    return x, y


# ----------------------------------------------------------------------------- preprocessing


def one_hot(labels, classes: int, dtype="float64") -> np.ndarray:
    """(N,) integer labels -> (N, classes) one-hot rows."""
    labels = np.asarray(labels)
    if (labels.ndim != 1 or (labels.size and not np.issubdtype(labels.dtype, np.integer))
            or (labels.size and (labels.min() < 0 or labels.max() >= classes))):
        raise ValueError(f"labels: expected (N,) integers in 0..{classes - 1}")
    out = np.zeros((labels.shape[0], classes), dtype=dtype)
    out[np.arange(labels.shape[0]), labels] = 1
    return out


def _power_of_two_scale(x) -> np.ndarray:
    """Per column, the power of two s with max|x|/s in [1, 2). Dividing by it is exact (while x/s
    stays a normal float), so the statistics of x/s, in x's units, are those of x bit for bit;
    and they neither overflow nor underflow, where the variance of ±1e308, or of 1e-300, does."""
    _, exponent = np.frexp(np.abs(x).max(axis=0))
    return np.ldexp(1.0, exponent - 1)


class Standardizer:
    """x -> (x - mean) / std, fitted on the training rows only (constant columns keep std 1).
    Computed as (x/s - mean/s) / (std/s) (_power_of_two_scale): the same bits, for any finite x."""

    def fit(self, x):
        scale = _power_of_two_scale(x)
        std = (x / scale).std(axis=0)
        self.scale = np.where(std > 0, scale, 1.0)   # a constant column is shifted only, in x's units
        self.mean = (x / self.scale).mean(axis=0)
        self.std = np.where(std > 0, std, 1.0)
        return self

    def transform(self, x):
        return (x / self.scale - self.mean) / self.std


class MinMaxScaler:
    """x -> (x - min) / (max - min) into [0, 1], fitted on the training rows only (constant
    columns keep range 1). Computed as (x/s - min/s) / (range/s) (_power_of_two_scale): the same
    bits, for any finite x."""

    def fit(self, x):
        scale = _power_of_two_scale(x)
        u = x / scale
        span = u.max(axis=0) - u.min(axis=0)
        self.scale = np.where(span > 0, scale, 1.0)   # a constant column is shifted only, in x's units
        self.low = (x / self.scale).min(axis=0)
        self.span = np.where(span > 0, span, 1.0)
        return self

    def transform(self, x):
        return (x / self.scale - self.low) / self.span


SCALERS = {"standard": Standardizer, "minmax": MinMaxScaler}


def train_test_split(x, y, test_fraction: float, seed: int):
    """A seeded shuffle, then the last ``test_fraction`` of rows held out."""
    n = x.shape[0]
    order = np.random.default_rng(seed).permutation(n)
    n_test = int(round(n * test_fraction))
    train, test = order[: n - n_test], order[n - n_test:]
    return x[train], y[train], x[test], y[test]


def batch_order(n: int, batch_size: int | None, shuffle: bool, seed: int, epoch: int) -> list[np.ndarray]:
    """The row indices of each mini-batch of one epoch, shared by every training loop.

    Shuffled orders come from ``default_rng((seed, epoch))``, so any loop (scratch, torch,
    Lightning, each DDP rank) can compute epoch e's order without replaying earlier epochs.
    The last batch may be smaller.
    """
    size = n if batch_size is None else min(batch_size, n)
    order = np.random.default_rng((seed, epoch)).permutation(n) if shuffle else np.arange(n)
    return [order[i:i + size] for i in range(0, n, size)]


# ---------------------------------------------------------------------------------- datasets
#
# A generator takes (rng, samples, noise) and returns (x, y): y is (N, 1) float values for the
# regression sets and (N,) integer class labels for the classification sets; load_dataset
# shapes the labels for the spec's loss.


def _xor(rng, samples, noise):
    """The XOR truth table: 4 rows, label 1 where exactly one input is 1."""
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    return x, np.array([0, 1, 1, 0], dtype=np.int64)


def _linear(rng, samples, noise):
    """z = 2x on an even grid of [-1, 1] (32 points), plus N(0, noise²) when noise is given."""
    x = np.linspace(-1, 1, samples or 32)[:, None]
    return x, 2 * x + (noise or 0.0) * rng.normal(size=x.shape)


def _square(rng, samples, noise):
    """y = x² on an even grid of [-1, 1] (64 points), plus N(0, noise²) when noise is given."""
    x = np.linspace(-1, 1, samples or 64)[:, None]
    return x, x * x + (noise or 0.0) * rng.normal(size=x.shape)


def _moons(rng, samples, noise):
    """scikit-learn's two interleaving half circles (200 points, noise 0.1), labels 0/1."""
    from sklearn.datasets import make_moons

    x, y = make_moons(samples or 200, noise=0.1 if noise is None else noise, random_state=int(rng.integers(2**31)))
    return x, y.astype(np.int64)


def _circles(rng, samples, noise):
    """scikit-learn's two concentric circles (200 points, noise 0.05, radius ratio 0.5), labels 0/1."""
    from sklearn.datasets import make_circles

    x, y = make_circles(samples or 200, noise=0.05 if noise is None else noise, factor=0.5,
                        random_state=int(rng.integers(2**31)))
    return x, y.astype(np.int64)


DIGITS_ROWS = 1797


def _digits(rng, samples, noise):
    """scikit-learn's 8×8 digits (1,797 images, shipped with the package): pixels / 16 in [0, 1],
    labels 0..9; ``samples`` keeps the first rows."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = digits.data / 16.0, digits.target.astype(np.int64)
    return x[:samples], y[:samples]


@dataclass(frozen=True)
class DatasetInfo:
    """A built-in dataset: its generator, widths, and which DataSpec knobs it takes."""

    make: Callable                  # (rng, samples, noise) -> (x, y)
    inputs: int                     # columns of x
    classes: int | None             # class count; None for a regression set (one output column)
    samples: bool = True            # accepts data.samples
    noise: bool = True              # accepts data.noise
    max_samples: int | None = None  # most rows it has (shipped data)
    image_shape: tuple | None = None  # (C, H, W) of its rows as images, for a spec with that input_shape


DATASETS = {
    "xor": DatasetInfo(_xor, 2, 2, samples=False, noise=False),
    "linear": DatasetInfo(_linear, 1, None),
    "square": DatasetInfo(_square, 1, None),
    "moons": DatasetInfo(_moons, 2, 2),
    "circles": DatasetInfo(_circles, 2, 2),
    "digits": DatasetInfo(_digits, 64, 10, noise=False, max_samples=DIGITS_ROWS, image_shape=(1, 8, 8)),
}


class Dataset:
    """Train and test arrays, scaled with statistics of the training rows only."""

    def __init__(self, x_train, y_train, x_test=None, y_test=None):
        self.x_train, self.y_train = x_train, y_train
        self.x_test, self.y_test = x_test, y_test

    def __repr__(self):
        n_test = 0 if self.x_test is None else len(self.x_test)
        return f"Dataset(train={len(self.x_train)}, test={n_test})"


CLASS_LOSSES = ("cce", "softmax_cce")


def shape_labels(labels, classes: int, spec, where: str) -> np.ndarray:
    """(N,) class labels in the form the spec's loss takes: kept as indices for the
    cross-entropies, a 0/1 column for a one-output network (two classes only), else one-hot rows."""

    outputs = spec.outputs
    if spec.loss.name in CLASS_LOSSES or outputs > 1:
        if outputs != classes:
            raise SpecError(f"layers[{len(spec.layers) - 1}].units",
                            f"{where} has {classes} classes, the network {outputs} outputs")
        return labels if spec.loss.name in CLASS_LOSSES else one_hot(labels, classes)
    if classes != 2:
        raise SpecError(f"layers[{len(spec.layers) - 1}].units",
                        f"{where} has {classes} classes; one output fits two classes only")
    return labels[:, None].astype(float)


def generate(spec) -> tuple[np.ndarray, np.ndarray]:
    """The spec's named dataset, whole (before the split), with targets shaped for its loss."""

    d = spec.data
    if d.name in TOKEN_DATASETS:
        return generate_tokens(spec)
    if spec.vocab is not None:
        raise SpecError("data.name", f"{d.name!r} holds no token ids; a network on tokens takes "
                                     f"{', '.join(TOKEN_DATASETS)} (or inline token ids)")
    info = DATASETS[d.name]
    input_shape = spec.shapes[0]
    if len(input_shape) == 3 and tuple(input_shape) != info.image_shape:
        images = "no images" if info.image_shape is None else f"images of {list(info.image_shape)}"
        raise SpecError("input_shape", f"dataset {d.name!r} has {images}, the spec {list(input_shape)}")
    if spec.inputs != info.inputs:
        raise SpecError("layers[0].inputs", f"dataset {d.name!r} has {info.inputs} inputs, the spec {spec.inputs}")
    if d.samples is not None and not info.samples:
        raise SpecError("data.samples", f"dataset {d.name!r} has a fixed size; leave samples out")
    if d.samples is not None and info.max_samples is not None and d.samples > info.max_samples:
        raise SpecError("data.samples", f"dataset {d.name!r} has {info.max_samples} rows, asked for {d.samples}")
    if d.noise is not None and not info.noise:
        raise SpecError("data.noise", f"dataset {d.name!r} takes no noise; leave noise out")
    with np.errstate(over="ignore", invalid="ignore"):   # a huge noise: refused below, by its field
        x, y = info.make(np.random.default_rng(spec.seed), d.samples, d.noise)
    field = "data.noise" if d.noise is not None else f"data ({d.name})"
    _check_finite(x, field, spec.dtype)
    x = x.reshape(x.shape[0], *input_shape)   # rows as images where the spec takes images
    if info.classes is None:
        if spec.outputs != 1:
            raise SpecError(f"layers[{len(spec.layers) - 1}].units",
                            f"dataset {d.name!r} has 1 target column, the network {spec.outputs} outputs")
    else:
        y = shape_labels(y, info.classes, spec, f"dataset {d.name!r}")
    y = check_targets(y, x.shape[0], spec.outputs, spec.loss.name, field, spec.dtype)
    return x, y


def load_dataset(spec) -> Dataset:
    """The spec's data: inline x/y, or a named dataset, split and scaled as the spec says.

    Targets fit the loss: class labels stay (N,) integers for the cross-entropies, become a 0/1
    column for a one-output network and one-hot rows otherwise. The scaler is fitted on the
    training rows and applied to both parts. Floats are cast to spec.dtype.
    """

    d = spec.data
    if d.name is None:
        data = inline_data(spec)
        if data is None:
            raise SpecError("data", "the spec has no data; give data.name or inline data.x and data.y")
        x, y = data
    else:
        x, y = generate(spec)
    if d.test_fraction > 0:
        n = x.shape[0]
        n_test = int(round(n * d.test_fraction))
        if n_test == 0 or n_test == n:
            raise SpecError("data.test_fraction", f"{d.test_fraction} of {n} rows leaves "
                                                  f"{'no test' if n_test == 0 else 'no training'} row")
        x_train, y_train, x_test, y_test = train_test_split(x, y, d.test_fraction, spec.seed)
    else:
        x_train, y_train, x_test, y_test = x, y, None, None
    if d.scale != "none" and spec.vocab is not None:
        raise SpecError("data.scale", "token ids are not scaled; leave scale out")
    if d.scale != "none":
        scaler = SCALERS[d.scale]().fit(x_train)
        with np.errstate(over="ignore", invalid="ignore"):   # a test row far beyond the training rows
            x_train = scaler.transform(x_train)
            x_test = None if x_test is None else scaler.transform(x_test)
        for part, rows in (("test", x_test), ("training", x_train)):
            if rows is not None and not np.all(np.isfinite(rows)):
                raise SpecError("data.scale", f"{d.scale!r} scaling takes some {part} rows beyond the float "
                                              f"range (they lie far outside the training rows); use scale = \"none\"")
    dtype = np.dtype(spec.dtype)

    def cast(a):
        return a if a is None or a.dtype.kind in "iu" else np.ascontiguousarray(a, dtype=dtype)

    return Dataset(cast(x_train), cast(y_train), cast(x_test), cast(y_test))


# ------------------------------------------------------------------- validation of inputs and targets


def check_inputs(x, inputs, where: str = "x", dtype: str = "float64"):
    """Validate network inputs: finite numbers of shape (N, inputs), N >= 1, that fit ``dtype``;
    ``inputs`` is a width or one example's shape ((C, H, W) for images: x is (N, C, H, W)).

    Returns them as a float64 NumPy array."""
    try:
        arr = np.asarray(x)
        if arr.dtype == object or arr.dtype.kind not in "biuf":
            raise ValueError
        arr = arr.astype(np.float64)
    except (ValueError, TypeError, RecursionError, OverflowError):
        raise SpecError(where, "expected a rectangular list of numbers") from None
    shape = (inputs,) if isinstance(inputs, int) else tuple(inputs)
    if arr.ndim != 1 + len(shape) or arr.shape[0] == 0 or arr.shape[1:] != shape:
        raise SpecError(where, f"expected shape (N, {', '.join(map(str, shape))}) with N >= 1, got {tuple(arr.shape)}")
    _check_finite(arr, where, dtype)
    return arr


def _check_finite(arr, where: str, dtype: str) -> None:
    if not np.all(np.isfinite(arr)):
        i = tuple(int(k) for k in np.argwhere(~np.isfinite(arr))[0])
        raise SpecError(where, f"contains NaN or inf (at {i}); expected finite numbers")
    if dtype != "float64":
        limit = float(np.finfo(dtype).max)
        if np.any(np.abs(arr) > limit):
            raise SpecError(where, f"values beyond the {dtype} range (|v| <= {limit:.4g}); "
                                   f"use dtype float64")


def check_targets(y, n: int, outputs: int, loss_name: str, where: str = "y", dtype: str = "float64",
                  ignore_index: int = IGNORE_INDEX):
    """Validate targets for a loss: (n, outputs) values, or (n,) class indices for class losses,
    or (n, T) class indices (``ignore_index`` for none) for token_cce.

    Returns them as a NumPy array (float, or int64 for class indices)."""
    if loss_name == "token_cce":
        return check_token_targets(y, n, outputs, ignore_index, where)
    try:
        arr = np.asarray(y)
        if arr.dtype == object or arr.dtype.kind not in "biuf":  # strings are not numbers, even "1"
            raise ValueError
    except (ValueError, TypeError, RecursionError, OverflowError):
        raise SpecError(where, "expected a rectangular list of numbers") from None
    if arr.ndim == 1 and loss_name in ("cce", "softmax_cce"):
        if not np.issubdtype(arr.dtype, np.integer) and not (
                np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))):
            raise SpecError(where, "class indices must be integers")
        if arr.size and (arr.min() < 0 or arr.max() >= outputs):  # before the cast: 1e300 is no int64
            i = int(np.argmax((arr < 0) | (arr >= outputs)))
            raise SpecError(where, f"label {arr[i]:g} at row {i} is out of range for {outputs} classes "
                                   f"(expected 0..{outputs - 1})")
        arr = arr.astype(np.int64)
        if arr.shape[0] != n:
            raise SpecError(where, f"expected {n} labels (one per row of x), got {arr.shape[0]}")
        bad = (arr < 0) | (arr >= outputs)
        if np.any(bad):
            i = int(np.argmax(bad))
            raise SpecError(where, f"label {arr[i]} at row {i} is out of range for {outputs} classes "
                                   f"(expected 0..{outputs - 1})")
        return arr
    try:
        arr = arr.astype(float)
    except (ValueError, TypeError):
        raise SpecError(where, "expected numbers") from None
    if arr.ndim == 1 and outputs == 1:
        arr = arr[:, None]
    if arr.shape != (n, outputs):
        hint = " or (N,) class indices" if loss_name in ("cce", "softmax_cce") else ""
        raise SpecError(where, f"expected shape ({n}, {outputs}){hint}, got {tuple(arr.shape)}")
    _check_finite(arr, where, dtype)
    if loss_name in ("bce", "bce_logits", "cce", "softmax_cce") and (np.any(arr < 0) or np.any(arr > 1)):
        raise SpecError(where, f"targets of {loss_name} must lie in [0, 1]")
    return arr
