"""Memory a spec (or a command-line flag) would need, estimated before anything is allocated.

The estimate is deliberately generous (float64 everywhere, every copy the two networks and the
optimizer keep), so a refused spec is one that could not run, not one near the edge. The limit is
half the machine's memory, at most 16 GiB; ``NNPARITY_MAX_MEMORY`` (bytes, or "500MB", "64GiB")
sets another.
"""
from __future__ import annotations

import math
import os
import re

from scratch.errors import SpecError, shown

ENV_VAR = "NNPARITY_MAX_MEMORY"
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
# Copies per parameter: the weight, its gradient, two optimizer moments, torch's weight and gradient.
PARAM_COPIES = 6
# Copies per activation: z and a on each side, and their gradients.
ACTIVATION_COPIES = 8
# Copies of the data: generated, split, scaled, cast.
DATA_COPIES = 4
# Rows assumed for a generated dataset whose size the spec leaves to the generator (the largest default).
DEFAULT_ROWS = 2000
ITEM = 8  # bytes of a float64


def parse_size(text: str) -> int:
    """'500MB', '64GiB', '1e9' or '123' -> bytes. Raises ValueError (1e999 and other infinite sizes too)."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?(?:e[0-9]+)?)\s*([a-z]*)\s*", text.lower())
    if not m or m.group(2) not in _UNITS:
        raise ValueError(text)
    size = float(m.group(1)) * _UNITS[m.group(2)]
    if size == float("inf"):
        raise ValueError(text)
    return int(size)


def format_size(n: float) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} bytes"


def memory_limit() -> int:
    """The most memory a run may ask for: NNPARITY_MAX_MEMORY, else half the machine's, at most 16 GiB."""
    text = os.environ.get(ENV_VAR)
    if text:
        try:
            return parse_size(text)
        except ValueError:
            raise SpecError(ENV_VAR, f"expected a size such as 8GiB, 500MB or 1000000, got {shown(text)}") from None
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not every platform names these
        total = 8 * 2**30
    return min(16 * 2**30, total // 2)


def _data_rows(spec) -> int:
    d = spec.data
    if d.x is not None:
        return len(d.x)
    if d.name is not None:
        return d.samples if d.samples is not None else DEFAULT_ROWS
    return 0


def estimate(spec, rows: int | None = None, rows_field: str = "train.batch_size") -> list[tuple[str, int]]:
    """(field, bytes) of what the spec needs: its parameters, one batch's activations, its data.

    ``rows`` is the batch a command runs (check --batch, say); None: the spec's own batch."""
    data_rows = _data_rows(spec)
    if rows is None:
        rows = min(spec.train.batch_size or data_rows, data_rows) or 4
        rows_field = "train.batch_size" if spec.train.batch_size else "data.samples"
    shapes = spec.shapes
    counts = [layer.parameter_count(shape) for layer, shape in zip(spec.layers, shapes)]
    weights = [math.prod(layer.parameter_shapes(shape).get("weight", (0,))) for layer, shape in zip(spec.layers, shapes)]
    sizes = [math.prod(shape) for shape in shapes]   # one example's input, then each layer's output
    widest = max(range(len(spec.layers)), key=lambda i: weights[i])
    params = sum(counts)
    # per example: every layer's output, and what a layer holds besides (a convolution's columns)
    width = sum(sizes) + sum(getattr(layer, "work_size", lambda shape: 0)(shape)
                             for layer, shape in zip(spec.layers, shapes))
    if width > rows:  # a few rows of an absurd width: the width is at fault, not the rows
        rows_field = _size_field(spec, max(range(len(spec.layers)), key=lambda i: sizes[i + 1]))
    return [(_size_field(spec, widest), params * ITEM * PARAM_COPIES),
            (rows_field, rows * width * ITEM * ACTIVATION_COPIES),
            ("data.samples", data_rows * (spec.inputs + spec.outputs) * ITEM * DATA_COPIES)]


def _size_field(spec, i: int) -> str:
    """The field that sets layer i's size: a dense layer's units, another kind's kind."""
    return f"layers[{i}].{'units' if spec.layers[i].kind == 'dense' else 'kind'}"


def check_memory(spec, rows: int | None = None, rows_field: str = "train.batch_size") -> None:
    """Refuse (SpecError, naming the largest part's field) what would need more than the limit."""
    parts = estimate(spec, rows, rows_field)
    need, limit = sum(size for _, size in parts), memory_limit()
    if need > limit:
        field = max(parts, key=lambda part: part[1])[0]
        raise SpecError(field, f"would need about {format_size(need)} of memory, more than the limit of "
                               f"{format_size(limit)}; make it smaller, or set {ENV_VAR} (e.g. {ENV_VAR}=64GiB)")
