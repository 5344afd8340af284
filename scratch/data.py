"""Datasets and data handling."""
from __future__ import annotations

import numpy as np

from scratch.spec import check_targets


def random_batch(spec, n: int, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A seeded batch (x, y) that fits the spec: x ~ N(0, 1); targets that suit the loss
    (class indices for the cross-entropies, 0/1 for BCE, N(0, 1) values otherwise)."""
    if n < 1:
        raise ValueError(f"batch: must be >= 1, got {n}")
    rng = np.random.default_rng(spec.seed + 1 if seed is None else seed)
    x = rng.normal(size=(n, spec.inputs))
    name, outputs = spec.loss.name, spec.outputs
    if name in ("cce", "softmax_cce"):
        y = rng.integers(0, outputs, size=n)
    elif name in ("bce", "bce_logits"):
        y = rng.integers(0, 2, size=(n, outputs)).astype(float)
    else:
        y = rng.normal(size=(n, outputs))
    return x, y


def inline_data(spec) -> tuple[np.ndarray, np.ndarray] | None:
    """The spec's inline (x, y), validated, or None when it has none."""
    if spec.data.x is None:
        return None
    x = np.asarray(spec.data.x, dtype=float)
    y = check_targets(spec.data.y, x.shape[0], spec.outputs, spec.loss.name, "data.y")
    return x, y


# ----------------------------------------------------------------------------- preprocessing


def one_hot(labels, classes: int, dtype="float64") -> np.ndarray:
    """(N,) integer labels -> (N, classes) one-hot rows."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"labels: expected (N,) integers in 0..{classes - 1}")
    out = np.zeros((labels.shape[0], classes), dtype=dtype)
    out[np.arange(labels.shape[0]), labels] = 1
    return out


class Standardizer:
    """x -> (x - mean) / std, fitted on the training rows only (constant columns keep std 1)."""

    def fit(self, x):
        self.mean = x.mean(axis=0)
        std = x.std(axis=0)
        self.std = np.where(std > 0, std, 1.0)
        return self

    def transform(self, x):
        return (x - self.mean) / self.std


class MinMaxScaler:
    """x -> (x - min) / (max - min) into [0, 1], fitted on the training rows only."""

    def fit(self, x):
        self.low = x.min(axis=0)
        span = x.max(axis=0) - self.low
        self.span = np.where(span > 0, span, 1.0)
        return self

    def transform(self, x):
        return (x - self.low) / self.span


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


def _xor(rng, samples, noise):
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    return x, np.array([[0], [1], [1], [0]], dtype=float)


def _linear(rng, samples, noise):
    """y = 2x on [-1, 1]."""
    x = np.linspace(-1, 1, samples or 32)[:, None]
    return x, 2 * x + (noise or 0.0) * rng.normal(size=x.shape)


def _square(rng, samples, noise):
    """y = x² on [-1, 1]."""
    x = np.linspace(-1, 1, samples or 64)[:, None]
    return x, x * x + (noise or 0.0) * rng.normal(size=x.shape)


def _moons(rng, samples, noise):
    from sklearn.datasets import make_moons

    x, y = make_moons(samples or 200, noise=0.1 if noise is None else noise, random_state=int(rng.integers(2**31)))
    return x, y[:, None].astype(float)


def _circles(rng, samples, noise):
    from sklearn.datasets import make_circles

    x, y = make_circles(samples or 200, noise=0.05 if noise is None else noise, factor=0.5,
                        random_state=int(rng.integers(2**31)))
    return x, y[:, None].astype(float)


def _digits(rng, samples, noise):
    """scikit-learn's 8×8 digits (1,797 images, shipped with the package): pixels / 16, labels 0..9."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = digits.data / 16.0, digits.target.astype(np.int64)
    if samples is not None:
        x, y = x[:samples], y[:samples]
    return x, y


# name -> (generator(rng, samples, noise) -> (x, y), input width, output width)
DATASETS = {
    "xor": (_xor, 2, 1),
    "linear": (_linear, 1, 1),
    "square": (_square, 1, 1),
    "moons": (_moons, 2, 1),
    "circles": (_circles, 2, 1),
    "digits": (_digits, 64, 10),
}


class Dataset:
    """Train and test arrays, scaled with statistics of the training rows only."""

    def __init__(self, x_train, y_train, x_test=None, y_test=None):
        self.x_train, self.y_train = x_train, y_train
        self.x_test, self.y_test = x_test, y_test

    def __repr__(self):
        n_test = 0 if self.x_test is None else len(self.x_test)
        return f"Dataset(train={len(self.x_train)}, test={n_test})"


def load_dataset(spec) -> Dataset:
    """The spec's data: inline x/y, or a named dataset, split and scaled as the spec says.

    Targets fit the loss: class indices (N,) stay integer for the cross-entropies and become
    one-hot rows for the other losses when the output layer is wider than 1.
    """
    from scratch.spec import SpecError

    d = spec.data
    if d.name is None:
        data = inline_data(spec)
        if data is None:
            raise SpecError("data", "the spec has no data; give data.name or inline data.x and data.y")
        x, y = data
    else:
        make, inputs, outputs = DATASETS[d.name]
        if spec.inputs != inputs:
            raise SpecError("layers[0].inputs", f"dataset {d.name!r} has {inputs} inputs, the spec {spec.inputs}")
        x, y = make(np.random.default_rng(spec.seed), d.samples, d.noise)
        if y.ndim == 1 and spec.loss.name not in ("cce", "softmax_cce"):
            y = one_hot(y, spec.outputs)
        y = check_targets(y, x.shape[0], spec.outputs, spec.loss.name, f"data ({d.name})")
    if d.test_fraction > 0:
        x_train, y_train, x_test, y_test = train_test_split(x, y, d.test_fraction, spec.seed)
    else:
        x_train, y_train, x_test, y_test = x, y, None, None
    if d.scale != "none":
        scaler = SCALERS[d.scale]().fit(x_train)
        x_train = scaler.transform(x_train)
        x_test = None if x_test is None else scaler.transform(x_test)
    dtype = np.dtype(spec.dtype)
    cast = (lambda a: a if a is None or a.dtype.kind in "iu" else a.astype(dtype))
    return Dataset(cast(x_train), cast(y_train), cast(x_test), cast(y_test))
