"""`nonlin(x, deriv=False)` with the derivative branch in terms of the input x. Correct."""
import numpy as np


def nonlin(x, deriv=False):
    s = 1 / (1 + np.exp(-x))
    if deriv:
        return s * (1 - s)
    return s
