"""Course layer functions with one learner's slip in each backward (submission A). The forwards
are the correct ones from course_layers; each docstring names the slip."""
import numpy as np

from .course_layers import (affine_forward, batchnorm_forward, conv_forward_naive,  # noqa: F401
                            dropout_forward, layernorm_forward, lstm_step_forward,
                            max_pool_forward_naive, relu_forward, rnn_forward, rnn_step_backward,
                            rnn_step_forward, temporal_affine_forward, word_embedding_forward)


def affine_backward(dout, cache):
    """dw transposed: dout.T @ x is (M, D)."""
    x, w, b = cache
    N = x.shape[0]
    x_rows = x.reshape(N, -1)
    dx = dout.dot(w.T).reshape(x.shape)
    dw = dout.T.dot(x_rows)
    db = np.sum(dout, axis=0)
    return dx, dw, db


def relu_backward(dout, cache):
    """Ignores dout: returns the local derivative only."""
    x = cache
    dx = np.where(x > 0, 1.0, 0.0)
    return dx


def batchnorm_backward(dout, cache):
    """Drops the path through the variance (dxmu2)."""
    xhat, gamma, xmu, ivar, std, var, eps = cache
    N, D = dout.shape
    dbeta = np.sum(dout, axis=0)
    dgamma = np.sum(dout * xhat, axis=0)
    dxhat = dout * gamma
    dx1 = dxhat * ivar
    dmu = -1 * np.sum(dx1, axis=0)
    dx2 = 1.0 / N * np.ones((N, D)) * dmu
    dx = dx1 + dx2
    return dx, dgamma, dbeta


def batchnorm_backward_alt(dout, cache):
    """Misses the − x̂·Σ(dx̂·x̂) term of the closed form."""
    xhat, gamma, xmu, ivar, std, var, eps = cache
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = np.sum(dout * xhat, axis=0)
    dxhat = dout * gamma
    dx = (1.0 / N) * ivar * (N * dxhat - dxhat.sum(axis=0))
    return dx, dgamma, dbeta


def layernorm_backward(dout, cache):
    """The batchnorm formula pasted in: sums over axis 0 (the batch) instead of each row."""
    xhat, gamma, std = cache
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = np.sum(dout * xhat, axis=0)
    dxhat = dout * gamma
    dx = (1.0 / N) / std * (N * dxhat - dxhat.sum(axis=0) - xhat * np.sum(dxhat * xhat, axis=0))
    return dx, dgamma, dbeta


def dropout_backward(dout, cache):
    """Uses the 0/1 mask but forgets the 1/(1 − p) scale the forward applied."""
    dropout_param, mask = cache
    if dropout_param["mode"] == "train":
        return dout * (mask > 0)
    return dout


def conv_backward_naive(dout, cache):
    """Ignores the stride in the backward: windows start at (i, j), not (i·stride, j·stride)."""
    x, w, b, conv_param = cache
    pad = conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    _, _, H_out, W_out = dout.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    db = np.sum(dout, axis=(0, 2, 3))
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    dw[f] += x_pad[n, :, i:i + HH, j:j + WW] * dout[n, f, i, j]
                    dx_pad[n, :, i:i + HH, j:j + WW] += w[f] * dout[n, f, i, j]
    dx = dx_pad[:, :, pad:pad + H, pad:pad + W]
    return dx, dw, db


def max_pool_backward_naive(dout, cache):
    """Routes to the window's argmax but forgets the stride offset of the window."""
    x, pool_param = cache
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H_out, W_out = dout.shape
    dx = np.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    window = x[n, c, i * stride:i * stride + ph, j * stride:j * stride + pw]
                    r, s = np.unravel_index(np.argmax(window), window.shape)
                    dx[n, c, i + r, j + s] += dout[n, c, i, j]
    return dx


def rnn_step_backward(dnext_h, cache):  # noqa: F811
    """tanh' evaluated at the previous hidden state: 1 − prev_h² instead of 1 − next_h²."""
    x, prev_h, Wx, Wh, next_h = cache
    dtanh = dnext_h * (1 - prev_h ** 2)
    dx = dtanh.dot(Wx.T)
    dprev_h = dtanh.dot(Wh.T)
    dWx = x.T.dot(dtanh)
    dWh = prev_h.T.dot(dtanh)
    db = dtanh.sum(axis=0)
    return dx, dprev_h, dWx, dWh, db


def word_embedding_backward(dout, cache):
    """dW[x] += dout: fancy-index assignment drops repeated words (np.add.at accumulates)."""
    x, W = cache
    dW = np.zeros_like(W)
    dW[x] += dout
    return dW


def temporal_affine_backward(dout, cache):
    """dw divided by N, as if the loss were averaged here."""
    x, w, b, out = cache
    N, T, D = x.shape
    M = b.shape[0]
    dx = dout.reshape(N * T, M).dot(w.T).reshape(N, T, D)
    dw = x.reshape(N * T, D).T.dot(dout.reshape(N * T, M)) / N
    db = dout.sum(axis=(0, 1))
    return dx, dw, db


def lstm_step_backward(dnext_h, dnext_c, cache):
    """Gate gradients stacked as i, f, g, o where the forward slices i, f, o, g."""
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c = cache
    tanh_c = np.tanh(next_c)
    dc = dnext_c + dnext_h * o * (1 - tanh_c ** 2)
    do = dnext_h * tanh_c
    df = dc * prev_c
    di = dc * g
    dg = dc * i
    dprev_c = dc * f
    da = np.hstack((di * i * (1 - i), df * f * (1 - f), dg * (1 - g ** 2), do * o * (1 - o)))
    dx = da.dot(Wx.T)
    dprev_h = da.dot(Wh.T)
    dWx = x.T.dot(da)
    dWh = prev_h.T.dot(da)
    db = da.sum(axis=0)
    return dx, dprev_h, dprev_c, dWx, dWh, db


def temporal_softmax_loss(x, y, mask, verbose=False):
    """The loss is masked but dx is not."""
    N, T, V = x.shape
    x_flat = x.reshape(N * T, V)
    y_flat = y.reshape(N * T)
    mask_flat = mask.reshape(N * T)
    probs = np.exp(x_flat - np.max(x_flat, axis=1, keepdims=True))
    probs /= np.sum(probs, axis=1, keepdims=True)
    loss = -np.sum(mask_flat * np.log(probs[np.arange(N * T), y_flat])) / N
    dx_flat = probs.copy()
    dx_flat[np.arange(N * T), y_flat] -= 1
    dx_flat /= N
    return loss, dx_flat.reshape(N, T, V)


def svm_loss(x, y):
    """Forgets the correct class's −(number of positive margins) in dx."""
    N = x.shape[0]
    correct_class_scores = x[np.arange(N), y]
    margins = np.maximum(0, x - correct_class_scores[:, np.newaxis] + 1.0)
    margins[np.arange(N), y] = 0
    loss = np.sum(margins) / N
    dx = np.zeros_like(x)
    dx[margins > 0] = 1
    dx /= N
    return loss, dx


def softmax_loss(x, y):
    """The loss is averaged over N, dx is not."""
    shifted_logits = x - np.max(x, axis=1, keepdims=True)
    Z = np.sum(np.exp(shifted_logits), axis=1, keepdims=True)
    log_probs = shifted_logits - np.log(Z)
    probs = np.exp(log_probs)
    N = x.shape[0]
    loss = -np.sum(log_probs[np.arange(N), y]) / N
    dx = probs.copy()
    dx[np.arange(N), y] -= 1
    return loss, dx
