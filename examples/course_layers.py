"""Course layers as forward/backward functions with a cache, written the way the classic
assignments write them (inputs and parameter dicts by the course's names):

    nnparity verify examples.course_layers:batchnorm_forward     # with batchnorm_backward and _alt
    nnparity verify examples.course_layers:conv_forward_naive    # with conv_backward_naive
    nnparity verify examples.course_layers:lstm_step_forward     # two upstream gradients

Each is correct; parity_tests/planted_functions.py holds the classic slips.
"""
import numpy as np


def batchnorm_forward(x, gamma, beta, bn_param):
    """Train mode: normalise by the batch mean and (biased) variance; update the running stats."""
    eps, momentum = bn_param.get("eps", 1e-5), bn_param.get("momentum", 0.9)
    mean, var = x.mean(axis=0), x.var(axis=0)
    x_hat = (x - mean) / np.sqrt(var + eps)
    bn_param["running_mean"] = momentum * bn_param.get("running_mean", np.zeros(x.shape[1])) + (1 - momentum) * mean
    bn_param["running_var"] = momentum * bn_param.get("running_var", np.zeros(x.shape[1])) + (1 - momentum) * var
    return gamma * x_hat + beta, (x_hat, gamma, np.sqrt(var + eps))


def batchnorm_backward(dout, cache):
    """Through the graph, one node at a time."""
    x_hat, gamma, std = cache
    n = dout.shape[0]
    dx_hat = dout * gamma
    x_mu = x_hat * std
    dvar = np.sum(dx_hat * x_mu, axis=0) * -0.5 * std ** -3
    dmean = -np.sum(dx_hat, axis=0) / std - 2.0 * dvar * x_mu.mean(axis=0)
    dx = dx_hat / std + dvar * 2.0 * x_mu / n + dmean / n
    return dx, np.sum(dout * x_hat, axis=0), dout.sum(axis=0)


def batchnorm_backward_alt(dout, cache):
    """The simplified closed form."""
    x_hat, gamma, std = cache
    n = dout.shape[0]
    dx_hat = dout * gamma
    dx = (n * dx_hat - dx_hat.sum(axis=0) - x_hat * np.sum(dx_hat * x_hat, axis=0)) / (n * std)
    return dx, np.sum(dout * x_hat, axis=0), dout.sum(axis=0)


def conv_forward_naive(x, w, b, conv_param):
    """x (N, C, H, W), w (F, C, HH, WW), b (F,); conv_param {'stride', 'pad'}."""
    stride, pad = conv_param["stride"], conv_param["pad"]
    n, _, height, width = x.shape
    filters, _, hh, ww = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out_h, out_w = 1 + (height + 2 * pad - hh) // stride, 1 + (width + 2 * pad - ww) // stride
    out = np.zeros((n, filters, out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            window = xp[:, :, i * stride:i * stride + hh, j * stride:j * stride + ww]
            out[:, :, i, j] = np.tensordot(window, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return out, (x, w, b, conv_param)


def conv_backward_naive(dout, cache):
    x, w, b, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    _, _, hh, ww = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            rows, cols = slice(i * stride, i * stride + hh), slice(j * stride, j * stride + ww)
            dw += np.tensordot(dout[:, :, i, j], xp[:, :, rows, cols], axes=([0], [0]))
            dxp[:, :, rows, cols] += np.tensordot(dout[:, :, i, j], w, axes=([1], [0]))
    dx = dxp[:, :, pad:pad + x.shape[2], pad:pad + x.shape[3]]
    return dx, dw, dout.sum(axis=(0, 2, 3))


def max_pool_forward_naive(x, pool_param):
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    n, c, height, width = x.shape
    out = np.zeros((n, c, 1 + (height - ph) // stride, 1 + (width - pw) // stride))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            out[:, :, i, j] = x[:, :, i * stride:i * stride + ph, j * stride:j * stride + pw].max(axis=(2, 3))
    return out, (x, pool_param)


def max_pool_backward_naive(dout, cache):
    """The gradient goes to each window's (first) maximum."""
    x, pool_param = cache
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    dx = np.zeros_like(x)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    window = x[n, c, i * stride:i * stride + ph, j * stride:j * stride + pw]
                    k, m = np.unravel_index(np.argmax(window), window.shape)
                    dx[n, c, i * stride + k, j * stride + m] += dout[n, c, i, j]
    return dx


def layernorm_forward(x, gamma, beta, ln_param):
    """Normalise each sample over its features."""
    eps = ln_param.get("eps", 1e-5)
    mean, std = x.mean(axis=1, keepdims=True), np.sqrt(x.var(axis=1, keepdims=True) + eps)
    x_hat = (x - mean) / std
    return gamma * x_hat + beta, (x_hat, gamma, std)


def layernorm_backward(dout, cache):
    x_hat, gamma, std = cache
    d = dout.shape[1]
    dx_hat = dout * gamma
    dx = (d * dx_hat - dx_hat.sum(axis=1, keepdims=True)
          - x_hat * np.sum(dx_hat * x_hat, axis=1, keepdims=True)) / (d * std)
    return dx, np.sum(dout * x_hat, axis=0), dout.sum(axis=0)


def dropout_forward(x, dropout_param):
    """Inverted dropout keeping each unit with probability p; re-seeded from dropout_param['seed']."""
    p, mode = dropout_param["p"], dropout_param["mode"]
    if "seed" in dropout_param:
        np.random.seed(dropout_param["seed"])
    mask = None
    out = x
    if mode == "train":
        mask = (np.random.rand(*x.shape) < p) / p
        out = x * mask
    return out, (dropout_param, mask)


def dropout_backward(dout, cache):
    dropout_param, mask = cache
    return dout * mask if dropout_param["mode"] == "train" else dout


def _sigmoid(a):
    """1/(1 + e^(−a)) without overflow for any a."""
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1 / (1 + e), e / (1 + e))


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """Gates a = x Wx + prev_h Wh + b split as (i, f, o, g)."""
    a = x @ Wx + prev_h @ Wh + b
    hidden = prev_h.shape[1]
    i, f, o = (_sigmoid(a[:, k * hidden:(k + 1) * hidden]) for k in range(3))
    g = np.tanh(a[:, 3 * hidden:])
    next_c = f * prev_c + i * g
    next_h = o * np.tanh(next_c)
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c)


def lstm_step_backward(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c = cache
    tanh_c = np.tanh(next_c)
    dc = dnext_c + dnext_h * o * (1 - tanh_c ** 2)
    da = np.hstack([dc * g * i * (1 - i), dc * prev_c * f * (1 - f), dnext_h * tanh_c * o * (1 - o),
                    dc * i * (1 - g ** 2)])
    return da @ Wx.T, da @ Wh.T, dc * f, x.T @ da, prev_h.T @ da, da.sum(axis=0)
