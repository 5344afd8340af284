"""The layer kinds of self-attention: ``attention`` (multi-head self-attention) and ``transformer``
(a pre-norm block around it): fields, shape rules, parameters and their initial values.

Both take a sequence, one example of shape (time T, features D), batch first: (N, T, D). Their
parameters carry torch's names (nn.MultiheadAttention's ``in_proj_weight``, ``out_proj.weight``,
...; nn.TransformerEncoderLayer's ``self_attn.…``, ``linear1.…``, ``norm1.…``); every projection
weight is kept as (inputs, units), z = x @ W + b, and is transposed for torch (``dense_weights``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from scratch.errors import SpecError
from scratch.kind_fields import BOOL, FLOAT, INT
from scratch.norm_kinds import EPS
from scratch.seq_kinds import needs_sequence

ATTENTION_DENSE = ("in_proj_weight", "out_proj.weight")


def check_heads(heads: int, width: int, where: str) -> None:
    if width % heads:
        divisors = [h for h in range(1, width + 1) if width % h == 0]
        raise SpecError(f"{where}.heads", f"{heads} does not divide the width {width} of its input; "
                                          f"expected one of {', '.join(map(str, divisors))}")


def attention_shapes(width: int) -> dict[str, tuple]:
    return {"in_proj_weight": (width, 3 * width), "in_proj_bias": (3 * width,),
            "out_proj.weight": (width, width), "out_proj.bias": (width,)}


def attention_values(rng, width: int) -> dict:
    """nn.MultiheadAttention's own: in_proj xavier_uniform over its fans (D in, 3D out), out_proj
    nn.Linear's U(±1/√D), both biases 0."""
    in_bound, out_bound = math.sqrt(6.0 / (4 * width)), 1.0 / math.sqrt(width)
    import numpy as np

    return {"in_proj_weight": rng.uniform(-in_bound, in_bound, size=(width, 3 * width)),
            "in_proj_bias": np.zeros(3 * width),
            "out_proj.weight": rng.uniform(-out_bound, out_bound, size=(width, width)),
            "out_proj.bias": np.zeros(width)}


@dataclass
class AttentionSpec:
    """Multi-head self-attention over a [T, D] sequence (torch's nn.MultiheadAttention(D, heads,
    batch_first=True) with query = key = value = x), ``causal``: step t attends to steps <= t only;
    then the activation."""

    kind: ClassVar[str] = "attention"
    heads: int = 1                               # must divide D; each head has width D / heads
    causal: bool = False
    activation: str = "identity"
    activation_params: dict[str, float] = field(default_factory=dict)

    FIELDS: ClassVar[dict] = {"heads": (INT, 1), "causal": (BOOL, None)}

    def output_shape(self, in_shape, where: str, came_from: str) -> tuple:
        steps, width = needs_sequence(self.kind, in_shape, where, came_from)
        check_heads(self.heads, width, where)
        return tuple(in_shape)

    def parameter_shapes(self, in_shape) -> dict[str, tuple]:
        return attention_shapes(in_shape[1])

    def parameter_count(self, in_shape) -> int:
        return 4 * in_shape[1] * (in_shape[1] + 1)

    def initial_values(self, rng, in_shape, draw) -> dict:
        return attention_values(rng, in_shape[1])

    def work_size(self, in_shape) -> int:
        """Per example: Q, K, V and the context (4·T·D), the scores' softmax (heads·T·T)."""
        steps, width = in_shape
        return 4 * steps * width + self.heads * steps * steps

    def dense_weights(self, in_shape) -> list[str]:
        return list(ATTENTION_DENSE)


@dataclass
class TransformerSpec:
    """A pre-norm transformer block over a [T, D] sequence: h = x + attention(LN1(x)); then
    z = h + W2 GELU(W1 LN2(h)), W1 of D -> mlp_units, W2 back to D (torch's
    nn.TransformerEncoderLayer(D, heads, mlp_units, dropout=0, activation=nn.GELU(), batch_first=True,
    norm_first=True)); then the activation."""

    kind: ClassVar[str] = "transformer"
    heads: int = 1
    causal: bool = False
    mlp_units: int | None = None                 # the MLP's hidden width; None: 4·D
    eps: float = 1e-5                            # both layernorms'
    activation: str = "identity"
    activation_params: dict[str, float] = field(default_factory=dict)

    FIELDS: ClassVar[dict] = {"heads": (INT, 1), "causal": (BOOL, None), "mlp_units": (INT, 1),
                              "eps": (FLOAT, EPS)}

    def hidden(self, in_shape) -> int:
        return 4 * in_shape[1] if self.mlp_units is None else self.mlp_units

    def output_shape(self, in_shape, where: str, came_from: str) -> tuple:
        steps, width = needs_sequence(self.kind, in_shape, where, came_from)
        check_heads(self.heads, width, where)
        return tuple(in_shape)

    def parameter_shapes(self, in_shape) -> dict[str, tuple]:
        width, hidden = in_shape[1], self.hidden(in_shape)
        shapes = {f"self_attn.{name}": shape for name, shape in attention_shapes(width).items()}
        shapes.update({"linear1.weight": (width, hidden), "linear1.bias": (hidden,),
                       "linear2.weight": (hidden, width), "linear2.bias": (width,),
                       "norm1.weight": (width,), "norm1.bias": (width,),
                       "norm2.weight": (width,), "norm2.bias": (width,)})
        return shapes   # in the order of nn.TransformerEncoderLayer.named_parameters()

    def parameter_count(self, in_shape) -> int:
        return sum(math.prod(shape) for shape in self.parameter_shapes(in_shape).values())

    def initial_values(self, rng, in_shape, draw) -> dict:
        """torch's own: the attention's (attention_values), nn.Linear's U(±1/√fan_in) for both MLP
        weights and biases, the layernorms' weight 1 and bias 0."""
        import numpy as np

        width, hidden = in_shape[1], self.hidden(in_shape)
        values = {f"self_attn.{name}": value for name, value in attention_values(rng, width).items()}
        for name, (fan_in, fan_out) in (("linear1", (width, hidden)), ("linear2", (hidden, width))):
            bound = 1.0 / math.sqrt(fan_in)
            values[f"{name}.weight"] = rng.uniform(-bound, bound, size=(fan_in, fan_out))
            values[f"{name}.bias"] = rng.uniform(-bound, bound, size=fan_out)
        for name in ("norm1", "norm2"):
            values[f"{name}.weight"], values[f"{name}.bias"] = np.ones(width), np.zeros(width)
        return values

    def work_size(self, in_shape) -> int:
        """Per example: the attention's, two normalized copies and the residual sums (4·T·D), the
        MLP's hidden layer before and after GELU (2·T·mlp_units)."""
        steps, width = in_shape
        attention = 4 * steps * width + self.heads * steps * steps
        return attention + 4 * steps * width + 2 * steps * self.hidden(in_shape)

    def dense_weights(self, in_shape) -> list[str]:
        return [f"self_attn.{name}" for name in ATTENTION_DENSE] + ["linear1.weight", "linear2.weight"]
