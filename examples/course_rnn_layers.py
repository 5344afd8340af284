"""Recurrent course layers as forward/backward functions with a cache, written the way the classic
captioning assignment writes them (x (N, T, D), hidden states (N, H), words as integer indices):

    nnparity verify examples.course_rnn_layers:rnn_forward             # T steps of rnn_step
    nnparity verify examples.course_rnn_layers:word_embedding_forward  # x holds integers: dW only
    nnparity verify examples.course_rnn_layers:temporal_softmax_loss   # returns (loss, dx)

Each is correct; parity_tests/planted_functions.py holds the classic slips.
"""
import numpy as np

from examples.course_layers import lstm_step_backward, lstm_step_forward


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1 - next_h ** 2)
    return da @ Wx.T, da @ Wh.T, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def rnn_forward(x, h0, Wx, Wh, b):
    """h (N, T, H): rnn_step over the T steps of x (N, T, D)."""
    h, caches = h0, []
    hs = []
    for t in range(x.shape[1]):
        h, cache = rnn_step_forward(x[:, t, :], h, Wx, Wh, b)
        hs.append(h)
        caches.append(cache)
    return np.stack(hs, axis=1), caches


def rnn_backward(dh, cache):
    """Back through time: each step's upstream is dh[:, t] plus what the next step sends back."""
    dx = np.zeros(dh.shape[:2] + (cache[0][2].shape[0],))
    dprev = np.zeros(dh[:, 0].shape)
    grads = None
    for t in reversed(range(dh.shape[1])):
        dx[:, t], dprev, *step = rnn_step_backward(dh[:, t] + dprev, cache[t])
        grads = step if grads is None else [g + s for g, s in zip(grads, step)]
    return (dx, dprev, *grads)


def lstm_forward(x, h0, Wx, Wh, b):
    h, c = h0, np.zeros_like(h0)
    hs, caches = [], []
    for t in range(x.shape[1]):
        h, c, cache = lstm_step_forward(x[:, t, :], h, c, Wx, Wh, b)
        hs.append(h)
        caches.append(cache)
    return np.stack(hs, axis=1), caches


def lstm_backward(dh, cache):
    dx = np.zeros(dh.shape[:2] + (cache[0][3].shape[0],))
    dprev_h, dprev_c = np.zeros(dh[:, 0].shape), np.zeros(dh[:, 0].shape)
    grads = None
    for t in reversed(range(dh.shape[1])):
        dx[:, t], dprev_h, dprev_c, *step = lstm_step_backward(dh[:, t] + dprev_h, dprev_c, cache[t])
        grads = step if grads is None else [g + s for g, s in zip(grads, step)]
    return (dx, dprev_h, *grads)


def word_embedding_forward(x, W):
    """out[n, t] = W[x[n, t]] for integer word indices x (N, T)."""
    return W[x], (x, W)


def word_embedding_backward(dout, cache):
    x, W = cache
    dW = np.zeros_like(W)
    np.add.at(dW, x, dout)
    return dW


def temporal_affine_forward(x, w, b):
    """out (N, T, M) = x (N, T, D) @ w + b at every step."""
    return x @ w + b, (x, w, b)


def temporal_affine_backward(dout, cache):
    x, w, b = cache
    d = x.shape[2]
    return dout @ w.T, x.reshape(-1, d).T @ dout.reshape(-1, w.shape[1]), dout.sum(axis=(0, 1))


def temporal_softmax_loss(x, y, mask):
    """Cross-entropy of softmax(x[n, t]) against y[n, t] where mask[n, t], summed over time and
    averaged over the batch; returns (loss, dx)."""
    n, steps, v = x.shape
    flat, labels, keep = x.reshape(n * steps, v), y.reshape(-1), mask.reshape(-1)
    shifted = flat - flat.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -np.sum(keep * log_probs[np.arange(n * steps), labels]) / n
    dx = np.exp(log_probs)
    dx[np.arange(n * steps), labels] -= 1
    return loss, (dx * keep[:, None] / n).reshape(n, steps, v)
