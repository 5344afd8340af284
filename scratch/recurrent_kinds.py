"""The recurrent layer kinds (rnn, lstm, gru): fields, shape rules, parameters and initial values.

Their parameters keep torch's layout and torch's names — ``weight_ih_l{k}`` (gates·hidden, inputs),
``weight_hh_l{k}`` (gates·hidden, hidden), ``bias_ih_l{k}`` and ``bias_hh_l{k}`` (gates·hidden,),
``_reverse`` for the backward direction — with the gates stacked in torch's order (lstm: i, f, g, o;
gru: r, z, n): nothing is transposed between scratch and torch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from scratch.errors import SpecError
from scratch.kind_fields import BOOL, CHOICE, INT
from scratch.seq_kinds import needs_sequence

MAX_STACK = 10_000   # the most layers one recurrent kind stacks (a spec's own limit on its layers)

@dataclass
class RecurrentSpec:
    """A stack of ``num_layers`` recurrent layers over a (T, features) sequence, each step's hidden
    state out: (T, hidden), (T, 2·hidden) when bidirectional (forward then backward direction)."""

    kind: ClassVar[str] = ""
    GATES: ClassVar[int] = 1
    hidden: int
    num_layers: int = 1
    bidirectional: bool = False
    activation: str = "identity"
    activation_params: dict[str, float] = field(default_factory=dict)

    FIELDS: ClassVar[dict] = {"hidden": (INT, 1), "num_layers": (INT, 1), "bidirectional": (BOOL, None)}

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    def output_shape(self, in_shape, where: str, came_from: str) -> tuple:
        steps, _ = needs_sequence(self.kind, in_shape, where, came_from)
        if self.num_layers > MAX_STACK:
            raise SpecError(f"{where}.num_layers", f"{self.num_layers} layers; at most {MAX_STACK}")
        return (steps, self.hidden * self.directions)

    def parameter_shapes(self, in_shape) -> dict[str, tuple]:
        """torch's names and shapes, layer by layer, direction by direction."""
        shapes, gates = {}, self.GATES * self.hidden
        for k in range(self.num_layers):
            inputs = in_shape[1] if k == 0 else self.hidden * self.directions
            for suffix in ("", "_reverse")[:self.directions]:
                shapes[f"weight_ih_l{k}{suffix}"] = (gates, inputs)
                shapes[f"weight_hh_l{k}{suffix}"] = (gates, self.hidden)
                shapes[f"bias_ih_l{k}{suffix}"] = (gates,)
                shapes[f"bias_hh_l{k}{suffix}"] = (gates,)
        return shapes

    def parameter_count(self, in_shape) -> int:
        return sum(math.prod(shape) for shape in self.parameter_shapes(in_shape).values())

    def work_size(self, in_shape) -> int:
        """Per example, what the scratch layer keeps for BPTT: each layer's gate activations and states."""
        return in_shape[0] * self.num_layers * self.directions * (self.GATES + 3) * self.hidden

    def initial_values(self, rng, in_shape, draw) -> dict:
        """torch's start for every weight and bias of nn.RNN / nn.LSTM / nn.GRU: U(±1/√hidden)."""
        bound = 1.0 / math.sqrt(self.hidden)
        return {name: rng.uniform(-bound, bound, size=shape) for name, shape in self.parameter_shapes(in_shape).items()}


@dataclass
class RNNSpec(RecurrentSpec):
    """Elman RNN, torch's nn.RNN(nonlinearity = tanh or relu): h_t = f(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh)."""

    kind: ClassVar[str] = "rnn"
    nonlinearity: str = "tanh"

    FIELDS: ClassVar[dict] = {**RecurrentSpec.FIELDS, "nonlinearity": (CHOICE, ("tanh", "relu"))}


@dataclass
class LSTMSpec(RecurrentSpec):
    """Long short-term memory, torch's nn.LSTM: gates i, f, g, o in that order."""

    kind: ClassVar[str] = "lstm"
    GATES: ClassVar[int] = 4


@dataclass
class GRUSpec(RecurrentSpec):
    """Gated recurrent unit, torch's nn.GRU: gates r, z, n in that order."""

    kind: ClassVar[str] = "gru"
    GATES: ClassVar[int] = 3
