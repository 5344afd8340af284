"""Verify a hand-derived backward without torch: run the op on the probes, compare with finite
differences. nnparity.verify.autograd adds the torch references on the same evaluation. What a
verifiable op looks like: nnparity.verify.load.
"""
from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass, field

import numpy as np

from nnparity.verify import probes
from nnparity.verify.calls import run_user
from nnparity.verify.diagnosis import GroupData, compare
from nnparity.verify.edges import KINDS as EDGE_KINDS, edge_checks, subgradients
from nnparity.verify.finite_diff import FDResult, elementwise_derivative, jacobian_rows, scalar_derivative
from nnparity.verify.forms import load_network, load_ops
from nnparity.verify.load import OpError, OpUnderTest, clone, layer_gradients, layer_parameters
from nnparity.verify.network_check import verify_network_fd
from nnparity.verify.report import Check, OpReport
from nnparity.verify.time_limit import PROBE_TIME_LIMIT, time_limit
from scratch.policy import FD_PRECISIONS, FD_TOL, fd_tolerance


# ------------------------------------------------------------------------------ evaluation


class _Recorder:
    """Calls into user code (nnparity.verify.calls.run_user: fresh copies in, copies out),
    turning its warnings into findings instead of errors, each call within a time limit
    (seconds; None: unlimited)."""

    def __init__(self, limit: float | None = PROBE_TIME_LIMIT):
        self.findings: list[str] = []
        self.limit = limit

    def __call__(self, where: str, fn, *args):
        # the same floating-point mode whatever the caller's: overflow, 0/0, x/0 warn (and are recorded)
        with warnings.catch_warnings(record=True) as caught, time_limit(self.limit, where), \
                np.errstate(over="warn", divide="warn", invalid="warn", under="ignore"):
            warnings.simplefilter("always")
            result = run_user(where, fn, *args)
        for w in caught:
            text = f"{w.category.__name__} in {where}: {w.message}"
            if text not in self.findings:
                self.findings.append(text)
        return result


@dataclass
class GroupRun:
    """One probe group evaluated: the hand-written gradients, and finite differences of them."""

    probe: probes.Probe
    upstream: np.ndarray | None = None         # grad_out fed to backward (None for losses)
    output: object = None                      # the NumPy forward's output (array, or the loss value)
    got: dict = field(default_factory=dict)     # wrt -> hand-written gradient
    inputs: dict = field(default_factory=dict)  # wrt -> the values it is taken at
    fd: dict = field(default_factory=dict)      # wrt -> FDResult
    alternatives: dict = field(default_factory=dict)  # wrt -> {message: array}
    error: str | None = None                   # the op raised on this group


@dataclass
class Evaluation:
    """An op run on every probe group, shared by the finite-difference and torch checks."""

    op: OpUnderTest
    seed: int
    runs: list[GroupRun]
    template: object = None                    # a layer's example instance (parameter values)
    recorder: _Recorder = field(default_factory=_Recorder)
    unreferenced: int = 0      # points a torch reference left out that finite differences cannot resolve
    precision: str = "float64"  # the dtype the forward computes in (float32 code: finite differences to match)
    reference_not_finite: dict = field(default_factory=dict)  # (group, wrt) -> where a torch reference was NaN/inf

    @property
    def findings(self) -> list[str]:
        return self.recorder.findings


def _array(value, what: str) -> np.ndarray:
    if value is None:
        raise TypeError(f"{what} returned None")
    if np.iscomplexobj(value):
        raise TypeError(f"{what} returned complex values (the imaginary part is not dropped)")
    if isinstance(value, (str, bytes, dict, set)) or hasattr(value, "__next__"):
        raise OpError(f"{what} returned {type(value).__name__}, not an array of numbers")
    try:
        return np.array(value, dtype=np.float64)     # a copy: the op's own array may change on its next call
    except (TypeError, ValueError) as err:
        raise OpError(f"{what} returned {type(value).__name__}, not an array of numbers ({err})") from None


def forward_precision(value) -> str:
    """float64, or the narrower float dtype an op's forward returned (its values carry that rounding)."""
    dtype = getattr(value, "dtype", None)
    if dtype is None or dtype.kind != "f" or dtype.itemsize >= 8:
        return "float64"
    return dtype.name


def precision_text(precision: str) -> str:
    """The report's line for a forward computing below float64."""
    return (f"your forward computes in {precision}: finite differences at {precision} precision "
            f"(steps around eps^(1/3) = {float(np.finfo(precision).eps) ** (1 / 3):.0e}, "
            f"tol {fd_tolerance(precision):.0e})")


def _note_precision(evaluation: "Evaluation", raw) -> None:
    precision = forward_precision(raw)
    if precision == "float64" or evaluation.precision != "float64":
        return
    if precision not in FD_PRECISIONS:
        raise OpError(f"{evaluation.op.target}: the forward computes in {precision}, where finite differences "
                      f"cannot resolve a derivative (their error is about {float(np.finfo(precision).eps) ** (2 / 3):.0e}); "
                      f"compute in float32 or float64 to verify it (e.g. z.astype(np.float32))")
    evaluation.precision = precision


def _scalar(value, what: str) -> float:
    arr = _array(value, what)
    if arr.size != 1:
        raise TypeError(f"{what} returned shape {arr.shape}, expected a scalar")
    return float(arr.reshape(()))


def _loss_backward(inst):
    fn = inst.backward
    try:
        required = [p for p in inspect.signature(fn).parameters.values() if p.default is p.empty
                    and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        required = []
    return fn(1.0) if required else fn()


def evaluate(op: OpUnderTest, seed: int = 0, finite_differences: bool = True,
             time_limit_s: float | None = PROBE_TIME_LIMIT) -> Evaluation:
    """Run forward and backward on every probe group (and finite differences, unless told not to);
    each call into the op within ``time_limit_s`` seconds (ProbeTimeout, an OpError, past it)."""
    recorder = _Recorder(time_limit_s)
    template = op.new(rng=np.random.default_rng(seed)) if op.kind == "layer" else None
    if op.kind == "activation":
        groups = probes.elementwise_probes(seed)
    elif op.kind == "vector":
        groups = probes.rowwise_probes(seed)
    elif op.kind == "loss":
        targets = getattr(op.cls, "targets", "indices" if op.labels else "values")
        groups = probes.target_probes(seed, op.domain, targets, getattr(op.cls, "edge", probes.NEAR_EDGE))
    elif callable(getattr(op.cls, "probe_groups", None)):    # a course layer's own inputs
        groups = op.cls.probe_groups(seed)
    else:
        groups = probes.layer_probes(int(template.inputs), seed)
    evaluation = Evaluation(op, seed, [GroupRun(p) for p in groups], template, recorder)
    if op.kind == "activation":
        _check_elementwise(op, groups[0].x, recorder)
    raised: dict[str, list[str]] = {}
    for run in evaluation.runs:
        try:
            with np.errstate(all="ignore"):   # our own sums of whatever the op returned
                _run_group(evaluation, run)
                if finite_differences:
                    _fd_group(evaluation, run)
        except OpError:
            raise
        except Exception as err:  # the user's op raised: a finding, not a crash
            run.error = f"{type(err).__name__}: {err}"
            raised.setdefault(run.error, []).append(run.probe.group)
    for error, where in raised.items():
        recorder.findings.append(f"the op raised on the {', '.join(where)} probes: {error}")
    return evaluation


def _check_elementwise(op, z, recorder) -> None:
    try:
        full = _array(recorder("forward", op.new().forward, z.copy()), "forward")
        col = _array(recorder("forward", op.new().forward, z[:, :1].copy()), "forward")
    except Exception:
        return  # evaluate() reports it
    if full.shape == z.shape and col.shape == (z.shape[0], 1) and not np.allclose(full[:, :1], col, rtol=1e-12,
                                                                                  atol=1e-300, equal_nan=True):
        raise OpError(f"{op.target}: checked as an elementwise activation, but f(z)[:, 0] changes with the other "
                      f"columns; use --kind vector for a row-wise function (or set kind = 'vector')")


def _run_group(evaluation: Evaluation, run: GroupRun) -> None:
    op, recorder, probe, seed = evaluation.op, evaluation.recorder, run.probe, evaluation.seed
    wrt = op.wrt
    if op.kind in ("activation", "vector"):
        inst = op.new()
        raw = recorder("forward", inst.forward, probe.x.copy())
        _note_precision(evaluation, raw)
        run.output = _array(raw, "forward")
        run.upstream = probes.upstream_gradient(run.output.shape, seed, probe.group)
        run.got[wrt] = _array(recorder("backward", inst.backward, run.upstream.copy()), "backward")
        run.inputs[wrt] = probe.x
    elif op.kind == "loss":
        inst = op.new()
        raw = recorder("forward", inst.forward, probe.x.copy(), probe.target.copy())
        _note_precision(evaluation, raw)
        run.output = _scalar(raw, "forward")
        run.got[wrt] = _array(recorder("backward", _loss_backward, inst), "backward")
        run.inputs[wrt] = probe.x
    else:
        inst = clone(evaluation.template)
        raw = recorder("forward", inst.forward, probe.x.copy())
        _note_precision(evaluation, raw)
        run.output = _array(raw, "forward")
        run.upstream = probes.upstream_gradient(run.output.shape, seed, probe.group)
        run.got[wrt] = _array(recorder("backward", inst.backward, run.upstream.copy()), "backward")
        run.inputs[wrt] = probe.x
        params = layer_parameters(inst)
        for name, grad in layer_gradients(inst, params).items():
            if grad is None:
                raise TypeError(f"backward left no gradient for parameter {name!r}")
            run.got[name] = _array(grad, f"gradient of {name}")
            run.inputs[name] = np.array(params[name], dtype=np.float64)


def _fd_group(evaluation: Evaluation, run: GroupRun) -> None:
    op, recorder, probe, precision = evaluation.op, evaluation.recorder, run.probe, evaluation.precision
    wrt = op.wrt
    where = "forward (finite differences)"
    if op.kind == "activation":
        inst = op.new()
        fd = elementwise_derivative(lambda t: recorder(where, inst.forward, t), probe.x, precision=precision)
        run.fd[wrt] = _scaled(fd, run.upstream)
        return
    if op.kind == "vector":
        inst = op.new()
        z, w = probe.x.copy(), run.upstream
        run.fd[wrt] = scalar_derivative(_weighted_sum(recorder, where, inst.forward, z, w), z, precision=precision)
        try:
            jac = jacobian_rows(lambda t: recorder(where, inst.forward, t), probe.x.copy(), precision=precision)
            run.alternatives[wrt] = {
                "the Jacobian is transposed: backward computes J·g where Jᵀ·g is needed":
                    np.einsum("nck,nk->nc", jac, w),
                "backward uses only the Jacobian's diagonal (as if the function were elementwise): "
                "the cross terms Σ_j g_j ∂a_j/∂z_i are missing":
                    w * np.einsum("ncc->nc", jac),
            }
        except Exception:
            pass
        return
    if op.kind == "loss":
        inst = op.new()
        pred, target = probe.x.copy(), probe.target.copy()

        def fun():
            v = _scalar(recorder(where, inst.forward, pred, target), "forward")
            return v, abs(v)

        run.fd[wrt] = scalar_derivative(fun, pred, op.domain, precision)
        return
    inst = clone(evaluation.template)
    x = probe.x.copy()
    fun = _weighted_sum(recorder, where, inst.forward, x, run.upstream)
    run.fd[wrt] = scalar_derivative(fun, x, precision=precision)
    for name, param in layer_parameters(inst).items():
        if not isinstance(param, np.ndarray) or not param.flags.writeable:
            continue
        run.fd[name] = scalar_derivative(fun, param, precision=precision)


def _weighted_sum(recorder, where: str, forward, x, w):
    """fun() -> (Σ w·forward(x), Σ|w·forward(x)|): the scalar whose gradient in x (or in a parameter
    forward reads) is backward(w); x is read at each call, so perturbing it in place moves it."""
    def fun():
        out = _array(recorder(where, forward, x), "forward")
        return float(np.sum(w * out)), float(np.sum(np.abs(w * out)))
    return fun


def _scaled(fd: FDResult, w) -> FDResult:
    return FDResult(value=fd.value * w, estimate=fd.estimate * np.abs(w), kink=fd.kink)


# --------------------------------------------------------------------------------- checks


def _kinks(run: GroupRun, wrt: str, op: OpUnderTest) -> np.ndarray | None:
    """Elements at a kink: placed there by the probe, or found by finite differences."""
    fd = run.fd.get(wrt)
    mask = run.probe.kink_mask if wrt == op.wrt else None
    if fd is not None:
        mask = fd.kink if mask is None else (mask | fd.kink)
    return mask


def _batch(op: OpUnderTest, run: GroupRun):
    if op.kind == "loss":
        return run.probe.x.shape
    if op.kind == "layer":
        return (run.probe.x.shape[0], 1)
    return None


def _targets(run: GroupRun):
    """The targets shown beside each element (not class-index labels, which have another shape)."""
    t = run.probe.target
    return t if t is not None and t.shape == run.probe.x.shape else None


def _dout(op: OpUnderTest, run: GroupRun):
    """A layer's grad_out, for telling a backward that ignores it."""
    return run.upstream if op.kind == "layer" else None


def _error_check(name, wrt, reference, tol, runs) -> Check:
    raised: dict[str, list[str]] = {}
    for r in runs:
        if r.error:
            raised.setdefault(r.error, []).append(r.probe.group)
    text = "; ".join(f"{err} (on the {', '.join(groups)} probes)" for err, groups in raised.items())
    return Check(name=name, wrt=wrt, reference=reference, tol=tol, ok=False, error=float("inf"),
                 groups={r.probe.group: (float("inf") if r.error else None) for r in runs},
                 diagnosis=f"the op raised {text}", compared=0)


KINKS_BY_ONE_SIDED = ("finite differences compare them where they resolve the derivative, one-sided differences "
                      "below where not (no torch twin ran)")
KINKS_UNCOMPARED = ("finite differences compare them where they resolve the derivative; where not, nothing does "
                    "(no torch twin ran)")
KINKS_BY_TWIN = "the torch twin compares them with torch's subgradient"


def kink_reference(op: OpUnderTest, twin_ran: bool) -> str:
    """What compares the points finite differences and autograd of your forward leave out."""
    return KINKS_BY_TWIN if twin_ran else KINKS_BY_ONE_SIDED if op.kind in EDGE_KINDS else KINKS_UNCOMPARED


def fd_checks(evaluation: Evaluation, tol: float | None = None, twin_ran: bool = False) -> list[Check]:
    """One check per gradient (input, then each parameter) against finite differences, at the
    tolerance of the forward's precision unless ``tol`` is given; ``twin_ran``: a torch_module()
    reference compared the kinks they skip."""
    tol = fd_tolerance(evaluation.precision) if tol is None else tol
    with np.errstate(all="ignore"):
        return _fd_checks(evaluation, tol, kink_reference(evaluation.op, twin_ran))


def _fd_checks(evaluation: Evaluation, tol: float, kink_reference: str) -> list[Check]:
    op = evaluation.op
    names = _gradient_names(evaluation)
    checks = []
    for wrt in names:
        title = f"dL/d{wrt} vs finite differences"
        if any(r.error for r in evaluation.runs):
            checks.append(_error_check(title, wrt, "finite differences", tol, evaluation.runs))
            continue
        groups, kinks, unresolved = [], {}, {}
        for run in evaluation.runs:
            fd = run.fd[wrt].resolve(tol)
            groups.append(GroupData(run.probe.group, run.got[wrt], fd.value, run.inputs.get(wrt), fd.usable,
                                    _kinks(run, wrt, op), run.upstream if op.kind == "activation" else None,
                                    run.alternatives.get(wrt, {}), _targets(run), _dout(op, run)))
            if fd.kink.any():
                kinks[run.probe.group] = int(fd.kink.sum())
            if fd.unresolved.any():
                unresolved[run.probe.group] = int(fd.unresolved.sum())
        cmp = compare(groups, tol, kind=op.kind, batch=_batch(op, evaluation.runs[0]), wrt=wrt)
        notes = []
        if kinks:
            notes.append("kept away from kinks (one-sided slopes differ): skipped "
                         + ", ".join(f"{n} in {g}" for g, n in kinks.items())
                         + f"; {kink_reference}")
        if unresolved:
            notes.append("skipped where rounding or curvature hides the derivative at any step: "
                         + ", ".join(f"{n} in {g}" for g, n in unresolved.items()))
        checks.append(Check(name=title, wrt=wrt, reference="finite differences", tol=tol, ok=cmp.ok,
                            error=cmp.error, groups=cmp.groups, worst=cmp.worst, diagnosis=cmp.diagnosis,
                            notes=notes, compared=cmp.compared, checked=cmp.compared >= cmp.enough or not cmp.error <= tol))
    return checks


def _gradient_names(evaluation: Evaluation) -> list[str]:
    for run in evaluation.runs:
        if run.got:
            return list(run.got)
    return [evaluation.op.wrt]


def _reference_not_finite(run: GroupRun, wrt: str, expected: np.ndarray, tol: float = FD_TOL):
    """(agree, alone): where a torch reference is NaN or inf but your value is finite — and finite
    differences resolve it and agree with you (agree), or resolve nothing there (alone)."""
    odd = ~np.isfinite(expected) & np.isfinite(run.got[wrt])
    fd = run.fd.get(wrt)
    if fd is None or not odd.any():
        return odd & False, odd & False
    fd = fd.resolve(tol)
    value = np.nan_to_num(fd.value)
    close = np.abs(run.got[wrt] - value) <= tol * np.maximum(np.abs(value), 1e-300) + fd.estimate
    return odd & fd.usable & close, odd & ~fd.usable


def _differ(got: np.ndarray, expected: np.ndarray, tol: float) -> np.ndarray:
    """Elements beyond ``tol`` of the reference, relative to it or to its rms."""
    finite = expected[np.isfinite(expected)]
    rms = float(np.sqrt(np.mean(finite * finite))) if finite.size else 0.0
    return ~np.isclose(got, expected, rtol=tol, atol=tol * rms)


def _record_not_finite(evaluation: Evaluation, group: str, wrt: str, expected: np.ndarray) -> None:
    """Where a torch reference was NaN or inf (any of them), for edge_checks."""
    key = (group, wrt)
    here = ~np.isfinite(expected)
    before = evaluation.reference_not_finite.get(key)
    evaluation.reference_not_finite[key] = here if before is None or before.shape != here.shape else before | here


def reference_checks(evaluation: Evaluation, expected: list[dict], reference: str, tol: float,
                     skip_kinks: bool = False,
                     kink_reference: str = "left to torch_module() and finite differences") -> list[Check]:
    """Checks of the hand-written gradients against ``expected`` (one dict wrt -> array per group).

    ``skip_kinks``: leave out the kink probes and the points where finite differences found a kink
    (for autograd of the user's own forward, whose value there is an accident of how the forward
    is written: torch.abs has derivative 0 at 0, so autograd of a sigmoid built on exp(−|z|)
    gives 0 at z = 0, and torch.maximum splits ties ½/½)."""
    op = evaluation.op
    checks = []
    for wrt in _gradient_names(evaluation):
        title = f"dL/d{wrt} vs {reference}"
        if any(r.error for r in evaluation.runs):
            checks.append(_error_check(title, wrt, reference, tol, evaluation.runs))
            continue
        groups, skipped, unusable = [], 0, {"agree": 0, "alone": 0, "subgradient": 0}
        for run, exp in zip(evaluation.runs, expected):
            alts = run.alternatives.get(wrt, {})
            expected_wrt = np.asarray(exp[wrt], dtype=np.float64)
            _record_not_finite(evaluation, run.probe.group, wrt, expected_wrt)
            usable = np.ones(expected_wrt.shape, bool)
            kinks = _kinks(run, wrt, op)
            if skip_kinks and kinks is not None:
                usable = ~kinks
                skipped += int(kinks.sum())
            elif kinks is not None and expected_wrt.shape == run.got[wrt].shape:
                other = subgradients(evaluation, run, wrt, kinks & _differ(run.got[wrt], expected_wrt, tol))
                usable = usable & ~other
                unusable["subgradient"] += int(other.sum())
            if expected_wrt.shape == run.got[wrt].shape:
                agree, alone = (m & usable for m in _reference_not_finite(run, wrt, expected_wrt,
                                                                          fd_tolerance(evaluation.precision)))
                usable = usable & ~agree & ~alone
                unusable["agree"] += int(agree.sum())
                unusable["alone"] += int(alone.sum())
            groups.append(GroupData(run.probe.group, run.got[wrt], expected_wrt,
                                    run.inputs.get(wrt), usable, _kinks(run, wrt, op),
                                    run.upstream if op.kind == "activation" else None, alts, _targets(run),
                                    _dout(op, run)))
        cmp = compare(groups, tol, kind=op.kind, batch=_batch(op, evaluation.runs[0]), wrt=wrt)
        notes = [f"{skipped} kink points not compared here (autograd of a forward at a kink depends on how it "
                 f"is written): {kink_reference}"] if skipped else []
        if unusable["subgradient"]:
            notes.append(f"{unusable['subgradient']} kink points where your value differs from the reference's but "
                         f"lies between the one-sided slopes: another subgradient (a convention), not compared")
        if unusable["agree"]:
            notes.append(f"the torch reference is NaN or inf at {unusable['agree']} points, where your finite "
                         f"value agrees with finite differences: unusable there, not compared")
        if unusable["alone"]:
            evaluation.unreferenced += unusable["alone"]
            notes.append(f"the torch reference is NaN or inf at {unusable['alone']} points where finite "
                         f"differences cannot resolve the derivative either: bounded by one-sided differences below")
        checks.append(Check(name=title, wrt=wrt, reference=reference, tol=tol, ok=cmp.ok, error=cmp.error,
                            groups=cmp.groups, worst=cmp.worst, diagnosis=cmp.diagnosis, notes=notes,
                            compared=cmp.compared, checked=cmp.compared >= cmp.enough or not cmp.error <= tol))
    return checks


def fd_reference_text(evaluation: Evaluation) -> str:
    """The report's line on the finite-difference reference."""
    if evaluation.precision != "float64":
        return precision_text(evaluation.precision)
    return "reference: finite differences (central, float64, steps around 1e-6, kept away from kinks)"


def new_report(evaluation: Evaluation) -> OpReport:
    """An empty report for the evaluation (probes counted, findings attached)."""
    report = OpReport(target=evaluation.op.target, kind=evaluation.op.kind, seed=evaluation.seed,
                      probes={r.probe.group: int(r.probe.x.size) for r in evaluation.runs},
                      probe_text=getattr(evaluation.op.cls, "probe_text", None)
                      or probes.describe(evaluation.op.kind, evaluation.op.domain))
    report.findings = evaluation.findings
    report.failed_to_run = any(r.error for r in evaluation.runs)
    report.paths += evaluation.op.notes
    return report


def reviewed(evaluation: Evaluation, checks: list[Check]) -> list[Check]:
    """The checks as the op's form reads them (renamed, explained, with its own checks added)."""
    review = evaluation.op.review
    return review(evaluation, checks) if review is not None else checks


def verify_fd(target, kind: str | None = None, seed: int = 0, grad=None, convention: str | None = None,
              wrt: str | None = None) -> OpReport:
    """Finite differences only (no torch): the torch-free half of ``nnparity verify``; every form
    of nnparity.verify.forms (a function's keyword parameters at each probed value)."""
    plain = grad is None and convention is None and kind is None and wrt is None
    network = load_network(target, seed) if plain else None
    if network is not None:
        return verify_network_fd(network, seed)
    report = None
    for op in load_ops(target, grad, kind, convention, seed, wrt):
        evaluation = evaluate(op, seed)
        part = new_report(evaluation)
        part.checks = reviewed(evaluation, fd_checks(evaluation) + edge_checks(evaluation))
        if report is None:
            report = part
            report.paths.append(fd_reference_text(evaluation) if evaluation.precision != "float64" else
                                "reference: finite differences (central, float64, kept away from kinks)")
        else:
            if getattr(op, "variant", None):
                for c in part.checks:
                    c.name = f"[{op.variant}] {c.name}"
            report.checks += part.checks
            report.failed_to_run |= part.failed_to_run
    return report
