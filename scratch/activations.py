"""Activations: one small class each, forward and hand-derived backward.

Each class keeps in ``self`` exactly what its backward needs. ``backward(grad_out)`` returns
dL/dz given dL/da. The maths is written against an array module ``xp`` (NumPy by default) so the
same code runs on CuPy.
"""
from __future__ import annotations

import importlib
import inspect
import math

import numpy as np

from scratch import user_code
from scratch.errors import SpecError


def _erf(xp):
    """erf for the array module: scipy.special's for NumPy, cupyx.scipy.special's for CuPy (neither
    namespace has erf itself); any other device namespace provides ``xp.erf``."""
    if xp is np:
        from scipy.special import erf
    elif getattr(xp, "__name__", "") == "cupy":  # pragma: no cover - exercised only on a GPU
        from cupyx.scipy.special import erf
    else:
        erf = xp.erf
    return erf


class Activation:
    """Base class. Subclasses set ``name`` and, if they take any, ``params`` (name -> default)."""

    name = ""
    params: dict[str, float] = {}
    elementwise = True  # False for row-wise functions such as softmax

    def __init__(self, xp=np, **params):
        self.xp = xp
        unknown = set(params) - set(self.params)
        if unknown:
            raise TypeError(f"{self.name}: unknown parameter(s) {sorted(unknown)}; "
                            f"expected {sorted(self.params) or 'none'}")
        for key, default in self.params.items():
            setattr(self, key, params.get(key, default))

    def forward(self, z):
        raise NotImplementedError

    def backward(self, grad_out):
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={getattr(self, k)}" for k in self.params)
        return f"{type(self).__name__}({args})"


class Identity(Activation):
    """a = z.  Backward: dL/dz = dL/da.  Torch twin: nn.Identity."""

    name = "identity"

    def forward(self, z):
        return z

    def backward(self, grad_out):
        return grad_out


class Step(Activation):
    """Binary step: a = 1 if z >= 0 else 0.

    Backward: the derivative is 0 everywhere it exists, so dL/dz = 0.
    Torch twin: none with a gradient; torch_ref compares forward only (torch.heaviside).
    """

    name = "step"

    def forward(self, z):
        self.shape = z.shape
        return (z >= 0).astype(z.dtype)

    def backward(self, grad_out):
        return self.xp.zeros_like(grad_out)


class Sigmoid(Activation):
    """a = 1 / (1 + exp(-z)), evaluated without overflow for any finite z.

    Backward: da/dz = a (1 - a).  Torch twin: nn.Sigmoid.
    """

    name = "sigmoid"

    def forward(self, z):
        xp = self.xp
        # exp(-|z|) is in (0, 1]: no overflow on either side.
        e = xp.exp(-xp.abs(z))
        self.a = xp.where(z >= 0, 1 / (1 + e), e / (1 + e))
        return self.a

    def backward(self, grad_out):
        return grad_out * self.a * (1 - self.a)


class Tanh(Activation):
    """a = tanh(z).  Backward: da/dz = 1 - a².  Torch twin: nn.Tanh."""

    name = "tanh"

    def forward(self, z):
        self.a = self.xp.tanh(z)
        return self.a

    def backward(self, grad_out):
        return grad_out * (1 - self.a * self.a)


_SAME_WIDTH_INT = {2: np.int16, 4: np.int32, 8: np.int64}   # float16/32/64 -> the integers of their width


class ReLU(Activation):
    """a = max(z, 0).  Backward: 1 for z > 0, else 0 (0 at z = 0, as torch).  Torch twin: nn.ReLU."""

    name = "relu"

    def forward(self, z):
        self.positive = z > 0
        # max(z, 0): one vectorised pass; NaN stays NaN, as torch.relu; the Python 0 takes z's
        # dtype (NumPy 2 and CuPy), so float32 stays float32
        return self.xp.maximum(z, 0)

    def backward(self, grad_out):
        # where(z > 0, g, 0) bit for bit, as g's bits AND a mask of all ones (z > 0) or all zeros,
        # built in the output array: where() branches on every element, ~15x slower on a mask
        # with no pattern (a tenth of a wide network's step)
        xp = self.xp
        keep = self.positive.astype(_SAME_WIDTH_INT[grad_out.dtype.itemsize])   # 1 or 0
        xp.negative(keep, out=keep)                                             # all ones or zeros
        xp.bitwise_and(grad_out.view(keep.dtype), keep, out=keep)
        return keep.view(grad_out.dtype)


class LeakyReLU(Activation):
    """a = z for z > 0, negative_slope·z otherwise.

    Backward: 1 for z > 0, negative_slope otherwise (the slope at z = 0, as torch).
    Torch twin: nn.LeakyReLU(negative_slope).
    """

    name = "leaky_relu"
    params = {"negative_slope": 0.01}

    def forward(self, z):
        self.positive = z > 0
        return self.xp.where(self.positive, z, z * self.negative_slope).astype(z.dtype)

    def backward(self, grad_out):
        return self.xp.where(self.positive, grad_out, grad_out * self.negative_slope).astype(grad_out.dtype)


class ELU(Activation):
    """a = z for z > 0, alpha·(exp(z) - 1) otherwise.

    Backward: 1 for z > 0, alpha·exp(z) otherwise (alpha at z = 0, the left branch, as torch).
    Torch twin: nn.ELU(alpha).
    """

    name = "elu"
    params = {"alpha": 1.0}

    def forward(self, z):
        xp = self.xp
        self.positive = z > 0
        # exp only of the non-positive part: no overflow for large positive z.
        self.exp_neg = xp.exp(xp.minimum(z, 0))
        return xp.where(self.positive, z, self.alpha * xp.expm1(xp.minimum(z, 0))).astype(z.dtype)

    def backward(self, grad_out):
        return self.xp.where(self.positive, grad_out, grad_out * self.alpha * self.exp_neg).astype(grad_out.dtype)


class GELU(Activation):
    """Exact GELU: a = z·Φ(z), Φ(z) = ½(1 + erf(z/√2)).

    Backward: da/dz = Φ(z) + z·φ(z), φ(z) = exp(-z²/2)/√(2π).
    Torch twin: nn.GELU() (approximate="none").
    """

    name = "gelu"

    def forward(self, z):
        xp = self.xp
        self.z = z
        self.cdf = 0.5 * (1 + _erf(xp)(z * (1 / math.sqrt(2))))
        return z * self.cdf

    def backward(self, grad_out):
        xp = self.xp
        # φ(±40) underflows to 0 anyway; clipping keeps z² finite for huge |z|.
        zc = xp.clip(self.z, -40, 40)
        pdf = xp.exp(-0.5 * zc * zc) * (1 / math.sqrt(2 * math.pi))
        return grad_out * (self.cdf + self.z * pdf)


class GELUTanh(Activation):
    """Tanh-approximate GELU: a = ½z(1 + tanh(u)), u = √(2/π)(z + 0.044715 z³).

    Backward: da/dz = ½(1 + tanh u) + ½z(1 - tanh² u)·√(2/π)(1 + 3·0.044715 z²).
    Torch twin: nn.GELU(approximate="tanh"). Differs from exact GELU by up to ~5e-4.
    """

    name = "gelu_tanh"
    BETA = math.sqrt(2 / math.pi)
    KAPPA = 0.044715

    def forward(self, z):
        xp = self.xp
        self.z = z
        # tanh(u) is exactly ±1 long before |z| = 1e4; the clip keeps z³ finite for any finite z.
        self.zc = xp.clip(z, -1e4, 1e4)
        self.t = xp.tanh(self.BETA * (self.zc + self.KAPPA * self.zc * self.zc * self.zc))
        return 0.5 * z * (1 + self.t)

    def backward(self, grad_out):
        left = 0.5 * (1 + self.t)
        right = 0.5 * self.z * (1 - self.t * self.t) * self.BETA * (1 + 3 * self.KAPPA * self.zc * self.zc)
        return grad_out * (left + right)


class Softmax(Activation):
    """Row-wise softmax: a_i = exp(z_i - max z) / Σ_j exp(z_j - max z).

    Backward (Jacobian-vector product): dL/dz = a ⊙ (g - Σ_j g_j a_j) with g = dL/da.
    Torch twin: nn.Softmax(dim=1).
    """

    name = "softmax"
    elementwise = False

    def forward(self, z):
        xp = self.xp
        # z/2 - max/2 is (z - max)/2 exactly and cannot overflow, even for z = ±3e38 in float32;
        # below -1e4, exp is 0 in every float dtype, so clipping there changes nothing.
        half = z * 0.5 - z.max(axis=1, keepdims=True) * 0.5
        e = xp.exp(2 * xp.maximum(half, -5e3))
        self.a = e / e.sum(axis=1, keepdims=True)
        return self.a

    def backward(self, grad_out):
        return self.a * (grad_out - (grad_out * self.a).sum(axis=1, keepdims=True))


ACTIVATIONS: dict[str, type[Activation]] = {
    cls.name: cls for cls in (Identity, Step, Sigmoid, Tanh, ReLU, LeakyReLU, ELU, GELU, GELUTanh, Softmax)
}


def resolve_activation(name: str, field: str = "activation") -> type[Activation]:
    """The class for a registry name or a user's ``module:Class`` import path (its import run as
    user code: scratch.user_code)."""
    if name in ACTIVATIONS:
        return ACTIVATIONS[name]
    if ":" not in name:
        raise KeyError(name)
    module_name, _, attr = name.partition(":")
    with user_code.running(f"the import of {module_name}", field, exceptions=False):
        module = importlib.import_module(module_name)
    return getattr(module, attr)


def check_activation(name: str, params: dict, where: str) -> None:
    """Raise SpecError unless ``name`` resolves and ``params`` are the ones it takes."""

    try:
        cls = resolve_activation(name, f"{where}.activation")
    except user_code.UserCodeError:
        raise
    except KeyError:
        raise SpecError(f"{where}.activation",
                        f"unknown {name!r}; expected one of {', '.join(ACTIVATIONS)} "
                        f"or a user op as 'module:Class'") from None
    except Exception as err:  # ImportError, AttributeError, or the user's module failing as it imports
        raise SpecError(f"{where}.activation", f"cannot import {name!r} ({type(err).__name__}: {err}); "
                        f"expected 'module:Class' importable from the current directory") from None
    if not inspect.isclass(cls) and callable(cls):
        raise SpecError(f"{where}.activation", f"{name!r} is a function; a spec's activation is a class with "
                        f"forward(z) and backward(grad_out) (see examples/custom_ops.py) — e.g.  class Sigmoid:  "
                        f"def forward(self, z): ...  |  def backward(self, grad_out): ...; a function with its "
                        f"derivative is checked on its own with `nnparity verify {name}`")
    if not (hasattr(cls, "forward") and hasattr(cls, "backward")):
        raise SpecError(f"{where}.activation", f"{name!r} has no forward/backward methods; expected a class with "
                        f"forward(z) and backward(grad_out) (see examples/custom_ops.py)")
    allowed = getattr(cls, "params", {}) or {}
    for key in params:
        if key not in allowed:
            raise SpecError(f"{where}.activation_params.{key}",
                            f"not a parameter of {name}; expected {', '.join(allowed) or 'none'}")
    if name == "elu" and params.get("alpha", 1.0) <= 0:
        raise SpecError(f"{where}.activation_params.alpha", "must be > 0")


def make_activation(name: str, params: dict | None = None, xp=np, field: str = "activation") -> Activation:
    """The op for a registry name, or a user's op (scratch.user_code.UserActivation: each call to
    it run as user code; a user's class that takes no ``xp`` runs on NumPy only); ``field`` names
    the spec field in a message."""
    cls = resolve_activation(name, field)
    if name in ACTIVATIONS:
        return cls(xp=xp, **(params or {}))
    kwargs = dict(params or {})
    if _takes_xp(cls):
        kwargs["xp"] = xp
    elif xp is not np:
        raise SpecError(field, f"{name}: its constructor takes no xp (the array module), so it runs on "
                        f"NumPy only; add __init__(self, xp=np) and compute with self.xp")
    with user_code.running(f"{name}.__init__", field):
        op = cls(**kwargs)
    return user_code.UserActivation(op, name, field)


def _takes_xp(cls) -> bool:
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.name == "xp" or p.kind == p.VAR_KEYWORD for p in params)
