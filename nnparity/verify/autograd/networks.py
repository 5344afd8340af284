"""A whole network's hand-derived gradients (nnparity.verify.networks) against torch autograd of the
user's own loss code run on tensors, and against finite differences.

The user's code is run with NumPy's names rebound to ``torch._numpy`` (torch's NumPy-compatible
layer: the same functions and methods, X.dot(W), keepdims, fancy indexing, on tensors) and each
parameter replaced by a tensor that requires grad; torch's autograd differentiates the loss it
returns. The reference is used only when that loss equals the NumPy loss to 1e-12; otherwise, or
when the code fails on tensors, the report says that no torch reference ran, and why.
"""
from __future__ import annotations

import numpy as np
import torch
import torch._numpy as tnp

from nnparity.verify.calls import call
from nnparity.verify.network_check import check, fd_checks, fd_path, finite_differences, new_report, user_gradients
from nnparity.verify.networks import NetworkUnderTest
from nnparity.verify.report import Check, OpReport
from scratch.policy import TOLERANCE

TORCH_TOLERANCE = TOLERANCE["float64"]
REFERENCE = "your loss on torch"


class NoReference(Exception):
    """The torch reference could not run (the message says why)."""


def autograd_gradients(net: NetworkUnderTest) -> dict:
    """name -> d loss / d parameter by torch autograd of the user's own loss code."""
    if net.torch_loss is None:
        raise NoReference("this form gives no loss to run on tensors")
    tensors = {n: torch.tensor(np.array(p), dtype=torch.float64, requires_grad=True) for n, p in net.params.items()}
    values = {n: tnp.asarray(t) for n, t in tensors.items()}
    try:
        out = call("your loss on torch tensors", net.torch_loss, tnp, values)
    except Exception as err:
        raise NoReference(str(err)) from None
    scalar = out.tensor if isinstance(out, tnp.ndarray) else out
    if not isinstance(scalar, torch.Tensor) or scalar.numel() != 1 or not scalar.requires_grad:
        raise NoReference("the loss left torch on the way (no autograd graph)")
    value, expected = float(scalar.detach()), call("your loss", net.loss)
    if not abs(value - expected) <= TORCH_TOLERANCE * max(1.0, abs(expected)):
        raise NoReference(f"on tensors the loss is {value!r}, with NumPy {expected!r}: it computes something else")
    try:
        scalar.reshape(()).backward()
    except RuntimeError as err:
        if "inplace operation" in str(err):
            raise NoReference("autograd failed: your loss modifies in place an array its gradient needs "
                              "(e.g. probs /= probs.sum(...) after probs = np.exp(...))") from None
        raise NoReference(f"autograd failed: {str(err).splitlines()[0]}") from None
    return {n: (t.grad.numpy() if t.grad is not None else np.zeros(t.shape)) for n, t in tensors.items()}


def torch_checks(net: NetworkUnderTest, got: dict, report: OpReport, kinks: dict) -> list[Check]:
    """Autograd's gradients compared away from the kinks finite differences found: there autograd of
    the user's forward gives whatever its ops' convention is (torch.maximum splits a tie ½/½)."""
    try:
        expected = autograd_gradients(net)
    except NoReference as err:
        report.paths.append(f"no torch reference ran: your loss on torch tensors failed ({err}); "
                            f"finite differences alone check it")
        return []
    report.paths.append("reference: autograd of your loss code run on torch tensors (NumPy names rebound to "
                        "torch._numpy)")
    checks = []
    for n in net.order:
        if got[n] is None:
            continue
        at_kink = kinks[n] if np.shape(got[n]) == kinks[n].shape else np.zeros(kinks[n].shape, bool)
        c = check(net, n, got[n], expected[n], REFERENCE, TORCH_TOLERANCE, ~at_kink)
        if at_kink.any():
            c.notes.append(f"{int(at_kink.sum())} element(s) at a kink left out (autograd there follows how the "
                           f"forward is written)")
        checks.append(c)
    return checks


def verify_network(net: NetworkUnderTest, seed: int = 0) -> OpReport:
    """Every parameter's gradient against torch autograd (where it runs) and finite differences."""
    got = user_gradients(net)
    report = new_report(net, seed, got)
    fd = finite_differences(net)
    checks = torch_checks(net, got, report, {n: fd[n].kink for n in net.order})
    report.paths.append(fd_path(fd))
    checks += fd_checks(net, got, fd=fd)
    order = {n: i for i, n in enumerate(net.order)}
    report.checks = sorted(checks, key=lambda c: order.get(c.wrt, 0))
    return report
