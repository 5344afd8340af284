"""Check a whole network's hand-derived gradients (nnparity.verify.networks) against central finite
differences of its loss, one parameter at a time, and build its report. A parameter whose gradient
is missing is a failed check (exit 1), never a pass. nnparity.verify.autograd.networks adds autograd.

Checks run from the output back, so the report's diagnosis names the first wrong parameter met
going backwards, where the slip sits when the parameters above it agree.
"""
from __future__ import annotations

import numpy as np

from nnparity.verify.calls import array, call
from nnparity.verify.diagnosis import GroupData, compare
from nnparity.verify.finite_diff import scalar_derivative
from nnparity.verify.load import OpError
from nnparity.verify.networks import NetworkUnderTest
from nnparity.verify.report import Check, OpReport
from scratch.policy import FD_TOL

FD_REFERENCE = "finite differences"
MAX_ELEMENTS = 4000      # finite differences call the loss 20 times per element
SAMPLED = 24             # elements per parameter differenced, at random, in a network larger than that


def user_gradients(net: NetworkUnderTest) -> dict:
    """name -> the user's gradient as float64 (None where none was given)."""
    return {n: None if g is None else array(f"the gradient {net.labels[n]}", g)
            for n, g in net.gradients().items()}


def finite_differences(net: NetworkUnderTest) -> dict:
    """name -> FDResult of the loss with respect to each live parameter (restored whatever happens)."""
    samples = _samples(net)
    saved = {n: p.copy() for n, p in net.params.items()}
    fd = {}
    try:
        with np.errstate(all="ignore"):
            for name in net.order:
                fd[name] = scalar_derivative(lambda: (v := call("the loss", net.loss), abs(v)), net.params[name],
                                             only=samples.get(name))
    except OpError as err:
        raise OpError(f"{net.target}: while its parameters were perturbed by about 1e-6, {err}") from None
    finally:
        for n, p in net.params.items():
            p[...] = saved[n]
    return fd


def _samples(net: NetworkUnderTest) -> dict:
    """name -> the elements to difference (SAMPLED of each, seeded) when the network has more than
    MAX_ELEMENTS; empty when every element is differenced."""
    if sum(p.size for p in net.params.values()) <= MAX_ELEMENTS:
        return {}
    rng = np.random.default_rng(0)
    samples = {}
    for name, p in net.params.items():
        mask = np.zeros(p.size, bool)
        mask[rng.choice(p.size, size=min(SAMPLED, p.size), replace=False)] = True
        samples[name] = mask.reshape(p.shape)
    return samples


def sampling_note(fd) -> str | None:
    """What finite differences covered, when they sampled."""
    if fd.sampled is None:
        return None
    return (f"finite differences at {int(fd.sampled.sum())} of {fd.sampled.size} elements, drawn at random "
            f"(the network has more than {MAX_ELEMENTS} parameter elements, at 20 loss calls each)")


def fd_path(fd: dict) -> str:
    """The report's line on the finite-difference reference."""
    if all(r.sampled is None for r in fd.values()):
        return "reference: finite differences (central, float64, every parameter element)"
    return f"reference: finite differences (central, float64, {SAMPLED} elements of each parameter, drawn at random)"


def _label(net, name) -> str:
    return net.labels.get(name, name)


def missing_check(net: NetworkUnderTest, name: str) -> Check:
    return Check(name=f"{_label(net, name)} (no gradient given)", wrt=name, reference="none", tol=FD_TOL,
                 ok=False, error=float("inf"), groups={}, compared=0,
                 diagnosis=f"{_label(net, name)}: no gradient given for parameter {name}: it is not checked, "
                           f"and a network with an unchecked parameter never passes")


def check(net: NetworkUnderTest, name: str, got, expected, reference: str, tol: float, usable=None) -> Check:
    """One parameter's gradient against one reference, named as the user names it."""
    label = _label(net, name)
    group = GroupData("random", got, np.asarray(expected, dtype=np.float64), net.params[name], usable)
    cmp = compare([group], tol, kind="network", batch=net.batch, wrt=name)
    diagnosis = f"{label}: {cmp.diagnosis}" if cmp.diagnosis else None
    return Check(name=f"{label} vs {reference}", wrt=name, reference=reference, tol=tol, ok=cmp.ok,
                 error=cmp.error, groups=cmp.groups, worst=cmp.worst, diagnosis=diagnosis, compared=cmp.compared,
                 checked=cmp.compared >= cmp.enough or not cmp.error <= tol)


def fd_checks(net: NetworkUnderTest, got: dict, tol: float = FD_TOL, fd: dict | None = None) -> list[Check]:
    """One check per parameter against finite differences (``fd``: computed already)."""
    fd = finite_differences(net) if fd is None else fd
    checks = []
    for name in net.order:
        if got[name] is None:
            checks.append(missing_check(net, name))
            continue
        res = fd[name].resolve(tol)
        c = check(net, name, got[name], res.value, FD_REFERENCE, tol, res.usable)
        differenced = res.sampled if res.sampled is not None else True
        skipped = int((~res.usable & differenced).sum())
        if sampling_note(res):
            c.notes.append(sampling_note(res))
        if skipped:
            c.notes.append(f"{skipped} element(s) skipped: a kink within the step, or rounding hides the derivative")
        checks.append(c)
    return checks


def new_report(net: NetworkUnderTest, seed: int, got: dict) -> OpReport:
    """The report's head: what was evaluated, how the form was read, parameters without a gradient."""
    report = OpReport(target=net.target, kind="network", seed=seed,
                      probes={"parameters": int(sum(p.size for p in net.params.values()))},
                      probe_text={"parameters": f"loss at {net.inputs}"})
    report.paths += net.notes
    missing = [n for n in net.order if got[n] is None]
    if missing:
        report.findings.append("warning: parameters without a gradient: " + ", ".join(missing))
    return report


def verify_network_fd(net: NetworkUnderTest, seed: int = 0) -> OpReport:
    """Finite differences only: the torch-free half."""
    got = user_gradients(net)
    report = new_report(net, seed, got)
    fd = finite_differences(net)
    report.paths.append(fd_path(fd))
    report.checks = fd_checks(net, got, fd=fd)
    return report
