"""Layer classes as from-scratch frameworks write them: parameters and gradients in dicts
(`self.params`/`self.grads` or `self.parameters`/`self.gradients`), constructors with required
arguments, ops through `__call__`. Every class here is correct; layer_class_slips holds the same
classes with one slip each."""
import numpy as np


class FullyConnected:
    """Keras-like: only the output width is given; the weights are made at the first forward."""

    def __init__(self, n_out):
        self.n_out = n_out
        self.params = {}
        self.grads = {}

    def forward(self, x):
        if not self.params:
            n_in = x.shape[1]
            self.params["W"] = np.random.randn(n_in, self.n_out) * np.sqrt(2.0 / n_in)
            self.params["b"] = np.zeros(self.n_out)
        self.x = x
        return x @ self.params["W"] + self.params["b"]

    def backward(self, dout):
        self.grads["W"] = self.x.T @ dout
        self.grads["b"] = dout.sum(axis=0)
        return dout @ self.params["W"].T


class Linear:

    def __init__(self, in_features, out_features):
        bound = 1 / np.sqrt(in_features)
        self.parameters = {
            "weight": np.random.uniform(-bound, bound, (out_features, in_features)),
            "bias": np.random.uniform(-bound, bound, out_features),
        }
        self.gradients = {}

    def __call__(self, x):
        return self.forward(x)

    def forward(self, x):
        self.input = x
        return x @ self.parameters["weight"].T + self.parameters["bias"]

    def backward(self, grad):
        self.gradients["weight"] = grad.T @ self.input
        self.gradients["bias"] = grad.sum(axis=0)
        return grad @ self.parameters["weight"]


class ReLU:

    def __call__(self, x):
        return self.forward(x)

    def forward(self, x):
        self.mask = x > 0
        return x * self.mask

    def backward(self, grad):
        return grad * self.mask


class Sigmoid:

    def __call__(self, x):
        return self.forward(x)

    def forward(self, x):
        self.out = 1 / (1 + np.exp(-x))
        return self.out

    def backward(self, grad):
        return grad * self.out * (1 - self.out)


class Tanh:

    def __call__(self, x):
        return self.forward(x)

    def forward(self, x):
        self.x = x
        return np.tanh(x)

    def backward(self, grad):
        return grad * (1 - np.tanh(self.x) ** 2)


class BatchNorm1d:
    """Training-mode batch normalisation over the batch axis."""

    def __init__(self, num_features, eps=1e-5):
        self.eps = eps
        self.params = {"gamma": np.ones(num_features), "beta": np.zeros(num_features)}
        self.grads = {}

    def __call__(self, x):
        return self.forward(x)

    def forward(self, x):
        self.mu = x.mean(axis=0)
        self.var = x.var(axis=0)
        self.xhat = (x - self.mu) / np.sqrt(self.var + self.eps)
        return self.params["gamma"] * self.xhat + self.params["beta"]

    def backward(self, dout):
        N = dout.shape[0]
        self.grads["gamma"] = np.sum(dout * self.xhat, axis=0)
        self.grads["beta"] = np.sum(dout, axis=0)
        dxhat = dout * self.params["gamma"]
        inv_std = 1 / np.sqrt(self.var + self.eps)
        return inv_std / N * (N * dxhat - dxhat.sum(axis=0) - self.xhat * np.sum(dxhat * self.xhat, axis=0))


class MSELoss:

    def __call__(self, pred, target):
        return self.forward(pred, target)

    def forward(self, pred, target):
        self.pred, self.target = pred, target
        return np.mean((pred - target) ** 2)

    def backward(self):
        return 2 * (self.pred - self.target) / self.pred.size


class SoftmaxCrossEntropy:
    """Mean cross-entropy of softmax(logits) against class indices."""

    def __call__(self, logits, labels):
        return self.forward(logits, labels)

    def forward(self, logits, labels):
        shifted = logits - logits.max(axis=1, keepdims=True)
        self.probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        self.labels = labels
        n = logits.shape[0]
        return -np.mean(np.log(self.probs[np.arange(n), labels]))

    def backward(self):
        n = self.probs.shape[0]
        grad = self.probs.copy()
        grad[np.arange(n), self.labels] -= 1
        return grad / n


class Softmax:
    """Softmax over each row; backward is the Jacobian-vector product s ⊙ (g − Σ g s)."""

    def __call__(self, x):
        return self.forward(x)

    def forward(self, x):
        e = np.exp(x - x.max(axis=1, keepdims=True))
        self.out = e / e.sum(axis=1, keepdims=True)
        return self.out

    def backward(self, grad):
        return self.out * (grad - np.sum(grad * self.out, axis=1, keepdims=True))


class LeakyReLU:

    def __init__(self, alpha=0.01):
        self.alpha = alpha

    def __call__(self, x):
        return self.forward(x)

    def forward(self, x):
        self.x = x
        return np.where(x > 0, x, self.alpha * x)

    def backward(self, grad):
        return grad * np.where(self.x > 0, 1.0, self.alpha)
