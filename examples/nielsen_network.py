"""Networks as the classic online book writes them: ``Network(sizes)`` with lists ``weights`` and
``biases`` of column-vector layers (w of shape (n_out, n_in), b of shape (n_out, 1)), and
``backprop(x, y) -> (nabla_b, nabla_w)`` for one example x (n, 1) with a one-hot y (k, 1).
``Network`` has the quadratic cost of its ``cost_derivative``; ``Network2`` takes a cost class with
``fn(a, y)`` and ``delta(z, a, y)`` (dC/dz of the output layer).

    nnparity verify examples.nielsen_network:Network
    nnparity verify examples.nielsen_network:Network2

Correct; parity_tests/planted_networks.py holds the classic slips.
"""
import numpy as np


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def sigmoid_prime(z):
    return sigmoid(z) * (1 - sigmoid(z))


class Network:
    """Sigmoid layers a = σ(w a + b); cost ½‖a − y‖²."""

    def __init__(self, sizes):
        self.num_layers = len(sizes)
        self.sizes = sizes
        self.biases = [np.random.randn(y, 1) for y in sizes[1:]]
        self.weights = [np.random.randn(y, x) for x, y in zip(sizes[:-1], sizes[1:])]

    def feedforward(self, a):
        for b, w in zip(self.biases, self.weights):
            a = sigmoid(np.dot(w, a) + b)
        return a

    def backprop(self, x, y):
        nabla_b = [np.zeros(b.shape) for b in self.biases]
        nabla_w = [np.zeros(w.shape) for w in self.weights]
        activation = x
        activations = [x]
        zs = []
        for b, w in zip(self.biases, self.weights):
            z = np.dot(w, activation) + b
            zs.append(z)
            activation = sigmoid(z)
            activations.append(activation)
        delta = self.output_delta(zs[-1], activations[-1], y)
        nabla_b[-1] = delta
        nabla_w[-1] = np.dot(delta, activations[-2].transpose())
        for l in range(2, self.num_layers):
            z = zs[-l]
            sp = sigmoid_prime(z)
            delta = np.dot(self.weights[-l + 1].transpose(), delta) * sp
            nabla_b[-l] = delta
            nabla_w[-l] = np.dot(delta, activations[-l - 1].transpose())
        return (nabla_b, nabla_w)

    def output_delta(self, z, a, y):
        """dC/dz of the output layer."""
        return self.cost_derivative(a, y) * sigmoid_prime(z)

    def cost_derivative(self, output_activations, y):
        return output_activations - y


class QuadraticCost:
    @staticmethod
    def fn(a, y):
        return 0.5 * np.linalg.norm(a - y) ** 2

    @staticmethod
    def delta(z, a, y):
        return (a - y) * sigmoid_prime(z)


class CrossEntropyCost:
    @staticmethod
    def fn(a, y):
        return np.sum(np.nan_to_num(-y * np.log(a) - (1 - y) * np.log(1 - a)))

    @staticmethod
    def delta(z, a, y):
        return a - y


class Network2(Network):
    """The same layers with a cost class: C = cost.fn(a, y), output delta = cost.delta(z, a, y)."""

    def __init__(self, sizes, cost=CrossEntropyCost):
        super().__init__(sizes)
        self.cost = cost

    def output_delta(self, z, a, y):
        return self.cost.delta(z, a, y)


class Sigmoid:
    """σ(z) and its derivative as methods, as activation classes are often written."""

    @staticmethod
    def fn(z):
        return sigmoid(z)

    @staticmethod
    def prime(z):
        return sigmoid_prime(z)
