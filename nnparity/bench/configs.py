"""The benchmark configurations: ReLU MLPs and CNNs on softmax cross-entropy, and sequence models
on per-token cross-entropy (``SeqConfig``), as specs in specs/' format.

Each configuration lives in ``nnparity/bench/specs/<name>.toml`` (the same TOML as the project's
``specs/``, so ``nnparity check nnparity/bench/specs/tiny.toml`` works on it) with its batch size in
``[train] batch_size``. Inputs are standard normal rows (images for a CNN: a seeded generated
set), targets uniform class indices; a sequence model's, seeded uniform token ids and their next
tokens: the timings do not depend on the values, only on the shapes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnparity.bench.seq_products import sequence_products
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
#: the CNN configurations (image specs: input_shape and layer kinds), in the report's order after the MLPs
IMAGE_CONFIGS = ("lenet", "resnet_small")
#: the sequence models (token ids in, next-token logits out: SeqConfig), after the CNNs
SEQ_CONFIGS = ("char_lstm", "tiny_gpt")
QUICK_SKIPS = ("large", *IMAGE_CONFIGS, *SEQ_CONFIGS)     # --quick times them only when --config names them
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

    @property
    def large(self) -> bool:
        return self.batch * sum(k * n for k, n in zip(self.widths[:-1], self.widths[1:])) > 1e9

    def spec(self, dtype: str, op: str = "train_sgd") -> Spec:
        return make_spec(self.widths, self.batch, dtype, op)

    def batches(self, dtype: str, count: int, rows: int | None = None, seed: int = 0):
        return make_batches(self.widths, rows or self.batch, dtype, count, seed)

    def rotation(self, dtype: str) -> int:
        return rotation_count(self.widths, self.batch, dtype)


@dataclass(frozen=True)
class SpecConfig:
    """A configuration read from its spec (``path``, by default nnparity/bench/specs/<name>.toml)
    at batch size ``batch``; a subclass says which products its train step does (``gemm_list``)."""

    name: str
    batch: int
    path: Path | None = None

    def spec(self, dtype: str = "float32", op: str = "train_sgd") -> Spec:
        spec = load_spec(self.path or SPEC_DIR / f"{self.name}.toml")
        return spec.replace(dtype=dtype, optimizer=OPTIMIZERS.get(op, OPTIMIZERS["train_sgd"]))

    def gemm_list(self) -> list[tuple[str, int, int, int]]:
        raise NotImplementedError

    @property
    def gemm_shapes(self) -> list[tuple[int, int, int]]:
        return [(m, k, n) for _, m, k, n in self.gemm_list()]

    @property
    def train_flops(self) -> int:
        """2·m·k·n for each product of ``gemm_list``: the FLOPs the matrix products compute."""
        return sum(2 * m * k * n for m, k, n in self.gemm_shapes)

    @property
    def large(self) -> bool:
        return self.train_flops > 6e9


@dataclass(frozen=True)
class ImageConfig(SpecConfig):
    """A CNN configuration: its spec (nnparity/bench/specs/<name>.toml) and batch size.

    ``gemm_list`` holds the matrix products scratch's train step does, as its layers do them: a
    conv2d by im2col, per group g (C_g = C / groups, P = N·OH·OW columns): forward
    Z_g = W_g (O_g × C_g·kh·kw) @ X_g (C_g·kh·kw × P); dW_g = G_g @ X_gᵀ; dX_g = W_gᵀ @ G_g (none
    for the first layer, as for a dense layer, whose products are the MLP's). A residual block's
    body layers and its 1x1 projection count alike. Pooling, normalization and the rest are not
    products and are not counted in the FLOPs (they are in the time)."""

    @property
    def widths(self) -> tuple[int, ...]:
        """(input features, classes): what the report's MLP column shows of a CNN."""
        spec = self.spec()
        return (math.prod(spec.shapes[0]), spec.outputs)

    def gemm_list(self) -> list[tuple[str, int, int, int]]:
        """(layout, m, k, n) of every product of one train step, in the order backward needs them."""
        spec = self.spec()
        out = []
        for i, (layer, shape) in enumerate(zip(spec.layers, spec.shapes)):
            out += _layer_products(layer, shape, self.batch, input_grad=i > 0)
        return out

    def batches(self, dtype: str, count: int, rows: int | None = None, seed: int = 0):
        """``count`` distinct (images, class index) batches: a seeded generated set."""
        spec = self.spec()
        rng = np.random.default_rng(seed)
        return [(rng.standard_normal((rows or self.batch, *spec.shapes[0])).astype(dtype),
                 rng.integers(0, spec.outputs, size=rows or self.batch)) for _ in range(count)]

    def rotation(self, dtype: str) -> int:
        return rotation_count((math.prod(self.spec().shapes[0]),), self.batch, dtype)


@dataclass(frozen=True)
class SeqConfig(SpecConfig):
    """A sequence model's configuration: its spec, batch size, and seeded token batches: token ids
    (N, T) in, next-token logits (N, T, V) out, per-token cross-entropy (token_cce).

    ``gemm_list`` holds the matrix products scratch's train step does, as its layers do them
    (nnparity/bench/seq_products.py: the LSTM's input projection over all steps, its per-step
    hidden products forward and backward and its weight gradients; attention's projections and
    per-head products; the MLPs and the dense layer at every step). The embedding is a gather and
    its backward a scatter-add: not counted (scratch does the scatter as a one-hot product, in the
    time, not in the FLOPs); nor are layernorms, gates, softmaxes and the loss."""

    @property
    def steps(self) -> int:
        return self.spec().shapes[0][0]

    @property
    def vocab(self) -> int:
        return self.spec().layers[0].vocab

    @property
    def widths(self) -> tuple[int, ...]:
        """(T, classes): what the report's MLP column shows of a sequence model."""
        spec = self.spec()
        return (spec.shapes[0][0], spec.outputs)

    def gemm_list(self) -> list[tuple[str, int, int, int]]:
        """(layout, m, k, n) of every product of one train step (nnparity/bench/seq_products.py)."""
        spec = self.spec()
        out = []
        for i, (layer, shape) in enumerate(zip(spec.layers, spec.shapes)):
            out += sequence_products(layer, shape, self.batch, input_grad=i > 0)
        return out

    def batches(self, dtype: str, count: int, rows: int | None = None, seed: int = 0):
        """``count`` distinct (ids, targets) batches, (N, T) int64 each: seeded uniform token ids and
        each step's next token (a window of T + 1 ids, shifted by one). ``dtype`` is the
        network's; ids are integers whatever it is."""
        rng = np.random.default_rng(seed)
        spec = self.spec()
        steps = spec.shapes[0][0]
        out = []
        for _ in range(count):
            window = rng.integers(0, spec.outputs, size=(rows or self.batch, steps + 1))
            out.append((window[:, :-1].copy(), window[:, 1:].copy()))
        return out

    def rotation(self, dtype: str) -> int:
        return rotation_count((self.steps,), self.batch, "int64")


def _layer_products(layer, in_shape, batch: int, input_grad: bool) -> list[tuple[str, int, int, int]]:
    """The products of one layer's forward and backward (scratch's: im2col for a conv2d)."""
    if layer.kind == "dense":
        out = [("NN", batch, layer.inputs, layer.units), ("TN", layer.inputs, batch, layer.units)]
        return out + ([("NT", batch, layer.units, layer.inputs)] if input_grad else [])
    if layer.kind == "conv2d":
        _, out_h, out_w = layer.output_shape(in_shape, "", "")
        kh, kw = (layer.kernel, layer.kernel) if isinstance(layer.kernel, int) else layer.kernel
        groups = layer.groups
        o_g, ckk, columns = layer.out_channels // groups, in_shape[0] // groups * kh * kw, batch * out_h * out_w
        one = [("NN", o_g, ckk, columns), ("NT", o_g, columns, ckk)] + ([("TN", ckk, o_g, columns)] if input_grad else [])
        return one * groups
    if layer.kind == "residual":
        shapes = layer.body_shapes(in_shape, "")
        out = []
        for j, (inner, shape) in enumerate(zip(layer.body, shapes)):
            out += _layer_products(inner, shape, batch, input_grad or j > 0)
        if layer.projection:
            stride = layer.projection_stride(in_shape, shapes[-1], "")
            if stride is None:
                o, c = shapes[-1][0], in_shape[0]
                out += [("NN", batch, c, o), ("TN", c, batch, o)] + ([("NT", batch, o, c)] if input_grad else [])
            else:
                columns = batch * shapes[-1][1] * shapes[-1][2]
                o, c = shapes[-1][0], in_shape[0]
                out += [("NN", o, c, columns), ("NT", o, columns, c)] + ([("TN", c, o, columns)] if input_grad else [])
        return out
    return []

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


def config_names() -> list[str]:
    """Every configuration, MLPs, CNNs, then sequence models."""
    return [*CONFIGS, *IMAGE_CONFIGS, *SEQ_CONFIGS]


def config(name: str) -> Config | SpecConfig:
    spec = load_spec(SPEC_DIR / f"{name}.toml")
    if name in IMAGE_CONFIGS:
        return ImageConfig(name, spec.train.batch_size)
    if name in SEQ_CONFIGS:
        return SeqConfig(name, spec.train.batch_size)
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
