"""nielsen_network2 with one slip: CrossEntropyCost.delta keeps the σ'(z) of the quadratic cost,
and the Network built with it by default."""
import numpy as np

from . import nielsen_network2
from .nielsen_network2 import sigmoid, sigmoid_prime  # noqa: F401


class CrossEntropyCost(object):

    @staticmethod
    def fn(a, y):
        return np.sum(np.nan_to_num(-y * np.log(a) - (1 - y) * np.log(1 - a)))

    @staticmethod
    def delta(z, a, y):
        return (a - y) * sigmoid_prime(z)


class Network(nielsen_network2.Network):

    def __init__(self, sizes, cost=CrossEntropyCost):
        super().__init__(sizes, cost)
