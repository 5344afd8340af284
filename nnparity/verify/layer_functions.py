"""A layer written as a forward/backward pair with a cache (the classic course assignments):
``X_forward(x, *params) -> (out, cache)`` and ``X_backward(dout, cache) -> (dx, d_param_1, ...)``.

The first input is the batch x (N, D); the others are the layer's parameters, their shapes
guessed from their names (w, W, weight: (D, M); b, bias: (M,)), or all inputs given by a function
``X_example(rng)`` in the same module returning them as a tuple. Each gradient backward returns is
checked, named by its position and the forward's parameter name. Torch twin: autograd of the
forward run on tensors (nnparity.verify.autograd).
"""
from __future__ import annotations

import inspect

import numpy as np

from nnparity.verify import probes
from nnparity.verify.calls import array, call
from nnparity.verify.derivatives import required_parameters
from nnparity.verify.load import OpError, OpUnderTest
from nnparity.verify.rebind import with_array_module

D, M = 4, 3
ORDINALS = ("1st", "2nd", "3rd") + tuple(f"{k}th" for k in range(4, 20))


def guess_shape(name: str) -> tuple | None:
    low = name.lower()
    if low in ("w", "weight", "weights") or (low.startswith("w") and low[1:].isdigit()):
        return (D, M)
    if low in ("b", "bias", "biases") or (low.startswith("b") and low[1:].isdigit()):
        return (M,)
    return None


def example_inputs(forward, names: list, rng) -> list:
    """The forward's inputs: from ``X_example(rng)``, else x (N, D) and parameters by name."""
    base = forward.__name__[: -len("_forward")] if forward.__name__.endswith("_forward") else forward.__name__
    hook = getattr(inspect.getmodule(forward), f"{base}_example", None)
    if callable(hook):
        values = call(f"{base}_example(rng)", hook, rng)
        return [np.array(v, dtype=np.float64) for v in (values if isinstance(values, tuple) else (values,))]
    inputs = [rng.normal(0.0, 1.0, size=(probes.ROWS, D))]
    for name in names[1:]:
        shape = guess_shape(name)
        if shape is None:
            raise OpError(f"cannot guess the shape of {forward.__name__}'s input {name!r} (known: w, W, weight "
                          f"as (D, M); b, bias as (M,)); define {base}_example(rng) returning all inputs")
        inputs.append(rng.normal(0.0, 0.5, size=shape))
    return inputs


def _gradients(out, names: list, bname: str) -> list:
    grads = list(out) if isinstance(out, (tuple, list)) else [out]
    if len(grads) != len(names):
        raise OpError(f"{bname} returned {len(grads)} gradient(s) for the {len(names)} input(s) "
                      f"({', '.join(names)}) of the forward: expected one per input, in order")
    return grads


def _read(forward, backward, names, fname, bname, rng):
    """The example inputs, after one call of each function: bad input (OpError) if their form is wrong."""
    inputs = example_inputs(forward, names, rng)
    out = call(f"{fname}{tuple(names)}".replace("'", ""), forward, *[v.copy() for v in inputs])
    if not (isinstance(out, tuple) and len(out) == 2):
        raise OpError(f"{fname} returned {type(out).__name__}; expected (out, cache)")
    value = array(f"{fname}'s out", out[0])
    grads = _gradients(call(f"{bname}(dout, cache)", backward, np.ones_like(value), out[1]), names, bname)
    for name, g in zip(names, grads):
        array(f"{bname}'s d{name}", g)
    return inputs


def _adapter(forward, backward, names: list, bname: str, inputs: list):
    params = names[1:]

    class LayerFunctions:
        kind = "layer"

        def __init__(self, values, xp=np):
            self.xp = xp
            self.inputs = int(values[0].shape[1])
            for name, value in zip(params, values[1:]):
                setattr(self, f"_in_{name}", np.array(value, dtype=np.float64))
            self._grads = {}

        @classmethod
        def example(cls, rng):
            return cls(inputs)

        def parameters(self):
            return {name: getattr(self, f"_in_{name}") for name in params}

        def gradients(self):
            return self._grads

        def forward(self, x):
            fn = with_array_module(forward, self.xp)
            out, self.cache = fn(x, *[getattr(self, f"_in_{name}") for name in params])
            return out

        def backward(self, grad_out):
            grads = _gradients(backward(grad_out, self.cache), names, bname)
            self._grads = dict(zip(params, grads[1:]))
            return grads[0]

    LayerFunctions.__qualname__ = LayerFunctions.__name__ = forward.__name__
    return LayerFunctions


def layer_op(forward, backward, target: str, how: str, seed: int = 0) -> OpUnderTest:
    """The pair as a layer op whose checks are named by position and parameter name."""
    fname, bname = getattr(forward, "__name__", "forward"), getattr(backward, "__name__", "backward")
    names = required_parameters(forward)
    if not names:
        raise OpError(f"{fname}{inspect.signature(forward)}: a layer forward takes the batch x first")
    if len(required_parameters(backward)) != 2:
        raise OpError(f"{bname}{inspect.signature(backward)}: expected {bname}(dout, cache)")
    inputs = _read(forward, backward, names, fname, bname, np.random.default_rng(seed))
    cls = _adapter(forward, backward, names, bname, inputs)
    notes = [f"form: forward/backward with a cache, {fname} and {bname} ({how})",
             "inputs: " + ", ".join(f"{n} {tuple(v.shape)}" for n, v in zip(names, inputs))
             + f"; {bname} returns " + ", ".join(f"d{n}" for n in names)]
    op = OpUnderTest(cls, "layer", target, notes=notes, input_name=names[0])
    op.review = _review(names, bname)
    return op


def _review(names: list, bname: str):
    """Checks renamed 'dw (2nd returned) vs ...', diagnoses prefixed with the same."""
    position = {n: ORDINALS[i] for i, n in enumerate(names)}

    def hook(evaluation, checks):
        for c in checks:
            if c.wrt in position and c.name.startswith(f"dL/d{c.wrt} "):
                label = f"d{c.wrt} ({position[c.wrt]} returned)"
                c.name = label + c.name[len(f"dL/d{c.wrt}"):]
                if c.diagnosis:
                    c.diagnosis = f"{label.replace(' returned)', f' returned by {bname})')}: {c.diagnosis}"
        return checks
    return hook
