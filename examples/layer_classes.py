"""Layer classes as tutorials write them, each correct (parity_tests/planted_classes.py holds the
slips). Constructors take sizes; verify builds them small from the argument names, or through a
``<Class>_example(rng)`` hook.

    nnparity verify examples.layer_classes:Linear           # self.params / self.grads dicts
    nnparity verify examples.layer_classes:FullyConnected   # FullyConnected(n_out): weights made at the first call
    nnparity verify examples.layer_classes:Dense            # backward(output_gradient, learning_rate) updates itself
"""
import numpy as np


class Linear:
    """out = x W + b, parameters and gradients in dicts keyed by name."""

    def __init__(self, in_features, out_features):
        self.params = {"W": np.random.randn(in_features, out_features) * 0.5, "b": np.zeros(out_features)}
        self.grads = {}

    def forward(self, x):
        self.x = x
        return x @ self.params["W"] + self.params["b"]

    def backward(self, dout):
        self.grads["W"] = self.x.T @ dout
        self.grads["b"] = dout.sum(axis=0)
        return dout @ self.params["W"].T


class FullyConnected:
    """out = x W + b, W made at the first call from x's width; gradients dW, db."""

    def __init__(self, n_out):
        self.n_out = n_out
        self.W = None
        self.b = np.zeros(n_out)

    def __call__(self, x):
        if self.W is None:
            self.W = np.random.randn(x.shape[1], self.n_out) / np.sqrt(x.shape[1])
        self.x = x
        return x @ self.W + self.b

    def backward(self, dout):
        self.dW = self.x.T @ dout
        self.db = np.sum(dout, axis=0)
        return dout @ self.W.T


class Dense:
    """out = x Wᵀ + b with weights (n_out, n_in); backward applies its own gradient-descent step."""

    def __init__(self, input_size, output_size):
        self.weights = np.random.randn(output_size, input_size)
        self.bias = np.random.randn(output_size)

    def forward(self, input):
        self.input = input
        return input @ self.weights.T + self.bias

    def backward(self, output_gradient, learning_rate):
        weights_gradient = output_gradient.T @ self.input
        input_gradient = output_gradient @ self.weights
        self.weights -= learning_rate * weights_gradient
        self.bias -= learning_rate * output_gradient.sum(axis=0)
        return input_gradient
