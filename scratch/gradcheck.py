"""Central finite differences and the error measures of the tolerance policy."""
from __future__ import annotations

import numpy as np


def rel_error(got, expected) -> float:
    """‖got − expected‖ / ‖expected‖; the max abs error where ‖expected‖ = 0."""
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        raise ValueError(f"shape mismatch: {got.shape} vs {expected.shape}")
    norm = np.linalg.norm(expected)
    if norm == 0:
        return max_abs_error(got, expected)
    return float(np.linalg.norm(got - expected) / norm)


def max_abs_error(got, expected) -> float:
    diff = np.abs(np.asarray(got, dtype=np.float64) - np.asarray(expected, dtype=np.float64))
    return float(diff.max()) if diff.size else 0.0


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
