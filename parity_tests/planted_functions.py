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
    """relu(z) / z: 0/0 = NaN at z = 0, outside the subgradients [0, 1] -> wrong only at a kink."""
    return relu(z) / z


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
    """dout · relu(x) / x: NaN at x = 0 -> wrong only at a kink."""
    return dout * np.maximum(cache, 0) / cache


def softmax_loss_sum(x, y):
    """dx not divided by N while the loss is the mean -> missing the ÷N."""
    shifted = x - x.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = x.shape[0]
    dx = np.exp(log_probs)
    dx[np.arange(n), y] -= 1
    return -log_probs[np.arange(n), y].sum() / n, dx


# ------------------------------------------------- course layers (examples/course_layers.py, course_rnn_layers.py)

from examples import course_layers as _cl, course_rnn_layers as _rl, layer_functions as _lf  # noqa: E402


def affine_flat_forward(x, w, b):
    return _lf.affine_forward(x, w, b)


def affine_flat_backward(dout, cache):
    """dx left as (N, D) for x (N, d1, d2) -> the reshape back to x's shape is missing."""
    x, w, b = cache
    return dout @ w.T, x.reshape(x.shape[0], -1).T @ dout, dout.sum(axis=0)


def batchnorm_nodvar_forward(x, gamma, beta, bn_param):
    return _cl.batchnorm_forward(x, gamma, beta, bn_param)


def batchnorm_nodvar_backward(dout, cache):
    """dx through the mean only, the path through the variance forgotten -> dx wrong."""
    x_hat, gamma, std = cache
    dx_hat = dout * gamma
    return (dx_hat - dx_hat.mean(axis=0)) / std, np.sum(dout * x_hat, axis=0), dout.sum(axis=0)


def batchnorm_momentum_forward(x, gamma, beta, bn_param):
    """Running stats with the momentum on the batch: (1 − m)·old + m·batch -> running_mean wrong."""
    eps, m = bn_param.get("eps", 1e-5), bn_param.get("momentum", 0.9)
    out, cache = _cl.batchnorm_forward(x, gamma, beta, {"eps": eps})
    bn_param["running_mean"] = (1 - m) * bn_param["running_mean"] + m * x.mean(axis=0)
    bn_param["running_var"] = (1 - m) * bn_param["running_var"] + m * x.var(axis=0)
    return out, cache


def batchnorm_momentum_backward(dout, cache):
    return _cl.batchnorm_backward_alt(dout, cache)


def layernorm_batchaxis_forward(x, gamma, beta, ln_param):
    return _cl.layernorm_forward(x, gamma, beta, ln_param)


def layernorm_batchaxis_backward(dout, cache):
    """batchnorm's backward (sums over the batch axis) for a layer norm -> dx wrong."""
    return _cl.batchnorm_backward_alt(dout, cache)


def dropout_unscaled_forward(x, dropout_param):
    np.random.seed(dropout_param["seed"])
    keep = np.random.rand(*x.shape) < dropout_param["p"]
    return x * keep / dropout_param["p"], (dropout_param, keep)


def dropout_unscaled_backward(dout, cache):
    """dout · mask without the 1/p the forward applied -> off by a constant factor p."""
    return dout * cache[1]


def dropout_unseeded_forward(x, dropout_param):
    """A fresh mask on every call, dropout_param's seed ignored -> random: refused (exit 2)."""
    keep = np.random.rand(*x.shape) < dropout_param["p"]
    return x * keep / dropout_param["p"], keep / dropout_param["p"]


def dropout_unseeded_backward(dout, cache):
    return dout * cache


def conv_nostride_forward_naive(x, w, b, conv_param):
    return _cl.conv_forward_naive(x, w, b, conv_param)


def conv_nostride_backward_naive(dout, cache):
    """Windows at (i, j) instead of (i·stride, j·stride) -> dx and dw wrong."""
    x, w, b, conv_param = cache
    return _cl.conv_backward_naive(dout, (x, w, b, {"stride": 1, "pad": conv_param["pad"]}))


def max_pool_spread_forward_naive(x, pool_param):
    return _cl.max_pool_forward_naive(x, pool_param)


def max_pool_spread_backward_naive(dout, cache):
    """dout copied to every element of the window, not only to its maximum -> dx wrong."""
    pool_param = cache[1]      # windows that tile x (stride = window size)
    return np.repeat(np.repeat(dout, pool_param["pool_height"], axis=2), pool_param["pool_width"], axis=3)


def lstm_step_nof_forward(x, prev_h, prev_c, Wx, Wh, b):
    return _cl.lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b)


def lstm_step_nof_backward(dnext_h, dnext_c, cache):
    """dprev_c = dc, the forget gate's factor f dropped -> dprev_c wrong."""
    dx, dprev_h, dprev_c, dWx, dWh, db = _cl.lstm_step_backward(dnext_h, dnext_c, cache)
    return dx, dprev_h, dprev_c / cache[6], dWx, dWh, db


def rnn_step_nosquare_forward(x, prev_h, Wx, Wh, b):
    return _rl.rnn_step_forward(x, prev_h, Wx, Wh, b)


def rnn_step_nosquare_backward(dnext_h, cache):
    """tanh' as 1 − h, not 1 − h² -> every gradient wrong."""
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1 - next_h)
    return da @ Wx.T, da @ Wh.T, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def rnn_nobptt_forward(x, h0, Wx, Wh, b):
    return _rl.rnn_forward(x, h0, Wx, Wh, b)


def rnn_nobptt_backward(dh, cache):
    """Each step gets only dh[:, t], not what the next step sends back -> gradients wrong."""
    dx = np.zeros(dh.shape[:2] + (cache[0][2].shape[0],))
    grads = None
    for t in reversed(range(dh.shape[1])):
        dx[:, t], dprev, *step = _rl.rnn_step_backward(dh[:, t], cache[t])
        grads = step if grads is None else [g + s for g, s in zip(grads, step)]
    return (dx, dprev, *grads)


def word_embedding_overwrite_forward(x, W):
    return _rl.word_embedding_forward(x, W)


def word_embedding_overwrite_backward(dout, cache):
    """dW[x] += dout: a repeated word's gradients overwrite each other instead of adding -> dW wrong."""
    x, W = cache
    dW = np.zeros_like(W)
    dW[x] += dout
    return dW


def temporal_affine_stepb_forward(x, w, b):
    return _rl.temporal_affine_forward(x, w, b)


def temporal_affine_stepb_backward(dout, cache):
    """db summed over the batch only, one row per time step -> db of shape (T, M)."""
    dx, dw, _ = _rl.temporal_affine_backward(dout, cache)
    return dx, dw, dout.sum(axis=0)


def temporal_softmax_loss_nomask(x, y, mask):
    """dx not masked while the loss is -> dx wrong at the masked steps."""
    loss, dx = _rl.temporal_softmax_loss(x, y, mask)
    n, steps, v = x.shape
    _, full = _rl.temporal_softmax_loss(x, y, np.ones_like(mask))
    return loss, full
