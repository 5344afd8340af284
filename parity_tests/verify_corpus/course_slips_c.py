"""Course layer functions with one learner's slip in each backward (submission C). The forwards
are the correct ones from course_layers; each docstring names the slip."""
import numpy as np

from .course_layers import (affine_forward, batchnorm_forward, conv_forward_naive,  # noqa: F401
                            lstm_step_forward, rnn_step_forward)


def affine_backward(dout, cache):
    """dx left as (N, D): not reshaped back to x's shape (N, d1, ..., dk)."""
    x, w, b = cache
    N = x.shape[0]
    dx = dout.dot(w.T)
    dw = x.reshape(N, -1).T.dot(dout)
    db = np.sum(dout, axis=0)
    return dx, dw, db


def batchnorm_backward(dout, cache):
    """Drops the path through the mean (dx2)."""
    xhat, gamma, xmu, ivar, std, var, eps = cache
    N, D = dout.shape
    dbeta = np.sum(dout, axis=0)
    dgamma = np.sum(dout * xhat, axis=0)
    dxhat = dout * gamma
    divar = np.sum(dxhat * xmu, axis=0)
    dxmu1 = dxhat * ivar
    dsqrtvar = -1.0 / (std ** 2) * divar
    dvar = 0.5 * 1.0 / np.sqrt(var + eps) * dsqrtvar
    dsq = 1.0 / N * np.ones((N, D)) * dvar
    dxmu2 = 2 * xmu * dsq
    dx = dxmu1 + dxmu2
    return dx, dgamma, dbeta


def conv_backward_naive(dout, cache):
    """dw[f] = ... inside the batch loop: only the last image's contribution survives."""
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
        dw_n = np.zeros_like(w)
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    hs, ws = i * stride, j * stride
                    dw_n[f] += x_pad[n, :, hs:hs + HH, ws:ws + WW] * dout[n, f, i, j]
                    dx_pad[n, :, hs:hs + HH, ws:ws + WW] += w[f] * dout[n, f, i, j]
        dw = dw_n
    dx = dx_pad[:, :, pad:pad + H, pad:pad + W]
    return dx, dw, db


def rnn_step_backward(dnext_h, cache):
    """dWx transposed: dtanh.T @ x is (H, D)."""
    x, prev_h, Wx, Wh, next_h = cache
    dtanh = dnext_h * (1 - next_h ** 2)
    dx = dtanh.dot(Wx.T)
    dprev_h = dtanh.dot(Wh.T)
    dWx = dtanh.T.dot(x)
    dWh = prev_h.T.dot(dtanh)
    db = dtanh.sum(axis=0)
    return dx, dprev_h, dWx, dWh, db


def lstm_step_backward(dnext_h, dnext_c, cache):
    """The cell gradient arriving from the next step (dnext_c) is not added to dc."""
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c = cache
    tanh_c = np.tanh(next_c)
    dc = dnext_h * o * (1 - tanh_c ** 2)
    do = dnext_h * tanh_c
    df = dc * prev_c
    di = dc * g
    dg = dc * i
    dprev_c = dc * f
    da = np.hstack((di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g ** 2)))
    dx = da.dot(Wx.T)
    dprev_h = da.dot(Wh.T)
    dWx = x.T.dot(da)
    dWh = prev_h.T.dot(da)
    db = da.sum(axis=0)
    return dx, dprev_h, dprev_c, dWx, dWh, db
