"""nnparity's from-scratch side: a neural network in NumPy, every derivative written by hand.

Importing scratch never imports torch, and imports NumPy only once one of the names below is
used: the command line sets its signal handlers (scratch.signals) before anything heavy loads.
"""
from __future__ import annotations

import importlib

_EXPORTS = {"Spec": "scratch.spec", "SpecError": "scratch.spec", "load_spec": "scratch.spec",
            "Network": "scratch.network"}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'scratch' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_EXPORTS])
