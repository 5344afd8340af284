"""Correct networks written as other course years write them, for the verify tests: a two-layer net
whose loss takes ``reg`` and normalises probabilities in place (autograd cannot follow it), and a
fully-connected net of any depth built from the layer functions, float32 by default, with zero
biases. Both must pass: a false FAIL on correct code counts as much as a false PASS."""
from __future__ import annotations

import numpy as np

from examples.layer_functions import affine_backward, affine_forward, relu_backward, relu_forward, softmax_loss


class TwoLayerNetReg:
    """scores = max(0, X W1 + b1) W2 + b2; loss(X, y, reg) with reg·ΣW² (gradient 2·reg·W)."""

    def __init__(self, input_size, hidden_size, output_size, std=1e-4):
        self.params = {"W1": std * np.random.randn(input_size, hidden_size), "b1": np.zeros(hidden_size),
                       "W2": std * np.random.randn(hidden_size, output_size), "b2": np.zeros(output_size)}

    def loss(self, X, y=None, reg=0.0):
        W1, b1, W2, b2 = self.params["W1"], self.params["b1"], self.params["W2"], self.params["b2"]
        N = X.shape[0]
        h1 = np.maximum(0, X.dot(W1) + b1)
        scores = h1.dot(W2) + b2
        if y is None:
            return scores
        scores -= np.max(scores, axis=1, keepdims=True)
        probs = np.exp(scores)
        probs /= np.sum(probs, axis=1, keepdims=True)
        loss = np.sum(-np.log(probs[range(N), y])) / N + reg * (np.sum(W1 * W1) + np.sum(W2 * W2))
        dscores = probs
        dscores[range(N), y] -= 1
        dscores /= N
        grads = {"W2": h1.T.dot(dscores) + 2 * reg * W2, "b2": np.sum(dscores, axis=0)}
        dh1 = dscores.dot(W2.T)
        dh1[h1 <= 0] = 0
        grads["W1"] = X.T.dot(dh1) + 2 * reg * W1
        grads["b1"] = np.sum(dh1, axis=0)
        return loss, grads


class FullyConnectedNet:
    """{affine - relu} x (L - 1) - affine - softmax, with ½·reg·ΣW²."""

    def __init__(self, hidden_dims, input_dim=3 * 32 * 32, num_classes=10, reg=0.0, weight_scale=1e-2,
                 dtype=np.float32):
        self.reg, self.dtype, self.num_layers = reg, dtype, 1 + len(hidden_dims)
        dims = [input_dim] + hidden_dims + [num_classes]
        self.params = {}
        for i in range(self.num_layers):
            self.params[f"W{i + 1}"] = (weight_scale * np.random.randn(dims[i], dims[i + 1])).astype(dtype)
            self.params[f"b{i + 1}"] = np.zeros(dims[i + 1], dtype=dtype)

    def loss(self, X, y=None):
        out, caches = X.astype(self.dtype), []
        for i in range(1, self.num_layers):
            out, affine_cache = affine_forward(out, self.params[f"W{i}"], self.params[f"b{i}"])
            out, relu_cache = relu_forward(out)
            caches.append((affine_cache, relu_cache))
        L = self.num_layers
        scores, last_cache = affine_forward(out, self.params[f"W{L}"], self.params[f"b{L}"])
        if y is None:
            return scores
        loss, dout = softmax_loss(scores, y)
        loss += 0.5 * self.reg * sum(np.sum(self.params[f"W{i}"] ** 2) for i in range(1, L + 1))
        grads = {}
        dout, grads[f"W{L}"], grads[f"b{L}"] = affine_backward(dout, last_cache)
        for i in range(L - 1, 0, -1):
            affine_cache, relu_cache = caches[i - 1]
            dout, grads[f"W{i}"], grads[f"b{i}"] = affine_backward(relu_backward(dout, relu_cache), affine_cache)
        for i in range(1, L + 1):
            grads[f"W{i}"] += self.reg * self.params[f"W{i}"]
        return loss, grads
