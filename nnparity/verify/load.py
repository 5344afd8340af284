"""Load a user's op for verification: resolve its import path, validate it, tell its kind.

A verifiable op is a class in the small-object form of scratch's ops (see examples/custom_ops.py):

- activation  elementwise: ``forward(z) -> a``, ``backward(grad_out) -> dL/dz``
- vector      row-wise (softmax-like): same signatures, backward is the Jacobian-vector product
- loss        ``forward(pred, target) -> scalar``, ``backward() -> dL/dpred``; class attribute
              ``domain = "probability"`` when predictions must lie in (0, 1) (default "real")
- layer       ``forward(x) -> out``, ``backward(grad_out) -> dL/dx``, storing parameter gradients;
              a classmethod ``example(rng)`` builds an instance with seeded parameters, an
              ``inputs`` attribute gives the input width, and the parameters are ``parameters()``
              (name -> live array) with ``gradients()``, or arrays ``<name>`` with ``grad_<name>``
              (as scratch.layers.Dense, whose subclasses need no ``example``).
A class called as ``op(x)`` (``__call__`` and no ``forward``) is read with ``__call__`` as its
forward, whatever its kind. Constructors may take ``xp`` (the array module, NumPy by default) and, for activations, the
``params`` defaults. The kind is the class attribute ``kind``, else inferred (scratch base class,
``example`` -> layer, a two-argument forward -> loss, ``elementwise = False`` -> vector).
Optionally ``torch_module(**params)``, a classmethod returning the torch twin (an nn.Module;
for a layer it is called as ``module(x, **parameters)``): torch_ref uses it as reference and in specs.
"""
from __future__ import annotations

import copy
import importlib
import inspect
from dataclasses import dataclass, field

import numpy as np

from nnparity.verify.errors import OpError
from nnparity.verify.time_limit import ProbeTimeout, current_limit, time_limit

KINDS = ("activation", "vector", "loss", "layer")
INPUT_NAME = {"activation": "z", "vector": "z", "loss": "pred", "layer": "x"}


# ------------------------------------------------------------------------------ loading


def resolve_op(target: str) -> type:
    """The class a ``module:Class`` import path names (the module must be importable)."""
    if not isinstance(target, str) or ":" not in target:
        raise OpError(f"expected an import path 'module:Class' or 'module:function' (e.g. examples.custom_ops:Swish, "
                      f"examples.function_ops:sigmoid), got {target!r}")
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise OpError(f"expected an import path 'module:Class' or 'module:function' (e.g. examples.custom_ops:Swish, "
                      f"examples.function_ops:sigmoid), got {target!r}")
    try:
        with time_limit(current_limit(), f"importing {module_name!r}"):
            module = importlib.import_module(module_name)
    except ProbeTimeout:
        raise
    except ModuleNotFoundError as err:
        raise OpError(f"cannot import module {module_name!r} ({err}); run from the directory that holds it "
                      f"or add that directory to PYTHONPATH") from None
    except Exception as err:  # the user's module failed while importing
        raise OpError(f"importing {module_name!r} raised {type(err).__name__}: {err}") from None
    _limit_finalizers(module)
    try:
        cls = getattr(module, attr)
    except AttributeError:
        names = sorted(n for n, v in vars(module).items() if inspect.isclass(v) and hasattr(v, "backward")
                       and v.__module__ == module.__name__)
        raise OpError(f"module {module_name!r} has no attribute {attr!r}; classes with a backward there: "
                      f"{', '.join(names) or 'none'}") from None
    return cls


FINALIZERS_OVERRUN: list = []   # the user's __del__ methods that ran past the time limit (then skipped)


def _limit_finalizers(module) -> None:
    """Each ``__del__`` of a class the user's module defines runs under the time limit too: Python
    calls it wherever an instance is dropped, between the calls that have one. One that runs past
    it is recorded in FINALIZERS_OVERRUN (an exception cannot leave a ``__del__``) and not run again."""
    for cls in list(vars(module).values()):
        if not (inspect.isclass(cls) and cls.__module__ == module.__name__ and "__del__" in vars(cls)):
            continue
        finalize = vars(cls)["__del__"]
        if getattr(finalize, "_time_limited", False):
            continue
        where = f"{cls.__qualname__}.__del__"

        def limited(self, finalize=finalize, where=where):
            if where in FINALIZERS_OVERRUN:
                return
            try:
                with time_limit(current_limit(), where):
                    finalize(self)
            except ProbeTimeout:
                FINALIZERS_OVERRUN.append(where)
        limited._time_limited = True
        limited.__module__, limited.__qualname__ = module.__name__, where   # what a report names
        cls.__del__ = limited


def call_as_forward(cls):
    """cls itself, or, when it has ``__call__`` but no ``forward``, a subclass whose forward is that
    very ``__call__`` (the same function: its signature and module names stay the user's)."""
    if not inspect.isclass(cls) or callable(getattr(cls, "forward", None)):
        return cls
    call = next((k.__dict__["__call__"] for k in cls.__mro__[:-1] if "__call__" in k.__dict__), None)
    if not inspect.isfunction(call):
        return cls
    return type(cls.__name__, (cls,), {"forward": call, "__module__": cls.__module__,
                                       "__qualname__": cls.__qualname__, "called_through": "__call__"})


def _check_class(cls, target: str) -> None:
    if not inspect.isclass(cls):
        raise OpError(f"{target} is a {type(cls).__name__}, not a class with forward and backward methods")
    missing = [m for m in ("forward", "backward") if not callable(getattr(cls, m, None))]
    if missing:
        raise OpError(f"{target} has no {' or '.join(missing)} method; a verifiable op is a class with "
                      f"forward(...) (or __call__) and backward(grad_out) (see examples/custom_ops.py)")
    for method in ("forward", "backward"):
        try:
            params = inspect.signature(getattr(cls, method)).parameters.values()
        except (TypeError, ValueError):
            continue
        keyword_only = [p.name for p in params if p.kind == p.KEYWORD_ONLY and p.default is p.empty]
        if keyword_only:
            raise OpError(f"{target}.{method} takes {', '.join(keyword_only)} as keyword-only; verify passes "
                          f"arrays by position (forward(z), backward(grad_out))")


def infer_kind(cls) -> str:
    """activation | vector | loss | layer, from ``cls.kind`` or the class's shape."""
    kind = getattr(cls, "kind", None)
    if kind in KINDS:
        return kind
    from scratch.activations import Activation
    from scratch.layers import Dense
    from scratch.losses import Loss

    if issubclass(cls, Loss):
        return "loss"
    if issubclass(cls, Dense) or callable(getattr(cls, "example", None)):
        return "layer"
    if issubclass(cls, Activation):
        return "activation" if getattr(cls, "elementwise", True) else "vector"
    try:
        params = [p for p in inspect.signature(cls.forward).parameters.values()
                  if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    if len(params) >= 3:    # self, pred, target
        return "loss"
    return "activation" if getattr(cls, "elementwise", True) else "vector"


def _accepts(fn, name: str) -> bool:
    if fn is object.__init__:
        return False
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    return name in sig.parameters or any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())


@dataclass
class OpUnderTest:
    """A user's op class and how to drive it."""

    cls: type
    kind: str
    target: str
    # for ops adapted from functions (nnparity.verify.forms):
    notes: list = field(default_factory=list)   # how the form was read, for the report
    input_name: str | None = None                # the input's name in the user's signature
    labels: bool = False                         # a loss whose targets are class indices
    review: object = None                        # callable(evaluation, checks) -> checks

    @property
    def wrt(self) -> str:
        return self.input_name or INPUT_NAME[self.kind]

    @property
    def domain(self) -> str:
        return getattr(self.cls, "domain", "real")

    @property
    def params(self) -> dict:
        """The activation's parameters (``params`` defaults), passed to torch_module too."""
        return dict(getattr(self.cls, "params", {}) or {}) if self.kind in ("activation", "vector") else {}

    def new(self, xp=np, rng=None):
        """A fresh instance (a layer: with the seeded example parameters)."""
        cls = self.cls
        if self.kind == "layer":
            from scratch.layers import Dense

            rng = rng if rng is not None else np.random.default_rng(0)
            if callable(getattr(cls, "example", None)):
                with time_limit(current_limit(), f"{self.target}.example(rng)"):
                    return cls.example(rng)
            if issubclass(cls, Dense):
                return cls(rng.normal(0.0, 0.5, size=(4, 3)), rng.normal(0.0, 0.5, size=3))
            raise OpError(f"{self.target}: a layer needs a classmethod example(rng) returning an instance "
                          f"with seeded parameters")
        kwargs = dict(self.params)
        if _accepts(cls.__init__, "xp"):
            kwargs["xp"] = xp
        elif xp is not np:
            raise OpError(f"{self.target} does not take xp")
        try:
            with time_limit(current_limit(), f"{self.target}() (its constructor)"):
                return cls(**kwargs)
        except TypeError as err:
            raise OpError(f"{self.target}: cannot construct it with {sorted(kwargs) or 'no arguments'} ({err}); "
                          f"an op's constructor takes no required arguments") from None


def load_op(target, kind: str | None = None) -> OpUnderTest:
    """Resolve and validate an op (an import path or a class); OpError when it cannot be verified."""
    if isinstance(target, str):
        cls = resolve_op(target)
        name = target
    else:
        cls, name = target, f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', target)}"
    cls = call_as_forward(cls)
    _check_class(cls, name)
    if kind is not None and kind not in KINDS:
        raise OpError(f"--kind: unknown {kind!r}; expected one of {', '.join(KINDS)}")
    op = OpUnderTest(cls, kind or infer_kind(cls), name)
    if getattr(cls, "called_through", None) == "__call__":
        op.notes.append(f"form: {cls.__name__} has no forward: called through __call__, its forward")
    if op.kind == "loss" and op.domain not in ("real", "probability"):
        raise OpError(f"{name}.domain: unknown {op.domain!r}; expected real or probability")
    if op.kind == "layer":
        inst = op.new()
        if getattr(inst, "inputs", None) is None:
            raise OpError(f"{name}: a layer needs an `inputs` attribute (its input width)")
    return op


# --------------------------------------------------------------------------- layer helpers


def clone(inst):
    """A copy of a layer whose arrays are its own (a shallow copy otherwise: xp stays a module)."""
    new = copy.copy(inst)
    for key, value in vars(inst).items():
        if isinstance(value, np.ndarray):
            setattr(new, key, value.copy())
    return new


def layer_parameters(inst) -> dict:
    """name -> live parameter array: ``parameters()``, else arrays with a ``grad_<name>`` attribute."""
    if callable(getattr(inst, "parameters", None)):
        return dict(inst.parameters())
    return {k: v for k, v in vars(inst).items()
            if isinstance(v, np.ndarray) and hasattr(inst, f"grad_{k}") and not k.startswith("grad_")}


def layer_gradients(inst, names) -> dict:
    """name -> gradient the last backward left: ``gradients()``, else ``grad_<name>``."""
    if callable(getattr(inst, "gradients", None)):
        grads = dict(inst.gradients())
    else:
        grads = {n: getattr(inst, f"grad_{n}", None) for n in names}
    return {n: grads.get(n) for n in names}
