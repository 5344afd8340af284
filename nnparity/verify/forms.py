"""Every form a hand-derived gradient is written in, read into the op form of nnparity.verify.load.

- a class with forward/backward (load.py);
- a function and its derivative, ``f(z)`` with ``df`` (function_pairs.py): elementwise, row-wise,
  a Jacobian or a vector-Jacobian product, in z or in a = f(z);
- a loss function, ``loss(pred, target)`` with ``loss_grad(pred, target)``, or one function
  returning ``(value, dpred)`` (loss_functions.py);
- a forward/backward pair with a cache, ``X_forward(*inputs) -> (out, cache)`` and
  ``X_backward(dout, cache) -> (d_input_1, ...)``, paired by the course's names (course_pairs.py),
  or a course loss ``f(x, y, mask) -> (loss, dx)`` (layer_functions.py).

The derivative is ``grad`` when given, else f's own boolean flag (FLAGS: ``f(z, deriv=True)``), else
found in the function's module by the usual names in any case (PARTNERS), and the report says which
it took. A pair written for one number (``math.exp``) runs element by element.
"""
from __future__ import annotations

import functools
import importlib
import inspect

import numpy as np

from nnparity.verify.calls import call
from nnparity.verify.classes import class_op, needs_adapter
from nnparity.verify.course_pairs import layer_ops, loss_ops
from nnparity.verify.derivatives import Derivative, required_parameters
from nnparity.verify.function_pairs import pair_ops
from nnparity.verify.layer_functions import course_op, read_pair
from nnparity.verify import probes
from nnparity.verify.load import OpError, OpUnderTest, load_op, resolve_op
from nnparity.verify.loss_functions import loss_op, with_index_targets
from nnparity.verify.method_pairs import is_method_pair, method_pair_ops
from nnparity.verify.networks import read_network

PARTNERS = ("{f}_derivative", "{f}_prime", "{f}_grad", "d{f}", "d_{f}", "{f}_backward", "{f}_gradient",
            "{f}_deriv", "{f}_der", "{f}_d", "{f}Prime", "{f}Derivative", "{f}Gradient", "{f}Grad",
            "deriv_{f}", "derivative_{f}", "grad_{f}", "gradient_{f}",
            "{f}_jacobian", "{f}Jacobian", "jacobian_{f}")
# a boolean keyword that turns f into its own derivative: nonlin(x, deriv=True)
FLAGS = ("deriv", "derivative", "grad", "gradient", "backward", "prime", "derivate")
ACCEPTED = ("f(z) with its derivative found by name (f_prime, f_derivative, df, ...), given with --grad, "
            "or a flag f(z, deriv=True); a loss(pred, target) with loss_grad; X_forward with X_backward; a class "
            "with forward and backward; or a whole network (loss(X, y) -> (loss, grads), backprop(x, y)) "
            "— e.g.  def sigmoid(z): return 1 / (1 + np.exp(-z))  |  "
            "def sigmoid_prime(z): s = sigmoid(z); return s * (1 - s)")


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
    names = vars(module) if module is not None else {}
    folded = {}
    for key, value in names.items():    # sigmoidprime, Sigmoid_Prime: the same partner
        if callable(value) and not inspect.isclass(value):
            folded.setdefault(key.lower(), key)
    for candidate in tried:
        key = candidate if callable(names.get(candidate)) else folded.get(candidate.lower())
        if key is not None and key != name:
            return names[key], f"found by name: {key}"
    where = getattr(module, "__name__", "its module")
    raise OpError(f"no derivative found for {name} in {where}: tried {', '.join(tried)} (any case) and "
                  f"a flag {name}(z, deriv=True); name it so or give it with --grad MODULE:FUNCTION "
                  f"— e.g.  def {name}(z): ...  |  def {name}_prime(z): ...")


def derivative_flag(fn) -> str | None:
    """The name of fn's boolean keyword parameter that makes it return its derivative, if any."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    for p in params:
        if p.name.lower() in FLAGS and isinstance(p.default, bool) and p.default is False:
            return p.name
    return None


def flagged(fn, flag: str):
    """fn called with its derivative flag set, named as such, its signature without the flag."""
    wrapped = functools.partial(fn, **{flag: True})
    wrapped.__name__ = f"{getattr(fn, '__name__', 'f')}({flag}=True)"
    return wrapped


def _grad(grad, module, name: str, patterns=PARTNERS, fn=None):
    if grad is None:
        flag = derivative_flag(fn) if fn is not None else None
        if flag is not None:
            return flagged(fn, flag), f"its own flag: {name}(..., {flag}=True)"
        return find_partner(module, name, patterns)
    fn, shown, _ = _resolve(grad)
    if not callable(fn) or inspect.isclass(fn):
        raise OpError(f"--grad: {shown} is not a function")
    return fn, f"given: {shown}"


def load_network(target, seed: int = 0):
    """The whole-network form of ``target`` (nnparity.verify.networks), None when it has none."""
    obj, shown, _ = _resolve(target)
    return read_network(obj, shown, seed)


WRT_FORMS = ("--wrt applies to a loss of two arguments (loss(p, q) with its gradient, or a class with "
             "loss(y, y_pred) and grad)")


def load_ops(target, grad=None, kind: str | None = None, convention: str | None = None, seed: int = 0,
             wrt: str | None = None) -> list:
    """The ops to verify for ``target`` (a class, a function, or their import path); OpError
    (one line: the CLI's exit 2) when it cannot be verified as given. ``wrt``: a loss's prediction
    argument, the one differentiated (default: read from the names)."""
    obj, shown, module = _resolve(target)
    if inspect.isclass(obj) and kind is None and is_method_pair(obj):
        if grad is not None:
            raise OpError(f"--grad applies to functions; {shown} holds its derivative as a method")
        return method_pair_ops(obj, shown, seed, convention, wrt)
    if wrt is not None and not (inspect.isfunction(obj) and len(required_parameters(obj)) == 2):
        raise OpError(f"{WRT_FORMS}; {shown} is not one")
    if inspect.isclass(obj):
        if grad is not None or convention is not None:
            raise OpError(f"--grad and --convention apply to functions; {shown} is a class")
        if kind in (None, "layer") and needs_adapter(obj):
            op = class_op(obj, shown, seed)
            if op is not None:
                return [op]
        return [_plain_class_op(target, kind)]
    if isinstance(obj, tuple) and len(obj) == 2 and all(callable(o) for o in obj):
        forward, backward = obj
        module = inspect.getmodule(forward)
        name = getattr(forward, "__name__", "forward")
        return [course_op(read_pair(forward, backward, module, name.split("_forward")[0], seed), shown,
                          "given as a pair", seed)]
    if not inspect.isfunction(obj) and not inspect.isbuiltin(obj):
        raise OpError(f"{shown} is a {type(obj).__name__}: expected a class with forward and backward, or {ACCEPTED}")
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
            raise OpError(f"{shown}{_signature(obj)}: not a form verify reads; expected {ACCEPTED}, or a course "
                          f"loss(x, ...) -> (loss, dx) ({err})") from None
    if len(required_parameters(obj)) == 2:
        return [loss_op(obj, shown, lambda: _grad(grad, module, name, fn=obj), seed, wrt)]
    if len(required_parameters(obj)) != 1:
        raise OpError(f"{shown}{_signature(obj)}: not a form verify reads; expected {ACCEPTED}")
    fn, how = _grad(grad, module, name, fn=obj)
    if len(required_parameters(fn)) == 1 and _takes_numbers_only(obj, name):
        obj, fn = element_by_element(obj), element_by_element(fn)
        how += "; both take one number (math.exp), run element by element"
    d = Derivative.of(fn, getattr(fn, "__name__", "df"))
    if len(required_parameters(fn)) not in (1, 2):
        raise OpError(f"{d.name}{_signature(fn)}: a derivative takes z (or a = f(z)), or the "
                      f"upstream gradient and z: df(z) or df(dout, z) — e.g.  def {name}(z): ...  |  "
                      f"def {name}_prime(z): ...")
    return pair_ops(obj, d, shown, how, convention, seed)


def _plain_class_op(target, kind):
    """load_op's op; a loss class that takes only class indices gets them; a class whose kind is read
    from its shape and whose output mixes columns (a softmax class) is checked row-wise, as a vector
    op; the report says so."""
    op = with_index_targets(load_op(target, kind))
    declared = getattr(op.cls, "kind", None) is not None or getattr(op.cls, "elementwise", None) is not None
    if kind is None and op.kind == "activation" and not declared and _mixes_columns(op):
        op = OpUnderTest(op.cls, "vector", op.target, notes=[
            "mode: row-wise, checked as a vector op (a Jacobian per row): f(z)[:, 0] changes with the other "
            "columns, so it is not elementwise (set kind = 'vector' or pass --kind vector to say so)"])
    return op


def _mixes_columns(op) -> bool:
    """f(z)[:, 0] differs from f(z[:, :1]): the output of column 0 reads the other columns."""
    z = probes.elementwise_probes(0)[0].x
    try:
        full = np.asarray(call("forward", op.new().forward, z.copy()), dtype=np.float64)
        first = np.asarray(call("forward", op.new().forward, z[:, :1].copy()), dtype=np.float64)
    except (OpError, TypeError, ValueError):
        return False
    return (full.shape == z.shape and first.shape == (z.shape[0], 1)
            and not np.allclose(full[:, :1], first, rtol=1e-12, atol=1e-300, equal_nan=True))


def _takes_numbers_only(f, name: str) -> bool:
    """f refuses an array but maps a number to a number (written with math.exp)."""
    try:
        call(name, f, np.full((2, 2), 0.5))
        return False
    except OpError:
        pass
    try:
        value = call(name, f, 0.5)
    except OpError:
        return False
    return isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)


def element_by_element(fn):
    """fn of one number applied to every element of an array (its signature kept for reading)."""
    @functools.wraps(fn)
    def each(z, *args, **kw):
        return np.vectorize(lambda v: fn(float(v), *args, **kw), otypes=[np.float64])(z)
    return each


def _signature(fn) -> str:
    try:
        return str(inspect.signature(fn))
    except (TypeError, ValueError):
        return "(...)"
