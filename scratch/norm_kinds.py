"""The layer kinds of normalization, dropout and residual blocks: fields, shape rules, parameters,
their initial values and the buffers (running statistics, dropout's draw count) they keep.

Buffers are state a layer updates in train mode and no optimizer touches: ``buffer_shapes`` names
them, as ``parameter_shapes`` names parameters; scratch and torch keep them under the same names
(torch's: ``running_mean``, ``running_var``, ``num_batches_tracked``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from scratch.errors import SpecError
from scratch.kind_fields import BOOL, FLOAT, INT, LAYERS, Bounds, NoParameters, shown_shape

EPS = Bounds(low=0.0, low_open=True)
MOMENTUM = Bounds(low=0.0, high=1.0)
PROBABILITY = Bounds(low=0.0, high=1.0, high_open=True)
COUNT = "int64"           # a buffer that counts (its dtype); the others are of the spec's dtype


@dataclass
class BatchNormSpec:
    """Batch normalization (torch's nn.BatchNorm1d over the features of [F] inputs, nn.BatchNorm2d
    over the channels of [C, H, W] inputs), running statistics tracked; then the activation."""

    kind: ClassVar[str] = "batchnorm"
    eps: float = 1e-5
    momentum: float = 0.1                        # running = (1 − momentum)·running + momentum·batch
    affine: bool = True                          # a weight (starts at 1) and a bias (starts at 0)
    activation: str = "identity"
    activation_params: dict[str, float] = field(default_factory=dict)

    FIELDS: ClassVar[dict] = {"eps": (FLOAT, EPS), "momentum": (FLOAT, MOMENTUM), "affine": (BOOL, None)}

    def output_shape(self, in_shape, where: str, came_from: str) -> tuple:
        if len(in_shape) not in (1, 3):
            raise SpecError(f"{where}.kind", f"batchnorm needs [features] or [channels, height, width], got "
                                             f"{shown_shape(in_shape)} from {came_from}")
        return tuple(in_shape)

    def parameter_shapes(self, in_shape) -> dict[str, tuple]:
        return {"weight": (in_shape[0],), "bias": (in_shape[0],)} if self.affine else {}

    def parameter_count(self, in_shape) -> int:
        return 2 * in_shape[0] if self.affine else 0

    def initial_values(self, rng, in_shape, draw) -> dict:
        return _ones_and_zeros(self.parameter_shapes(in_shape))

    def buffer_shapes(self, in_shape) -> dict[str, tuple | str]:
        return {"running_mean": (in_shape[0],), "running_var": (in_shape[0],), "num_batches_tracked": COUNT}


@dataclass
class LayerNormSpec:
    """Layer normalization over each example's trailing ``dims`` dimensions (default: all of them),
    torch's nn.LayerNorm(normalized_shape = those dimensions); then the activation."""

    kind: ClassVar[str] = "layernorm"
    dims: int | None = None                      # trailing dimensions normalized; None: every one
    eps: float = 1e-5
    elementwise_affine: bool = True              # a weight (1) and a bias (0) of the normalized shape
    activation: str = "identity"
    activation_params: dict[str, float] = field(default_factory=dict)

    FIELDS: ClassVar[dict] = {"dims": (INT, 1), "eps": (FLOAT, EPS), "elementwise_affine": (BOOL, None)}

    def normalized_shape(self, in_shape) -> tuple:
        return tuple(in_shape[len(in_shape) - (self.dims or len(in_shape)):])

    def output_shape(self, in_shape, where: str, came_from: str) -> tuple:
        if self.dims is not None and self.dims > len(in_shape):
            raise SpecError(f"{where}.dims", f"{self.dims} is more than the {len(in_shape)} dimensions of its "
                                             f"input {shown_shape(in_shape)} from {came_from}; expected 1 to "
                                             f"{len(in_shape)}")
        return tuple(in_shape)

    def parameter_shapes(self, in_shape) -> dict[str, tuple]:
        shape = self.normalized_shape(in_shape)
        return {"weight": shape, "bias": shape} if self.elementwise_affine else {}

    def parameter_count(self, in_shape) -> int:
        return 2 * math.prod(self.normalized_shape(in_shape)) if self.elementwise_affine else 0

    def initial_values(self, rng, in_shape, draw) -> dict:
        return _ones_and_zeros(self.parameter_shapes(in_shape))


@dataclass
class DropoutSpec(NoParameters):
    """Dropout (torch's nn.Dropout): in train mode each element is kept with probability 1 − p and
    scaled by 1/(1 − p), from the shared mask stream (scratch.dropout); the identity in eval mode."""

    kind: ClassVar[str] = "dropout"
    p: float = 0.5
    activation: str = "identity"
    activation_params: dict[str, float] = field(default_factory=dict)

    FIELDS: ClassVar[dict] = {"p": (FLOAT, PROBABILITY)}

    def output_shape(self, in_shape, where: str, came_from: str) -> tuple:
        return tuple(in_shape)

    def buffer_shapes(self, in_shape) -> dict[str, tuple | str]:
        return {"draws": COUNT}


@dataclass
class ResidualSpec:
    """A residual block: z = f(x) + x, f the ``body`` layers in turn (each with its activation);
    with ``projection``, z = f(x) + P x, P a bias-free 1x1 convolution (strided to f's output size)
    on images or a bias-free dense layer on features. Then the block's activation."""

    kind: ClassVar[str] = "residual"
    body: list = field(default_factory=list)     # layer specs of any kind ([[layers.body]] in TOML)
    projection: bool = False
    activation: str = "identity"
    activation_params: dict[str, float] = field(default_factory=dict)

    FIELDS: ClassVar[dict] = {"body": (LAYERS, None), "projection": (BOOL, None)}

    def body_shapes(self, in_shape, where: str) -> list[tuple]:
        shapes = [tuple(in_shape)]
        for j, layer in enumerate(self.body):
            came_from = "the block's input" if j == 0 else f"{where}.body[{j - 1}] ({self.body[j - 1].kind})"
            shapes.append(tuple(layer.output_shape(shapes[-1], f"{where}.body[{j}]", came_from)))
        return shapes

    def output_shape(self, in_shape, where: str, came_from: str) -> tuple:
        out = self.body_shapes(in_shape, where)[-1]
        if out == tuple(in_shape) and not self.projection:
            return out
        if not self.projection:
            raise SpecError(f"{where}.projection", f"the body turns {shown_shape(in_shape)} into {shown_shape(out)}, "
                                                   f"which x + f(x) cannot add; set projection = true (a 1x1 "
                                                   f"convolution or dense layer on the skip path)")
        self.projection_stride(in_shape, out, where)
        return out

    def projection_stride(self, in_shape, out, where: str) -> tuple[int, int] | None:
        """The 1x1 convolution's stride that maps the input's H x W to the body's (None: features)."""
        if len(in_shape) == len(out) == 1:
            return None
        if len(in_shape) != 3 or len(out) != 3:
            raise SpecError(f"{where}.projection", f"cannot join the input {shown_shape(in_shape)} and the body's "
                                                   f"output {shown_shape(out)}: a projection maps images to "
                                                   f"images or features to features")
        strides = [_skip_stride(n, m) for n, m in zip(in_shape[1:], out[1:])]
        if None in strides:
            raise SpecError(f"{where}.projection", f"no 1x1 convolution stride maps the input's "
                                                   f"{in_shape[1]}x{in_shape[2]} to the body's {out[1]}x{out[2]}")
        return tuple(strides)

    def projection_shape(self, in_shape) -> tuple:
        out = self.body_shapes(in_shape, "")[-1]
        return (in_shape[0], out[0]) if len(out) == 1 else (out[0], in_shape[0], 1, 1)

    def parameter_shapes(self, in_shape) -> dict[str, tuple]:
        shapes = {}
        for j, (layer, shape) in enumerate(zip(self.body, self.body_shapes(in_shape, ""))):
            shapes.update({f"body.{j}.{k}": v for k, v in layer.parameter_shapes(shape).items()})
        if self.projection:
            shapes["projection.weight"] = self.projection_shape(in_shape)
        return shapes

    def parameter_count(self, in_shape) -> int:
        return sum(math.prod(shape) for shape in self.parameter_shapes(in_shape).values())

    def work_size(self, in_shape) -> int:
        shapes = self.body_shapes(in_shape, "")
        return sum(math.prod(s) for s in shapes[1:]) + sum(getattr(layer, "work_size", lambda s: 0)(s)
                                                           for layer, s in zip(self.body, shapes))

    def initial_values(self, rng, in_shape, draw) -> dict:
        """The body's layers drawn in order from the one generator, then the projection as torch's
        nn.Conv2d / nn.Linear draw a weight: U(±1/√fan_in)."""
        values = {}
        for j, (layer, shape) in enumerate(zip(self.body, self.body_shapes(in_shape, ""))):
            values.update({f"body.{j}.{k}": v for k, v in draw(layer, shape, rng).items()})
        if self.projection:
            shape = self.projection_shape(in_shape)
            bound = 1.0 / math.sqrt(in_shape[0])
            values["projection.weight"] = rng.uniform(-bound, bound, size=shape)
        return values

    def buffer_shapes(self, in_shape) -> dict[str, tuple | str]:
        shapes = {}
        for j, (layer, shape) in enumerate(zip(self.body, self.body_shapes(in_shape, ""))):
            if hasattr(layer, "buffer_shapes"):
                shapes.update({f"body.{j}.{k}": v for k, v in layer.buffer_shapes(shape).items()})
        return shapes

    def dense_weights(self, in_shape) -> list[str]:
        """The names of its (inputs, units) weights: a dense body layer's, a dense projection's."""
        names = [f"body.{j}.{name}" for j, (layer, shape) in enumerate(zip(self.body, self.body_shapes(in_shape, "")))
                 for name in layer_dense_weights(layer, shape)]
        if self.projection and len(in_shape) == 1:
            names.append("projection.weight")
        return names


def _skip_stride(size: int, out: int) -> int | None:
    """The smallest stride s with (size − 1) // s + 1 = out (a 1x1 window over ``size`` positions
    giving ``out``), or None: with q = out − 1, (size − 1) // s = q needs s > (size − 1) / (q + 1),
    so the smallest candidate is (size − 1) // (q + 1) + 1 (computed, not searched: sizes may be huge)."""
    if not 1 <= out <= size:
        return None
    stride = (size - 1) // out + 1
    return stride if (size - 1) // stride == out - 1 else None


def layer_dense_weights(layer, in_shape) -> list[str]:
    """The weights of ``layer`` kept as (inputs, units) in scratch and transposed in torch."""
    if layer.kind == "dense":
        return ["weight"]
    return layer.dense_weights(in_shape) if hasattr(layer, "dense_weights") else []


def _ones_and_zeros(shapes: dict) -> dict:
    import numpy as np

    return {name: (np.ones if name == "weight" else np.zeros)(shape) for name, shape in shapes.items()}


def rows_batchnorm_needs(layers, shapes) -> int:
    """The fewest rows a train-mode batch may have: 2 where a batchnorm sees one value per
    feature or channel in each row ([F] inputs, 1x1 images), as torch refuses one value; else 1."""
    for layer, shape in zip(layers, shapes):
        if layer.kind == "batchnorm" and math.prod(shape[1:]) == 1:
            return 2
        if layer.kind == "residual" and rows_batchnorm_needs(layer.body, layer.body_shapes(shape, "")) == 2:
            return 2
    return 1


def check_batch_rows(spec, rows: int, field: str, what: str = "a batch") -> None:
    """SpecError naming ``field`` when a train-mode batch of ``rows`` rows is too small for a batchnorm."""
    need = rows_batchnorm_needs(spec.layers, spec.shapes)
    if rows < need:
        raise SpecError(field, f"{what} of {rows} row; a train-mode batchnorm over features needs at least "
                               f"{need} rows (one value per feature has no variance; torch refuses it too)")
