"""`nonlin(x, deriv=False)` in the z-form with a sign slip: s(s − 1)."""
import numpy as np


def nonlin(x, deriv=False):
    s = 1 / (1 + np.exp(-x))
    if deriv:
        return s * (s - 1)
    return s
