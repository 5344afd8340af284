"""Loss functions and their gradients with respect to the prediction, in the argument orders
tutorials use. Every pair here is correct; loss_slips holds the same pairs with one slip each."""
import numpy as np


def mse(y_true, y_pred):
    """Keras' order: (y_true, y_pred), mean over every element."""
    return np.mean(np.power(y_true - y_pred, 2))


def mse_prime(y_true, y_pred):
    return 2 * (y_pred - y_true) / y_true.size


def mean_squared_error(pred, target):
    """The (pred, target) order."""
    return np.mean((pred - target) ** 2)


def mean_squared_error_grad(pred, target):
    return 2 * (pred - target) / pred.size


def binary_cross_entropy(y_true, y_pred):
    y_pred = np.clip(y_pred, 1e-7, 1 - 1e-7)
    return -np.mean(y_true * np.log(y_pred) + (1 - y_true) * np.log(1 - y_pred))


def binary_cross_entropy_prime(y_true, y_pred):
    y_pred = np.clip(y_pred, 1e-7, 1 - 1e-7)
    return ((1 - y_true) / (1 - y_pred) - y_true / y_pred) / np.size(y_true)


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def cross_entropy_onehot(logits, y_onehot):
    """Softmax cross-entropy, mean over the batch, targets one-hot (N, C)."""
    p = _softmax(logits)
    return -np.sum(y_onehot * np.log(p)) / logits.shape[0]


def cross_entropy_onehot_grad(logits, y_onehot):
    return (_softmax(logits) - y_onehot) / logits.shape[0]


def cross_entropy(logits, labels):
    """Softmax cross-entropy, mean over the batch, targets class indices (N,)."""
    p = _softmax(logits)
    n = logits.shape[0]
    return -np.mean(np.log(p[np.arange(n), labels]))


def cross_entropy_grad(logits, labels):
    n = logits.shape[0]
    grad = _softmax(logits)
    grad[np.arange(n), labels] -= 1
    return grad / n


def categorical_crossentropy(y_true, y_pred):
    """On probabilities (after a softmax layer), Keras' order, mean over the batch."""
    y_pred = np.clip(y_pred, 1e-12, 1.0)
    return -np.sum(y_true * np.log(y_pred)) / y_true.shape[0]


def categorical_crossentropy_prime(y_true, y_pred):
    y_pred = np.clip(y_pred, 1e-12, 1.0)
    return -y_true / y_pred / y_true.shape[0]


def hinge(y_true, y_pred):
    """Binary hinge with labels ±1, mean over the elements."""
    return np.mean(np.maximum(0, 1 - y_true * y_pred))


def hinge_prime(y_true, y_pred):
    return np.where(y_true * y_pred < 1, -y_true, 0) / y_true.size


def huber(y_true, y_pred, delta=1.0):
    r = y_pred - y_true
    quad = 0.5 * r ** 2
    lin = delta * (np.abs(r) - 0.5 * delta)
    return np.mean(np.where(np.abs(r) <= delta, quad, lin))


def huber_prime(y_true, y_pred, delta=1.0):
    r = y_pred - y_true
    return np.where(np.abs(r) <= delta, r, delta * np.sign(r)) / r.size


def kl_divergence(y_true, y_pred):
    """KL(y_true ‖ y_pred) summed over classes, mean over the batch; both rows are distributions."""
    y_true = np.clip(y_true, 1e-7, 1)
    y_pred = np.clip(y_pred, 1e-7, 1)
    return np.sum(y_true * np.log(y_true / y_pred)) / y_true.shape[0]


def kl_divergence_prime(y_true, y_pred):
    y_true = np.clip(y_true, 1e-7, 1)
    y_pred = np.clip(y_pred, 1e-7, 1)
    return -y_true / y_pred / y_true.shape[0]


def mae(y_true, y_pred):
    return np.mean(np.abs(y_pred - y_true))


def mae_prime(y_true, y_pred):
    return np.sign(y_pred - y_true) / y_true.size


def bce_with_logits(logits, targets):
    """Binary cross-entropy on logits, the stable form, mean over the elements."""
    return np.mean(np.maximum(logits, 0) - logits * targets + np.log1p(np.exp(-np.abs(logits))))


def bce_with_logits_grad(logits, targets):
    return (1 / (1 + np.exp(-logits)) - targets) / logits.size


def log_cosh(y_true, y_pred):
    return np.mean(np.log(np.cosh(y_pred - y_true)))


def log_cosh_prime(y_true, y_pred):
    return np.tanh(y_pred - y_true) / y_true.size


def l2_loss(pred, target):
    """½‖pred − target‖², summed (no mean): the gradient is the residual."""
    return 0.5 * np.sum((pred - target) ** 2)


def l2_loss_grad(pred, target):
    return pred - target


def rmse(y_true, y_pred):
    return np.sqrt(np.mean((y_pred - y_true) ** 2))


def rmse_prime(y_true, y_pred):
    return (y_pred - y_true) / (y_true.size * rmse(y_true, y_pred))
