"""Layer classes as people write them, read into the layer form of nnparity.verify.load.

- parameters in a dict (``self.params``, ``self.parameters``: name -> array) or in attributes
  (``W``, ``b``, ``weights``, ``bias``, ``gamma``, ...), created in the constructor or at the first
  forward (a lazy ``FullyConnected(n_out)``, whose ``self.W = None`` or ``self.params = {}`` the first
  call fills);
- gradients in a dict (``self.grads``, ``self.gradients``: keyed by the parameter's name or ``d<name>``)
  or in attributes (``dW``, ``grad_W``, ``W_grad``, ``grad_weights``, ...); a backward(grad_out,
  learning_rate) that applies its own update is called with learning_rate = 1024 and the gradient
  is read from the change it made, then undone;
- the forward is ``forward(x)`` or ``__call__(x)``; the constructor is built by nnparity.verify.construct
  (a hook, or small sizes from the argument names).

A parameter with no gradient found is a failed check (exit 1), never a pass: comparing only dx
would let a wrong parameter gradient through.
"""
from __future__ import annotations

import copy
import inspect
import re
import types

import numpy as np

from nnparity.verify import probes
from nnparity.verify.calls import call
from nnparity.verify.construct import build
from nnparity.verify.load import OpError, OpUnderTest, layer_parameters
from nnparity.verify.rebind import with_array_module
from nnparity.verify.report import Check
from scratch.policy import FD_TOL

PARAM_DICTS = ("params", "parameters")
GRAD_DICTS = ("grads", "gradients", "grad", "dparams", "d_params", "param_grads")
PARAM_WORDS = ("weight", "bias", "kernel", "gamma", "beta", "theta")
LEARNING_RATE_NAMES = ("learning_rate", "lr", "eta", "alpha", "step_size")
DEFAULT_WIDTH = 4
LEARNING_RATE = 1024.0     # a power of two: the change it makes divides back exactly


def _floats(v) -> bool:
    return isinstance(v, np.ndarray) and v.dtype.kind == "f"


def _is_gradient_name(name: str) -> bool:
    low = name.lower()
    return low.startswith(("d", "grad", "g_", "delta", "nabla")) or low.endswith(("_grad", "_grads", "grad"))


def _is_parameter_name(name: str) -> bool:
    """W, b, W1, Wxh, b_h, weights, bias, kernel, gamma, ... (not value, buffer, dW)."""
    low = name.lower().lstrip("_")
    if _is_gradient_name(low):
        return False
    return bool(re.fullmatch(r"[wbuv](_?[a-z]{0,2}\d*)", low)) or low.startswith(PARAM_WORDS)


def find_parameters(inst, only_named: bool = False) -> tuple[dict, str]:
    """(name -> live float array, where they live: "self.params" or "attributes")."""
    attrs = vars(inst)
    for key in PARAM_DICTS:
        d = attrs.get(key)
        if isinstance(d, dict) and any(_floats(v) for v in d.values()):
            return {k: v for k, v in d.items() if _floats(v)}, f"self.{key}"
    found = {k: v for k, v in attrs.items() if _floats(v) and not _is_gradient_name(k)
             and (_is_parameter_name(k) or not only_named)}
    return found, "attributes"


def _candidates(name: str) -> list[str]:
    return [f"d{name}", f"d_{name}", f"grad_{name}", f"{name}_grad", f"grad{name}", f"{name}_gradient",
            f"d{name.capitalize()}", f"grad_{name.lower()}"]


def find_gradients(inst, names) -> dict:
    """name -> the gradient the last backward left (None where none is found)."""
    attrs = vars(inst)
    dicts = [attrs[k] for k in GRAD_DICTS if isinstance(attrs.get(k), dict)]
    for k in GRAD_DICTS:
        method = getattr(inst, k, None)
        if callable(method) and not dicts:
            try:
                value = method()
            except Exception:
                continue
            if isinstance(value, dict):
                dicts.append(value)
    out = {}
    for name in names:
        value = None
        for d in dicts:
            value = next((d[c] for c in [name] + _candidates(name) if c in d), None)
            if value is not None:
                break
        if value is None:
            value = next((attrs[c] for c in _candidates(name) if isinstance(attrs.get(c), np.ndarray)), None)
        out[name] = value
    return out


def _forward_of(inst):
    fwd = getattr(inst, "forward", None)
    if callable(fwd):
        return fwd, "forward"
    return inst.__call__, "__call__"


def _one_input(forward) -> bool:
    """A layer's forward takes one batch (a loss takes two)."""
    try:
        params = [p for p in inspect.signature(forward).parameters.values()
                  if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return False
    return len(params) == 1


def _learning_rate_arg(backward) -> str | None:
    try:
        params = [p for p in inspect.signature(backward).parameters.values()
                  if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return None
    return params[1].name if len(params) == 2 and params[1].name.lower() in LEARNING_RATE_NAMES else None


def _copy_user(inst):
    """A deep copy of the user's instance (its arrays its own; modules and classes shared)."""
    memo = {id(v): v for v in vars(inst).values() if isinstance(v, (types.ModuleType, type))}
    return copy.deepcopy(inst, memo)


class _Reading:
    """What was learnt about the user's class from one instance."""

    def __init__(self, cls, shown, seed):
        self.cls, self.shown, self.seed = cls, shown, seed
        self.inst, self.how = build(cls, shown, seed)
        self.params, self.where = find_parameters(self.inst)
        # a layer: parameters now, or placeholders (self.W = None) its first call fills
        self.layer = _one_input(_forward_of(self.inst)[0]) and (bool(self.params) or _placeholders(self.inst))
        self.width = self._width() if self.layer else None
        self.forward_name = _forward_of(self.inst)[1]
        self.learning_rate = _learning_rate_arg(self.inst.backward)

    def _width(self) -> int:
        given = getattr(self.inst, "inputs", None)
        if isinstance(given, int):
            return given
        tried = []
        candidates = [v.shape[k] for v in self.params.values() if v.ndim == 2 for k in (0, 1)]
        candidates += [v.shape[0] for v in self.params.values() if v.ndim == 1]    # gamma, beta: one per feature
        for width in candidates + [DEFAULT_WIDTH]:
            if width in tried:
                continue
            tried.append(width)
            trial = _copy_user(self.inst)
            state = np.random.get_state()
            np.random.seed(self.seed)     # weights drawn at the first call: reproducible
            try:
                call(f"{self.shown}.{_forward_of(trial)[1]}(x)", _forward_of(trial)[0], np.ones((probes.ROWS, width)))
            except OpError:
                continue
            finally:
                np.random.set_state(state)
            if self.where == "attributes":     # parameters made by the first call join those of the constructor
                made, where = find_parameters(trial, only_named=True)
                if where != "attributes":      # a dict the first call filled
                    self.params, self.where = made, where
                else:
                    self.params = {**made, **{n: getattr(trial, n) for n in self.params}}
            self.inst = trial
            return width
        raise OpError(f"{self.shown}: its forward takes no batch x of shape (N, D), one row per sample, for D in "
                      f"{tried} (column-vector layers, W @ x with x of shape (D, 1), are not read); give an "
                      f"`inputs` attribute (the input width) or a hook:\n    def {self.cls.__name__}_example(rng):\n"
                      f"        return {self.cls.__name__}(4, 3)")


def _placeholders(inst) -> bool:
    """Parameters its first call makes: self.W = None, or an empty self.params = {}."""
    return any((v is None and _is_parameter_name(k)) or (k in PARAM_DICTS and v == {})
               for k, v in vars(inst).items())


def _put(user, where: str, name: str, value) -> None:
    if where == "attributes":
        setattr(user, name, value)
    else:
        getattr(user, where[len("self."):])[name] = value


def _adapter(reading: _Reading, ungraded=()):
    """A class in load.py's layer form around a copy of the user's instance. Its parameters are its
    own attributes ``_p_<name>`` (so torch_ref can swap in tensors), put into the user's instance
    before each call; ``xp`` is the array module the user's forward is run with. ``ungraded``:
    parameters without a gradient, left out of ``parameters()`` (the review fails them instead)."""
    names, where = list(reading.params), reading.where
    lr_arg = reading.learning_rate

    class ClassLayer:
        kind = "layer"
        inputs = reading.width

        def __init__(self, inst):
            self.user, self.xp, self._grads = inst, np, {}
            live, _ = find_parameters(inst, only_named=where == "attributes")
            for n in names:
                setattr(self, f"_p_{n}", live[n])

        @classmethod
        def example(cls, rng):
            return cls(_copy_user(reading.inst))

        def __copy__(self):
            return type(self)(_copy_user(self.user))

        def parameters(self):
            return {n: getattr(self, f"_p_{n}") for n in names if n not in ungraded}

        def _sync(self):
            for n in names:
                _put(self.user, where, n, getattr(self, f"_p_{n}"))

        def forward(self, x):
            self._sync()
            fn, _ = _forward_of(self.user)
            fn = types.MethodType(with_array_module(fn.__func__, self.xp), self.user) if self.xp is not np else fn
            return fn(x)

        def backward(self, grad_out):
            self._sync()
            if lr_arg is None:
                dx = self.user.backward(grad_out)
                self._grads = find_gradients(self.user, names)
                return dx
            before = {n: getattr(self, f"_p_{n}").copy() for n in names}
            dx = self.user.backward(grad_out, LEARNING_RATE)
            live, _ = find_parameters(self.user, only_named=where == "attributes")
            self._grads = {n: (before[n] - live[n]) / LEARNING_RATE for n in names}
            for n in names:
                getattr(self, f"_p_{n}")[...] = before[n]
            return dx

        def gradients(self):
            return self._grads

    ClassLayer.__name__ = ClassLayer.__qualname__ = reading.cls.__name__
    return ClassLayer


def needs_adapter(cls) -> bool:
    """A class with a backward that may hold parameters (scratch's own Dense is read by load.py)."""
    from scratch.layers import Dense

    return callable(getattr(cls, "backward", None)) and not issubclass(cls, Dense)


def class_op(cls, shown: str, seed: int = 0) -> OpUnderTest | None:
    """The class as a layer op, or None when it has no parameters (an activation, a loss)."""
    reading = _Reading(cls, shown, seed)
    if not reading.layer or not reading.params or _plain(reading):
        return None
    grads = _probe_gradients(reading)
    missing = [n for n in reading.params if grads.get(n) is None]
    notes = [f"form: layer class, parameters in {reading.where} ({', '.join(reading.params)}), called through "
             f"{reading.forward_name}; {reading.how}"]
    if reading.learning_rate:
        notes.append(f"backward(grad_out, {reading.learning_rate}) updates the parameters itself: called with "
                     f"{reading.learning_rate} = {LEARNING_RATE:g}, each gradient read as the change it made ÷ "
                     f"{LEARNING_RATE:g} (then undone)")
    op = OpUnderTest(_adapter(reading, missing), "layer", shown, notes=notes)
    op.review = _review(missing, shown)
    return op


def _plain(reading: _Reading) -> bool:
    """The documented protocol (load.py) reads every parameter and its gradient."""
    inst = reading.inst
    if not (callable(getattr(reading.cls, "example", None)) and isinstance(getattr(inst, "inputs", None), int)
            and callable(getattr(inst, "forward", None))):
        return False
    return set(layer_parameters(inst)) >= set(reading.params)


def _probe_gradients(reading: _Reading) -> dict:
    inst = _adapter(reading).example(None)
    x = np.random.default_rng(reading.seed).normal(size=(probes.ROWS, reading.width))
    out = call(f"{reading.shown}.{reading.forward_name}(x)", inst.forward, x)
    call(f"{reading.shown}.backward(grad_out)", inst.backward, np.ones(np.shape(out)))
    return inst.gradients()


def _review(missing: list, shown: str):
    """Parameter diagnoses named "d<name>: ..."; a failed check for each parameter without a gradient."""
    def hook(evaluation, checks):
        for c in checks:     # the report's diagnosis names the gradient
            if c.diagnosis and not c.ok and c.wrt != evaluation.op.wrt:
                c.diagnosis = f"d{c.wrt}: {c.diagnosis}"
        if not missing:
            return checks
        evaluation.findings.append(f"warning: {shown} has parameters without a gradient: {', '.join(missing)} "
                                   f"(looked for self.grads[name], d<name>, grad_<name>, <name>_grad)")
        return checks + [Check(name=f"dL/d{n} (no gradient found)", wrt=n, reference="none", tol=FD_TOL, ok=False,
                               error=float("inf"), groups={}, compared=0,
                               diagnosis=f"no gradient found for parameter {n}: it is not checked, and a layer "
                                         f"with an unchecked parameter never passes") for n in missing]
    return hook
