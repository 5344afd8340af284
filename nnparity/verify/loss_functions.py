"""A loss written as functions: ``loss(pred, target) -> L`` with ``loss_grad(pred, target) -> dL/dpred``,
or one function returning ``(L, dL/dpred)`` (the classic ``softmax_loss(x, y)``).

Read on one random batch before any check: whether the targets are values of pred's shape or
class indices (N,) (tried when values make it raise), and whether predictions must be
probabilities (tried when real values give NaN, inf or an exception). Torch twin: autograd of
the loss run on tensors (nnparity.verify.autograd).
"""
from __future__ import annotations

import numpy as np

from nnparity.verify import probes
from nnparity.verify.calls import array, call
from nnparity.verify.derivatives import required_parameters
from nnparity.verify.load import OpError, OpUnderTest
from nnparity.verify.rebind import with_array_module


def _labels(target, xp):
    """Class indices as the array module indexes with (floats in the probes)."""
    return target.long() if hasattr(target, "long") else np.asarray(target).astype(np.int64)


def _value(out):
    return out[0] if isinstance(out, tuple) else out


def _read(f, name: str, seed: int):
    """(labels, domain, returns_pair) from calls on one probe group of each candidate kind."""
    tries = [(False, "real"), (False, "probability"), (True, "real")]
    first_error = None
    for labels, domain in tries:
        p = (probes.label_probes(seed) if labels else probes.loss_probes(seed, domain))[0]
        target = p.target.astype(np.int64) if labels else p.target
        try:
            out = call(f"{name}(pred, target)", f, p.x.copy(), target.copy())
            value = array(f"{name}(pred, target)", _value(out))
        except OpError as err:
            first_error = first_error or err
            continue
        if value.size == 1 and np.isfinite(value).all():
            return labels, domain, isinstance(out, tuple) and len(out) == 2
        first_error = first_error or OpError(f"{name}(pred, target) returned shape {value.shape}, expected a scalar")
    raise first_error


def _check_gradient(fn, what: str, labels: bool, domain: str, seed: int) -> None:
    """The gradient has pred's shape on one probe group: bad input (OpError) otherwise."""
    if not callable(fn) or len(required_parameters(fn)) != 2:
        raise OpError(f"{what}: a loss gradient takes (pred, target)")
    p = (probes.label_probes(seed) if labels else probes.loss_probes(seed, domain))[0]
    target = p.target.astype(np.int64) if labels else p.target
    out = call(what, fn, p.x.copy(), target.copy())
    array(what, out[1] if isinstance(out, tuple) else out, p.x.shape)


def loss_op(f, target: str, find_grad, seed: int = 0) -> OpUnderTest:
    """The loss as an op; ``find_grad()`` gives (gradient function, how found) when f returns no pair."""
    name = getattr(f, "__name__", "loss")
    labels, domain, pair = _read(f, name, seed)
    grad, how = (None, "it returns (value, gradient)") if pair else find_grad()
    gname = getattr(grad, "__name__", name)
    _check_gradient(f if pair else grad, f"{name}(pred, target)[1]" if pair else f"{gname}(pred, target)",
                    labels, domain, seed)

    class LossFunction:
        kind = "loss"

        def __init__(self, xp=np):
            self.xp = xp

        def forward(self, pred, tgt):
            self.pred, self.target = pred, _labels(tgt, self.xp) if labels else tgt
            out = with_array_module(f, self.xp)(self.pred, self.target)
            self.grad = out[1] if pair else None
            return _value(out)

        def backward(self):
            if pair:
                return self.grad
            return grad(self.pred, self.target)

    LossFunction.domain = domain
    LossFunction.__qualname__ = LossFunction.__name__ = name
    notes = [f"form: loss function {name}" + ("" if pair else f" and its gradient {gname}") + f" ({how})",
             "targets: " + ("class indices (N,)" if labels else "values of pred's shape")
             + ("; predictions are probabilities in (0, 1)" if domain == "probability" else "")]
    params = required_parameters(f)
    return OpUnderTest(LossFunction, "loss", target, notes=notes, input_name=params[0] if params else None,
                       labels=labels)
