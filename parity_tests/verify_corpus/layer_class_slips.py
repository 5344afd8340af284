"""The classes of layer_classes with one slip each: the slipped method overridden; each docstring
names the slip."""
import numpy as np

from . import layer_classes


class FullyConnected(layer_classes.FullyConnected):
    """Slip: grads['W'] = doutᵀ x, transposed."""

    def backward(self, dout):
        self.grads["W"] = dout.T @ self.x
        self.grads["b"] = dout.sum(axis=0)
        return dout @ self.params["W"].T


class Linear(layer_classes.Linear):
    """Slip: the bias gradient averaged over the batch."""

    def backward(self, grad):
        self.gradients["weight"] = grad.T @ self.input
        self.gradients["bias"] = grad.mean(axis=0)
        return grad @ self.parameters["weight"]


class ReLU(layer_classes.ReLU):
    """Slip: backward returns the mask, ignoring the incoming gradient."""

    def backward(self, grad):
        return self.mask.astype(float)


class Sigmoid(layer_classes.Sigmoid):
    """Slip: σ(1 − σ) evaluated with the input x in place of the output."""

    def forward(self, x):
        self.x = x
        return 1 / (1 + np.exp(-x))

    def backward(self, grad):
        return grad * self.x * (1 - self.x)


class Tanh(layer_classes.Tanh):
    """Slip: 1 − x² with the input x instead of 1 − tanh(x)²."""

    def backward(self, grad):
        return grad * (1 - self.x ** 2)


class BatchNorm1d(layer_classes.BatchNorm1d):
    """Slip: dx = γ dout / σ, as if the batch statistics were constants."""

    def backward(self, dout):
        self.grads["gamma"] = np.sum(dout * self.xhat, axis=0)
        self.grads["beta"] = np.sum(dout, axis=0)
        return dout * self.params["gamma"] / np.sqrt(self.var + self.eps)


class MSELoss(layer_classes.MSELoss):
    """Slip: (target − pred), the wrong sign."""

    def backward(self):
        return 2 * (self.target - self.pred) / self.pred.size


class SoftmaxCrossEntropy(layer_classes.SoftmaxCrossEntropy):
    """Slip: the gradient not divided by N although the loss is a mean."""

    def backward(self):
        n = self.probs.shape[0]
        grad = self.probs.copy()
        grad[np.arange(n), self.labels] -= 1
        return grad

