"""Hand-derived derivatives as tutorials and courses write them: a function and its derivative.

    nnparity verify examples.function_ops:sigmoid        # finds sigmoid_prime by name
    nnparity verify examples.function_ops:tanh           # tanh_derivative(a), in terms of the activation

Each is correct; parity_tests/planted_functions.py holds the classic slips.
"""
import numpy as np


def sigmoid(z):
    """σ(z) = 1 / (1 + e^(−z)), stable for large |z|."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_prime(z):
    """σ'(z) = σ(z)(1 − σ(z)), in terms of z."""
    s = sigmoid(z)
    return s * (1 - s)


def tanh(z):
    return np.tanh(z)


def tanh_derivative(a):
    """tanh'(z) = 1 − a², in terms of the activation a = tanh(z): call it with a."""
    return 1 - a * a


def relu(z):
    return np.maximum(z, 0)


def relu_prime(z):
    """1 where z > 0, else 0 (torch's subgradient at 0)."""
    return (z > 0).astype(float)


def leaky_relu(z, alpha=0.01):
    return np.where(z > 0, z, alpha * z)


def leaky_relu_prime(z, alpha=0.01):
    return np.where(z > 0, 1.0, alpha)


def softmax(x):
    """Softmax of one row (a 1-D vector), shifted by its max."""
    e = np.exp(x - np.max(x))
    return e / e.sum()


def softmax_grad(s):
    """The full Jacobian of one row, in terms of the output s: diag(s) − s sᵀ."""
    s = s.reshape(-1, 1)
    return np.diagflat(s) - np.dot(s, s.T)


def mse(pred, target):
    """mean((pred − target)²) over every element."""
    return np.mean((pred - target) ** 2)


def mse_grad(pred, target):
    return 2 * (pred - target) / pred.size
