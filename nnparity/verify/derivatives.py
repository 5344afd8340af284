"""What a hand-written derivative function returns, and the vector-Jacobian product it stands for.

Tutorials write the derivative of y = f(z) in one of these forms, called with z or with the
activation a = f(z) (the *convention*):

- elementwise   ``df(z) -> f'(z)``, the same shape as z: backward is ``g · f'(z)``;
- Jacobian      ``df(s) -> J`` of one row, shape (C, C), ``J[k, c] = ∂y_k/∂z_c`` (softmax:
                ``diagflat(s) − outer(s, s)``), or one per row, (N, C, C): backward is ``g @ J``;
- VJP           ``df(g, z) -> Jᵀ·g`` (two arguments, the upstream gradient named dout, grad, g, ...
                or first): backward is what it returns.

Torch twin: ``torch.autograd.functional.vjp``. A derivative of another shape is bad input.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np

UPSTREAM_NAMES = ("dout", "grad", "grad_out", "grad_output", "g", "dy", "upstream", "delta", "da", "dl_da",
                  "dldy", "dA", "error", "err")
ACTIVATION_NAMES = ("a", "s", "out", "output", "activation", "act", "y", "sig", "sigma", "p", "probs",
                    "softmax", "h")
PRE_ACTIVATION_NAMES = ("z", "logits", "pre_activation", "preact")


class DerivativeShapeError(ValueError):
    """The derivative returned a shape that is none of the forms above."""


def required_parameters(fn) -> list[str]:
    """Names of the positional parameters without defaults."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def keyword_defaults(fn) -> dict:
    """Numeric keyword parameters with defaults (``alpha=0.01``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in params if p.default is not p.empty and not isinstance(p.default, bool)
            and isinstance(p.default, (int, float))}


@dataclass
class Derivative:
    """A derivative function and how it is called."""

    fn: object
    name: str
    vjp: bool = False            # takes the upstream gradient too
    upstream_first: bool = True  # VJP: the upstream gradient is its first argument
    arg: str = "z"               # the name of the argument that is z or a

    @classmethod
    def of(cls, fn, name: str) -> "Derivative":
        params = required_parameters(fn)
        if len(params) == 2:
            first_is_upstream = params[0].lower() in UPSTREAM_NAMES or params[1].lower() not in UPSTREAM_NAMES
            return cls(fn, name, True, first_is_upstream, params[1] if first_is_upstream else params[0])
        return cls(fn, name, False, True, params[0] if params else "z")

    def declared(self) -> str | None:
        """The convention its parameter's name declares: 'a', 'z' or None (x, t, ... say nothing)."""
        name = self.arg.lower()
        return "a" if name in ACTIVATION_NAMES else "z" if name in PRE_ACTIVATION_NAMES else None


def form_of(out_shape, arg_shape, vjp: bool) -> str:
    """elementwise | jacobian | jacobians | vjp, from the shapes (DerivativeShapeError otherwise)."""
    if vjp:
        if tuple(out_shape) == tuple(arg_shape):
            return "vjp"
    elif tuple(out_shape) == tuple(arg_shape):
        return "elementwise"
    elif len(arg_shape) == 1 and tuple(out_shape) == (arg_shape[0], arg_shape[0]):
        return "jacobian"
    elif len(arg_shape) == 2 and tuple(out_shape) == (arg_shape[0], arg_shape[1], arg_shape[1]):
        return "jacobians"
    expected = f"{tuple(arg_shape)}" + ("" if vjp else f" (elementwise), ({arg_shape[-1]}, {arg_shape[-1]}) "
                                                       f"(Jacobian of one row) or (N, C, C)")
    raise DerivativeShapeError(f"returned shape {tuple(out_shape)} for an input of shape {tuple(arg_shape)}; "
                               f"expected {expected}")


def real_array(value) -> np.ndarray:
    """value as float64; DerivativeShapeError for None, complex values or a non-numeric object."""
    if value is None:
        raise DerivativeShapeError("returned None")
    if np.iscomplexobj(value):
        raise DerivativeShapeError("returned complex values: a real derivative was expected (the imaginary "
                                   "part is not dropped)")
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise DerivativeShapeError(f"returned {type(value).__name__}, not an array of numbers ({err})") from None


FORM_TEXT = {"elementwise": "the elementwise derivative f'", "jacobian": "the full Jacobian of one row",
             "jacobians": "one Jacobian per row", "vjp": "a vector-Jacobian product Jᵀ·g"}


def vjp(d: Derivative, g: np.ndarray, arg: np.ndarray, **params) -> tuple[np.ndarray, str]:
    """(Jᵀ·g, the form the derivative returned) for upstream ``g`` and the argument ``arg``."""
    if d.vjp:
        out = d.fn(g, arg, **params) if d.upstream_first else d.fn(arg, g, **params)
    else:
        out = d.fn(arg, **params)
    out = real_array(out)
    form = form_of(out.shape, np.shape(arg), d.vjp)
    if form == "elementwise":
        return g * out, form
    if form == "jacobian":
        return g @ out, form
    if form == "jacobians":
        return np.einsum("nk,nkc->nc", g, out), form
    return out, form
