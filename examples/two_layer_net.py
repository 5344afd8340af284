"""A two-layer net as the classic course assignment writes it: ``self.params`` holds W1, b1, W2, b2,
``loss(X, y)`` returns the softmax loss (mean over the batch, plus L2 regularisation) and a dict of
gradients, and ``loss(X)`` returns the scores.

    nnparity verify examples.two_layer_net:TwoLayerNet

Correct; parity_tests/planted_networks.py holds the classic slips.
"""
import numpy as np


class TwoLayerNet:
    """affine - relu - affine - softmax; scores = max(0, X W1 + b1) W2 + b2."""

    def __init__(self, input_dim=3 * 32 * 32, hidden_dim=100, num_classes=10, weight_scale=1e-3, reg=0.0):
        self.reg = reg
        self.params = {
            "W1": weight_scale * np.random.randn(input_dim, hidden_dim),
            "b1": np.zeros(hidden_dim),
            "W2": weight_scale * np.random.randn(hidden_dim, num_classes),
            "b2": np.zeros(num_classes),
        }

    def loss(self, X, y=None):
        W1, b1, W2, b2 = self.params["W1"], self.params["b1"], self.params["W2"], self.params["b2"]
        N = X.shape[0]
        hidden = np.maximum(0, X.dot(W1) + b1)
        scores = hidden.dot(W2) + b2
        if y is None:
            return scores
        shifted = scores - np.max(scores, axis=1, keepdims=True)
        probs = np.exp(shifted)
        probs = probs / np.sum(probs, axis=1, keepdims=True)
        loss = -np.sum(np.log(probs[np.arange(N), y])) / N
        loss += 0.5 * self.reg * (np.sum(W1 * W1) + np.sum(W2 * W2))

        grads = {}
        dscores = probs.copy()
        dscores[np.arange(N), y] -= 1
        dscores /= N
        grads["W2"] = hidden.T.dot(dscores) + self.reg * W2
        grads["b2"] = np.sum(dscores, axis=0)
        dhidden = dscores.dot(W2.T)
        dhidden[hidden <= 0] = 0
        grads["W1"] = X.T.dot(dhidden) + self.reg * W1
        grads["b1"] = np.sum(dhidden, axis=0)
        return loss, grads
