"""A strict stand-in for CuPy on the CPU: device arrays that refuse every host round-trip.

CI has no GPU, so the CPU suite must catch what would break on one. ``strict`` is an array module
like ``cupy``: NumPy's maths underneath, but its arrays (``DeviceArray``) refuse what CuPy refuses
or what would cost a host round-trip inside a train step:

- implicit conversion to a host array (``np.asarray(a)``, mixing a device array with a NumPy array
  in arithmetic);
- Python scalars out of an array (``float(a)``, ``int(a)``, ``bool(a)``, ``a.item()``,
  ``a.tolist()``, iterating over elements);
- NumPy functions that CuPy lacks, called on a device array, and namespace functions outside
  CuPy's NumPy-compatible API.

Moving data on and off the device is explicit, as in CuPy: ``strict.asarray(host)`` and
``strict.asnumpy(device)``. Each refusal raises ``HostRoundTrip`` naming what was attempted.
"""
from __future__ import annotations

import numbers
import operator

import numpy as np


class HostRoundTrip(TypeError):
    """A device array was turned into host data, or met NumPy where CuPy would refuse it."""


# Namespace functions a scratch op may call: a subset of CuPy's NumPy-compatible API.
FUNCTIONS = frozenset("""
    abs absolute add all any arange argmax argmin asarray bitwise_and broadcast_to clip concatenate copy
    divide dot empty empty_like equal exp expm1 full full_like greater greater_equal isfinite isinf
    isnan less less_equal log log1p logical_and logical_not logical_or matmul maximum mean minimum
    multiply negative ones ones_like outer power reciprocal reshape sign sqrt square stack subtract
    sum tanh transpose where zeros zeros_like diag eye einsum erf sinh cosh arctan
""".split())
CONSTANTS = ("pi", "e", "inf", "nan", "newaxis", "float32", "float64", "int64", "int32", "bool_",
             "finfo", "iinfo", "dtype", "ndarray")
# Array methods that stay on the device.
METHODS = frozenset("""
    sum mean max min argmax argmin any all astype copy reshape ravel transpose clip fill dot
    cumsum prod view swapaxes squeeze
""".split())


def _unwrap(value):
    if isinstance(value, DeviceArray):
        return value._data
    if isinstance(value, np.ndarray) and value.ndim > 0:
        raise HostRoundTrip("a NumPy array met a device array (move it with xp.asarray first)")
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v) for v in value)
    return value


def _wrap(value):
    if isinstance(value, np.ndarray):
        return DeviceArray(value)
    if isinstance(value, np.generic):       # CuPy returns 0-d arrays, never NumPy scalars
        return DeviceArray(np.asarray(value))
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    return value


def _call(fn, args, kwargs):
    return _wrap(fn(*_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()}))


def _index(key):
    """Indices may be host integer arrays (CuPy accepts them), slices, ints or device arrays."""
    if isinstance(key, tuple):
        return tuple(_index(k) for k in key)
    if isinstance(key, DeviceArray):
        return key._data
    return key


def _binary(op):
    def forward(self, other):
        return _wrap(op(self._data, _unwrap(other)))

    def reflected(self, other):
        return _wrap(op(_unwrap(other), self._data))

    return forward, reflected


def _inplace(op):
    def method(self, other):
        op(self._data, _unwrap(other))
        return self

    return method


class DeviceArray:
    """An array living 'on the device': arithmetic and namespace calls only, no host conversion."""

    __slots__ = ("_data",)
    __array_priority__ = 1000

    def __init__(self, data: np.ndarray):
        self._data = data

    shape = property(lambda self: self._data.shape)
    dtype = property(lambda self: self._data.dtype)
    ndim = property(lambda self: self._data.ndim)
    size = property(lambda self: self._data.size)
    T = property(lambda self: DeviceArray(self._data.T))
    flags = property(lambda self: self._data.flags)

    def __array_namespace__(self, api_version=None):
        return strict

    def __repr__(self):
        return f"DeviceArray(shape={self.shape}, dtype={self.dtype})"

    def __len__(self):
        return len(self._data)

    # ------------------------------------------------------------------ refusals
    def __array__(self, *args, **kwargs):
        raise HostRoundTrip("np.asarray of a device array (a host round-trip); use xp.asnumpy outside the step")

    def _scalar(self, *args):
        raise HostRoundTrip("a Python scalar out of a device array (float(), int(), bool(), .item())")

    __float__ = __int__ = __bool__ = __index__ = __complex__ = item = _scalar

    def tolist(self):
        raise HostRoundTrip(".tolist() of a device array (a host round-trip)")

    def __iter__(self):
        raise HostRoundTrip("a Python loop over the elements of a device array")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__" or ufunc.__name__ not in FUNCTIONS:
            raise HostRoundTrip(f"NumPy ufunc {ufunc.__name__}.{method} on a device array (use xp)")
        if "out" in kwargs:
            kwargs["out"] = tuple(_unwrap(o) for o in kwargs["out"])
        return _call(getattr(ufunc, method), inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        raise HostRoundTrip(f"NumPy function np.{func.__name__} on a device array (use xp.{func.__name__})")

    # ------------------------------------------------------------------ arithmetic and indexing
    __add__, __radd__ = _binary(operator.add)
    __sub__, __rsub__ = _binary(operator.sub)
    __mul__, __rmul__ = _binary(operator.mul)
    __truediv__, __rtruediv__ = _binary(operator.truediv)
    __matmul__, __rmatmul__ = _binary(operator.matmul)
    __pow__, __rpow__ = _binary(operator.pow)
    __lt__, __gt__ = _binary(operator.lt)[0], _binary(operator.gt)[0]
    __le__, __ge__ = _binary(operator.le)[0], _binary(operator.ge)[0]
    __eq__, __ne__ = _binary(operator.eq)[0], _binary(operator.ne)[0]
    __and__, __rand__ = _binary(operator.and_)
    __or__, __ror__ = _binary(operator.or_)
    __iadd__, __isub__ = _inplace(operator.iadd), _inplace(operator.isub)
    __imul__, __itruediv__ = _inplace(operator.imul), _inplace(operator.itruediv)
    __hash__ = None

    def __neg__(self):
        return DeviceArray(-self._data)

    def __abs__(self):
        return DeviceArray(abs(self._data))

    def __invert__(self):
        return DeviceArray(~self._data)

    def __getitem__(self, key):
        return _wrap(self._data[_index(key)])

    def __setitem__(self, key, value):
        self._data[_index(key)] = _unwrap(value)

    def __getattr__(self, name):
        if name not in METHODS:
            raise HostRoundTrip(f"array method .{name} is not among the device array's methods")
        method = getattr(self._data, name)
        return lambda *args, **kwargs: _call(method, args, kwargs)


class StrictNamespace:
    """``strict.<fn>``: CuPy's NumPy-compatible functions over DeviceArrays, and explicit transfers."""

    __name__ = "strict_xp"

    def __getattr__(self, name):
        if name in CONSTANTS:
            return getattr(np, name)
        if name not in FUNCTIONS:
            raise HostRoundTrip(f"xp.{name} is not in the device namespace (a NumPy-only function?)")
        if name == "erf":
            from scipy.special import erf as fn
        else:
            fn = getattr(np, name)
        return lambda *args, **kwargs: _call(fn, args, kwargs)

    @staticmethod
    def asarray(value, dtype=None):
        """Host data (or a device array) onto the device: the one explicit way in."""
        if isinstance(value, DeviceArray):
            return DeviceArray(value._data if dtype is None else value._data.astype(dtype, copy=False))
        if isinstance(value, numbers.Number) or isinstance(value, (np.ndarray, np.generic, list, tuple)):
            return DeviceArray(np.array(value, dtype=dtype))
        raise HostRoundTrip(f"xp.asarray of {type(value).__name__}")

    @staticmethod
    def asnumpy(value):
        """A device array back to the host: the one explicit way out."""
        return value._data.copy() if isinstance(value, DeviceArray) else np.asarray(value)


strict = StrictNamespace()
