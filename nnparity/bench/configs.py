"""The benchmark configurations: ReLU MLPs on softmax cross-entropy, as specs in specs/' format.

Each configuration lives in ``nnparity/bench/specs/<name>.toml`` (the same TOML as the project's
``specs/``, so ``nnparity check nnparity/bench/specs/tiny.toml`` works on it) with its batch size in
``[train] batch_size``. Inputs are standard normal rows, targets uniform class indices: the
timings do not depend on the values, only on the shapes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scratch.spec import Spec, load_spec

SPEC_DIR = Path(__file__).resolve().parent / "specs"

#: name -> (layer widths, batch size); the order is the report's
CONFIGS: dict[str, tuple[tuple[int, ...], int]] = {
    "tiny": ((2, 4, 2), 4),
    "small": ((64, 64, 10), 32),
    "mnist": ((784, 128, 10), 64),
    "wide": ((1024, 1024, 1024, 10), 256),
    "large": ((4096, 4096, 4096, 10), 1024),
}
QUICK_SKIPS = ("large",)
OPS = ("forward", "forward_backward", "train_sgd", "train_adam")
OPTIMIZERS = {"train_sgd": {"name": "sgd", "lr": 0.01}, "train_adam": {"name": "adam", "lr": 0.001}}


@dataclass(frozen=True)
class Config:
    name: str
    widths: tuple[int, ...]
    batch: int

    @property
    def gemm_shapes(self) -> list[tuple[int, int, int]]:
        """(m, k, n) of every matrix product of one train step (first layer: no dL/dx)."""
        shapes = []
        for i, (k, n) in enumerate(zip(self.widths[:-1], self.widths[1:])):
            shapes.append((self.batch, k, n))            # forward   z = a @ W
            shapes.append((k, self.batch, n))            # backward  dW = aᵀ @ g
            if i > 0:
                shapes.append((self.batch, n, k))        # backward  dx = g @ Wᵀ
        return shapes

    @property
    def train_flops(self) -> int:
        """A train step's FLOPs, counting only the products it does: 2·m·k·n for each of
        `gemm_shapes` (forward 2 and backward 4 per multiply-add, less the first layer's dL/dx)."""
        return sum(2 * m * k * n for m, k, n in self.gemm_shapes)


def spec_dict(widths, batch: int, dtype: str = "float32", optimizer: dict | None = None) -> dict:
    layers = []
    for i, (k, n) in enumerate(zip(widths[:-1], widths[1:])):
        last = i == len(widths) - 2
        layer = {"units": n, "activation": "identity" if last else "relu",
                 "init": "xavier_uniform" if last else "he_uniform"}
        if i == 0:
            layer["inputs"] = k
        layers.append(layer)
    return {"seed": 0, "dtype": dtype, "layers": layers, "loss": {"name": "softmax_cce"},
            "optimizer": optimizer or OPTIMIZERS["train_sgd"], "train": {"epochs": 1, "batch_size": batch}}


def config(name: str) -> Config:
    spec = load_spec(SPEC_DIR / f"{name}.toml")
    widths = (spec.inputs,) + tuple(layer.units for layer in spec.layers)
    return Config(name, widths, spec.train.batch_size)


def make_spec(widths, batch: int, dtype: str, op: str = "train_sgd") -> Spec:
    return Spec.from_dict(spec_dict(widths, batch, dtype, OPTIMIZERS.get(op, OPTIMIZERS["train_sgd"])))


def make_batches(widths, batch: int, dtype: str, count: int, seed: int = 0):
    """``count`` distinct (x, class index) batches, rotated through so caches flatter no one."""
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((batch, widths[0])).astype(dtype),
             rng.integers(0, widths[-1], size=batch)) for _ in range(count)]


def rotation_count(widths, batch: int, dtype: str) -> int:
    """Enough batches to exceed a 32 MiB last-level cache, at least 2, at most 64."""
    per = batch * widths[0] * np.dtype(dtype).itemsize
    return int(min(64, max(2, -(-32 * 2**20 // max(per, 1)))))
