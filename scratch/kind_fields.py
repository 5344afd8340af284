"""What every layer kind's spec class shares: the field types spec.py reads, and shape helpers."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from scratch.errors import SpecError

# Field types spec.py knows how to read: an int >= minimum, an int or [h, w] pair of ints >= minimum,
# a bool, an initializer name, an initializer scale, a float within Bounds, a list of layer tables,
# one of the names a tuple lists.
INT, PAIR, BOOL, INIT, SCALE, FLOAT, LAYERS = "int", "pair", "bool", "init", "scale", "float", "layers"
CHOICE = "choice"


@dataclass(frozen=True)
class Bounds:
    """What a FLOAT field takes: low < v (low_open) or low <= v, and v < high (high_open) or v <= high."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False


def shown_shape(shape) -> str:
    return "[" + ", ".join(str(n) for n in shape) + "]"


def needs_image(kind: str, in_shape, where: str, came_from: str) -> tuple[int, int, int]:
    """The (C, H, W) an image layer takes, or a SpecError saying what it got."""
    if len(in_shape) != 3:
        raise SpecError(where, f"{kind} needs a [channels, height, width] input, got {shown_shape(in_shape)} "
                               f"from {came_from}; give input_shape = [C, H, W] at the top level, and no "
                               f"flatten or dense layer before it")
    return in_shape


class NoParameters:
    """What a kind without parameters answers."""

    FIELDS: ClassVar[dict] = {}

    def parameter_shapes(self, in_shape) -> dict[str, tuple]:
        return {}

    def parameter_count(self, in_shape) -> int:
        return 0
