"""two_layer_net's TwoLayerNet with one slip in `loss(X, y) -> (loss, grads)`.
Slip: grads['b1'] summed from dscores (the output layer's) instead of dhidden."""
import numpy as np

from . import two_layer_net


class TwoLayerNet(two_layer_net.TwoLayerNet):

    def loss(self, X, y=None):
        W1, b1 = self.params["W1"], self.params["b1"]
        W2, b2 = self.params["W2"], self.params["b2"]
        N = X.shape[0]
        X_rows = X.reshape(N, -1)
        hidden_pre = X_rows.dot(W1) + b1
        hidden = np.maximum(0, hidden_pre)
        scores = hidden.dot(W2) + b2
        if y is None:
            return scores

        shifted = scores - np.max(scores, axis=1, keepdims=True)
        probs = np.exp(shifted)
        probs /= np.sum(probs, axis=1, keepdims=True)
        loss = -np.sum(np.log(probs[np.arange(N), y])) / N
        loss += 0.5 * self.reg * (np.sum(W1 * W1) + np.sum(W2 * W2))

        grads = {}
        dscores = probs.copy()
        dscores[np.arange(N), y] -= 1
        dscores /= N
        grads["W2"] = hidden.T.dot(dscores) + self.reg * W2
        grads["b2"] = np.sum(dscores, axis=0)
        dhidden = dscores.dot(W2.T)
        dhidden[hidden_pre <= 0] = 0
        grads["W1"] = X_rows.T.dot(dhidden) + self.reg * W1
        grads["b1"] = np.sum(dscores, axis=0)
        return loss, grads
