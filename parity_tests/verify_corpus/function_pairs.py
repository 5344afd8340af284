"""Activation functions and their derivatives, named as tutorials name them. Every pair here is
correct; function_slips holds the same pairs with one slip each."""
from math import erf, pi, sqrt

import numpy as np


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def sigmoid_der(x):
    return sigmoid(x) * (1 - sigmoid(x))


def tanh(x):
    return np.tanh(x)


def deriv_tanh(x):
    return 1 - np.tanh(x) ** 2


def softplus(x):
    return np.log(1 + np.exp(x))


def softplusPrime(x):
    return 1 / (1 + np.exp(-x))


def elu(x, alpha=1.0):
    return np.where(x > 0, x, alpha * (np.exp(x) - 1))


def eluGradient(x, alpha=1.0):
    return np.where(x > 0, 1, alpha * np.exp(x))


def swish(x):
    return x * sigmoid(x)


def derivative_swish(x):
    s = sigmoid(x)
    return s + x * s * (1 - s)


def leaky_relu(x, alpha=0.01):
    return np.where(x > 0, x, alpha * x)


def leaky_relu_derivative(x, alpha=0.01):
    dx = np.ones_like(x)
    dx[x < 0] = alpha
    return dx


def relu(x):
    return np.maximum(0, x)


def relu_derivative(x):
    return np.where(x > 0, 1.0, 0.0)


def gelu(x):
    """The tanh approximation (GPT-2, BERT)."""
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def gelu_derivative(x):
    k = np.sqrt(2 / np.pi)
    inner = k * (x + 0.044715 * x ** 3)
    t = np.tanh(inner)
    return 0.5 * (1 + t) + 0.5 * x * (1 - t ** 2) * k * (1 + 3 * 0.044715 * x ** 2)


_erf = np.vectorize(erf)


def gelu_exact(x):
    """x Φ(x) with the error function."""
    return 0.5 * x * (1 + _erf(x / sqrt(2)))


def gelu_exact_grad(x):
    cdf = 0.5 * (1 + _erf(x / sqrt(2)))
    pdf = np.exp(-0.5 * x ** 2) / sqrt(2 * pi)
    return cdf + x * pdf


def softsign(x):
    return x / (1 + np.abs(x))


def softsign_prime(x):
    return 1 / (1 + np.abs(x)) ** 2


def mish(x):
    return x * np.tanh(np.log1p(np.exp(x)))


def mish_derivative(x):
    sp = np.log1p(np.exp(x))
    t = np.tanh(sp)
    return t + x * (1 - t ** 2) * sigmoid(x)


def selu(x, alpha=1.6732632423543772, scale=1.0507009873554805):
    return scale * np.where(x > 0, x, alpha * (np.exp(x) - 1))


def selu_derivative(x, alpha=1.6732632423543772, scale=1.0507009873554805):
    return scale * np.where(x > 0, 1, alpha * np.exp(x))


def arctan(x):
    return np.arctan(x)


def arctan_derivative(x):
    return 1 / (1 + x ** 2)


def logistic(x):
    return 1.0 / (1.0 + np.exp(-x))


def logistic_derivative(a):
    """In terms of the activation a = logistic(x), as scikit-learn's MLP writes it."""
    return a * (1 - a)


def softmax(x):
    """Softmax of one row."""
    exps = np.exp(x - np.max(x))
    return exps / np.sum(exps)


def softmax_jacobian(x):
    s = softmax(x).reshape(-1, 1)
    return np.diagflat(s) - np.dot(s, s.T)


def silu(x):
    return x / (1 + np.exp(-x))


def silu_grad(x):
    s = 1 / (1 + np.exp(-x))
    return s * (1 + x * (1 - s))


def log_sigmoid(x):
    return -np.logaddexp(0, -x)


def log_sigmoid_derivative(x):
    return 1 / (1 + np.exp(x))


def gaussian(x):
    """The radial basis activation e^(−x²)."""
    return np.exp(-x ** 2)


def gaussian_derivative(x):
    return -2 * x * np.exp(-x ** 2)


def bipolar_sigmoid(x):
    return 2 / (1 + np.exp(-x)) - 1


def bipolar_sigmoid_prime(x):
    y = bipolar_sigmoid(x)
    return 0.5 * (1 + y) * (1 - y)
