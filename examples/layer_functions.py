"""Layers as forward/backward functions with a cache, as the classic course assignments write them.

    nnparity verify examples.layer_functions:affine_forward     # with affine_backward
    nnparity verify examples.layer_functions:softmax_loss       # returns (loss, dx)

Each is correct; parity_tests/planted_functions.py holds the classic slips.
"""
import numpy as np


def affine_forward(x, w, b):
    """out = x @ w + b for x (N, D), w (D, M), b (M,)."""
    out = x @ w + b
    return out, (x, w, b)


def affine_backward(dout, cache):
    """dx = dout @ wᵀ, dw = xᵀ @ dout, db = Σ over the batch of dout."""
    x, w, b = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


def relu_forward(x):
    return np.maximum(x, 0), x


def relu_backward(dout, cache):
    x = cache
    return dout * (x > 0)


def softmax_loss(x, y):
    """Mean cross-entropy of softmax(x) against class indices y, and its gradient dx."""
    shifted = x - x.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = x.shape[0]
    loss = -log_probs[np.arange(n), y].sum() / n
    dx = np.exp(log_probs)
    dx[np.arange(n), y] -= 1
    return loss, dx / n
