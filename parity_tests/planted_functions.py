"""Planted slips in function-form derivatives, each a correct function of examples/function_ops.py
or examples/layer_functions.py with one mistake; the docstring names the diagnosis verify must give."""
from __future__ import annotations

import numpy as np

from examples.function_ops import sigmoid, softmax


def sigmoid_half(z):
    return sigmoid(z)


def sigmoid_half_prime(z):
    """½ σ(1 − σ) -> off by a constant factor ½."""
    s = sigmoid(z)
    return 0.5 * s * (1 - s)


def sigmoid_double(z):
    return sigmoid(z)


def sigmoid_double_prime(z):
    """2 σ(1 − σ) -> off by a constant factor 2."""
    s = sigmoid(z)
    return 2 * s * (1 - s)


def tanh_sign(z):
    return np.tanh(z)


def tanh_sign_derivative(a):
    """a² − 1 -> wrong sign."""
    return a * a - 1


def relu(z):
    return np.maximum(z, 0)


def relu_prime_kink(z):
    """1 at z = 0 (z >= 0), where torch's subgradient is 0 -> wrong only at a kink."""
    return (z >= 0).astype(float)


def sigmoid_confused(z):
    return sigmoid(z)


def sigmoid_confused_prime(z):
    """z(1 − z): the derivative in a, under a parameter named z -> z-for-a confusion."""
    return z * (1 - z)


def softmax_batch(z):
    """Normalises over the whole array, not each row -> named as batch-wide."""
    e = np.exp(z - np.max(z))
    return e / np.sum(e)


def softmax_batch_backward(dout, s):
    """The row-wise vector-Jacobian product (right for a row-wise softmax)."""
    return s * (dout - np.sum(dout * s, axis=1, keepdims=True))


def softmax_diag(x):
    return softmax(x)


def softmax_diag_grad(s):
    """diag(s(1 − s)): the Jacobian's diagonal only -> the cross terms are missing."""
    return np.diagflat(s * (1 - s))


def mse_half(pred, target):
    return np.mean((pred - target) ** 2)


def mse_half_grad(pred, target):
    """(pred − target)/n: the gradient of ½·MSE -> off by a constant factor ½."""
    return (pred - target) / pred.size


def affine_meanb_forward(x, w, b):
    return x @ w + b, (x, w, b)


def affine_meanb_backward(dout, cache):
    """db as the mean over the batch -> db averaged where the sum is needed (1/N)."""
    x, w, b = cache
    return dout @ w.T, x.T @ dout, dout.mean(axis=0)


def affine_wt_forward(x, w, b):
    return x @ w + b, (x, w, b)


def affine_wt_backward(dout, cache):
    """dw = doutᵀ x, shape (M, D) -> transposed."""
    x, w, b = cache
    return dout @ w.T, dout.T @ x, dout.sum(axis=0)


def relu_forward(x):
    return np.maximum(x, 0), x


def relu_backward_kink(dout, cache):
    """dout · (x >= 0) -> wrong only at a kink."""
    return dout * (cache >= 0)


def softmax_loss_sum(x, y):
    """dx not divided by N while the loss is the mean -> missing the ÷N."""
    shifted = x - x.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = x.shape[0]
    dx = np.exp(log_probs)
    dx[np.arange(n), y] -= 1
    return -log_probs[np.arange(n), y].sum() / n, dx
