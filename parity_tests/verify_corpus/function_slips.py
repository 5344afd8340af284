"""The pairs of function_pairs with one slip in each derivative; each docstring names the slip."""
from math import erf, sqrt

import numpy as np


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def sigmoid_der(x):
    """σ(x)(1 − x): the a-form with x where σ(x) belongs."""
    return sigmoid(x) * (1 - x)


def tanh(x):
    return np.tanh(x)


def deriv_tanh(x):
    """1 − tanh(x): the square forgotten."""
    return 1 - np.tanh(x)


def softplus(x):
    return np.log(1 + np.exp(x))


def softplusPrime(x):
    """σ(−x): the sign of the exponent flipped."""
    return 1 / (1 + np.exp(x))


def elu(x, alpha=1.0):
    return np.where(x > 0, x, alpha * (np.exp(x) - 1))


def eluGradient(x, alpha=1.0):
    """Returns the forward value α(eˣ − 1) on the negative side instead of αeˣ."""
    return np.where(x > 0, 1, alpha * (np.exp(x) - 1))


def swish(x):
    return x * sigmoid(x)


def derivative_swish(x):
    """Product rule half-applied: x σ(1 − σ) without the + σ."""
    s = sigmoid(x)
    return x * s * (1 - s)


def leaky_relu(x, alpha=0.01):
    return np.where(x > 0, x, alpha * x)


def leaky_relu_derivative(x, alpha=0.01):
    """The two slopes swapped: α for x > 0, 1 below."""
    return np.where(x > 0, alpha, 1.0)


def relu(x):
    return np.maximum(0, x)


def relu_derivative(x):
    """Returns relu(x) itself."""
    return np.maximum(0, x)


def gelu(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def gelu_derivative(x):
    """Only the first term of the product rule: 0.5(1 + tanh(...))."""
    return 0.5 * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


_erf = np.vectorize(erf)


def gelu_exact(x):
    return 0.5 * x * (1 + _erf(x / sqrt(2)))


def gelu_exact_grad(x):
    """Φ(x) only: the x φ(x) term forgotten."""
    return 0.5 * (1 + _erf(x / sqrt(2)))


def softsign(x):
    return x / (1 + np.abs(x))


def softsign_prime(x):
    """1 / (1 + |x|): the square forgotten."""
    return 1 / (1 + np.abs(x))


def selu(x, alpha=1.6732632423543772, scale=1.0507009873554805):
    return scale * np.where(x > 0, x, alpha * (np.exp(x) - 1))


def selu_derivative(x, alpha=1.6732632423543772, scale=1.0507009873554805):
    """The scale applied on the negative side only."""
    return np.where(x > 0, 1, scale * alpha * np.exp(x))


def arctan(x):
    return np.arctan(x)


def arctan_derivative(x):
    """1 / (1 − x²): sign slip in the denominator."""
    return 1 / (1 - x ** 2)


def logistic(x):
    return 1.0 / (1.0 + np.exp(-x))


def logistic_derivative(a):
    """a(1 + a) for a = logistic(x): sign slip."""
    return a * (1 + a)


def softmax(x):
    exps = np.exp(x - np.max(x))
    return exps / np.sum(exps)


def softmax_derivative(x):
    """s(1 − s): sigmoid's form, the diagonal of the Jacobian only."""
    s = softmax(x)
    return s * (1 - s)
