"""Verify a user's hand-written backward against torch autograd, and against finite differences.

Three references, on the same probes (nnparity.verify.probes) and the same hand-written gradients
(nnparity.verify.op_check.evaluate):

1. ``torch_module``: autograd of the user's torch forward, when the class gives a
   ``torch_module(**params)`` classmethod (the convention torch_ref.model.torch_activation uses
   to put a user's op into a spec's torch twin). Its forward is also checked against the NumPy
   forward: a torch twin of a different function would make the comparison meaningless.
2. ``your forward on torch``: autograd of the user's own NumPy forward run on torch tensors, when
   it only uses operations that exist under the same names in torch. Tried as: constructed with
   ``xp=torch`` (maths written against ``self.xp``); then with the NumPy names the forward reads
   from its module (``np``, ``from numpy import exp``) rebound to torch. Used only when it builds an
   autograd graph and reproduces the NumPy forward on every probe to 1e-12; otherwise the report
   says why not and goes on without it.
3. finite differences, always (nnparity.verify.finite_diff).

Nothing here computes a derivative itself: torch's autograd does, on the user's own forward.
"""
from __future__ import annotations

import types

import numpy as np
import torch

from nnparity.verify.autograd.course_twins import attach_course_twin
from nnparity.verify.autograd.networks import verify_network
from nnparity.verify.autograd.twins import attach_named_twin
from nnparity.verify.diagnosis import GroupData, compare
from nnparity.verify.edges import edge_checks
from nnparity.verify.forms import load_network, load_ops
from nnparity.verify.load import OpUnderTest, layer_parameters
from nnparity.verify.op_check import (Evaluation, KINKS_BY_ONE_SIDED, clone, evaluate, fd_checks, fd_reference_text,
                                      kink_reference, new_report, reference_checks, reviewed)
from nnparity.verify.probes import checked_seed
from nnparity.verify.report import Check, OpReport
from nnparity.verify.child import isolated
from nnparity.verify.time_limit import PROBE_TIME_LIMIT, ProbeTimeout, checked_limit, configured, current_limit, time_limit
from scratch.policy import TOLERANCE

TORCH_TOLERANCE = TOLERANCE["float64"]


def torch_tolerance(evaluation: Evaluation) -> float:
    """float64's tolerance, or float32's where the user's forward computes in float32."""
    return TOLERANCE.get(evaluation.precision, TORCH_TOLERANCE)
REF_MODULE = "torch_module() autograd"
REF_OWN = "your forward on torch"


class PathUnavailable(Exception):
    """This torch reference cannot be used for the op (the reason is the message)."""


def _tensor(a, grad=False):
    return torch.tensor(np.asarray(a, dtype=np.float64), dtype=torch.float64, requires_grad=grad)


def _numpy(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy().astype(np.float64)
    return np.asarray(value, dtype=np.float64)


def _autograd(evaluation: Evaluation, run, call) -> tuple[dict, np.ndarray]:
    """Gradients of the same scalar the hand-written backward was given, by torch autograd.

    ``call(x_tensor, params)`` runs a torch forward (params: name -> tensor, layers only).
    Returns (wrt -> gradient, the forward's value).
    """
    op, probe = evaluation.op, run.probe
    x = _tensor(probe.x, grad=True)
    params = {}
    if op.kind == "layer":
        params = {n: _tensor(v, grad=True) for n, v in layer_parameters(evaluation.template).items()}
    if op.kind == "loss":
        out = call(x, _tensor(probe.target))
        scalar = out
    else:
        out = call(x, params)
        if not isinstance(out, torch.Tensor):
            raise PathUnavailable(f"forward returned {type(out).__name__}, not a tensor")
        scalar = (out * _tensor(run.upstream)).sum()
    if not isinstance(scalar, torch.Tensor) or not scalar.requires_grad:
        raise PathUnavailable("forward did not build an autograd graph (it left torch on the way)")
    scalar.backward()
    grads = {op.wrt: _numpy(x.grad) if x.grad is not None else np.zeros(probe.x.shape)}
    for name, t in params.items():
        grads[name] = _numpy(t.grad) if t.grad is not None else np.zeros(t.shape)
    return grads, _numpy(out)


def _run_path(evaluation: Evaluation, call, where: str):
    """Autograd on every group; (expected gradients per group, forward values per group)."""
    expected, forwards = [], []
    for run in evaluation.runs:
        grads, out = evaluation.recorder(where, _autograd, evaluation, run, call)
        expected.append(grads)
        forwards.append(out)
    return expected, forwards


def _forward_check(evaluation: Evaluation, forwards: list, reference: str) -> Check:
    """Your NumPy forward against a torch forward, group by group."""
    groups = [GroupData(run.probe.group, np.asarray(run.output, dtype=np.float64), f, run.probe.x
                        if np.shape(f) == run.probe.x.shape else None)
              for run, f in zip(evaluation.runs, forwards)]
    tol = torch_tolerance(evaluation)
    cmp = compare(groups, tol, kind="forward", wrt=evaluation.op.wrt)
    diagnosis = (None if cmp.ok else cmp.diagnosis if cmp.diagnosis.startswith("not checked")
                 else f"your NumPy forward and the torch forward compute different functions: {cmp.diagnosis}")
    return Check(name=f"forward vs {reference}", wrt="output", reference=reference, tol=tol,
                 ok=cmp.ok, error=cmp.error, groups=cmp.groups, worst=cmp.worst, diagnosis=diagnosis,
                 compared=cmp.compared, checked=cmp.compared >= cmp.enough or not cmp.error <= tol)


# ------------------------------------------------------------------------ 1. torch_module


def torch_module_checks(evaluation: Evaluation, report: OpReport) -> list[Check]:
    op = evaluation.op
    factory = getattr(op.cls, "torch_module", None)
    if factory is None:
        report.paths.append("torch_module(): not given (add a classmethod returning the torch twin to check "
                            "against it and to use the op in specs)")
        return []
    try:
        with time_limit(current_limit(), "torch_module()"):
            module = factory(**op.params)
    except ProbeTimeout:
        raise
    except Exception as err:
        report.paths.append(f"torch_module(): not used, it raised {type(err).__name__}: {err}")
        return []
    if op.kind == "layer":
        def call(x, params):
            return module(x, **params)
    elif op.kind == "loss":
        def call(pred, target):
            return module(pred, target)
    else:
        def call(x, params):
            return module(x)
    try:
        expected, forwards = _run_path(evaluation, call, "torch_module()")
    except ProbeTimeout:
        raise
    except Exception as err:
        report.paths.append(f"torch_module(): not used, its forward failed: {type(err).__name__}: {err}")
        return []
    twin = getattr(op.cls, "twin_label", None)     # a function form's namesake in torch (twins.py)
    if twin:
        report.paths.append(f"reference: autograd of {twin} (torch's own, matched by the function's name)")
    else:
        report.paths.append(f"reference: autograd of torch_module() ({type(module).__name__})")
    checks = [_forward_check(evaluation, forwards, twin or "torch_module()")]
    return checks + reference_checks(evaluation, expected, f"{twin} autograd" if twin else REF_MODULE,
                                     torch_tolerance(evaluation))


# ----------------------------------------------------------------- 2. your forward on torch


def _rebind_numpy(fn):
    """fn with the NumPy names it reads from its module's globals bound to torch (None: nothing to rebind)."""
    func = getattr(fn, "__func__", fn)
    if not isinstance(func, types.FunctionType):
        return None
    g = func.__globals__
    mapping = {}
    for name in func.__code__.co_names:
        value = g.get(name)
        if value is np:
            mapping[name] = torch
        elif isinstance(value, np.ufunc) or (callable(value) and (getattr(value, "__module__", "") or "")
                                            .startswith("numpy")):
            twin = getattr(torch, getattr(value, "__name__", name), None)
            if twin is not None:
                mapping[name] = twin
    if not mapping:
        return None
    new = types.FunctionType(func.__code__, {**g, **mapping}, func.__name__, func.__defaults__, func.__closure__)
    return new


def _torch_twins(evaluation: Evaluation):
    """(label, make_call) candidates for running the user's NumPy forward on tensors."""
    op = evaluation.op
    cls_forward = op.cls.forward
    rebound = _rebind_numpy(cls_forward)
    if op.kind == "layer":
        def layer_call(rebind):
            def make():
                inst = clone(evaluation.template)
                if hasattr(inst, "xp"):
                    inst.xp = torch
                attrs = {}
                for name, arr in layer_parameters(inst).items():
                    key = next((k for k, v in vars(inst).items() if v is arr), None)
                    if key is None:
                        raise PathUnavailable(f"parameter {name!r} is not an attribute that can hold a tensor")
                    attrs[name] = key
                forward = types.MethodType(rebound, inst) if rebind else inst.forward

                def call(x, params):
                    for name, key in attrs.items():
                        setattr(inst, key, params[name])
                    return forward(x)
                return call
            return make
        yield "parameters as tensors" + (", xp=torch" if hasattr(evaluation.template, "xp") else ""), layer_call(False)
        if rebound is not None:
            yield "parameters as tensors, NumPy names in forward rebound to torch", layer_call(True)
        return

    def plain_call(inst, rebind):
        forward = types.MethodType(rebound, inst) if rebind else inst.forward
        if op.kind == "loss":
            return lambda pred, target: forward(pred, target)
        return lambda x, params: forward(x)

    try:
        with_xp = op.new(xp=torch)
    except ProbeTimeout:
        raise
    except Exception:
        with_xp = None
    if with_xp is not None:
        yield "xp=torch", lambda: plain_call(op.new(xp=torch), False)
    if rebound is not None:
        label = ("xp=torch, " if with_xp is not None else "") + "NumPy names in forward rebound to torch"
        yield label, lambda: plain_call(op.new(xp=torch) if with_xp is not None else op.new(), True)


def own_forward_checks(evaluation: Evaluation, report: OpReport, kinks_by: str = KINKS_BY_ONE_SIDED) -> list[Check]:
    reasons = []
    for label, make in _torch_twins(evaluation):
        try:
            call = make()
            expected, forwards = _run_path(evaluation, call, "your forward on torch")
        except ProbeTimeout:
            raise
        except Exception as err:
            reasons.append(f"{label}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
            continue
        fwd = _forward_check(evaluation, forwards, "torch")
        if not fwd.ok:
            reasons.append(f"{label}: on torch it computes something else (forward differs by {fwd.error:.1e})")
            continue
        report.paths.append(f"reference: autograd of your NumPy forward run on torch tensors ({label})")
        return reference_checks(evaluation, expected, f"{REF_OWN} ({label})", torch_tolerance(evaluation), skip_kinks=True,
                                kink_reference=kinks_by)
    if not reasons:
        reasons.append("its constructor takes no xp and its forward reads no NumPy names to rebind")
    report.paths.append("your forward on torch tensors: not used (" + "; ".join(reasons) + ")")
    return []


# ------------------------------------------------------------------------------- the API


def verify(target, kind: str | None = None, seed: int = 0, grad=None, convention: str | None = None,
           time_limit_s: float | None = PROBE_TIME_LIMIT, wrt: str | None = None) -> OpReport:
    """Check a hand-written gradient three ways; the report as an OpReport.

    ``target``: a class with forward/backward, a function (with its derivative ``grad``, found by
    name when not given; a loss; an ``X_forward`` with its ``X_backward``), a (forward, backward)
    pair, or the import path ``module:name`` of one. ``convention``: "z" or "a", how a function's
    derivative is called (default: read from its values). ``wrt``: a loss's prediction argument, the
    one differentiated (default: read from its parameter names). Raises nnparity.verify.load.OpError when
    it cannot be verified as given (the CLI's exit 2), TypeError or ValueError for an argument out
    of range. ``time_limit_s``: seconds each call into the op may run, at most
    nnparity.verify.time_limit.MAX_TIME_LIMIT; None: no limit. The run is a child process
    (nnparity.verify.child): what the op does there (os._exit, a hang past the limit) is an OpError.
    """
    checked_seed(seed)
    time_limit_s = checked_limit(time_limit_s)
    return isolated(_verify, target, kind, seed, grad, convention, time_limit_s, wrt)


def _verify(target, kind, seed, grad, convention, time_limit_s, wrt) -> OpReport:
    report = None
    with configured(time_limit_s):
        plain = grad is None and convention is None and kind is None and wrt is None
        network = load_network(target, seed) if plain else None
        if network is not None:
            return verify_network(network, seed)
        ops = load_ops(target, grad, kind, convention, seed, wrt)
        for op in ops:
            report = _merged(report, op, verify_op(op, seed, time_limit_s))
    return report


def _merged(report: OpReport | None, op: OpUnderTest, part: OpReport) -> OpReport:
    """``part`` added to ``report`` (None: the first op), its checks labelled by the op's variant."""
    if report is None:
        return part
    label = getattr(op, "variant", None) or ", ".join(f"{k}={v:g}" for k, v in op.params.items())
    for c in part.checks:
        c.name = f"[{label}] {c.name}"
    report.checks += part.checks
    report.paths += [p for p in part.paths if p not in report.paths]
    report.findings += [f for f in part.findings if f not in report.findings]
    report.failed_to_run |= part.failed_to_run
    return report


def verify_op(op: OpUnderTest, seed: int = 0, time_limit_s: float | None = PROBE_TIME_LIMIT) -> OpReport:
    """One op (nnparity.verify.load's form) checked against every reference that applies."""
    with configured(time_limit_s):
        return _verify_op(op, seed, time_limit_s)


def _verify_op(op: OpUnderTest, seed: int, time_limit_s: float | None) -> OpReport:
    attach_named_twin(op)
    attach_course_twin(op)
    evaluation = evaluate(op, seed, time_limit_s=time_limit_s)
    report = new_report(evaluation)
    checks, twin, own = [], [], []
    if not report.failed_to_run:
        twin = torch_module_checks(evaluation, report)
        own = own_forward_checks(evaluation, report, kink_reference(op, bool(twin)))
        checks += twin + own
        if not twin and not own:
            report.paths.append("no torch reference ran (see above): finite differences are the only exact "
                                "reference here")
    report.paths.append(fd_reference_text(evaluation))
    checks += fd_checks(evaluation, twin_ran=bool(twin))
    if (not twin or evaluation.unreferenced) and not report.failed_to_run:
        checks += edge_checks(evaluation)
    report.checks = reviewed(evaluation, checks)
    return report
