"""The losses of loss_pairs with one slip in each gradient; each docstring names the slip."""
import numpy as np


def mse(y_true, y_pred):
    return np.mean(np.power(y_true - y_pred, 2))


def mse_prime(y_true, y_pred):
    """(y_true − y_pred): the sign of the argument order flipped."""
    return 2 * (y_true - y_pred) / y_true.size


def mean_squared_error(pred, target):
    return np.mean((pred - target) ** 2)


def mean_squared_error_grad(pred, target):
    """The 2 dropped: the gradient of ½·MSE."""
    return (pred - target) / pred.size


def binary_cross_entropy(y_true, y_pred):
    y_pred = np.clip(y_pred, 1e-7, 1 - 1e-7)
    return -np.mean(y_true * np.log(y_pred) + (1 - y_true) * np.log(1 - y_pred))


def binary_cross_entropy_prime(y_true, y_pred):
    """No ÷N although the loss is a mean."""
    y_pred = np.clip(y_pred, 1e-7, 1 - 1e-7)
    return (1 - y_true) / (1 - y_pred) - y_true / y_pred


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def cross_entropy_onehot(logits, y_onehot):
    p = _softmax(logits)
    return -np.sum(y_onehot * np.log(p)) / logits.shape[0]


def cross_entropy_onehot_grad(logits, y_onehot):
    """The softmax left out: −y / N."""
    return -y_onehot / logits.shape[0]


def cross_entropy(logits, labels):
    p = _softmax(logits)
    n = logits.shape[0]
    return -np.mean(np.log(p[np.arange(n), labels]))


def cross_entropy_grad(logits, labels):
    """Extra ÷N: the mean taken twice."""
    n = logits.shape[0]
    grad = _softmax(logits)
    grad[np.arange(n), labels] -= 1
    return grad / n / n


def categorical_crossentropy(y_true, y_pred):
    y_pred = np.clip(y_pred, 1e-12, 1.0)
    return -np.sum(y_true * np.log(y_pred)) / y_true.shape[0]


def categorical_crossentropy_prime(y_true, y_pred):
    """(y_pred − y_true)/N: the softmax-with-CE shortcut applied to CE on probabilities."""
    return (y_pred - y_true) / y_true.shape[0]


def hinge(y_true, y_pred):
    return np.mean(np.maximum(0, 1 - y_true * y_pred))


def hinge_prime(y_true, y_pred):
    """Sign slip: +y_true inside the margin."""
    return np.where(y_true * y_pred < 1, y_true, 0) / y_true.size


def huber(y_true, y_pred, delta=1.0):
    r = y_pred - y_true
    quad = 0.5 * r ** 2
    lin = delta * (np.abs(r) - 0.5 * delta)
    return np.mean(np.where(np.abs(r) <= delta, quad, lin))


def huber_prime(y_true, y_pred, delta=1.0):
    """The residual everywhere: not clipped to ±delta in the linear part."""
    r = y_pred - y_true
    return r / r.size


def kl_divergence(y_true, y_pred):
    y_true = np.clip(y_true, 1e-7, 1)
    y_pred = np.clip(y_pred, 1e-7, 1)
    return np.sum(y_true * np.log(y_true / y_pred)) / y_true.shape[0]


def kl_divergence_prime(y_true, y_pred):
    """Sign slip: +y_true / y_pred."""
    y_true = np.clip(y_true, 1e-7, 1)
    y_pred = np.clip(y_pred, 1e-7, 1)
    return y_true / y_pred / y_true.shape[0]


def mae(y_true, y_pred):
    return np.mean(np.abs(y_pred - y_true))


def mae_prime(y_true, y_pred):
    """No ÷N although the loss is a mean."""
    return np.sign(y_pred - y_true)


def bce_with_logits(logits, targets):
    return np.mean(np.maximum(logits, 0) - logits * targets + np.log1p(np.exp(-np.abs(logits))))


def bce_with_logits_grad(logits, targets):
    """σ(x)(1 − σ(x)) multiplied in again, as if the loss were on probabilities."""
    s = 1 / (1 + np.exp(-logits))
    return (s - targets) * s * (1 - s) / logits.size
