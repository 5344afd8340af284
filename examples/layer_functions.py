"""Layers as forward/backward functions with a cache, as the classic course assignments write them.

    nnparity verify examples.layer_functions:affine_forward     # with affine_backward
    nnparity verify examples.layer_functions:softmax_loss       # returns (loss, dx)

Each is correct; parity_tests/planted_functions.py holds the classic slips.
"""
import numpy as np


def affine_forward(x, w, b):
    """out = x.reshape(N, D) @ w + b for x (N, d1, ..., dk) with D = d1···dk, w (D, M), b (M,)."""
    out = x.reshape(x.shape[0], -1) @ w + b
    return out, (x, w, b)


def affine_backward(dout, cache):
    """dx = dout @ wᵀ reshaped to x's shape, dw = xᵀ @ dout (x as (N, D)), db = Σ over the batch of dout."""
    x, w, b = cache
    dx = (dout @ w.T).reshape(x.shape)
    return dx, x.reshape(x.shape[0], -1).T @ dout, dout.sum(axis=0)


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
