"""Where scratch's arrays live: NumPy on the CPU, CuPy on a CUDA GPU.

The maths of every op, loss, layer and optimizer is NumPy-style code over an array module ``xp``
(the ``xp`` each is built with): NumPy on the CPU, CuPy on a GPU, whose API mirrors NumPy's,
``out=`` and all. That keeps one readable formula per op and lets NumPy keep its in-place
speed-ups, which the Python array API standard has no room for; the test suite runs the same
code on a strict device namespace (parity_tests/strict_xp.py) that refuses every host round-trip
and every NumPy-only call, so what would break on a GPU breaks on the CPU first.

Data move to the device once (``to_device``) and back once (``to_host``); CuPy is imported only
when the device ``cuda`` is asked for.
"""
from __future__ import annotations

import sys

import numpy as np

from scratch.errors import SpecError

DEVICES = ("cpu", "cuda")


def array_module(device: str = "cpu", field: str = "device"):
    """The array module for ``device``; SpecError naming ``field`` when it cannot be had."""
    if device == "cpu":
        return np
    if device != "cuda":
        raise SpecError(field, f"unknown {device!r}; expected one of {', '.join(DEVICES)}")
    try:
        import cupy   # only for the GPU: the CPU path never needs it
    except ImportError:
        raise SpecError(field, "cuda needs CuPy, which is not installed (pip install cupy-cuda12x or "
                               "cupy-cuda13x, matching the CUDA driver); use cpu") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception:   # CuPy raises its own CUDARuntimeError when no driver answers
        count = 0
    if count < 1:
        raise SpecError(field, "cuda: no CUDA device is visible; use cpu")
    return cupy


def namespace_of(array):
    """The array module an array belongs to: NumPy, CuPy, or whatever its ``__array_namespace__`` names."""
    if isinstance(array, np.ndarray):
        return np
    cupy = sys.modules.get("cupy")   # imported already if the array is CuPy's
    if cupy is not None and isinstance(array, cupy.ndarray):
        return cupy
    get = getattr(type(array), "__array_namespace__", None)
    if get is None:
        raise TypeError(f"expected an array (NumPy, CuPy or an array-API array), got {type(array).__name__}")
    return get(array)


def to_device(array, xp):
    """Host data onto xp's device (a no-op for NumPy)."""
    return xp.asarray(array)


def to_host(array, xp=None):
    """An array of any device back to a NumPy array (the one explicit way out)."""
    asnumpy = getattr(xp, "asnumpy", None) if xp is not None and xp is not np else None
    return asnumpy(array) if asnumpy is not None else np.asarray(array)


def host_copy(array, xp=None):
    """A NumPy copy of an array of any device, sharing no memory with it (a live parameter keeps
    changing after the copy is taken)."""
    return np.array(to_host(array, xp))
