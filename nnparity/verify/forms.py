"""Every form a hand-derived gradient is written in, read into the op form of nnparity.verify.load.

- a class with forward/backward (load.py);
- a function and its derivative, ``f(z)`` with ``df`` (function_pairs.py): elementwise, row-wise,
  a Jacobian or a vector-Jacobian product, in z or in a = f(z);
- a loss function, ``loss(pred, target)`` with ``loss_grad(pred, target)``, or one function
  returning ``(value, dpred)`` (loss_functions.py);
- a forward/backward pair with a cache, ``X_forward(*inputs) -> (out, cache)`` and
  ``X_backward(dout, cache) -> (d_input_1, ...)``, paired by the course's names (course_pairs.py),
  or a course loss ``f(x, y, mask) -> (loss, dx)`` (layer_functions.py).

The derivative is ``grad`` when given, else found in the function's module by the usual names
(PARTNERS), and the report says which it took.
"""
from __future__ import annotations

import importlib
import inspect

from nnparity.verify.classes import class_op, needs_adapter
from nnparity.verify.course_pairs import layer_ops, loss_ops
from nnparity.verify.derivatives import Derivative, required_parameters
from nnparity.verify.function_pairs import pair_ops
from nnparity.verify.layer_functions import course_op, read_pair
from nnparity.verify.load import OpError, load_op, resolve_op
from nnparity.verify.loss_functions import loss_op
from nnparity.verify.method_pairs import is_method_pair, method_pair_ops
from nnparity.verify.networks import read_network

PARTNERS = ("{f}_derivative", "{f}_prime", "{f}_grad", "d{f}", "d_{f}", "{f}_backward", "{f}_gradient",
            "{f}_deriv")


def _resolve(target):
    """(the object, its display name, its module or None)."""
    if not isinstance(target, str):
        module = inspect.getmodule(target)
        return target, f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', target)}", module
    obj = resolve_op(target)
    return obj, target, importlib.import_module(target.partition(":")[0])


def find_partner(module, name: str, patterns=PARTNERS) -> tuple[object, str]:
    """(the partner function, how it was found) among ``patterns`` in ``module``; OpError listing them."""
    tried = [p.format(f=name) for p in patterns]
    for candidate in tried:
        fn = getattr(module, candidate, None) if module is not None else None
        if callable(fn):
            return fn, f"found by name: {candidate}"
    where = getattr(module, "__name__", "its module")
    raise OpError(f"no derivative found for {name} in {where}: tried {', '.join(tried)}; "
                  f"name it so or give it with --grad MODULE:FUNCTION")


def _grad(grad, module, name: str, patterns=PARTNERS):
    if grad is None:
        return find_partner(module, name, patterns)
    fn, shown, _ = _resolve(grad)
    if not callable(fn) or inspect.isclass(fn):
        raise OpError(f"--grad: {shown} is not a function")
    return fn, f"given: {shown}"


def load_network(target, seed: int = 0):
    """The whole-network form of ``target`` (nnparity.verify.networks), None when it has none."""
    obj, shown, _ = _resolve(target)
    return read_network(obj, shown, seed)


def load_ops(target, grad=None, kind: str | None = None, convention: str | None = None, seed: int = 0) -> list:
    """The ops to verify for ``target`` (a class, a function, or their import path); OpError
    (one line: the CLI's exit 2) when it cannot be verified as given."""
    obj, shown, module = _resolve(target)
    if inspect.isclass(obj) and kind is None and is_method_pair(obj):
        if grad is not None:
            raise OpError(f"--grad applies to functions; {shown} holds its derivative as a method")
        return method_pair_ops(obj, shown, seed, convention)
    if inspect.isclass(obj):
        if grad is not None or convention is not None:
            raise OpError(f"--grad and --convention apply to functions; {shown} is a class")
        if kind in (None, "layer") and needs_adapter(obj):
            op = class_op(obj, shown, seed)
            if op is not None:
                return [op]
        return [load_op(target, kind)]
    if isinstance(obj, tuple) and len(obj) == 2 and all(callable(o) for o in obj):
        forward, backward = obj
        module = inspect.getmodule(forward)
        name = getattr(forward, "__name__", "forward")
        return [course_op(read_pair(forward, backward, module, name.split("_forward")[0], seed), shown,
                          "given as a pair", seed)]
    if not inspect.isfunction(obj) and not inspect.isbuiltin(obj):
        raise OpError(f"{shown} is a {type(obj).__name__}: expected a class with forward and backward, "
                      f"or a function (f with its derivative, a loss, or X_forward with X_backward)")
    if kind is not None:
        raise OpError("--kind applies to classes; a function's form is read from its signature")
    # the name it was given by (a module's alias), else its own
    name = target.partition(":")[2] if isinstance(target, str) else obj.__name__
    if "_forward" in name or "_backward" in name:
        return layer_ops(obj, name, module, shown, _grad(grad, module, name) if grad else None, seed)
    if len(required_parameters(obj)) >= 3 and grad is None:
        try:
            return loss_ops(obj, name, module, shown, seed)
        except OpError as err:
            raise OpError(f"{shown}{inspect.signature(obj)}: expected f(z) with its derivative, loss(pred, target), "
                          f"X_forward(*inputs) with X_backward(dout, cache), or a loss(x, ...) -> (loss, dx) "
                          f"({err})") from None
    if len(required_parameters(obj)) == 2:
        return [loss_op(obj, shown, lambda: _grad(grad, module, name), seed)]
    if len(required_parameters(obj)) != 1:
        raise OpError(f"{shown}{inspect.signature(obj)}: expected f(z) with its derivative, loss(pred, target), "
                      f"X_forward(*inputs) with X_backward(dout, cache), or a function returning (loss, dA, dB, ...) for "
                      f"arrays A, B it reads (return loss, dWxh, dWhh)")
    fn, how = _grad(grad, module, name)
    d = Derivative.of(fn, getattr(fn, "__name__", "df"))
    if len(required_parameters(fn)) not in (1, 2):
        raise OpError(f"{fn.__name__}{inspect.signature(fn)}: a derivative takes z (or a = f(z)), or the "
                      f"upstream gradient and z: df(z) or df(dout, z)")
    return pair_ops(obj, d, shown, how, convention, seed)
