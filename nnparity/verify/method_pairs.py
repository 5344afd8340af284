"""Classes that hold a function and its derivative as methods, as tutorials write activations and
costs, read into the function forms:

- ``fn(z)`` with ``grad(z)`` (or derivative, prime, deriv, ...): an activation, a function pair
  (function_pairs.py: z or a convention, Jacobian, VJP);
- ``fn(pred, y)`` with ``grad(pred, y)``: a loss (loss_functions.py), also written ``loss(y, y_pred)``
  with ``grad(y, y_pred)`` (numpy-ml's loss classes; the argument order read from the names);
- ``fn(a, y)`` with ``delta(z, a, y)``, the cost classes of the classic online book: delta is dC/dz
  of a sigmoid output layer, so it is checked as the gradient of C(z, y) = fn(σ(z), y), called as
  delta(z, σ(z), y).
"""
from __future__ import annotations

import inspect

import numpy as np

from nnparity.verify.construct import build
from nnparity.verify.derivatives import Derivative, required_parameters
from nnparity.verify.function_pairs import pair_ops
from nnparity.verify.load import OpError
from nnparity.verify.loss_functions import loss_op

DERIVATIVE_METHODS = ("grad", "gradient", "derivative", "prime", "deriv", "df", "dfn", "fn_prime", "fn_grad",
                      "fn_derivative", "backward")
EXAMPLE = ("e.g.\n    def fn(a, y): return 0.5 * np.sum((a - y) ** 2)\n"
           "    def delta(z, a, y): return (a - y) * sigmoid_prime(z)")


def _method_arity(cls, name: str) -> int:
    """Required arguments of cls.name, self not counted."""
    raw = inspect.getattr_static(cls, name, None)
    params = required_parameters(getattr(cls, name))
    return len(params) - (0 if isinstance(raw, (staticmethod, classmethod)) else 1)


def is_loss_pair_class(cls) -> bool:
    """loss(y, y_pred) with grad(y, y_pred) as methods, and no forward or backprop: a loss, not a network."""
    if not callable(getattr(cls, "loss", None)) or any(callable(getattr(cls, m, None)) for m in ("forward", "backprop")):
        return False
    method = next((m for m in DERIVATIVE_METHODS if m != "backward" and callable(getattr(cls, m, None))), None)
    return method is not None and _method_arity(cls, "loss") == 2 and _method_arity(cls, method) == 2


def is_method_pair(cls) -> bool:
    return (callable(getattr(cls, "fn", None)) and not callable(getattr(cls, "forward", None))) or is_loss_pair_class(cls)


def sigmoid(z):
    """σ(z) without overflow for any finite z."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def cost_op(inst, name: str, shown: str, seed: int):
    fn, delta = inst.fn, inst.delta

    def cost(z, y):
        return fn(sigmoid(z), y)

    def cost_delta(z, y):
        return delta(z, sigmoid(z), y)

    cost.__name__, cost_delta.__name__ = f"{name}.fn", f"{name}.delta"
    op = loss_op(cost, shown, lambda: (cost_delta, "the cost class's delta(z, a, y), called with a = σ(z)"), seed)
    op.notes.append("cost class: delta(z, a, y) is dC/dz of a sigmoid output layer: checked as the gradient of "
                    "fn(σ(z), y) with respect to z")
    return op


def method_pair_ops(cls, shown: str, seed: int = 0, convention: str | None = None, wrt: str | None = None) -> list:
    """The ops for a class with fn (or loss) and its derivative as methods; OpError when the derivative
    is missing. ``wrt``: a loss's prediction argument (default: read from the names)."""
    inst, _ = build(cls, shown, seed)
    name = cls.__name__
    main = "fn" if callable(getattr(inst, "fn", None)) else "loss"
    fn = getattr(inst, main)
    arity = len(required_parameters(fn))
    method = next((m for m in DERIVATIVE_METHODS if callable(getattr(inst, m, None))), None)
    if wrt is not None and arity != 2:
        raise OpError(f"--wrt applies to a loss of two arguments; {shown}.{main} takes {arity}")
    if arity == 1 and method:
        d = Derivative.of(getattr(inst, method), f"{name}.{method}")
        return pair_ops(fn, d, shown, f"methods {name}.fn and {name}.{method}", convention, seed)
    if arity == 2 and method:
        grad = getattr(inst, method)
        return [loss_op(fn, shown, lambda: (grad, f"methods {name}.{main} and {name}.{method}"), seed, wrt)]
    if arity == 2 and callable(getattr(inst, "delta", None)) and len(required_parameters(inst.delta)) == 3:
        return [cost_op(inst, name, shown, seed)]
    raise OpError(f"{shown}: a class with fn needs its derivative as a method: {', '.join(DERIVATIVE_METHODS)} "
                  f"(for fn(z) or fn(pred, y)), or delta(z, a, y) for a cost fn(a, y); {EXAMPLE}")
