"""The layer kinds of sequences: token embeddings, learned positional embeddings and readouts: their
fields, shape rules, parameters and initial values (the recurrent kinds: scratch/recurrent_kinds.py).

A sequence network takes token ids: input_shape = [T], one integer id per time step, and an
``embedding`` as layers[0] turns them into (T, dim) vectors. Sequence shapes are (T, features) for
one example (a batch adds N in front: batch first, as torch's batch_first=True); a dense layer on a
(T, features) input acts on each time step (scratch.layers.Dense, nn.Linear on the last axis);
``seq_last`` and ``seq_mean`` read a (T, features) sequence out into (features,).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from scratch.errors import SpecError
from scratch.kind_fields import INT, NoParameters, shown_shape


def needs_tokens(kind: str, in_shape, where: str, came_from: str) -> int:
    """T of the [T] token ids an embedding takes: only the network's input holds ids."""
    if came_from != "the input":
        raise SpecError(f"{where}.kind", f"{kind} takes token ids, which only the network's input holds; "
                                         f"make it layers[0] (it got {shown_shape(in_shape)} from {came_from})")
    if len(in_shape) != 1:
        raise SpecError("input_shape", f"{kind} takes [T] token ids (one per time step), got "
                                       f"{shown_shape(in_shape)}; give input_shape = [T]")
    return in_shape[0]


def needs_sequence(kind: str, in_shape, where: str, came_from: str) -> tuple[int, int]:
    """The (T, features) a sequence layer takes, or a SpecError saying what it got."""
    if len(in_shape) != 2:
        raise SpecError(f"{where}.kind", f"{kind} needs a [time, features] sequence, got {shown_shape(in_shape)} "
                                         f"from {came_from}; start with input_shape = [T] and an embedding layer")
    return in_shape


def _normal_table(rng, shape, padding_index=None) -> dict:
    """nn.Embedding's own start: every entry N(0, 1), the padding row zero."""
    weight = rng.normal(size=shape)
    if padding_index is not None:
        weight[padding_index] = 0.0
    return {"weight": weight}


@dataclass
class EmbeddingSpec:
    """Token ids [T] -> rows of a (vocab, dim) table, (T, dim): torch's nn.Embedding(vocab, dim,
    padding_idx); the padding row starts at zero and gets no gradient."""

    kind: ClassVar[str] = "embedding"
    vocab: int                                   # ids 0 .. vocab − 1
    dim: int
    padding_index: int | None = None
    activation: str = "identity"
    activation_params: dict[str, float] = field(default_factory=dict)

    FIELDS: ClassVar[dict] = {"vocab": (INT, 1), "dim": (INT, 1), "padding_index": (INT, 0)}

    def output_shape(self, in_shape, where: str, came_from: str) -> tuple:
        steps = needs_tokens(self.kind, in_shape, where, came_from)
        if self.padding_index is not None and self.padding_index >= self.vocab:
            raise SpecError(f"{where}.padding_index", f"{self.padding_index} is not a token id of the vocab of "
                                                      f"{self.vocab}; expected 0 to {self.vocab - 1}")
        return (steps, self.dim)

    def parameter_shapes(self, in_shape) -> dict[str, tuple]:
        return {"weight": (self.vocab, self.dim)}

    def parameter_count(self, in_shape) -> int:
        return self.vocab * self.dim

    def initial_values(self, rng, in_shape, draw) -> dict:
        return _normal_table(rng, (self.vocab, self.dim), self.padding_index)


@dataclass
class PositionalEmbeddingSpec:
    """A learned position table added to a (T, dim) sequence: z[t] = x[t] + P[t], P of (max_len, dim);
    torch's nn.Embedding(max_len, dim) looked up at positions 0 .. T − 1."""

    kind: ClassVar[str] = "positional_embedding"
    max_len: int
    activation: str = "identity"
    activation_params: dict[str, float] = field(default_factory=dict)

    FIELDS: ClassVar[dict] = {"max_len": (INT, 1)}

    def output_shape(self, in_shape, where: str, came_from: str) -> tuple:
        steps, _ = needs_sequence(self.kind, in_shape, where, came_from)
        if steps > self.max_len:
            raise SpecError(f"{where}.max_len", f"the sequence from {came_from} has {steps} steps, more than the "
                                                f"table's {self.max_len} positions; set max_len >= {steps}")
        return tuple(in_shape)

    def parameter_shapes(self, in_shape) -> dict[str, tuple]:
        return {"weight": (self.max_len, in_shape[1])}

    def parameter_count(self, in_shape) -> int:
        return self.max_len * in_shape[1]

    def initial_values(self, rng, in_shape, draw) -> dict:
        return _normal_table(rng, (self.max_len, in_shape[1]))


@dataclass
class ReadoutSpec(NoParameters):
    """(T, features) -> (features,)."""

    kind: ClassVar[str] = ""
    activation: str = "identity"
    activation_params: dict[str, float] = field(default_factory=dict)

    def output_shape(self, in_shape, where: str, came_from: str) -> tuple:
        return (needs_sequence(self.kind, in_shape, where, came_from)[1],)


@dataclass
class SeqLastSpec(ReadoutSpec):
    """The last time step: z = x[T − 1] (torch: x[:, -1])."""

    kind: ClassVar[str] = "seq_last"


@dataclass
class SeqMeanSpec(ReadoutSpec):
    """The mean over time: z = Σ_t x[t] / T (torch: x.mean(dim=1))."""

    kind: ClassVar[str] = "seq_mean"
