"""The points central finite differences leave out: kinks (the one-sided slopes differ) and points
where no step resolves the derivative. Where no torch twin compares them, the hand-written value
there must be finite and lie between the one-sided difference quotients

    (F(x) − F(x − h)) / h   and   (F(x + h) − F(x)) / h,   h = 1e-3·s and 1e-5·s

(s = |x|, or 1 at x = 0; inside (0, 1) for probabilities), widened by ten times the change between
the two steps on each side (curvature), by the rounding of F (4·eps·Σ|terms|/h) and by the
finite-difference tolerance of the gradient's scale (a float32 forward: steps around eps^(1/3)). At
a kink of relu this is
the subgradient interval [0, 1]; a NaN, or 1e6, at z = 0 lies outside it. A necessary condition,
not an exact comparison: the report says so. Torch twin: the subgradient torch_module() gives, when
one ran (then this check is not made); where a hand-written value differs from the twin's at a kink
but lies within these limits (relu' = 1 at 0 where torch picks 0), it is another subgradient, a
convention, and not compared (subgradients()).
"""
from __future__ import annotations

import numpy as np

from nnparity.verify.finite_diff import precision_eps, representable
from nnparity.verify.load import clone, layer_parameters
from nnparity.verify.report import Check
from scratch.policy import fd_tolerance

STEPS = (1e-3, 1e-5)
KINDS = ("activation", "vector", "loss")
REFERENCE = "one-sided differences"


def _objective(evaluation, run, wrt=None):
    """(fun() -> (L, Σ|terms of L|), the array fun reads): the scalar whose gradient backward returned
    (a layer's: with respect to its input, or the parameter ``wrt``)."""
    op, probe = evaluation.op, run.probe
    record = evaluation.recorder
    if op.kind == "layer":
        inst, x, w = clone(evaluation.template), probe.x.copy(), run.upstream

        def layer():
            terms = w * np.asarray(record("forward (one-sided)", inst.forward, x), dtype=np.float64)
            return float(np.sum(terms)), float(np.sum(np.abs(terms)))
        return layer, (x if wrt in (None, op.wrt) else layer_parameters(inst)[wrt])
    inst = op.new()
    if op.kind == "loss":
        pred, target = probe.x.copy(), probe.target.copy()

        def loss():
            value = float(np.asarray(record("forward (one-sided)", inst.forward, pred, target),
                                     dtype=np.float64).reshape(()))
            return value, abs(value)
        return loss, pred
    z, w = probe.x.copy(), run.upstream

    def weighted():
        terms = w * np.asarray(record("forward (one-sided)", inst.forward, z), dtype=np.float64)
        return float(np.sum(terms)), float(np.sum(np.abs(terms)))
    return weighted, z


def _steps(precision: str) -> tuple:
    """float64's steps, or steps around eps^(1/3) for a forward computing in float32."""
    return STEPS if precision == "float64" else tuple(precision_eps(precision) ** (1 / 3) * f for f in (10, 1))


def _bounds(fun, x: np.ndarray, index, probability: bool,
            precision: str = "float64") -> tuple[float, float, float, float] | None:
    """(low, high, slack, gap): the one-sided quotients' range at x[index], how far curvature and
    rounding widen it, and how far the right quotient at the smallest step lies from the left one
    (beyond the slack: a kink, where F has no derivative); None if no quotient is finite."""
    original = float(x[index])
    x0 = float(representable(original, precision))
    x[index] = x0
    scale = min(x0, 1 - x0) if probability else (abs(x0) or 1.0)
    base, magnitude = fun()
    sides, rounding = {"left": [], "right": []}, 0.0
    for factor in _steps(precision):
        h = factor * scale
        for side, sign in (("right", 1.0), ("left", -1.0)):
            x[index] = representable(x0 + sign * h, precision)
            step = float(x[index]) - x0
            value, mag = fun()
            sides[side].append((value - base) / step)
            rounding = max(rounding, 4 * precision_eps(precision) * max(magnitude, mag) / abs(step))
        x[index] = original
    finite = [q for qs in sides.values() for q in qs if np.isfinite(q)]
    if not finite or not np.isfinite(base):
        return None
    slack = max((10 * abs(qs[0] - qs[1]) for qs in sides.values() if all(np.isfinite(qs))), default=0.0)
    slack += rounding if np.isfinite(rounding) else 0.0
    gap = abs(sides["right"][-1] - sides["left"][-1])
    return min(finite), max(finite), slack, (gap if np.isfinite(gap) else 0.0)


def edge_checks(evaluation) -> list[Check]:
    """One check of the points finite differences skipped (kinks, unresolved)."""
    op = evaluation.op
    if op.kind not in KINDS or any(r.error for r in evaluation.runs):
        return []
    wrt = op.wrt
    scale = _scale(evaluation, wrt)
    fd_tol = fd_tolerance(evaluation.precision)
    compared, uncompared, undefined, bad, groups = 0, 0, 0, [], {}
    with np.errstate(all="ignore"):
        for run in evaluation.runs:
            fd = run.fd.get(wrt)
            if fd is None or fd.usable is None:
                continue
            skipped = ~fd.usable
            if not skipped.any():
                continue
            fun, x = _objective(evaluation, run)
            got = run.got[wrt]
            autograd_not_finite = evaluation.reference_not_finite.get((run.probe.group, wrt))
            worst = 0.0
            for index in zip(*np.nonzero(skipped)):
                limits = _bounds(fun, x, index, op.domain == "probability", evaluation.precision)
                if limits is None:
                    uncompared += 1
                    continue
                low, high, slack, gap = limits
                value = float(got[index])
                tol = fd_tol * max(abs(low), abs(high), scale) + slack
                if (not np.isfinite(value) and gap > tol and autograd_not_finite is not None
                        and autograd_not_finite[index]):
                    undefined += 1      # no derivative there, and torch's autograd has none either
                    continue
                compared += 1
                miss = np.inf if not np.isfinite(value) else max(low - value, value - high, 0.0) / max(tol, 1e-300)
                if miss > 1:
                    bad.append((run, index, value, low, high))
                worst = max(worst, float(miss))
            groups[run.probe.group] = worst * fd_tol
    undefined_note = (f"{undefined} points where the function has no derivative (the one-sided slopes differ) "
                      f"and both your gradient and torch's autograd of your forward are NaN or inf there: "
                      f"not compared") if undefined else None
    if not compared and not uncompared:
        if undefined_note:
            evaluation.findings.append(undefined_note)
        return []
    notes = [f"a bound, not an exact value: {compared} points skipped by finite differences "
             f"(kinks, unresolved) must be finite and lie between the one-sided "
             f"difference quotients; no torch twin compared them"]
    if uncompared:
        notes.append(f"{uncompared} points not compared with anything (the forward is not finite beside them)")
    if undefined_note:
        notes.append(undefined_note)
    title = f"dL/d{wrt} at skipped points vs {REFERENCE}"
    if not compared:     # the finite-difference check's note lists them as skipped
        return []
    diagnosis = _diagnosis(op, wrt, bad[0], len(bad)) if bad else None
    return [Check(name=title, wrt=wrt, reference=REFERENCE, tol=fd_tol, ok=not bad,
                  error=float("inf") if bad else 0.0, groups=groups, diagnosis=diagnosis,
                  notes=notes, compared=compared, checked=True)]


def subgradients(evaluation, run, wrt: str, points: np.ndarray) -> np.ndarray:
    """The ``points`` where the hand-written value is finite and lies between the one-sided quotients
    (with edge_checks' allowance): a subgradient at a kink, whatever value a reference picked there."""
    op = evaluation.op
    inside = np.zeros(points.shape, bool)
    if not points.any() or op.kind not in KINDS + ("layer",):
        return inside
    fun, x = _objective(evaluation, run, wrt)
    scale = _scale(evaluation, wrt)
    with np.errstate(all="ignore"):
        for index in zip(*np.nonzero(points)):
            value = float(run.got[wrt][index])
            limits = _bounds(fun, x, index, op.domain == "probability", evaluation.precision)
            if limits is None or not np.isfinite(value):
                continue
            low, high, slack, _ = limits
            tol = fd_tolerance(evaluation.precision) * max(abs(low), abs(high), scale) + slack
            inside[index] = low - tol <= value <= high + tol
    return inside


def _diagnosis(op, wrt: str, miss, count: int) -> str:
    """'at a kink, z = 0: da/dz got 1e+06, outside the one-sided limits [0, 1]; 1 such point'."""
    run, index, value, low, high = miss
    what = ""
    if op.kind == "activation":     # the derivative itself: divide out the upstream gradient
        w = float(run.upstream[index])
        value, low, high, what = value / w, *sorted((low / w, high / w)), f"da/d{wrt} "
    kink = bool(run.fd[wrt].kink[index])
    where = f"{'at a kink' if kink else 'where finite differences cannot resolve it'}, {wrt} = {float(run.probe.x[index]):.6g}"
    return (f"{where}: {what}got {value:.6g}, outside the one-sided limits [{low + 0.0:.6g}, {high + 0.0:.6g}]"
            + (" (not a finite number)" if not np.isfinite(value) else "")
            + f"; {count} such point{'s' if count > 1 else ''}")


def _scale(evaluation, wrt: str) -> float:
    """rms of every finite-difference value that was resolved: the gradient's scale."""
    vals = [run.fd[wrt].value[run.fd[wrt].usable] for run in evaluation.runs
            if wrt in run.fd and run.fd[wrt].usable is not None]
    vals = np.concatenate([v.ravel() for v in vals]) if vals else np.zeros(0)
    return float(np.sqrt(np.mean(vals * vals))) if vals.size else 1.0
