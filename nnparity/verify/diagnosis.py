"""Compare a hand-derived gradient with a reference, and name the shape of the mismatch.

The error measure is the tolerance policy's, over every compared element of one gradient (all
probe groups together): ‖got − expected‖ / ‖expected‖, the max abs error where ‖expected‖ = 0.
Each group's share ‖got_g − expected_g‖ / ‖expected‖ says where the error sits. An element
*disagrees* when |got − expected| > tol · max(|expected|, rms of expected).

The one-line diagnosis reads the pattern of got against expected:
- shapes: transposed (got.T matches), a per-sample gradient not summed over the batch;
- where: wrong only at a kink, only in saturation, only at tiny inputs (the rest agrees);
- a constant factor over every element: −1 (wrong sign), 2, ½, …; the batch size N or the element
  count N·C (a mean's ÷N missing or one too many);
- backward ignoring its grad_out; a transposed Jacobian (J·g instead of Jᵀ·g);
- a missing or inverted mask: got nonzero where the true derivative is exactly 0 (and, if inverted,
  0 where it is not), every other element agreeing;
- otherwise: the formula differs, with the range of got/expected.
Every example shown is the disagreeing element where got and expected differ most, printed with
enough digits to tell them apart.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nnparity.verify.errors import OpError
from scratch import user_code
from scratch.policy import rel_error

CLOSE = 1e-6   # relative agreement for "this alternative explains the numbers" (not a pass/fail tolerance)
# A verdict needs finite numbers compared on enough elements: a check whose probes were all skipped
# (NaN, inf, kinks, unresolved finite differences) is "not checked", never a pass.
MIN_COMPARED = 10


@dataclass
class Element:
    """One element of a compared gradient: where it is, its input, the reference and the value."""

    group: str
    index: tuple
    input: float | None
    expected: float
    got: float
    target: float | None = None     # losses: the target at that element
    upstream: float | None = None   # elementwise ops: the grad_out there (got/upstream = the derivative)


@dataclass
class GroupData:
    """One probe group of one gradient: what backward gave and what it should be."""

    group: str
    got: np.ndarray
    expected: np.ndarray
    inputs: np.ndarray | None = None        # the input value behind each element (same shape as expected)
    usable: np.ndarray | None = None        # compared elements (default: all)
    kink: np.ndarray | None = None          # elements sitting on a kink
    upstream: np.ndarray | None = None      # the grad_out fed to backward (elementwise ops)
    alternatives: dict = field(default_factory=dict)  # message -> array: known wrong answers
    targets: np.ndarray | None = None       # losses: the targets (same shape as expected)
    dout: np.ndarray | None = None          # layers: the grad_out fed to backward


@dataclass
class Comparison:
    """The verdict for one gradient over all its groups."""

    ok: bool
    error: float                             # the worst group's norm-relative error
    groups: dict                             # group -> error (None when nothing was compared)
    worst: Element | None
    compared: int                            # elements where both sides were finite and compared
    diagnosis: str | None
    enough: int = MIN_COMPARED               # how many were needed for a verdict


def _fmt(v) -> str:
    if v is None:
        return "?"
    v = float(v) + 0.0     # -0.0 shown as 0
    if not np.isfinite(v):
        return str(v)
    return f"{v:.6g}"


def _distinct(a: float, b: float, digits: int = 6) -> tuple[str, str]:
    """a and b printed with the fewest significant digits (from ``digits``, up to 17) that tell them apart."""
    for d in range(digits, 18):
        sa, sb = f"{float(a):.{d}g}", f"{float(b):.{d}g}"
        if sa != sb or a == b:
            return sa, sb
    return sa, sb


def _finite_mismatch(got, expected) -> bool:
    """A non-finite value on either side that the other does not share."""
    bad = ~np.isfinite(got) | ~np.isfinite(expected)
    return bool(bad.any()) and not np.array_equal(got[bad], expected[bad], equal_nan=True)


def _rms(groups) -> float:
    """rms of every compared, finite expected value (the scale of the whole gradient)."""
    vals = [g.expected[_use(g) & np.isfinite(g.expected)] for g in groups if g.got.shape == g.expected.shape]
    vals = np.concatenate([v.ravel() for v in vals]) if vals else np.zeros(0)
    return float(np.sqrt(np.mean(vals * vals))) if vals.size else 0.0


def _use(g) -> np.ndarray:
    return g.usable if g.usable is not None else np.ones(g.expected.shape, bool)


def _scores(g: GroupData, rms: float) -> np.ndarray:
    """|got − expected| / max(|expected|, rms) per element (inf where non-finite values differ)."""
    e = g.expected
    score = np.abs(g.got - e) / np.maximum(np.abs(e), rms if rms > 0 else 1.0)
    same_nonfinite = ~np.isfinite(e) & ~np.isfinite(g.got) & ((np.isnan(e) & np.isnan(g.got)) | (e == g.got))
    score = np.where(same_nonfinite, 0.0, score)
    return np.where(np.isnan(score), np.inf, score)


def _disagree(g: GroupData, tol: float, rms: float) -> np.ndarray:
    """Elements that disagree beyond the tolerance (all zero: an absolute error, as rel_error)."""
    return _use(g) & ~(_scores(g, rms) <= tol)


def _close(a, b) -> bool:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return False
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    return bool(np.all(np.abs(a - b) <= CLOSE * np.maximum(np.abs(b), scale)))


def compare(groups: list[GroupData], tol: float, kind: str = "activation",
            batch: tuple[int, int] | None = None, wrt: str = "z") -> Comparison:
    """Compare every group; the error, the worst element and the diagnosis when it fails. OpError
    when user code has replaced what the comparison computes with (``numpy.max``, say)."""
    changed = user_code.tampered()
    if changed is not None:
        raise OpError(user_code.tampered_message(changed, "the code under test"))
    with np.errstate(all="ignore"):
        return _compare(groups, tol, kind, batch, wrt)


def _compare(groups, tol, kind, batch, wrt) -> Comparison:
    errors: dict[str, float | None] = {}
    worst, worst_score, compared, available = None, -1.0, 0, 0
    shape_problem = next((g for g in groups if g.got.shape != g.expected.shape), None)
    rms = _rms(groups)
    same = [g for g in groups if g.got.shape == g.expected.shape]
    got_all = np.concatenate([g.got[_use(g)].ravel() for g in same]) if same else np.zeros(0)
    exp_all = np.concatenate([g.expected[_use(g)].ravel() for g in same]) if same else np.zeros(0)
    error = float("inf") if shape_problem is not None else rel_error(got_all, exp_all)
    fin = np.isfinite(exp_all)
    norm = float(np.linalg.norm(exp_all[fin])) if fin.any() else 0.0
    for g in groups:
        if g.got.shape != g.expected.shape:
            errors[g.group] = float("inf")
            continue
        use = _use(g)
        available += int(g.expected.size)
        if not use.any():
            errors[g.group] = None
            continue
        compared += int((use & np.isfinite(g.got) & np.isfinite(g.expected)).sum())
        gg, ee = g.got[use], g.expected[use]
        if _finite_mismatch(gg, ee):
            errors[g.group] = float("inf")
        else:
            f = np.isfinite(gg) & np.isfinite(ee)
            diff = np.abs(gg[f] - ee[f])
            errors[g.group] = float(np.linalg.norm(diff) / norm) if norm > 0 else float(np.max(diff, initial=0.0))
        score = np.where(use, _scores(g, rms), -1.0)
        i = np.unravel_index(int(np.argmax(score)), score.shape)
        if score[i] > worst_score:
            worst_score = float(score[i])
            worst = Element(g.group, tuple(int(k) for k in i),
                            None if g.inputs is None else float(g.inputs[i]), float(g.expected[i]),
                            float(g.got[i]), None if g.targets is None else float(g.targets[i]),
                            None if g.upstream is None else float(g.upstream[i]))
    enough = _enough(available)
    checked = shape_problem is not None or compared >= enough
    ok = shape_problem is None and error <= tol and checked
    if ok:
        diagnosis = None
    elif not checked and not error > tol:
        diagnosis = _not_checked(compared, available)
    else:
        diagnosis = diagnose(groups, tol, kind=kind, batch=batch, wrt=wrt)
    return Comparison(ok=ok, error=error, groups=errors, worst=worst, compared=compared, diagnosis=diagnosis,
                      enough=enough)


def _enough(available: int) -> int:
    """Finite elements a verdict needs: MIN_COMPARED, or half of what there is when that is fewer."""
    return max(1, min(MIN_COMPARED, (available + 1) // 2))


def _not_checked(compared: int, available: int) -> str:
    return (f"not checked: finite numbers compared on {compared} of {available} elements (at least "
            f"{_enough(available)} needed); NaN, inf or skipped probes prove nothing")


# ------------------------------------------------------------------------------ diagnosis


def _shape_diagnosis(g: GroupData) -> str:
    got, exp = g.got, g.expected
    if got.shape == exp.T.shape and got.ndim == 2:
        if _close(got.T, exp):
            return (f"transposed: got shape {got.shape}, expected {exp.shape}, and got.T matches "
                    f"(e.g. g.T @ x where x.T @ g is needed)")
        return f"transposed shape: got {got.shape}, expected {exp.shape} (and got.T does not match either)"
    if got.ndim == exp.ndim + 1 and got.shape[1:] == exp.shape:
        if _close(got.sum(axis=0), exp):
            return (f"missing the sum over the batch: got one row per sample, shape {got.shape}; "
                    f"summing over axis 0 gives the expected {exp.shape}")
        if _close(got.mean(axis=0), exp):
            return f"got one row per sample, shape {got.shape}; their mean (not sum) matches"
    if got.size == exp.size and _close(got.reshape(exp.shape), exp):
        return (f"the right numbers in the wrong shape: got {got.shape} for an input of shape {exp.shape} — "
                f"the reshape back to the input's shape is missing (e.g. dx.reshape(x.shape))")
    return f"shape mismatch: got {got.shape}, expected {exp.shape}"


FACTOR_NAMES = {-1.0: None, 2.0: "2", 0.5: "½", -2.0: "−2", -0.5: "−½", 4.0: "4", 0.25: "¼"}


def _batch_factor(r: float, batch, kind: str) -> str | None:
    if not batch:
        return None
    n, c = batch
    near = lambda v: abs(r - v) <= CLOSE * abs(v)  # noqa: E731
    if kind == "loss":
        table = [(n * c, f"missing the ÷(N·C) of a mean over all N·C = {n * c} elements (got = {n * c} × expected)"),
                 (1 / (n * c), f"divided by the element count N·C = {n * c} where the loss does not divide "
                               f"(got = expected / {n * c})"),
                 (n, f"missing the ÷N of the mean over the batch (got = {n} × expected, N = {n})"),
                 (1 / n, f"divided by the batch size N = {n} where the loss does not divide (got = expected / {n})"),
                 (c, f"divided by N = {n} where the loss divides by N·C = {n * c} (got = {c} × expected)"),
                 (1 / c, f"divided by N·C = {n * c} where the loss divides by N = {n} (got = expected / {c})")]
    elif kind == "layer":
        table = [(1 / n, f"averaged over the batch where the sum is needed (got = expected / {n}, N = {n})"),
                 (n, f"got = {n} × expected (N = {n}): a batch sum counted once too often")]
    elif kind == "network":     # the loss is a mean over the batch: its 1/N belongs in every gradient once
        table = [(n, f"missing the ÷N of the mean over the batch (got = {n} × expected, N = {n})"),
                 (1 / n, f"divided by the batch size N = {n} once too often, e.g. a sum over the batch "
                         f"averaged after the loss's mean already divided by N (got = expected / {n})")]
    else:
        return None
    for value, text in table:
        if near(value):
            return text
    return None


def _factor_diagnosis(got, exp, batch, kind) -> str | None:
    fin = np.isfinite(got) & np.isfinite(exp)
    if fin.sum() == 0 or not np.any(exp[fin] != 0):
        return None
    g, e = got[fin], exp[fin]
    r = float(np.dot(g, e) / np.dot(e, e))
    resid = float(np.linalg.norm(g - r * e) / np.linalg.norm(e))
    if resid > CLOSE or r == 0:
        return None
    batch_text = _batch_factor(r, batch, kind)
    simple = None
    for value, name in FACTOR_NAMES.items():
        if abs(r - value) <= CLOSE * abs(value):
            if name is None:
                simple = "wrong sign: got = −1 × expected"
                break
            hint = ""
            if kind == "loss" and value == 0.5:
                hint = " — the gradient of ½·L, not of L (the 2 of d(a − t)²/da dropped?)"
            elif kind == "loss" and value == 2.0:
                hint = " — the gradient of 2·L (a ½ in the loss that its gradient forgot?)"
            simple = f"off by a constant factor {name}: got = {name} × expected{hint}"
            break
    if simple and batch_text:     # e.g. ¼ = 1/N with N = 4 rows: both readings
        return f"{batch_text}; or: {simple}"
    if simple or batch_text:
        return simple or batch_text
    if abs(r - 1) <= CLOSE:
        return None
    return f"off by a constant factor {r:.6g}: got = {r:.6g} × expected"


def _where(groups, bad_by_group, which: str, rms: float):
    """The worst disagreeing element of the named kind, for the message."""
    for g in groups:
        bad = bad_by_group[g.group]
        if which == "kink":
            bad = bad & (g.kink if g.kink is not None else False)
        if np.any(bad):
            return g, _worst_bad(g, bad, rms)
    return None, None


def _worst_bad(g, bad, rms):
    """Index of the disagreeing element with the largest scaled error (non-finite first)."""
    score = np.where(bad, _scores(g, rms), -1.0)
    return np.unravel_index(int(np.argmax(score)), score.shape)


def _describe(g, i, wrt) -> str:
    """ (at z = 0: got 1, expected 0)"""
    return f" ({_point(g, i, wrt)})"


def _point(g, i, wrt) -> str:
    """at z = 0: got 1, expected 0"""
    at = "" if g.inputs is None else f"at {wrt} = {_fmt(g.inputs[i])}"
    if g.targets is not None:
        at += f", target {_fmt(g.targets[i])}"
    got, exp, what = g.got[i], g.expected[i], ""
    if g.upstream is not None and g.upstream[i] != 0:    # elementwise: show the derivative itself
        got, exp, what = got / g.upstream[i], exp / g.upstream[i], f"da/d{wrt} "
    if np.isfinite(got) and np.isfinite(exp):
        shown_got, shown_exp = _distinct(got, exp)
    else:
        shown_got, shown_exp = _fmt(got), _fmt(exp)
    return f"{at}{': ' if at else ''}{what}got {shown_got}, expected {shown_exp}"


def diagnose(groups: list[GroupData], tol: float, kind: str = "activation",
             batch: tuple[int, int] | None = None, wrt: str = "z") -> str | None:
    """One line naming the mismatch's shape, or a description of it when it has no known shape."""
    with np.errstate(all="ignore"):
        return _diagnose(groups, tol, kind, batch, wrt)


def _diagnose(groups, tol, kind, batch, wrt) -> str | None:
    for g in groups:
        if g.got.shape != g.expected.shape:
            return _shape_diagnosis(g)
    rms = _rms(groups)
    bad = {g.group: _disagree(g, tol, rms) for g in groups}
    bad_groups = [g for g in groups if bad[g.group].any()]
    if not bad_groups:
        return None
    # square matrices: transposed values
    if all(g.got.ndim == 2 and g.got.shape[0] == g.got.shape[1] and g.got.shape[0] > 1
           and _close(g.got.T, g.expected) for g in bad_groups):
        return "transposed: got.T matches the expected gradient (e.g. g.T @ x where x.T @ g is needed)"
    # where: kinks, saturation, tiny inputs
    all_kink = all(g.kink is not None and not np.any(bad[g.group] & ~g.kink) for g in bad_groups)
    if all_kink:
        kg, i = _where(groups, bad, "kink", rms)
        return (f"wrong only at a kink{_describe(kg, i, wrt)}: not a subgradient there (any value between "
                f"the one-sided slopes is accepted); everywhere else it agrees")
    for region, text in (("saturation", "in saturation"), ("tiny", "at tiny inputs")):
        if all(g.group == region for g in bad_groups):
            return _region_diagnosis(bad_groups[0], bad[region], text, rms, wrt)
    # a pattern over every compared element
    got = np.concatenate([g.got[g.usable if g.usable is not None else slice(None)].ravel() for g in groups])
    exp = np.concatenate([g.expected[g.usable if g.usable is not None else slice(None)].ravel() for g in groups])
    text = _factor_diagnosis(got, exp, batch, kind) or _offset_diagnosis(groups)
    if text:
        return text
    near = _near_miss(groups, bad, rms, wrt)
    if near:
        return near
    return _alternative_diagnosis(groups) or _mask_diagnosis(groups, bad, rms, wrt) \
        or _ratio_description(groups, bad, wrt)


def _mask_diagnosis(groups, bad, rms, wrt) -> str | None:
    """Every disagreeing element is nonzero where the true derivative is exactly 0 (a mask missing),
    or 0 where it is not (the mask inverted): which, how many, and the worst such point."""
    stray, lost, worst = 0, 0, None
    for g in groups:
        b = bad[g.group] & np.isfinite(g.got) & np.isfinite(g.expected)
        if not b.any():
            continue
        nonzero_at_zero = b & (g.expected == 0) & (g.got != 0)
        zero_at_nonzero = b & (g.got == 0) & (g.expected != 0)
        if np.any(b & ~nonzero_at_zero & ~zero_at_nonzero):
            return None
        stray += int(nonzero_at_zero.sum())
        lost += int(zero_at_nonzero.sum())
        if nonzero_at_zero.any():
            i = _worst_bad(g, nonzero_at_zero, rms)
            score = float(_scores(g, rms)[i])
            if worst is None or score > worst[0]:
                worst = (score, g, i)
    if not stray:
        return None
    text = f"nonzero where the true derivative is 0 (at {stray} point{'s' if stray > 1 else ''}, e.g. " \
           f"{_point(worst[1], worst[2], wrt)})"
    if lost:
        return text + f", and 0 where it is not (at {lost} point{'s' if lost > 1 else ''}): the mask is inverted"
    return text + ": a mask is missing or inverted"


def _offset_diagnosis(groups) -> str | None:
    """Elementwise: the derivative got/grad_out is the expected one plus a constant (a(1 − a) − 1)."""
    if not all(g.upstream is not None for g in groups):
        return None
    with np.errstate(all="ignore"):
        diffs = np.concatenate([((g.got - g.expected) / g.upstream)[_use(g)].ravel() for g in groups])
    diffs = diffs[np.isfinite(diffs)]
    if diffs.size < 2:
        return None
    c = float(np.median(diffs))
    if c == 0 or not np.all(np.abs(diffs - c) <= CLOSE * max(abs(c), 1.0)):
        return None
    shown = f"{c:+.6g}".replace("+", "+ ").replace("-", "− ")
    return f"off by a constant: da/dz got = expected {shown} at every probe (a term added to the derivative)"


def _region_diagnosis(g, b, text: str, rms: float, wrt) -> str:
    """Wrong only in one probe region (saturation, tiny inputs): where, and a hint why."""
    i = _worst_bad(g, b, rms)
    hint = ""
    with np.errstate(all="ignore"):
        rel = np.abs(g.got[b] - g.expected[b]) / np.abs(g.expected[b])
    if not np.all(np.isfinite(g.got[b])):
        hint = " — an overflow (exp of a large number?) or 0/0 in backward"
    elif np.all(rel <= 1e-6):
        hint = (f" — by at most {float(np.max(rel)):.1e} relative: the two formulas round differently "
                f"there (write it as the reference does to agree to the tolerance)")
    return f"wrong only {text}{_describe(g, i, wrt)}{hint}; the other probes agree"


def _alternative_diagnosis(groups) -> str | None:
    """The named alternative (a known slip) that the values match on every group, if any."""
    alternatives: dict[str, list] = {}
    for g in groups:
        use = g.usable if g.usable is not None else np.ones(g.expected.shape, bool)
        alts = dict(g.alternatives)
        if g.upstream is not None:
            with np.errstate(all="ignore"):
                alts["backward ignores grad_out: it returns da/dz, not grad_out · da/dz"] = g.expected / g.upstream
        elif g.dout is not None and g.dout.shape == g.expected.shape:
            with np.errstate(all="ignore"):
                alts["backward ignores dout: it returns the local derivative, not dout · derivative"] = \
                    g.expected / g.dout
        for msg, alt in alts.items():
            alternatives.setdefault(msg, []).append((g.got[use], np.asarray(alt)[use]))
    for msg, pairs in alternatives.items():
        if len(pairs) == len(groups) and _close(np.concatenate([p[0] for p in pairs]),
                                                np.concatenate([p[1] for p in pairs])):
            return msg
    return None


def _near_miss(groups, bad, rms, wrt) -> str | None:
    """Every disagreeing element within 1e-6 relative: rounding, not a wrong formula."""
    worst, where = 0.0, None
    for g in groups:
        b = bad[g.group]
        if not b.any():
            continue
        if not (np.all(np.isfinite(g.got[b])) and np.all(np.isfinite(g.expected[b]))):
            return None
        rel = np.abs(g.got[b] - g.expected[b]) / np.maximum(np.abs(g.expected[b]), 1e-300)
        if float(rel.max()) > CLOSE:
            return None
        if float(rel.max()) >= worst:
            worst, where = float(rel.max()), (g, _worst_bad(g, b, rms))
    g, i = where
    return (f"close but not within the tolerance: at most {worst:.1e} relative{_describe(g, i, wrt)} — "
            f"an equivalent formula that rounds differently (e.g. σ(1 − σ) loses digits where σ ≈ 1)")


def _ratio_description(groups, bad, wrt) -> str:
    """The range of got/expected over the random probes, and one disagreeing point near 0."""
    ref = next((g for g in groups if g.group == "random"), groups[0])
    use = _use(ref)
    ratio = ref.got / ref.expected
    scale = np.sqrt(np.mean(ref.expected[use] ** 2)) if use.any() else 0.0
    ok = use & np.isfinite(ratio) & (np.abs(ref.expected) > 1e-3 * scale)
    n_bad = sum(int(b.sum()) for b in bad.values())
    example = _example_near_zero(groups, bad, wrt)
    if ok.sum() >= 2:
        lo_i = np.unravel_index(int(np.argmin(np.where(ok, ratio, np.inf))), ratio.shape)
        hi_i = np.unravel_index(int(np.argmax(np.where(ok, ratio, -np.inf))), ratio.shape)
        at = (lambda i: "" if ref.inputs is None else f" at {wrt} = {float(ref.inputs[i]):.3g}")  # noqa: E731
        lo, hi = _distinct(float(ratio[lo_i]), float(ratio[hi_i]), 3)
        return (f"the formula differs, not by a constant factor: got/expected runs from "
                f"{lo}{at(lo_i)} to {hi}{at(hi_i)}{example}")
    return f"no recognisable shape ({n_bad} elements disagree){example}"


def _example_near_zero(groups, bad, wrt) -> str:
    """'; e.g. (at z = 0: da/dz got 0.75, expected 0.25)': the disagreeing point where got and expected
    differ most (scaled as the comparison scales them)."""
    best = None
    rms = _rms(groups)
    for g in groups:
        b = bad[g.group] & np.isfinite(g.got) & np.isfinite(g.expected)
        if g.inputs is None or g.targets is not None or not b.any():
            continue
        i = _worst_bad(g, b, rms)
        score = float(_scores(g, rms)[i])
        if best is None or score > best[0]:
            best = (score, g, i)
    return "" if best is None else f"; e.g. {_point(best[1], best[2], wrt)}"
