"""Run a function written against NumPy with another array module (torch, for autograd).

The NumPy names a function reads from its module (``np``, ``from numpy import exp``) are bound to
the namesakes in the other module; helper functions of the same module it calls are rebound the
same way. A name the other module lacks stays NumPy's, and the result then says so by failing.
"""
from __future__ import annotations

import types

import numpy as np


def _is_numpy(value) -> bool:
    return value is np or isinstance(value, np.ufunc) or (
        callable(value) and (getattr(value, "__module__", "") or "").startswith("numpy"))


def _global_names(code) -> set:
    """The global names a function's code reads, its generator expressions and inner functions included."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def with_array_module(fn, xp, _seen=None, values=None):
    """``fn`` reading ``xp`` where it reads NumPy (fn itself for NumPy or a non-Python function);
    ``values``: module globals replaced by these (name -> value), in fn and the helpers it calls."""
    func = getattr(fn, "__func__", fn)
    if xp is np or not isinstance(func, types.FunctionType):
        return fn
    values = values or {}
    seen = {} if _seen is None else _seen
    if func in seen:
        return seen[func]
    g = func.__globals__
    mapping = {}
    new = types.FunctionType(func.__code__, g, func.__name__, func.__defaults__, func.__closure__)
    new.__kwdefaults__ = func.__kwdefaults__
    seen[func] = new
    for name in _global_names(func.__code__):
        value = g.get(name)
        if name in values:
            mapping[name] = values[name]
        elif value is np:
            mapping[name] = xp
        elif _is_numpy(value):
            twin = getattr(xp, getattr(value, "__name__", name), None)
            if twin is not None:
                mapping[name] = twin
        elif isinstance(value, types.FunctionType) and value.__module__ == func.__module__:
            mapping[name] = with_array_module(value, xp, seen, values)
    if mapping:
        new = types.FunctionType(func.__code__, {**g, **mapping}, func.__name__, func.__defaults__,
                                 func.__closure__)
        new.__kwdefaults__ = func.__kwdefaults__
        seen[func] = new
    return new
