"""The tolerance policy and its error measures: the one home of both (and of the JSON rule for
non-finite numbers). Torch-free, so scratch, torch_ref, the CLI and its verify tool, the examples
and the test suite all import it from here.

Every tolerance bounds a norm-relative error ‖got − expected‖ / ‖expected‖ (the max abs error
where ‖expected‖ = 0). Tolerances are never loosened to make a test pass: a failing parity test
means a derivative is wrong until shown otherwise.
"""
from __future__ import annotations

import math

import numpy as np

# One forward and backward (output, every activation, loss, every gradient), by dtype.
TOLERANCE: dict[str, float] = {"float64": 1e-12, "float32": 1e-5}
# Trajectories of hundreds of optimizer steps and whole training runs, float64, per step.
TRAJECTORY_TOL = 1e-10
# float32 training runs drift by rounding that accumulates over the steps (~1e-6 relative over
# 450 steps); a run comparison fails them only past this bound, far above rounding and far below
# a visible gap.
FLOAT32_DRIFT_BOUND = 1e-3
# Central finite differences of a hand-written gradient, float64, steps around FD_STEP.
FD_TOL = 1e-7
FD_STEP = 1e-6
# The same for a forward that computes in float32: its values carry float32 rounding (eps ≈ 1.2e-7),
# so the best central step is h ≈ eps^(1/3)·max(1, |x|) ≈ 5e-3, where truncation (h²·|f‴|/6) and
# rounding (eps·|f|/h) are both about eps^(2/3) ≈ 2.4e-5 of the function's scale. The tolerance is
# 100× that, 2.4e-3: room for |f|/|f′| and |f‴|/|f′| of tens on the probes (sigmoid at |z| ≈ 4),
# still far below any slip (a missing factor or term is an error of order 1). float16's would be
# about 1, no check at all: there is none.
FD_TOL_SAFETY = 100
FD_PRECISIONS = ("float64", "float32")


def fd_tolerance(precision: str = "float64") -> float:
    """The finite-difference tolerance for a forward computing in ``precision`` (FD_PRECISIONS)."""
    if precision == "float64":
        return FD_TOL
    return FD_TOL_SAFETY * float(np.finfo(precision).eps) ** (2 / 3)


def run_tolerance(dtype: str) -> float:
    """The per-step tolerance of a whole training run in this dtype."""
    return TRAJECTORY_TOL if dtype == "float64" else FLOAT32_DRIFT_BOUND


# A reference whose norm is below this many roundings (eps of the dtype) of the scale it was
# computed at — a gradient's network gradient scale — is zero up to rounding: a bias right before a
# normalization that subtracts it again has an exact zero gradient, and each side computes rounding
# noise of about eps × that scale there. Its error is measured against the scale instead
# (``rounding_floor``): a reference above the floor keeps the norm-relative measure, whatever its size.
ZERO_ROUNDINGS = 64


def rounding_floor(scale: float, dtype: str) -> float:
    """The norm below which a reference computed at ``scale`` in ``dtype`` is zero up to rounding."""
    return ZERO_ROUNDINGS * float(np.finfo(dtype).eps) * scale


def gradient_scale(grads) -> float:
    """The network's gradient scale: the norm of every gradient (parameters and input) together."""
    norms = [_norm(np.asarray(g, dtype=np.float64)[np.isfinite(g)]) for g in grads]
    return _norm(np.asarray(norms, dtype=np.float64)) if norms else 0.0


def rel_error(got, expected, scale: float = 0.0, dtype: str = "float64") -> float:
    """‖got − expected‖ / ‖expected‖; the max abs error where ‖expected‖ = 0.

    ``scale`` (``gradient_scale``), ``dtype``: where ‖expected‖ is at or below
    ``rounding_floor(scale, dtype)``, expected is zero up to rounding and the error is
    ‖got − expected‖ / scale; above the floor the measure is the plain one.

    Norms are taken after scaling by the largest magnitude, so values near the float64 limit
    (1e300, say) do not overflow. Non-finite entries that both arrays share (inf and inf, NaN and
    NaN) are left out and the rest measured; one they do not share is an infinite error. Whether
    a comparison of non-finite values may pass at all is the verdict's business, not this measure's.
    """
    got, expected = _pair(got, expected)
    if not (np.all(np.isfinite(got)) and np.all(np.isfinite(expected))):
        if not np.all(_same_nonfinite(got, expected) | (np.isfinite(got) & np.isfinite(expected))):
            return math.inf
        finite = np.isfinite(got)
        got, expected = got[finite], expected[finite]
    norm = _norm(expected)
    if scale > 0 and norm <= rounding_floor(scale, dtype):
        with np.errstate(over="ignore"):
            return _norm(got - expected) / scale
    if norm == 0:
        return max_abs_error(got, expected)
    with np.errstate(over="ignore"):  # a difference past the float64 limit is an infinite error
        return _norm(got - expected) / norm


# The verdicts of one tensor's comparison. OVERFLOW: both sides hold inf or NaN at the same places
# (the dtype overflowed on both; inf against NaN counts, as torch's numerical-accuracy notes say an
# overflowed intermediate may end either way); the values there were not compared, so it is no pass.
PASS, FAIL, OVERFLOW = "pass", "FAIL", "overflow"
# TORCH_OVERFLOW: torch (the expected side) is inf or NaN where scratch is finite, the rest agree:
# torch overflowed an intermediate (gelu_tanh's z³ at |z| = 1e300, say), the behaviour its
# numerical-accuracy notes document under "Extremal values". Not compared there, so no pass either.
TORCH_OVERFLOW = "torch overflow"
NOT_COMPARED = (OVERFLOW, TORCH_OVERFLOW)


def verdict(got, expected, tol: float, scale: float = 0.0, dtype: str = "float64") -> dict:
    """{"max_abs", "rel", "result"}: PASS within ``tol``; OVERFLOW where both sides are non-finite
    at the same places, TORCH_OVERFLOW where only torch (``expected``) is, and the rest agree; else
    FAIL (scratch non-finite where torch is finite is always a failure). Never a pass on a value
    not compared. ``scale``, ``dtype``: a gradient's network scale, as in ``rel_error``."""
    got, expected = _pair(got, expected)
    bad_got, bad_expected = ~np.isfinite(got), ~np.isfinite(expected)
    if not (bad_got.any() or bad_expected.any()):
        rel = rel_error(got, expected, scale, dtype)
        return {"max_abs": max_abs_error(got, expected), "rel": rel, "result": PASS if rel <= tol else FAIL}
    if not np.any(bad_got & ~bad_expected):  # scratch overflowed only where torch did
        keep = ~bad_expected
        rel = rel_error(got[keep], expected[keep], scale, dtype)
        if rel <= tol:
            result = OVERFLOW if np.array_equal(bad_got, bad_expected) else TORCH_OVERFLOW
            return {"max_abs": max_abs_error(got[keep], expected[keep]), "rel": rel, "result": result}
    return {"max_abs": math.inf, "rel": math.inf, "result": FAIL}


def max_abs_error(got, expected) -> float:
    """max |got − expected|; 0 for shared non-finite entries, inf for unshared ones."""
    got, expected = _pair(got, expected)
    if not got.size:
        return 0.0
    same = _same_nonfinite(got, expected) | (got == expected)
    if not np.all(same | (np.isfinite(got) & np.isfinite(expected))):
        return math.inf
    with np.errstate(over="ignore", invalid="ignore"):  # inf - inf where `same` masks it anyway
        return float(np.where(same, 0.0, np.abs(got - expected)).max())


def _same_nonfinite(got, expected) -> np.ndarray:
    return ~np.isfinite(got) & ((got == expected) | (np.isnan(got) & np.isnan(expected)))


def _pair(got, expected):
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        raise ValueError(f"shape mismatch: {got.shape} vs {expected.shape}")
    return got, expected


def _norm(v) -> float:
    """The 2-norm of v without overflow or underflow: max|v| · ‖v / max|v|‖."""
    with np.errstate(over="ignore"):
        scale = float(np.abs(v).max()) if v.size else 0.0
    if scale == 0 or not np.isfinite(scale):
        return scale
    with np.errstate(under="ignore"):
        return scale * float(np.sqrt(np.sum(np.square(v / scale))))


def json_safe(value):
    """Plain data for strict JSON: arrays as nested lists, NaN and ±inf as null (every --json)."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return json_safe(value.tolist())
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value
