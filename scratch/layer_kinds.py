"""The layer kinds a spec may name: each kind's fields, its output-shape rule and its parameters.

A layer's ``kind`` (default ``dense``) picks its class in ``KINDS``. scratch/spec.py reads the
fields each class declares and asks it for its output shape, so every layer's shape is inferred
and checked when the spec is parsed, before anything is built; scratch.network builds each kind's
scratch layer and torch_ref.model its torch twin, both keyed by the same names.

Shapes are those of one example: (features,), (channels, height, width), or (time, features) for a
sequence (scratch/seq_kinds.py); a batch adds N in front.
Every kind ends with an activation (``identity`` unless the spec names one). Normalization, dropout
and residual blocks live in scratch/norm_kinds.py, attention and transformer blocks in
scratch/attention_kinds.py, the field types in scratch/kind_fields.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from scratch.attention_kinds import AttentionSpec, TransformerSpec
from scratch.errors import SpecError
from scratch.kind_fields import BOOL, INIT, INT, PAIR, SCALE, NoParameters, needs_image, shown_shape
from scratch.norm_kinds import BatchNormSpec, DropoutSpec, LayerNormSpec, ResidualSpec
from scratch.recurrent_kinds import GRUSpec, LSTMSpec, RNNSpec
from scratch.seq_kinds import EmbeddingSpec, PositionalEmbeddingSpec, SeqLastSpec, SeqMeanSpec
from scratch.windows import Windows, pair

# ----------------------------------------------------------------------------------------- dense


@dataclass
class LayerSpec:
    """One Dense layer followed by its activation: z = a_prev @ W + b ; a = activation(z); on a
    [time, features] sequence, at every time step (the same W and b)."""

    kind: ClassVar[str] = "dense"
    units: int                                   # width of this layer's output
    inputs: int | None = None                    # width of its input; required on layer 0, else inferred
    activation: str = "identity"                 # registry name, or "module:Class" for a user's op
    activation_params: dict[str, float] = field(default_factory=dict)  # negative_slope (leaky_relu), alpha (elu)
    use_bias: bool = True                        # False: z = a_prev @ W
    init: str = "xavier_uniform"                 # initializer name (scratch.initializers.INITIALIZERS)
    init_scale: float | None = None              # std for "normal", bound for "uniform"
    weight: list | None = None                   # explicit (inputs, units) values; overrides init
    bias: list | None = None                     # explicit (units,) values; overrides the bias init

    def output_shape(self, in_shape, where: str, came_from: str) -> tuple:
        if len(in_shape) not in (1, 2):
            raise SpecError(f"{where}.kind", f"dense needs a [features] input (or a [time, features] sequence), "
                                             f"got {shown_shape(in_shape)} from {came_from}; add a flatten layer "
                                             f"before it (or global_avgpool)")
        return (*in_shape[:-1], self.units)

    def parameter_shapes(self, in_shape) -> dict[str, tuple]:
        shapes = {"weight": (self.inputs, self.units)}
        if self.use_bias:
            shapes["bias"] = (self.units,)
        return shapes

    def fans(self, in_shape) -> tuple[int, int]:
        return self.inputs, self.units

    def parameter_count(self, in_shape) -> int:
        """What the memory estimate counts: the weight and a bias (whether or not it is used)."""
        return self.inputs * self.units + self.units


# -------------------------------------------------------------------------------- image kinds


@dataclass
class Conv2dSpec:
    """2-D convolution (torch's nn.Conv2d, cross-correlation) then the activation; NCHW."""

    kind: ClassVar[str] = "conv2d"
    out_channels: int
    kernel: int | list[int]                      # kh = kw, or [kh, kw]
    in_channels: int | None = None               # inferred from the input; checked when given
    stride: int | list[int] = 1
    padding: int | list[int] = 0                 # zeros on each side
    dilation: int | list[int] = 1
    groups: int = 1                              # must divide in_channels and out_channels
    use_bias: bool = True
    init: str = "torch_default"                  # nn.Conv2d's own: kaiming_uniform(a=√5), bias U(±1/√fan_in)
    init_scale: float | None = None
    activation: str = "identity"
    activation_params: dict[str, float] = field(default_factory=dict)

    FIELDS: ClassVar[dict] = {"out_channels": (INT, 1), "kernel": (PAIR, 1), "in_channels": (INT, 1),
                              "stride": (PAIR, 1), "padding": (PAIR, 0), "dilation": (PAIR, 1),
                              "groups": (INT, 1), "use_bias": (BOOL, None), "init": (INIT, None),
                              "init_scale": (SCALE, None)}

    def windows(self) -> Windows:
        return Windows(self.kernel, self.stride, self.padding, self.dilation)

    def output_shape(self, in_shape, where: str, came_from: str) -> tuple:
        channels, height, width = needs_image(self.kind, in_shape, f"{where}.kind", came_from)
        if self.in_channels is not None and self.in_channels != channels:
            raise SpecError(f"{where}.in_channels", f"{self.in_channels} does not match the {channels} channels "
                                                    f"of its input {shown_shape(in_shape)} from {came_from}")
        if channels % self.groups or self.out_channels % self.groups:
            raise SpecError(f"{where}.groups", f"{self.groups} must divide both in_channels ({channels}, input "
                                               f"{shown_shape(in_shape)}) and out_channels ({self.out_channels})")
        out_h, out_w = fit_windows(self.windows(), height, width, in_shape, where)
        return (self.out_channels, out_h, out_w)

    def parameter_shapes(self, in_shape) -> dict[str, tuple]:
        kh, kw = pair(self.kernel)
        shapes = {"weight": (self.out_channels, in_shape[0] // self.groups, kh, kw)}
        if self.use_bias:
            shapes["bias"] = (self.out_channels,)
        return shapes

    def fans(self, in_shape) -> tuple[int, int]:
        """torch's fans of a conv weight (O, C/groups, kh, kw): C/groups·kh·kw in, O·kh·kw out."""
        out_channels, in_per_group, kh, kw = self.parameter_shapes(in_shape)["weight"]
        return in_per_group * kh * kw, out_channels * kh * kw

    def parameter_count(self, in_shape) -> int:
        return sum(math.prod(shape) for shape in self.parameter_shapes(in_shape).values())

    def work_size(self, in_shape) -> int:
        """The elements per example of the im2col columns its scratch layer keeps (C·kh·kw·OH·OW)."""
        kh, kw = pair(self.kernel)
        _, out_h, out_w = self.output_shape(in_shape, "", "")
        return in_shape[0] * kh * kw * out_h * out_w


@dataclass
class Pool2dSpec(NoParameters):
    """A pooling window (kernel, stride = kernel by default, padding <= kernel / 2: torch's rules)."""

    kind: ClassVar[str] = ""
    kernel: int | list[int]
    stride: int | list[int] | None = None        # None: the kernel (torch's default)
    padding: int | list[int] = 0
    activation: str = "identity"
    activation_params: dict[str, float] = field(default_factory=dict)

    FIELDS: ClassVar[dict] = {"kernel": (PAIR, 1), "stride": (PAIR, 1), "padding": (PAIR, 0)}

    def windows(self) -> Windows:
        return Windows(self.kernel, self.kernel if self.stride is None else self.stride, self.padding)

    def output_shape(self, in_shape, where: str, came_from: str) -> tuple:
        channels, height, width = needs_image(self.kind, in_shape, f"{where}.kind", came_from)
        windows = self.windows()
        if any(2 * p > k for p, k in zip(windows.padding, windows.kernel)):
            raise SpecError(f"{where}.padding", f"{shown_shape(windows.padding)} is more than half the kernel "
                                                f"{shown_shape(windows.kernel)}; {self.kind} needs padding <= "
                                                f"kernel / 2 (as torch)")
        out_h, out_w = fit_windows(windows, height, width, in_shape, where)
        return (channels, out_h, out_w)


@dataclass
class MaxPool2dSpec(Pool2dSpec):
    """Max over each window (torch's nn.MaxPool2d); padding counts as −inf."""

    kind: ClassVar[str] = "maxpool2d"


@dataclass
class AvgPool2dSpec(Pool2dSpec):
    """Mean over each window (torch's nn.AvgPool2d); padding counts as zeros (count_include_pad)."""

    kind: ClassVar[str] = "avgpool2d"


@dataclass
class ReshapeSpec(NoParameters):
    """A kind with no field but its activation."""

    activation: str = "identity"
    activation_params: dict[str, float] = field(default_factory=dict)


@dataclass
class FlattenSpec(ReshapeSpec):
    """(C, H, W) -> (C·H·W,) in C order (torch's nn.Flatten); a (features,) input passes unchanged."""

    kind: ClassVar[str] = "flatten"

    def output_shape(self, in_shape, where: str, came_from: str) -> tuple:
        return (math.prod(in_shape),)


@dataclass
class GlobalAvgPoolSpec(ReshapeSpec):
    """(C, H, W) -> (C,): each channel's mean (torch's nn.AdaptiveAvgPool2d(1) then a flatten)."""

    kind: ClassVar[str] = "global_avgpool"

    def output_shape(self, in_shape, where: str, came_from: str) -> tuple:
        return (needs_image(self.kind, in_shape, f"{where}.kind", came_from)[0],)


def fit_windows(windows: Windows, height: int, width: int, in_shape, where: str) -> tuple[int, int]:
    """The output (OH, OW), or a SpecError naming the kernel when a window is larger than the padded input."""
    padded = (height + 2 * windows.padding[0], width + 2 * windows.padding[1])
    reach = tuple(d * (k - 1) + 1 for k, d in zip(windows.kernel, windows.dilation))
    if reach[0] > padded[0] or reach[1] > padded[1]:
        dilated = "" if windows.dilation == (1, 1) else f" (dilated to {reach[0]}x{reach[1]})"
        raise SpecError(f"{where}.kernel", f"{windows.kernel[0]}x{windows.kernel[1]}{dilated} is larger than "
                                           f"its padded input {padded[0]}x{padded[1]} (input "
                                           f"{shown_shape(in_shape)}, padding {shown_shape(windows.padding)}); "
                                           f"it needs a window of at most {padded[0]}x{padded[1]}")
    return windows.out_hw(height, width)


KINDS = {cls.kind: cls for cls in (LayerSpec, Conv2dSpec, MaxPool2dSpec, AvgPool2dSpec, FlattenSpec,
                                   GlobalAvgPoolSpec, BatchNormSpec, LayerNormSpec, DropoutSpec, ResidualSpec,
                                   EmbeddingSpec, PositionalEmbeddingSpec, SeqLastSpec, SeqMeanSpec, RNNSpec,
                                   LSTMSpec, GRUSpec, AttentionSpec, TransformerSpec)}


def require_kinds(spec, kinds: tuple[str, ...], what: str) -> None:
    """A SpecError naming the first layer whose kind ``what`` does not take."""
    for i, layer in enumerate(spec.layers):
        if layer.kind not in kinds:
            raise SpecError(f"layers[{i}].kind", f"{what} takes {', '.join(kinds)} layers; this one is {layer.kind}")


def infer_shapes(input_shape, layers) -> list[tuple]:
    """[input shape, layer 0's output shape, …]: each layer's shape rule applied in turn."""
    shapes = [tuple(input_shape)]
    for i, layer in enumerate(layers):
        came_from = "the input" if i == 0 else f"layers[{i - 1}] ({layers[i - 1].kind})"
        shapes.append(tuple(layer.output_shape(shapes[-1], f"layers[{i}]", came_from)))
    return shapes
