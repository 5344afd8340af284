"""Course layer functions with one learner's slip in each backward (submission B). The forwards
are the correct ones from course_layers; each docstring names the slip."""
import numpy as np

from .course_layers import (affine_forward, batchnorm_forward, conv_forward_naive,  # noqa: F401
                            dropout_forward, layernorm_forward, lstm_step_forward,
                            max_pool_forward_naive, relu_forward, rnn_forward, rnn_step_backward,
                            temporal_affine_forward)


def affine_backward(dout, cache):
    """db averaged over the batch instead of summed."""
    x, w, b = cache
    N = x.shape[0]
    dx = dout.dot(w.T).reshape(x.shape)
    dw = x.reshape(N, -1).T.dot(dout)
    db = np.mean(dout, axis=0)
    return dx, dw, db


def relu_backward(dout, cache):
    """Multiplies dout by the relu output instead of its 0/1 derivative."""
    x = cache
    dx = dout * np.maximum(0, x)
    return dx


def batchnorm_backward(dout, cache):
    """dgamma copied from dbeta: Σ dout, without x̂."""
    xhat, gamma, xmu, ivar, std, var, eps = cache
    N = dout.shape[0]
    dbeta = np.sum(dout, axis=0)
    dgamma = np.sum(dout, axis=0)
    dxhat = dout * gamma
    dx = (1.0 / N) * ivar * (N * dxhat - dxhat.sum(axis=0) - xhat * np.sum(dxhat * xhat, axis=0))
    return dx, dgamma, dbeta


def batchnorm_backward_alt(dout, cache):
    """The 1/N in front of the closed form forgotten."""
    xhat, gamma, xmu, ivar, std, var, eps = cache
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = np.sum(dout * xhat, axis=0)
    dxhat = dout * gamma
    dx = ivar * (N * dxhat - dxhat.sum(axis=0) - xhat * np.sum(dxhat * xhat, axis=0))
    return dx, dgamma, dbeta


def layernorm_backward(dout, cache):
    """Drops the mean term −Σ dx̂ of each row."""
    xhat, gamma, std = cache
    D = dout.shape[1]
    dbeta = dout.sum(axis=0)
    dgamma = np.sum(dout * xhat, axis=0)
    dxhat = dout * gamma
    dx = (1.0 / D) / std * (D * dxhat - xhat * np.sum(dxhat * xhat, axis=1, keepdims=True))
    return dx, dgamma, dbeta


def dropout_backward(dout, cache):
    """Passes dout straight through: the mask is not applied."""
    dropout_param, mask = cache
    return dout


def conv_backward_naive(dout, cache):
    """Un-pads dx from the top-left corner ([:H, :W]) instead of [pad:pad + H, pad:pad + W]."""
    x, w, b, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
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
                    hs, ws = i * stride, j * stride
                    dw[f] += x_pad[n, :, hs:hs + HH, ws:ws + WW] * dout[n, f, i, j]
                    dx_pad[n, :, hs:hs + HH, ws:ws + WW] += w[f] * dout[n, f, i, j]
    dx = dx_pad[:, :, :H, :W]
    return dx, dw, db


def max_pool_backward_naive(dout, cache):
    """Spreads dout evenly over the window (average-pool backward) instead of to the max."""
    x, pool_param = cache
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H_out, W_out = dout.shape
    dx = np.zeros_like(x)
    for i in range(H_out):
        for j in range(W_out):
            dx[:, :, i * stride:i * stride + ph, j * stride:j * stride + pw] += \
                dout[:, :, i:i + 1, j:j + 1] / (ph * pw)
    return dx


def rnn_backward(dh, cache):
    """BPTT without the gradient flowing back from the next step: uses dh[:, t] alone."""
    N, T, H = dh.shape
    D = cache[0][0].shape[1]
    dx = np.zeros((N, T, D))
    dWx = np.zeros((D, H))
    dWh = np.zeros((H, H))
    db = np.zeros(H)
    dprev_h = np.zeros((N, H))
    for t in reversed(range(T)):
        dx_t, dprev_h, dWx_t, dWh_t, db_t = rnn_step_backward(dh[:, t, :], cache[t])
        dx[:, t, :] = dx_t
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dprev_h, dWx, dWh, db


def temporal_affine_backward(dout, cache):
    """db averaged over the N·T positions instead of summed."""
    x, w, b, out = cache
    N, T, D = x.shape
    M = b.shape[0]
    dx = dout.reshape(N * T, M).dot(w.T).reshape(N, T, D)
    dw = dout.reshape(N * T, M).T.dot(x.reshape(N * T, D)).T
    db = dout.mean(axis=(0, 1))
    return dx, dw, db


def lstm_step_backward(dnext_h, dnext_c, cache):
    """dprev_c = dc, forgetting the forget gate f."""
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c = cache
    tanh_c = np.tanh(next_c)
    dc = dnext_c + dnext_h * o * (1 - tanh_c ** 2)
    do = dnext_h * tanh_c
    df = dc * prev_c
    di = dc * g
    dg = dc * i
    dprev_c = dc
    da = np.hstack((di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g ** 2)))
    dx = da.dot(Wx.T)
    dprev_h = da.dot(Wh.T)
    dWx = x.T.dot(da)
    dWh = prev_h.T.dot(da)
    db = da.sum(axis=0)
    return dx, dprev_h, dprev_c, dWx, dWh, db


def temporal_softmax_loss(x, y, mask, verbose=False):
    """dx not divided by N although the loss is."""
    N, T, V = x.shape
    x_flat = x.reshape(N * T, V)
    y_flat = y.reshape(N * T)
    mask_flat = mask.reshape(N * T)
    probs = np.exp(x_flat - np.max(x_flat, axis=1, keepdims=True))
    probs /= np.sum(probs, axis=1, keepdims=True)
    loss = -np.sum(mask_flat * np.log(probs[np.arange(N * T), y_flat])) / N
    dx_flat = probs.copy()
    dx_flat[np.arange(N * T), y_flat] -= 1
    dx_flat *= mask_flat[:, None]
    return loss, dx_flat.reshape(N, T, V)


def svm_loss(x, y):
    """dx not divided by N although the loss is."""
    N = x.shape[0]
    correct_class_scores = x[np.arange(N), y]
    margins = np.maximum(0, x - correct_class_scores[:, np.newaxis] + 1.0)
    margins[np.arange(N), y] = 0
    loss = np.sum(margins) / N
    num_pos = np.sum(margins > 0, axis=1)
    dx = np.zeros_like(x)
    dx[margins > 0] = 1
    dx[np.arange(N), y] -= num_pos
    return loss, dx


def softmax_loss(x, y):
    """Sign slip at the correct class: += 1 instead of −= 1."""
    shifted_logits = x - np.max(x, axis=1, keepdims=True)
    Z = np.sum(np.exp(shifted_logits), axis=1, keepdims=True)
    log_probs = shifted_logits - np.log(Z)
    probs = np.exp(log_probs)
    N = x.shape[0]
    loss = -np.sum(log_probs[np.arange(N), y]) / N
    dx = probs.copy()
    dx[np.arange(N), y] += 1
    dx /= N
    return loss, dx
