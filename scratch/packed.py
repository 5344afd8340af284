"""Arrays packed in one buffer: a network's parameters (and its gradients) as consecutive views.

``pack(arrays, xp)`` copies arrays into one flat buffer and returns ``Packed``: a dict name ->
view (the same names and shapes, so every caller of ``Network.parameters()`` sees what it saw
before) that also holds the buffer (``flat``) and the names and shapes (``layout``). An optimizer
given packed parameters and packed gradients of the same layout updates the whole buffer in one
pass: elementwise, so bit for bit what the per-parameter pass gives, at a few NumPy calls per step
instead of a few per parameter (which is most of a tiny network's step).
"""
from __future__ import annotations

import math


class Packed(dict):
    """A dict name -> array whose arrays are consecutive views of the 1-D buffer ``flat``, in order.

    ``layout``: ((name, shape), ...), what two Packed must share for their buffers to line up.
    """

    def __init__(self, views: dict, flat, layout: tuple):
        super().__init__(views)
        self.flat, self.layout = flat, layout


def views_of(flat, layout) -> dict:
    """name -> the view of ``flat`` that ``layout`` gives it."""
    views, start = {}, 0
    for name, shape in layout:
        size = math.prod(shape)
        views[name] = flat[start:start + size].reshape(shape)
        start += size
    return views


def pack(arrays: dict, xp, copy: bool = True) -> Packed:
    """Arrays (all of one dtype) packed on xp: a copy of their values, or (``copy=False``) zeros
    of their layout, whose pages the system gives only when first written."""
    layout = tuple((name, tuple(a.shape)) for name, a in arrays.items())
    flat = xp.zeros(sum(math.prod(shape) for _, shape in layout), dtype=next(iter(arrays.values())).dtype)
    views = views_of(flat, layout)
    if copy:
        for name, a in arrays.items():
            views[name][...] = a
    return Packed(views, flat, layout)


def still_packed(arrays: dict, packed: Packed | None) -> Packed | dict:
    """``packed`` again when ``arrays`` are still its very views in its order, else ``arrays`` as
    given (a layer's array was replaced: the per-array path is the safe one)."""
    if packed is None or len(arrays) != len(packed):
        return arrays
    for (name, a), (own_name, view) in zip(arrays.items(), packed.items()):
        if name != own_name or a is not view:
            return arrays
    return packed
