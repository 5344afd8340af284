"""Planted slips in layer classes for the verify tests: each is a correct class from
examples/layer_classes.py with one line of its source changed; the docstring says what `nnparity
verify` must name."""
from __future__ import annotations

from examples.layer_classes import Dense, FullyConnected, Linear
from planted_networks import planted


class LinearBiasMean(Linear):
    """grads['b'] = mean of dout over the batch -> "db: averaged over the batch where the sum is needed"."""

    backward = planted(Linear.backward, 'self.grads["b"] = dout.sum(axis=0)', 'self.grads["b"] = dout.mean(axis=0)',
                       "backward")


class LinearTransposed(Linear):
    """grads['W'] = doutᵀ·x -> "dW: transposed"."""

    backward = planted(Linear.backward, 'self.grads["W"] = self.x.T @ dout', 'self.grads["W"] = dout.T @ self.x',
                       "backward")


class FullyConnectedNoBiasGradient(FullyConnected):
    """backward never sets db -> "no gradient found for parameter b", never a pass."""

    backward = planted(FullyConnected.backward, "self.db = np.sum(dout, axis=0)", "pass", "backward")


class DenseSign(Dense):
    """The update adds the gradient (self.weights += ...) -> "dweights: wrong sign"."""

    backward = planted(Dense.backward, "self.weights -= learning_rate * weights_gradient",
                       "self.weights += learning_rate * weights_gradient", "backward")
