"""Central finite differences that know when they cannot be trusted.

A central difference D(h) = (f(x + h) − f(x − h)) / 2h is exact up to h²·f'''/6 (truncation) plus
about ε·|f|/h (rounding). Near a kink it is simply wrong: at relu's 0 it gives ½. So each point
gets a few candidate steps around 1e-6 (scaled by max(1, |x|); inside (0, 1) by the distance to
the edge) and, for each, four evaluations f(x ± h), f(x ± h/2):

- kink: the one-sided slopes differ, D₊(h) − D₋(h) = J(h), and J does not shrink with h
  (|J(h/2)| > ¾·|J(h)|; on smooth f it halves). Finite differences are skipped there: the
  derivative at a kink is a convention (torch's subgradient), which only torch can check.
- error estimate: |D(h) − D(h/2)|/3 (Richardson) + 2ε·M/h (M: the largest |f| seen).
  The value used is D(h/2) of the candidate step with the smallest estimate; a point whose
  estimate still exceeds a tenth of the tolerance (relative to its size) is "unresolved" —
  e.g. sigmoid at z = 20, where f'·h is below the rounding of f ≈ 1 — and skipped, saying so.

The tolerance itself (1e-7, norm-relative) is never widened; points FD cannot resolve are left
to the torch checks. Steps are taken as the representable difference (x + h) − (x − h).

A forward that computes in float32 rounds its values to float32's eps: every function here takes
``precision`` ("float32"), steps then lie around eps^(1/3)·max(1, |x|) (where truncation and
rounding balance), the points themselves are float32 numbers (so the step is the one the forward
sees) and the rounding estimate uses float32's eps.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = float(np.finfo(np.float64).eps)
STEP_FACTORS = (1e-3, 1e-4, 1e-5, 1e-6)
ABSOLUTE_STEP = 1e-6
TRUST = 0.1          # usable if error estimate <= TRUST · tol · max(|D|, rms of the group)
KINK_RATIO = 0.75


@dataclass
class FDResult:
    """Finite-difference derivative estimates, with what can be trusted.

    ``value``: the estimate (NaN where skipped); ``estimate``: its estimated absolute error;
    ``kink``: a kink lies within the step; ``usable``: kink-free and resolved (set by ``resolve``);
    ``sampled``: the elements differenced (None: every one).
    """

    value: np.ndarray
    estimate: np.ndarray
    kink: np.ndarray
    usable: np.ndarray | None = None
    sampled: np.ndarray | None = None

    def resolve(self, tol: float) -> "FDResult":
        """Mark usable points: no kink, estimated error <= TRUST · tol · max(|value|, rms), the rms
        taken over the usable points themselves (1 when they are all 0: an absolute error then)."""
        usable = np.isfinite(self.value) & np.isfinite(self.estimate) & ~self.kink
        while True:
            vals = self.value[usable]
            rms = float(np.sqrt(np.mean(vals * vals))) if vals.size else 0.0
            scale = np.maximum(np.abs(np.nan_to_num(self.value)), rms if rms > 0 else 1.0)
            narrowed = usable & (self.estimate <= TRUST * tol * scale)
            if np.array_equal(narrowed, usable):
                break
            usable = narrowed
        self.usable = usable
        return self

    @property
    def unresolved(self) -> np.ndarray:
        return ~self.kink & ~self.usable


def precision_eps(precision: str) -> float:
    """The machine epsilon of the dtype the forward computes in."""
    return float(np.finfo(precision).eps)


def _step_factors(precision: str) -> tuple[tuple, float]:
    """(relative step factors, absolute step): float64's fixed ones, else around eps^(1/3)."""
    if precision == "float64":
        return STEP_FACTORS, ABSOLUTE_STEP
    base = precision_eps(precision) ** (1 / 3)
    return tuple(base * f for f in (10, 3, 1, 0.3)), base


def representable(x, precision: str = "float64") -> np.ndarray:
    """x rounded to the forward's precision, as float64 (unchanged for float64)."""
    x = np.asarray(x, dtype=np.float64)
    return x if precision == "float64" else x.astype(precision).astype(np.float64)


def candidate_steps(x: np.ndarray, domain: str = "real", precision: str = "float64") -> np.ndarray:
    """Candidate steps, shape x.shape + (k,): around 1e-6 (float64) relative to the point's scale."""
    x = np.asarray(x, dtype=np.float64)
    factors, absolute_step = _step_factors(precision)
    if domain == "probability":
        scale = np.minimum(x, 1.0 - x)[..., None]
        return scale * np.array(factors)
    scale = np.maximum(1.0, np.abs(x))[..., None]
    rel = scale * np.array(factors)
    absolute = np.full(x.shape + (1,), absolute_step)
    return np.concatenate([rel, absolute], axis=-1)


def _combine(fp, fm, fp2, fm2, f0, xp, xm, xp2, xm2, x, magnitude, eps=EPS):
    """Per-candidate central values, error estimates and kink flags."""
    with np.errstate(all="ignore"):
        d1 = (fp - fm) / (xp - xm)
        d2 = (fp2 - fm2) / (xp2 - xm2)
        j1 = (fp - f0) / (xp - x) - (f0 - fm) / (x - xm)
        j2 = (fp2 - f0) / (xp2 - x) - (f0 - fm2) / (x - xm2)
        h = (xp - xm) / 2
        rounding = 2 * eps * magnitude / h
        estimate = np.abs(d1 - d2) / 3 + rounding
        kink = (np.abs(j2) > KINK_RATIO * np.abs(j1)) & (np.abs(j1) > 100 * rounding)
    estimate = np.where(np.isfinite(estimate) & np.isfinite(d2), estimate, np.inf)
    return d2, estimate, kink


def _pick(d, estimate, kink):
    """Best candidate along the last axis: smallest estimate among kink-free ones."""
    est = np.where(kink, np.inf, estimate)
    best = np.argmin(est, axis=-1)[..., None]
    value = np.take_along_axis(d, best, -1)[..., 0]
    chosen = np.take_along_axis(est, best, -1)[..., 0]
    all_kink = kink.all(axis=-1)
    return FDResult(value=np.where(all_kink, np.nan, value), estimate=chosen, kink=all_kink)


def elementwise_derivative(f, z: np.ndarray, domain: str = "real", precision: str = "float64") -> FDResult:
    """f'(z) for an elementwise f, every point at once (each element is its own 1-D problem)."""
    z = representable(z, precision)
    steps = candidate_steps(z, domain, precision)
    zz = np.broadcast_to(z[..., None], steps.shape)
    xp, xm = representable(zz + steps, precision), representable(zz - steps, precision)
    xp2, xm2 = representable(zz + steps / 2, precision), representable(zz - steps / 2, precision)

    def evaluation(points):
        # the op sees a 2-D batch (rows, cols·k), as it would in a network
        flat2d = np.ascontiguousarray(points).reshape(z.shape[0] if z.ndim else 1, -1)
        return np.asarray(f(flat2d), dtype=np.float64).reshape(points.shape)

    f0 = evaluation(zz)
    fp, fm, fp2, fm2 = evaluation(xp), evaluation(xm), evaluation(xp2), evaluation(xm2)
    magnitude = np.maximum.reduce([np.abs(v) for v in (fp, fm, fp2, fm2, f0)])
    return _pick(*_combine(fp, fm, fp2, fm2, f0, xp, xm, xp2, xm2, zz, magnitude, precision_eps(precision)))


def scalar_derivative(fun, x: np.ndarray, domain: str = "real", precision: str = "float64",
                      only: np.ndarray | None = None) -> FDResult:
    """∂fun/∂x for a scalar ``fun()`` that reads ``x`` (perturbed in place, then restored).

    ``fun()`` returns (value, magnitude): magnitude bounds the rounding of value (Σ|terms| for
    a sum, |value| otherwise). ``only``: a mask of the elements to difference (the others NaN,
    never usable); None: every element.
    """
    if only is not None:
        return _sampled_derivative(fun, x, domain, only, precision)
    if precision != "float64":
        x[...] = representable(x, precision)
    steps = candidate_steps(x, domain, precision).reshape(x.size, -1)
    k = steps.shape[1]
    out = {key: np.zeros((x.size, k)) for key in ("fp", "fm", "fp2", "fm2", "xp", "xm", "xp2", "xm2")}
    f0 = np.zeros((x.size, k))
    magnitude = np.zeros((x.size, k))
    x0 = np.zeros((x.size, k))
    base, base_mag = fun()
    for i, idx in enumerate(np.ndindex(x.shape)):
        old = float(x[idx])
        x0[i] = old
        f0[i] = base
        for j in range(k):
            h = steps[i, j]
            mags = [base_mag]
            for key, point in (("p", old + h), ("m", old - h), ("p2", old + h / 2), ("m2", old - h / 2)):
                x[idx] = representable(point, precision)
                value, mag = fun()
                out["f" + key][i, j] = value
                out["x" + key][i, j] = x[idx]
                mags.append(mag)
            magnitude[i, j] = max(abs(m) for m in mags)
        x[idx] = old
    d, est, kink = _combine(out["fp"], out["fm"], out["fp2"], out["fm2"], f0,
                            out["xp"], out["xm"], out["xp2"], out["xm2"], x0, magnitude, precision_eps(precision))
    res = _pick(d, est, kink)
    return FDResult(value=res.value.reshape(x.shape), estimate=res.estimate.reshape(x.shape),
                    kink=res.kink.reshape(x.shape))


def _sampled_derivative(fun, x: np.ndarray, domain: str, only: np.ndarray, precision: str) -> FDResult:
    """scalar_derivative at the elements of ``only``: each differenced through a one-element view of x."""
    value, estimate = np.full(x.shape, np.nan), np.full(x.shape, np.inf)
    kink = np.zeros(x.shape, bool)
    flat = x.reshape(-1)      # a view: writes reach the array fun reads
    if not np.shares_memory(flat, x):
        raise ValueError("finite differences of sampled elements need a contiguous array")
    for idx in zip(*np.nonzero(only)):
        i = int(np.ravel_multi_index(idx, x.shape))
        res = scalar_derivative(fun, flat[i:i + 1], domain, precision)
        value[idx], estimate[idx], kink[idx] = res.value[0], res.estimate[0], res.kink[0]
    return FDResult(value=value, estimate=estimate, kink=kink, sampled=np.asarray(only, bool).copy())


def jacobian_rows(forward, x: np.ndarray, h: float = 1e-6, precision: str = "float64") -> np.ndarray:
    """Rough central-difference Jacobian of a row-wise map: J[n, k, c] = ∂y[n, k]/∂x[n, c].

    Only for diagnosis (is the Jacobian transposed?), not for pass/fail.
    """
    n, c = x.shape
    if precision != "float64":
        h = precision_eps(precision) ** (1 / 3)
    jac = None
    for col in range(c):
        step = h * max(1.0, float(np.max(np.abs(x[:, col]))))
        up, down = x.copy(), x.copy()
        up[:, col] += step
        down[:, col] -= step
        diff = (np.asarray(forward(up), dtype=np.float64) - np.asarray(forward(down), dtype=np.float64))
        diff = diff / (up[:, col] - down[:, col])[:, None]
        if jac is None:
            jac = np.zeros((n, diff.shape[1], c))
        jac[:, :, col] = diff
    return jac


# ------------------------------------------------------- plain central differences (the suite's)


def numeric_gradient(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar f at x: (f(x + h e_i) − f(x − h e_i)) / 2h for each i.

    ``x`` is perturbed in place and restored, so f may read it through a closure (a network's
    live weights, say).
    """
    grad = np.zeros_like(x, dtype=np.float64)
    flat = x.reshape(-1)
    out = grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        up = float(f())
        flat[i] = old - h
        down = float(f())
        flat[i] = old
        out[i] = (up - down) / (2 * h)
    return grad


def network_numeric_gradients(net, loss, x, y, h: float = 1e-6) -> dict[str, np.ndarray]:
    """Finite-difference gradients of loss(net(x), y) for every parameter and for the input."""
    x = np.array(x, dtype=np.float64)

    def f():
        return loss.forward(net.forward(x), y)

    grads = {name: numeric_gradient(f, param, h) for name, param in net.parameters().items()}
    grads["input"] = numeric_gradient(f, x, h)
    return grads
