"""Central finite differences and the error measures of the tolerance policy."""
from __future__ import annotations

import numpy as np


def rel_error(got, expected) -> float:
    """‖got − expected‖ / ‖expected‖; the max abs error where ‖expected‖ = 0.

    Norms are taken after scaling by the largest magnitude, so values near the float64 limit
    (1e300, say) do not overflow. Non-finite entries: 0 where both arrays hold the same value
    (inf and inf, NaN and NaN), else the error is NaN.
    """
    got, expected = _pair(got, expected)
    if not (np.all(np.isfinite(got)) and np.all(np.isfinite(expected))):
        return 0.0 if np.array_equal(got, expected, equal_nan=True) else float("nan")
    norm = _norm(expected)
    if norm == 0:
        return max_abs_error(got, expected)
    with np.errstate(over="ignore"):  # a difference past the float64 limit is an infinite error
        return _norm(got - expected) / norm


def max_abs_error(got, expected) -> float:
    """max |got − expected|; 0 for equal non-finite entries, NaN for unequal ones."""
    got, expected = _pair(got, expected)
    if not got.size:
        return 0.0
    same = (got == expected) | (np.isnan(got) & np.isnan(expected))
    if not np.all(same | (np.isfinite(got) & np.isfinite(expected))):
        return float("nan")
    with np.errstate(over="ignore", invalid="ignore"):  # inf - inf where `same` masks it anyway
        return float(np.where(same, 0.0, np.abs(got - expected)).max())


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
